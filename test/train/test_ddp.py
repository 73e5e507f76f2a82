"""Data-parallel training under torchrun: two CPU processes (gloo) train one run."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from vae_ood_monitor.cli.main import main
from vae_ood_monitor.train.models import get_preset, VAE


@pytest.mark.slow
def test_torchrun_trains_one_run_with_two_processes(tmp_path: Path, tiny_run: Path) -> None:
    if not dist.is_available():
        pytest.skip('torch.distributed is not available in this torch build')
    synth = tmp_path / 'synth'
    assert main(['synth', str(synth), '--sequences', '4', '--frames', '24', '--size',
                 '40x30']) == 0
    run = tmp_path / 'run'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         '-m', 'vae_ood_monitor.cli', 'train', str(synth), '--out', str(run), '--preset',
         'tiny', '--epochs', '1', '--threads', '1', '--no-progress'],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('trained tiny on 96 frames') == 1  # rank 0 reports, once
    meta = json.loads((run / 'run.json').read_text())
    assert meta['complete'] is True and meta['world_size'] == 2
    assert [h['epoch'] for h in meta['history']] == [1]
    state = torch.load(run / 'model.pt', weights_only=True)
    single = torch.load(tiny_run / 'model.pt', weights_only=True)
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in single.items()}
    assert not any(k.startswith('module.') for k in state)  # not the DDP wrapper's names
    preset = get_preset('tiny')
    model = VAE(preset.encoder, preset.decoder_width)
    model.load_state_dict(state)  # strict: the same architecture
    assert not (run / 'checkpoint.pt.partial').exists()
