"""Frame-level evaluation of a calibrated bundle per OOD shift: metrics, Markdown, plots."""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import math
from pathlib import Path
from typing import Any, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.evaluate.metrics import detection_metrics, DetectionMetrics
from vae_ood_monitor.evaluate.plots import plot_histograms, plot_roc

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import NDArray

    from vae_ood_monitor.core.bundle import Bundle

__all__ = ['Evaluation', 'add_baseline', 'baseline_warnings', 'combined_score',
           'evaluate_encodings', 'format_table', 'named_shifts', 'write_report']

#: The detector must beat the baseline by this much, or evaluation warns.
BASELINE_TOLERANCE = 0.005

COMBINED = 'combined'
#: x axis of the histograms: the per-frame evidence, a log ratio (linear axis)
EVIDENCE_LABEL = 'evidence: log(score / median) / log(threshold / median)  (>1: alert)'


def combined_score(bundle: Bundle, rows: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-frame alert score of encoding rows: the largest evidence of the partitions.

    Evidence above 1 alerts; only the absolute partitions count (change partitions judge a
    frame against its stream's past and take no part here).
    """
    parts = bundle.manifest.frame_partitions
    if not parts or not all(p.calibrated for p in bundle.manifest.partitions):
        raise CalibrationError(f'{bundle.name!r} is not calibrated; run `vae-ood calibrate`.')
    return np.max(np.stack(list(_evidence(bundle, rows).values()), axis=1), axis=1)


def _evidence(bundle: Bundle, rows: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    layout = bundle.manifest.model.layout
    return {p.name: p.evidence(p.raw_scores(rows, layout))
            for p in bundle.manifest.frame_partitions}


@dataclass
class Evaluation:
    """Metrics of one bundle: per shift, per partition and for the combined alert score."""

    name: str
    id_scores: NDArray[np.float64]
    ood_scores: dict[str, NDArray[np.float64]]
    metrics: dict[str, dict[str, DetectionMetrics]]
    extra: dict[str, Any] = field(default_factory=dict)

    def auroc(self, shift: str, partition: str = COMBINED) -> float:
        """AUROC of one shift (combined score unless a partition is named)."""
        return self.metrics[shift][partition].auroc

    @property
    def named(self) -> tuple[str, ...]:
        """The evaluated shifts that training or calibration used (see :func:`named_shifts`)."""
        return tuple(s for s in self.metrics if s in self.extra.get('named', ()))

    @property
    def baseline(self) -> dict[str, float]:
        """The colour baseline's AUROC per shift (empty when the bundle has no baseline)."""
        return dict(self.extra.get('baseline_auroc', {}))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (scores summarised, not listed)."""
        id_far = float(np.mean(self.id_scores > 1.0))
        return {'bundle': self.name, 'id_frames': int(self.id_scores.size),
                'id_false_alarm_rate': id_far,
                'shifts': {s: {p: m.as_dict() for p, m in parts.items()}
                           for s, parts in self.metrics.items()}, **self.extra}


def evaluate_encodings(bundle: Bundle, id_rows: NDArray[np.float64],
                       ood_rows: Mapping[str, NDArray[np.float64]]) -> Evaluation:
    """Evaluate the encoding rows of in-distribution and OOD frames under ``bundle``."""
    if not ood_rows:
        raise CalibrationError('No OOD sets to evaluate; pass --ood DATA or --shifts NAME.')
    partitions = bundle.manifest.frame_partitions
    id_combined = combined_score(bundle, id_rows)
    id_parts = _evidence(bundle, id_rows)
    metrics: dict[str, dict[str, DetectionMetrics]] = {}
    ood_combined = {}
    for shift, rows in ood_rows.items():
        ood_combined[shift] = combined_score(bundle, rows)
        entry = {COMBINED: detection_metrics(id_combined, ood_combined[shift], 1.0)}
        if len(partitions) > 1:
            for name, evidence in _evidence(bundle, rows).items():
                entry[name] = detection_metrics(id_parts[name], evidence, 1.0)
        metrics[shift] = entry
    return Evaluation(bundle.name, id_combined, ood_combined, metrics,
                      {'named': list(named_shifts(bundle))})


def named_shifts(bundle: Bundle) -> tuple[str, ...]:
    """Shifts the bundle was built with (named shifts), as its manifest records them.

    Augmented or guided in training (a student's: in its teacher's training, or in its
    distillation), or used by calibration to choose dims, tails or CUSUM parameters. Figures
    on a named shift say how well the detector learnt what it was shown; only the unnamed ones
    say how it meets the unexpected.
    """
    manifest = bundle.manifest
    found: list[str] = []

    def add(values: Any) -> None:
        if isinstance(values, (list, tuple)):
            found.extend(str(v) for v in values)

    train = manifest.provenance.get('train')
    if isinstance(train, dict):
        add(train.get('augment'))
        add(train.get('guide'))
        if train.get('select', 'detection') == 'detection':
            add(train.get('select_shifts'))  # they chose the training epoch
    distillation = manifest.provenance.get('distillation')
    if isinstance(distillation, dict):
        add(distillation.get('augment'))  # a student was shown them to mimic its teacher
    calibration = manifest.metrics.get('calibration')
    options = calibration.get('options') if isinstance(calibration, dict) else None
    if isinstance(options, dict):
        partitions = options.get('partitions') or []
        named = [p for p in partitions if p not in ('generic', 'all')]
        add(named)
        add(options.get('validation_shifts'))
        if options.get('sequential', True) and not options.get('validation_shifts') \
                and not named:
            add(['rain', 'brightness'])  # the default shifts that tune the generic CUSUM
    return tuple(dict.fromkeys(found))


def add_baseline(evaluation: Evaluation, bundle: Bundle, id_images: NDArray[np.uint8],
                 ood_images: Mapping[str, NDArray[np.uint8]]) -> bool:
    """Score the same frames with the bundle's colour baseline; store its AUROC per shift.

    Returns False (and stores nothing) when the bundle was calibrated without a baseline.
    """
    from vae_ood_monitor.evaluate.colour import colour_scores

    calibration = bundle.manifest.metrics.get('calibration')
    baseline = calibration.get('colour_baseline') if isinstance(calibration, dict) else None
    if not isinstance(baseline, dict):
        return False
    id_scores = colour_scores(baseline, id_images)
    evaluation.extra['baseline_auroc'] = {
        shift: detection_metrics(id_scores, colour_scores(baseline, images), math.inf).auroc
        for shift, images in ood_images.items()}
    return True


def baseline_warnings(evaluation: Evaluation, tolerance: float = BASELINE_TOLERANCE
                      ) -> list[str]:
    """One line per shift on which the detector does not beat the colour baseline."""
    lines = []
    for shift, base in evaluation.baseline.items():
        mine = evaluation.auroc(shift)
        if mine + tolerance < base:
            lines.append(f'warning: on {shift!r} the detector (AUROC {mine:.3f}) is worse than '
                         f'the six-number colour baseline ({base:.3f}): on these frames it is '
                         'not earning its cost. Train on more varied recordings, calibrate on '
                         "frames like the robot's, or check the data.")
    return lines


def format_table(evaluation: Evaluation) -> str:
    """Format a per-shift table for the terminal (also valid Markdown).

    Named shifts (see :func:`named_shifts`) first, marked; with a baseline, its AUROC beside.
    """
    baseline = evaluation.baseline
    named = set(evaluation.named)
    header = ('| shift | AUROC | AUPR | FPR@95%TPR | detected @thr | false alarms @thr | '
              'OOD frames |' + (' colour baseline AUROC |' if baseline else ''))
    lines = [header, '|' + '---|' * (7 + bool(baseline))]
    order = sorted(evaluation.metrics, key=lambda s: s not in named)
    for shift in order:
        m = evaluation.metrics[shift][COMBINED]
        label = f'{shift} (named)' if shift in named else shift
        lines.append(f'| {label} | {m.auroc:.3f} | {m.aupr:.3f} | {m.fpr_at_95_tpr:.3f} | '
                     f'{m.detection_rate:.1%} | {m.false_alarm_rate:.2%} | {m.n_ood} |'
                     + (f' {baseline[shift]:.3f} |' if shift in baseline else
                        (' - |' if baseline else '')))
    return '\n'.join(lines)


def write_report(evaluation: Evaluation, out: str | Path, *, title: str = 'OOD evaluation',
                 notes: str = '') -> dict[str, Path]:
    """Write metrics.json, report.md, roc.png and histograms.png into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    aurocs = {s: p[COMBINED].auroc for s, p in evaluation.metrics.items()}
    paths = {
        'roc': plot_roc(evaluation.id_scores, evaluation.ood_scores, aurocs, out / 'roc.png'),
        'histograms': plot_histograms(evaluation.id_scores, evaluation.ood_scores, 1.0,
                                      out / 'histograms.png', xlabel=EVIDENCE_LABEL,
                                      log_x=False),
    }
    data = evaluation.to_dict()
    (out / 'metrics.json').write_text(json.dumps(data, indent=1))
    paths['metrics'] = out / 'metrics.json'
    md = [f'# {title}', '', f'Model bundle: `{evaluation.name}`. In-distribution frames: '
          f'{data["id_frames"]}; false-alarm rate at the calibrated threshold: '
          f'{data["id_false_alarm_rate"]:.2%}.', '',
          "Score: each partition's per-frame score (the generic partition: distance of the "
          "frame's encoder features from in-distribution frames; a named partition: KL of the "
          'latent posterior from the prior, summed over its latent dims), as evidence against '
          "the partition's calibrated "
          'threshold(s): log(score / median) / log(upper threshold / median), '
          'log(median / score) / log(median / lower threshold), or the larger for a two-sided '
          'partition, with the median of the in-distribution calibration scores (0 at the '
          'median, negative below it on the upper tail, 1 at the threshold; max over '
          'partitions; above 1 the frame alerts). OOD frames are positives.', '',
          format_table(evaluation), '',
          '![ROC curves](roc.png)', '', '![Score histograms](histograms.png)', '']
    if notes:
        md += [notes, '']
    (out / 'report.md').write_text('\n'.join(md))
    paths['report'] = out / 'report.md'
    return paths
