"""Activation statistics (train/models.py StatsEncoder) through export, int8 and the Monitor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from vae_ood_monitor.core.encoding import encode_rows
from vae_ood_monitor.core.monitor import Monitor, MonitorConfig
from vae_ood_monitor.core.preprocess import Preprocessor
from vae_ood_monitor.core.session import EncoderSession
from vae_ood_monitor.core.typedefs import DecisionMode
from vae_ood_monitor.evaluate.calibration import calibrate, CalibrationOptions
from vae_ood_monitor.evaluate.report import combined_score
from vae_ood_monitor.evaluate.scores import encodings_of_images
from vae_ood_monitor.train.eager import TorchEncoder
from vae_ood_monitor.train.export import bundle_from_run
from vae_ood_monitor.train.models import Encoder, EnsembleEncoder, get_preset, StatsEncoder
from vae_ood_monitor.train.quantize import quantize_static_bundle
from vae_ood_monitor.train.runs import load_run
from vood_testing import tiny_frames


@torch.no_grad()
def test_stats_are_cell_means_and_stds_of_the_first_block() -> None:
    encoder = Encoder(get_preset('tiny').encoder).eval()
    x = torch.rand(2, 3, 30, 40)
    mu, logvar, stats = StatsEncoder(encoder)(x)
    first = encoder.features[:3](x)  # conv, BN, ReLU: 8 channels at 15 x 20
    assert first.shape[1:] == (8, 15, 20) and stats.shape == (2, 2 * 2 * 2 * 8)
    top_left = first[:, :, :8, :10]  # a 15-row block splits at round(7.5) = 8
    np.testing.assert_allclose(stats[:, :8], top_left.mean(dim=(2, 3)), atol=1e-6)
    np.testing.assert_allclose(stats[:, 8:16], top_left.std(dim=(2, 3), unbiased=False),
                               atol=1e-5)
    ref_mu, ref_logvar = encoder(x)
    assert torch.equal(mu, ref_mu) and torch.equal(logvar, ref_logvar)


@torch.no_grad()
def test_an_ensemble_concatenates_its_members_stats() -> None:
    members = [Encoder(get_preset('tiny').encoder).eval() for _ in range(2)]
    x = torch.rand(1, 3, 30, 40)
    both = StatsEncoder(EnsembleEncoder(members))(x)[2]
    np.testing.assert_allclose(both, torch.cat([StatsEncoder(m)(x)[2] for m in members], 1))
    assert StatsEncoder(EnsembleEncoder(members)).stats_dim() == 128


@pytest.mark.slow
def test_onnx_int8_and_eager_agree_on_the_stats(tiny_run: Path) -> None:
    bundle = bundle_from_run(tiny_run)
    assert bundle.manifest.model.stats_dim == 64
    assert bundle.manifest.model.output_names == ('mu', 'logvar', 'stats')
    frames = tiny_frames(64, seed=3).images
    batch = Preprocessor(bundle.manifest.input).batch(frames[:8])
    onnx_rows = encode_rows(EncoderSession(bundle), batch)
    _, model = load_run(tiny_run)
    eager_rows = encode_rows(TorchEncoder(model.encoder), batch)
    np.testing.assert_allclose(onnx_rows, eager_rows, atol=1e-4)
    quantised = quantize_static_bundle(bundle, frames)
    assert quantised.manifest.model.stats_dim == 64
    int8_stats = encode_rows(EncoderSession(quantised), batch)[:, 16:]
    fp32_stats = onnx_rows[:, 16:]
    # the stem and the stats stay float and read the float activations, not their uint8
    # round trip: the int8 model's stats are the fp32 model's
    np.testing.assert_allclose(int8_stats, fp32_stats, rtol=1e-4, atol=1e-5)
    graph = onnx.load_from_string(quantised.model_bytes).graph
    dequantised = {n.output[0] for n in graph.node if n.op_type == 'DequantizeLinear'}
    squares = [n for n in graph.node if n.op_type == 'Mul' and n.input[0] == n.input[1]]
    assert squares and not any(n.input[0] in dequantised for n in squares)
    # a fully quantised model (int8 stem) measures its uint8 activations: close, not equal
    all_int8 = quantize_static_bundle(bundle, frames, float_stem=False)
    coarse = encode_rows(EncoderSession(all_int8), batch)[:, 16:]
    assert np.abs(coarse - fp32_stats).mean() < 0.05 * np.abs(fp32_stats).mean() + 1e-3


@pytest.mark.slow
def test_the_monitor_decides_as_the_offline_evaluation(tiny_run: Path) -> None:
    """Generic partition, frame by frame online (Monitor) and in one batch offline."""
    bundle = bundle_from_run(tiny_run)
    calib = tiny_frames(240, seed=11, groups=8)
    bundle, report = calibrate(bundle, calib, CalibrationOptions(target_far=0.05, windows=(10,)))
    (generic,) = bundle.manifest.partitions
    assert generic.name == 'generic' and generic.density is not None
    assert report['partitions']['generic']['features'] == 64
    frames = tiny_frames(40, seed=12).images
    frames[20:] = 255 - frames[20:]  # a shift halfway
    monitor = Monitor(bundle, MonitorConfig(decision=DecisionMode.THRESHOLD, clear_frames=1))
    online = [monitor.process(f, i) for i, f in enumerate(frames)]
    offline = combined_score(bundle, encodings_of_images(bundle, frames))
    evidence = [max(s.evidence for s in d.partitions) for d in online]
    np.testing.assert_allclose(evidence, offline, rtol=1e-4, atol=1e-6)
    assert [d.alert for d in online] == list(offline > 1.0)
    assert sum(d.alert for d in online[20:]) >= 15 and not any(d.alert for d in online[:20])
