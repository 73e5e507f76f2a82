"""Tests of vae_ood_monitor.core.scoring: per-dim KL, partition scores and conformal p-values."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
import numpy as np
import pytest

from vae_ood_monitor.core.scoring import (conformal_p_value, conformal_p_values, kl_per_dim,
                                          partition_scores)

LOG4 = math.log(4.0)


@pytest.mark.parametrize('mu, logvar, expected', [
    (0.0, 0.0, 0.0),                                  # posterior == prior
    (2.0, 0.0, 2.0),                                  # 0.5 * mu^2
    (-2.0, 0.0, 2.0),
    (0.0, LOG4, 0.5 * (4.0 - LOG4 - 1.0)),            # variance 4
    (0.0, -LOG4, 0.5 * (0.25 + LOG4 - 1.0)),          # variance 1/4
    (2.0, LOG4, 0.5 * (4.0 + 4.0 - LOG4 - 1.0)),
    (1.0, 1.0, 0.5 * (1.0 + math.e - 1.0 - 1.0)),
])
def test_kl_per_dim_by_hand(mu: float, logvar: float, expected: float) -> None:
    assert kl_per_dim(mu, logvar) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_kl_whole_expression_is_halved() -> None:
    # The known bug 0.5*mu^2 + exp(lv) - lv - 1 agrees with the right formula when lv = 0, so
    # check a variance != 1: right 0.5*(4 - log 4 - 1) = 0.807, buggy 4 - log 4 - 1 = 1.614.
    right = 0.5 * (4.0 - LOG4 - 1.0)
    buggy = 4.0 - LOG4 - 1.0
    got = float(kl_per_dim(0.0, LOG4))
    assert got == pytest.approx(right, rel=1e-12)
    assert got != pytest.approx(buggy)
    got = float(kl_per_dim(2.0, LOG4))
    assert got == pytest.approx(0.5 * (4.0 + 4.0 - LOG4 - 1.0), rel=1e-12)
    assert got != pytest.approx(0.5 * 4.0 + 4.0 - LOG4 - 1.0)


def test_kl_broadcasts_and_is_float64() -> None:
    mu = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]], np.float32)
    logvar = np.array([[0.0, 0.0, LOG4], [0.0, 0.0, 0.0]], np.float32)
    kl = kl_per_dim(mu, logvar)
    assert kl.shape == (2, 3) and kl.dtype == np.float64
    np.testing.assert_allclose(kl, [[0.0, 2.0, 0.5 * (4.0 - LOG4 - 1.0)], [0.5, 0.0, 0.0]],
                               rtol=1e-6, atol=1e-12)
    # A (D,) logvar broadcasts against (N, D) mu.
    np.testing.assert_allclose(kl_per_dim(mu, np.zeros(3)), 0.5 * mu.astype(np.float64) ** 2)


@pytest.mark.parametrize('logvar', [1e-6, -1e-6, 1e-9, -4.9e-12, 1e-200])
def test_kl_near_the_prior_is_accurate(logvar: float) -> None:
    # exp(lv) - lv - 1 = lv**2 / 2 + lv**3 / 6 + ...; a naive evaluation cancels to 0 or below.
    assert kl_per_dim(0.0, logvar) == pytest.approx(logvar ** 2 / 4, rel=1e-5)


@given(st.floats(-50, 50), st.floats(-30, 30))
def test_kl_is_non_negative(mu: float, logvar: float) -> None:
    assert kl_per_dim(mu, logvar) >= 0.0


def test_partition_scores() -> None:
    kl = np.array([1.0, 2.0, 4.0, 8.0])
    np.testing.assert_array_equal(partition_scores(kl, [(0, 2), (1,), (0, 1, 2, 3)]),
                                  [5.0, 2.0, 15.0])
    batch = np.stack([kl, 10 * kl])
    scores = partition_scores(batch, [[3], [0, 1]])
    assert scores.shape == (2, 2)
    np.testing.assert_array_equal(scores, [[8.0, 3.0], [80.0, 30.0]])


CAL = np.array([1.0, 2.0, 2.0, 3.0])  # N = 4


@pytest.mark.parametrize('score, k', [
    (0.5, 4),    # below everything: p = 1
    (1.0, 4),    # tie with the minimum counts as >=
    (1.5, 3),
    (2.0, 3),    # ties with both 2.0 values
    (2.5, 1),
    (3.0, 1),    # tie with the maximum
    (3.5, 0),    # above everything: p = 1 / (N + 1)
    (math.inf, 0),
    (-math.inf, 4),
])
def test_conformal_p_value_exact(score: float, k: int) -> None:
    assert conformal_p_value(CAL, score) == (k + 1) / 5


def test_conformal_p_value_bounds() -> None:
    cal = np.arange(99.0)
    assert conformal_p_value(cal, 1e9) == 1 / 100
    assert conformal_p_value(cal, -1e9) == 1.0
    assert conformal_p_value(np.zeros(0), 3.0) == 1.0  # no calibration: nothing is extreme


def test_conformal_p_values_equals_scalar_version() -> None:
    cal = np.sort(np.random.default_rng(0).gamma(2.0, 1.0, 50).round(1))
    scores = np.concatenate([cal[::3], np.linspace(-1, 12, 40)])
    vector = conformal_p_values(cal, scores)
    assert vector.shape == scores.shape and vector.dtype == np.float64
    assert vector.tolist() == [conformal_p_value(cal, s) for s in scores]
    assert conformal_p_values(CAL, [[1.0, 3.5]]).tolist() == [[1.0, 0.2]]


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(st.lists(finite, max_size=200).map(sorted), finite)
def test_p_value_in_unit_interval(calibration: list[float], score: float) -> None:
    cal = np.array(calibration, dtype=np.float64)
    p = conformal_p_value(cal, score)
    assert 0.0 < p <= 1.0
    assert p >= 1.0 / (cal.size + 1)
    k = sum(c >= score for c in calibration)
    assert p == (k + 1) / (cal.size + 1)
    assert conformal_p_values(cal, [score])[0] == p


@pytest.mark.parametrize('score, upper, lower, two', [
    (2.0, 4 / 5, 3 / 5, 1.0),     # cal 1, 2, 3, 4: >= 2 -> 3; <= 2 -> 2
    (0.5, 5 / 5, 1 / 5, 2 / 5),
    (9.0, 1 / 5, 5 / 5, 2 / 5),
])
def test_conformal_p_value_tails(score: float, upper: float, lower: float, two: float) -> None:
    cal = np.array([1.0, 2.0, 3.0, 4.0])
    assert conformal_p_value(cal, score, 'upper') == pytest.approx(upper)
    assert conformal_p_value(cal, score, 'lower') == pytest.approx(lower)
    assert conformal_p_value(cal, score, 'two_sided') == pytest.approx(two)
    for tail in ('upper', 'lower', 'two_sided'):
        vector = conformal_p_values(cal, np.array([score]), tail)[0]
        assert vector == pytest.approx(conformal_p_value(cal, score, tail))


def test_conformal_p_value_rejects_unknown_tail() -> None:
    with pytest.raises(ValueError, match='tail'):
        conformal_p_value(np.array([1.0]), 0.5, 'sideways')
