"""Frame-level evaluation of a calibrated bundle per OOD shift: metrics, Markdown, plots."""

from __future__ import annotations

from dataclasses import dataclass, field
import json
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

__all__ = ['Evaluation', 'combined_score', 'evaluate_kl', 'format_table', 'write_report']

COMBINED = 'combined'
#: x axis of the histograms: the per-frame evidence, a log ratio (linear axis)
EVIDENCE_LABEL = 'evidence: log(score / median) / log(threshold / median)  (>1: alert)'


def combined_score(bundle: Bundle, kl: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-frame alert score: the largest evidence (> 1 = alert) of the absolute partitions.

    Change partitions judge a frame against its stream's past and take no part here.
    """
    parts = bundle.manifest.frame_partitions
    if not parts or not all(p.calibrated for p in bundle.manifest.partitions):
        raise CalibrationError(f'{bundle.name!r} is not calibrated; run `vae-ood calibrate`.')
    evidence = [p.evidence(kl[:, list(p.dims)].sum(axis=1)) for p in parts]
    return np.max(np.stack(evidence, axis=1), axis=1)


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (scores summarised, not listed)."""
        id_far = float(np.mean(self.id_scores > 1.0))
        return {'bundle': self.name, 'id_frames': int(self.id_scores.size),
                'id_false_alarm_rate': id_far,
                'shifts': {s: {p: m.as_dict() for p, m in parts.items()}
                           for s, parts in self.metrics.items()}, **self.extra}


def evaluate_kl(bundle: Bundle, id_kl: NDArray[np.float64],
                ood_kl: Mapping[str, NDArray[np.float64]]) -> Evaluation:
    """Evaluate per-dim KL arrays of in-distribution and OOD frames under ``bundle``."""
    if not ood_kl:
        raise CalibrationError('No OOD sets to evaluate; pass --ood DATA or --shift NAME.')
    partitions = bundle.manifest.frame_partitions
    id_combined = combined_score(bundle, id_kl)
    metrics: dict[str, dict[str, DetectionMetrics]] = {}
    ood_combined = {}
    for shift, kl in ood_kl.items():
        ood_combined[shift] = combined_score(bundle, kl)
        entry = {COMBINED: detection_metrics(id_combined, ood_combined[shift], 1.0)}
        if len(partitions) > 1:
            for part in partitions:
                dims = list(part.dims)
                entry[part.name] = detection_metrics(part.evidence(id_kl[:, dims].sum(1)),
                                                     part.evidence(kl[:, dims].sum(1)), 1.0)
        metrics[shift] = entry
    return Evaluation(bundle.name, id_combined, ood_combined, metrics)


def format_table(evaluation: Evaluation) -> str:
    """Format a per-shift table for the terminal (also valid Markdown)."""
    header = ('| shift | AUROC | AUPR | FPR@95%TPR | detected @thr | false alarms @thr | '
              'OOD frames |')
    lines = [header, '|' + '---|' * 7]
    for shift, parts in evaluation.metrics.items():
        m = parts[COMBINED]
        lines.append(f'| {shift} | {m.auroc:.3f} | {m.aupr:.3f} | {m.fpr_at_95_tpr:.3f} | '
                     f'{m.detection_rate:.1%} | {m.false_alarm_rate:.2%} | {m.n_ood} |')
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
          'Score: per-frame KL of the latent posterior from the prior, summed over each '
          "partition's latent dims, as evidence against the partition's calibrated "
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
