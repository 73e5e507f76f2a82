"""Sequence-level evaluation of the decision rules: delays, false alarms, missed sequences.

Every sequence runs through a fresh :class:`~vae_ood_monitor.core.detector.Decider` (the exact
per-camera logic of the Monitor) over its precomputed encoding rows, once per decision mode, so the
threshold rule and the sequential test are compared on identical frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TYPE_CHECKING

import numpy as np
from sklearn.metrics import roc_auc_score

from vae_ood_monitor.core.detector import Decider
from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.core.typedefs import DecisionMode
from vae_ood_monitor.evaluate.spans import first_detection, ranked, runs

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from vae_ood_monitor.core.bundle import Bundle
    from vae_ood_monitor.core.typedefs import Encoder
    from vae_ood_monitor.data.dataset import FrameArray

__all__ = ['LabelledSequence', 'ModeSummary', 'build_sequence_sets', 'build_sequences',
           'evaluate_sequences', 'format_sequence_table', 'write_timelines']


@dataclass(frozen=True, eq=False)
class LabelledSequence:
    """One sequence: its name, shift and mode, encoding rows (T, width), truth (T,) (True = OOD).

    ``severity``: the shift's severity when it was synthesised (None for recorded or clean
    sequences); reports name it next to missed sequences. ``base``: the name of the sequence
    whose frames a shifted copy was made from (None: a drive of its own); the evaluation
    counts the in-distribution frames that copies of one drive share once.
    """

    name: str
    shift: str
    mode: str
    rows: NDArray[np.float64]
    truth: NDArray[np.bool_]
    severity: float | None = None
    base: str | None = None


@dataclass
class ModeSummary:
    """Results of one decision mode over a set of sequences.

    ``id_frames`` counts distinct in-distribution frames: the frames a shifted copy of a drive
    shares with a sequence of the same drive counted before it, from their first frame on, are
    the same frames seen by a detector in the same state (so with the same alarms); they are
    counted in ``repeated_id_frames`` instead, and alarms raised on them are not counted again.
    """

    mode: str
    delays: list[int] = field(default_factory=list)
    missed: int = 0
    segments: int = 0
    false_alarms: int = 0
    id_frames: int = 0
    repeated_id_frames: int = 0
    detected_frames: int = 0
    ood_frames: int = 0
    #: per partition: false alarm onsets and first detecting frames it triggered on
    partitions: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def false_alarms_per_1000(self) -> float:
        """False alarm onsets per 1,000 distinct in-distribution frames."""
        return 1000.0 * self.false_alarms / max(1, self.id_frames)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        delays = np.asarray(self.delays, float)
        return {
            'mode': self.mode,
            'median_delay': float(np.median(delays)) if delays.size else None,
            'p95_delay': float(np.percentile(delays, 95)) if delays.size else None,
            'missed_segments': self.missed, 'segments': self.segments,
            'false_alarms': self.false_alarms, 'id_frames': self.id_frames,
            'repeated_id_frames': self.repeated_id_frames,
            'false_alarms_per_1000_id_frames': self.false_alarms_per_1000,
            'frame_detection_rate': self.detected_frames / max(1, self.ood_frames),
            **({'partitions': self.partitions} if self.partitions else {}),
        }


def build_sequences(bundle: Bundle, frames: FrameArray, shifts: Sequence[str], *,
                    modes: Sequence[str] = ('m1', 'm2', 'm3'), per_kind: int | None = None,
                    seed: int = 0, encoder: Encoder | None = None
                    ) -> list[LabelledSequence]:
    """Every in-distribution sequence of ``frames`` as is, plus shifted copies.

    For each shift and mode, the first ``per_kind`` sequences (all when None) get the shift at
    a test-range severity (drawn per sequence) on the mode's OOD frames. Outside its OOD span a
    copy is its drive's frames unchanged: it takes their encodings from the drive's (encoded once)
    and names the drive as its ``base``.
    """
    return build_sequence_sets([bundle], frames, shifts, modes=modes, per_kind=per_kind,
                               seed=seed, encoders=[encoder])[0]


def build_sequence_sets(bundles: Sequence[Bundle], frames: FrameArray, shifts: Sequence[str], *,
                        modes: Sequence[str] = ('m1', 'm2', 'm3'), per_kind: int | None = None,
                        seed: int = 0, encoders: Sequence[Encoder | None] | None = None
                        ) -> list[list[LabelledSequence]]:
    """:func:`build_sequences` for several bundles on the same shifted frames (rendered once)."""
    from vae_ood_monitor.data.drives import shift_sequence
    from vae_ood_monitor.data.shifts import sample_severity
    from vae_ood_monitor.evaluate.scores import encodings_of_images

    encoders = list(encoders) if encoders is not None else [None] * len(bundles)
    if len(encoders) != len(bundles):
        raise ValueError('one encoder (or None) per bundle')

    def encode(images: NDArray[np.uint8]) -> list[NDArray[np.float64]]:
        return [encodings_of_images(b, images, encoder=e) for b, e in zip(bundles, encoders)]

    groups = frames.sequences()
    clean = encode(frames.images)
    sets = [[LabelledSequence(f'id_{n}', 'none', 'id', rows[idx], np.zeros(len(idx), bool))
             for n, idx in enumerate(groups)] for rows in clean]
    rng = np.random.default_rng([seed, 31337])
    for shift in shifts:
        for mode in modes:
            for n, idx in enumerate(groups[:per_kind]):
                severity = sample_severity(shift, 'test', rng)
                images, truth = shift_sequence(frames.images[idx], shift, severity, mode,
                                               seed + 17 * n)
                shifted = encode(images[truth]) if truth.any() else None
                for which, out in enumerate(sets):
                    rows = clean[which][idx]  # its ID frames are the drive's, unchanged
                    if shifted is not None:
                        rows[truth] = shifted[which]
                    out.append(LabelledSequence(f'{shift}_{mode}_{n}', shift, mode, rows, truth,
                                                severity, base=out[n].name))
    return sets


def _score(result: dict[str, NDArray[np.float64]], names: Sequence[str], key: str
           ) -> NDArray[np.float64]:
    return np.max(np.stack([result[f'{n}.{key}'] for n in names], axis=1), axis=1)


def evaluate_sequences(bundle: Bundle, sequences: Sequence[LabelledSequence], *,
                       clear_frames: int = 10, cusum_cap: float | None = None,
                       modes: Sequence[DecisionMode] = (DecisionMode.THRESHOLD,
                                                        DecisionMode.CUSUM)
                       ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Run every sequence through each mode; return (summary, per-sequence traces).

    The summary has, per decision mode overall, per shift and per kind of shifted sequence
    (``sequence_modes``: m1, m2, m3 over every shift; their false alarms are those before the
    onset in those sequences only): median and p95 detection delay in
    frames (from each OOD onset to the first alert inside the OOD span), missed OOD spans,
    false alarm onsets (alerts rising on in-distribution frames) per 1,000 distinct ID frames
    (see :class:`ModeSummary`: within each of these groups, the first frames that a copy shares
    with an earlier sequence of its ``base`` drive count once); plus the
    frame-level AUROC of the per-frame evidence and of the CUSUM statistic (relative to tau),
    and per decision mode the sequences with a missed OOD span (``missed_sequences``: name,
    shift, mode, severity). With the CUSUM, ``threshold_matched`` is the per-frame rule at the
    strictest evidence level that misses no more spans than the CUSUM (``matched`` False: no
    level does, and the figures are those of the level that misses fewest).
    """
    if not sequences:
        raise CalibrationError('No sequences to evaluate.')
    partitions = bundle.manifest.partitions
    layout = bundle.manifest.model.layout
    names = [p.name for p in partitions]
    frame_partitions = bundle.manifest.frame_partitions or partitions
    frame_names = [p.name for p in frame_partitions]
    has_cusum = all(p.cusum is not None for p in partitions)
    modes = [m for m in modes if m is not DecisionMode.CUSUM or has_cusum]
    overall = {m.value: ModeSummary(m.value) for m in modes}
    per_shift: dict[str, dict[str, ModeSummary]] = {}
    per_kind: dict[str, dict[str, ModeSummary]] = {}  # by sequence mode: m1, m2, m3
    traces: dict[str, dict[str, Any]] = {}
    missed: dict[str, list[dict[str, Any]]] = {m.value: [] for m in modes}
    truths, evidence, cusum = [], [], []
    seen: dict[tuple[str, str], list[LabelledSequence]] = {}  # (group, drive): counted ones
    for seq in sequences:
        # frames at its start that an earlier sequence of the same drive had, per group
        keys = ['', f'shift {seq.shift}'] + ([f'mode {seq.mode}'] if seq.truth.any() else [])
        repeated = [_repeated_prefix(seq, seen.setdefault((key, seq.base or seq.name), []))
                    for key in keys]
        for key in keys:
            seen[key, seq.base or seq.name].append(seq)
        trace: dict[str, Any] = {'truth': seq.truth, 'shift': seq.shift, 'mode': seq.mode,
                                 'severity': seq.severity, 'repeated': repeated[0]}
        for mode in modes:
            result = Decider(partitions, mode, clear_frames, cusum_cap,
                             layout=layout).run(seq.rows)
            alert = result['alert']
            trace[f'alert.{mode.value}'] = alert
            groups = [overall[mode.value], per_shift.setdefault(seq.shift, {}).setdefault(
                mode.value, ModeSummary(mode.value))]
            if seq.truth.any():
                groups.append(per_kind.setdefault(seq.mode, {}).setdefault(
                    mode.value, ModeSummary(mode.value)))
            fired = {name: result[f'{name}.triggered'] for name in names}
            for summary, shared in zip(groups, repeated):
                lost = _account(summary, alert, seq.truth, fired, shared)
            trace[f'missed.{mode.value}'] = lost
            if lost:
                missed[mode.value].append({'sequence': seq.name, 'shift': seq.shift,
                                           'mode': seq.mode, 'severity': seq.severity})
            if mode is DecisionMode.THRESHOLD or 'score' not in trace:
                # scores and per-frame evidence: the absolute partitions (the per-frame rule)
                trace['score'] = _score(result, frame_names, 'score')
                trace['p_value'] = np.min(np.stack([result[f'{n}.p_value'] for n in names], 1), 1)
                trace['log_m'] = _score(result, names, 'log_m')
                trace['evidence'] = np.max(np.stack(
                    [p.evidence(result[f'{p.name}.score']) for p in frame_partitions], 1), 1)
            if mode is DecisionMode.CUSUM:
                trace['cusum'] = np.max(np.stack(
                    [result[f'{p.name}.statistic'] / p.cusum.tau for p in partitions], 1), 1)
        truths.append(seq.truth)
        evidence.append(trace['evidence'])
        if 'cusum' in trace:
            cusum.append(trace['cusum'])
        traces[seq.name] = trace
    truth = np.concatenate(truths)
    repeats = sum(trace['repeated'] for trace in traces.values())
    summary: dict[str, Any] = {
        'sequences': len(sequences), 'frames': int(truth.size),
        'id_frames': int((~truth).sum()) - repeats, 'repeated_id_frames': repeats,
        'ood_frames': int(truth.sum()),
        'modes': {m: s.as_dict() for m, s in overall.items()},
        'shifts': {shift: {m: s.as_dict() for m, s in modes_.items()}
                   for shift, modes_ in per_shift.items()},
        'sequence_modes': {kind: {m: s.as_dict() for m, s in modes_.items()}
                           for kind, modes_ in per_kind.items()},
        'missed_sequences': missed,
    }
    if 0 < truth.sum() < truth.size:
        summary['auroc_evidence'] = float(roc_auc_score(truth, ranked(np.concatenate(evidence))))
        if cusum:
            summary['auroc_cusum'] = float(roc_auc_score(truth, ranked(np.concatenate(cusum))))
    if 'cusum' in summary['modes']:
        summary['threshold_matched'] = _matched_threshold(
            traces, summary['modes']['cusum']['missed_segments'], clear_frames)
    return summary, traces


def _matched_threshold(traces: dict[str, dict[str, Any]], missed_target: int,
                       clear_frames: int) -> dict[str, Any]:
    """Find the strictest per-frame rule that misses no more spans than the CUSUM does.

    The rule alerts on frames whose evidence is above a level (1.0 is the calibrated
    threshold): at an equal or better detection rate its false alarms compare fairly with the
    CUSUM's. ``matched`` says whether any level detects that many spans; if none does (an
    alarm raised on the frames before a span is on at its onset and is no detection), the
    level that misses fewest spans is reported, with ``matched`` False. The figures at the
    chosen level are counted with the runtime's alert latch.
    """
    from vae_ood_monitor.core.detector import AlertLatch

    level, matched = _strictest_level(traces, missed_target, clear_frames)
    summary = ModeSummary('threshold')
    for trace in traces.values():
        latch = AlertLatch(clear_frames)
        alert = np.array([latch.update(bool(e > level)) for e in trace['evidence']], bool)
        _account(summary, alert, trace['truth'], repeated=trace.get('repeated', 0))
    matched = matched and summary.missed <= missed_target
    return {'evidence_level': level, 'matched': matched, **summary.as_dict()}


def _strictest_level(traces: dict[str, dict[str, Any]], missed_target: int,
                     clear_frames: int) -> tuple[float, bool]:
    """Return the highest evidence level that misses at most ``missed_target`` spans.

    The flag says whether there is one; if not, the highest of the levels that miss fewest
    spans is returned. An alarm begins on frame t (the latch was off: no trigger in the
    ``clear_frames`` frames before) at every level in [m_t, e_t): e_t its evidence, m_t the
    largest evidence of those frames. A span is detected at the levels of the union of its
    frames' intervals, so the number missed changes only at observed evidence values, and
    every level just below an interval's end is a candidate; none is left out, whatever the
    range of the evidence.
    """
    starts, ends, spans = [], [], 0
    finite = [0.0]  # the top level: above every finite evidence (and 0)
    for trace in traces.values():
        evidence = np.asarray(trace['evidence'], np.float64)
        finite.extend(evidence[np.isfinite(evidence)].tolist())
        padded = np.r_[np.full(clear_frames, -np.inf), evidence]
        before = np.lib.stride_tricks.sliding_window_view(padded, clear_frames)[:evidence.size]
        before = before.max(axis=1)
        for start, stop in runs(trace['truth']):
            spans += 1
            low, high = before[start:stop], evidence[start:stop]
            merged: list[list[float]] = []
            for a, b in sorted(zip(low[low < high].tolist(), high[low < high].tolist())):
                if merged and a <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], b)
                else:
                    merged.append([a, b])
            starts += [a for a, _ in merged]
            ends += [b for _, b in merged]
    top = max(finite)  # nothing but broken (infinite) evidence triggers above it
    levels = np.unique(np.minimum(np.nextafter(np.asarray(ends, np.float64), -np.inf), top))
    levels = np.r_[levels, top][::-1]  # strictest first
    detected = (np.searchsorted(np.sort(starts), levels, 'right')
                - np.searchsorted(np.sort(ends), levels, 'right'))
    missed = spans - detected
    good = np.flatnonzero(missed <= missed_target)
    if good.size:
        return float(levels[good[0]]), True
    return float(levels[int(np.argmin(missed))]), False


def _repeated_prefix(seq: LabelledSequence, earlier: Sequence[LabelledSequence]) -> int:
    """Count the ID frames at the start of ``seq`` that one of ``earlier`` starts with too.

    The same encoding rows from the first frame on, in-distribution in both: the detectors, started
    fresh on each sequence, are in the same state on them and raise the same alarms.
    """
    longest = 0
    for other in earlier:
        n = min(len(seq.rows), len(other.rows))
        same = (np.all(seq.rows[:n] == other.rows[:n], axis=1) & ~seq.truth[:n]
                & ~other.truth[:n])
        longest = max(longest, n if same.all() else int(np.argmin(same)))
    return longest


def _account(summary: ModeSummary, alert: NDArray[np.bool_], truth: NDArray[np.bool_],
             fired: dict[str, NDArray[np.bool_]] | None = None, repeated: int = 0) -> bool:
    """Add one sequence; ``fired``: per partition, the frames it triggered on.

    Its first ``repeated`` frames (in-distribution) were counted with an earlier sequence: they
    and the alarms rising on them count as repeated, not again. Returns whether an OOD span of
    the sequence was missed.
    """
    rising = alert & ~np.r_[False, alert[:-1]]
    new = np.arange(truth.size) >= repeated
    false_onsets = np.flatnonzero(rising & ~truth & new)
    summary.false_alarms += int(false_onsets.size)
    summary.id_frames += int(np.count_nonzero(~truth & new))
    summary.repeated_id_frames += int(np.count_nonzero(~truth & ~new))
    summary.ood_frames += int(np.count_nonzero(truth))
    summary.detected_frames += int(np.count_nonzero(alert & truth))
    first_hits, lost = [], False
    for start, stop in runs(truth):
        summary.segments += 1
        delay = first_detection(alert, start, stop)
        if delay is not None:
            summary.delays.append(delay)
            first_hits.append(start + delay)
        else:
            summary.missed += 1
            lost = True
    for name, triggered in (fired or {}).items():
        counts = summary.partitions.setdefault(name, {'false_alarms': 0, 'detections': 0})
        counts['false_alarms'] += int(np.count_nonzero(triggered[false_onsets]))
        counts['detections'] += int(np.count_nonzero(triggered[first_hits]))
    return lost


#: Missed sequences named per decision mode under the sequence table.
MISSED_SHOWN = 12


def format_sequence_table(summary: dict[str, Any]) -> str:
    """Format a Markdown table per shift and decision mode: delays, misses, false alarms."""
    lines = ['| shift | decision | median delay | p95 delay | missed | false alarms / 1000 ID '
             'frames | OOD frames detected |', '|' + '---|' * 7]
    rows = ([('all sequences', summary['modes'])] + sorted(summary['shifts'].items())
            + [(f'{kind} sequences (every shift)', modes) for kind, modes
               in sorted(summary.get('sequence_modes', {}).items())])
    for shift, modes in rows:
        for mode, m in modes.items():
            median = '-' if m['median_delay'] is None else f'{m["median_delay"]:g}'
            p95 = '-' if m['p95_delay'] is None else f'{m["p95_delay"]:.1f}'
            lines.append(f'| {shift} | {mode} | {median} | {p95} | {m["missed_segments"]}/'
                         f'{m["segments"]} | {m["false_alarms_per_1000_id_frames"]:.2f} '
                         f'({m["false_alarms"]} in {m["id_frames"]}) | '
                         f'{m["frame_detection_rate"]:.1%} |')
    matched = summary.get('threshold_matched')
    if matched:
        equal = matched.get('matched', True)
        rule = ('threshold matched to cusum detection' if equal else
                'threshold, no level matches cusum detection (fewest missed)')
        lines.append(f'| all sequences | {rule} (level {matched["evidence_level"]:.3g}) | - | '
                     f'- | {matched["missed_segments"]}/{matched["segments"]} | '
                     f'{matched["false_alarms_per_1000_id_frames"]:.2f} '
                     f'({matched["false_alarms"]} in {matched["id_frames"]}) | '
                     f'{matched["frame_detection_rate"]:.1%} |')
    repeats = summary.get('repeated_id_frames', 0)
    lines += ['', 'False alarms: alarm onsets on in-distribution (ID) frames, per 1,000 distinct '
              'ID frames ("in N": N distinct ID frames)' + (
                  f'; the {repeats} ID frames that shifted copies of a drive share with it from '
                  'its first frame on (the same frames, the detectors in the same state) count '
                  'once, and so do alarms on them.' if repeats else '.')]
    if matched and not matched.get('matched', True):
        cusum = summary['modes']['cusum']['missed_segments']
        lines += ['', f'No per-frame evidence level detects as many OOD spans as the CUSUM '
                  f'(at best {matched["missed_segments"]} missed, CUSUM {cusum}): the '
                  'per-frame rule is not compared at equal detection.']
    for mode, m in summary['modes'].items():
        if m.get('partitions'):
            lines += ['', f'Which partitions raised the {mode} alerts (several can at once): '
                      + _by_partition(m['partitions'], 'false_alarms', 'false alarm onsets')
                      + '; ' + _by_partition(m['partitions'], 'detections',
                                             'first detecting frames') + '.']
    for mode, seqs in summary.get('missed_sequences', {}).items():
        if seqs:
            shown = ', '.join(_describe(s) for s in seqs[:MISSED_SHOWN])
            more = f' and {len(seqs) - MISSED_SHOWN} more' if len(seqs) > MISSED_SHOWN else ''
            lines += ['', f'Missed by {mode} ({len(seqs)}): {shown}{more}.']
    extra = []
    for key, label in (('auroc_evidence', 'per-frame evidence'), ('auroc_cusum', 'CUSUM')):
        if key in summary:
            extra.append(f'{label} {summary[key]:.3f}')
    if extra:
        lines += ['', 'Frame-level AUROC over all sequences: ' + ', '.join(extra) + '.']
    return '\n'.join(lines)


def _describe(missed: dict[str, Any]) -> str:
    severity = missed.get('severity')
    where = f'{missed["shift"]} {missed["mode"]}' + (
        '' if severity is None else f', severity {severity:.2f}')
    return f'{missed["sequence"]} ({where})'


def _by_partition(counts: dict[str, dict[str, int]], key: str, label: str) -> str:
    named = [f'{name} {c[key]}' for name, c in counts.items() if c[key]]
    return f'{label}: ' + (', '.join(named) if named else 'none')


def write_timelines(traces: dict[str, dict[str, Any]], out: Path, bundle: Bundle,
                    limit_per_kind: int = 1, missed: bool = True) -> list[Path]:
    """Write timeline PNGs: the first ``limit_per_kind`` sequences of each (shift, mode) kind.

    With ``missed``, also every sequence whose OOD span the decision (the CUSUM where there is
    one) missed: those are the ones to look at.
    """
    from vae_ood_monitor.evaluate.plots import plot_timeline

    written, seen = [], {}  # type: ignore[var-annotated]
    for name, trace in traces.items():
        kind = (trace['shift'], trace['mode'])
        seen[kind] = seen.get(kind, 0) + 1
        alert = trace.get('alert.cusum', trace.get('alert.threshold'))
        was_missed = trace.get('missed.cusum', trace.get('missed.threshold', False))
        if seen[kind] > limit_per_kind and not (missed and was_missed):
            continue
        series = {'KL score': trace['score'], 'p-value (min)': trace['p_value'],
                  'log M (max)': trace['log_m']}
        thresholds = {}
        if 'cusum' in trace:
            series['CUSUM / tau'] = trace['cusum']
            thresholds['CUSUM / tau'] = 1.0
        severity = trace.get('severity')
        title = (f'{name}: {trace["shift"]} {trace["mode"]}'
                 + ('' if severity is None else f', severity {severity:.2f}')
                 + (', MISSED' if was_missed else '') + f' ({bundle.name})')
        written.append(plot_timeline(
            series, out / f'timeline_{name}.png', truth=trace['truth'], alarms=alert,
            thresholds=thresholds, log_panels=('p-value (min)',), title=title))
    return written
