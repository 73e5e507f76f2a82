"""Per-camera health rules of the monitor node (vae_ood_monitor.ros.health), without ROS."""

from __future__ import annotations

from vae_ood_monitor.ros.health import camera_stale

S = 1_000_000_000


def test_a_camera_without_a_processed_frame_is_stale_from_the_start() -> None:
    # just activated, nothing processed: stale at once, not only after stale_after_s
    assert camera_stale(None, 0, 1.0)
    assert camera_stale(None, 5 * S, 600.0)


def test_a_camera_is_stale_once_stale_after_s_passed_since_its_last_frame() -> None:
    assert not camera_stale(10 * S, 10 * S, 1.0)
    assert not camera_stale(10 * S, 11 * S, 1.0)  # exactly stale_after_s: still fresh
    assert camera_stale(10 * S, 11 * S + 1, 1.0)
    assert not camera_stale(10 * S, 10 * S + S // 20, 0.05)
