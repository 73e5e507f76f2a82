"""Fitting the generic score (:class:`~vae_ood_monitor.core.density.DensityModel`).

The model is fitted on held-out in-distribution frames, never on training frames (the encoder
has memorised those). Its calibration scores must come from frames it was *not* fitted on, or
the conformal p-values and thresholds would be optimistic: every frame is scored by a model
fitted without its own sequence (cross-fitting over folds of whole sequences; a single long
recording is cut into stretches first), while the model stored in the bundle is fitted on all
of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.covariance import LedoitWolf

from vae_ood_monitor.core.density import DensityMethod, DensityModel
from vae_ood_monitor.core.errors import CalibrationError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from vae_ood_monitor.core.encoding import Layout

__all__ = ['DEFAULT_GROUPS', 'MIN_DENSITY_FRAMES', 'fit_density', 'fit_density_scored',
           'pseudo_groups']

#: Feature groups of the generic score: the activation statistics when the model has them.
DEFAULT_GROUPS = ('stats',)
#: Fewer frames than this cannot fit a generic score.
MIN_DENSITY_FRAMES = 20
#: Frames per stretch when one recording is cut into pseudo-sequences for cross-fitting.
STRETCH = 50


def pseudo_groups(groups: NDArray[np.integer], stretch: int = STRETCH) -> NDArray[np.intp]:
    """Sequence ids for cross-fitting: the groups themselves, or stretches of one recording.

    With a single group, consecutive stretches of ``stretch`` frames (at least 4 of them)
    stand in for sequences.
    """
    groups = np.asarray(groups)
    if np.unique(groups).size >= 2:
        return np.unique(groups, return_inverse=True)[1].astype(np.intp)
    n = groups.size
    size = max(1, min(stretch, n // 4))
    return (np.arange(n) // size).astype(np.intp)


def fit_density(rows: NDArray[np.float64], layout: Layout, *,
                groups: tuple[str, ...] = DEFAULT_GROUPS,
                method: DensityMethod | str = DensityMethod.KNN, k: int = 1,
                max_reference: int = 2000) -> DensityModel:
    """Fit a generic score on in-distribution encoding rows (N, width).

    Centre and Ledoit-Wolf shrinkage precision of the selected columns give the whitening;
    ``knn`` keeps up to ``max_reference`` whitened rows (evenly spaced) as its reference.
    Models without activation statistics fall back to mu and logvar.
    """
    rows = layout.check(rows, 'calibration encodings')
    method = DensityMethod(method)
    if 'stats' in groups and not layout.stats_dim:
        groups = tuple(g for g in groups if g != 'stats') or ('mu', 'logvar')
    columns = layout.columns(groups)
    if len(rows) < MIN_DENSITY_FRAMES:
        raise CalibrationError(f'Only {len(rows)} frames to fit the generic score; give at least '
                               f'{MIN_DENSITY_FRAMES} held-out in-distribution frames.')
    x = rows[:, list(columns)]
    centre = x.mean(axis=0)
    spread = x.std(axis=0)
    if not np.any(spread > 0):
        raise CalibrationError('Every in-distribution frame has the same encoding: the encoder '
                               'output is degenerate. Retrain the model.')
    # standardise before shrinkage so that Ledoit-Wolf shrinks towards a sensible target, and
    # keep features that never vary (dead channels) out of the way instead of dividing by 0
    scale = np.where(spread > 0, spread, 1.0)
    precision = LedoitWolf().fit((x - centre) / scale).precision_
    chol = np.linalg.cholesky((precision + precision.T) / 2.0)
    whitening = chol / scale[:, None]
    reference = None
    if method is DensityMethod.KNN:
        pick = np.unique(np.linspace(0, len(x) - 1, min(max_reference, len(x))).astype(int))
        reference = (x[pick] - centre) @ whitening
    return DensityModel(columns, centre, whitening, method, reference, min(k, len(x)), groups)


def fit_density_scored(rows: NDArray[np.float64], sequence_ids: NDArray[np.integer],
                       layout: Layout, *, folds: int = 5, **options: object
                       ) -> tuple[DensityModel, NDArray[np.float64]]:
    """Fit on every row; score each row with a model fitted without its fold of sequences.

    Returns the model (fitted on all rows) and honest in-distribution scores of the rows, for
    the conformal p-values and thresholds. ``sequence_ids`` (N,) names each row's sequence
    (see :func:`pseudo_groups`); whole sequences go to folds in turn.
    """
    rows = layout.check(rows, 'calibration encodings')
    ids = pseudo_groups(sequence_ids)
    unique = np.unique(ids)
    if unique.size < 2 or len(rows) < 2 * MIN_DENSITY_FRAMES:
        raise CalibrationError(f'{len(rows)} frames are too few to cross-fit the generic score; '
                               f'give at least {2 * MIN_DENSITY_FRAMES} frames.')
    folds = int(min(max(2, folds), unique.size))
    fold_of = {g: i % folds for i, g in enumerate(unique)}
    fold = np.array([fold_of[g] for g in ids])
    scores = np.empty(len(rows))
    for number in range(folds):
        held = fold == number
        model = fit_density(rows[~held], layout, **options)  # type: ignore[arg-type]
        scores[held] = model.scores(rows[held])
    return fit_density(rows, layout, **options), scores  # type: ignore[arg-type]
