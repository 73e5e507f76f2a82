"""The robot runtime imports numpy, onnxruntime and OpenCV only: never torch, rclpy or rosbags.

Checked in a fresh interpreter, since this test session itself has imported much more.
"""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import vae_ood_monitor.core as core

FORBIDDEN = ('torch', 'rclpy', 'rosbags', 'sklearn', 'matplotlib', 'tqdm')

SCRIPT = '''
import json, sys
FORBIDDEN = {forbidden!r}

def loaded():
    return sorted(m for m in sys.modules if m.split('.')[0] in FORBIDDEN)

import vae_ood_monitor.core
after_import = loaded()
import numpy as np
from vae_ood_monitor.core import Monitor, MonitorConfig, SessionConfig
monitor = Monitor(sys.argv[1], MonitorConfig(session=SessionConfig(warmup=1)))
decision = monitor.process(np.zeros((48, 64, 3), np.uint8), 0)
assert decision.kl.shape == (4,)
print(json.dumps({{'after_import': after_import, 'after_process': loaded()}}))
'''


def run_fresh(*args: str) -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, '-c', SCRIPT.format(forbidden=FORBIDDEN), *args],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_core_never_imports_heavy_packages(bundle_path: Path) -> None:
    loaded = run_fresh(str(bundle_path))
    assert loaded['after_import'] == []
    assert loaded['after_process'] == []


def test_all_names_exist() -> None:
    missing = [name for name in core.__all__ if not hasattr(core, name)]
    assert missing == []
    assert len(set(core.__all__)) == len(core.__all__)


def test_all_is_sorted() -> None:
    assert core.__all__ == sorted(core.__all__)
