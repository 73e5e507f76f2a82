"""Detection metrics over scores (scikit-learn for the curves, as the field does)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.evaluate.spans import ranked

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ['DetectionMetrics', 'conformal_threshold', 'conformal_threshold_low',
           'detection_metrics', 'fpr_at_tpr']


@dataclass(frozen=True)
class DetectionMetrics:
    """Frame-level separation of in-distribution (negative) and OOD (positive) scores."""

    auroc: float
    aupr: float
    fpr_at_95_tpr: float
    false_alarm_rate: float
    detection_rate: float
    n_id: int
    n_ood: int

    def __post_init__(self) -> None:
        for name in ('auroc', 'aupr', 'fpr_at_95_tpr', 'false_alarm_rate', 'detection_rate'):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {value!r}')

    def as_dict(self) -> dict[str, float | int]:
        """JSON-ready form."""
        return asdict(self)


def fpr_at_tpr(id_scores: ArrayLike, ood_scores: ArrayLike, tpr: float = 0.95) -> float:
    """False-positive rate at the highest threshold that detects ``tpr`` of the OOD frames."""
    labels, scores = _stack(id_scores, ood_scores)
    fpr, tprs, _ = roc_curve(labels, scores, drop_intermediate=False)  # keep every threshold
    return float(fpr[np.searchsorted(tprs, tpr, side='left')])


def detection_metrics(id_scores: ArrayLike, ood_scores: ArrayLike,
                      threshold: float) -> DetectionMetrics:
    """AUROC, AUPR (OOD positive), FPR at 95 % TPR, and rates at ``threshold`` (score > t)."""
    id_scores = np.asarray(id_scores, np.float64)
    ood_scores = np.asarray(ood_scores, np.float64)
    if id_scores.size == 0 or ood_scores.size == 0:
        raise CalibrationError('Need at least one in-distribution and one OOD score to compute '
                               'detection metrics.')
    labels, scores = _stack(id_scores, ood_scores)
    return DetectionMetrics(
        # sklearn's sums can land an ulp outside [0, 1] (AP 1.0000000000000002): clip
        auroc=float(np.clip(roc_auc_score(labels, scores), 0.0, 1.0)),
        aupr=float(np.clip(average_precision_score(labels, scores), 0.0, 1.0)),
        fpr_at_95_tpr=fpr_at_tpr(id_scores, ood_scores),
        false_alarm_rate=float(np.mean(id_scores > threshold)),
        detection_rate=float(np.mean(ood_scores > threshold)),
        n_id=int(id_scores.size), n_ood=int(ood_scores.size))


def conformal_threshold(calibration: ArrayLike, target_far: float) -> float:
    """Return the per-frame threshold where conformal p-values reach ``target_far``.

    With N calibration scores, an exchangeable in-distribution score exceeds the
    ceil((N + 1)(1 - a))-th smallest calibration score with probability at most a.
    """
    scores = np.sort(np.asarray(calibration, np.float64).ravel())
    n = scores.size
    k = int(np.ceil((n + 1) * (1.0 - target_far)))
    if k > n:
        raise CalibrationError(
            f'{n} calibration frames cannot certify a false-alarm rate of {target_far:g}: need '
            f'at least {int(np.ceil(1.0 / target_far)) - 1}. Give more in-distribution frames '
            'or raise --target-far.')
    return float(scores[k - 1])


def conformal_threshold_low(calibration: ArrayLike, target_far: float) -> float:
    """Return the lower threshold: a score below it has lower-tail p-value <= ``target_far``.

    With sorted calibration scores c_1 <= ... <= c_N, ``score < c_{m+1}`` with
    m = floor((N + 1) a) - 1 has probability at most a for an exchangeable score.
    """
    scores = np.sort(np.asarray(calibration, np.float64).ravel())
    m = int(np.floor((scores.size + 1) * target_far)) - 1
    if m < 0:
        raise CalibrationError(
            f'{scores.size} calibration frames cannot certify a false-alarm rate of '
            f'{target_far:g}: need at least {int(np.ceil(1.0 / target_far)) - 1}. Give more '
            'in-distribution frames or raise --target-far.')
    return float(scores[m])


def _stack(id_scores: ArrayLike, ood_scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    id_scores = np.asarray(id_scores, np.float64).ravel()
    ood_scores = np.asarray(ood_scores, np.float64).ravel()
    labels = np.concatenate([np.zeros(id_scores.size), np.ones(ood_scores.size)])
    return labels, ranked(np.concatenate([id_scores, ood_scores]))
