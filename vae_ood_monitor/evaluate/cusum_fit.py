"""Calibrating the sequential test: CUSUM drift (delta) and threshold (tau) per partition.

For one partition, held-out in-distribution sequences give the log-martingale values the
detector sees on normal driving; validation sequences with a shift starting part-way give the
values it sees when things go wrong. For every candidate martingale window and delta (quantiles
of the in-distribution log M), tau is set just above what in-distribution sequences reach
(allowing at most ``target_rate`` alarms per frame, with a safety ``margin``), and the
detection delay on the validation sequences is measured with exactly the runtime's detector
classes. The (window, delta) with fewest missed sequences, then the shortest median delay,
wins.

``target_rate`` is one partition's budget. The alert is the OR of the partitions, so k
partitions fitted to r each could alarm up to k r times per frame together: calibration gives
each partition ``alarm_rate / k`` (Bonferroni), so that the alert meets ``alarm_rate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.cusum import Cusum
from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.core.manifest import CusumParams
from vae_ood_monitor.core.martingale import log_power_martingale, PowerMartingale
from vae_ood_monitor.core.scoring import conformal_p_values, monitor_p_values
from vae_ood_monitor.evaluate.spans import first_detection

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from vae_ood_monitor.core.encoding import Layout
    from vae_ood_monitor.core.manifest import Partition

__all__ = ['DELTA_QUANTILES', 'DELTA_SPREADS', 'DriveResolution', 'SequentialFit',
           'candidate_windows', 'fit_cusum', 'log_m_ceiling', 'log_martingales', 'run_cusum']

#: Candidate deltas: these quantiles of the in-distribution log-martingale values.
DELTA_QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
#: ... and the maximum plus these multiples of (maximum - median).
DELTA_SPREADS = (0.1, 0.25, 0.5)
MIN_TAU = 1.0


@dataclass(frozen=True)
class SequentialFit:
    """The chosen CUSUM parameters of one partition and the evidence behind them."""

    partition: str
    params: CusumParams
    id_frames: int
    id_sequences: int
    id_alarms: int
    median_delay: float
    p95_delay: float
    missed: int
    validation_sequences: int
    candidates: list[dict[str, float]] = field(default_factory=list)
    #: the highest log M any stream can reach (:func:`log_m_ceiling`)
    ceiling: float = math.inf
    #: the highest log M of the in-distribution sequences
    id_max_log_m: float = -math.inf
    #: this partition's share of the alert's false-alarm budget (alarms per frame)
    target_rate: float = 1e-4

    @property
    def can_alarm(self) -> bool:
        """Whether any stream can ever raise the alarm: the drift is below the ceiling."""
        return self.params.delta < self.ceiling

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (goes into the manifest's calibration record; inf -> None)."""
        return _finite({'partition': self.partition, **self.params.to_dict(),
                        'id_frames': self.id_frames, 'id_sequences': self.id_sequences,
                        'id_alarms': self.id_alarms, 'median_delay': self.median_delay,
                        'p95_delay': self.p95_delay, 'missed': self.missed,
                        'validation_sequences': self.validation_sequences,
                        'ceiling': self.ceiling, 'id_max_log_m': self.id_max_log_m,
                        'target_rate': self.target_rate, 'can_alarm': self.can_alarm,
                        'candidates': self.candidates})

    def describe(self) -> str:
        """One line for the calibration log."""
        line = (f'partition {self.partition}: window {self.params.window}, CUSUM delta '
                f'{self.params.delta:.3f} tau {self.params.tau:.2f}; validation median delay '
                f'{self.median_delay:g} frames, {self.missed} missed, {self.id_alarms} alarms '
                f'in {self.id_frames} ID frames '
                f'(its budget: {self.target_rate * 1e4:.3g} per 10,000 frames)')
        if self.can_alarm:
            return line
        return (f'{line}. WARNING: it can never alarm: held-out in-distribution drives reach '
                f'log M {self.id_max_log_m:.1f} of the {self.ceiling:.1f} that a stream far '
                'outside the calibration scores reaches, so to this encoder they look as novel '
                'as a shift, and a drift above them is above every stream. Train on drives like '
                'them, calibrate on more drives, or leave the partition out')


def _finite(value: Any) -> Any:
    """Replace non-finite floats (no detection: infinite delay) by None, recursively."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class DriveResolution:
    """The lowest false-alarm rate on new drives that ``drives`` held-out drives can vouch for.

    Frames of one drive share a scene, so what generalises is how often a *new drive* pushes a
    partition's statistic past a threshold fitted on ``drives`` drives. If the drives are
    exchangeable, a new drive beats the highest of them with probability 1 / (drives + 1): no
    fit on these drives can promise less without assuming a tail shape. With ``partitions``
    detectors OR-ed, a drive of ``frames_per_drive`` frames may alarm with probability up to
    ``partitions / (drives + 1)`` (union bound), i.e. ``rate`` alarms per frame. The same
    count splits ``target_rate`` (the alert's) between the partitions' CUSUM fits.
    """

    drives: int
    partitions: int
    frames_per_drive: float
    target_rate: float

    @property
    def rate(self) -> float:
        """Alarms per in-distribution frame the drives can vouch for (union bound)."""
        return self.partitions / ((self.drives + 1) * self.frames_per_drive)

    @property
    def drives_needed(self) -> int:
        """Held-out drives of this length that would vouch for ``target_rate``."""
        return max(1, math.ceil(self.partitions / (self.target_rate * self.frames_per_drive))
                   - 1)

    @property
    def sufficient(self) -> bool:
        """Whether the drives suffice for the target rate."""
        return self.drives >= self.drives_needed

    def as_dict(self) -> dict[str, float | int | bool]:
        """JSON-ready form (the calibration report)."""
        return {'drives': self.drives, 'partitions': self.partitions,
                'frames_per_drive': self.frames_per_drive, 'target_rate': self.target_rate,
                'rate': self.rate, 'drives_needed': self.drives_needed}

    def describe(self) -> str:
        """One line for the calibration log."""
        why = (f'a new drive beats the highest of them 1 time in {self.drives + 1}, for each '
               f'of {self.partitions} partitions')
        rate = f'{self.rate * 1e4:.2g} false alarms per 10,000 frames of new drives'
        target = f'the target {self.target_rate * 1e4:g} per 10,000'
        if self.sufficient:
            return (f'{self.drives} held-out drives of ~{self.frames_per_drive:.0f} frames can '
                    f'vouch for down to ~{rate} ({why}): {target} is within reach')
        return (f'{self.drives} held-out drives of ~{self.frames_per_drive:.0f} frames cannot '
                f'vouch for fewer than ~{rate} ({why}); {target} needs about '
                f'{self.drives_needed} such drives, or fewer partitions')


def log_martingales(partition: Partition, rows: NDArray[np.float64], window: int,
                    layout: Layout | None = None, raw: bool = False) -> NDArray[np.float64]:
    """Compute log M per frame of a sequence under ``partition``.

    ``rows``: encoding rows (T, width) with their ``layout``, or per-dim KL (T, D) without;
    with ``raw`` the partition's raw scores (T,) (see :meth:`Partition.raw_scores`).
    """
    scores = partition.from_raw(rows) if raw else partition.scores_of(rows, layout)
    martingale = PowerMartingale(window)
    return np.array([martingale.update(float(p))
                     for p in monitor_p_values(partition.calibration_scores, scores,
                                               partition.tail)])


def log_m_ceiling(partition: Partition, window: int) -> float:
    """Return the highest log M the partition can produce from finite scores.

    That is a full window of the smallest p-value its calibration scores allow (a score beyond
    every calibration score on the partition's tail: 1 / (N + 1), or 2 / (N + 1) two-sided).
    """
    smallest = float(conformal_p_values(partition.calibration_scores, [-math.inf, math.inf],
                                        partition.tail).min())
    return log_power_martingale(window * math.log(smallest), window)


def run_cusum(log_m: NDArray[np.float64], delta: float, tau: float,
              cap: float | None = None) -> NDArray[np.float64]:
    """Compute the CUSUM statistic per frame with the runtime's :class:`Cusum`."""
    cusum = Cusum(delta, tau, cap)
    return np.array([cusum.update(float(v)).statistic for v in log_m])


def _rising_edges(alarm: NDArray[np.bool_]) -> int:
    return int(np.count_nonzero(alarm & ~np.r_[False, alarm[:-1]]))


def _onset_counts(statistics: Sequence[NDArray[np.float64]],
                  levels: NDArray[np.float64]) -> NDArray[np.intp]:
    """Alarm onsets, summed over the sequences, of ``statistic > level`` at each level.

    Frame t starts an alarm at level L exactly when ``s[t-1] <= L < s[t]`` (``s[-1]`` = -inf),
    so the count at L is #{rising frames with s[t-1] <= L} - #{rising frames with s[t] <= L}:
    two sorted arrays and two binary searches per level, instead of a pass over every frame.
    """
    starts, ends = [], []
    for statistic in statistics:
        previous = np.r_[-np.inf, statistic[:-1]]
        rising = statistic > previous
        starts.append(previous[rising])
        ends.append(statistic[rising])
    first = np.sort(np.concatenate(starts))
    last = np.sort(np.concatenate(ends))
    return first.searchsorted(levels, 'right') - last.searchsorted(levels, 'right')


def _tau_for(statistics: Sequence[NDArray[np.float64]], allowed: int, margin: float) -> float:
    """Return the lowest tau with at most ``allowed`` alarm onsets, times (1 + margin).

    Levels are scanned downwards from the highest statistic and the scan stops at the first
    level with too many onsets, so every tau above the result is verified too (the onset count
    is piecewise constant between observed values, though not monotone).
    """
    tau = max(float(np.max(s)) for s in statistics)
    if allowed > 0:
        levels = np.unique(np.concatenate(list(statistics)))[::-1][1:]
        over = np.flatnonzero(_onset_counts(statistics, levels) > allowed)
        verified = over[0] if over.size else len(levels)
        if verified > 0:
            tau = float(levels[verified - 1])
    return max(MIN_TAU, tau * (1.0 + margin))


def _onsets(log_ms: Sequence[NDArray[np.float64]], delta: float, tau: float,
            cap: float) -> int:
    return sum(_rising_edges(run_cusum(v, delta, tau, cap * tau) > tau) for v in log_ms)


def _cross_validated_alarms(id_log_m: Sequence[NDArray[np.float64]],
                            statistics: Sequence[NDArray[np.float64]], delta: float,
                            target_rate: float, margin: float, cusum_cap: float) -> int:
    """Alarm onsets on each sequence when tau is fitted on all the other sequences.

    Frames of one drive are strongly correlated, so a tau that merely sits above the
    calibration drives says little about new drives; leaving one drive out at a time estimates
    how the chosen (delta, tau) generalises to drives it has not seen.
    """
    if len(id_log_m) < 2:
        return 0
    total = 0
    for left_out in range(len(id_log_m)):
        others = [s for i, s in enumerate(statistics) if i != left_out]
        frames = sum(len(s) for s in others)
        tau = _tau_for(others, int(math.floor(frames * target_rate)), margin)
        total += _onsets([id_log_m[left_out]], delta, tau, cusum_cap)
    return total


def _delays(log_ms: Sequence[NDArray[np.float64]], onsets: Sequence[int], delta: float,
            tau: float, cap: float) -> tuple[list[int], int]:
    delays, missed = [], 0
    for log_m, onset in zip(log_ms, onsets):
        statistic = run_cusum(log_m, delta, tau, cap * tau)
        delay = first_detection(statistic > tau, onset, len(statistic))
        if delay is not None:
            delays.append(delay)
        else:
            missed += 1
    return delays, missed


def candidate_windows(window: int | Sequence[int]) -> tuple[int, ...]:
    """Return one window or several candidates as distinct ints in ascending order."""
    return tuple(sorted({int(w) for w in np.atleast_1d(window)}))


def _window_candidates(id_log_m: Sequence[NDArray[np.float64]],
                       shift_log_m: Sequence[NDArray[np.float64]], onsets: Sequence[int],
                       window: int, allowed: int, target_rate: float, margin: float,
                       cusum_cap: float, quantiles: Sequence[float], spreads: Sequence[float]
                       ) -> list[dict[str, float]]:
    """Evaluate every candidate delta of one window: its tau, alarms and validation delays."""
    pooled = np.concatenate(id_log_m)
    top, median = float(pooled.max()), float(np.median(pooled))
    deltas = {float(np.quantile(pooled, q)) for q in quantiles}
    deltas |= {top + k * (top - median) for k in spreads}
    entries = []
    for delta in sorted(deltas):
        statistics = [run_cusum(v, delta, 1e300) for v in id_log_m]
        tau = _tau_for(statistics, allowed, margin)
        id_alarms = _onsets(id_log_m, delta, tau, cusum_cap)
        for _ in range(50):  # the runtime caps S at cusum_cap * tau, which can add onsets
            if id_alarms <= allowed:
                break
            tau *= 1.1
            id_alarms = _onsets(id_log_m, delta, tau, cusum_cap)
        cv_alarms = _cross_validated_alarms(id_log_m, statistics, delta, target_rate, margin,
                                            cusum_cap)
        delays, missed = _delays(shift_log_m, onsets, delta, tau, cusum_cap)
        entries.append({'window': window, 'delta': delta, 'tau': tau,
                        'median_delay': float(np.median(delays)) if delays else math.inf,
                        'p95_delay': float(np.percentile(delays, 95)) if delays else math.inf,
                        'missed': missed, 'id_alarms': id_alarms, 'cv_alarms': cv_alarms})
    return entries


def fit_cusum(partition: Partition, id_sequences: Sequence[NDArray[np.float64]],
              shifted: Sequence[tuple[NDArray[np.float64], int]], *,
              window: int | Sequence[int] = 20, target_rate: float = 1e-4,
              margin: float = 0.25, cusum_cap: float = 2.0,
              quantiles: Sequence[float] = DELTA_QUANTILES,
              spreads: Sequence[float] = DELTA_SPREADS,
              layout: Layout | None = None, raw: bool = False) -> SequentialFit:
    """Choose (window, delta, tau) for ``partition`` from encoding-row sequences.

    With ``layout`` the sequences are encoding rows (T_i, width), without it per-dim KL; with
    ``raw`` they are the partition's raw scores (T_i,) (calibration passes the generic
    partition's cross-fitted scores so).

    ``id_sequences``: held-out in-distribution sequences, not the frames whose scores are the
    partition's calibration scores. ``shifted``: (sequence, index of the first OOD frame)
    pairs of validation sequences. ``window``: the martingale window, or several candidates to
    choose from (a short window reacts sooner, a long one averages more frames:
    which detects a shift sooner at the same false-alarm budget depends on the encoder and the
    shift). Candidate deltas per window: the ``quantiles`` of the in-distribution log M
    values, and its maximum plus ``spreads`` times (maximum - median), which leave headroom
    for drives more unusual than any calibration drive. ``target_rate``: alarm onsets per
    in-distribution frame allowed to this partition alone (its share of the alert's budget
    when partitions are OR-ed). Ties go to the longer window, then the larger delta.
    """
    windows = candidate_windows(window)
    if not windows or windows[0] < 1:
        raise CalibrationError(f'Martingale windows {list(windows)!r} must be positive '
                               'integers.')
    id_sequences = [s for s in id_sequences if len(s) > 0]
    if not id_sequences or not shifted:
        raise CalibrationError('Sequential calibration needs held-out in-distribution sequences '
                               'and validation sequences with a shift.')
    id_frames = sum(len(s) for s in id_sequences)
    if id_frames < 2 * windows[-1]:
        raise CalibrationError(f'Only {id_frames} in-distribution frames for sequential '
                               f'calibration with window {windows[-1]}; give more frames.')
    onsets = [onset for _, onset in shifted]
    allowed = int(math.floor(id_frames * target_rate))
    candidates: list[dict[str, float]] = []
    id_max_log_m = {}
    for width in windows:
        id_log_m = [log_martingales(partition, s, width, layout, raw) for s in id_sequences]
        id_max_log_m[width] = float(max(v.max() for v in id_log_m))
        candidates += _window_candidates(
            id_log_m, [log_martingales(partition, s, width, layout, raw) for s, _ in shifted],
            onsets, width,
            allowed, target_rate, margin, cusum_cap, quantiles, spreads)
    chosen = min(candidates, key=lambda c: (
        c['id_alarms'] > allowed, c['cv_alarms'] > allowed, c['missed'], c['median_delay'],
        c['p95_delay'], -c['window'], -c['delta']))
    width = int(chosen['window'])
    return SequentialFit(
        partition=partition.name,
        params=CusumParams(width, chosen['delta'], chosen['tau'], cap=cusum_cap),
        id_frames=id_frames, id_sequences=len(id_sequences), id_alarms=int(chosen['id_alarms']),
        median_delay=chosen['median_delay'], p95_delay=chosen['p95_delay'],
        missed=int(chosen['missed']), validation_sequences=len(shifted), candidates=candidates,
        ceiling=log_m_ceiling(partition, width), id_max_log_m=id_max_log_m[width],
        target_rate=target_rate)
