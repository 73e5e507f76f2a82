"""Tests of vae_ood_monitor.core.martingale: the exact power martingale and its sliding window.

For n p-values with a = -sum(log p) the martingale is the integral over eps in (0, 1) of
eps**n * exp(a * (1 - eps)). The references here are scipy's quadrature of that integral (in
log space: log M = a + log of the integral of eps**n * exp(-a * eps), whose integrand is <= 1)
and the closed form n! * (exp(a) - sum_{j <= n} a**j / j!) / a**(n + 1).
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
from scipy import integrate, special

from vae_ood_monitor.core.martingale import log_power_martingale, PowerMartingale


def log_m_quad(p_values: np.ndarray) -> float:
    n = len(p_values)
    a = -float(np.sum(np.log(p_values)))
    peak = min(1.0, n / a) if a > 0 else 1.0
    value, _ = integrate.quad(lambda e: e ** n * math.exp(-a * e), 0.0, 1.0, points=[peak],
                              epsabs=0.0, epsrel=1e-12, limit=200)
    return a + math.log(value)


def log_m_closed_form(a: float, n: int) -> float:
    tail = math.exp(a) - sum(a ** j / math.factorial(j) for j in range(n + 1))
    return math.log(math.factorial(n) * tail / a ** (n + 1))


def log_m_gamma(a: float, n: int) -> float:
    """Via the regularised lower incomplete gamma function: stable for large a."""
    return (a + math.log(special.gammainc(n + 1, a)) + special.gammaln(n + 1)
            - (n + 1) * math.log(a))


@pytest.mark.parametrize('n', [1, 2, 5, 20, 200, 5000])
def test_all_ones_gives_minus_log_n_plus_one(n: int) -> None:
    assert log_power_martingale(0.0, n) == -math.log(n + 1)


def test_no_p_values_gives_zero() -> None:
    assert log_power_martingale(0.0, 0) == 0.0
    assert log_power_martingale(-5.0, 0) == 0.0


def test_positive_sum_is_clamped_to_zero() -> None:
    assert log_power_martingale(3.0, 4) == -math.log(5)


def test_negative_n_is_rejected() -> None:
    with pytest.raises(ValueError, match='n must be >= 0, got -1'):
        log_power_martingale(-1.0, -1)


@pytest.mark.parametrize('seed, n, low', [
    (0, 1, 0.0), (1, 5, 0.0), (2, 20, 0.0), (3, 20, -3.0), (4, 50, 0.0), (5, 100, -1.0),
    (6, 10, -6.0), (7, 3, -20.0),
])
def test_matches_quadrature(seed: int, n: int, low: float) -> None:
    # p-values log-uniform in [10**low, 1] (low = 0: uniform in (0, 1]).
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, n) if low == 0.0 else 10.0 ** rng.uniform(low, 0.0, n)
    p = np.clip(p, 1e-300, 1.0)
    expected = log_m_quad(p)
    got = log_power_martingale(float(np.sum(np.log(p))), n)
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize('a, n', [(0.5, 1), (1.0, 1), (math.log(100), 1), (2 * math.log(100), 2),
                                  (3 * math.log(100), 3), (10.0, 4), (30.0, 10)])
def test_matches_closed_form(a: float, n: int) -> None:
    assert log_power_martingale(-a, n) == pytest.approx(log_m_closed_form(a, n), rel=1e-9)


@pytest.mark.parametrize('a, n', [(100.0, 20), (1000.0, 20), (1e4, 200), (1.4e5, 200)])
def test_large_a_matches_incomplete_gamma(a: float, n: int) -> None:
    assert log_power_martingale(-a, n) == pytest.approx(log_m_gamma(a, n), rel=1e-8)


def test_smaller_p_values_give_larger_log_m() -> None:
    base = np.array([0.5, 0.3, 0.8, 0.1, 0.9])
    previous = log_power_martingale(float(np.log(base).sum()), base.size)
    for factor in (0.9, 0.5, 0.1, 1e-3, 1e-10, 1e-100):
        smaller = base.copy()
        smaller[3] *= factor
        current = log_power_martingale(float(np.log(smaller).sum()), base.size)
        assert current > previous
        previous = current


def test_monotone_in_a_for_fixed_n() -> None:
    values = [log_power_martingale(-a, 20) for a in np.linspace(0.0, 200.0, 101)]
    assert np.all(np.diff(values) > 0)


p_value = st.one_of(st.floats(min_value=1e-300, max_value=1.0, exclude_min=False),
                    st.sampled_from([1e-300, 5e-324, 1.0, 0.5]))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.lists(p_value, min_size=1, max_size=200))
def test_log_m_is_always_finite(window: int, p_values: list[float]) -> None:
    martingale = PowerMartingale(window)
    for p in p_values:
        value = martingale.update(p)
        assert math.isfinite(value)
    assert len(martingale) == min(window, len(p_values))
    assert value >= -math.log(len(martingale) + 1) - 1e-9


@pytest.mark.parametrize('n', [1, 20, 200])
@pytest.mark.parametrize('p', [1e-300, 5e-324, 1.0])
def test_extreme_windows_are_finite(n: int, p: float) -> None:
    value = log_power_martingale(n * math.log(p), n)
    assert math.isfinite(value)
    if p < 1.0:
        assert value > 0.0


def test_sliding_window_keeps_only_the_last_window() -> None:
    rng = np.random.default_rng(3)
    stream = rng.uniform(1e-4, 1.0, 37).tolist()
    window = 10
    martingale = PowerMartingale(window)
    for p in stream:
        last = martingale.update(p)
    assert len(martingale) == window
    fresh = PowerMartingale(window)
    for p in stream[-window:]:
        expected = fresh.update(p)
    assert last == expected
    assert last == log_power_martingale(math.fsum(math.log(p) for p in stream[-window:]), window)


def test_first_updates_grow_the_window() -> None:
    martingale = PowerMartingale(3)
    assert martingale.update(1.0) == -math.log(2)
    assert martingale.update(1.0) == -math.log(3)
    assert martingale.update(1.0) == -math.log(4)
    assert martingale.update(1.0) == -math.log(4)
    assert len(martingale) == 3


def test_reset_restores_the_start() -> None:
    martingale = PowerMartingale(5)
    for p in (0.01, 0.2, 0.003):
        martingale.update(p)
    martingale.reset()
    assert len(martingale) == 0
    assert martingale.update(0.04) == PowerMartingale(5).update(0.04)
    assert len(martingale) == 1


@pytest.mark.parametrize('p', [0.0, -0.1, 1.5, 1.0000001, math.nan, math.inf])
def test_invalid_p_value_is_rejected(p: float) -> None:
    martingale = PowerMartingale(5)
    with pytest.raises(ValueError, match=r'p-value must be in \(0, 1\]'):
        martingale.update(p)
    assert len(martingale) == 0


@pytest.mark.parametrize('window', [0, -1, 2.5])
def test_invalid_window_is_rejected(window: object) -> None:
    with pytest.raises(ValueError, match='window must be a positive integer'):
        PowerMartingale(window)  # type: ignore[arg-type]
