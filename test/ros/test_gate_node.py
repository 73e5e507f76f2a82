"""gate_node as a real process over DDS, alone and behind a real monitor_node."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import time

import numpy as np
import pytest

from ros_harness import (Bool, Image, image_msg, RosGraph, String, Twist, TwistStamped)
from vae_ood_monitor.core.bundle import save_bundle
from vae_ood_monitor.core.manifest import Partition
from vood_testing import make_bundle

NODE = 'ood_gate'
FRAME = np.full((12, 16, 3), 100, np.uint8)


def twist(x: float = 1.0, yaw: float = 0.5) -> Twist:
    msg = Twist()
    msg.linear.x, msg.angular.z = x, yaw
    return msg


class Driver:
    """Sends a velocity command (and optionally an alert) on every call."""

    def __init__(self, graph: RosGraph, stamped: bool = False) -> None:
        self.stamped = stamped
        self.cmd = graph.publisher(TwistStamped if stamped else Twist, 'cmd_vel_in')
        self.alert_pub = graph.publisher(Bool, 'ood/alert')
        self.alert: bool | None = None

    def __call__(self) -> None:
        if self.stamped:
            msg = TwistStamped()
            msg.header.frame_id = 'base_link'
            msg.twist = twist()
            self.cmd.publish(msg)
        else:
            self.cmd.publish(twist())
        if self.alert is not None:
            self.alert_pub.publish(Bool(data=self.alert))


def test_stale_at_start_then_pass_stop_and_resume_after_the_hold(graph: RosGraph) -> None:
    gate = graph.gate(clear_hold_s=0.5)
    out = graph.subscribe(Twist, 'cmd_vel_out')
    states = graph.subscribe(String, 'gate/state')
    locks = graph.subscribe(Bool, 'gate/lock')
    drive = Driver(graph)
    # no ood/alert yet: STALE, and commands come out as zero
    assert graph.spin_until(lambda: states and out and locks, each=drive)
    assert states[-1].data == 'STALE' and locks[-1].data and out[-1].linear.x == 0.0
    drive.alert = False
    assert graph.spin_until(lambda: out[-1].linear.x == 1.0 and states[-1].data == 'PASS',
                            each=drive)
    drive.alert = True
    assert graph.spin_until(lambda: states[-1].data == 'STOP' and out[-1].linear.x == 0.0,
                            each=drive)
    drive.alert = False
    cleared = time.monotonic()
    assert graph.spin_until(lambda: states[-1].data == 'PASS', each=drive)
    assert time.monotonic() - cleared >= 0.45  # held for clear_hold_s
    assert gate.alive()


def test_slowdown_scales_and_stamped_commands_keep_their_frame(graph: RosGraph) -> None:
    graph.gate(action='slowdown', slowdown_ratio=0.5, stamped=True, clear_hold_s=0.2)
    out = graph.subscribe(TwistStamped, 'cmd_vel_out')
    states = graph.subscribe(String, 'gate/state')
    drive = Driver(graph, stamped=True)
    drive.alert = False  # a monitor has to prove itself clear before slowing instead of stopping
    assert graph.spin_until(lambda: states and states[-1].data == 'PASS', each=drive)
    drive.alert = True
    assert graph.spin_until(lambda: states and states[-1].data == 'SLOW' and out
                            and out[-1].twist.linear.x == 0.5, each=drive)
    assert out[-1].twist.angular.z == 0.25 and out[-1].header.frame_id == 'base_link'


def test_safety_settings_are_fixed_and_the_others_change(graph: RosGraph) -> None:
    graph.gate()
    for name, value in (('monitor_timeout_s', 60.0), ('action', 'slowdown'),
                        ('clear_hold_s', 0.0)):
        (result,) = graph.set_parameters(NODE, **{name: value})
        assert not result.successful and 'read-only' in result.reason, name
    (ratio,) = graph.set_parameters(NODE, slowdown_ratio=0.8)
    assert ratio.successful
    (bad,) = graph.set_parameters(NODE, slowdown_ratio=2.0)
    assert not bad.successful


def test_an_out_of_range_start_up_value_names_its_range(graph: RosGraph) -> None:
    gate = graph.gate(slowdown_ratio=2.0)
    assert graph.spin_until(lambda: not gate.alive(), timeout=10.0)
    output = gate.output()
    assert gate.stop() == 2
    assert 'slowdown_ratio' in output and 'expected a value in [0, 1]' in output
    assert 'decimal point' not in output


def test_a_killed_monitor_makes_the_gate_stale_in_time(graph: RosGraph, tmp_path: Path) -> None:
    partition = Partition('all', tuple(range(4)), calibration_scores=np.linspace(0.5, 1.5, 200),
                          threshold=100.0)
    model = save_bundle(make_bundle(calibrated=False).with_manifest(partitions=(partition,)),
                        tmp_path / 'm.vood')
    monitor = graph.monitor(model)
    graph.gate(monitor_timeout_s=0.3, period_s=0.05)
    states = graph.subscribe(String, 'gate/state')
    camera = graph.publisher(Image, 'camera/image_raw')
    drive = Driver(graph)

    def feed() -> None:
        camera.publish(image_msg(FRAME))
        drive()

    assert graph.spin_until(lambda: states and states[-1].data == 'PASS', each=feed)
    monitor.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    assert graph.spin_until(lambda: states[-1].data == 'STALE', each=drive, period=0.005)
    waited = time.monotonic() - killed
    # monitor_timeout_s + one period, plus the delivery of the last heartbeat and state
    assert waited <= 0.3 + 0.05 + 0.1, waited


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_clean_exit(graph: RosGraph, sig: int) -> None:
    for _ in range(int(os.environ.get('VOOD_STOP_REPEATS', '3'))):
        gate = graph.gate(period_s=0.005)
        out = graph.subscribe(Twist, 'cmd_vel_out')
        drive = Driver(graph)
        drive.alert = False
        assert graph.spin_until(lambda: len(out) > 10, each=drive)
        assert gate.stop(sig) == 0
        output = gate.output()
        assert 'Traceback' not in output and '[ERROR]' not in output, output
