"""Detection metrics and conformal thresholds (evaluate/metrics.py): hand-counted expectations."""

from __future__ import annotations

import math

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.evaluate.metrics import (conformal_threshold, conformal_threshold_low,
                                              detection_metrics, DetectionMetrics, fpr_at_tpr)

TOLERANCE = 1e-9


def test_perfect_separation() -> None:
    metrics = detection_metrics([1.0, 2.0, 3.0, 4.0], [5.0, 6.0], threshold=4.5)
    assert metrics.auroc == 1.0 and metrics.aupr == 1.0
    assert metrics.fpr_at_95_tpr == 0.0
    assert metrics.false_alarm_rate == 0.0 and metrics.detection_rate == 1.0
    assert (metrics.n_id, metrics.n_ood) == (4, 2)
    assert metrics.as_dict() == {'auroc': 1.0, 'aupr': 1.0, 'fpr_at_95_tpr': 0.0,
                                 'false_alarm_rate': 0.0, 'detection_rate': 1.0, 'n_id': 4,
                                 'n_ood': 2}


def test_rounding_never_leaves_the_unit_interval() -> None:
    # sklearn's average precision of this perfect separation sums to 1.0000000000000002
    metrics = detection_metrics([0.0], np.arange(1.0, 21.0), threshold=0.5)
    assert metrics.aupr == 1.0 and metrics.auroc == 1.0


def test_swapped_scores() -> None:
    metrics = detection_metrics([5.0, 6.0], [1.0, 2.0, 3.0], threshold=4.0)
    assert metrics.auroc == 0.0
    assert metrics.fpr_at_95_tpr == 1.0  # every ID frame alarms before the OOD ones are found
    assert metrics.false_alarm_rate == 1.0 and metrics.detection_rate == 0.0


def test_rates_at_threshold_are_strict() -> None:
    # 'score > threshold' alarms: a score equal to the threshold does not
    metrics = detection_metrics([1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 5.0, 6.0], threshold=3.0)
    assert metrics.false_alarm_rate == 0.25
    assert metrics.detection_rate == 0.5
    # of the 16 (id, ood) pairs, ood is larger in 11 and tied in 2 (counting one half each)
    assert metrics.auroc == pytest.approx(12 / 16)


def test_fpr_at_tpr_by_hand() -> None:
    id_scores = np.arange(10.0)  # 0..9
    ood_scores = np.arange(5.0, 25.0)  # 20 frames 5..24; 95 % TPR needs 19 of them: t = 6
    # at t = 6 the ID frames 6, 7, 8, 9 alarm (score >= t): FPR 4/10
    assert fpr_at_tpr(id_scores, ood_scores) == pytest.approx(0.4)
    assert fpr_at_tpr(id_scores, ood_scores, tpr=0.5) == 0.0  # t = 15 detects 10 of 20


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=1, max_size=40),
       st.lists(st.integers(0, 12), min_size=1, max_size=40),
       st.sampled_from([0.5, 0.8, 0.95]))
def test_fpr_at_tpr_is_the_best_threshold(id_scores: list[int], ood_scores: list[int],
                                          tpr: float) -> None:
    """The FPR of the highest threshold (score >= t) that reaches ``tpr``, counted directly."""
    ids, oods = np.asarray(id_scores, float), np.asarray(ood_scores, float)
    reached = [t for t in np.unique(np.r_[ids, oods]) if np.mean(oods >= t) >= tpr]
    expected = float(np.mean(ids >= max(reached)))
    assert fpr_at_tpr(ids, oods, tpr) == pytest.approx(expected)


def test_metrics_need_both_sets() -> None:
    with pytest.raises(CalibrationError, match='at least one in-distribution and one OOD'):
        detection_metrics([], [1.0], 0.5)
    with pytest.raises(CalibrationError, match='at least one in-distribution and one OOD'):
        detection_metrics([1.0], np.zeros(0), 0.5)


def test_metrics_validate_themselves() -> None:
    with pytest.raises(ValueError, match=r'auroc must be in \[0, 1\], got 1.5'):
        DetectionMetrics(1.5, 0.5, 0.5, 0.0, 1.0, 1, 1)


def test_conformal_thresholds_by_hand() -> None:
    scores = np.random.default_rng(0).permutation(np.arange(1.0, 100.0))  # 1..99, unsorted
    # upper: k = ceil(100 * 0.95) = 95 -> the 95th smallest score; P(S > 95) = 5 / 100
    assert conformal_threshold(scores, 0.05) == 95.0
    # lower: m = floor(100 * 0.05) - 1 = 4 -> c_5 = 5; P(S < 5) = 4 + 1 of 100 ranks = 5 / 100
    assert conformal_threshold_low(scores, 0.05) == 5.0
    # the smallest sample that certifies a = 0.1 has 9 scores: the largest / smallest one
    assert conformal_threshold(np.arange(9.0), 0.1) == 8.0
    assert conformal_threshold_low(np.arange(9.0), 0.1) == 0.0


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3000), st.floats(0.001, 0.49))
def test_conformal_threshold_finite_sample_guarantee(n: int, rate: float) -> None:
    """For distinct scores 0..n-1, a fresh exchangeable score has n + 1 equally likely ranks."""
    scores = np.arange(float(n))
    for threshold, tail in ((conformal_threshold, 'upper'), (conformal_threshold_low, 'lower')):
        try:
            value = threshold(scores, rate)
        except CalibrationError as err:
            assert (n + 1) * rate < 1 + TOLERANCE  # too few: not even an extreme is rare enough
            assert 'cannot certify' in str(err)
            continue
        # ranks of the new score beyond the threshold: above scores[value] or below it
        beyond = n - value if tail == 'upper' else value + 1
        assert beyond / (n + 1) <= rate + TOLERANCE
        assert (beyond + 1) / (n + 1) > rate - TOLERANCE  # the next score in would not do


def test_conformal_threshold_errors() -> None:
    with pytest.raises(CalibrationError, match=r'10 calibration frames cannot certify a '
                       r'false-alarm rate of 0.01: need at least 99'):
        conformal_threshold(np.arange(10.0), 0.01)
    with pytest.raises(CalibrationError, match=r'10 calibration frames cannot certify a '
                       r'false-alarm rate of 0.01: need at least 99'):
        conformal_threshold_low(np.arange(10.0), 0.01)


def test_thresholds_bound_the_empirical_rate() -> None:
    rng = np.random.default_rng(3)
    calibration = rng.gamma(4.0, 1.0, 1000)
    fresh = rng.gamma(4.0, 1.0, 200_000)
    rate = 0.02
    spread = 3 * math.sqrt(rate / len(calibration))
    upper, lower = conformal_threshold(calibration, rate), conformal_threshold_low(calibration,
                                                                                   rate)
    assert rate - spread < np.mean(fresh > upper) < rate + spread
    assert rate - spread < np.mean(fresh < lower) < rate + spread
