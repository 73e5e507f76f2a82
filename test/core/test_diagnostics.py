"""Diagnostics content built from a Monitor."""

from __future__ import annotations

import numpy as np

from vae_ood_monitor.core.diagnostics import camera_diagnostics, Level
from vae_ood_monitor.core.errors import ImageEncodingError
from vae_ood_monitor.core.monitor import Monitor, MonitorConfig
from vood_testing import make_bundle

FRAME = np.full((24, 32, 3), 100, np.uint8)


def _values(entry) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return dict(entry.values)


def test_running_camera_reports_latency_rates_counts_and_model() -> None:
    monitor = Monitor(make_bundle())
    for i in range(5):
        monitor.process(FRAME, i, camera='front')
    monitor.record_drop('front', 2)
    entry = camera_diagnostics(monitor, 'front', input_rate=30.0)
    values = _values(entry)
    # dropped frames: the monitor sees only part of the stream, which deserves a warning
    assert entry.level is Level.WARN and '2 stale frames dropped' in entry.message
    assert entry.name == 'vae_ood_monitor: front' and entry.hardware_id == 'front'
    for stage in ('decode', 'preprocess', 'inference', 'scoring', 'total'):
        for stat in ('p50', 'p99', 'max'):
            assert float(values[f'latency_{stage}_{stat}_ms']) >= 0.0
    assert values['frames_processed'] == '5' and values['frames_dropped'] == '2'
    assert values['input_rate_hz'] == '30.00'
    assert values['execution_provider'] == 'cpu'
    assert values['model_sha256'] == monitor.bundle.short_hash


def test_levels_for_failures_staleness_and_latency_budget() -> None:
    monitor = Monitor(make_bundle())
    bad = np.zeros((4, 4), np.uint8)
    try:
        monitor.process(bad, 0, camera='front')
    except ImageEncodingError:
        pass
    entry = camera_diagnostics(monitor, 'front')
    assert entry.level is Level.ERROR and _values(entry)['failed_ImageEncodingError'] == '1'
    monitor.process(FRAME, 1, camera='front')
    assert camera_diagnostics(monitor, 'front').level is Level.WARN
    assert camera_diagnostics(monitor, 'front', stale=True).level is Level.STALE
    other = Monitor(make_bundle())
    other.process(FRAME, 0, camera='c')
    assert camera_diagnostics(other, 'c', latency_budget_ms=1e-9).level is Level.WARN
    assert camera_diagnostics(other, 'c', latency_budget_ms=1e9).level is Level.OK


def test_stale_message_says_whether_any_frame_was_processed() -> None:
    monitor = Monitor(make_bundle())
    entry = camera_diagnostics(monitor, 'front', stale=True)
    assert (entry.level, entry.message) == (Level.STALE, 'no frame processed yet')
    try:
        monitor.process(np.zeros((4, 4), np.uint8), 0, camera='front')
    except ImageEncodingError:
        pass
    assert camera_diagnostics(monitor, 'front', stale=True).message == \
        'no frame processed yet, 1 failed'
    monitor.process(FRAME, 1, camera='front')
    entry = camera_diagnostics(monitor, 'front', stale=True)
    assert (entry.level, entry.message) == (Level.STALE, 'no frame processed recently, 1 failed')


def test_a_stale_camera_reports_the_alert_it_publishes() -> None:
    monitor = Monitor(make_bundle())
    entry = camera_diagnostics(monitor, 'front', stale=True, alert=True)
    assert entry.level is Level.STALE and _values(entry)['alert'] == 'true'
    assert entry.message == ('no frame processed yet; alert raised: the camera is not being '
                             'watched')
    assert _values(camera_diagnostics(monitor, 'front', stale=True))['alert'] == 'false'


def test_a_known_problem_is_an_error_with_its_reason() -> None:
    monitor = Monitor(make_bundle())
    entry = camera_diagnostics(monitor, 'front', stale=True, alert=True,
                               problem='no frames: incompatible QoS (RELIABILITY)',
                               extra=(('qos_incompatible', 'RELIABILITY'),))
    assert entry.level is Level.ERROR
    assert entry.message.startswith('no frames: incompatible QoS (RELIABILITY)')
    assert _values(entry)['qos_incompatible'] == 'RELIABILITY'


def test_a_camera_repeating_one_frame_is_an_error_with_its_count() -> None:
    assert 'frames_frozen' not in _values(_running(Monitor(make_bundle())))  # check off
    monitor = Monitor(make_bundle(), MonitorConfig(frozen_frames=3))
    for stamp in range(4):
        monitor.process(FRAME, stamp, camera='front')
    entry = camera_diagnostics(monitor, 'front')
    assert entry.level is Level.ERROR and _values(entry)['frames_frozen'] == '2'
    assert entry.message == ('the camera repeats one frame (at least 3 identical frames); '
                             'OOD alert (frozen)')
    monitor.process(FRAME // 2, 4, camera='front')  # alive again
    entry = camera_diagnostics(monitor, 'front')
    assert entry.level is Level.OK and _values(entry)['frames_frozen'] == '2'


def _running(monitor: Monitor):  # type: ignore[no-untyped-def]
    monitor.process(FRAME, 0, camera='front')
    return camera_diagnostics(monitor, 'front')
