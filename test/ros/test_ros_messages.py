"""Message building with stand-in message classes (the conversions rclpy nodes use)."""

from __future__ import annotations

import array
from types import SimpleNamespace

import numpy as np

from vae_ood_monitor.core.diagnostics import DiagnosticEntry, Level
from vae_ood_monitor.core.gate import Velocity
from vae_ood_monitor.core.image import decode_image
from vae_ood_monitor.ros.messages import (bool_msg, diagnostic_array_msg, float32_msg,
                                          image_msg, kl_msg, MessageKit, twist_to_velocity,
                                          velocity_to_twist)


class _Msg(SimpleNamespace):
    """A stand-in message: attributes only, nested defaults per class."""

    defaults: dict[str, object] = {}

    def __init__(self) -> None:
        super().__init__(**{k: v() if callable(v) else v for k, v in self.defaults.items()})


def _cls(class_name: str, /, **defaults: object) -> type:
    return type(class_name, (_Msg,), {'defaults': defaults})


Vector3 = _cls('Vector3', x=0.0, y=0.0, z=0.0)
KIT = MessageKit(
    Bool=_cls('Bool', data=False), Float32=_cls('Float32', data=0.0),
    Float32MultiArray=_cls('Float32MultiArray', data=list,
                           layout=lambda: SimpleNamespace(dim=[], data_offset=0)),
    MultiArrayDimension=_cls('MultiArrayDimension', label='', size=0, stride=0),
    DiagnosticArray=_cls('DiagnosticArray', header=lambda: SimpleNamespace(stamp=None),
                         status=list),
    DiagnosticStatus=_cls('DiagnosticStatus', level=b'\x00', name='', message='',
                          hardware_id='', values=list),
    KeyValue=_cls('KeyValue', key='', value=''),
    Image=_cls('Image', header=None, height=0, width=0, encoding='', is_bigendian=0, step=0,
               data=list),
    Twist=_cls('Twist', linear=Vector3, angular=Vector3))


def test_scalars_are_plain_python_types() -> None:
    msg = bool_msg(KIT, np.bool_(True))
    assert msg.data is True
    value = float32_msg(KIT, np.float32(2.5))
    assert type(value.data) is float and value.data == 2.5


def test_kl_array_layout_and_values() -> None:
    kl = np.array([0.5, 1.25, 3.0])
    msg = kl_msg(KIT, kl)
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'f'
    assert list(msg.data) == [0.5, 1.25, 3.0]
    (dim,) = msg.layout.dim
    assert (dim.label, dim.size, dim.stride) == ('latent', 3, 3)


def test_diagnostics_levels_are_single_bytes() -> None:
    entries = [DiagnosticEntry(Level.WARN, 'm: cam', '2 frames failed', 'cam',
                               (('frames_failed', '2'), ('alert', 'false')))]
    msg = diagnostic_array_msg(KIT, entries, stamp='STAMP')
    assert msg.header.stamp == 'STAMP'
    (status,) = msg.status
    assert status.level == b'\x01'
    assert (status.name, status.message, status.hardware_id) == ('m: cam', '2 frames failed',
                                                                 'cam')
    pairs = [(kv.key, kv.value) for kv in status.values]
    assert pairs == [('frames_failed', '2'), ('alert', 'false')]


def test_image_message_round_trips_through_the_decoder() -> None:
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    msg = image_msg(KIT, rgb, header='H')
    assert (msg.height, msg.width, msg.step, msg.encoding) == (4, 5, 15, 'rgb8')
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'B'
    np.testing.assert_array_equal(decode_image(msg), rgb)


def test_twist_conversions() -> None:
    twist = KIT.Twist()
    twist.linear.x, twist.angular.z = 0.4, -0.2
    velocity = twist_to_velocity(twist)
    assert velocity == Velocity((0.4, 0.0, 0.0), (0.0, 0.0, -0.2))
    back = velocity_to_twist(KIT, velocity.scaled(0.5))
    assert (back.linear.x, back.angular.z) == (0.2, -0.1)
