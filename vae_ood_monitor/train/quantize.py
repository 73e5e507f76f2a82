"""Precision variants of a bundle's encoder: int8 (static QDQ) and fp16.

* **Static int8 QDQ** (the one to deploy on CPUs): ONNX Runtime's pre-processing pass
  (shape inference, graph optimisation), then uint8 activations and int8 per-channel weights,
  with activation ranges calibrated on in-distribution frames preprocessed exactly as at run
  time. The latent heads stay in float: they are a sliver of the compute, and 8-bit mu/logvar
  would quantise the KL score itself. So does the stem (the convolution that reads the image):
  with three input channels its int8 kernel is slow (ONNX Runtime's QLinearConv needs the
  activations transposed to NHWC and has little to vectorise over 3 x 4 x 4 inputs; measured
  94 us against 43 us for the float stem in the blocked NCHWc layout, student-w0.375 at
  160x120), and the raw pixels are where 8-bit rounding would hurt fine detail such as rain
  streaks. On x86 with VNNI the rest runs about 3x faster than fp32. The activation
  statistics (the generic score's features) stay in float too and read the float activations
  themselves, not their uint8 round trip.
* **fp16** for GPU providers (inputs and outputs stay float32, so the runtime is unchanged).

ONNX Runtime's dynamic int8 quantisation is not offered: its convolutions (ConvInteger) ran
slower than fp32 on CPU.

Every variant is a new bundle with its own sha256 and ``precision``; its partitions are
cleared, because quantisation shifts the KL scores: calibrate it again.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
import tempfile
from typing import Iterator, TYPE_CHECKING

import numpy as np
import onnx

from vae_ood_monitor.core.bundle import Bundle, sha256_hex
from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.flow import input_batcher
from vae_ood_monitor.core.typedefs import Precision

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ['fp16_bundle', 'quantize_static_bundle']

_HEAD_OPS = ('Gemm', 'MatMul', 'Slice', 'Split', 'Clip', 'Add')


def _derived(bundle: Bundle, model_bytes: bytes, precision: Precision, name: str,
             details: dict[str, object]) -> Bundle:
    manifest = bundle.manifest
    model = manifest.model.__class__(
        sha256=sha256_hex(model_bytes), latent_dim=manifest.model.latent_dim,
        precision=precision, input_name=manifest.model.input_name,
        output_names=manifest.model.output_names, parameters=manifest.model.parameters,
        macs=manifest.model.macs, stats_dim=manifest.model.stats_dim)
    provenance = {**manifest.provenance, 'precision': {'source_sha256': manifest.model.sha256,
                                                       **details}}
    return Bundle(manifest.replace(name=name, model=model, partitions=(),
                                   provenance=provenance), model_bytes)


def _stem_nodes(model: onnx.ModelProto) -> list[str]:
    """Convolutions that read a graph input directly (the stem): kept in float."""
    inputs = {i.name for i in model.graph.input}
    return [n.name for n in model.graph.node
            if n.op_type == 'Conv' and n.name and n.input and n.input[0] in inputs]


def _head_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes after the last convolution (the dense head): kept in float."""
    nodes = list(model.graph.node)
    last_conv = max((i for i, n in enumerate(nodes) if n.op_type == 'Conv'), default=-1)
    return [n.name for n in nodes[last_conv + 1:] if n.op_type in _HEAD_OPS and n.name]


def _stats_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes that only compute the activation statistics output: kept in float.

    Squares and means of uint8-quantised tensors would lose the small differences between
    frames that the generic score measures; in float they cost next to nothing.
    """
    def ancestors(outputs: set[str]) -> set[str]:
        producers = {out: node for node in model.graph.node for out in node.output}
        seen: set[str] = set()
        todo = list(outputs)
        while todo:
            node = producers.get(todo.pop())
            if node is not None and node.name not in seen:
                seen.add(node.name)
                todo.extend(node.input)
        return seen

    names = [o.name for o in model.graph.output]
    if 'stats' not in names:
        return []
    latent = ancestors({n for n in names if n != 'stats'})
    return sorted(n for n in ancestors({'stats'}) - latent if n)


def _float_stats_inputs(model: onnx.ModelProto, float_nodes: list[str]) -> bytes:
    """Let float nodes read a quantised tensor's float original instead of its round trip.

    The QDQ format routes every consumer of a quantised activation through
    ``DequantizeLinear(QuantizeLinear(t))``, the float nodes of the stats output included: they
    then measure uint8-rounded activations, through one more node per consumer (ONNX Runtime
    duplicates the DequantizeLinear for each). Reading ``t`` itself is exact and faster; the
    DequantizeLinear nodes left without a consumer are dropped.
    """
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    dequantised = {n.output[0] for n in graph.node if n.op_type == 'DequantizeLinear'}

    def computed_in_float(tensor: str) -> bool:
        # only a tensor that a float node computes from float inputs is sure to exist at run
        # time: ONNX Runtime fuses a quantised conv with its activation and quantisation into
        # one integer kernel, and the float tensor between them is then never computed
        node = producers.get(tensor)
        if node is not None and node.op_type in ('Relu', 'Clip', 'LeakyRelu'):
            node = producers.get(node.input[0])
        return node is not None and not set(node.input) & dequantised

    original: dict[str, str] = {}  # DequantizeLinear output -> the float tensor it stands for
    for node in graph.node:
        if node.op_type != 'DequantizeLinear':
            continue
        quant = producers.get(node.input[0])
        if (quant is not None and quant.op_type == 'QuantizeLinear'
                and computed_in_float(quant.input[0])):
            original[node.output[0]] = quant.input[0]
    floats = set(float_nodes)
    for node in graph.node:
        if node.name in floats:
            for i, name in enumerate(node.input):
                if name in original:
                    node.input[i] = original[name]
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [n for n in graph.node
            if not (n.op_type == 'DequantizeLinear' and n.output[0] in original
                    and n.output[0] not in used)]
    del graph.node[:]
    graph.node.extend(kept)
    return model.SerializeToString()


class _Reader:
    """ONNX Runtime calibration data reader over preprocessed frames."""

    def __init__(self, bundle: Bundle, images: NDArray[np.uint8]) -> None:
        batcher = input_batcher(bundle.manifest)  # frames, or flow stacks for a flow bundle
        name = bundle.manifest.model.input_name
        self._batches: Iterator[dict[str, NDArray[np.float32]]] = iter(
            [{name: batcher.batch(img[None])} for img in images])

    def get_next(self) -> dict[str, NDArray[np.float32]] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # pragma: no cover - not used by MinMax calibration
        raise NotImplementedError


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def quantize_static_bundle(bundle: Bundle, images: NDArray[np.uint8], *,
                           per_channel: bool = True, method: str = 'minmax',
                           float_stem: bool = True, name: str | None = None) -> Bundle:
    """Quantise to static int8 QDQ, calibrated on in-distribution ``images`` (N, h, w, 3).

    ``float_stem``: keep the stem convolution in float (faster and more faithful on CPU, see
    the module docstring); False quantises it too.
    """
    from onnxruntime.quantization import (CalibrationMethod, quantize_static, QuantFormat,
                                          QuantType)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {'minmax': CalibrationMethod.MinMax, 'percentile': CalibrationMethod.Percentile,
               'entropy': CalibrationMethod.Entropy}
    if method not in methods:
        raise ConfigError(f'Calibration method {method!r} must be one of: {", ".join(methods)}.')
    if len(images) < 16:
        raise ConfigError(f'{len(images)} frames are too few to calibrate int8 activation '
                          'ranges; give at least 16 (a few hundred is better).')
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        names = ('fp32.onnx', 'prep.onnx', 'int8.onnx')
        source, prepared, output = (Path(tmp) / n for n in names)
        source.write_bytes(bundle.model_bytes)
        quant_pre_process(str(source), str(prepared))
        model = onnx.load(str(prepared))
        stats = _stats_nodes(model)
        excluded = (_head_nodes(model) + (_stem_nodes(model) if float_stem else []) + stats)
        quantize_static(
            str(prepared), str(output), _Reader(bundle, images), quant_format=QuantFormat.QDQ,
            per_channel=per_channel, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=methods[method],
            nodes_to_exclude=excluded)
        model_bytes = _float_stats_inputs(onnx.load(str(output)), stats)
    return _derived(bundle, model_bytes, Precision.INT8, name or f'{bundle.name}-int8',
                    {'method': 'static QDQ', 'activations': 'uint8',
                     'weights': 'int8 per-channel' if per_channel else 'int8 per-tensor',
                     'calibration': method, 'calibration_frames': int(len(images)),
                     'float_nodes': excluded})


def fp16_bundle(bundle: Bundle, name: str | None = None) -> Bundle:
    """Convert to half precision for GPU providers; inputs and outputs stay float32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load_from_string(bundle.model_bytes)
    with _quiet():
        converted = convert_float_to_float16(model, keep_io_types=True)
    return _derived(bundle, converted.SerializeToString(), Precision.FP16,
                    name or f'{bundle.name}-fp16', {'method': 'fp16 (io float32)'})
