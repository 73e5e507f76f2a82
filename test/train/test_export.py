"""Export: torch/ONNX parity on mu, logvar and stats, bundle contents, loading without torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from vae_ood_monitor.core.bundle import load_bundle, save_bundle
from vae_ood_monitor.core.session import EncoderSession
from vae_ood_monitor.train.eager import TorchEncoder
from vae_ood_monitor.train.export import bundle_from_encoder, bundle_from_run, count_macs
from vae_ood_monitor.train.models import get_preset, VAE
from vae_ood_monitor.train.runs import load_run


@pytest.mark.parametrize('preset', ['tiny', 'default'])
def test_onnx_session_matches_torch_encoder(preset: str) -> None:
    torch.manual_seed(0)
    spec = get_preset(preset).encoder
    model = VAE(spec).eval()
    # non-trivial BatchNorm statistics, so that folding them into the convolutions is exercised
    for module in model.encoder.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    bundle = bundle_from_encoder(model.encoder, spec, name='parity', provenance={})
    batch = np.random.default_rng(1).random((3, 3, *spec.input_hw), dtype=np.float32)
    ort_mu, ort_lv = EncoderSession(bundle).encode(batch)
    ref_mu, ref_lv = TorchEncoder(model.encoder).encode(batch)
    np.testing.assert_allclose(ort_mu, ref_mu, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ort_lv, ref_lv, rtol=1e-4, atol=1e-4)
    # the activation statistics (the third output) agree too, and with the eager encoder's
    ort = EncoderSession(bundle).encode_with_stats(batch)
    ref = TorchEncoder(model.encoder).encode_with_stats(batch)
    assert len(ort) == len(ref) == 3
    assert ort[2].shape == ref[2].shape == (3, bundle.manifest.model.stats_dim)
    for got, expected in zip(ort, ref):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_bundle_from_run(tiny_run: Path, tmp_path: Path) -> None:
    bundle = bundle_from_run(tiny_run, name='tiny-test')
    manifest = bundle.manifest
    info, model = load_run(tiny_run)
    assert manifest.name == 'tiny-test'
    assert (manifest.input.height, manifest.input.width) == (30, 40)
    assert manifest.model.latent_dim == 8
    assert manifest.model.macs == count_macs(model.encoder, (30, 40))
    assert manifest.provenance['preset'] == 'tiny'
    assert 'torch' in manifest.provenance['versions']
    assert not manifest.calibrated
    graph = onnx.load_from_string(bundle.model_bytes)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.graph.initializer)
    assert [o.name for o in graph.graph.output] == ['mu', 'logvar', 'stats']
    assert manifest.model.output_names == ('mu', 'logvar', 'stats')
    assert manifest.model.stats_dim > 0 and manifest.schema_version == 3
    assert 'BatchNormalization' not in {n.op_type for n in graph.graph.node}
    path = save_bundle(bundle, tmp_path / 'tiny.vood')
    assert load_bundle(path).model_bytes == bundle.model_bytes
