"""Drive-relative scores: a partition's KL sum over the median of its own recent past.

The KL of in-distribution frames varies far more between scenes (worlds, tracks, times of day)
than within one drive, so a shift that lowers or raises a partition's KL by a third inside a
drive can still land in the middle of the calibration scores. A *change* partition scores each
frame by the ratio

    r_t = (s_t + c) / (median(s_{t-gap-frames}, ..., s_{t-gap-1}) + c)

of the raw sum ``s_t`` to a lagged reference window of the same camera's own frames. The
``offset`` c (calibration sets it to a quantile of the partition's in-distribution sums, by
default their median)
keeps the ratio meaningful where a partition's KL is near zero: without it, a drift from 0.5 to
2 nats is a fourfold "change", as extreme as a real shift that takes 20 nats to 80. The gap
keeps the first frames of a shift out of the reference while it is being detected. The ratios
of held-out drives are the partition's calibration scores, so p-values, thresholds and the
CUSUM work on them unchanged. Until the reference holds ``min_frames`` frames the ratio is 1
(no evidence either way). While the partition triggers, the reference is frozen, so a lasting
shift is not absorbed into it; after ``hold`` frozen frames it follows the stream again (a new
normal is accepted, and the absolute partitions still judge its level).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import itertools
import math
import statistics
from typing import Any, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ['Baseline', 'BaselineParams', 'relative_scores']


@dataclass(frozen=True)
class BaselineParams:
    """Reference window of a change partition, in frames."""

    frames: int = 30
    gap: int = 5
    min_frames: int = 10
    hold: int = 300
    offset: float = 0.0

    def __post_init__(self) -> None:
        offset = self.offset
        if (isinstance(offset, bool) or not isinstance(offset, (int, float, np.floating))
                or not math.isfinite(offset) or offset < 0):
            raise ConfigError(f'baseline offset {offset!r} must be a finite number >= 0.')
        object.__setattr__(self, 'offset', float(offset))
        for name in ('frames', 'gap', 'min_frames', 'hold'):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f'baseline {name} {value!r} must be a non-negative integer.')
            object.__setattr__(self, name, int(value))
        if not 1 <= self.min_frames <= self.frames:
            raise ConfigError(f'baseline min_frames {self.min_frames!r} must be in 1..frames '
                              f'({self.frames!r}).')

    @property
    def warmup(self) -> int:
        """Frames of a stream before the first ratio that is not a placeholder 1."""
        return self.gap + self.min_frames

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest representation."""
        return {'frames': self.frames, 'gap': self.gap, 'min_frames': self.min_frames,
                'hold': self.hold, 'offset': self.offset}


class Baseline:
    """The lagged reference of one camera and partition; see the module docstring."""

    def __init__(self, params: BaselineParams) -> None:
        self.params = params
        self._history: deque[float] = deque(maxlen=params.frames + params.gap)
        self._frozen = 0

    @property
    def ready(self) -> bool:
        """Whether the reference window holds enough frames for a real ratio."""
        return len(self._history) - self.params.gap >= self.params.min_frames

    def ratio(self, raw: float) -> float:
        """Score ``raw`` against the reference (1.0 while warming up)."""
        if not self.ready:
            return 1.0
        # statistics.median: the same value as np.median (the mean of the two middle values for
        # an even count), at a tenth of its cost on a window of a few dozen floats
        past = itertools.islice(self._history, 0, len(self._history) - self.params.gap)
        offset = self.params.offset
        reference = statistics.median(past) + offset
        if reference <= 0.0:
            return math.inf if raw + offset > 0.0 else 1.0
        return (raw + offset) / reference

    def push(self, raw: float, frozen: bool = False) -> None:
        """Add a frame's raw score to the history (skipped while frozen, up to ``hold``)."""
        if not math.isfinite(raw):
            return
        if not frozen:
            self._frozen = 0
        elif self._frozen < self.params.hold:
            self._frozen += 1
            return
        # once the hold is used up, frames keep entering while the partition still triggers:
        # the reference follows the stream to its new normal until a frame is not frozen
        self._history.append(float(raw))

    def reset(self) -> None:
        """Forget the history (a new stream)."""
        self._history.clear()
        self._frozen = 0


def relative_scores(raw: ArrayLike, params: BaselineParams) -> NDArray[np.float64]:
    """Ratios of one stream's raw scores, exactly as the runtime computes them, never frozen."""
    baseline = Baseline(params)
    out = []
    for value in np.asarray(raw, np.float64).ravel():
        out.append(baseline.ratio(float(value)))
        baseline.push(float(value))
    return np.asarray(out, np.float64)
