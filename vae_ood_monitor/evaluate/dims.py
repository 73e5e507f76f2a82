"""Choosing the latent dimensions that score a partition (one kind of shift).

Three rules, all recorded in the manifest:

``paper``
    the reference paper's unsupervised rule: on calibration videos that vary the partition's
    factor within the training range, compute for every dim the mean |delta KL| between
    consecutive frames of each video, then the variance of that mean across videos; the dims
    with the largest variance react most to the factor.
``labelled``
    the sounder supervised rule: per-dim AUROC between in-distribution frames and validation
    frames carrying the partition's shift; keep the best dims, choosing how many by the AUROC
    of their sum (ties: the widest gap between the two sets' extremes), and which tail: a
    shift may raise the KL of some dims (the posterior moves away from the prior) or lower it
    (the encoder grows uncertain and its posterior widens back towards the prior, as heavy
    rain and blur do in models without guided dims).
``all``
    every dim summed (no selection).

Calibration chooses a partition's dims with these rules, and training's epoch probe
(train/selection.py) scores each epoch with the labelled rule, so that the kept epoch is the
one whose calibrated partitions would separate best. They run on a workstation only and need
scikit-learn (the ``eval`` extra), imported when first called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.core.typedefs import Tail

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

__all__ = ['labelled_dims', 'paper_dims', 'per_dim_auroc', 'separation_gap', 'tail_score']


def _roc_auc(labels: NDArray[np.float64], scores: NDArray[np.float64]) -> float:
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError as err:  # pragma: no cover - the eval/train extras carry it
        raise ImportError('Choosing latent dims needs scikit-learn: pip install '
                          "'vae_ood_monitor[eval]'") from err
    return float(roc_auc_score(labels, scores))


def paper_dims(videos: Sequence[NDArray[np.float64]], count: int = 3) -> tuple[int, ...]:
    """Apply the paper's rule to per-dim KL sequences (T_i, D), one per calibration video."""
    if len(videos) < 2:
        raise CalibrationError('The paper rule needs at least two calibration videos (with '
                               'different levels of the factor).')
    means = np.stack([np.abs(np.diff(v, axis=0)).mean(axis=0) for v in videos if len(v) > 1])
    spread = means.var(axis=0)
    order = np.argsort(-spread, kind='stable')
    return tuple(int(d) for d in sorted(order[:max(1, count)]))


def per_dim_auroc(id_kl: NDArray[np.float64], ood_kl: NDArray[np.float64]) -> NDArray[np.float64]:
    """AUROC of each latent dim's KL alone (OOD positive)."""
    labels = np.r_[np.zeros(len(id_kl)), np.ones(len(ood_kl))]
    both = np.concatenate([id_kl, ood_kl])
    return np.array([_roc_auc(labels, both[:, d]) for d in range(both.shape[1])])


def tail_score(scores: NDArray[np.float64], tail: Tail,
               id_scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """Order scores so that larger means 'more OOD' under ``tail`` (for AUROC comparisons).

    Two-sided: distance from the in-distribution median in log space (KL sums are positive
    and skewed, and a ratio either way is what a two-sided threshold pair cuts).
    """
    if tail is Tail.UPPER:
        return scores
    if tail is Tail.LOWER:
        return -scores
    centre = float(np.median(np.log(np.maximum(id_scores, 1e-12))))
    return np.abs(np.log(np.maximum(scores, 1e-12)) - centre)


def separation_gap(id_scores: NDArray[np.float64], ood_scores: NDArray[np.float64],
                   tail: Tail, level: float = 0.01) -> float:
    """How far apart the extremes are: the nearer ``level`` tails, in log space.

    Upper tail: log of the shifted scores' ``level`` quantile minus log of the in-distribution
    scores' ``1 - level`` quantile (lower tail: the other way round). Positive when those
    quantiles do not overlap, larger the wider the gap, in nats of ratio. Scores are KL sums
    (non-negative); they are floored at 1e-12 before the log.
    """
    low, high = (ood_scores, id_scores) if tail is Tail.UPPER else (id_scores, ood_scores)
    return float(np.log(max(float(np.quantile(low, level)), 1e-12))
                 - np.log(max(float(np.quantile(high, 1.0 - level)), 1e-12)))


def labelled_dims(id_kl: NDArray[np.float64], ood_kl: NDArray[np.float64],
                  count: int | None = None, tails: Sequence[Tail] = tuple(Tail)
                  ) -> tuple[tuple[int, ...], Tail, float]:
    """Best (dims, tail) for separating ``ood_kl`` from ``id_kl`` by validation AUROC.

    For the upper tail, dims are taken in order of decreasing per-dim AUROC; for the lower tail
    in order of increasing AUROC (their KL falls under the shift); ``count`` None picks the
    prefix whose sum separates best. Two-sided uses every dim. Returns (dims, tail, AUROC of the
    partition's score on the validation frames).

    Choices within 0.001 of the best AUROC tie; among them the widest
    :func:`separation_gap` wins (the two-sided choice counts as no gap), and exact ties
    prefer the paper's upper tail, then fewer dims. The gap decides where AUROC saturates:
    several guided dims of an ensemble each separate a shift perfectly, and their sum, which
    averages one member's quirks away, keeps the widest gap.
    """
    if len(id_kl) == 0 or len(ood_kl) == 0:
        raise CalibrationError('The labelled rule needs in-distribution and shifted frames.')
    per_dim = per_dim_auroc(id_kl, ood_kl)
    labels = np.r_[np.zeros(len(id_kl)), np.ones(len(ood_kl))]
    both = np.concatenate([id_kl, ood_kl])
    split = len(id_kl)
    candidates: list[tuple[float, float, tuple[int, ...], Tail]] = []  # auroc, gap, dims, tail
    for tail in tails:
        if tail is Tail.TWO_SIDED:
            sums = both.sum(axis=1)
            auroc = _roc_auc(labels, tail_score(sums, tail, sums[:split]))
            candidates.append((auroc, -np.inf, tuple(range(both.shape[1])), tail))
            continue
        order = np.argsort(-per_dim if tail is Tail.UPPER else per_dim, kind='stable')
        cumulative = np.cumsum(both[:, order], axis=1)
        for size in ([count] if count else range(1, both.shape[1] + 1)):
            sums = cumulative[:, size - 1]
            auroc = _roc_auc(labels, tail_score(sums, tail, sums[:split]))
            candidates.append((auroc, separation_gap(sums[:split], sums[split:], tail),
                               tuple(int(d) for d in sorted(order[:size])), tail))
    top = max(c[0] for c in candidates)
    tied = [c for c in candidates if c[0] >= top - 1e-3]
    widest = max(c[1] for c in tied)
    auroc, _, dims, tail = next(c for c in tied if c[1] == widest)  # first: upper, fewer dims
    return dims, tail, auroc
