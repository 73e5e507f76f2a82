"""Fixtures for training tests: tiny synthetic frame arrays and a trained tiny run."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from vae_ood_monitor.data.dataset import FrameArray
from vood_testing import tiny_frames


@pytest.fixture(name='tiny_frames')
def tiny_frames_fixture() -> Callable[..., FrameArray]:
    """The :func:`tiny_frames` factory."""
    return tiny_frames


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny training run (2 epochs, seconds on CPU)."""
    from vae_ood_monitor.train.trainer import train, TrainConfig

    out = tmp_path_factory.mktemp('runs') / 'tiny'
    train(tiny_frames(), out, TrainConfig(preset='tiny', epochs=2, threads=1, amp='off'),
          progress=False)
    return out
