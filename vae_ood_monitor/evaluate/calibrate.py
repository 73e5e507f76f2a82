"""Calibration: per-partition calibration scores and per-frame thresholds into the manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.baseline import relative_scores
from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.core.manifest import CusumParams, Partition
from vae_ood_monitor.core.typedefs import DimSelection, Tail
from vae_ood_monitor.evaluate.metrics import conformal_threshold, conformal_threshold_low

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

    from vae_ood_monitor.core.baseline import BaselineParams
    from vae_ood_monitor.core.bundle import Bundle

__all__ = ['MIN_CALIBRATION_FRAMES', 'PartitionPlan', 'calibrate_partitions']

#: Fewer in-distribution frames than this make thresholds too noisy to trust.
MIN_CALIBRATION_FRAMES = 100


@dataclass(frozen=True)
class PartitionPlan:
    """Which latent dims a partition sums, how they were chosen and which tail is OOD.

    With ``baseline`` the partition is a change partition (scores relative to the stream's own
    recent frames, :mod:`vae_ood_monitor.core.baseline`).
    """

    name: str
    dims: tuple[int, ...]
    selection: DimSelection = DimSelection.ALL
    tail: Tail = Tail.UPPER
    baseline: BaselineParams | None = None


def calibrate_partitions(bundle: Bundle, id_kl: NDArray[np.float64], *,
                         target_far: float | None = None,
                         plans: Sequence[PartitionPlan] | None = None,
                         cusum: Mapping[str, CusumParams] | None = None,
                         sequences: Sequence[NDArray[np.intp]] | None = None) -> Bundle:
    """Store sorted in-distribution scores and the per-frame thresholds of every partition.

    ``id_kl`` is the per-dim KL (N, D) of held-out in-distribution frames (never the training
    frames: their scores are optimistically low). Without ``plans`` one two-sided partition
    named 'all' sums every latent dim. ``target_far`` (default: the manifest's) is the per-frame
    false-alarm rate of the whole detector: it is split evenly between the absolute partitions
    and, for a two-sided partition, between its tails (Bonferroni). A change partition needs
    ``sequences``: the rows of ``id_kl`` of each held-out stream, in order; its calibration
    scores are the ratios of every frame past the stream's warm-up.
    """
    manifest = bundle.manifest
    latent = manifest.model.latent_dim
    if id_kl.ndim != 2 or id_kl.shape[1] != latent:
        raise CalibrationError(f'Expected per-dim KL of shape (N, {latent}), got '
                               f'{id_kl.shape!r}.')
    if id_kl.shape[0] < MIN_CALIBRATION_FRAMES:
        raise CalibrationError(f'Only {id_kl.shape[0]} calibration frames; give at least '
                               f'{MIN_CALIBRATION_FRAMES} held-out in-distribution frames.')
    far = manifest.target_far if target_far is None else float(target_far)
    plans = list(plans) if plans else [PartitionPlan('all', tuple(range(latent)),
                                                     tail=Tail.TWO_SIDED)]
    # the per-frame rule is the absolute partitions' (change partitions only feed the CUSUM):
    # they share the false-alarm budget, and a change partition's thresholds use one share too
    share = far / max(1, sum(plan.baseline is None for plan in plans))
    partitions = []
    for plan in plans:
        scores = id_kl[:, list(plan.dims)].sum(axis=1)
        if plan.baseline is not None:
            scores = _relative(scores, sequences, plan)
        if np.ptp(scores) == 0:
            raise CalibrationError(f'Partition {plan.name!r}: every calibration score is '
                                   f'{float(scores[0])!r}; the encoder output is degenerate '
                                   '(posterior collapse?). Retrain or choose other dims.')
        side = share / 2 if plan.tail is Tail.TWO_SIDED else share
        if plan.baseline is not None:  # display scale only (never triggers): the finest level
            side = max(side, 1.0 / (scores.size + 1))  # its calibration frames can certify
        partitions.append(Partition(
            plan.name, plan.dims, plan.selection, scores,
            threshold=None if plan.tail is Tail.LOWER else conformal_threshold(scores, side),
            threshold_low=(None if plan.tail is Tail.UPPER
                           else conformal_threshold_low(scores, side)),
            cusum=(cusum or {}).get(plan.name), tail=plan.tail, baseline=plan.baseline))
    return bundle.with_manifest(partitions=tuple(partitions), target_far=far)


def _relative(sums: NDArray[np.float64], sequences: Sequence[NDArray[np.intp]] | None,
              plan: PartitionPlan) -> NDArray[np.float64]:
    """Calibration ratios of a change partition: every stream's frames past its warm-up."""
    assert plan.baseline is not None
    warmup = plan.baseline.warmup
    if sequences is None:
        raise CalibrationError(f'Change partition {plan.name!r} needs the calibration frames as '
                               'sequences (streams in order).')
    parts = [relative_scores(sums[idx], plan.baseline)[warmup:] for idx in sequences]
    scores = np.concatenate(parts) if parts else np.zeros(0)
    if scores.size < MIN_CALIBRATION_FRAMES:
        raise CalibrationError(
            f'Change partition {plan.name!r}: only {scores.size} calibration frames come after '
            f'the {warmup}-frame warm-up of their sequence; give longer held-out sequences '
            '(drives of a few seconds or more) or calibrate without change partitions.')
    return scores
