"""Which epoch's weights a training run keeps: the one that detects shifts best.

The β-VAE loss rewards reconstruction; the monitor uses only how far the encoder's posterior
moves from the prior. The two are loosely coupled: on the demo's default preset (60 synthetic
drives, seed 0) the frame-level rain AUROC of the same run's twelve epochs ranged from 0.75 to
0.97 while the validation loss moved by 2 %, and the last epoch is whichever happens to come
last. So by default (``select='detection'``) training scores every epoch's encoder on the
held-out validation frames against the same frames carrying validation shifts at test-range
severities, and keeps the epoch with the best mean score. The score of one shift is the
validation AUROC of the labelled dim selection (evaluate.dims.labelled_dims: the best prefix of
dims ranked by their own AUROC, either tail, or all dims two-sided), the rule calibration
applies later, so the kept epoch is the one whose calibrated partitions separate best.

An earlier probe scored the single dim that separated best. It fell as training went on while
the summed dims that calibration uses rose: over five runs (three seeds on real camera frames,
two on synthetic drives; every epoch calibrated and tested) it kept epoch 1 or 2 three times,
0.06-0.12 AUROC below the best epoch of the run, where the labelled score came within 0.015 of
it every time (0.006 on average; the last epoch: 0.033 at worst). ``'loss'`` keeps the lowest
validation loss (0.16 below the best on one synthetic run), ``'last'`` the final epoch.
"""

from __future__ import annotations

from typing import Sequence, TYPE_CHECKING

import numpy as np
import torch

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.data.shifts import shift_frames, ShiftKind
from vae_ood_monitor.evaluate.dims import labelled_dims
from vae_ood_monitor.train.losses import kl_per_dim
from vae_ood_monitor.train.runtime import autocast, images_tensor

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from vae_ood_monitor.train.models import VAE

__all__ = ['DetectionProbe', 'SELECTIONS', 'best_epoch', 'check_selection']

#: Ways to choose the kept epoch.
SELECTIONS = ('detection', 'loss', 'last')
#: Seed of the probe's shifted frames (apart from calibration's and evaluation's seeds).
PROBE_SEED = 4241


def check_selection(select: str, shifts: Sequence[str]) -> tuple[str, ...]:
    """Validate a selection rule and its shifts; return the shifts as a tuple."""
    if select not in SELECTIONS:
        raise ConfigError(f'select {select!r} must be one of {", ".join(SELECTIONS)}.')
    kinds = {k.value for k in ShiftKind}
    shifts = tuple(shifts)
    unknown = [s for s in shifts if s not in kinds]
    if unknown:
        raise ConfigError(f'select_shifts {unknown!r}: unknown shift; choose from '
                          f'{", ".join(sorted(kinds))}.')
    if select == 'detection' and not shifts:
        raise ConfigError("select 'detection' needs at least one shift in select_shifts; "
                          "or use select 'loss' or 'last'.")
    return shifts


class DetectionProbe:
    """Held-out frames and their shifted copies (made once), scored per epoch."""

    def __init__(self, images: NDArray[np.uint8], shifts: Sequence[str], *,
                 seed: int = PROBE_SEED, batch_size: int = 64) -> None:
        if len(images) < 2:
            raise ConfigError(f'Only {len(images)} validation frames to score epochs with; '
                              'raise --val-fraction or use --select loss/last.')
        self.images = images
        self.shifted = {kind: shift_frames(images, kind, 'test', seed) for kind in shifts}
        self.batch_size = batch_size

    @torch.no_grad()
    def _kl(self, model: VAE, images: NDArray[np.uint8], device: torch.device,
            amp: torch.dtype | None) -> NDArray[np.float64]:
        out = []
        for start in range(0, len(images), self.batch_size):
            x = images_tensor(images[start:start + self.batch_size], device)
            with autocast(device, amp):
                mu, logvar = model.encoder(x)
            out.append(kl_per_dim(mu.float(), logvar.float()).cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    def score(self, model: VAE, device: torch.device, amp: torch.dtype | None
              ) -> dict[str, float]:
        """Return ``{shift: labelled-selection AUROC}`` plus their mean under ``'mean'``.

        Dims whose KL is not finite on some frame (a blown-up dim) are left out; with none
        left, a shift scores 0.5.
        """
        was_training = model.training
        model.eval()
        try:
            clean = self._kl(model, self.images, device, amp)
            result = {}
            for kind, images in self.shifted.items():
                shifted = self._kl(model, images, device, amp)
                usable = np.isfinite(clean).all(axis=0) & np.isfinite(shifted).all(axis=0)
                result[kind] = (labelled_dims(clean[:, usable], shifted[:, usable])[2]
                                if usable.any() else 0.5)
        finally:
            model.train(was_training)
        result['mean'] = float(np.mean(list(result.values())))
        return result


def best_epoch(history: Sequence[dict[str, float]], select: str) -> int | None:
    """Index into ``history`` of the epoch ``select`` keeps (None: no usable record)."""
    if not history:
        return None
    if select == 'last':
        return len(history) - 1
    key = 'val_detection' if select == 'detection' else 'val_loss'
    usable = [(i, h[key]) for i, h in enumerate(history)
              if key in h and np.isfinite(h[key])]
    if not usable:
        return None
    # ties keep the later (longer trained) epoch
    if select == 'detection':  # higher is better
        return max(usable, key=lambda item: (item[1], item[0]))[0]
    return min(usable, key=lambda item: (item[1], -item[0]))[0]
