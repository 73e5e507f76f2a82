"""Fixtures of the real-node tests (the ROS harness is imported only by the tests that use it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[Any]:
    """A private ROS domain (a ros_harness.RosGraph), torn down after the test."""
    from ros_harness import RosGraph

    g = RosGraph(tmp_path)
    try:
        yield g
    finally:
        g.close()
