"""Parameter specs, validation and the shipped YAML files (no ROS needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import yaml

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.gate import GateAction
from vae_ood_monitor.core.typedefs import DecisionMode
from vae_ood_monitor.ros.params import (camera_qos, check_refused, check_value, declare_all,
                                        defaults, gate_node_config, GATE_PARAMS,
                                        monitor_node_config, MONITOR_PARAMS, ParamSpec,
                                        qos_overrides_to_apply, QOS_POLICIES, with_live_values)

ROOT = Path(__file__).resolve().parents[2]


def _yaml(name: str, node: str) -> dict[str, object]:
    data = yaml.safe_load((ROOT / 'config' / name).read_text())
    # '/**/NODE' matches the node in any namespace: rclpy matches file keys against the fully
    # qualified name, so a bare 'NODE' key is silently ignored once a namespace is set
    assert list(data) == [f'/**/{node}']
    return data[f'/**/{node}']['ros__parameters']


@pytest.mark.parametrize('name, node, specs', [('monitor.yaml', 'ood_monitor', MONITOR_PARAMS),
                                               ('gate.yaml', 'ood_gate', GATE_PARAMS)])
def test_yaml_lists_every_parameter_with_its_default(name: str, node: str,
                                                     specs: tuple[ParamSpec, ...]) -> None:
    values = _yaml(name, node)
    assert set(values) == {s.name for s in specs}
    for spec in specs:
        assert check_value(spec, values[spec.name]) is None, spec.name
        assert values[spec.name] == spec.default, spec.name
        if spec.kind == 'float':  # rclpy types parameters strictly: floats need a decimal point
            assert isinstance(values[spec.name], float), spec.name


def test_yaml_comments_document_every_key() -> None:
    for name in ('monitor.yaml', 'gate.yaml'):
        lines = (ROOT / 'config' / name).read_text().splitlines()
        for number, line in enumerate(lines):
            stripped = line.strip()
            if ':' in stripped and not stripped.startswith('#') and line.startswith('    '):
                assert lines[number - 1].strip().startswith('#'), f'{name}: {stripped}'


def test_defaults_are_valid_and_never_empty_lists() -> None:
    for spec in MONITOR_PARAMS + GATE_PARAMS:
        assert check_value(spec, spec.default) is None
        assert spec.default != []  # rclpy would declare an empty list as a byte array
        assert spec.description.endswith('.') or spec.description.endswith(')')


def test_monitor_config_from_parameters() -> None:
    config = monitor_node_config({'model_path': '/m.vood', 'image_topics': ['a/image_raw',
                                                                            'b/compressed'],
                                  'decision': 'threshold', 'threads': 2, 'clear_frames': 3})
    assert config.image_topics == ('a/image_raw', 'b/compressed')
    assert config.monitor.decision is DecisionMode.THRESHOLD
    assert config.monitor.session.threads == 2
    assert config.monitor.clear_frames == 3
    assert monitor_node_config({'model_path': 'm'}).monitor.decision is None  # auto
    assert monitor_node_config({'model_path': 'm'}).monitor.cusum_cap is None  # the bundle's
    assert monitor_node_config({'model_path': 'm', 'cusum_cap': 3.0}).monitor.cusum_cap == 3.0
    assert monitor_node_config({'model_path': 'm'}).monitor.frozen_frames == 0  # off
    assert monitor_node_config({'model_path': 'm',
                                'frozen_frames': 30}).monitor.frozen_frames == 30


@pytest.mark.parametrize('values, match', [
    ({}, 'model_path is empty'),
    ({'model_path': 'm', 'image_topics': []}, r'image_topics \[\] must list at least one entry'),
    ({'model_path': 'm', 'image_topics': ['']}, "image_topics \\[''\\] must list at least one "
     'entry, none of them empty'),
    ({'model_path': 'm', 'providers': ['cpu', '']}, 'providers .* none of them empty'),
    ({'model_path': 'm', 'image_topics': ['a', 'a']}, 'each once'),
    ({'model_path': 'm', 'qos_reliability': 'sometimes'}, 'best_effort, reliable'),
    ({'model_path': 'm', 'threads': 65}, r'threads 65 is outside \[0, 64\]'),
    ({'model_path': 'm', 'threads': 1.5}, 'must be an integer'),
    ({'model_path': 'm', 'providers': ['npu']}, 'choose from: cpu, cuda, tensorrt'),
    ({'model_path': 'm', 'publish_debug_image': 'yes'}, 'true or false'),
    ({'model_path': 'm', 'heartbeat_period_s': float('nan')}, 'outside'),
    ({'model_path': 'm', 'colour': 'red'}, r"Unknown parameter\(s\) \['colour'\]"),
    ({'model_path': 'm', 'image_topics': ['front/image_raw', '/front/image_raw/compressed']},
     "'front/image_raw' and '/front/image_raw/compressed' both give the camera name "
     "'front_image_raw'"),
    ({'model_path': 'm', 'image_topics': ['a/image_raw', '/']}, 'gives no usable camera name'),
    ({'model_path': 'm', 'cusum_cap': 0.5}, 'cusum_cap 0.5 must be >= 1'),
    ({'model_path': 'm', 'frozen_frames': 1}, r'frozen_frames 1 must be 0 \(off\) or an '
     'integer >= 2'),
])
def test_monitor_config_errors(values: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        monitor_node_config(values)


def test_gate_config_from_parameters_and_errors() -> None:
    config = gate_node_config({'action': 'slowdown', 'slowdown_ratio': 0.5, 'stamped': True})
    assert config.gate.action is GateAction.SLOWDOWN and config.stamped
    assert gate_node_config({}).period_s == defaults(GATE_PARAMS)['period_s']
    with pytest.raises(ConfigError, match='must not exceed monitor_timeout_s'):
        gate_node_config({'period_s': 0.5, 'monitor_timeout_s': 0.1})
    with pytest.raises(ConfigError, match="'stop', 'slowdown'|stop, slowdown"):
        gate_node_config({'action': 'swerve'})


def test_run_time_parameters_change_a_running_config_and_the_others_wait() -> None:
    config = monitor_node_config({'model_path': '/m.vood'})
    changed = with_live_values(config, MONITOR_PARAMS, {
        'publish_debug_image': True, 'latency_budget_ms': 3, 'alert_on_stale': False,
        'image_topics': ['other/image_raw'], 'threads': 4, 'stale_after_s': 60.0})
    assert changed.publish_debug_image
    assert changed.latency_budget_ms == 3.0 and isinstance(changed.latency_budget_ms, float)
    # safety settings are fixed at start-up (rclpy refuses them too: read-only descriptors)
    assert changed.alert_on_stale and changed.stale_after_s == 1.0
    # on-configure parameters are not applied to the running node
    assert changed.image_topics == config.image_topics
    assert changed.monitor.session.threads == config.monitor.session.threads
    assert with_live_values(config, MONITOR_PARAMS, {'threads': 4}) is config
    # every run-time parameter is a field of the node's config, so it can be applied
    for spec in MONITOR_PARAMS:
        if spec.live:
            assert hasattr(config, spec.name), spec.name


def test_safety_settings_are_fixed() -> None:
    fixed = {s.name for s in MONITOR_PARAMS + GATE_PARAMS if s.fixed}
    assert fixed == {'stale_after_s', 'alert_on_stale', 'max_frame_age_s', 'action',
                     'monitor_timeout_s', 'clear_hold_s'}
    assert not any(s.live for s in MONITOR_PARAMS + GATE_PARAMS if s.fixed)


def test_an_out_of_range_value_is_told_its_range_not_its_type() -> None:
    class WrongType(Exception):
        pass

    class OutOfRange(Exception):
        pass

    def declare(spec: ParamSpec, ignore_override: bool) -> None:
        if ignore_override:
            return
        if spec.name == 'slowdown_ratio':
            raise OutOfRange('Invalid parameter value (2.0) for parameter')
        if spec.name == 'clear_hold_s':
            raise WrongType("Trying to set parameter 'clear_hold_s' to '1'")

    problems = declare_all(GATE_PARAMS, declare, (WrongType, OutOfRange), (OutOfRange,))
    assert problems['slowdown_ratio'] == ('slowdown_ratio: Invalid parameter value (2.0) for '
                                          'parameter; expected a value in [0, 1]')
    assert 'decimal point' in problems['clear_hold_s']


def test_qos_overrides_apply_at_first_subscription_then_only_those_given_at_start_up() -> None:
    first = camera_qos(monitor_node_config({'model_path': 'm'}))
    assert first == {'history': 'keep_last', 'depth': 1, 'reliability': 'best_effort'}
    # the topic's first subscription declares the read-only parameters and takes their values
    assert qos_overrides_to_apply(None, {}) == QOS_POLICIES
    # after cleanup, qos_reliability: reliable and configure, the parameters still hold the
    # first profile: applying them would silently keep best_effort
    again = camera_qos(monitor_node_config({'model_path': 'm', 'qos_reliability': 'reliable'}))
    assert again['reliability'] == 'reliable'
    assert qos_overrides_to_apply(first, dict(first)) == ()
    # qos_overrides.<topic>.subscription.depth: 5 given at start-up keeps applying
    assert qos_overrides_to_apply(first, {**first, 'depth': 5}) == ('depth',)


class _Refused(Exception):
    """Stands in for rclpy's InvalidParameterTypeException / InvalidParameterValueException."""


def _rclpy_like(overrides: dict[str, object],
                declared: dict[str, object]) -> Callable[[ParamSpec, bool], None]:
    """A declare(spec, ignore_override) that checks types and ranges strictly, as rclpy does."""
    def declare(spec: ParamSpec, ignore_override: bool) -> None:
        value = spec.default if ignore_override else overrides.get(spec.name, spec.default)
        if type(value) is not type(spec.default):  # rclpy: 1 is no DOUBLE
            raise _Refused(f"Trying to set parameter '{spec.name}' to '{value}'", spec.name)
        if spec.low is not None and not spec.low <= value <= spec.high:  # type: ignore[operator]
            raise _Refused(f'Invalid parameter value ({value}) for parameter', spec.name)
        declared[spec.name] = value
    return declare


def test_start_up_values_rclpy_refuses_are_reported_instead_of_raised() -> None:
    declared: dict[str, object] = {}
    overrides = {'stale_after_s': 'soon', 'heartbeat_period_s': 1, 'threads': 65,
                 'decision': 'cusum'}
    problems = declare_all(MONITOR_PARAMS, _rclpy_like(overrides, declared), (_Refused,))
    assert set(problems) == {'stale_after_s', 'heartbeat_period_s', 'threads'}
    # every parameter is declared; the refused ones with their defaults
    assert declared == {**defaults(MONITOR_PARAMS), 'decision': 'cusum'}
    assert problems['stale_after_s'] == (
        "stale_after_s: Trying to set parameter 'stale_after_s' to 'soon'; expected a number "
        'written with a decimal point (1.0, not 1: rclpy refuses an integer for a float '
        'parameter) in [0.05, 600]')
    assert problems['threads'].endswith('expected an integer in [0, 64]')
    with pytest.raises(ConfigError, match=r'^threads: .*; heartbeat_period_s: .*; stale_after_s: '
                                          r'.*fix them in the parameter file or launch'):
        check_refused(problems)
    check_refused({})  # nothing refused: nothing to say


def test_declaring_lets_other_errors_through() -> None:
    def declare(spec: ParamSpec, ignore_override: bool) -> None:
        raise ValueError('already declared')

    with pytest.raises(ValueError, match='already declared'):
        declare_all(GATE_PARAMS, declare, (_Refused,))
