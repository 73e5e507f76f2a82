"""Tests of vae_ood_monitor.core.detector: PartitionDetector (both modes) and AlertLatch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vae_ood_monitor.core.detector import AlertLatch, Decider, PartitionDetector, PartitionState
from vae_ood_monitor.core.errors import CalibrationError, ConfigError
from vae_ood_monitor.core.manifest import CusumParams, Partition
from vae_ood_monitor.core.martingale import log_power_martingale
from vae_ood_monitor.core.typedefs import DecisionMode

CAL = [4.0, 1.0, 3.0, 2.0]  # sorted: 1, 2, 3, 4 (N = 4)


def partition(cusum: CusumParams | None = None, **kwargs: object) -> Partition:
    kwargs.setdefault('calibration_scores', CAL)
    kwargs.setdefault('threshold', 2.5)
    return Partition('p', (0, 2), cusum=cusum, **kwargs)  # type: ignore[arg-type]


def kl(d0: float, d2: float) -> np.ndarray:
    """A per-dim KL vector whose partition (dims 0 and 2) score is d0 + d2."""
    return np.array([d0, 100.0, d2, 100.0])


# --- threshold mode ------------------------------------------------------------------------------

@pytest.mark.parametrize('d0, d2, score, k, triggered', [
    (1.0, 2.0, 3.0, 2, True),       # 3 > 2.5; cal >= 3: {3, 4}
    (1.0, 1.5, 2.5, 2, False),      # equal to the threshold is not above it
    (1.25, 1.25 + 1e-9, 2.5 + 1e-9, 2, True),
    (0.5, 0.5, 1.0, 4, False),      # tie with the minimum counts as >=
    (5.0, 5.0, 10.0, 0, True),      # beyond all calibration: p = 1/(N+1)
    (0.0, 0.0, 0.0, 4, False),
])
def test_threshold_mode(d0: float, d2: float, score: float, k: int, triggered: bool) -> None:
    detector = PartitionDetector(partition(), DecisionMode.THRESHOLD)
    state = detector.update(kl(d0, d2))
    assert state.name == 'p'
    assert state.score == pytest.approx(score, abs=1e-12)
    assert state.p_value == (k + 1) / 5
    assert state.triggered is triggered
    assert state.log_martingale == log_power_martingale(math.log(state.p_value), 1)
    assert state.statistic == 0.0  # no CUSUM parameters, no CUSUM


def test_threshold_mode_keeps_cusum_statistic_for_diagnostics() -> None:
    part = partition(CusumParams(3, 1.0, 10.0), calibration_scores=np.linspace(0, 0.99, 99))
    detector = PartitionDetector(part, DecisionMode.THRESHOLD)
    state = detector.update(kl(50.0, 50.0))
    assert state.triggered and state.p_value == 1 / 100
    # log M = log((100 - 1 - a) / a**2) with a = log 100 (= 1.493); S = log M - delta.
    a = math.log(100)
    assert state.statistic == pytest.approx(math.log((100 - 1 - a) / a ** 2) - 1.0, rel=1e-12)


def test_cusum_mode_requires_cusum_parameters() -> None:
    with pytest.raises(CalibrationError, match="Partition 'p' has no CUSUM parameters"):
        PartitionDetector(partition(), DecisionMode.CUSUM)


@pytest.mark.parametrize('kwargs', [{'calibration_scores': []}, {'threshold': None}])
def test_uncalibrated_partition_is_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(CalibrationError, match="Partition 'p' is not calibrated.*vae-ood "
                                               'calibrate'):
        PartitionDetector(partition(**kwargs), DecisionMode.THRESHOLD)


# --- cusum mode ----------------------------------------------------------------------------------

def test_cusum_mode_alarms_at_the_predicted_step() -> None:
    # N = 99 calibration scores in [0, 1); every frame scores 1000, so p = 1/100 each frame.
    # window 3, delta 1, tau 10, cap 2 * tau = 20. With a = n * log 100:
    #   log M = 1.493 (n=1), 3.237 (n=2), 5.104 (n >= 3)
    #   S     = 0.493,       2.730,       6.834, 10.937 -> alarm first at frame 4.
    params = CusumParams(window=3, delta=1.0, tau=10.0)
    part = partition(params, calibration_scores=np.linspace(0.0, 0.99, 99), threshold=0.9)
    detector = PartitionDetector(part, DecisionMode.CUSUM, cusum_cap=2.0)
    expected_s = 0.0
    triggered = []
    for frame in range(1, 8):
        state = detector.update(kl(500.0, 500.0))
        assert state.p_value == 1 / 100
        n = min(frame, 3)
        log_m = log_power_martingale(n * math.log(1 / 100), n)
        assert state.log_martingale == pytest.approx(log_m, rel=1e-12)
        expected_s = min(20.0, max(0.0, expected_s + log_m - 1.0))
        assert state.statistic == pytest.approx(expected_s, rel=1e-12)
        triggered.append(state.triggered)
    assert triggered == [False, False, False, True, True, True, True]
    assert state.statistic == 20.0  # capped at cusum_cap * tau


@pytest.mark.parametrize('stored, override, bound', [(2.0, None, 20.0), (1.5, None, 15.0),
                                                     (1.5, 3.0, 30.0)])
def test_cusum_cap_comes_from_the_bundle_unless_overridden(stored: float,
                                                           override: float | None,
                                                           bound: float) -> None:
    part = partition(CusumParams(window=3, delta=1.0, tau=10.0, cap=stored),
                     calibration_scores=np.linspace(0.0, 0.99, 99), threshold=0.9)
    detector = PartitionDetector(part, DecisionMode.CUSUM, cusum_cap=override)
    for _ in range(20):
        state = detector.update(kl(500.0, 500.0))
    assert state.statistic == bound


def test_cusum_params_cap_is_validated_and_stored() -> None:
    assert CusumParams(3, 1.0, 10.0).to_dict()['cap'] == 2.0  # older manifests: the old default
    assert CusumParams(**CusumParams(3, 1.0, 10.0, cap=1.25).to_dict()).cap == 1.25
    for bad in (0.5, math.nan, math.inf):
        with pytest.raises(ConfigError, match='CUSUM cap .* must be finite and >= 1'):
            CusumParams(3, 1.0, 10.0, cap=bad)


def test_cusum_mode_ignores_the_per_frame_threshold() -> None:
    part = partition(CusumParams(3, 1.0, 10.0))
    detector = PartitionDetector(part, DecisionMode.CUSUM)
    state = detector.update(kl(50.0, 50.0))  # far above threshold 2.5
    assert not state.triggered


def test_reset_clears_sequential_state() -> None:
    part = partition(CusumParams(3, 1.0, 10.0), calibration_scores=np.linspace(0, 0.99, 99))
    detector = PartitionDetector(part, DecisionMode.CUSUM)
    first = detector.update(kl(500.0, 500.0))
    for _ in range(5):
        detector.update(kl(500.0, 500.0))
    assert detector.cusum is not None and detector.cusum.statistic > 10.0
    detector.reset()
    assert len(detector.martingale) == 0
    assert detector.cusum.statistic == 0.0
    again = detector.update(kl(500.0, 500.0))
    assert again == first


def test_partition_state_validation() -> None:
    with pytest.raises(ValueError, match=r'p-value must be in \(0, 1\]'):
        PartitionState('p', 1.0, 0.0, 0.0, 0.0, False)
    with pytest.raises(ValueError, match='CUSUM statistic must be >= 0 and log M finite'):
        PartitionState('p', 1.0, 0.5, math.inf, 0.0, False)
    with pytest.raises(ValueError, match='CUSUM statistic must be >= 0 and log M finite'):
        PartitionState('p', 1.0, 0.5, 0.0, -1.0, False)


# --- AlertLatch ----------------------------------------------------------------------------------

def feed(latch: AlertLatch, triggers: str) -> str:
    """Feed a string of '1' (trigger) / '0' (quiet) and return the alert states likewise."""
    return ''.join('1' if latch.update(t == '1') else '0' for t in triggers)


def test_latch_raises_immediately_and_clears_after_quiet_frames() -> None:
    # The third consecutive quiet frame is the first one reported clear.
    assert feed(AlertLatch(3), '0010000') == '0011100'


def test_latch_retrigger_resets_the_quiet_count() -> None:
    assert feed(AlertLatch(3), '1001001000') == '1111111110'


def test_latch_clear_frames_one_clears_on_first_quiet_frame() -> None:
    assert feed(AlertLatch(1), '0110100') == '0110100'
    assert feed(AlertLatch(), '10') == '10'


def test_latch_reset() -> None:
    latch = AlertLatch(5)
    latch.update(True)
    latch.update(False)
    latch.reset()
    assert not latch.active
    assert feed(latch, '1' + '0' * 5) == '111110'


@pytest.mark.parametrize('clear_frames', [0, -1, 1.5, None])
def test_latch_invalid_clear_frames(clear_frames: object) -> None:
    with pytest.raises(ValueError, match='clear_frames must be a positive integer'):
        AlertLatch(clear_frames)  # type: ignore[arg-type]


def test_decider_ors_partitions_and_reports_which_fired() -> None:
    low = Partition('low', (0,), calibration_scores=np.arange(1.0, 11.0), threshold=5.0)
    high = Partition('high', (2,), calibration_scores=np.arange(1.0, 11.0), threshold=5.0)
    decider = Decider([low, high], DecisionMode.THRESHOLD, clear_frames=2)
    states, fired, alert = decider.update(kl(1.0, 9.0))
    assert fired == ('high',) and alert
    assert [s.name for s in states] == ['low', 'high']
    states, fired, alert = decider.update(kl(1.0, 1.0))
    assert fired == () and alert  # hysteresis: one quiet frame is not enough
    assert decider.update(kl(1.0, 1.0))[2] is False
    assert decider.update(kl(6.0, 6.0))[1] == ('low', 'high')


def test_decider_run_equals_stepwise_updates() -> None:
    part = partition(CusumParams(5, 0.5, 3.0), calibration_scores=np.linspace(0.5, 3.0, 100))
    rows = np.array([kl(a, b) for a, b in [(0.5, 0.5)] * 5 + [(9.0, 9.0)] * 10 + [(0.5, 0.5)] * 5])
    stepwise = Decider([part], DecisionMode.CUSUM)
    expected = [stepwise.update(r) for r in rows]
    result = Decider([part], DecisionMode.CUSUM).run(rows)
    assert result['alert'].tolist() == [e[2] for e in expected]
    assert result['p.statistic'].tolist() == [e[0][0].statistic for e in expected]
    assert set(result) == {'alert', 'triggered', 'p.score', 'p.p_value', 'p.log_m',
                           'p.statistic', 'p.triggered'}
    assert result['p.triggered'].tolist() == [e[0][0].triggered for e in expected]
    assert result['p.triggered'].tolist() == result['triggered'].tolist()  # one partition
    assert result['alert'][:5].sum() == 0 and result['alert'][10]


def test_non_finite_scores_are_treated_as_out_of_distribution() -> None:
    detector = PartitionDetector(partition(), DecisionMode.THRESHOLD)
    state = detector.update(kl(math.nan, 1.0))
    assert state.triggered and state.p_value == pytest.approx(1 / (len(CAL) + 1))


def test_lower_and_two_sided_tails_trigger_below_the_low_threshold() -> None:
    lower = Partition('low', (0, 2), calibration_scores=CAL, threshold_low=1.5, tail='lower')
    two = Partition('two', (0, 2), calibration_scores=CAL, threshold=3.5, threshold_low=1.5,
                    tail='two_sided')
    for part in (lower, two):
        detector = PartitionDetector(part, DecisionMode.THRESHOLD)
        state = detector.update(kl(0.5, 0.5))  # score 1.0 < 1.5
        assert state.triggered  # evidence: log(median / score) / log(median / threshold_low)
        assert state.evidence == pytest.approx(math.log(2.5 / 1.0) / math.log(2.5 / 1.5))
        assert state.p_value == pytest.approx(0.8 if part is two else 0.4)  # cal <= 1: {1}
        assert not detector.update(kl(1.0, 1.0)).triggered  # score 2.0
    assert PartitionDetector(two, DecisionMode.THRESHOLD).update(kl(2.0, 2.0)).triggered
    assert not PartitionDetector(lower, DecisionMode.THRESHOLD).update(kl(2.0, 2.0)).triggered


def test_decider_with_a_layout_takes_encoding_rows_and_generic_partitions() -> None:
    from vae_ood_monitor.core.density import DensityModel
    from vae_ood_monitor.core.encoding import Layout
    from vood_testing import rows_with_kl

    layout = Layout(4, stats_dim=2)
    kls = np.array([kl(a, b) for a, b in [(0.5, 0.5), (2.0, 1.5), (9.0, 9.0)]])
    stats = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.5]])
    rows = rows_with_kl(kls, stats)  # (3, 10): mu, logvar and two statistics
    # a KL partition scores the same with encoding rows and a layout as with per-dim KL
    with_layout = Decider([partition()], DecisionMode.THRESHOLD, layout=layout).run(rows)
    plain = Decider([partition()], DecisionMode.THRESHOLD).run(kls)
    np.testing.assert_allclose(with_layout['p.score'], plain['p.score'])
    assert with_layout['alert'].tolist() == plain['alert'].tolist() == [False, True, True]
    # a generic partition scores the whole row: here the length of the statistics
    density = DensityModel(columns=(8, 9), centre=np.zeros(2), whitening=np.eye(2),
                           method='mahalanobis', groups=('stats',))
    generic = Partition('g', (), calibration_scores=CAL, threshold=2.5, density=density)
    result = Decider([partition(), generic], DecisionMode.THRESHOLD, layout=layout).run(rows)
    np.testing.assert_allclose(result['g.score'], [0.0, 5.0, 0.5])
    assert result['g.triggered'].tolist() == [False, True, False]
    with pytest.raises(ValueError, match='generic partitions needs the encoding layout'):
        Decider([generic], DecisionMode.THRESHOLD)
    with pytest.raises(ValueError, match="partition 'g' scores encoding rows; pass row="):
        PartitionDetector(generic, DecisionMode.THRESHOLD).update(kls[0])
