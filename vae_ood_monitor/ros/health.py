"""Per-camera health rules of the monitor node, without rclpy (unit-tested without ROS).

Staleness decides the fail-safe alert: a camera that has not had a frame processed recently,
or not at all since the node was activated, is not being watched.
"""

from __future__ import annotations

__all__ = ['camera_stale']


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
