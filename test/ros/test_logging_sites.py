"""rclpy's logger ties one severity to each call site and raises ValueError when it changes.

So a node must never pick the logging method at run time (``log = logger.warning if bad else
logger.info``; ``getattr(logger, level)``): the second severity at that site kills the
callback. It also throttles per call site (``throttle_duration_sec``), so a message about one
camera must not be throttled there. The nodes cannot run here without ROS, so their source is
checked instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEVELS = {'debug', 'info', 'warn', 'warning', 'error', 'fatal', 'log'}
SOURCES = sorted((ROOT / 'vae_ood_monitor' / 'ros').glob('*.py'))


def dynamic_severity_sites(source: str) -> list[int]:
    """Line numbers where a logger method is taken as a value instead of being called."""
    tree = ast.parse(source)
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in LEVELS
                and isinstance(node.value, ast.Call)
                and getattr(node.value.func, 'attr', None) == 'get_logger'
                and id(node) not in called):
            lines.append(node.lineno)
        elif (isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'getattr'
              and node.args and 'logger' in ast.unparse(node.args[0])):
            lines.append(node.lineno)
    return sorted(lines)


def test_the_check_finds_run_time_severity_choices() -> None:
    chosen = ('log = self.get_logger().warning if bad else self.get_logger().info\n'
              'log("x")\n'
              'getattr(self.get_logger(), level)("y")\n')
    assert dynamic_severity_sites(chosen) == [1, 1, 3]
    fixed = ('if bad:\n    self.get_logger().warning("x")\nelse:\n'
             '    self.get_logger().info("x", throttle_duration_sec=5.0)\n')
    assert dynamic_severity_sites(fixed) == []


@pytest.mark.parametrize('path', SOURCES, ids=lambda p: p.name)
def test_ros_nodes_call_each_severity_from_its_own_site(path: Path) -> None:
    assert dynamic_severity_sites(path.read_text()) == [], path


def per_camera_throttled_sites(source: str) -> list[int]:
    """Line numbers of logger calls about one camera that rclpy throttles.

    rclpy throttles per call site, not per message: one camera's repeated errors would hide
    every other camera's. Per-camera messages go through ros.health.LogThrottle instead.
    """
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and getattr(node.func, 'attr', None) in LEVELS
                and any(k.arg == 'throttle_duration_sec' for k in node.keywords)
                and node.args and 'camera' in ast.unparse(node.args[0])):
            lines.append(node.lineno)
    return sorted(lines)


def test_the_check_finds_per_camera_messages_throttled_per_call_site() -> None:
    source = ('self.get_logger().warning(f"{camera.topic}: {err}", throttle_duration_sec=5.0)\n'
              'self.get_logger().error(f"heartbeat failed: {err}", throttle_duration_sec=5.0)\n'
              'self.get_logger().warning(f"{camera.topic}: {err}")\n')
    assert per_camera_throttled_sites(source) == [1]


@pytest.mark.parametrize('path', SOURCES, ids=lambda p: p.name)
def test_per_camera_messages_are_throttled_per_camera(path: Path) -> None:
    assert per_camera_throttled_sites(path.read_text()) == [], path
