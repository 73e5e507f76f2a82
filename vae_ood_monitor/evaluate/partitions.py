"""Calibration: per-partition calibration scores and per-frame thresholds into the manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.baseline import relative_scores
from vae_ood_monitor.core.density import DensityModel
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

#: Fewer in-distribution frames than this give no usable calibration scores. Above it the
#: number of frames bounds the false-alarm rate a threshold can certify (see
#: :func:`~vae_ood_monitor.evaluate.metrics.conformal_threshold`), which calibration reports.
MIN_CALIBRATION_FRAMES = 20


@dataclass(frozen=True, eq=False)
class PartitionPlan:
    """Which latent dims a partition sums, how they were chosen and which tail is OOD.

    With ``baseline`` the partition is a change partition (scores relative to the stream's own
    recent frames, :mod:`vae_ood_monitor.core.baseline`). With ``density`` it is a generic
    partition scored by that model; ``scores`` are then the raw scores of the calibration rows
    from models fitted without them (cross-fitting, :mod:`.density`), in row order.
    """

    name: str
    dims: tuple[int, ...]
    selection: DimSelection = DimSelection.ALL
    tail: Tail = Tail.UPPER
    baseline: BaselineParams | None = None
    density: DensityModel | None = None
    scores: NDArray[np.float64] | None = None


def calibrate_partitions(bundle: Bundle, id_rows: NDArray[np.float64], *,
                         target_far: float | None = None,
                         plans: Sequence[PartitionPlan] | None = None,
                         cusum: Mapping[str, CusumParams] | None = None,
                         sequences: Sequence[NDArray[np.intp]] | None = None) -> Bundle:
    """Store sorted in-distribution scores and the per-frame thresholds of every partition.

    ``id_rows`` are the encoding rows (N, width) of held-out in-distribution frames (never the
    training frames: their scores are optimistically low). Without ``plans`` one two-sided
    partition named 'all' sums the KL of every latent dim. ``target_far`` (default: the
    manifest's) is the per-frame false-alarm rate of the whole detector: it is split evenly
    between the absolute partitions and, for a two-sided partition, between its tails
    (Bonferroni). A change partition needs
    ``sequences``: the row indices of each held-out stream, in order; its calibration scores
    are the ratios of every frame past the stream's warm-up.
    """
    manifest = bundle.manifest
    layout = manifest.model.layout
    latent = layout.latent_dim
    if id_rows.ndim != 2 or id_rows.shape[1] != layout.width:
        raise CalibrationError(f'Expected encoding rows of shape (N, {layout.width}), got '
                               f'{id_rows.shape!r}.')
    if id_rows.shape[0] < MIN_CALIBRATION_FRAMES:
        raise CalibrationError(f'Only {id_rows.shape[0]} calibration frames; give at least '
                               f'{MIN_CALIBRATION_FRAMES} held-out in-distribution frames.')
    kl = layout.kl(id_rows)
    far = manifest.target_far if target_far is None else float(target_far)
    plans = list(plans) if plans else [PartitionPlan('all', tuple(range(latent)),
                                                     tail=Tail.TWO_SIDED)]
    # the per-frame rule is the absolute partitions' (change partitions only feed the CUSUM):
    # they share the false-alarm budget, and a change partition's thresholds use one share too
    share = far / max(1, sum(plan.baseline is None for plan in plans))
    partitions = []
    for plan in plans:
        if plan.density is None:
            scores = kl[:, list(plan.dims)].sum(axis=1)
        elif plan.scores is None or len(plan.scores) != len(id_rows):
            raise CalibrationError(f'Generic partition {plan.name!r} needs the cross-fitted '
                                   'scores of every calibration frame.')
        else:
            scores = np.asarray(plan.scores, np.float64)
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
            cusum=(cusum or {}).get(plan.name), tail=plan.tail, baseline=plan.baseline,
            density=plan.density))
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
