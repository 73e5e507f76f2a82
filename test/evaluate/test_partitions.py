"""Per-partition calibration (evaluate/partitions.py): thresholds, Bonferroni split, errors."""

from __future__ import annotations

import numpy as np
import pytest

from vae_ood_monitor.core.density import DensityModel
from vae_ood_monitor.core.encoding import Layout
from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.core.manifest import CusumParams
from vae_ood_monitor.core.typedefs import DimSelection, Tail
from vae_ood_monitor.evaluate.metrics import conformal_threshold, conformal_threshold_low
from vae_ood_monitor.evaluate.partitions import (calibrate_partitions, MIN_CALIBRATION_FRAMES,
                                                 PartitionPlan)
from vood_testing import make_bundle, rows_with_kl

PLANS = (PartitionPlan('up', (0, 1), DimSelection.LABELLED, Tail.UPPER),
         PartitionPlan('down', (2,), DimSelection.LABELLED, Tail.LOWER),
         PartitionPlan('both', (0, 1, 2, 3), DimSelection.ALL, Tail.TWO_SIDED))


LAYOUT = Layout(4)  # make_bundle's encoding rows: mu (4) and logvar (4)


def _kl(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(2.0, 1.0, (n, 4))


def _rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Encoding rows (n, 8) carrying :func:`_kl`, and their per-dim KL as the runtime reads it."""
    rows = rows_with_kl(_kl(n, seed))
    kl = LAYOUT.kl(rows)
    np.testing.assert_allclose(kl, _kl(n, seed), rtol=1e-9)
    return rows, kl


def _alarms(partition, kl: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    scores = kl[:, list(partition.dims)].sum(axis=1)
    alarm = np.zeros(len(scores), bool)
    if partition.threshold is not None:
        alarm |= scores > partition.threshold
    if partition.threshold_low is not None:
        alarm |= scores < partition.threshold_low
    return alarm


def test_default_is_one_two_sided_partition_over_every_dim() -> None:
    rows, kl = _rows(400)
    bundle = calibrate_partitions(make_bundle(calibrated=False), rows)
    (part,) = bundle.manifest.partitions
    assert (part.name, part.dims, part.tail) == ('all', (0, 1, 2, 3), Tail.TWO_SIDED)
    assert bundle.manifest.calibrated and bundle.manifest.target_far == 0.01
    scores = kl.sum(axis=1)
    np.testing.assert_array_equal(part.calibration_scores, np.sort(scores))
    # the manifest's 1 % is split between the two tails
    assert part.threshold == conformal_threshold(scores, 0.005)
    assert part.threshold_low == conformal_threshold_low(scores, 0.005)


def test_rate_is_split_between_partitions_and_tails() -> None:
    rows, kl = _rows(600)
    cusum = CusumParams(10, 0.5, 3.0)
    bundle = calibrate_partitions(make_bundle(calibrated=False), rows, target_far=0.06,
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
    bundle = calibrate_partitions(make_bundle(calibrated=False), _rows(n, seed=1)[0],
                                  target_far=target, plans=PLANS)
    fresh = _kl(200_000, seed=2)
    per_partition = [_alarms(p, fresh) for p in bundle.manifest.partitions]
    share = target / 3  # each partition gets a third (a two-sided one half of that per tail)
    spread = 4 * np.sqrt(share / n)  # sampling error of thresholds from n frames
    for alarm in per_partition:
        assert share - spread < alarm.mean() < share + spread
    assert np.logical_or.reduce(per_partition).mean() <= target + spread


def test_too_few_frames() -> None:
    with pytest.raises(CalibrationError, match=f'Only 19 calibration frames; give at least '
                       f'{MIN_CALIBRATION_FRAMES}'):
        calibrate_partitions(make_bundle(calibrated=False), _rows(19)[0], target_far=0.1)
    assert MIN_CALIBRATION_FRAMES == 20


def test_rate_too_strict_for_the_frames() -> None:
    with pytest.raises(CalibrationError, match='100 calibration frames cannot certify'):
        calibrate_partitions(make_bundle(calibrated=False), _rows(100)[0], target_far=0.001)


def test_degenerate_scores() -> None:
    kl = _kl(200)
    kl[:, 2] = 0.25
    with pytest.raises(CalibrationError, match=r"Partition 'down': every calibration score is "
                       r'0.25.*degenerate'):
        calibrate_partitions(make_bundle(calibrated=False), rows_with_kl(kl), plans=PLANS[1:2])


# (200, 4): per-dim KL is no longer taken, the rows carry mu and logvar
@pytest.mark.parametrize('shape', [(200, 3), (200, 4), (200,), (200, 8, 1)])
def test_wrong_rows_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(CalibrationError, match=r'Expected encoding rows of shape \(N, 8\), got '
                       + repr(shape).replace('(', r'\(').replace(')', r'\)')):
        calibrate_partitions(make_bundle(calibrated=False), np.ones(shape))


def test_generic_partition_takes_its_cross_fitted_scores() -> None:
    rows, _ = _rows(300)
    density = DensityModel(columns=(0, 1, 4), centre=np.zeros(3), whitening=np.eye(3),
                           method='mahalanobis', groups=('mu', 'logvar'))
    honest = np.random.default_rng(3).gamma(3.0, 1.0, 300)  # not the model's own scores
    plan = PartitionPlan('generic', (), density=density, scores=honest)
    bundle = calibrate_partitions(make_bundle(calibrated=False), rows, target_far=0.02,
                                  plans=[plan])
    (part,) = bundle.manifest.partitions
    assert part.density is density and part.dims == () and part.threshold_low is None
    np.testing.assert_array_equal(part.calibration_scores, np.sort(honest))
    assert part.threshold == conformal_threshold(honest, 0.02)
    for scores in (None, honest[:-1]):  # every calibration frame needs its score
        with pytest.raises(CalibrationError, match="Generic partition 'generic' needs the "
                           'cross-fitted scores of every calibration frame'):
            calibrate_partitions(make_bundle(calibrated=False), rows,
                                 plans=[PartitionPlan('generic', (), density=density,
                                                      scores=scores)])
