"""Benchmarking the full Monitor path (evaluate/bench.py), in this process and in a child."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from vae_ood_monitor.core.bundle import save_bundle
from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.image import to_rgb8
from vae_ood_monitor.core.stats import STAGES
from vae_ood_monitor.evaluate.bench import (bench_models, BenchConfig, BenchResult,
                                            make_messages, peak_rss_mb, reset_peak_rss)
from vood_testing import make_bundle

CONFIG = BenchConfig(frames=20, warmup=2, width=160, height=120)
PLACEHOLDER = 'uncalibrated bundle: placeholder thresholds (timing only)'


@pytest.fixture(scope='module')
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('bench')
    return {'calibrated': save_bundle(make_bundle(120, 160), root / 'calibrated.vood'),
            'raw': save_bundle(make_bundle(120, 160, calibrated=False), root / 'raw.vood')}


def _check(result: BenchResult, path: Path) -> None:
    assert result.name == 'tiny-linear' and result.path == str(path)
    assert (result.runtime, result.provider, result.threads) == ('onnxruntime', 'cpu', 1)
    assert set(result.median_ms) == set(result.p99_ms) == set(STAGES)
    assert all(result.median_ms[s] > 0 for s in STAGES if s != 'flow')
    assert result.median_ms['flow'] == 0  # a frame bundle
    assert all(result.p99_ms[s] >= result.median_ms[s] for s in STAGES)
    assert result.median_ms['total'] >= result.median_ms['inference']
    assert result.frames == 20 and result.fps > 0
    assert result.size_bytes == path.stat().st_size
    assert result.peak_rss_mb > 0


def test_bench_in_this_process(models: dict[str, Path]) -> None:
    saved = os.environ.get('OMP_NUM_THREADS')
    calibrated, raw = bench_models([(str(models['calibrated']), None),
                                    (str(models['raw']), None)], CONFIG, isolate=False)
    _check(calibrated, models['calibrated'])
    _check(raw, models['raw'])
    assert PLACEHOLDER not in calibrated.notes and PLACEHOLDER in raw.notes
    assert os.environ.get('OMP_NUM_THREADS') == saved  # restored afterwards
    assert calibrated.as_dict()['median_ms'] == calibrated.median_ms


def test_bench_in_a_spawned_child(models: dict[str, Path]) -> None:
    (result,) = bench_models([(str(models['raw']), None)], CONFIG)
    _check(result, models['raw'])
    assert PLACEHOLDER in result.notes


def test_child_errors_come_back_as_one_line(tmp_path: Path) -> None:
    missing = tmp_path / 'missing.vood'
    with pytest.raises(ConfigError, match=f"Benchmark of '{missing}' failed: BundleError: "):
        bench_models([(str(missing), None)], CONFIG)


def die(_path: str, _threads: int) -> None:
    """A model loader whose process dies without a word (as a crash in native code would)."""
    os._exit(3)


def test_a_child_that_dies_is_reported(models: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r'failed: the benchmark process died \(exit code 3\)'):
        bench_models([(str(models['raw']), f'{__name__}:die')], CONFIG)


def test_bench_config_validation() -> None:
    with pytest.raises(ConfigError, match='frames 5 must be >= 10 and warmup 0 >= 0'):
        BenchConfig(frames=5, warmup=0)
    with pytest.raises(ConfigError, match='warmup -1 >= 0'):
        BenchConfig(warmup=-1)


@pytest.mark.parametrize(('encoding', 'step'), [('rgb8', 480), ('bgr8', 480), ('mono8', 160)])
def test_make_messages_raw(encoding: str, step: int) -> None:
    config = BenchConfig(width=160, height=120, encoding=encoding)
    messages = make_messages(config, count=3)
    assert len(messages) == 3
    for msg in messages:
        assert (msg.height, msg.width, msg.encoding, msg.step) == (120, 160, encoding, step)
        assert len(msg.data) == 120 * step
        assert to_rgb8(msg).shape == (120, 160, 3)
    assert messages[0].data != messages[1].data  # distinct frames of a drive
    rgb = [to_rgb8(m) for m in make_messages(BenchConfig(width=160, height=120), count=3)]
    if encoding == 'bgr8':  # the same pixels, channels swapped on the wire
        np.testing.assert_array_equal([to_rgb8(m) for m in messages], rgb)


def test_make_messages_jpeg() -> None:
    messages = make_messages(BenchConfig(width=160, height=120, encoding='jpeg'), count=2)
    assert all('jpeg' in m.format and m.data[:2] == b'\xff\xd8' for m in messages)
    raw = to_rgb8(make_messages(BenchConfig(width=160, height=120), count=1)[0])
    decoded = to_rgb8(messages[0])
    assert decoded.shape == (120, 160, 3)
    assert np.abs(decoded.astype(int) - raw).mean() < 8  # lossy, but the same frame


def test_peak_rss_can_be_reset_after_a_transient_allocation() -> None:
    block = np.ones(200 * 2 ** 20, np.uint8)  # 200 MB, touched
    high = peak_rss_mb()
    del block
    if not reset_peak_rss():
        pytest.skip('this kernel cannot reset the peak RSS (/proc/self/clear_refs)')
    assert peak_rss_mb() < high - 150
