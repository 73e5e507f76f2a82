"""The velocity gate node: ``cmd_vel_in`` -> ``cmd_vel_out``, stopped or slowed on an OOD alert.

A thin rclpy adapter over :class:`vae_ood_monitor.core.gate.GatePolicy` (all decisions live
there and are unit-tested with a fake clock). Subscribes ``cmd_vel_in`` (Twist, or TwistStamped
with ``stamped: true``) and ``ood/alert``; publishes ``cmd_vel_out``, ``gate/state``
(std_msgs/String: PASS, SLOW, STOP, STALE) and ``gate/lock`` (std_msgs/Bool, true while STOP or
STALE, usable as a twist_mux lock) every ``period_s``. Time is the node clock, so replays with
``use_sim_time`` behave like live runs.
"""

from __future__ import annotations

from typing import Any

from geometry_msgs.msg import Twist, TwistStamped
from rclpy.node import Node
from std_msgs.msg import Bool, String

from vae_ood_monitor.core.errors import VaeOodError
from vae_ood_monitor.core.gate import GatePolicy, GateState, Velocity
from vae_ood_monitor.ros.messages import rclpy_kit, twist_to_velocity, velocity_to_twist
from vae_ood_monitor.ros.node_common import (declare_params, read_params, run_node,
                                             validate_on_set)
from vae_ood_monitor.ros.params import check_refused, gate_node_config, GATE_PARAMS

__all__ = ['GateNode', 'main']


class GateNode(Node):
    """Forward, scale or stop velocity commands according to the OOD monitor."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('ood_gate', **kwargs)
        refused = declare_params(self, GATE_PARAMS, lifecycle=False)
        self.add_on_set_parameters_callback(validate_on_set(GATE_PARAMS, self._apply))
        try:
            check_refused(refused)
            config = gate_node_config(read_params(self, GATE_PARAMS))
        except VaeOodError as err:
            self.get_logger().fatal(f'invalid parameters: {err}')
            raise SystemExit(2) from err
        self._config = config
        self._kit = rclpy_kit()
        self._policy = GatePolicy(config.gate, self._now())
        self._frame_id = ''
        self._last_state: GateState | None = None
        twist_type = TwistStamped if config.stamped else Twist
        self._out = self.create_publisher(twist_type, 'cmd_vel_out', 10)
        self._state_pub = self.create_publisher(String, 'gate/state', 10)
        self._lock_pub = self.create_publisher(Bool, 'gate/lock', 10)
        self.create_subscription(twist_type, 'cmd_vel_in', self._on_command, 10)
        self.create_subscription(Bool, 'ood/alert', self._on_alert, 10)
        self.create_timer(config.period_s, self._on_tick)
        self.get_logger().info(
            f'gate: action {config.gate.action.value}, monitor timeout '
            f'{config.gate.monitor_timeout_s} s, clear hold {config.gate.clear_hold_s} s, '
            f'{"TwistStamped" if config.stamped else "Twist"}; STALE until ood/alert arrives')

    def _apply(self, values: dict[str, Any]) -> None:
        """Put changed parameters into effect (the gate's state carries over)."""
        config = gate_node_config({**read_params(self, GATE_PARAMS), **values})
        self._config = config
        self._policy.reconfigure(config.gate)
        self.get_logger().info(f'gate parameters changed: {values}')

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_alert(self, msg: Any) -> None:
        try:
            self._report(self._policy.on_alert(bool(msg.data), self._now()))
        except Exception as err:
            self.get_logger().error(f'alert handling failed: {err}', throttle_duration_sec=5.0)

    def _on_command(self, msg: Any) -> None:
        try:
            if self._config.stamped:
                self._frame_id = msg.header.frame_id
                command = twist_to_velocity(msg.twist)
            else:
                command = twist_to_velocity(msg)
            output = self._policy.on_command(command, self._now())
            if output.command is not None:
                self._publish(output.command, msg.header if self._config.stamped else None)
            self._report(output.state)
        except Exception as err:
            self.get_logger().error(f'command handling failed: {err}', throttle_duration_sec=5.0)

    def _on_tick(self) -> None:
        try:
            output = self._policy.tick(self._now())
            if output.command is not None:
                self._publish(output.command, None)
            self._report(output.state, always=True)
        except Exception as err:
            self.get_logger().error(f'gate tick failed: {err}', throttle_duration_sec=5.0)

    def _publish(self, velocity: Velocity, header: Any) -> None:
        twist = velocity_to_twist(self._kit, velocity)
        if not self._config.stamped:
            self._out.publish(twist)
            return
        msg = TwistStamped()
        if header is not None:
            msg.header = header
        else:
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.header.frame_id = self._frame_id
        msg.twist = twist
        self._out.publish(msg)

    def _report(self, state: GateState, always: bool = False) -> None:
        if state is not self._last_state:
            # one severity per call site: rclpy's logger raises ValueError when a call site
            # changes severity, so the two levels need two calls
            if state.locked:
                self.get_logger().warning(f'gate state {state.value}')
            else:
                self.get_logger().info(f'gate state {state.value}')
        if always or state is not self._last_state:
            text = String()
            text.data = state.value
            self._state_pub.publish(text)
            lock = Bool()
            lock.data = state.locked
            self._lock_pub.publish(lock)
        self._last_state = state


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run vae_ood_monitor gate_node``."""
    return run_node(GateNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
