"""Tests of vae_ood_monitor.core.cusum: S = max(0, S + log M - delta), alarm when S > tau."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
import pytest

from vae_ood_monitor.core.cusum import Cusum, CusumState


def run(cusum: Cusum, stream: list[float]) -> list[CusumState]:
    return [cusum.update(x) for x in stream]


def test_alarm_at_hand_computed_step() -> None:
    # delta 0.5, tau 3, log M = 1.5 every step: S = 1, 2, 3, 4; S = 3 is not > 3.
    states = run(Cusum(0.5, 3.0), [1.5] * 5)
    assert [s.statistic for s in states] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [s.alarm for s in states] == [False, False, False, True, True]


def test_statistic_never_negative() -> None:
    cusum = Cusum(0.5, 3.0)
    states = run(cusum, [-10.0, 2.5, -0.5, -3.0, 0.5, 1.0])
    # 0, 2, 1, 0 (not -2.5), 0 (0.5 - 0.5), 0.5
    assert [s.statistic for s in states] == [0.0, 2.0, 1.0, 0.0, 0.0, 0.5]
    assert not any(s.alarm for s in states)


def test_cap_bounds_the_statistic() -> None:
    cusum = Cusum(0.5, 3.0, cap=5.0)
    states = run(cusum, [10.0, 10.0, -0.5, -1.5])
    assert [s.statistic for s in states] == [5.0, 5.0, 4.0, 2.0]
    assert [s.alarm for s in states] == [True, True, True, False]


def test_cap_equal_to_tau_never_alarms() -> None:
    states = run(Cusum(0.0, 2.0, cap=2.0), [100.0] * 3)
    assert all(s.statistic == 2.0 and not s.alarm for s in states)


def test_reset_returns_to_zero() -> None:
    cusum = Cusum(0.5, 3.0)
    run(cusum, [4.0, 4.0])
    assert cusum.statistic == 7.0
    cusum.reset()
    assert cusum.statistic == 0.0
    assert cusum.update(1.5) == CusumState(1.0, False)


def test_infinite_log_martingale_is_capped() -> None:
    assert Cusum(0.5, 3.0, cap=6.0).update(math.inf) == CusumState(6.0, True)


def test_nan_log_martingale_is_rejected() -> None:
    cusum = Cusum(0.5, 3.0)
    with pytest.raises(ValueError, match='log martingale is NaN'):
        cusum.update(math.nan)
    assert cusum.statistic == 0.0


@pytest.mark.parametrize('delta, tau, cap, match', [
    (math.nan, 3.0, None, 'delta must be finite and tau positive'),
    (math.inf, 3.0, None, 'delta must be finite and tau positive'),
    (0.5, 0.0, None, 'delta must be finite and tau positive'),
    (0.5, -1.0, None, 'delta must be finite and tau positive'),
    (0.5, math.inf, None, 'delta must be finite and tau positive'),
    (0.5, math.nan, None, 'delta must be finite and tau positive'),
    (0.5, 3.0, 2.9, 'cap 2.9 must be >= tau 3.0'),
    (0.5, 3.0, math.nan, 'cap nan must be >= tau'),
])
def test_invalid_constructor_arguments(delta: float, tau: float, cap: float | None,
                                       match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Cusum(delta, tau, cap)


@pytest.mark.parametrize('statistic', [-1e-9, -1.0, math.inf, math.nan])
def test_cusum_state_validation(statistic: float) -> None:
    with pytest.raises(ValueError, match='CUSUM statistic must be finite and >= 0'):
        CusumState(statistic, False)


def test_cusum_state_accepts_zero() -> None:
    assert CusumState(0.0, False).statistic == 0.0


@given(st.lists(st.floats(-1e12, 1e12), max_size=300), st.floats(-10.0, 10.0),
       st.floats(0.01, 100.0))
def test_statistic_non_negative_and_finite(stream: list[float], delta: float,
                                           tau: float) -> None:
    # |log M| is at most window * 745 for p-values >= 5e-324, far inside this range.
    cusum = Cusum(delta, tau)
    for x in stream:
        state = cusum.update(x)
        assert state.statistic >= 0.0 and math.isfinite(state.statistic)
        assert state.alarm == (state.statistic > tau)


@given(st.lists(st.floats(allow_nan=False), max_size=100), st.floats(-10.0, 10.0),
       st.floats(0.01, 100.0), st.floats(1.0, 3.0))
def test_capped_statistic_stays_bounded_for_any_stream(stream: list[float], delta: float,
                                                       tau: float, factor: float) -> None:
    cusum = Cusum(delta, tau, cap=factor * tau)
    for x in stream:
        state = cusum.update(x)
        assert 0.0 <= state.statistic <= factor * tau
