"""Test helpers shared across test folders: tiny real artifacts (ONNX graphs, bundles, frames).

A uniquely named module (not conftest.py) so that test files can import it unambiguously.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vae_ood_monitor.core.bundle import Bundle, sha256_hex
from vae_ood_monitor.core.manifest import CusumParams, Manifest, ModelInfo, Partition
from vae_ood_monitor.core.preprocess import InputSpec
from vae_ood_monitor.data.dataset import FrameArray

SHARED = Path(__file__).resolve().parents[2] / 'shared'
DONKEYCAR = SHARED / 'data' / 'donkeycar_mat_track'


def linear_weights(height: int = 12, width: int = 16, latent: int = 4,
                   seed: int = 0, planes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The Gemm weight and bias of :func:`linear_encoder_onnx` (for expected outputs)."""
    rng = np.random.default_rng(seed)
    features = planes * height * width
    weight = (rng.standard_normal((features, 2 * latent)) / np.sqrt(features)).astype(np.float32)
    weight[:, latent:] *= 0.1
    bias = np.zeros(2 * latent, np.float32)
    bias[latent:] = -1.0
    return weight, bias


def linear_encoder_onnx(height: int = 12, width: int = 16, latent: int = 4,
                        seed: int = 0, planes: int = 3) -> bytes:
    """A hand-built ONNX encoder: flatten -> Gemm -> (mu, logvar), deterministic weights."""
    import onnx
    from onnx import helper, numpy_helper, TensorProto

    weight, bias = linear_weights(height, width, latent, seed, planes)
    nodes = [
        helper.make_node('Flatten', ['image'], ['flat'], axis=1),
        helper.make_node('Gemm', ['flat', 'W', 'B'], ['out']),
        helper.make_node('Split', ['out', 'sizes'], ['mu', 'logvar'], axis=1),
    ]
    graph = helper.make_graph(
        nodes, 'linear_encoder',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT,
                                       ['batch', planes, height, width])],
        [helper.make_tensor_value_info('mu', TensorProto.FLOAT, ['batch', latent]),
         helper.make_tensor_value_info('logvar', TensorProto.FLOAT, ['batch', latent])],
        [numpy_helper.from_array(weight, 'W'), numpy_helper.from_array(bias, 'B'),
         numpy_helper.from_array(np.array([latent, latent], np.int64), 'sizes')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_bundle(height: int = 12, width: int = 16, latent: int = 4, *, calibrated: bool = True,
                cusum: CusumParams | None = None, seed: int = 0) -> Bundle:
    """A small bundle around :func:`linear_encoder_onnx`, calibrated on random scores."""
    model = linear_encoder_onnx(height, width, latent, seed)
    partitions: tuple[Partition, ...] = ()
    if calibrated:
        scores = np.random.default_rng(seed).gamma(4.0, 1.0, 500)
        partitions = (Partition('all', tuple(range(latent)), calibration_scores=scores,
                                threshold=float(np.quantile(scores, 0.99)), cusum=cusum),)
    manifest = Manifest(name='tiny-linear', input=InputSpec(height, width),
                        model=ModelInfo(sha256=sha256_hex(model), latent_dim=latent),
                        partitions=partitions)
    return Bundle(manifest, model)


def make_flow_bundle(flow: Any, height: int = 15, width: int = 20, latent: int = 4) -> Bundle:
    """A calibrated flow bundle around :func:`linear_encoder_onnx` reading ``flow`` stacks."""
    model = linear_encoder_onnx(height, width, latent, planes=flow.channels)
    scores = np.random.default_rng(0).gamma(4.0, 1.0, 500)
    partition = Partition('all', tuple(range(latent)), calibration_scores=scores,
                          threshold=float(np.quantile(scores, 0.99)))
    manifest = Manifest(name='tiny-flow', input=InputSpec(height, width),
                        model=ModelInfo(sha256=sha256_hex(model), latent_dim=latent),
                        partitions=(partition,), flow=flow)
    return Bundle(manifest, model)


def moving_frames(count: int, height: int = 480, width: int = 640, step: int = 8,
                  seed: int = 0) -> list[np.ndarray]:
    """A smooth random texture panning ``step`` pixels per frame to the right (RGB)."""
    import cv2

    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height // 8 + 1, (width + step * count) // 8 + 1, 3),
                           np.uint8)
    texture = cv2.resize(texture, (texture.shape[1] * 8, texture.shape[0] * 8),
                         interpolation=cv2.INTER_CUBIC)
    return [np.ascontiguousarray(texture[:height, step * (count - i):step * (count - i) + width])
            for i in range(count)]


def tiny_frames(n: int = 96, seed: int = 0, groups: int = 4) -> FrameArray:
    """Smooth random 30x40 RGB frames with some structure (a dark band like a road)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 200, size=(n, 1, 1, 3)).astype(np.float32)
    ramp = np.linspace(0.6, 1.2, 40, dtype=np.float32)[None, None, :, None]
    images = np.clip(base * ramp + rng.normal(0, 8, (n, 30, 40, 3)), 0, 255)
    images[:, 18:, 12:28] *= 0.3
    return FrameArray(images.astype(np.uint8), np.full(n, -1, np.int8),
                      np.arange(n, dtype=np.int64) * 50_000_000,
                      np.repeat(np.arange(groups, dtype=np.int32), n // groups),
                      tuple(f'g{i}' for i in range(groups)))


def bundle_for_frames(frames: list[np.ndarray], *, alert: bool, height: int = 12,
                      width: int = 16, latent: int = 4) -> Bundle:
    """A linear-encoder bundle calibrated so that ``frames`` all alert, or all do not."""
    from vae_ood_monitor.core.preprocess import Preprocessor
    from vae_ood_monitor.core.scoring import kl_per_dim
    from vae_ood_monitor.core.session import EncoderSession

    base = make_bundle(height, width, latent, calibrated=False)
    pre = Preprocessor(base.manifest.input)
    kl = kl_per_dim(*EncoderSession(base).encode(pre.batch(frames))).sum(axis=1)
    level = float(kl.min()) / 4 if alert else float(kl.max()) * 4
    scores = np.linspace(level * 0.5, level, 200)
    partition = Partition('all', tuple(range(latent)), calibration_scores=scores,
                          threshold=level)
    return base.with_manifest(partitions=(partition,))


def rows_with_kl(kl: np.ndarray, stats: np.ndarray | None = None) -> np.ndarray:
    """Encoding rows (mu, logvar[, stats]) whose per-dim KL is exactly ``kl`` (..., D).

    With logvar 0 the KL of a dim is mu**2 / 2, so mu = sqrt(2 kl).
    """
    kl = np.asarray(kl, np.float64)
    parts = [np.sqrt(2.0 * kl), np.zeros_like(kl)]
    if stats is not None:
        parts.append(np.asarray(stats, np.float64))
    return np.concatenate(parts, axis=-1)


#: Training flags for CLI tests: the tiny preset, one epoch, one thread, quiet.
TINY_TRAIN = ('--preset', 'tiny', '--epochs', '1', '--threads', '1', '--amp', 'off',
              '--no-progress')


def run_cli(capsys: Any, *argv: object) -> tuple[int, str, str]:
    """Run ``vae-ood ARGV`` in this process; return the exit code, stdout and stderr."""
    from vae_ood_monitor.cli.main import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
