"""The launch files, run against small stand-ins of launch / launch_ros (no ROS needed).

What matters here is which parameters a launch file forces on a node: launch_ros applies
``parameters=[params_file, {...}]`` in order, so every key in the dict overrides the params
file. Launch arguments that the user leaves empty must therefore stay out of the dict.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
import sys
import types
from typing import Any
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[2]


class Sub:
    """A substitution: resolves against a dict of launch argument values."""

    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: dict[str, str]) -> str:
        return context[self.name]


class Expression:
    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts

    def perform(self, context: dict[str, str]) -> str:
        text = ''.join(p.perform(context) if hasattr(p, 'perform') else p for p in self.parts)
        return str(eval(text))  # noqa: S307 - the launch file's own constant expression


class Record:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


class Argument(Record):
    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        choices, default = kwargs.get('choices'), kwargs.get('default_value')
        if choices is not None and default is not None:
            assert default in choices, (name, default)  # launch refuses such an argument


class Description:
    def __init__(self, entities: list[Any]) -> None:
        self.entities = entities


def _fake_modules() -> dict[str, types.ModuleType]:
    modules = {}

    def module(name: str, **attrs: Any) -> None:
        modules[name] = types.SimpleNamespace(**attrs)  # type: ignore[assignment]

    module('ament_index_python')
    module('ament_index_python.packages', get_package_share_directory=lambda _p: '/share')
    module('launch', LaunchDescription=Description)
    module('launch.actions', DeclareLaunchArgument=Argument, IncludeLaunchDescription=Record,
           ExecuteProcess=Record, OpaqueFunction=Record)
    module('launch.conditions', IfCondition=Record)
    module('launch.launch_description_sources', PythonLaunchDescriptionSource=Record)
    module('launch.substitutions', LaunchConfiguration=Sub, PythonExpression=Expression)
    module('launch_ros')
    module('launch_ros.actions', Node=Record)
    module('launch_ros.parameter_descriptions', ParameterValue=Record)
    return modules


def _describe(name: str) -> Description:
    with mock.patch.dict(sys.modules, _fake_modules()):
        spec = importlib.util.spec_from_file_location(name, ROOT / 'launch' / f'{name}.py')
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.generate_launch_description()


def _defaults(description: Description) -> dict[str, str]:
    return {e.args[0]: e.kwargs.get('default_value', '') for e in description.entities
            if isinstance(e, Argument)}


def _node(description: Description, **given: str) -> Record:
    context = {**_defaults(description), **given}
    opaque = [e for e in description.entities if isinstance(e, Record) and 'function' in e.kwargs]
    (node,) = opaque[0].kwargs['function'](context)
    return node


@pytest.mark.parametrize('name, keys', [
    ('monitor_launch', ('image_topics', 'publish_debug_image')),
    ('gate_launch', ('stamped',)),
])
def test_arguments_left_empty_keep_the_params_file_values(name: str, keys: tuple[str]) -> None:
    description = _describe(name)
    node = _node(description, model_path='/m.vood')
    params_file, overrides = node.kwargs['parameters']
    assert params_file.name == 'params_file'
    assert not set(keys) & set(overrides), overrides  # defaults: the YAML decides
    assert 'use_sim_time' in overrides
    given = {'image_topics': '[a/image_raw]', 'publish_debug_image': 'true', 'stamped': 'true'}
    node = _node(description, model_path='/m.vood', **{k: given[k] for k in keys})
    assert set(keys) <= set(node.kwargs['parameters'][1])  # set on the command line: it wins


def test_bringup_asks_for_the_debug_image_only_with_rviz() -> None:
    description = _describe('bringup_launch')
    (monitor,) = [e for e in description.entities
                  if isinstance(e, Record) and 'launch_arguments' in e.kwargs
                  and 'model_path' in dict(e.kwargs['launch_arguments'])]
    debug = dict(monitor.kwargs['launch_arguments'])['publish_debug_image']
    assert debug.perform({'rviz': 'true'}) == 'true'
    assert debug.perform({'rviz': 'false'}) == ''  # the monitor's params file decides
    for name in ('image_topics', 'stamped'):
        assert _defaults(description)[name] == ''
