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
    of their sum.
``all``
    every dim summed (no selection).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import roc_auc_score

from vae_ood_monitor.core.errors import CalibrationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

__all__ = ['labelled_dims', 'paper_dims', 'per_dim_auroc']


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
    return np.array([roc_auc_score(labels, both[:, d]) for d in range(both.shape[1])])


def labelled_dims(id_kl: NDArray[np.float64], ood_kl: NDArray[np.float64],
                  count: int | None = None) -> tuple[tuple[int, ...], float]:
    """Best dims by per-dim AUROC; ``count`` None picks the prefix whose sum has best AUROC.

    Returns (dims, AUROC of their summed KL on the validation frames).
    """
    if len(id_kl) == 0 or len(ood_kl) == 0:
        raise CalibrationError('The labelled rule needs in-distribution and shifted frames.')
    order = np.argsort(-per_dim_auroc(id_kl, ood_kl), kind='stable')
    labels = np.r_[np.zeros(len(id_kl)), np.ones(len(ood_kl))]
    both = np.concatenate([id_kl, ood_kl])
    sizes = [count] if count else range(1, both.shape[1] + 1)
    best: tuple[float, int] = (-1.0, 1)
    cumulative = np.cumsum(both[:, order], axis=1)
    for size in sizes:
        auroc = float(roc_auc_score(labels, cumulative[:, size - 1]))
        if auroc > best[0] + 1e-4:  # prefer fewer dims unless more clearly help
            best = (auroc, size)
    dims = tuple(int(d) for d in sorted(order[:best[1]]))
    return dims, best[0]
