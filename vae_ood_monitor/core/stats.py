"""Running statistics for diagnostics: latency percentiles per stage, rates and error counts."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ['STAGES', 'Counts', 'Latency', 'LatencyStats', 'RateMeter', 'StageSummary']

#: The stages of the per-frame path, in order, as named in diagnostics and benchmarks
#: (``flow``: optical flow and stacking, flow bundles only; 0 for frame bundles).
STAGES = ('decode', 'preprocess', 'flow', 'inference', 'scoring', 'total')


@dataclass(frozen=True)
class Latency:
    """Time spent on one frame, per stage, in nanoseconds."""

    decode: int
    preprocess: int
    inference: int
    scoring: int
    total: int
    flow: int = 0

    def as_dict(self) -> dict[str, int]:
        """Stage name -> nanoseconds."""
        return {s: getattr(self, s) for s in STAGES}


@dataclass(frozen=True)
class StageSummary:
    """p50, p99 and max of one stage over the window, in nanoseconds."""

    p50: float
    p99: float
    peak: float


class LatencyStats:
    """Keep the last ``window`` latencies per stage; summarise on demand (not per frame)."""

    def __init__(self, window: int = 1000) -> None:
        if window < 1:
            raise ValueError(f'window must be positive, got {window!r}')
        self.window = window
        self._values = np.zeros((window, len(STAGES)), dtype=np.int64)
        self._count = 0

    def add(self, latency: Latency) -> None:
        """Record one frame's latency."""
        self._values[self._count % self.window] = (
            latency.decode, latency.preprocess, latency.flow, latency.inference,
            latency.scoring, latency.total)
        self._count += 1

    def __len__(self) -> int:
        return min(self._count, self.window)

    def summary(self) -> dict[str, StageSummary]:
        """Stage -> summary over the window (empty dict before the first frame)."""
        n = len(self)
        if n == 0:
            return {}
        values = self._values[:n]
        p50, p99 = np.percentile(values, [50, 99], axis=0)
        peak = values.max(axis=0)
        return {s: StageSummary(float(p50[i]), float(p99[i]), float(peak[i]))
                for i, s in enumerate(STAGES)}

    def reset(self) -> None:
        """Forget all recorded latencies."""
        self._count = 0


class RateMeter:
    """Events per second over the last ``window`` event times (nanoseconds, any clock)."""

    def __init__(self, window: int = 100) -> None:
        self._times: deque[int] = deque(maxlen=window)

    def tick(self, t_ns: int) -> None:
        """Record one event at ``t_ns``."""
        self._times.append(int(t_ns))

    def rate(self, now_ns: int | None = None) -> float:
        """Events per second over the window, 0.0 with fewer than two events.

        With ``now_ns`` (the ticks' clock) the silence since the last event counts too: the rate
        is at most one event per that silence, so a source that stopped reads 1 / silence (0.1
        after 10 s) and falls towards 0 instead of showing its old rate forever. While events
        come no later than the window's mean interval this changes nothing; an event overdue
        lowers the reading until it arrives. A ``now_ns`` before the last event is ignored.
        """
        if len(self._times) < 2 or self._times[-1] <= self._times[0]:
            return 0.0
        last = self._times[-1]
        rate = (len(self._times) - 1) * 1e9 / (last - self._times[0])
        if now_ns is not None and now_ns > last:
            rate = min(rate, 1e9 / (now_ns - last))
        return rate


@dataclass
class Counts:
    """Frame counters of one camera."""

    processed: int = 0
    dropped: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    #: frames that completed a run of ``frozen_frames`` identical frames
    frozen: int = 0

    @property
    def failed_total(self) -> int:
        """All failed frames, whatever the kind."""
        return sum(self.failed.values())

    def merge(self, others: Iterable[Counts]) -> Counts:
        """Return the sum of this and ``others``."""
        total = Counts(self.processed, self.dropped, Counter(self.failed), self.alerts,
                       self.frozen)
        for other in others:
            total.processed += other.processed
            total.dropped += other.dropped
            total.failed.update(other.failed)
            total.alerts += other.alerts
            total.frozen += other.frozen
        return total
