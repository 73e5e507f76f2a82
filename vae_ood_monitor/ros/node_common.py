"""rclpy helpers shared by the nodes: declaring parameters from specs, time, spinning."""

from __future__ import annotations

from typing import Any, Callable, TYPE_CHECKING

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
import rclpy
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException

from vae_ood_monitor.core.errors import VaeOodError
from vae_ood_monitor.ros.params import check_value, declare_all

if TYPE_CHECKING:
    from rclpy.node import Node

    from vae_ood_monitor.ros.params import ParamSpec

__all__ = ['declare_params', 'read_params', 'run_node', 'stamp_to_ns', 'validate_on_set']


def _descriptor(spec: ParamSpec, lifecycle: bool) -> ParameterDescriptor:
    text = spec.description
    if spec.read_only:
        text += (' (applied when the node is configured)' if lifecycle
                 else ' (fixed at start-up)')
    if spec.choices:
        text += f' Choices: {", ".join(spec.choices)}.'
    # a plain node has no configure step: its start-up parameters are read-only for rclpy,
    # which refuses `ros2 param set` on them instead of accepting a change never applied
    descriptor = ParameterDescriptor(description=text,
                                     read_only=spec.read_only and not lifecycle)
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
                       (InvalidParameterTypeException, InvalidParameterValueException))


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


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """Init rclpy, spin the node until shutdown, clean up; return 0 (launch_testing expects it)."""
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            close = getattr(node, 'close', None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
