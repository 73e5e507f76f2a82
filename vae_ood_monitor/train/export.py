"""Export a trained encoder to ONNX and wrap it in a model bundle."""

from __future__ import annotations

import contextlib
import copy
from datetime import datetime, timezone
import io
import logging
import os
from typing import Any, TYPE_CHECKING
import warnings

import torch
from torch import nn

from vae_ood_monitor.core.bundle import Bundle, sha256_hex
from vae_ood_monitor.core.manifest import Manifest, ModelInfo
from vae_ood_monitor.core.preprocess import InputSpec
from vae_ood_monitor.core.typedefs import Interpolation, Precision
from vae_ood_monitor.train.models import STATS_BLOCKS, StatsEncoder
from vae_ood_monitor.train.runs import load_run, versions

if TYPE_CHECKING:
    from vae_ood_monitor.core.flow import FlowSpec
    from vae_ood_monitor.train.models import EncoderSpec

__all__ = ['bundle_from_encoder', 'bundle_from_run', 'count_macs', 'count_parameters',
           'export_onnx', 'input_planes']

OPSET = 18


def count_parameters(module: nn.Module) -> int:
    """Count parameters (BatchNorm statistics excluded: they fold into convolutions)."""
    return sum(p.numel() for p in module.parameters())


def input_planes(encoder: nn.Module) -> int:
    """Input planes of an encoder: its first convolution's input channels."""
    return next(m.in_channels for m in encoder.modules() if isinstance(m, nn.Conv2d))


def count_macs(encoder: nn.Module, input_hw: tuple[int, int]) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (convolutions and linear layers)."""
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for module in encoder.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            encoder(torch.zeros(1, input_planes(encoder), *input_hw))
    finally:
        for handle in handles:
            handle.remove()
        encoder.train(was_training)
    return int(total)


def export_onnx(encoder: nn.Module, input_hw: tuple[int, int], *,
                stats_blocks: int = STATS_BLOCKS) -> bytes:
    """Export ``encoder`` (image -> (mu, logvar)) to a single self-contained ONNX file.

    Uses the dynamo exporter with graph optimisation (BatchNorm folded into convolutions), a
    dynamic batch dimension, input ``image`` and outputs ``mu`` and ``logvar``, plus ``stats``
    (the activation statistics of the first ``stats_blocks`` convolution blocks, see
    :class:`~vae_ood_monitor.train.models.StatsEncoder`) unless ``stats_blocks`` is 0.
    """
    # a copy in the default memory format: channels_last weights (as trained) would make the
    # exporter specialise the batch dimension
    encoder = copy.deepcopy(encoder).eval().cpu().to(memory_format=torch.contiguous_format)
    outputs = ['mu', 'logvar']
    if stats_blocks:
        encoder = StatsEncoder(encoder, stats_blocks)
        outputs.append('stats')
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    example = torch.zeros(1, input_planes(encoder), *input_hw)
    batch = torch.export.Dim('batch', min=1, max=4096)
    name = next(iter(_forward_arguments(encoder)))
    sink = io.StringIO()
    quiet = logging.getLogger('torch.onnx')
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
            warnings.simplefilter('ignore')
            program = torch.onnx.export(
                encoder, (example,), input_names=['image'], output_names=outputs,
                dynamic_shapes={name: {0: batch}}, dynamo=True, external_data=False,
                optimize=True, verbose=False, opset_version=OPSET)
    finally:
        quiet.setLevel(level)
    return program.model_proto.SerializeToString()


def _forward_arguments(module: nn.Module) -> list[str]:
    import inspect
    return [p for p in inspect.signature(module.forward).parameters if p != 'self']


def bundle_from_encoder(encoder: nn.Module, spec: EncoderSpec, *, name: str,
                        provenance: dict[str, Any],
                        interpolation: Interpolation | str = Interpolation.AREA,
                        stats_blocks: int = STATS_BLOCKS, flow: FlowSpec | None = None) -> Bundle:
    """Export ``encoder`` and build an uncalibrated bundle around it.

    ``flow``: the encoder reads optical-flow stacks built this way (a ``flow`` bundle).

    ``stats_blocks``: convolution blocks whose activation statistics the model also outputs
    (the generic score's features); 0 exports mu and logvar only.
    """
    model_bytes = export_onnx(encoder, spec.input_hw, stats_blocks=stats_blocks)
    stats_dim = StatsEncoder(encoder, stats_blocks).stats_dim() if stats_blocks else 0
    info = ModelInfo(sha256=sha256_hex(model_bytes), latent_dim=spec.latent_dim,
                     precision=Precision.FP32, parameters=count_parameters(encoder),
                     macs=count_macs(encoder, spec.input_hw), stats_dim=stats_dim,
                     output_names=('mu', 'logvar', 'stats') if stats_dim else ('mu', 'logvar'))
    manifest = Manifest(
        name=name,
        input=InputSpec(spec.input_hw[0], spec.input_hw[1], interpolation=interpolation),
        model=info,
        flow=flow,
        provenance={**provenance, 'encoder': spec.to_dict(), 'versions': versions()},
        created=datetime.now(timezone.utc).isoformat(timespec='seconds'),
    )
    return Bundle(manifest, model_bytes)


def bundle_from_run(run: str | os.PathLike[str], *, name: str | None = None) -> Bundle:
    """Export the encoder of a finished training run to an (uncalibrated) bundle."""
    info, model = load_run(run)
    provenance = {'preset': info.preset, 'run': str(info.path), 'train': info.config,
                  'data': info.data, 'history_last': info.history[-1] if info.history else {},
                  'selection': info.selection,
                  **info.extra}
    return bundle_from_encoder(model.encoder, info.spec, name=name or info.path.name,
                               provenance=provenance, flow=info.flow)
