"""Which epoch a training run keeps: the detection probe, the rules, and the run directory."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from vae_ood_monitor.cli.cmd_train import describe_selection
from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.data.dataset import FrameArray
from vae_ood_monitor.train.runs import load_run
from vae_ood_monitor.train.selection import best_epoch, check_selection, DetectionProbe
from vae_ood_monitor.train.trainer import train, TrainConfig

Frames = Callable[..., FrameArray]


def _history(*values: tuple[float, float]) -> list[dict[str, float]]:
    return [{'epoch': i + 1, 'val_loss': loss, 'val_detection': det}
            for i, (loss, det) in enumerate(values)]


def test_best_epoch_rules() -> None:
    history = _history((10.0, 0.7), (8.0, 0.9), (7.0, 0.8), (9.0, 0.6))
    assert best_epoch(history, 'detection') == 1
    assert best_epoch(history, 'loss') == 2
    assert best_epoch(history, 'last') == 3
    assert best_epoch([], 'detection') is None
    # a NaN or missing score is never kept; nothing usable -> None
    history = _history((math.nan, 0.7), (5.0, math.nan))
    assert best_epoch(history, 'detection') == 0
    assert best_epoch(history, 'loss') == 1
    assert best_epoch([{'epoch': 1, 'val_loss': 3.0}], 'detection') is None
    # ties keep the later (longer trained) epoch
    history = _history((4.0, 0.8), (4.0, 0.8))
    assert best_epoch(history, 'detection') == 1
    assert best_epoch(history, 'loss') == 1


def test_check_selection_errors() -> None:
    assert check_selection('loss', ['rain']) == ('rain',)
    with pytest.raises(ConfigError, match='select .bogus. must be one of detection'):
        check_selection('bogus', ['rain'])
    with pytest.raises(ConfigError, match='unknown shift; choose from'):
        check_selection('detection', ['hail'])
    with pytest.raises(ConfigError, match='at least one shift'):
        check_selection('detection', [])
    assert check_selection('last', []) == ()
    with pytest.raises(ConfigError, match='select'):
        TrainConfig(select='best')


class _Brightness(torch.nn.Module):
    """An 'encoder' whose first latent mean is how far the brightness is from ``centre`` (the
    second is constant): its KL grows under a brightness shift either way, or, ``reverse``,
    shrinks (a dim the shift pulls towards the prior)."""

    def __init__(self, centre: float, reverse: bool = False) -> None:
        super().__init__()
        self.centre, self.reverse = centre, reverse

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        distance = 10.0 * (x.mean(dim=(1, 2, 3)) - self.centre).abs()
        first = 1.0 / (1.0 + distance) if self.reverse else distance
        mu = torch.stack([first, torch.zeros_like(first)], 1)
        return mu, torch.zeros_like(mu)


class _Wrapper(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder


def test_probe_scores_the_dim_that_follows_the_shift(tiny_frames: Frames) -> None:
    images = tiny_frames(n=64).images
    probe = DetectionProbe(images, ['brightness'])
    centre = float(images.mean()) / 255.0
    model = _Wrapper(_Brightness(centre)).train()
    scores = probe.score(model, torch.device('cpu'), None)
    # test-range brightness (beyond +-50 %) moves frames far from the clean brightness
    assert scores['brightness'] > 0.9
    assert scores['mean'] == scores['brightness']
    assert model.training  # restored after scoring
    # direction does not matter: a dim whose KL falls under the shift separates as well
    reverse = probe.score(_Wrapper(_Brightness(centre, reverse=True)), torch.device('cpu'),
                          None)
    assert reverse['brightness'] == pytest.approx(scores['brightness'], abs=1e-9)

    class _Blind(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            zeros = torch.zeros(x.shape[0], 3)
            return zeros, zeros

    assert probe.score(_Wrapper(_Blind()), torch.device('cpu'), None)['brightness'] == 0.5
    with pytest.raises(ConfigError, match='validation frames'):
        DetectionProbe(images[:1], ['rain'])


class _Noisy(torch.nn.Module):
    """Six dims, each the brightness distance plus its own pseudo-random noise (a function of
    the frame): no dim alone separates well, their sum does, as the trained encoders' summed
    dims did where the best single dim had fallen."""

    def __init__(self, centre: float) -> None:
        super().__init__()
        self.centre = centre

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = x.mean(dim=(1, 2, 3))
        distance = 10.0 * (mean - self.centre).abs()
        mu = torch.stack([distance + 3.0 * torch.sin(1e4 * mean * (d + 1.37))
                          for d in range(6)], 1)
        return mu, torch.zeros_like(mu)


def test_probe_scores_the_dims_calibration_would_sum(tiny_frames: Frames) -> None:
    from sklearn.metrics import roc_auc_score

    images = tiny_frames(n=96).images
    probe = DetectionProbe(images, ['brightness'])
    model = _Wrapper(_Noisy(float(images.mean()) / 255.0))
    cpu = torch.device('cpu')
    clean, shifted = probe._kl(model, images, cpu, None), probe._kl(
        model, probe.shifted['brightness'], cpu, None)
    labels = np.r_[np.zeros(len(clean)), np.ones(len(shifted))]
    both = np.concatenate([clean, shifted])
    single = max(max(a, 1 - a) for a in (roc_auc_score(labels, both[:, d]) for d in range(6)))
    score = probe.score(model, cpu, None)['brightness']
    assert single < 0.8 and score > 0.9  # the summed dims, not the best one alone

    class _BlownUp(_Noisy):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            mu, logvar = super().forward(x)
            return mu, torch.cat([logvar[:, :5], torch.full_like(logvar[:, 5:], math.inf)], 1)

    # a dim whose KL is infinite is left out; the others still score
    assert probe.score(_Wrapper(_BlownUp(float(images.mean()) / 255.0)), cpu,
                       None)['brightness'] > 0.85


def test_run_keeps_the_epoch_with_the_best_detection(tmp_path: Path,
                                                     tiny_frames: Frames) -> None:
    config = TrainConfig(preset='tiny', epochs=3, threads=1, amp='off')
    info = train(tiny_frames(), tmp_path / 'run', config, progress=False)
    history = info.history
    assert all(0.5 <= h['val_auroc_rain'] <= 1.0 and 'val_auroc_brightness' in h
               for h in history)
    scores = [h['val_detection'] for h in history]
    kept = int(np.argmax(scores))
    assert info.selection['rule'] == 'detection'
    assert info.selection['epoch'] == kept + 1
    assert info.selection['val_detection'] == max(scores)
    model = torch.load(tmp_path / 'run' / 'model.pt', weights_only=True)
    best = torch.load(tmp_path / 'run' / 'best.pt', weights_only=True)
    assert all(torch.equal(model[k], best[k]) for k in model)
    last = torch.load(tmp_path / 'run' / 'checkpoint.pt', weights_only=True)['model']
    assert all(torch.equal(model[k], last[k]) for k in model) == (kept == len(history) - 1)
    assert json.loads((tmp_path / 'run' / 'run.json').read_text())['selection'] == \
        info.selection
    assert f'kept epoch {kept + 1} of 3' in describe_selection(info.selection, 3)


def test_last_and_loss_rules_and_no_validation_set(tmp_path: Path, tiny_frames: Frames,
                                                   tiny_run: Path) -> None:
    base = {'preset': 'tiny', 'epochs': 2, 'threads': 1, 'amp': 'off'}
    info = train(tiny_frames(), tmp_path / 'last', TrainConfig(select='last', **base),
                 progress=False)
    assert info.selection['rule'] == 'last' and info.selection['epoch'] == 2
    assert 'val_detection' not in info.history[-1]  # the probe only runs for 'detection'
    assert not (tmp_path / 'last' / 'best.pt').exists()
    last = torch.load(tmp_path / 'last' / 'checkpoint.pt', weights_only=True)['model']
    _, model = load_run(tmp_path / 'last')
    assert all(torch.equal(v, last[k]) for k, v in model.state_dict().items())
    # scoring epochs changes nothing in training itself: the same final epoch either way
    probed = torch.load(tiny_run / 'checkpoint.pt', weights_only=True)['model']
    assert json.loads((tiny_run / 'run.json').read_text())['selection']['rule'] == 'detection'
    assert all(torch.equal(probed[k], last[k]) for k in last)

    info = train(tiny_frames(), tmp_path / 'loss', TrainConfig(select='loss', **base),
                 progress=False)
    losses = [h['val_loss'] for h in info.history]
    assert info.selection['epoch'] == int(np.argmin(losses)) + 1

    info = train(tiny_frames(), tmp_path / 'noval', TrainConfig(val_fraction=0.0, **base),
                 progress=False)
    assert info.selection['rule'] == 'last' and info.selection['epoch'] == 2
    assert describe_selection({}, 2) == 'kept the last of 2 epochs'
