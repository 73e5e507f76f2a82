"""What the encoder says about a frame, as one row of numbers: the *encoding*.

An encoding row is ``[mu (D) | logvar (D) | stats (S)]``: the latent posterior of the frame and,
for bundles exported with them, the activation statistics of the encoder's first convolution
blocks (per channel, the mean and the standard deviation over the image; S may be 0). The
partitions score these rows: a KL partition sums the KL of some latent dims, the generic
partition measures how far the row lies from in-distribution rows
(:mod:`~vae_ood_monitor.core.density`). One array layout for the runtime, calibration,
evaluation and replay keeps every figure about exactly what the robot computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.scoring import kl_per_dim

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from vae_ood_monitor.core.typedefs import Encoder

__all__ = ['FEATURE_GROUPS', 'Layout', 'encode_rows']

#: Names of the column groups of an encoding row, in order.
FEATURE_GROUPS = ('mu', 'logvar', 'stats')


@dataclass(frozen=True)
class Layout:
    """Column layout of the encoding rows of one model: ``latent_dim`` and ``stats_dim``."""

    latent_dim: int
    stats_dim: int = 0

    def __post_init__(self) -> None:
        for name in ('latent_dim', 'stats_dim'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f'{name} {value!r} must be an integer.')
        if self.latent_dim < 1 or self.stats_dim < 0:
            raise ConfigError(f'latent_dim {self.latent_dim!r} must be >= 1 and stats_dim '
                              f'{self.stats_dim!r} >= 0.')

    @property
    def width(self) -> int:
        """Number of columns of an encoding row."""
        return 2 * self.latent_dim + self.stats_dim

    def columns(self, groups: tuple[str, ...] | list[str]) -> tuple[int, ...]:
        """Column indices of the named groups (``mu``, ``logvar``, ``stats``), in that order."""
        unknown = [g for g in groups if g not in FEATURE_GROUPS]
        if unknown or not groups:
            raise ConfigError(f'Feature groups {list(groups)!r} must be a non-empty selection '
                              f'of {", ".join(FEATURE_GROUPS)}.')
        if 'stats' in groups and not self.stats_dim:
            raise ConfigError("Feature group 'stats' asked for, but the model has no activation "
                              'statistics output; re-export it with this version of vae-ood.')
        d = self.latent_dim
        spans = {'mu': range(0, d), 'logvar': range(d, 2 * d),
                 'stats': range(2 * d, 2 * d + self.stats_dim)}
        return tuple(i for g in FEATURE_GROUPS if g in groups for i in spans[g])

    def kl(self, rows: NDArray[Any]) -> NDArray[np.float64]:
        """Per-dim KL of encoding rows: (..., width) -> (..., latent_dim)."""
        d = self.latent_dim
        return kl_per_dim(rows[..., :d], rows[..., d:2 * d])

    def check(self, rows: NDArray[Any], what: str = 'encodings') -> NDArray[np.float64]:
        """Return ``rows`` as a float64 (N, width) array, or raise naming the shapes."""
        rows = np.asarray(rows, np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ConfigError(f'{what} have shape {rows.shape!r}; this model gives rows of '
                              f'{self.width} columns (latent {self.latent_dim} x 2 + '
                              f'{self.stats_dim} activation statistics).')
        return rows


def encode_rows(encoder: Encoder, batch: NDArray[np.float32]) -> NDArray[np.float64]:
    """Run ``encoder`` on a preprocessed batch; return its encoding rows (N, width), float64.

    Encoders with activation statistics implement ``encode_with_stats(batch) -> (mu, logvar,
    stats)``; any other :class:`~vae_ood_monitor.core.typedefs.Encoder` gives rows of mu and
    logvar only.
    """
    with_stats = getattr(encoder, 'encode_with_stats', None)
    if with_stats is not None:
        parts = with_stats(batch)
    else:
        parts = encoder.encode(batch)
    return np.concatenate([np.asarray(p, np.float64).reshape(len(batch), -1) for p in parts],
                          axis=1)
