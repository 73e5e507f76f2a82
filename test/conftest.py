"""Shared fixtures: tiny real artifacts built in tmp_path (ONNX graphs, bundles, frames)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vae_ood_monitor.core.bundle import Bundle, save_bundle
from vood_testing import DONKEYCAR, make_bundle


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
