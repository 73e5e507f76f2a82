"""The generic score: how far a frame's encoding lies from in-distribution encodings.

A :class:`DensityModel` selects some columns of the encoding row (:mod:`.encoding`), centres
and whitens them with statistics fitted on held-out in-distribution frames (a shrinkage
covariance, so that directions in which normal frames never vary count, without blowing up
noise), and scores the frame by

* ``knn``: the mean Euclidean distance to its ``k`` nearest in-distribution reference frames in
  the whitened space (no assumption about the shape of the in-distribution data: a robot's
  normal frames form clusters, one per place and light), or
* ``mahalanobis``: the distance to the centre (one Gaussian).

Larger is further out. Fitting (scikit-learn's Ledoit-Wolf estimator) happens at calibration
time, outside the runtime; this module only evaluates the stored model with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
import math
from typing import Any, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ['DensityMethod', 'DensityModel']


class DensityMethod(str, Enum):
    """How the generic score measures distance from the in-distribution encodings."""

    KNN = 'knn'
    MAHALANOBIS = 'mahalanobis'


def _matrix(value: ArrayLike, name: str, ndim: int) -> NDArray[np.float64]:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigError(f'density {name} is not numeric ({err}).') from None
    if array.ndim != ndim or not np.all(np.isfinite(array)):
        raise ConfigError(f'density {name} must be a finite {ndim}-d array, got shape '
                          f'{array.shape!r}.')
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class DensityModel:
    """A fitted generic score over some columns of the encoding row (see the module docstring).

    ``columns``: indices into the encoding row; ``groups``: the feature groups they came from
    (for people reading the manifest); ``centre`` (d,) and ``whitening`` (d, d): the map
    ``z = (x[columns] - centre) @ whitening``; ``reference`` (m, d): whitened in-distribution
    encodings for ``knn`` (None for ``mahalanobis``).
    """

    columns: tuple[int, ...]
    centre: NDArray[np.float64]
    whitening: NDArray[np.float64]
    method: DensityMethod = DensityMethod.KNN
    reference: NDArray[np.float64] | None = None
    k: int = 1
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        columns = tuple(self.columns)
        if (not columns or any(isinstance(c, bool) or not isinstance(c, (int, np.integer))
                               or c < 0 for c in columns) or len(set(columns)) != len(columns)):
            raise ConfigError(f'density columns {columns!r} must be distinct non-negative '
                              'integers, at least one.')
        object.__setattr__(self, 'columns', tuple(int(c) for c in columns))
        first, last = self.columns[0], self.columns[-1]
        contiguous = self.columns == tuple(range(first, last + 1))
        # a slice (a view) where the columns are one run, as the stats group is: cheaper
        # per frame than gathering them
        object.__setattr__(self, '_index', slice(first, last + 1) if contiguous
                           else np.asarray(self.columns, np.intp))
        try:
            object.__setattr__(self, 'method', DensityMethod(self.method))
        except ValueError:
            raise ConfigError(f'density method {self.method!r} is not supported; choose one of: '
                              f'{", ".join(m.value for m in DensityMethod)}.') from None
        d = len(self.columns)
        centre = _matrix(self.centre, 'centre', 1)
        whitening = _matrix(self.whitening, 'whitening', 2)
        if centre.shape != (d,) or whitening.shape[0] != d or whitening.shape[1] < 1:
            raise ConfigError(f'density centre {centre.shape!r} and whitening '
                              f'{whitening.shape!r} do not fit {d} columns.')
        object.__setattr__(self, 'centre', centre)
        object.__setattr__(self, 'whitening', whitening)
        # the scoring path runs in float32, the encoder's own precision: half the memory
        # traffic of float64 (the whitening matrix is the largest thing touched per frame)
        object.__setattr__(self, '_centre32', centre.astype(np.float32))
        object.__setattr__(self, '_white32', np.ascontiguousarray(whitening, np.float32))
        object.__setattr__(self, 'groups', tuple(str(g) for g in self.groups))
        if self.method is DensityMethod.KNN:
            if self.reference is None:
                raise ConfigError('A knn density needs reference encodings.')
            reference = _matrix(self.reference, 'reference', 2)
            if reference.shape[1] != whitening.shape[1] or reference.shape[0] < 1:
                raise ConfigError(f'density reference {reference.shape!r} does not fit the '
                                  f'whitening {whitening.shape!r}.')
            if (isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer))
                    or not 1 <= self.k <= reference.shape[0]):
                raise ConfigError(f'density k {self.k!r} must be an integer in 1..'
                                  f'{reference.shape[0]} (the reference frames).')
            object.__setattr__(self, 'reference', reference)
            ref32 = np.ascontiguousarray(reference, np.float32)
            object.__setattr__(self, '_ref32', ref32)
            object.__setattr__(self, '_ref_sq', np.einsum('ij,ij->i', ref32, ref32))
            object.__setattr__(self, 'k', int(self.k))
        elif self.reference is not None:
            raise ConfigError('A mahalanobis density takes no reference encodings.')

    @property
    def width(self) -> int:
        """Smallest encoding width the columns fit."""
        return max(self.columns) + 1

    def _whitened(self, rows: NDArray[np.float64]) -> NDArray[np.float32]:
        index = self._index  # type: ignore[attr-defined]
        picked = np.asarray(rows)[..., index].astype(np.float32)
        with np.errstate(invalid='ignore', over='ignore'):  # a broken row scores NaN, quietly
            picked -= self._centre32  # type: ignore[attr-defined]
            return picked @ self._white32  # type: ignore[attr-defined]

    def scores(self, rows: ArrayLike) -> NDArray[np.float64]:
        """Scores of encoding rows (N, width) -> (N,); NaN where a row is not finite.

        Computed in float32 like :meth:`score`, so offline and online scores agree.
        """
        z = self._whitened(np.asarray(rows).reshape(-1, np.shape(rows)[-1]))
        sq = np.einsum('ij,ij->i', z, z)
        if self.method is DensityMethod.MAHALANOBIS:
            return np.sqrt(sq).astype(np.float64)
        out = np.empty(len(z))
        for start in range(0, len(z), 256):  # (256, m) distance blocks bound the memory
            block = z[start:start + 256]
            with np.errstate(invalid='ignore'):  # NaN rows stay NaN, quietly
                cross = block @ self._ref32.T  # type: ignore[attr-defined]
            d2 = sq[start:start + 256, None] + self._ref_sq[None] - 2.0 * cross  # type: ignore
            if self.k == 1:
                nearest = d2.min(axis=1, keepdims=True)
            else:
                nearest = np.partition(d2, self.k - 1, axis=1)[:, :self.k]
            out[start:start + 256] = np.sqrt(np.maximum(nearest, 0.0)).mean(axis=1)
        return out

    def score(self, row: NDArray[np.float64]) -> float:
        """Score of one encoding row (the per-frame path: one small matrix-vector product)."""
        z = self._whitened(row)
        sq = float(z @ z)
        if not math.isfinite(sq):
            return math.nan
        if self.method is DensityMethod.MAHALANOBIS:
            return math.sqrt(sq)
        d2 = self._ref_sq - 2.0 * (self._ref32 @ z)  # type: ignore[attr-defined]
        if self.k == 1:
            return math.sqrt(max(float(d2.min()) + sq, 0.0))
        nearest = np.partition(d2, self.k - 1)[:self.k] + sq
        return float(np.sqrt(np.maximum(nearest, 0.0)).mean())

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest representation (plain lists; float32 precision is plenty)."""
        def rounded(array: NDArray[np.float64]) -> list[Any]:
            return array.astype(np.float32).tolist()

        return {'method': self.method.value, 'groups': list(self.groups),
                'columns': list(self.columns), 'k': self.k, 'centre': rounded(self.centre),
                'whitening': rounded(self.whitening),
                'reference': None if self.reference is None else rounded(self.reference)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DensityModel:
        """Build from the manifest representation."""
        return cls(columns=tuple(data['columns']), centre=data['centre'],
                   whitening=data['whitening'], method=data.get('method', 'knn'),
                   reference=data.get('reference'), k=data.get('k', 1),
                   groups=tuple(data.get('groups', ())))
