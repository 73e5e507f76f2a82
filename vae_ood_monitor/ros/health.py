"""Per-camera health rules of the monitor node, without rclpy (unit-tested without ROS).

Staleness decides the fail-safe alert: a camera that has not had a frame processed recently,
or not at all since the node was activated, is not being watched. Frame errors are logged
throttled per camera: rclpy's ``throttle_duration_sec`` throttles per call site, so one camera's
repeated errors would hide every other camera's.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Hashable

__all__ = ['LogThrottle', 'camera_stale']


def camera_stale(last_processed_ns: int | None, now_ns: int, stale_after_s: float) -> bool:
    """Return whether a camera counts as stale at ``now_ns`` (node clock, nanoseconds).

    ``last_processed_ns`` is when its last frame was processed, None when none has been since
    activation: that camera is stale at once, so the node alerts (``alert_on_stale``) from
    start-up until every camera has proven itself, instead of reporting "no alert" for
    ``stale_after_s`` without having looked at anything.
    """
    if last_processed_ns is None:
        return True
    return now_ns - last_processed_ns > stale_after_s * 1e9


class LogThrottle:
    """Let one message per key (a camera) through every ``period_s``; count the ones held back."""

    def __init__(self, period_s: float) -> None:
        self._period_ns = round(period_s * 1e9)
        self._last: dict[Hashable, int] = {}
        self._held: Counter[Hashable] = Counter()

    def admit(self, key: Hashable, now_ns: int) -> int | None:
        """Return None to hold a message for ``key`` back, else how many were held back before it.

        ``now_ns``: a monotonic clock (the node passes time.monotonic_ns, like rclpy's own
        throttle, so a paused simulation clock cannot silence errors). A clock that went back
        lets the message through.
        """
        last = self._last.get(key)
        if last is not None and 0 <= now_ns - last < self._period_ns:
            self._held[key] += 1
            return None
        self._last[key] = now_ns
        return self._held.pop(key, 0)
