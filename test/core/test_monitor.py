"""Tests of vae_ood_monitor.core.monitor: frames in, decisions out, per-camera state.

The fixture bundle's encoder takes 12x16 frames. Messages are built by hand (SimpleNamespace)
or with vae_ood_monitor.data.messages; every encoding of the same picture must give the same KL
as the plain numpy RGB frame.
"""

from __future__ import annotations

from pathlib import Path
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from vae_ood_monitor.core.bundle import Bundle
from vae_ood_monitor.core.detector import PartitionState
from vae_ood_monitor.core.errors import (BundleError, CalibrationError, ConfigError,
                                         ImageEncodingError)
from vae_ood_monitor.core.manifest import CusumParams, Partition
from vae_ood_monitor.core.monitor import Decision, FROZEN, Monitor, MonitorConfig
from vae_ood_monitor.core.session import SessionConfig
from vae_ood_monitor.core.stats import STAGES
from vae_ood_monitor.core.typedefs import DecisionMode
from vae_ood_monitor.data.messages import compress_rgb, encode_rgb
from vood_testing import make_bundle

FAST = SessionConfig(warmup=0)


def picture(height: int = 12, width: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 1)


def raw(image: np.ndarray, encoding: str, padding: int = 0) -> SimpleNamespace:
    """A sensor_msgs/Image built by hand from an (h, w, c) uint8 array already in ``encoding``."""
    height, width = image.shape[:2]
    rows = image.reshape(height, -1)
    if padding:
        rows = np.concatenate([rows, np.full((height, padding), 7, np.uint8)], axis=1)
    return SimpleNamespace(height=height, width=width, encoding=encoding, is_bigendian=0,
                           step=rows.shape[1], data=rows.tobytes())


class FakeEncoder:
    """An injected encoder: mu = ``level`` in every dim, logvar = 0; records its inputs."""

    def __init__(self, latent: int = 4) -> None:
        self.latent = latent
        self.level = 0.0
        self.batches: list[np.ndarray] = []

    def encode(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.batches.append(batch.copy())
        n = batch.shape[0]
        return (np.full((n, self.latent), self.level, np.float32),
                np.zeros((n, self.latent), np.float32))


@pytest.fixture(scope='module')
def monitor() -> Monitor:
    return Monitor(make_bundle(), MonitorConfig(session=FAST))


@pytest.fixture(scope='module')
def reference_kl(monitor: Monitor) -> np.ndarray:
    return monitor.process(picture(), 0, camera='reference').kl


# --- one frame -----------------------------------------------------------------------------------

def test_process_numpy_frame(bundle: Bundle) -> None:
    monitor = Monitor(bundle, MonitorConfig(session=FAST))
    decision = monitor.process(picture(), stamp_ns=123)
    assert isinstance(decision, Decision)
    assert decision.camera == 'camera' and decision.stamp_ns == 123
    assert decision.kl.shape == (4,) and decision.kl.dtype == np.float64
    assert np.all(decision.kl >= 0)
    assert decision.score == pytest.approx(float(decision.kl.sum()), rel=1e-12)
    assert decision.mode is DecisionMode.THRESHOLD
    assert len(decision.partitions) == 1
    state = decision.partitions[0]
    assert isinstance(state, PartitionState) and state.name == 'all'
    assert state.score == pytest.approx(decision.score, rel=1e-12)
    assert 0.0 < state.p_value <= 1.0
    assert decision.fired == (('all',) if state.triggered else ())
    assert decision.alert is state.triggered
    times = decision.latency.as_dict()
    assert all(times[s] >= 0 for s in STAGES)
    assert decision.latency.total >= decision.latency.inference
    assert decision.latency.total == sum(times[s] for s in STAGES[:-1])
    assert monitor.provider == 'cpu'
    assert monitor.last_decision('camera') is decision
    assert monitor.counts('camera').processed == 1
    assert len(monitor.latency('camera')) == 1


def test_kl_matches_the_encoder_directly(monitor: Monitor, reference_kl: np.ndarray) -> None:
    batch = picture().transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255)
    mu, logvar = monitor.encoder.encode(batch)
    kl = 0.5 * (mu[0].astype(np.float64) ** 2 + np.exp(logvar[0]) - logvar[0] - 1.0)
    np.testing.assert_allclose(reference_kl, kl, rtol=1e-6)


@pytest.mark.parametrize('message', [
    lambda rgb: raw(rgb, 'rgb8'),
    lambda rgb: raw(np.ascontiguousarray(rgb[:, :, ::-1]), 'bgr8'),
    lambda rgb: raw(np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 9, np.uint8)], 2),
                    'rgba8'),
    lambda rgb: raw(np.concatenate([rgb[:, :, ::-1], np.zeros((*rgb.shape[:2], 1), np.uint8)],
                                   2), 'bgra8'),
    lambda rgb: raw(rgb, 'rgb8', padding=5),
    lambda rgb: raw(np.ascontiguousarray(rgb[:, :, ::-1]), 'bgr8', padding=3),
    lambda rgb: encode_rgb(rgb, 'rgb8'),
    lambda rgb: encode_rgb(rgb, 'bgr8', padding=4),
    lambda rgb: encode_rgb(rgb, 'rgba8'),
    lambda rgb: encode_rgb(rgb, 'rgb16'),
    lambda rgb: encode_rgb(rgb, 'bgr16', big_endian=True),
    lambda rgb: compress_rgb(rgb, 'png'),
], ids=['rgb8', 'bgr8', 'rgba8', 'bgra8', 'rgb8-padded', 'bgr8-padded', 'encode-rgb8',
        'encode-bgr8-padded', 'encode-rgba8', 'rgb16', 'bgr16-be', 'png'])
def test_every_encoding_gives_the_same_kl(monitor: Monitor, reference_kl: np.ndarray,
                                          message) -> None:
    decision = monitor.process(message(picture()), 1, camera='encodings')
    np.testing.assert_allclose(decision.kl, reference_kl, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8'])
def test_large_messages_are_resized_like_numpy_frames(monitor: Monitor, encoding: str) -> None:
    rgb = picture(48, 64, seed=3)
    expected = monitor.process(rgb, 0, camera='large').kl
    decision = monitor.process(encode_rgb(rgb, encoding, padding=2), 1, camera='large')
    np.testing.assert_allclose(decision.kl, expected, rtol=1e-6, atol=1e-12)


def test_mono8_message(monitor: Monitor) -> None:
    grey = picture()[:, :, 1]
    decision = monitor.process(raw(grey[:, :, None], 'mono8'), 0, camera='mono')
    expected = monitor.process(np.repeat(grey[:, :, None], 3, axis=2), 1, camera='mono').kl
    assert decision.kl.shape == (4,)
    np.testing.assert_allclose(decision.kl, expected, rtol=1e-6, atol=1e-12)


# --- bad frames ----------------------------------------------------------------------------------

@pytest.mark.parametrize('frame, match', [
    (SimpleNamespace(height=12, width=16, encoding='rgb9', is_bigendian=0, step=48,
                     data=bytes(576)), "encoding 'rgb9' is not supported"),
    (SimpleNamespace(height=12, width=16, encoding='rgb8', is_bigendian=0, step=48,
                     data=bytes(500)), 'data holds 500 bytes.*truncated'),
    (SimpleNamespace(format='png', data=b'not a png'), 'png'),
    (np.zeros((12, 16), np.uint8), r'numpy frame must be an \(h, w, 3\) uint8 RGB array'),
    (np.zeros((12, 16, 4), np.uint8), r'numpy frame must be an \(h, w, 3\) uint8 RGB array'),
    (np.zeros((12, 16, 3), np.float32), 'dtype float32'),
    (object(), "type 'object' has neither an 'encoding' field"),
], ids=['unknown-encoding', 'truncated', 'bad-png', 'numpy-2d', 'numpy-4ch', 'numpy-float',
        'object'])
def test_bad_frames_are_counted(frame: object, match: str) -> None:
    monitor = Monitor(make_bundle(), MonitorConfig(session=FAST), encoder=FakeEncoder())
    with pytest.raises(ImageEncodingError, match=match):
        monitor.process(frame, 0, camera='front')
    counts = monitor.counts('front')
    assert counts.failed['ImageEncodingError'] == 1
    assert counts.processed == 0
    assert monitor.last_decision('front') is None
    assert monitor.encoder.batches == []  # type: ignore[attr-defined]


# --- per-camera state ----------------------------------------------------------------------------

def test_counts_and_independent_cameras() -> None:
    encoder = FakeEncoder()
    monitor = Monitor(make_bundle(), MonitorConfig(session=FAST), encoder=encoder)
    assert monitor.provider == 'custom'
    assert monitor.last_decision('left') is None
    assert monitor.cameras == []  # asking for a decision does not create a camera
    for i in range(3):
        monitor.process(picture(), i, camera='left')
    last_right = monitor.process(picture(seed=1), 10, camera='right')
    assert monitor.cameras == ['left', 'right']
    assert monitor.counts('left').processed == 3
    assert monitor.counts('right').processed == 1
    assert monitor.last_decision('left').stamp_ns == 2  # type: ignore[union-attr]
    assert monitor.last_decision('right') is last_right
    monitor.record_drop('left', count=4)
    monitor.record_drop()
    monitor.record_failure('right', BundleError('x'))
    monitor.record_failure('right', RuntimeError('y'))
    with pytest.raises(ImageEncodingError):
        monitor.process(np.zeros(3, np.uint8), 0, camera='right')
    assert monitor.counts('left').dropped == 4
    assert monitor.counts('camera').dropped == 1
    right = monitor.counts('right')
    assert dict(right.failed) == {'BundleError': 1, 'RuntimeError': 1, 'ImageEncodingError': 1}
    total = monitor.counts()
    assert (total.processed, total.dropped, total.failed_total) == (4, 5, 3)
    assert len(monitor.latency('left')) == 3
    assert monitor.processed_rate('left') >= 0.0
    assert len(encoder.batches) == 4


def test_processed_rate_falls_when_frames_stop(bundle: Bundle,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0]
    monkeypatch.setattr(time, 'monotonic_ns', lambda: now[0])
    monitor = Monitor(bundle, MonitorConfig(session=FAST))
    for i in range(10):  # 20 Hz, the last frame at 0.45 s
        now[0] = i * 50_000_000
        monitor.process(picture(), stamp_ns=i)
    now[0] = 475_000_000
    assert monitor.processed_rate('camera') == pytest.approx(20.0)
    now[0] = 4_450_000_000
    assert monitor.processed_rate('camera') == pytest.approx(0.25)  # silent for 4 s


def test_fake_encoder_receives_the_preprocessed_frame() -> None:
    encoder = FakeEncoder()
    monitor = Monitor(make_bundle(), MonitorConfig(session=FAST), encoder=encoder)
    image = np.full((24, 32, 3), 51, np.uint8)
    encoder.level = 2.0
    decision = monitor.process(image, 0)
    assert encoder.batches[0].shape == (1, 3, 12, 16)
    assert np.all(encoder.batches[0] == np.float32(51) / np.float32(255))
    assert decision.kl.tolist() == [2.0] * 4  # 0.5 * mu**2 with logvar 0
    assert decision.score == 8.0


def test_alerts_latch_and_reset_one_camera_only() -> None:
    encoder = FakeEncoder()
    config = MonitorConfig(session=FAST, clear_frames=10)
    monitor = Monitor(make_bundle(), config, encoder=encoder)
    encoder.level = 100.0  # KL 5000 per dim: far above the threshold
    for camera in ('a', 'b'):
        decision = monitor.process(picture(), 0, camera=camera)
        assert decision.alert and decision.fired == ('all',)
    encoder.level = 0.0  # KL 0: quiet, but the latch holds for 10 frames
    assert monitor.process(picture(), 1, camera='a').alert
    assert monitor.counts('a').alerts == 2
    monitor.reset('a')
    assert not monitor.process(picture(), 2, camera='a').alert
    assert monitor.process(picture(), 2, camera='b').alert
    monitor.reset()
    assert not monitor.process(picture(), 3, camera='b').alert
    assert monitor.counts('a').processed == 3  # reset keeps the counters


def test_cusum_state_is_per_camera_and_reset() -> None:
    encoder = FakeEncoder()
    monitor = Monitor(make_bundle(cusum=CusumParams(20, 0.5, 5.0)),
                      MonitorConfig(session=FAST), encoder=encoder)
    encoder.level = 100.0
    for _ in range(4):
        a = monitor.process(picture(), 0, camera='a')
    b = monitor.process(picture(), 0, camera='b')
    assert a.partitions[0].statistic > b.partitions[0].statistic > 0.0
    monitor.reset('a')
    again = monitor.process(picture(), 0, camera='a')
    assert again.partitions[0].statistic == pytest.approx(b.partitions[0].statistic)


# --- a frozen stream -----------------------------------------------------------------------------

def test_identical_frames_raise_the_frozen_trigger_only_when_asked() -> None:
    encoder = FakeEncoder()  # KL 0: the detector itself stays quiet throughout
    still, other = picture(seed=1), picture(seed=2)
    off = Monitor(make_bundle(), MonitorConfig(session=FAST), encoder=encoder)
    assert not any(off.process(still, i).alert for i in range(20))
    monitor = Monitor(make_bundle(), MonitorConfig(session=FAST, frozen_frames=3),
                      encoder=encoder)
    decisions = [monitor.process(still.copy(), i) for i in range(4)]
    assert [d.alert for d in decisions] == [False, False, True, True]
    assert decisions[2].fired == (FROZEN,) and monitor.counts().frozen == 2
    # one changed frame ends it at once (no hysteresis: the stream is alive again) ...
    assert not monitor.process(other, 4).alert
    # ... and the count starts again from that frame
    assert [monitor.process(other, 5 + i).alert for i in range(2)] == [False, True]


def test_the_frozen_check_is_per_camera_and_cleared_by_a_reset() -> None:
    monitor = Monitor(make_bundle(), MonitorConfig(session=FAST, frozen_frames=2),
                      encoder=FakeEncoder())
    still = picture(seed=3)
    assert not monitor.process(still, 0, camera='a').alert
    assert not monitor.process(still, 0, camera='b').alert  # b's first frame, whatever a saw
    assert monitor.process(still, 1, camera='a').alert
    monitor.reset('a')
    assert not monitor.process(still, 2, camera='a').alert
    assert monitor.process(still, 2, camera='b').alert


def test_nearly_identical_frames_are_not_frozen() -> None:
    monitor = Monitor(make_bundle(), MonitorConfig(session=FAST, frozen_frames=2),
                      encoder=FakeEncoder())
    frame = np.full((12, 16, 3), 128, np.uint8)
    for i in range(10):  # sensor noise: one pixel differs by one grey level each frame
        noisy = frame.copy()
        noisy[i, i, 0] += 1
        assert not monitor.process(noisy, i).alert


# --- configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize('kwargs, match', [
    ({'decision': 'maybe'}, "decision 'maybe' must be one of: threshold, cusum"),
    ({'clear_frames': 0}, 'clear_frames 0 must be an integer >= 1'),
    ({'clear_frames': 2.0}, 'clear_frames 2.0 must be an integer >= 1'),
    ({'cusum_cap': 0.5}, 'cusum_cap 0.5 must be >= 1'),
    ({'cusum_cap': float('nan')}, 'cusum_cap nan must be >= 1'),
    ({'stats_window': 0}, 'stats_window 0 must be a positive integer'),
    ({'frozen_frames': 1}, r'frozen_frames 1 must be 0 \(off\) or an integer >= 2'),
    ({'frozen_frames': -3}, r'frozen_frames -3 must be 0 \(off\)'),
    ({'frozen_frames': True}, r'frozen_frames True must be 0 \(off\)'),
    ({'frozen_frames': 2.5}, r'frozen_frames 2.5 must be 0 \(off\)'),
])
def test_monitor_config_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        MonitorConfig(**kwargs)  # type: ignore[arg-type]


def test_monitor_config_normalises() -> None:
    config = MonitorConfig(decision='cusum', partitions=['a', 'b'])  # type: ignore[arg-type]
    assert config.decision is DecisionMode.CUSUM
    assert config.partitions == ('a', 'b')
    assert MonitorConfig(partitions='all').partitions == ('all',)  # type: ignore[arg-type]


def test_uncalibrated_bundle_is_rejected() -> None:
    with pytest.raises(CalibrationError, match="'tiny-linear' is not calibrated.*calibrate"):
        Monitor(make_bundle(calibrated=False), MonitorConfig(session=FAST))


def test_partition_without_threshold_is_rejected() -> None:
    bundle = make_bundle(calibrated=False).with_manifest(
        partitions=(Partition('all', (0, 1, 2, 3), calibration_scores=[1.0, 2.0]),))
    with pytest.raises(CalibrationError, match="Partition 'all' is not calibrated"):
        Monitor(bundle, MonitorConfig(session=FAST))


def test_decision_defaults_to_threshold_without_cusum_parameters(bundle: Bundle) -> None:
    monitor = Monitor(bundle, MonitorConfig(session=FAST), encoder=FakeEncoder())
    assert monitor.mode is DecisionMode.THRESHOLD
    assert monitor.process(picture(), 0).mode is DecisionMode.THRESHOLD


def test_decision_defaults_to_cusum_with_cusum_parameters() -> None:
    monitor = Monitor(make_bundle(cusum=CusumParams(20, 0.5, 5.0)), MonitorConfig(session=FAST),
                      encoder=FakeEncoder())
    assert monitor.mode is DecisionMode.CUSUM
    forced = Monitor(make_bundle(cusum=CusumParams(20, 0.5, 5.0)),
                     MonitorConfig(decision='threshold', session=FAST),  # type: ignore
                     encoder=FakeEncoder())
    assert forced.mode is DecisionMode.THRESHOLD


def test_decision_threshold_when_only_some_partitions_have_cusum() -> None:
    scores = np.arange(10.0)
    bundle = make_bundle().with_manifest(partitions=(
        Partition('a', (0, 1), calibration_scores=scores, threshold=8.0,
                  cusum=CusumParams(20, 0.5, 5.0)),
        Partition('b', (2, 3), calibration_scores=scores, threshold=8.0)))
    assert Monitor(bundle, MonitorConfig(session=FAST),
                   encoder=FakeEncoder()).mode is DecisionMode.THRESHOLD
    only_a = Monitor(bundle, MonitorConfig(session=FAST, partitions=('a',)),
                     encoder=FakeEncoder())
    assert only_a.mode is DecisionMode.CUSUM
    assert [s.name for s in only_a.process(picture(), 0).partitions] == ['a']
    with pytest.raises(CalibrationError, match="Partition 'b' has no CUSUM parameters"):
        Monitor(bundle, MonitorConfig(decision='cusum', session=FAST),  # type: ignore
                encoder=FakeEncoder())


def test_unknown_partition_name_is_rejected(bundle: Bundle) -> None:
    with pytest.raises(ConfigError, match=r"Partition\(s\) \['nope'\] not in the bundle; it has "
                                          r"\['all'\]"):
        Monitor(bundle, MonitorConfig(session=FAST, partitions=('all', 'nope')))


def test_monitor_accepts_a_bundle_path(bundle_path: Path) -> None:
    for path in (str(bundle_path), bundle_path):
        monitor = Monitor(path, MonitorConfig(session=FAST))
        assert monitor.bundle.path == bundle_path
        assert monitor.process(picture(), 0).kl.shape == (4,)


def test_monitor_missing_bundle_path(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match='does not exist'):
        Monitor(str(tmp_path / 'missing.vood'))
