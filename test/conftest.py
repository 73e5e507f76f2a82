"""Shared fixtures: tiny real artifacts built in tmp_path (ONNX graphs, bundles, frames)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from vae_ood_monitor.core.bundle import Bundle, save_bundle
from vood_testing import DONKEYCAR, make_bundle

# Tests of optional layers are not collected where their extra is not installed (for example
# colcon test on a ROS machine without torch); the main CI installs every extra.
_OPTIONAL = {'torch': ['train/*', 'cli/test_train_cli.py'], 'rosbags': ['replay/*']}
collect_ignore_glob = [pattern for module, patterns in _OPTIONAL.items()
                       if importlib.util.find_spec(module) is None for pattern in patterns]


@pytest.fixture
def bundle() -> Bundle:
    """A calibrated in-memory bundle (threshold mode)."""
    return make_bundle()


@pytest.fixture
def bundle_path(tmp_path: Path) -> Path:
    """A calibrated bundle written to disk."""
    return save_bundle(make_bundle(), tmp_path / 'tiny.vood')


@pytest.fixture
def donkeycar() -> Path:
    """The real donkeycar frames, or a clean skip where ../shared is absent."""
    if not DONKEYCAR.is_dir():
        pytest.skip('real frames ../shared/data/donkeycar_mat_track are not available')
    return DONKEYCAR
