"""Per-partition calibration (evaluate/calibrate.py): thresholds, Bonferroni split, errors."""

from __future__ import annotations

import numpy as np
import pytest

from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.core.manifest import CusumParams
from vae_ood_monitor.core.typedefs import DimSelection, Tail
from vae_ood_monitor.evaluate.calibrate import (calibrate_partitions, MIN_CALIBRATION_FRAMES,
                                                PartitionPlan)
from vae_ood_monitor.evaluate.metrics import conformal_threshold, conformal_threshold_low
from vood_testing import make_bundle

PLANS = (PartitionPlan('up', (0, 1), DimSelection.LABELLED, Tail.UPPER),
         PartitionPlan('down', (2,), DimSelection.LABELLED, Tail.LOWER),
         PartitionPlan('both', (0, 1, 2, 3), DimSelection.ALL, Tail.TWO_SIDED))


def _kl(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(2.0, 1.0, (n, 4))


def _alarms(partition, kl: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    scores = kl[:, list(partition.dims)].sum(axis=1)
    alarm = np.zeros(len(scores), bool)
    if partition.threshold is not None:
        alarm |= scores > partition.threshold
    if partition.threshold_low is not None:
        alarm |= scores < partition.threshold_low
    return alarm


def test_default_is_one_two_sided_partition_over_every_dim() -> None:
    kl = _kl(400)
    bundle = calibrate_partitions(make_bundle(calibrated=False), kl)
    (part,) = bundle.manifest.partitions
    assert (part.name, part.dims, part.tail) == ('all', (0, 1, 2, 3), Tail.TWO_SIDED)
    assert bundle.manifest.calibrated and bundle.manifest.target_far == 0.01
    scores = kl.sum(axis=1)
    np.testing.assert_array_equal(part.calibration_scores, np.sort(scores))
    # the manifest's 1 % is split between the two tails
    assert part.threshold == conformal_threshold(scores, 0.005)
    assert part.threshold_low == conformal_threshold_low(scores, 0.005)


def test_rate_is_split_between_partitions_and_tails() -> None:
    kl = _kl(600)
    cusum = CusumParams(10, 0.5, 3.0)
    bundle = calibrate_partitions(make_bundle(calibrated=False), kl, target_far=0.06,
                                  plans=PLANS, cusum={'down': cusum})
    up, down, both = bundle.manifest.partitions
    assert bundle.manifest.target_far == 0.06
    assert [p.name for p in (up, down, both)] == ['up', 'down', 'both']
    assert up.selection is DimSelection.LABELLED and both.selection is DimSelection.ALL
    assert up.threshold == conformal_threshold(kl[:, :2].sum(1), 0.02)
    assert up.threshold_low is None
    assert down.threshold is None
    assert down.threshold_low == conformal_threshold_low(kl[:, 2], 0.02)
    assert both.threshold == conformal_threshold(kl.sum(1), 0.01)
    assert both.threshold_low == conformal_threshold_low(kl.sum(1), 0.01)
    assert down.cusum is cusum and up.cusum is None and both.cusum is None


def test_false_alarm_rate_on_fresh_frames_stays_at_the_target() -> None:
    target, n = 0.06, 20_000
    bundle = calibrate_partitions(make_bundle(calibrated=False), _kl(n, seed=1),
                                  target_far=target, plans=PLANS)
    fresh = _kl(200_000, seed=2)
    per_partition = [_alarms(p, fresh) for p in bundle.manifest.partitions]
    share = target / 3  # each partition gets a third (a two-sided one half of that per tail)
    spread = 4 * np.sqrt(share / n)  # sampling error of thresholds from n frames
    for alarm in per_partition:
        assert share - spread < alarm.mean() < share + spread
    assert np.logical_or.reduce(per_partition).mean() <= target + spread


def test_too_few_frames() -> None:
    with pytest.raises(CalibrationError, match=f'Only 99 calibration frames; give at least '
                       f'{MIN_CALIBRATION_FRAMES}'):
        calibrate_partitions(make_bundle(calibrated=False), _kl(99))


def test_rate_too_strict_for_the_frames() -> None:
    with pytest.raises(CalibrationError, match='100 calibration frames cannot certify'):
        calibrate_partitions(make_bundle(calibrated=False), _kl(100), target_far=0.001)


def test_degenerate_scores() -> None:
    kl = _kl(200)
    kl[:, 2] = 0.25
    with pytest.raises(CalibrationError, match=r"Partition 'down': every calibration score is "
                       r'0.25.*degenerate'):
        calibrate_partitions(make_bundle(calibrated=False), kl, plans=PLANS[1:2])


@pytest.mark.parametrize('shape', [(200, 3), (200,), (200, 4, 1)])
def test_wrong_kl_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(CalibrationError, match=r'Expected per-dim KL of shape \(N, 4\), got '
                       + repr(shape).replace('(', r'\(').replace(')', r'\)')):
        calibrate_partitions(make_bundle(calibrated=False), np.ones(shape))
