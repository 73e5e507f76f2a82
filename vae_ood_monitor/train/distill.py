"""Knowledge distillation: lean student encoders that reproduce a teacher's latent posterior.

The detector only uses the encoder's posterior N(mu, exp(logvar)), so the better-aimed target
is to match the teacher's (mu, logvar) directly (``moments``: mean squared error on both, robust
for the very confident posteriors a beta-VAE learns; or ``latent_kl``: the KL divergence from
the teacher's Gaussian to the student's). ``paper`` is the reference paper's loss for
comparison: (1 - a) * the student VAE's own loss + a * matching the teacher's reconstruction.

A student may see a smaller input than the teacher (``input_hw``): each frame is resized with
the runtime's own :func:`~vae_ood_monitor.core.preprocess.resize_image`, so the student's
exported bundle preprocesses exactly as it was trained.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any, TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.preprocess import resize_image
from vae_ood_monitor.data.shifts import augment_in_range
from vae_ood_monitor.train.losses import gaussian_kl, kl_per_dim, vae_loss
from vae_ood_monitor.train.models import Decoder, Encoder, EncoderSpec
from vae_ood_monitor.train.runtime import (amp_dtype, autocast, choose_device, images_tensor,
                                           seed_everything, set_threads)

if TYPE_CHECKING:
    from vae_ood_monitor.data.dataset import FrameArray
    from vae_ood_monitor.train.models import VAE

__all__ = ['adopt_stem', 'blend_frames', 'DistillConfig', 'distill', 'latent_gap',
           'round_channels', 'student_spec']

LOSSES = ('moments', 'scores', 'latent_kl', 'paper')


def round_channels(channels: float, multiple: int = 8) -> int:
    """Round a channel count to a SIMD-friendly multiple (at least one multiple)."""
    return max(multiple, int(round(channels / multiple)) * multiple)


def student_spec(teacher: EncoderSpec, *, width: float = 0.5, depth: int | None = None,
                 input_scale: float = 1.0, multiple: int = 8,
                 stem_stride: int | tuple[int, int] = 2,
                 teacher_stem: bool = False) -> EncoderSpec:
    """Design a strided student: ``width`` x the teacher's channels, ``depth`` stages.

    Channel counts are rounded to multiples of ``multiple`` (SIMD lanes); the input keeps the
    teacher's aspect ratio; the latent size is the teacher's. ``stem_stride`` 4 runs the stem
    at stride 4 (see :class:`~vae_ood_monitor.train.models.EncoderSpec`); ``teacher_stem``
    gives the stem the teacher's channel count, to take the teacher's own stem
    (:func:`adopt_stem`).
    """
    if not 0 < width <= 4 or not 0 < input_scale <= 1:
        raise ConfigError(f'width {width!r} must be in (0, 4] and input_scale {input_scale!r} '
                          'in (0, 1].')
    base = teacher.channels if teacher.arch == 'strided' else (32, 64, 128, 256)
    depth = depth or len(base)
    if depth < 1:
        raise ConfigError(f'depth {depth!r} must be >= 1.')
    channels = [round_channels(c * width, multiple) for c in base[:depth]]
    if teacher_stem:
        if teacher.arch != 'strided' or input_scale != 1.0:
            raise ConfigError("A student takes the teacher's stem only from a strided teacher "
                              "and at the teacher's input size.")
        channels[0] = teacher.channels[0]
    while len(channels) < depth:
        channels.append(min(512, channels[-1] * 2))
    height, width_px = (max(2 ** depth, int(round(v * input_scale))) for v in teacher.input_hw)
    return EncoderSpec('strided', (height, width_px), tuple(channels), teacher.latent_dim,
                       kernel=4, logvar_range=teacher.logvar_range, stem_stride=stem_stride,
                       in_channels=teacher.in_channels)


@dataclass(frozen=True)
class DistillConfig:
    """Distillation settings."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    loss: str = 'moments'
    alpha: float = 0.7
    beta: float = 1.4
    #: Shifts applied to the distillation inputs, each with probability ``augment_p``, at
    #: severities from ``augment_split``: 'full' (all of [0, 1]) or 'train' (the teacher's
    #: training range). A detector is queried off the training manifold, so the student must
    #: learn the teacher's response there too: distilled on clean and lightly augmented frames
    #: only, students matched the teacher in distribution but lost up to 0.09 AUROC on real
    #: frames (0.2 on sensor noise); with every shift at full severity the loss fell to 0.04.
    augment: tuple[str, ...] = ('rain', 'brightness', 'fog', 'snow', 'motion_blur', 'noise',
                                'occlusion', 'objects')
    augment_p: float = 0.1
    augment_split: str = 'full'
    seed: int = 0
    threads: int | None = None
    amp: str = 'auto'
    device: str = 'auto'
    grad_clip: float | None = 1e4
    #: Fraction of every batch replaced by blends of two training frames (mixup with a random
    #: weight, or a random rectangle pasted from another frame): inputs off the training
    #: manifold, where the detector must still agree with the teacher.
    mix_p: float = 0.0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f'loss {self.loss!r} must be one of {", ".join(LOSSES)}.')
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ConfigError('epochs and batch_size must be >= 1 and lr > 0.')
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f'alpha {self.alpha!r} must be in [0, 1].')
        if self.augment_split not in ('train', 'full'):
            raise ConfigError(f'augment_split {self.augment_split!r} must be train or full.')
        if not 0.0 <= self.mix_p <= 1.0:
            raise ConfigError(f'mix_p {self.mix_p!r} must be in [0, 1].')
        object.__setattr__(self, 'augment', tuple(self.augment))


def blend_frames(images: np.ndarray, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """Replace ``fraction`` of a (N, H, W, 3) uint8 batch by blends of two of its frames.

    Half of the blends are mixups (weight uniform in [0.2, 0.8]), half paste a random rectangle
    (a quarter to three quarters of each side) of another frame. Returns a new array.
    """
    out = images.copy()
    count = int(round(fraction * len(images)))
    if count == 0 or len(images) < 2:
        return out
    height, width = images.shape[1:3]
    for i in rng.choice(len(images), count, replace=False):
        other = images[(i + rng.integers(1, len(images))) % len(images)]
        if rng.random() < 0.5:
            weight = rng.uniform(0.2, 0.8)
            out[i] = np.clip(weight * images[i] + (1 - weight) * other + 0.5, 0, 255).astype(
                np.uint8)
        else:
            h = int(rng.integers(height // 4, 3 * height // 4 + 1))
            w = int(rng.integers(width // 4, 3 * width // 4 + 1))
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            out[i, top:top + h, left:left + w] = other[top:top + h, left:left + w]
    return out


def _student_input(images: np.ndarray, spec: EncoderSpec) -> np.ndarray:
    height, width = spec.input_hw
    if images.shape[1:3] == (height, width):
        return images
    return np.stack([resize_image(img, width, height, 'area') for img in images])


def adopt_stem(student: Encoder, teacher: Encoder) -> None:
    """Give ``student`` the teacher's stem (convolution + batch norm), frozen.

    The student's stem must have the teacher's shape (``student_spec(teacher_stem=True)``);
    its stride may be larger. The activation statistics of the first block, which the generic
    score measures, are then the teacher's own filters on every input pixel, evaluated at
    fewer positions: what the teacher's detector measures, at a fraction of its cost.
    """
    if not hasattr(teacher, 'features'):
        raise ConfigError('An ensemble teacher has one stem per member: a student can take the '
                          'stem of a single-model teacher only; choose another candidate.')
    conv_s, bn_s = student.features[0], student.features[1]
    conv_t, bn_t = teacher.features[0], teacher.features[1]
    if conv_s.weight.shape != conv_t.weight.shape or not isinstance(bn_s, torch.nn.BatchNorm2d):
        raise ConfigError(f'The student stem {tuple(conv_s.weight.shape)} does not match the '
                          f'teacher stem {tuple(conv_t.weight.shape)}.')
    conv_s.load_state_dict(conv_t.state_dict())
    bn_s.load_state_dict(bn_t.state_dict())
    for parameter in (*conv_s.parameters(), *bn_s.parameters()):
        parameter.requires_grad_(False)


def _hold_frozen_norms(module: torch.nn.Module) -> None:
    """Keep batch norms whose parameters are frozen in eval mode (their running statistics)."""
    for child in module.modules():
        if isinstance(child, torch.nn.BatchNorm2d) and not any(
                p.requires_grad for p in child.parameters()):
            child.eval()


def distill(teacher: VAE, student_spec_: EncoderSpec, frames: FrameArray,
            config: DistillConfig | None = None, *, student: Encoder | None = None,
            progress: bool = True) -> tuple[Encoder, list[dict[str, float]]]:
    """Train ``student`` (or a fresh encoder of ``student_spec_``) to mimic ``teacher``.

    ``frames`` are at the teacher's input size. Returns the student encoder (eval mode) and the
    loss history per epoch. The teacher is frozen.
    """
    from tqdm import tqdm

    config = config or DistillConfig()
    if frames.images.shape[1:3] != teacher.spec.input_hw:
        raise ConfigError(f'Frames are {frames.images.shape[1:3]!r}, the teacher expects '
                          f'{teacher.spec.input_hw!r}.')
    device = choose_device(config.device)
    set_threads(config.threads, 1)
    seed_everything(config.seed)
    amp = amp_dtype(config.amp, device)
    teacher = teacher.to(device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    student = (student or Encoder(student_spec_)).to(device).train()
    student = student.to(memory_format=torch.channels_last)
    _hold_frozen_norms(student)
    decoder = None
    params = [p for p in student.parameters() if p.requires_grad]
    if config.loss == 'paper':
        decoder = Decoder(student.spec, 0.5).to(device).train()
        params += list(decoder.parameters())
    optimizer = torch.optim.Adam(params, lr=config.lr)
    steps = max(1, len(frames) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr,
                                                    total_steps=steps * config.epochs,
                                                    pct_start=0.2)
    history = []
    bar = tqdm(total=steps * config.epochs, disable=not progress, desc='distill', unit='step',
               mininterval=2)
    for epoch in range(config.epochs):
        rng = np.random.default_rng([config.seed, epoch, 2])
        order = rng.permutation(len(frames))
        total = 0.0
        for step in range(steps):
            index = np.sort(order[step * config.batch_size:(step + 1) * config.batch_size])
            images = frames.images[index]
            if config.augment and config.augment_p > 0:
                images = np.stack([augment_in_range(img, rng, config.augment,
                                                    config.augment_p, config.augment_split)
                                   for img in images])
            if config.mix_p > 0:
                images = blend_frames(images, rng, config.mix_p)
            x_teacher = images_tensor(images, device)
            x_student = images_tensor(_student_input(images, student.spec), device)
            with torch.no_grad(), autocast(device, amp):
                mu_t, lv_t = teacher.encoder(x_teacher)
                recon_t = teacher.decoder(mu_t) if decoder is not None else None
            with autocast(device, amp):
                mu_s, lv_s = student(x_student)
                recon_s = decoder(mu_s) if decoder is not None else None
            loss = _loss(config, mu_s.float(), lv_s.float(), mu_t.float(), lv_t.float(),
                         recon_s, recon_t, x_student)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            scheduler.step()
            value = loss.item()
            if not math.isfinite(value):
                raise ConfigError(f'Distillation diverged at epoch {epoch} (loss {value!r}); '
                                  'lower --lr.')
            total += value
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f'{value:.3f}', refresh=False)
        history.append({'epoch': epoch + 1, 'loss': total / steps})
    bar.close()
    return student.eval(), history


def _loss(config: DistillConfig, mu_s: torch.Tensor, lv_s: torch.Tensor, mu_t: torch.Tensor,
          lv_t: torch.Tensor, recon_s: torch.Tensor | None, recon_t: torch.Tensor | None,
          x: torch.Tensor) -> torch.Tensor:
    if config.loss in ('moments', 'scores'):
        moments = F.mse_loss(mu_s, mu_t) + F.mse_loss(lv_s, lv_t)
        if config.loss == 'moments':
            return moments
        # The detector ranks frames by sums of per-dim KL: match those too, on a log scale so
        # that the few huge teacher KLs do not drown the rest.
        return moments + F.mse_loss(torch.log1p(kl_per_dim(mu_s, lv_s)),
                                    torch.log1p(kl_per_dim(mu_t, lv_t)))
    if config.loss == 'latent_kl':
        # KL(teacher || student) per dim; log-variances floored so that very confident
        # teacher posteriors do not make the loss explode.
        floor = -12.0
        return gaussian_kl(mu_t, lv_t.clamp(min=floor), mu_s, lv_s.clamp(min=floor)).sum(
            1).mean()
    assert recon_s is not None and recon_t is not None
    own = vae_loss(recon_s, x if x.shape == recon_s.shape else F.interpolate(
        x, size=recon_s.shape[2:], mode='area'), mu_s, lv_s, config.beta)[0]
    target = recon_t if recon_t.shape == recon_s.shape else F.interpolate(
        recon_t.float(), size=recon_s.shape[2:], mode='area')
    matching = F.mse_loss(recon_s.float(), target.float(), reduction='sum') / x.shape[0]
    return (1.0 - config.alpha) * own + config.alpha * matching


@torch.no_grad()
def latent_gap(teacher: VAE, student: Encoder, frames: FrameArray,
               batch: int = 64) -> dict[str, float]:
    """Mean absolute difference of mu, logvar and per-dim KL to the prior, student vs teacher."""
    from vae_ood_monitor.train.losses import kl_per_dim

    teacher, student = teacher.cpu().eval(), student.cpu().eval()
    sums = np.zeros(3)
    for start in range(0, len(frames), batch):
        images = frames.images[start:start + batch]
        mu_t, lv_t = teacher.encoder(images_tensor(images, torch.device('cpu')))
        mu_s, lv_s = student(images_tensor(_student_input(images, student.spec),
                                           torch.device('cpu')))
        sums += [float((mu_s - mu_t).abs().mean()) * len(images),
                 float((lv_s - lv_t).abs().mean()) * len(images),
                 float((kl_per_dim(mu_s, lv_s) - kl_per_dim(mu_t, lv_t)).abs().mean())
                 * len(images)]
    mu, lv, kl = sums / len(frames)
    return {'mu': mu, 'logvar': lv, 'kl': kl}


def describe(spec: EncoderSpec) -> dict[str, Any]:
    """Describe a student architecture briefly (JSON-ready)."""
    return {'input_hw': list(spec.input_hw), 'channels': list(spec.channels)}
