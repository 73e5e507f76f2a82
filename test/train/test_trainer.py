"""Training: determinism, checkpoints (weights_only), resume, output safety, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.data.dataset import FrameArray
from vae_ood_monitor.data.shifts import ShiftKind
from vae_ood_monitor.train.runs import load_run
from vae_ood_monitor.train.runtime import images_tensor
from vae_ood_monitor.train.trainer import guide_targets, train, TrainConfig

Frames = Callable[..., FrameArray]
CONFIG = TrainConfig(preset='tiny', epochs=2, threads=1, amp='off')


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / 'model.pt', weights_only=True)


def test_run_directory_contents(tiny_run: Path) -> None:
    meta = json.loads((tiny_run / 'run.json').read_text())
    assert meta['complete'] is True
    assert meta['preset'] == 'tiny'
    assert [h['epoch'] for h in meta['history']] == [1, 2]
    assert all('val_loss' in h for h in meta['history'])
    # checkpoints hold plain tensors and numbers: loadable with weights_only=True
    state = torch.load(tiny_run / 'checkpoint.pt', weights_only=True)
    assert set(state) == {'epoch', 'model', 'optimizer', 'torch_rng'}
    info, model = load_run(tiny_run)
    assert info.complete and info.spec.input_hw == (30, 40)
    assert not model.training


def test_training_is_deterministic_per_seed(tmp_path: Path, tiny_run: Path,
                                            tiny_frames: Frames) -> None:
    train(tiny_frames(), tmp_path / 'again', CONFIG, progress=False)
    first, second = _weights(tiny_run), _weights(tmp_path / 'again')
    assert all(torch.equal(first[k], second[k]) for k in first)
    train(tiny_frames(), tmp_path / 'other', TrainConfig(preset='tiny', epochs=2, threads=1,
                                                         amp='off', seed=1), progress=False)
    other = _weights(tmp_path / 'other')
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_resume_continues_to_the_same_result(tmp_path: Path, tiny_run: Path,
                                             tiny_frames: Frames) -> None:
    out = tmp_path / 'resumed'
    train(tiny_frames(), out, TrainConfig(preset='tiny', epochs=1, threads=1, amp='off'),
          progress=False)
    assert len(json.loads((out / 'run.json').read_text())['history']) == 1
    train(tiny_frames(), out, CONFIG, resume=True, progress=False)
    resumed, straight = _weights(out), _weights(tiny_run)
    assert all(torch.allclose(resumed[k].float(), straight[k].float()) for k in straight)
    assert [h['epoch'] for h in json.loads((out / 'run.json').read_text())['history']] == [1, 2]


def test_refuses_existing_output_and_bad_resume(tmp_path: Path, tiny_run: Path,
                                                tiny_frames: Frames) -> None:
    with pytest.raises(ConfigError, match='exists.*--force'):
        train(tiny_frames(), tiny_run, CONFIG, progress=False)
    with pytest.raises(ConfigError, match='Cannot resume'):
        train(tiny_frames(), tmp_path / 'nothing', CONFIG, resume=True, progress=False)


def test_bad_inputs(tmp_path: Path, tiny_frames: Frames) -> None:
    frames = tiny_frames()
    wrong_size = FrameArray(frames.images[:, :20], frames.labels, frames.stamps, frames.groups,
                            frames.group_names)
    with pytest.raises(ConfigError, match='expects'):
        train(wrong_size, tmp_path / 'x', CONFIG, progress=False)
    with pytest.raises(ConfigError, match='epochs'):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match='training frames'):
        train(tiny_frames(n=8, groups=1), tmp_path / 'y', CONFIG, progress=False)


def test_unfinished_run_cannot_be_exported(tmp_path: Path) -> None:
    (tmp_path / 'run.json').write_text(json.dumps({
        'preset': 'tiny', 'encoder': {'arch': 'strided', 'input_hw': [30, 40],
                                      'channels': [8, 16], 'latent_dim': 8, 'kernel': 4,
                                      'hidden': []},
        'decoder_width': 1.0, 'config': {}, 'complete': False}))
    with pytest.raises(ConfigError, match='did not finish.*--resume'):
        load_run(tmp_path)
    with pytest.raises(ConfigError, match='not a training run'):
        load_run(tmp_path / 'missing')


def test_guide_targets_scale_each_level_by_its_training_range() -> None:
    levels = [{'rain': 0.15, 'brightness': -0.4}, {'rain': 0.0, 'brightness': 0.1}]
    targets = guide_targets(levels, ('rain', 'brightness'))
    # rain's training range ends at 0.3, brightness's at 0.4
    np.testing.assert_allclose(targets, [[0.5, -1.0], [0.0, 0.25]])
    assert guide_targets(levels, ('brightness',)).shape == (2, 1)


def test_guide_config_is_checked() -> None:
    with pytest.raises(ConfigError, match='distinct shifts of augment'):
        TrainConfig(guide=('fog',))
    with pytest.raises(ConfigError, match='distinct shifts of augment'):
        TrainConfig(guide=('rain',), augment=())
    with pytest.raises(ConfigError, match='distinct shifts of augment'):
        TrainConfig(guide=('rain', 'rain'))
    with pytest.raises(ConfigError, match='guide_weight'):
        TrainConfig(guide=('rain',), guide_weight=0.0)
    with pytest.raises(ConfigError, match='no free latent dim'):
        every = tuple(k.value for k in ShiftKind)  # 8 shifts for the tiny preset's 8 dims
        TrainConfig(preset='tiny', guide=every, augment=every)
    assert TrainConfig(guide=['rain']).resolved()['guide'] == ['rain']


def test_guided_dim_learns_the_augmentation_level(tmp_path: Path, tiny_frames: Frames) -> None:
    from vae_ood_monitor.data.shifts import apply_shift

    frames = tiny_frames(n=192, groups=8)
    config = TrainConfig(preset='tiny', epochs=4, threads=1, amp='off', guide=('brightness',),
                         augment=('brightness',), augment_p=0.8)
    train(frames, tmp_path / 'guided', config, progress=False)
    meta = json.loads((tmp_path / 'guided' / 'run.json').read_text())
    assert meta['config']['guide'] == ['brightness']
    errors = [h['guide_error'] for h in meta['history']]
    assert errors[-1] < errors[0]
    _, model = load_run(tmp_path / 'guided')
    clean = frames.images[::4]

    def mean_mu(direction: int) -> float:
        rng = np.random.default_rng(0)
        images = np.stack([apply_shift(img, 'brightness', 0.4, rng, direction=direction)
                           for img in clean])
        with torch.no_grad():
            mu, _ = model.encoder(images_tensor(images, torch.device('cpu')))
        return float(mu[:, 0].mean())

    # dim 0 orders darker < brighter frames, as its targets (-1, +1) do
    assert mean_mu(1) - mean_mu(-1) > 0.5
