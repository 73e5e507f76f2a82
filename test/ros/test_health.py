"""Per-camera health rules of the monitor node (vae_ood_monitor.ros.health), without ROS."""

from __future__ import annotations

from vae_ood_monitor.ros.health import camera_stale, LogThrottle

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


def test_log_throttle_is_per_camera() -> None:
    throttle = LogThrottle(5.0)
    assert throttle.admit('front', 0) == 0
    for t in range(1, 4):  # the front camera keeps failing
        assert throttle.admit('front', t * S) is None
    # rclpy's per-call-site throttle would hide this one for 5 s: it is another camera
    assert throttle.admit('rear', 2 * S) == 0
    assert throttle.admit('rear', 3 * S) is None
    assert throttle.admit('front', 5 * S) == 3  # due again, with the count it held back
    assert throttle.admit('front', 6 * S) is None
    assert throttle.admit('rear', 7 * S) == 1
    assert throttle.admit('front', 1 * S) == 1  # the clock went back: let it through
