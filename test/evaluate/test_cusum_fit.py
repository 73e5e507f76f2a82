"""Sequential calibration (evaluate/cusum_fit.py): log martingales, CUSUM runs and the fit."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from vae_ood_monitor.core.cusum import Cusum
from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.core.manifest import Partition
from vae_ood_monitor.core.typedefs import Tail
from vae_ood_monitor.evaluate.cusum_fit import (_onset_counts, _rising_edges, _tau_for,
                                                DriveResolution, fit_cusum, log_m_ceiling,
                                                log_martingales, MIN_TAU, run_cusum, SequentialFit)

ONSET, LENGTH, WINDOW = 60, 120, 10


def _partition(tail: Tail = Tail.UPPER) -> Partition:
    scores = np.random.default_rng(0).gamma(4.0, 1.0, 1000)
    return Partition('all', (0, 1), calibration_scores=scores, threshold=float(scores.max()),
                     threshold_low=float(scores.min()), tail=tail)


def _id_sequences(count: int = 10, seed: int = 1) -> list[np.ndarray]:
    """In-distribution KL (T, 2) with iid per-frame noise: the dims sum to gamma(4, 1)."""
    rng = np.random.default_rng(seed)
    return [rng.gamma(2.0, 1.0, (LENGTH, 2)) for _ in range(count)]


def _shifted(count: int = 6, seed: int = 2) -> list[tuple[np.ndarray, int]]:
    """The same noise with a clear jump (scores x3) from frame ONSET on."""
    out = []
    for kl in _id_sequences(count, seed):
        kl[ONSET:] *= 3.0
        out.append((kl, ONSET))
    return out


def test_log_martingale_by_hand() -> None:
    part = Partition('p', (0,), calibration_scores=[1.0, 2.0, 3.0, 4.0], threshold=4.0)
    log_m = log_martingales(part, np.array([[5.0], [0.0]]), window=20)
    # p = 1/5, then 5/5. One p-value: M = integral of e p^(e-1) de = (1/p - 1 - a) / a^2 with
    # a = -log p; the second adds p = 1, so M = integral of e^2 p1^(e-1) de.
    a = math.log(5.0)
    assert log_m[0] == pytest.approx(math.log((5.0 - 1.0 - a) / a ** 2))
    grid = np.linspace(0.0, 1.0, 200_001)
    second = np.trapezoid(grid ** 2 * 0.2 ** (grid - 1.0), grid)
    assert log_m[1] == pytest.approx(math.log(second), rel=1e-6)
    # a window of one frame forgets the past: p = 1 gives M = 1/2
    assert log_martingales(part, np.array([[5.0], [0.0]]), window=1)[1] == pytest.approx(
        -math.log(2.0))


@pytest.mark.parametrize('tail', list(Tail))
def test_log_martingales_take_broken_scores_as_the_runtime_does(tail: Tail) -> None:
    # NaN / inf KL (broken encoder output) gets the smallest p-value in every tail, offline as
    # on the robot, so calibration and evaluation count the alarms the robot raises
    from vae_ood_monitor.core.detector import PartitionDetector
    from vae_ood_monitor.core.manifest import CusumParams
    from vae_ood_monitor.core.typedefs import DecisionMode

    part = Partition('p', (0, 1), calibration_scores=np.arange(1.0, 20.0), threshold=19.0,
                     threshold_low=1.0, tail=tail, cusum=CusumParams(WINDOW, 1.0, 10.0))
    kl = np.array([[3.0, 2.0], [np.nan, 1.0], [np.inf, 0.0], [-np.inf, 0.0], [4.0, 4.0]])
    detector = PartitionDetector(part, DecisionMode.CUSUM)
    online = [detector.update(row).log_martingale for row in kl]
    np.testing.assert_allclose(log_martingales(part, kl, WINDOW), online, rtol=1e-12)


def test_encoding_rows_and_raw_scores_give_what_per_dim_kl_gives() -> None:
    # the same sequences as per-dim KL, as encoding rows with their layout, or as raw scores
    from vae_ood_monitor.core.encoding import Layout
    from vood_testing import rows_with_kl

    part, layout = _partition(), Layout(2)
    id_sequences, shifted = _id_sequences(4), _shifted(3)
    kl = shifted[0][0]
    expected = log_martingales(part, kl, WINDOW)
    np.testing.assert_allclose(log_martingales(part, rows_with_kl(kl), WINDOW, layout),
                               expected, rtol=1e-9)
    np.testing.assert_array_equal(
        log_martingales(part, part.raw_scores(kl), WINDOW, raw=True), expected)
    fit = fit_cusum(part, id_sequences, shifted, window=WINDOW)
    as_rows = fit_cusum(part, [rows_with_kl(s) for s in id_sequences],
                        [(rows_with_kl(s), onset) for s, onset in shifted], window=WINDOW,
                        layout=layout)
    as_raw = fit_cusum(part, [part.raw_scores(s) for s in id_sequences],
                       [(part.raw_scores(s), onset) for s, onset in shifted], window=WINDOW,
                       raw=True)
    assert as_raw.as_dict() == fit.as_dict()
    assert (as_rows.params.window, as_rows.missed, as_rows.id_alarms) == (
        fit.params.window, fit.missed, fit.id_alarms)
    assert as_rows.params.delta == pytest.approx(fit.params.delta, rel=1e-9)
    assert as_rows.params.tau == pytest.approx(fit.params.tau, rel=1e-9)


def test_log_martingale_follows_the_tail() -> None:
    low = np.array([[0.01, 0.01]] * 5)  # far below every calibration score
    assert log_martingales(_partition(Tail.LOWER), low, WINDOW)[-1] > 3.0
    assert log_martingales(_partition(Tail.UPPER), low, WINDOW)[-1] < 0.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-20, 20), min_size=1, max_size=60), st.floats(-2, 5),
       st.floats(0.1, 30), st.none() | st.floats(1.0, 3.0))
def test_run_cusum_equals_core_cusum(log_m: list[float], delta: float, tau: float,
                                     cap: float | None) -> None:
    cap = None if cap is None else cap * tau
    statistics = run_cusum(np.asarray(log_m), delta, tau, cap)
    cusum = Cusum(delta, tau, cap)
    expected = [cusum.update(v).statistic for v in log_m]
    np.testing.assert_array_equal(statistics, expected)
    assert (statistics >= 0).all()


def test_fit_gives_no_false_alarms_and_detects_every_shift() -> None:
    part, id_sequences, shifted = _partition(), _id_sequences(), _shifted()
    fit = fit_cusum(part, id_sequences, shifted, window=WINDOW)
    params = fit.params
    assert fit.partition == 'all' and params.window == WINDOW
    assert params.cap == 2.0  # the cap alarms were counted with travels in the manifest
    assert fit_cusum(part, id_sequences[:3], shifted[:2], window=WINDOW,
                     cusum_cap=1.5).params.cap == 1.5
    assert (fit.id_frames, fit.id_sequences, fit.validation_sequences) == (1200, 10, 6)
    assert fit.id_alarms == 0 and fit.missed == 0
    assert fit.median_delay <= 10 and fit.p95_delay <= 15
    cap = 2.0 * params.tau
    for kl in id_sequences:  # checked again with the runtime's classes
        statistic = run_cusum(log_martingales(part, kl, WINDOW), params.delta, params.tau, cap)
        assert not (statistic > params.tau).any()
    delays = []
    for kl, onset in shifted:
        statistic = run_cusum(log_martingales(part, kl, WINDOW), params.delta, params.tau, cap)
        delays.append(int(np.flatnonzero(statistic[onset:] > params.tau)[0]))
    assert fit.median_delay == np.median(delays)
    # the chosen candidate is listed, and no candidate with zero alarms detects more, faster
    chosen = next(c for c in fit.candidates if c['delta'] == params.delta)
    assert chosen['tau'] == params.tau
    assert all((c['missed'], c['median_delay']) >= (0, fit.median_delay)
               for c in fit.candidates if c['id_alarms'] == 0)


def test_fit_chooses_the_window_that_detects_soonest() -> None:
    """Several candidate windows: every (window, delta) is tried, the fastest detector wins."""
    part, id_sequences, shifted = _partition(), _id_sequences(), _shifted()
    single = {w: fit_cusum(part, id_sequences, shifted, window=w) for w in (3, WINDOW, 40)}
    both = fit_cusum(part, id_sequences, shifted, window=(40, 3, WINDOW))
    assert {c['window'] for c in both.candidates} == {3, WINDOW, 40}
    assert len(both.candidates) == sum(len(f.candidates) for f in single.values())
    chosen = single[both.params.window]
    assert both.params == chosen.params and both.median_delay == chosen.median_delay
    assert both.ceiling == pytest.approx(log_m_ceiling(part, both.params.window))
    assert both.id_alarms == 0 and both.missed == 0
    assert both.median_delay == min(f.median_delay for f in single.values() if f.missed == 0)
    assert f'window {both.params.window},' in both.describe()
    # the chosen window is what the runtime replays: its detector gives the reported delay
    params, delays = both.params, []
    for kl, onset in shifted:
        statistic = run_cusum(log_martingales(part, kl, params.window), params.delta,
                              params.tau, 2.0 * params.tau)
        delays.append(int(np.flatnonzero(statistic[onset:] > params.tau)[0]))
    assert both.median_delay == np.median(delays)
    with pytest.raises(CalibrationError, match='windows'):
        fit_cusum(part, id_sequences, shifted, window=(0, 5))


def test_tau_sits_just_above_the_in_distribution_maximum() -> None:
    part, id_sequences = _partition(), _id_sequences()
    margin = 0.25
    fit = fit_cusum(part, id_sequences, _shifted(), window=WINDOW, margin=margin,
                    quantiles=(0.9,), spreads=())
    (candidate,) = fit.candidates
    pooled = np.concatenate([log_martingales(part, kl, WINDOW) for kl in id_sequences])
    assert candidate['delta'] == pytest.approx(np.quantile(pooled, 0.9))
    highest = max(run_cusum(log_martingales(part, kl, WINDOW), candidate['delta'], 1e300).max()
                  for kl in id_sequences)
    assert candidate['tau'] == pytest.approx(max(MIN_TAU, highest * (1 + margin)))


def test_allowed_alarms_lower_tau() -> None:
    """target_rate x ID frames alarm onsets are allowed: 1200 x 2.5e-3 = 3."""
    part, id_sequences, shifted = _partition(), _id_sequences(), _shifted()
    strict = fit_cusum(part, id_sequences, shifted, window=WINDOW, quantiles=(0.5,), margin=0.0,
                       spreads=())
    loose = fit_cusum(part, id_sequences, shifted, window=WINDOW, quantiles=(0.5,), margin=0.0,
                      target_rate=2.5e-3, spreads=())
    assert strict.id_alarms == 0
    assert 0 < loose.id_alarms <= 3
    assert loose.params.tau < strict.params.tau
    assert loose.median_delay <= strict.median_delay


def _tau_by_scanning(statistics: list[np.ndarray], allowed: int, margin: float) -> float:
    """The definition: scan levels down, count onsets frame by frame, stop at the first excess."""
    tau = max(float(s.max()) for s in statistics)
    if allowed > 0:
        for level in np.unique(np.concatenate(statistics))[::-1][1:]:
            if sum(_rising_edges(s > level) for s in statistics) > allowed:
                break
            tau = float(level)
    return max(MIN_TAU, tau * (1.0 + margin))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.0, 3.5, 7.0, 40.0]),
                         min_size=1, max_size=30), min_size=1, max_size=6),
       st.integers(0, 8), st.sampled_from([0.0, 0.25]))
def test_tau_equals_the_level_scan(values: list[list[float]], allowed: int,
                                   margin: float) -> None:
    """Counting onsets per level by binary search gives the frame-by-frame scan's tau exactly
    (ties, zeros and plateaus included: CUSUM statistics are full of them)."""
    statistics = [np.asarray(v, float) for v in values]
    assert _tau_for(statistics, allowed, margin) == _tau_by_scanning(statistics, allowed, margin)


def test_onset_counts_by_hand() -> None:
    """0 3 1 3 0 5: above 0.5 two onsets (frames 1, 5), above 2 three (1, 3, 5), above 4 one."""
    statistic = np.array([0.0, 3.0, 1.0, 3.0, 0.0, 5.0])
    levels = np.array([-1.0, 0.5, 2.0, 3.0, 4.0, 5.0])
    assert _onset_counts([statistic], levels).tolist() == [1, 2, 3, 1, 1, 0]
    assert _onset_counts([statistic, statistic], levels).tolist() == [2, 4, 6, 2, 2, 0]


@pytest.mark.parametrize('tail', [Tail.UPPER, Tail.LOWER, Tail.TWO_SIDED])
def test_log_m_ceiling_is_a_window_of_the_smallest_p_value(tail: Tail) -> None:
    part = _partition(tail)
    extreme = np.full((WINDOW + 5, 2), 0.0 if tail is Tail.LOWER else 1e6)
    reached = log_martingales(part, extreme, WINDOW)
    assert reached.max() == pytest.approx(log_m_ceiling(part, WINDOW))
    assert reached[WINDOW - 1:] == pytest.approx(log_m_ceiling(part, WINDOW))
    # by hand for one p-value: p = 1/5 (four scores), M = (1/p - 1 - a) / a^2 with a = -log p
    four = Partition('p', (0,), calibration_scores=[1.0, 2.0, 3.0, 4.0], threshold=4.0)
    a = math.log(5.0)
    assert log_m_ceiling(four, 1) == pytest.approx(math.log((5.0 - 1.0 - a) / a ** 2))


def test_a_fit_says_when_its_partition_can_never_alarm() -> None:
    part, shifted = _partition(), _shifted()
    fit = fit_cusum(part, _id_sequences(), shifted, window=WINDOW)
    assert fit.can_alarm and fit.ceiling == pytest.approx(log_m_ceiling(part, WINDOW))
    assert fit.id_max_log_m < fit.ceiling and 'WARNING' not in fit.describe()
    # one held-out drive sits far outside the calibration scores throughout (a scene the
    # encoder finds as novel as a shift): every drift that keeps it quiet is above the ceiling
    novel = _id_sequences() + [np.full((LENGTH, 2), 1e6)]
    dead = fit_cusum(part, novel, shifted, window=WINDOW)
    assert dead.id_max_log_m == pytest.approx(dead.ceiling)
    assert not dead.can_alarm and dead.params.delta >= dead.ceiling
    assert dead.id_alarms == 0 and dead.missed == len(shifted)
    assert dead.as_dict()['can_alarm'] is False
    assert dead.describe().startswith(f'partition all: window {WINDOW}, CUSUM delta ')
    assert ('WARNING: it can never alarm: held-out in-distribution drives reach log M '
            f'{dead.ceiling:.1f} of the {dead.ceiling:.1f} that a stream far outside the '
            'calibration scores reaches' in dead.describe())


def test_as_dict_is_json_safe() -> None:
    part, id_sequences = _partition(), _id_sequences()
    hopeless = [(kl, ONSET) for kl in _id_sequences(2, seed=3)]  # no shift: never detected
    fit = fit_cusum(part, id_sequences, hopeless, window=WINDOW)
    assert fit.missed == 2 and math.isinf(fit.median_delay)
    data = fit.as_dict()
    assert data['median_delay'] is None and data['p95_delay'] is None
    assert all(c['median_delay'] is None for c in data['candidates'])
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)['window'] == WINDOW and 'delta' in data and 'tau' in data
    assert isinstance(fit, SequentialFit)


def test_fit_errors() -> None:
    part = _partition()
    with pytest.raises(CalibrationError, match='needs held-out in-distribution sequences'):
        fit_cusum(part, [], _shifted(1))
    with pytest.raises(CalibrationError, match='needs held-out in-distribution sequences'):
        fit_cusum(part, [np.zeros((0, 2))], _shifted(1))
    with pytest.raises(CalibrationError, match='validation sequences with a shift'):
        fit_cusum(part, _id_sequences(1), [])
    with pytest.raises(CalibrationError, match='Only 30 in-distribution frames for sequential '
                       'calibration with window 20'):
        fit_cusum(part, [np.ones((30, 2))], _shifted(1), window=20)


def test_drive_resolution_hand_computed() -> None:
    # 100 drives of 50 frames, 6 partitions: 6 / (101 * 50) alarms per frame at best
    few = DriveResolution(100, 6, 50.0, 1e-4)
    assert few.rate == pytest.approx(6 / 5050)
    assert few.drives_needed == 1199  # 6 / (1e-4 * 50) = 1200 = drives + 1
    assert not few.sufficient
    assert 'cannot vouch for fewer than ~12 false alarms per 10,000' in few.describe()
    assert 'needs about 1199 such drives' in few.describe()
    enough = DriveResolution(1199, 6, 50.0, 1e-4)
    assert enough.sufficient and enough.rate == pytest.approx(1e-4)
    assert 'is within reach' in enough.describe()
    # one partition on long drives needs few of them
    assert DriveResolution(5, 1, 10_000.0, 1e-4).drives_needed == 1
    assert json.loads(json.dumps(few.as_dict()))['drives_needed'] == 1199
