"""Seed ensembles (train_ensemble, EnsembleVAE): layout, export parity, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path
import shutil
from typing import Callable

import numpy as np
import pytest
import torch

from vae_ood_monitor.cli.cmd_train import describe_selection
from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.session import EncoderSession
from vae_ood_monitor.data.dataset import FrameArray
from vae_ood_monitor.train.distill import distill, DistillConfig, student_spec
from vae_ood_monitor.train.ensemble import train_ensemble
from vae_ood_monitor.train.export import bundle_from_run
from vae_ood_monitor.train.models import (EncoderSpec, ensemble_spec, EnsembleEncoder, EnsembleVAE,
                                          get_preset)
from vae_ood_monitor.train.prune import conv_blocks, prune_encoder
from vae_ood_monitor.train.runs import load_run
from vae_ood_monitor.train.trainer import TrainConfig

Frames = Callable[..., FrameArray]
CONFIG = TrainConfig(preset='tiny', epochs=1, threads=1, amp='off', seed=5)


@pytest.fixture(scope='module')
def ensemble_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny members (seeds 5 and 6), one epoch each."""
    from vood_testing import tiny_frames

    out = tmp_path_factory.mktemp('ensemble') / 'run'
    train_ensemble(tiny_frames(), out, CONFIG, 2, progress=False, log=lambda _: None)
    return out


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / 'model.pt', weights_only=True)


def test_layout_and_members_are_the_single_runs_of_their_seeds(
        ensemble_run: Path, tmp_path: Path, tiny_frames: Frames) -> None:
    meta = json.loads((ensemble_run / 'ensemble.json').read_text())
    assert meta['members'] == ['member-0', 'member-1'] and meta['seeds'] == [5, 6]
    assert meta['complete'] is True
    single = train_ensemble(tiny_frames(), tmp_path / 'single', CONFIG, 1, progress=False)
    assert not (tmp_path / 'single' / 'ensemble.json').exists()  # one member: a plain run
    first, again = _weights(ensemble_run / 'member-0'), _weights(single.path)
    assert all(torch.equal(first[k], again[k]) for k in first)
    second = _weights(ensemble_run / 'member-1')
    assert not all(torch.equal(first[k], second[k]) for k in first)


def test_load_run_concatenates_the_members(ensemble_run: Path) -> None:
    info, model = load_run(ensemble_run)
    assert isinstance(model, EnsembleVAE) and not model.training
    assert info.complete and info.spec.latent_dim == 16 and info.config['seeds'] == [5, 6]
    assert [m['seed'] for m in info.selection['members']] == [5, 6]
    x = torch.rand(3, 3, 30, 40, generator=torch.Generator().manual_seed(0))
    mu, logvar = model.encoder(x)
    parts = [load_run(ensemble_run / name)[1].encoder(x) for name in ('member-0', 'member-1')]
    torch.testing.assert_close(mu, torch.cat([p[0] for p in parts], 1))
    torch.testing.assert_close(logvar, torch.cat([p[1] for p in parts], 1))
    recon, _, _ = model(x)
    assert recon.shape == x.shape
    lines = describe_selection(info.selection, 0).splitlines()
    assert len(lines) == 2 and lines[1].startswith('member 1 (seed 6): kept epoch 1 of 1')


def test_exported_bundle_matches_the_members(ensemble_run: Path) -> None:
    bundle = bundle_from_run(ensemble_run, name='ens')
    assert bundle.manifest.model.latent_dim == 16
    assert [m['seed'] for m in bundle.manifest.provenance['members']] == [5, 6]
    batch = np.random.default_rng(1).random((4, 3, 30, 40), dtype=np.float32)
    mu, logvar = EncoderSession(bundle).encode(batch)
    for number, name in enumerate(('member-0', 'member-1')):
        member_mu, member_lv = EncoderSession(bundle_from_run(ensemble_run / name)).encode(batch)
        np.testing.assert_allclose(mu[:, 8 * number:8 * (number + 1)], member_mu, atol=1e-5)
        np.testing.assert_allclose(logvar[:, 8 * number:8 * (number + 1)], member_lv,
                                   atol=1e-5)


def test_resume_keeps_finished_members_and_trains_the_rest(
        ensemble_run: Path, tmp_path: Path, tiny_frames: Frames) -> None:
    out = tmp_path / 'run'
    shutil.copytree(ensemble_run, out)
    shutil.rmtree(out / 'member-1')
    meta = json.loads((out / 'ensemble.json').read_text())
    (out / 'ensemble.json').write_text(json.dumps({**meta, 'complete': False}))
    before = (out / 'member-0' / 'model.pt').stat().st_mtime_ns
    messages: list[str] = []
    train_ensemble(tiny_frames(), out, CONFIG, 2, resume=True, progress=False,
                   log=messages.append)
    assert messages[0] == 'member 1/2 (seed 5): already trained'
    assert (out / 'member-0' / 'model.pt').stat().st_mtime_ns == before
    retrained, original = _weights(out / 'member-1'), _weights(ensemble_run / 'member-1')
    assert all(torch.equal(retrained[k], original[k]) for k in original)
    assert json.loads((out / 'ensemble.json').read_text())['complete'] is True
    with pytest.raises(ConfigError, match='ensemble of 2 members, not 3'):
        train_ensemble(tiny_frames(), out, CONFIG, 3, resume=True, progress=False)


def test_refuses_bad_counts_existing_output_and_tampered_files(
        ensemble_run: Path, tmp_path: Path, tiny_frames: Frames) -> None:
    bad: list[object] = [0, -1, 2.5, True]
    for members in bad:
        with pytest.raises(ConfigError, match='members'):
            train_ensemble(tiny_frames(), tmp_path / 'x', CONFIG, members)  # type: ignore
    with pytest.raises(ConfigError, match='exists.*--force'):
        train_ensemble(tiny_frames(), ensemble_run, CONFIG, 2, progress=False)
    with pytest.raises(ConfigError, match='Cannot resume'):
        train_ensemble(tiny_frames(), tmp_path / 'none', CONFIG, 2, resume=True)
    out = tmp_path / 'tampered'
    shutil.copytree(ensemble_run, out)
    for members in (['../member-0'], [], 'member-0', ['member-0', 3]):
        (out / 'ensemble.json').write_text(json.dumps({'members': members}))
        with pytest.raises(ConfigError, match='ensemble.json.*malformed'):
            load_run(out)
    (out / 'ensemble.json').write_text(json.dumps({'members': ['member-0', 'member-9']}))
    with pytest.raises(ConfigError, match='member-9.*not a training run'):
        load_run(out)


def test_members_must_share_input_and_logvar_range() -> None:
    tiny = get_preset('tiny').encoder
    spec = ensemble_spec([tiny, tiny, tiny])
    assert spec.latent_dim == 3 * tiny.latent_dim and spec.channels == tiny.channels
    other = EncoderSpec('strided', (60, 80), tiny.channels, tiny.latent_dim)
    with pytest.raises(ConfigError, match='member 1 takes input'):
        ensemble_spec([tiny, other])
    with pytest.raises(ConfigError, match='at least one member'):
        ensemble_spec([])


def test_pruning_and_distilling_an_ensemble(ensemble_run: Path, tiny_frames: Frames) -> None:
    _, teacher = load_run(ensemble_run)
    pruned = prune_encoder(teacher.encoder, [0.0, 0.5])  # (8, 16) channels -> (8, 8)
    assert isinstance(pruned, EnsembleEncoder) and len(pruned.members) == 2
    assert all([b[0].out_channels for b in conv_blocks(m)] == [8, 8] for m in pruned.members)
    assert pruned(torch.zeros(2, 3, 30, 40))[0].shape == (2, 16)
    config = DistillConfig(epochs=1, batch_size=16, lr=3e-3, threads=1, amp='off')
    student, history = distill(teacher, student_spec(teacher.spec, width=0.5), tiny_frames(),
                               config, progress=False)
    assert np.isfinite(history[0]['loss'])
    assert student.spec.latent_dim == 16 and student.spec.channels == (8, 8)
    assert student(torch.zeros(1, 3, 30, 40))[1].shape == (1, 16)
