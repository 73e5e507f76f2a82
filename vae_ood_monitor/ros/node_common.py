"""rclpy helpers shared by the nodes: declaring parameters from specs, time, spinning."""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable, TYPE_CHECKING

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
import rclpy
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from vae_ood_monitor.core.errors import VaeOodError
from vae_ood_monitor.ros.params import check_value, declare_all

if TYPE_CHECKING:
    from rclpy.node import Node

    from vae_ood_monitor.ros.params import ParamSpec

__all__ = ['declare_params', 'guard_transitions', 'read_params', 'run_node', 'stamp_to_ns',
           'validate_on_set']

#: How long one spin waits for work before it looks at the stop flag again (s).
SPIN_PERIOD_S = 0.1


def _descriptor(spec: ParamSpec, lifecycle: bool) -> ParameterDescriptor:
    text = spec.description
    if spec.fixed:
        text += ' (a safety setting: fixed at start-up)'
    elif spec.read_only:
        text += (' (applied when the node is configured)' if lifecycle
                 else ' (fixed at start-up)')
    if spec.choices:
        text += f' Choices: {", ".join(spec.choices)}.'
    # a plain node has no configure step: its start-up parameters are read-only for rclpy,
    # which refuses `ros2 param set` on them instead of accepting a change never applied
    descriptor = ParameterDescriptor(description=text,
                                     read_only=spec.fixed or (spec.read_only and not lifecycle))
    if spec.kind == 'float' and spec.low is not None and spec.high is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(spec.low), to_value=float(spec.high), step=0.0)]
    elif spec.kind == 'int' and spec.low is not None and spec.high is not None:
        descriptor.integer_range = [IntegerRange(
            from_value=int(spec.low), to_value=int(spec.high), step=1)]
    if spec.choices:
        descriptor.additional_constraints = 'one of: ' + ', '.join(spec.choices)
    return descriptor


def declare_params(node: Node, specs: tuple[ParamSpec, ...], *,
                   lifecycle: bool) -> dict[str, str]:
    """Declare every parameter with its descriptor (ranges, description).

    The type comes from the default, which is never an empty list (rclpy would make that a
    byte array), and float defaults are floats, so YAML overrides must be written as 1.0.
    ``lifecycle``: read-only specs take effect on the next configure; otherwise they are
    read-only parameters (set once, from overrides, at start-up). Returns the start-up values
    rclpy refused (wrong type, out of range) by name, declared with their defaults instead
    (:func:`~vae_ood_monitor.ros.params.declare_all`); pass it to ``check_refused``.
    """
    def declare(spec: ParamSpec, ignore_override: bool) -> None:
        node.declare_parameter(spec.name, spec.default, _descriptor(spec, lifecycle),
                               ignore_override=ignore_override)

    return declare_all(specs, declare,
                       (InvalidParameterTypeException, InvalidParameterValueException),
                       (InvalidParameterValueException,))


def read_params(node: Node, specs: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """Return the current values of the given parameters (lists as Python lists)."""
    values = {}
    for spec in specs:
        value = node.get_parameter(spec.name).value
        values[spec.name] = list(value) if spec.kind == 'str_list' else value
    return values


def validate_on_set(specs: tuple[ParamSpec, ...],
                    apply: Callable[[dict[str, Any]], None] | None = None
                    ) -> Callable[[list[Any]], SetParametersResult]:
    """Build an on-set-parameters callback that rejects values the specs do not allow.

    ``apply`` receives the new values once all of them are valid and puts the run-time ones
    into effect; a :class:`VaeOodError` it raises (e.g. settings that contradict each other)
    rejects the change with its message.
    """
    known = {s.name: s for s in specs}

    def callback(params: list[Any]) -> SetParametersResult:
        values = {}
        for param in params:
            spec = known.get(param.name)
            if spec is None:
                continue
            value = list(param.value) if spec.kind == 'str_list' else param.value
            reason = check_value(spec, value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            values[spec.name] = value
        if apply is not None and values:
            try:
                apply(values)
            except VaeOodError as err:
                return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    return callback


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def guard_transitions(node: Any) -> None:
    """Make a lifecycle node's ``~/change_state`` service refuse invalid requests.

    rclpy (7.x) raises RCLError out of the service callback when a transition *id* is not
    registered for the current state (by label it answers success=false), which kills the
    node: anything on the graph could crash the safety monitor. The guard answers
    success=false and logs what was asked instead.
    """
    service = getattr(node, '_service_change_state', None)
    if service is None:  # another rclpy: nothing to guard
        return
    callback = service.callback

    def guarded(request: Any, response: Any) -> Any:
        try:
            return callback(request, response)
        except Exception as err:
            transition = request.transition
            node.get_logger().warning(
                f'lifecycle transition refused (id {transition.id}, label '
                f'{transition.label!r}): {err}')
            response.success = False
            return response

    service.callback = guarded


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """Init rclpy, spin the node until SIGINT or SIGTERM, clean up; return 0.

    The node's own handlers take the signals (rclpy's are off): they only set a flag, the spin
    loop sees it within ``SPIN_PERIOD_S``, and the node is closed (its worker stopped) while
    the context is still valid, then destroyed, then rclpy shut down. With rclpy's handlers
    the context died under a running wait set or a publishing worker, and a stop under load
    could end in a traceback and exit code 1.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    node = None
    try:
        node = factory()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            close = getattr(node, 'close', None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return 0
