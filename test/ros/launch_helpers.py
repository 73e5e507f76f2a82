"""Shared pieces of the launch tests (imported only where ROS 2 is installed)."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np


def road_frames(count: int = 4, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Small synthetic road frames (RGB)."""
    from vae_ood_monitor.data.scenes import RoadScene, SceneConfig

    return list(RoadScene(3, SceneConfig(width=width, height=height)).frames(count))


def image_message(rgb: np.ndarray, encoding: str = 'rgb8') -> Any:
    """A real sensor_msgs/Image built from an RGB frame."""
    import array

    from sensor_msgs.msg import Image

    from vae_ood_monitor.data.messages import encode_rgb

    fields = encode_rgb(rgb, encoding) if encoding != 'yuv420' else encode_rgb(rgb, 'rgb8')
    msg = Image()
    msg.height, msg.width, msg.step = fields.height, fields.width, fields.step
    msg.encoding = encoding
    msg.is_bigendian = fields.is_bigendian
    msg.data = array.array('B', fields.data)
    return msg


def spin_until(node: Any, condition: Callable[[], bool], timeout: float,
               each: Callable[[], None] | None = None, period: float = 0.05) -> bool:
    """Spin ``node`` until ``condition()`` holds or ``timeout`` seconds pass."""
    import rclpy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if each is not None:
            each()
        rclpy.spin_once(node, timeout_sec=period)
        if condition():
            return True
    return False
