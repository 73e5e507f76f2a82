"""Build ROS messages from core results, with the message classes passed in.

The node hands in the real rclpy classes (:func:`rclpy_kit`); unit tests hand in plain stand-ins,
so every conversion is tested without ROS. Field values follow rclpy's rules on every distro:
``uint8[]`` / ``float32[]`` as ``array.array`` (fast, and accepted by Humble's field checks),
plain ``bool`` / ``float`` scalars (numpy scalars are rejected), and DiagnosticStatus levels
as one byte.
"""

from __future__ import annotations

import array
from dataclasses import dataclass
from typing import Any, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.gate import Velocity

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from vae_ood_monitor.core.diagnostics import DiagnosticEntry

__all__ = ['MessageKit', 'bool_msg', 'diagnostic_array_msg', 'float32_msg', 'image_msg',
           'kl_msg', 'rclpy_kit', 'twist_to_velocity', 'velocity_to_twist']


@dataclass(frozen=True)
class MessageKit:
    """The message classes the conversions need."""

    Bool: Any  # noqa: N815 (message class names)
    Float32: Any  # noqa: N815
    Float32MultiArray: Any  # noqa: N815
    MultiArrayDimension: Any  # noqa: N815
    DiagnosticArray: Any  # noqa: N815
    DiagnosticStatus: Any  # noqa: N815
    KeyValue: Any  # noqa: N815
    Image: Any  # noqa: N815
    String: Any = None  # noqa: N815
    Twist: Any = None  # noqa: N815
    TwistStamped: Any = None  # noqa: N815


def rclpy_kit() -> MessageKit:
    """Collect the real ROS 2 message classes (needs a sourced ROS installation)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from geometry_msgs.msg import Twist, TwistStamped
    from sensor_msgs.msg import Image
    from std_msgs.msg import Bool, Float32, Float32MultiArray, MultiArrayDimension, String
    return MessageKit(Bool, Float32, Float32MultiArray, MultiArrayDimension, DiagnosticArray,
                      DiagnosticStatus, KeyValue, Image, String, Twist, TwistStamped)


def bool_msg(kit: MessageKit, value: bool) -> Any:
    """std_msgs/Bool."""
    msg = kit.Bool()
    msg.data = bool(value)
    return msg


def float32_msg(kit: MessageKit, value: float) -> Any:
    """std_msgs/Float32 (non-finite values pass through as float)."""
    msg = kit.Float32()
    msg.data = float(value)
    return msg


def kl_msg(kit: MessageKit, kl: NDArray[np.float64], label: str = 'latent') -> Any:
    """std_msgs/Float32MultiArray with one layout dimension named ``label``."""
    msg = kit.Float32MultiArray()
    dim = kit.MultiArrayDimension()
    dim.label = label
    dim.size = int(kl.size)
    dim.stride = int(kl.size)
    msg.layout.dim = [dim]
    msg.layout.data_offset = 0
    msg.data = array.array('f', np.asarray(kl, np.float32).tobytes())
    return msg


def diagnostic_array_msg(kit: MessageKit, entries: Sequence[DiagnosticEntry],
                         stamp: Any) -> Any:
    """diagnostic_msgs/DiagnosticArray from core diagnostic entries."""
    msg = kit.DiagnosticArray()
    msg.header.stamp = stamp
    statuses = []
    for entry in entries:
        status = kit.DiagnosticStatus()
        status.level = bytes([int(entry.level)])
        status.name = entry.name
        status.message = entry.message
        status.hardware_id = entry.hardware_id
        values = []
        for key, value in entry.values:
            pair = kit.KeyValue()
            pair.key, pair.value = key, value
            values.append(pair)
        status.values = values
        statuses.append(status)
    msg.status = statuses
    return msg


def image_msg(kit: MessageKit, rgb: NDArray[np.uint8], header: Any) -> Any:
    """sensor_msgs/Image (rgb8) of an (h, w, 3) uint8 array."""
    rgb = np.ascontiguousarray(rgb)
    msg = kit.Image()
    msg.header = header
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = 'rgb8'
    msg.is_bigendian = 0
    msg.step = int(rgb.shape[1] * 3)
    msg.data = array.array('B', rgb.tobytes())
    return msg


def twist_to_velocity(twist: Any) -> Velocity:
    """geometry_msgs/Twist -> core Velocity."""
    lin, ang = twist.linear, twist.angular
    return Velocity((float(lin.x), float(lin.y), float(lin.z)),
                    (float(ang.x), float(ang.y), float(ang.z)))


def velocity_to_twist(kit: MessageKit, velocity: Velocity) -> Any:
    """Core Velocity -> geometry_msgs/Twist."""
    twist = kit.Twist()
    twist.linear.x, twist.linear.y, twist.linear.z = velocity.linear
    twist.angular.x, twist.angular.y, twist.angular.z = velocity.angular
    return twist
