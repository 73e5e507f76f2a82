"""Tests of vae_ood_monitor.core.stats: latency percentiles, rates and frame counters."""

from __future__ import annotations

from collections import Counter

import pytest

from vae_ood_monitor.core.stats import (Counts, Latency, LatencyStats, RateMeter, STAGES,
                                        StageSummary)


def latency(value: int) -> Latency:
    return Latency(value, 2 * value, 3 * value, 4 * value, 10 * value)


def test_latency_as_dict() -> None:
    assert latency(1).as_dict() == {'decode': 1, 'preprocess': 2, 'flow': 0, 'inference': 3,
                                    'scoring': 4, 'total': 10}
    assert Latency(1, 2, 3, 4, 15, flow=5).as_dict()['flow'] == 5
    assert tuple(latency(1).as_dict()) == STAGES


def test_percentiles_of_known_values() -> None:
    stats = LatencyStats(window=1000)
    for value in range(1, 101):
        stats.add(latency(value))
    assert len(stats) == 100
    summary = stats.summary()
    assert tuple(summary) == STAGES
    # Linear interpolation: p50 of 1..100 is 50.5, p99 is 99 + 0.01 = 99.01.
    assert summary['decode'] == StageSummary(50.5, pytest.approx(99.01), 100.0)
    assert summary['inference'] == StageSummary(151.5, pytest.approx(297.03), 300.0)
    assert summary['total'].peak == 1000.0


def test_window_wraps_around() -> None:
    stats = LatencyStats(window=10)
    for value in range(1, 26):
        stats.add(latency(value))
    assert len(stats) == 10
    summary = stats.summary()['decode']  # only 16..25 remain
    assert summary.p50 == 20.5
    assert summary.peak == 25.0
    assert summary.p99 == pytest.approx(24.91)


def test_single_value() -> None:
    stats = LatencyStats(window=3)
    stats.add(latency(7))
    assert stats.summary()['scoring'] == StageSummary(28.0, 28.0, 28.0)


def test_empty_summary_and_reset() -> None:
    stats = LatencyStats(window=5)
    assert stats.summary() == {}
    assert len(stats) == 0
    for value in (100, 200, 300):
        stats.add(latency(value))
    stats.reset()
    assert len(stats) == 0
    assert stats.summary() == {}
    stats.add(latency(1))
    assert stats.summary()['decode'].peak == 1.0  # the old values are gone


@pytest.mark.parametrize('window', [0, -1])
def test_invalid_window(window: int) -> None:
    with pytest.raises(ValueError, match='window must be positive'):
        LatencyStats(window)


def test_rate_meter() -> None:
    meter = RateMeter()
    assert meter.rate() == 0.0
    meter.tick(5)
    assert meter.rate() == 0.0  # fewer than two ticks
    meter = RateMeter()
    for i in range(10):
        meter.tick(1_000_000_000 + i * 100_000_000)  # 0.1 s apart
    assert meter.rate() == pytest.approx(10.0)


def test_rate_meter_window_and_degenerate_times() -> None:
    meter = RateMeter(window=3)
    for t in (0, 1_000_000_000, 1_500_000_000, 2_000_000_000):
        meter.tick(t)
    assert meter.rate() == pytest.approx(2.0)  # last three ticks: 2 intervals over 1 s
    same = RateMeter()
    same.tick(10)
    same.tick(10)
    assert same.rate() == 0.0


def test_rate_meter_falls_while_silent() -> None:
    meter = RateMeter()
    for i in range(10):
        meter.tick(i * 100_000_000)  # 10 Hz, the last tick at 0.9 s
    assert meter.rate(950_000_000) == pytest.approx(10.0)  # the next one is not due yet
    assert meter.rate(1_900_000_000) == pytest.approx(1.0)  # 1 s of silence: at most 1 Hz
    assert meter.rate(10_900_000_000) == pytest.approx(0.1)
    assert meter.rate(0) == pytest.approx(10.0)  # a time before the last tick is ignored
    assert meter.rate() == pytest.approx(10.0)  # without now_ns: the window alone
    meter.tick(11_000_000_000)  # it came back
    assert meter.rate(11_000_000_000) == pytest.approx(10 / 11)  # 10 intervals in 11 s
    single = RateMeter()
    single.tick(0)
    assert single.rate(5_000_000_000) == 0.0


def test_counts_merge() -> None:
    a = Counts(processed=5, dropped=1, failed=Counter({'ImageEncodingError': 2}), alerts=3)
    b = Counts(processed=7, failed=Counter({'ImageEncodingError': 1, 'BundleError': 4}))
    c = Counts(dropped=2, alerts=1)
    total = a.merge([b, c])
    assert (total.processed, total.dropped, total.alerts) == (12, 3, 4)
    assert total.failed == Counter({'ImageEncodingError': 3, 'BundleError': 4})
    assert total.failed_total == 7
    # The inputs are unchanged.
    assert a.failed == Counter({'ImageEncodingError': 2}) and a.processed == 5
    assert Counts().merge([]) == Counts()
    assert Counts().failed_total == 0
