"""ROS parameters of both nodes as plain data, validated by the core's config classes.

Nothing here imports rclpy: the nodes turn :class:`ParamSpec` records into declared parameters
with descriptors (description, ranges, read-only), and call :func:`monitor_node_config` /
:func:`gate_node_config` to validate values, so the rules live in one place and are unit-tested
without ROS. The YAML files in config/ list the same keys.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import math
from typing import Any, Callable, Mapping

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.gate import GateConfig
from vae_ood_monitor.core.monitor import MonitorConfig
from vae_ood_monitor.core.session import SessionConfig
from vae_ood_monitor.core.topics import camera_name
from vae_ood_monitor.core.typedefs import DecisionMode

__all__ = ['GATE_PARAMS', 'MONITOR_PARAMS', 'QOS_POLICIES', 'GateNodeConfig', 'MonitorNodeConfig',
           'ParamSpec', 'camera_qos', 'check_refused', 'check_value', 'declare_all', 'defaults',
           'gate_node_config', 'monitor_node_config', 'qos_overrides_to_apply',
           'with_live_values']

_KINDS = ('str', 'str_list', 'int', 'float', 'bool')


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default, type, description and allowed values."""

    name: str
    default: Any
    kind: str
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    #: applied when a lifecycle node is next configured (a plain node: fixed at start-up)
    read_only: bool = False
    #: a safety setting: fixed at start-up for every node, so nothing on the ROS graph can
    #: loosen it while the robot runs
    fixed: bool = False
    #: a list parameter whose entries must be non-empty strings
    non_empty: bool = False

    @property
    def live(self) -> bool:
        """Whether a change takes effect at once (neither on-configure nor fixed)."""
        return not (self.read_only or self.fixed)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f'kind {self.kind!r} must be one of {_KINDS}')


MONITOR_PARAMS = (
    ParamSpec('model_path', '', 'str', 'Path of the .vood model bundle to load (required).',
              read_only=True),
    ParamSpec('flow_model_path', '', 'str', 'Optional second bundle judging the same cameras, '
              'usually a flow bundle (camera shake, frozen or dropped frames, motion changes) '
              'beside a frame bundle: its alerts are ORed into the alert of each camera.',
              read_only=True),
    ParamSpec('image_topics', ['camera/image_raw'], 'str_list',
              'Camera topics to monitor; topics ending in /compressed carry '
              'sensor_msgs/CompressedImage.', read_only=True, non_empty=True),
    ParamSpec('qos_reliability', 'best_effort', 'str',
              'Reliability of the camera subscriptions (best_effort matches most drivers; a '
              'reliable subscriber receives nothing from a best-effort publisher).',
              choices=('best_effort', 'reliable'), read_only=True),
    ParamSpec('qos_depth', 1, 'int', 'Queue depth of the camera subscriptions (1: only the '
              'newest frame, stale frames are dropped).', 1, 100, read_only=True),
    ParamSpec('providers', ['cpu'], 'str_list',
              'ONNX Runtime execution providers in order of preference: cpu, cuda, tensorrt.',
              read_only=True, non_empty=True),
    ParamSpec('provider_fallback', 'next', 'str', "When a provider is unavailable: 'next' "
              "moves on (and reports it in diagnostics), 'fail' refuses to activate.",
              choices=('next', 'fail'), read_only=True),
    ParamSpec('threads', 1, 'int', 'ONNX Runtime intra-op threads (0: let it decide).', 0, 64,
              read_only=True),
    ParamSpec('decision', 'auto', 'str', "Alert rule: 'cusum' (sequential test), 'threshold' "
              "(per frame) or 'auto' (cusum when the bundle is calibrated for it).",
              choices=('auto', 'cusum', 'threshold'), read_only=True),
    ParamSpec('clear_frames', 10, 'int', 'Hysteresis: frames without a trigger before an alert '
              'clears.', 1, 10_000, read_only=True),
    ParamSpec('cusum_cap', 0.0, 'float', 'Upper bound of the CUSUM statistic in units of tau '
              '(bounds the time an alarm takes to clear); 0: the cap the bundle was calibrated '
              'with, else >= 1.', 0.0, 100.0, read_only=True),
    ParamSpec('frozen_frames', 0, 'int', 'Alert (trigger "frozen") while a camera repeats one '
              'frame this many times in a row: a driver republishing its last buffer with '
              'fresh stamps. 0: off (simulated cameras repeat frames while the robot stands '
              'still); else >= 2, e.g. 30 for 1 s at 30 Hz on a real camera.', 0, 100_000,
              read_only=True),
    ParamSpec('publish_debug_image', False, 'bool', 'Publish ood/<camera>/debug_image (frame '
              'with score bar and alert banner) for rviz.'),
    ParamSpec('debug_image_width', 320, 'int', 'Width of the debug image in pixels.', 32, 4096),
    ParamSpec('heartbeat_period_s', 0.1, 'float', 'Period of ood/alert heartbeats (s); the gate '
              'treats a silent monitor as stale.', 0.01, 10.0, read_only=True),
    ParamSpec('diagnostics_period_s', 1.0, 'float', 'Period of /diagnostics messages (s).',
              0.1, 60.0, read_only=True),
    ParamSpec('stale_after_s', 1.0, 'float', 'A camera without a processed frame for this long '
              '(s, node clock), or without any since activation, is stale.', 0.05, 600.0,
              fixed=True),
    ParamSpec('alert_on_stale', True, 'bool', 'Raise the alert while a camera is stale: an '
              'unwatched camera is not a safe one.', fixed=True),
    ParamSpec('max_frame_age_s', 1.0, 'float', 'A frame whose header stamp is further than this '
              'from the node clock (s; old frames from a frozen driver, clock trouble, a bag '
              'replayed without --clock) is not judged: its camera counts as stale. 0 disables '
              'the check; frames without a stamp are not checked.', 0.0, 600.0, fixed=True),
    ParamSpec('latency_budget_ms', 0.0, 'float', 'Warn in diagnostics when p99 total latency '
              'exceeds this (ms; 0 disables).', 0.0, 10_000.0),
    ParamSpec('autostart', True, 'bool', 'Configure and activate the lifecycle node at start '
              '(set false when a lifecycle manager drives the transitions).', read_only=True),
)

GATE_PARAMS = (
    ParamSpec('action', 'stop', 'str', "What an OOD alert does: 'stop' or 'slowdown'.",
              choices=('stop', 'slowdown'), fixed=True),
    ParamSpec('slowdown_ratio', 0.3, 'float', 'Velocity scale while slowed down.', 0.0, 1.0),
    ParamSpec('monitor_timeout_s', 0.5, 'float', 'No ood/alert message for this long (s) means '
              'the monitor is stale: STOP.', 0.01, 60.0, fixed=True),
    ParamSpec('clear_hold_s', 1.0, 'float', 'The alert must be clear (with fresh messages) this '
              'long (s) before motion resumes.', 0.0, 600.0, fixed=True),
    ParamSpec('stop_publish_s', 1.0, 'float', 'After stopping, publish zero velocity this long '
              '(s), then go quiet.', 0.0, 600.0),
    ParamSpec('period_s', 0.05, 'float', 'Gate timer period (s): staleness is detected within '
              'one period.', 0.005, 1.0, read_only=True),
    ParamSpec('stamped', False, 'bool', 'Use geometry_msgs/TwistStamped (Nav2, twist_mux on '
              'Jazzy) instead of Twist.', read_only=True),
)


def defaults(specs: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """Parameter name -> default value."""
    return {s.name: s.default for s in specs}


def check_value(spec: ParamSpec, value: Any) -> str | None:
    """Return why ``value`` is not allowed for ``spec`` (None when it is)."""
    kind = spec.kind
    if kind == 'bool' and not isinstance(value, bool):
        return f'{spec.name} must be true or false, got {value!r}'
    if kind == 'str' and not isinstance(value, str):
        return f'{spec.name} must be a string, got {value!r}'
    if kind == 'str_list' and not (isinstance(value, (list, tuple))
                                   and all(isinstance(v, str) for v in value)):
        return f'{spec.name} must be a list of strings, got {value!r}'
    if kind == 'str_list' and spec.non_empty and (not value or not all(value)):
        return f'{spec.name} {list(value)!r} must list at least one entry, none of them empty'
    if kind in ('int', 'float'):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                kind == 'int' and not isinstance(value, int)):
            return f'{spec.name} must be {"an integer" if kind == "int" else "a number"}, got ' \
                   f'{value!r}'
        if not math.isfinite(value) or (spec.low is not None and value < spec.low) or (
                spec.high is not None and value > spec.high):
            return f'{spec.name} {value!r} is outside [{spec.low:g}, {spec.high:g}]'
    if spec.choices and value not in spec.choices:
        return f'{spec.name} {value!r} must be one of: {", ".join(spec.choices)}'
    return None


_EXPECTED = {'str': 'a string', 'str_list': 'a list of strings', 'int': 'an integer',
             'float': 'a number written with a decimal point (1.0, not 1: rclpy refuses an '
                      'integer for a float parameter)',
             'bool': 'true or false'}


def _expected(spec: ParamSpec) -> str:
    text = _EXPECTED[spec.kind]
    if spec.low is not None and spec.high is not None:
        text += f' in [{spec.low:g}, {spec.high:g}]'
    if spec.choices:
        text += f', one of: {", ".join(spec.choices)}'
    return text


def declare_all(specs: tuple[ParamSpec, ...], declare: Callable[[ParamSpec, bool], object],
                refused: tuple[type[Exception], ...],
                out_of_range: tuple[type[Exception], ...] = ()) -> dict[str, str]:
    """Declare every spec with ``declare(spec, ignore_override)``; return what rclpy refused.

    rclpy's declare_parameter raises when the value given at start-up (parameter file, launch
    argument, ``-p``) has the wrong type (InvalidParameterTypeException: a string, or 1, for a
    float parameter) or lies outside the descriptor's range (InvalidParameterValueException);
    uncaught, that escapes the node's constructor as a traceback. A refused parameter is
    declared again with its default, ignoring the start-up value, and name -> what was wrong and
    what to write instead is returned, for the node's "invalid parameters" path
    (:func:`check_refused`). ``out_of_range``: those of the refused exceptions that mean a
    value of the right type outside the range (the hint then names the range, not the type).
    """
    problems = {}
    for spec in specs:
        try:
            declare(spec, False)
        except refused as err:
            declare(spec, True)
            detail = err.args[0] if err.args else err  # Humble's args also hold the name
            if isinstance(err, out_of_range) and spec.low is not None:
                hint = f'a value in [{spec.low:g}, {spec.high:g}]'
            else:
                hint = _expected(spec)
            problems[spec.name] = f'{spec.name}: {detail}; expected {hint}'
    return problems


def check_refused(problems: Mapping[str, str]) -> None:
    """Raise ConfigError naming the start-up values rclpy refused (see :func:`declare_all`)."""
    if problems:
        raise ConfigError(f'{"; ".join(problems.values())}. rclpy refused these start-up values '
                          'and the defaults stand in: fix them in the parameter file or launch '
                          'arguments.')


def _checked(specs: tuple[ParamSpec, ...], values: Mapping[str, Any]) -> dict[str, Any]:
    known = {s.name: s for s in specs}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f'Unknown parameter(s) {unknown!r}; known: {", ".join(known)}.')
    merged = {**defaults(specs), **values}
    for spec in specs:
        reason = check_value(spec, merged[spec.name])
        if reason:
            raise ConfigError(reason + '.')
    return merged


@dataclass(frozen=True)
class MonitorNodeConfig:
    """Everything the monitor node needs, validated."""

    model_path: str
    image_topics: tuple[str, ...]
    qos_reliability: str
    qos_depth: int
    monitor: MonitorConfig
    publish_debug_image: bool
    debug_image_width: int
    heartbeat_period_s: float
    diagnostics_period_s: float
    stale_after_s: float
    alert_on_stale: bool
    latency_budget_ms: float
    autostart: bool
    max_frame_age_s: float = 1.0
    flow_model_path: str = ''


def monitor_node_config(values: Mapping[str, Any]) -> MonitorNodeConfig:
    """Validate monitor-node parameters (missing ones take their defaults)."""
    v = _checked(MONITOR_PARAMS, values)
    if not v['model_path']:
        raise ConfigError('model_path is empty; set it to the .vood bundle to load (e.g. '
                          'ros2 launch vae_ood_monitor monitor_launch.py model_path:=/path.vood).')
    topics = tuple(t for t in v['image_topics'] if t)
    if not topics or len(set(topics)) != len(topics):
        raise ConfigError(f'image_topics {v["image_topics"]!r} must list at least one camera '
                          'topic, each once.')
    cameras: dict[str, str] = {}
    for topic in topics:  # raises on a topic that gives no camera name
        name = camera_name(topic)
        if name in cameras:  # its outputs would collide and one camera would go unwatched
            raise ConfigError(f'image_topics {cameras[name]!r} and {topic!r} both give the '
                              f'camera name {name!r} (its ood/{name}/... outputs); list each '
                              'camera once, raw or compressed.')
        cameras[name] = topic
    session = SessionConfig(providers=tuple(v['providers']), threads=v['threads'],
                            fallback=v['provider_fallback'])
    decision = None if v['decision'] == 'auto' else DecisionMode(v['decision'])
    monitor = MonitorConfig(decision=decision, session=session, clear_frames=v['clear_frames'],
                            cusum_cap=v['cusum_cap'] or None, frozen_frames=v['frozen_frames'])
    return MonitorNodeConfig(
        model_path=v['model_path'], flow_model_path=v['flow_model_path'], image_topics=topics,
        qos_reliability=v['qos_reliability'],
        qos_depth=v['qos_depth'], monitor=monitor,
        publish_debug_image=v['publish_debug_image'], debug_image_width=v['debug_image_width'],
        heartbeat_period_s=float(v['heartbeat_period_s']),
        diagnostics_period_s=float(v['diagnostics_period_s']),
        stale_after_s=float(v['stale_after_s']), alert_on_stale=v['alert_on_stale'],
        latency_budget_ms=float(v['latency_budget_ms']), autostart=v['autostart'],
        max_frame_age_s=float(v['max_frame_age_s']))


#: The policies QoSOverridingOptions.with_default_policies() declares as
#: ``qos_overrides.<topic>.subscription.<policy>`` parameters.
QOS_POLICIES = ('history', 'depth', 'reliability')


def camera_qos(config: MonitorNodeConfig) -> dict[str, Any]:
    """Return the camera subscriptions' QoS policies, spelt as rclpy's qos_overrides params."""
    return {'history': 'keep_last', 'depth': config.qos_depth,
            'reliability': config.qos_reliability}


def qos_overrides_to_apply(first: Mapping[str, Any] | None,
                           declared: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the policies whose ``qos_overrides.<topic>.subscription.*`` value should apply.

    rclpy declares those parameters read-only when the first subscription on the topic is
    created, each with the value given at start-up (``--ros-args -p``, launch parameters) or else
    the profile the node asked for then; they cannot be changed or undeclared afterwards, and a
    later subscription on the topic (after cleanup and configure) gets the same values back.
    Applied as they are, they would silently undo a changed ``qos_reliability`` or
    ``qos_depth``. So: for the topic's first subscription (``first`` is None) all policies, which
    declares them; afterwards only those whose ``declared`` value differs from ``first`` (the
    profile of that first subscription), i.e. the start-up overrides, which hold for the life of
    the node. An override equal to the first profile cannot be told apart and yields to later
    ``qos_*`` changes.
    """
    if first is None:
        return QOS_POLICIES
    return tuple(p for p in QOS_POLICIES if declared[p] != first[p])


def with_live_values(config: MonitorNodeConfig, specs: tuple[ParamSpec, ...],
                     values: Mapping[str, Any]) -> MonitorNodeConfig:
    """Return ``config`` with the run-time parameters among ``values`` changed.

    The others (``read_only`` specs) are left alone: they take effect when the node is next
    configured. Values must already be valid (:func:`check_value`).
    """
    live = {s.name: s for s in specs if s.live}
    changes = {name: float(value) if live[name].kind == 'float' else value
               for name, value in values.items() if name in live}
    return replace(config, **changes) if changes else config


@dataclass(frozen=True)
class GateNodeConfig:
    """Everything the gate node needs, validated."""

    gate: GateConfig
    period_s: float
    stamped: bool


def gate_node_config(values: Mapping[str, Any]) -> GateNodeConfig:
    """Validate gate-node parameters (missing ones take their defaults)."""
    v = _checked(GATE_PARAMS, values)
    gate = GateConfig(action=v['action'], slowdown_ratio=float(v['slowdown_ratio']),
                      monitor_timeout_s=float(v['monitor_timeout_s']),
                      clear_hold_s=float(v['clear_hold_s']),
                      stop_publish_s=float(v['stop_publish_s']))
    if v['period_s'] > gate.monitor_timeout_s:
        raise ConfigError(f'period_s {v["period_s"]!r} must not exceed monitor_timeout_s '
                          f'{gate.monitor_timeout_s!r}, or staleness is noticed late.')
    return GateNodeConfig(gate, float(v['period_s']), v['stamped'])
