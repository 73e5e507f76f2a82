"""β-VAE training: augmentation, progress, checkpoints, resume, determinism, DDP under torchrun.

:func:`train` writes one training run folder (:mod:`~vae_ood_monitor.train.runs`); seed
ensembles train several (:mod:`~vae_ood_monitor.train.ensemble`).

Which epoch is kept: by default the one whose encoder detects validation shifts best
(``TrainConfig.select``, :mod:`vae_ood_monitor.train.selection`); run.json's ``selection``
says which epoch that was and why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import math
import os
from pathlib import Path
import time
from typing import Any, TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.flow import FlowSpec
from vae_ood_monitor.data.shifts import augment_with_levels, SEVERITY_RANGES, ShiftKind
from vae_ood_monitor.train.losses import guide_loss, vae_loss
from vae_ood_monitor.train.models import get_preset, Preset, VAE
from vae_ood_monitor.train.runs import (BEST_FILE, CHECKPOINT_FILE, load_run, MODEL_FILE,
                                        prepare_out, RUN_FILE, RunInfo, save_state, versions,
                                        write_json)
from vae_ood_monitor.train.runtime import (amp_dtype, autocast, choose_device, images_tensor,
                                           init_distributed, seed_everything, set_threads)
from vae_ood_monitor.train.selection import best_epoch, check_selection, DetectionProbe

if TYPE_CHECKING:
    from vae_ood_monitor.data.dataset import FrameArray

__all__ = ['TrainConfig', 'guide_targets', 'train']


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; None fields take the preset's default."""

    preset: str = 'default'
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    beta: float | None = None
    seed: int = 0
    #: Frame augmentation shifts; None: rain and brightness for a frame preset, none for a
    #: flow preset (its input is motion, not colour).
    augment: tuple[str, ...] | None = None
    augment_p: float = 0.5
    val_fraction: float = 0.1
    amp: str = 'auto'
    threads: int | None = None
    device: str = 'auto'
    schedule: str = 'constant'
    grad_clip: float | None = None
    #: Which epoch's weights to keep: 'detection', 'loss' or 'last' (see .selection); None:
    #: 'detection' for a frame preset, 'loss' for a flow preset.
    select: str | None = None
    #: Validation shifts that score each epoch when select is 'detection'.
    select_shifts: tuple[str, ...] = ('rain', 'brightness')
    #: Guided dims: latent dim k (k = 0, 1, ...) of every model is trained to carry the level
    #: of the k-th of these augmentation shifts (0 on frames without it, 1 at the top of its
    #: training range, negative for darkening), see :func:`guide_targets`. None: every shift
    #: in ``augment``; () turns guiding off.
    guide: tuple[str, ...] | None = None
    #: Weight of the guided dims' squared error against the β-VAE loss (per image).
    guide_weight: float = 1000.0
    #: A flow preset's input settings instead of the preset's own (stack, components).
    flow: FlowSpec | None = None

    def __post_init__(self) -> None:
        flow = get_preset(self.preset).flow is not None
        if self.flow is not None and not flow:
            raise ConfigError(f'Preset {self.preset!r} reads colour frames; flow settings need '
                              'a flow preset (flow, flow-tiny).')
        if self.augment is None:
            object.__setattr__(self, 'augment', () if flow else ('rain', 'brightness'))
        if self.select is None:
            object.__setattr__(self, 'select', 'loss' if flow else 'detection')
        if flow and (self.augment or self.select == 'detection'):
            raise ConfigError(f'Preset {self.preset!r} learns optical flow: frame augmentation '
                              f"({list(self.augment)!r}) and select 'detection' (frame "
                              'shifts) do not apply; train it with --no-augment and --select '
                              'loss or last.')
        object.__setattr__(self, 'select_shifts',
                           check_selection(self.select, self.select_shifts))
        if self.schedule not in ('constant', 'onecycle'):
            raise ConfigError(f"schedule {self.schedule!r} must be 'constant' or 'onecycle'.")
        object.__setattr__(self, 'augment', tuple(self.augment))
        object.__setattr__(self, 'guide', tuple(self.augment if self.guide is None
                                                else self.guide))
        stray = [k for k in self.guide if k not in self.augment]
        if stray or len(set(self.guide)) != len(self.guide):
            raise ConfigError(f'guide {list(self.guide)!r} must name distinct shifts of augment '
                              f'{list(self.augment)!r}: a dim can only learn the level of a '
                              'shift that training applies.')
        if len(self.guide) >= get_preset(self.preset).encoder.latent_dim:
            raise ConfigError(f'guide {list(self.guide)!r} leaves no free latent dim in preset '
                              f'{self.preset!r}; guide fewer shifts.')
        if not (isinstance(self.guide_weight, (int, float)) and math.isfinite(self.guide_weight)
                and self.guide_weight > 0):
            raise ConfigError(f'guide_weight {self.guide_weight!r} must be a positive number.')
        for name in ('epochs', 'batch_size'):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f'{name} {value!r} must be a positive integer.')
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f'lr {self.lr!r} must be positive.')
        if not 0.0 <= self.augment_p <= 1.0 or not 0.0 <= self.val_fraction < 0.5:
            raise ConfigError(f'augment_p {self.augment_p!r} must be in [0, 1] and val_fraction '
                              f'{self.val_fraction!r} in [0, 0.5).')

    def get_preset(self) -> Preset:
        """Return the preset, with this config's flow settings when it has any."""
        return get_preset(self.preset, **({'flow': self.flow} if self.flow else {}))

    def resolved(self) -> dict[str, Any]:
        """Every setting with the preset's defaults filled in."""
        preset = self.get_preset()
        values = asdict(self)
        for name in ('epochs', 'batch_size', 'lr', 'beta'):
            if values[name] is None:
                values[name] = getattr(preset, name)
        values['augment'] = list(self.augment)
        values['select_shifts'] = list(self.select_shifts)
        values['guide'] = list(self.guide)
        return values


def guide_targets(levels: list[dict[str, float]], guide: tuple[str, ...]) -> np.ndarray:
    """Targets of the guided dims: each level over the top of its kind's training range.

    ``levels`` holds one ``{kind: level}`` per image (:func:`augment_with_levels`). A guided dim
    learns 0 on clean frames and up to +-1 at the strongest training augmentation, so heavier
    test-range shifts push its posterior mean past anything seen in training and its KL up.
    """
    tops = [SEVERITY_RANGES[ShiftKind(kind)]['train'][1] for kind in guide]
    return np.array([[image[kind] / top for kind, top in zip(guide, tops)] for image in levels],
                    dtype=np.float32).reshape(len(levels), len(guide))


def _batch_tensor(images: np.ndarray, rng: np.random.Generator, kinds: tuple[str, ...],
                  p: float, device: torch.device, guide: tuple[str, ...] = ()
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Augment a batch; return it as a tensor, and the guided dims' targets (or None)."""
    target = None
    if kinds and p > 0:
        pairs = [augment_with_levels(img, rng, kinds=kinds, p=p) for img in images]
        images = np.stack([image for image, _ in pairs])
        if guide:
            target = torch.from_numpy(guide_targets([lv for _, lv in pairs], guide)).to(device)
    return images_tensor(images, device), target


def train(data: FrameArray, out: str | os.PathLike[str], config: TrainConfig | None = None, *,
          resume: bool = False, force: bool = False, progress: bool = True) -> RunInfo:
    """Train a β-VAE on ``data`` (frames at the preset's input size) into run directory ``out``."""
    from tqdm import tqdm

    config = config or TrainConfig()
    settings = config.resolved()
    preset = config.get_preset()
    spec = preset.encoder
    if data.images.shape[1:3] != spec.input_hw:
        raise ConfigError(f'Frames are {data.images.shape[1:3]!r} but preset {preset.name!r} '
                          f'expects {spec.input_hw!r}; load them at the preset size.')
    if data.images.shape[3] != spec.in_channels:
        raise ConfigError(f'Inputs have {data.images.shape[3]} planes but preset '
                          f'{preset.name!r} reads {spec.in_channels}'
                          + ('; turn the frames into flow stacks first (data.flowdata.'
                             'flow_frames)' if preset.flow else '') + '.')
    device = choose_device(config.device)
    dist_info = init_distributed(device)
    set_threads(config.threads, dist_info.world)
    out = Path(out)
    prepare_out(out, resume, force, dist_info)
    seed_everything(config.seed)
    amp = amp_dtype(config.amp, device)
    guide = config.guide or ()

    train_set, val_set = data.split_groups(config.val_fraction)
    if len(train_set) < settings['batch_size'] * dist_info.world:
        raise ConfigError(f'Only {len(train_set)} training frames for batch size '
                          f'{settings["batch_size"]} x {dist_info.world} process(es); give more '
                          'frames or a smaller --batch-size.')
    select = config.select if len(val_set) else 'last'  # nothing held out to judge epochs by
    probe = (DetectionProbe(val_set.images, config.select_shifts)
             if select == 'detection' and dist_info.main else None)
    model = VAE(spec, preset.decoder_width).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings['lr'])
    history: list[dict[str, float]] = []
    start_epoch = 0
    if resume:
        state = torch.load(out / CHECKPOINT_FILE, map_location=device, weights_only=True)
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        start_epoch = int(state['epoch']) + 1
        torch.set_rng_state(state['torch_rng'])
        history = json.loads((out / RUN_FILE).read_text()).get('history', [])
    net: torch.nn.Module = (DistributedDataParallel(model) if dist_info.world > 1 else model)
    per_rank = len(train_set) // dist_info.world
    steps = per_rank // settings['batch_size']
    scheduler = None
    if config.schedule == 'onecycle':
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=settings['lr'], total_steps=steps * settings['epochs'],
            pct_start=0.25)
        for _ in range(steps * start_epoch):
            scheduler.step()

    meta = {'preset': preset.name, 'encoder': spec.to_dict(),
            **({'flow': preset.flow.to_dict()} if preset.flow else {}),
            'decoder_width': preset.decoder_width, 'config': settings, 'data': data.summary(),
            'versions': versions(), 'world_size': dist_info.world, 'device': device.type,
            'amp': str(amp).replace('torch.', '') if amp else 'off', 'complete': False}
    bar = tqdm(total=steps * (settings['epochs'] - start_epoch), disable=not (
        progress and dist_info.main), desc=f'train {preset.name}', unit='step', mininterval=2)
    started = time.monotonic()
    for epoch in range(start_epoch, settings['epochs']):
        rng = np.random.default_rng([config.seed, epoch])
        order = rng.permutation(len(train_set))[:per_rank * dist_info.world]
        shard = order[dist_info.rank::dist_info.world]
        aug_rng = np.random.default_rng([config.seed, epoch, dist_info.rank, 1])
        net.train()
        totals = np.zeros(3)
        guide_total = 0.0
        for step in range(steps):
            index = np.sort(shard[step * settings['batch_size']:(step + 1)
                                  * settings['batch_size']])
            x, target = _batch_tensor(train_set.images[index], aug_rng, config.augment,
                                      config.augment_p, device, guide)
            with autocast(device, amp):
                recon, mu, logvar = net(x)
            loss, bce, kl = vae_loss(recon, x, mu, logvar, settings['beta'])
            if target is not None:
                guided = guide_loss(mu, logvar, target)
                loss = loss + config.guide_weight * guided
                guide_total += guided.item()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if not math.isfinite(loss.item()):
                raise ConfigError(f'Training diverged at epoch {epoch} step {step} (loss '
                                  f'{loss.item()!r}); lower --lr.')
            totals += (loss.item(), bce.item(), kl.item())
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f'{loss.item():.1f}', kl=f'{kl.item():.1f}',
                            refresh=False)
        if dist_info.world > 1:
            reduced = torch.tensor(totals, dtype=torch.float64)
            dist.all_reduce(reduced)
            totals = reduced.numpy() / dist_info.world
        record = {'epoch': epoch + 1, 'loss': totals[0] / steps, 'bce': totals[1] / steps,
                  'kl': totals[2] / steps}
        if guide:  # rank 0's guide loss per guided dim (not all-reduced)
            record['guide_error'] = guide_total / steps / len(guide)
        if dist_info.main:
            record.update(_validate(model, val_set, settings, device, amp))
            if probe is not None:
                scores = probe.score(model, device, amp)
                record.update({f'val_auroc_{k}': v for k, v in scores.items() if k != 'mean'})
                record['val_detection'] = scores['mean']
            history.append({k: float(v) for k, v in record.items()})
            kept = best_epoch(history, select)
            if select != 'last' and kept == len(history) - 1:
                save_state(model.state_dict(), out / BEST_FILE)
            meta['selection'] = _selection_record(history, select, kept)
            save_state({'epoch': epoch, 'model': model.state_dict(),
                        'optimizer': optimizer.state_dict(), 'torch_rng': torch.get_rng_state()},
                       out / CHECKPOINT_FILE)
            write_json({**meta, 'history': history}, out / RUN_FILE)
        if dist_info.world > 1:
            dist.barrier()
    bar.close()
    if dist_info.main:
        meta['train_seconds'] = round(time.monotonic() - started, 1)
        kept = best_epoch(history, select)
        best = out / BEST_FILE
        if select != 'last' and kept is not None and best.is_file():
            state = torch.load(best, map_location='cpu', weights_only=True)
        else:  # 'last', or no epoch had a usable validation score
            state, kept = model.state_dict(), len(history) - 1
        meta['selection'] = _selection_record(history, select, kept)
        save_state(state, out / MODEL_FILE)
        write_json({**meta, 'history': history, 'complete': True}, out / RUN_FILE)
    if dist_info.world > 1:
        dist.barrier()
    return load_run(out)[0]


def _selection_record(history: list[dict[str, float]], select: str,
                      kept: int | None) -> dict[str, Any]:
    """Return what run.json says about the kept epoch."""
    if kept is None or not history:
        return {'rule': select, 'epoch': None}
    record = history[kept]
    return {'rule': select, 'epoch': int(record['epoch']),
            **{k: v for k, v in record.items() if k.startswith('val_')}}


@torch.no_grad()
def _validate(model: VAE, val_set: FrameArray, settings: dict[str, Any], device: torch.device,
              amp: torch.dtype | None) -> dict[str, float]:
    if len(val_set) == 0:
        return {}
    model.eval()
    totals = np.zeros(3)
    size = settings['batch_size']
    for start in range(0, len(val_set), size):
        x, _ = _batch_tensor(val_set.images[start:start + size], np.random.default_rng(0), (),
                             0.0, device)
        with autocast(device, amp):
            recon, mu, logvar = model(x)
        loss, bce, kl = vae_loss(recon, x, mu, logvar, settings['beta'])
        totals += np.array([loss.item(), bce.item(), kl.item()]) * x.shape[0]
    totals /= len(val_set)
    return {'val_loss': totals[0], 'val_bce': totals[1], 'val_kl': totals[2]}
