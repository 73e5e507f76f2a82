"""Per-frame scores: KL divergence of the latent posterior from the prior, conformal p-values."""

from __future__ import annotations

from typing import cast, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.typedefs import Tail

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike, NDArray

__all__ = ['conformal_p_value', 'conformal_p_values', 'kl_per_dim', 'monitor_p_values',
           'partition_scores']


def kl_per_dim(mu: ArrayLike, logvar: ArrayLike) -> NDArray[np.float64]:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent dimension, in float64.

    ``kl_i = 0.5 * (mu_i**2 + exp(lv_i) - lv_i - 1)``; the whole expression is halved (a bug in
    related code halves only ``mu**2``). Shapes broadcast: (D,) or (N, D) in, the same out.
    """
    mu = np.asarray(mu, dtype=np.float64)
    logvar = np.asarray(logvar, dtype=np.float64)
    # exp(lv) - 1 - lv as expm1(lv) - lv: no cancellation near lv = 0, and never negative.
    return 0.5 * (mu * mu + (np.expm1(logvar) - logvar))


def partition_scores(kl: NDArray[np.float64],
                     dims: Sequence[Sequence[int]]) -> NDArray[np.float64]:
    """Sum the per-dim KL over each partition's dims: (..., D) -> (..., len(dims))."""
    return np.stack([kl[..., list(d)].sum(axis=-1) for d in dims], axis=-1)


def conformal_p_value(sorted_calibration: NDArray[np.float64], score: float,
                      tail: Tail | str = Tail.UPPER) -> float:
    """Inductive conformal p-value of ``score`` against in-distribution calibration scores.

    ``upper``: ``(#{cal >= score} + 1) / (N + 1)``; ``lower``: ``(#{cal <= score} + 1) /
    (N + 1)``; ``two_sided``: ``min(1, 2 * min(upper, lower))`` (Bonferroni, still valid).
    ``sorted_calibration`` must be sorted ascending (bundles store it so): binary searches only.
    The result lies in [1 / (N + 1), 1].
    """
    n = sorted_calibration.size
    upper = (n - int(sorted_calibration.searchsorted(score, 'left')) + 1) / (n + 1)
    if tail == Tail.UPPER:
        return upper
    lower = (int(sorted_calibration.searchsorted(score, 'right')) + 1) / (n + 1)
    if tail == Tail.LOWER:
        return lower
    if tail != Tail.TWO_SIDED:
        raise ValueError(f'tail must be one of {[t.value for t in Tail]}, got {tail!r}')
    return min(1.0, 2.0 * min(upper, lower))


def conformal_p_values(sorted_calibration: NDArray[np.float64], scores: ArrayLike,
                       tail: Tail | str = Tail.UPPER) -> NDArray[np.float64]:
    """Vectorised :func:`conformal_p_value` over many scores."""
    tail = Tail(tail)
    n = sorted_calibration.size
    scores = np.asarray(scores, np.float64)
    upper = cast('NDArray[np.float64]',
                 (n - np.searchsorted(sorted_calibration, scores, 'left') + 1.0) / (n + 1.0))
    if tail is Tail.UPPER:
        return upper
    lower = cast('NDArray[np.float64]',
                 (np.searchsorted(sorted_calibration, scores, 'right') + 1.0) / (n + 1.0))
    if tail is Tail.LOWER:
        return lower
    return cast('NDArray[np.float64]', np.minimum(1.0, 2.0 * np.minimum(upper, lower)))


def monitor_p_values(sorted_calibration: NDArray[np.float64], scores: ArrayLike,
                     tail: Tail | str = Tail.UPPER) -> NDArray[np.float64]:
    """Return p-values as the runtime's detectors take them.

    :func:`conformal_p_values` of finite scores, and the smallest p-value there is, 1 / (N + 1),
    for NaN or infinite ones (broken encoder output is as far from normal as it gets, whatever
    the tail).
    """
    scores = np.asarray(scores, np.float64)
    p_values = conformal_p_values(sorted_calibration, scores, tail)
    return np.where(np.isfinite(scores), p_values, 1.0 / (sorted_calibration.size + 1))
