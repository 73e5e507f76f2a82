"""Tests of vae_ood_monitor.core.baseline and of change partitions in the detector."""

from __future__ import annotations

import math

from hypothesis import given, strategies as st
import numpy as np
import pytest

from vae_ood_monitor.core.baseline import Baseline, BaselineParams, relative_scores
from vae_ood_monitor.core.detector import Decider, PartitionDetector
from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.manifest import CusumParams, Partition
from vae_ood_monitor.core.typedefs import DecisionMode, Tail


def test_ratio_against_the_lagged_median_by_hand() -> None:
    # reference: the median of the 3 frames that lie 2 frames back (frames = 3, gap = 2)
    baseline = Baseline(BaselineParams(frames=3, gap=2, min_frames=2, hold=0))
    stream = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 5.0]
    ratios = []
    for value in stream:
        ratios.append(baseline.ratio(value))
        baseline.push(value)
    # t=0..3: fewer than 2 frames older than the gap -> placeholder 1
    # t=4: reference [10, 20] -> median 15 -> 50/15; t=5: [10, 20, 30] -> 20 -> 60/20
    # t=6: [20, 30, 40] -> 30 -> 5/30
    assert ratios == pytest.approx([1, 1, 1, 1, 50 / 15, 3.0, 5 / 30])
    np.testing.assert_allclose(relative_scores(stream, baseline.params), ratios)
    assert BaselineParams(3, 2, 2, 0).warmup == 4


def test_offset_damps_changes_of_near_zero_kl_by_hand() -> None:
    # (raw + c) / (median + c): reference [2, 4, 6] -> median 4; c = 2
    params = BaselineParams(frames=3, gap=0, min_frames=3, hold=0, offset=2.0)
    baseline = Baseline(params)
    for value in (2.0, 4.0, 6.0):
        baseline.push(value)
    assert baseline.ratio(10.0) == pytest.approx(12 / 6)
    assert baseline.ratio(4.0) == 1.0
    # a drift from 0.5 to 2 nats: a fourfold plain ratio, 1.6 with an offset of 2
    tiny = relative_scores([0.5] * 3 + [2.0], BaselineParams(3, 0, 3, 0))
    damped = relative_scores([0.5] * 3 + [2.0], BaselineParams(3, 0, 3, 0, offset=2.0))
    assert tiny[-1] == 4.0 and damped[-1] == pytest.approx(4.0 / 2.5)
    # an offset also rescues an all-zero reference
    zero = Baseline(BaselineParams(frames=1, gap=0, min_frames=1, hold=0, offset=1.0))
    zero.push(0.0)
    assert zero.ratio(3.0) == 4.0


def test_frozen_reference_keeps_a_lasting_shift_visible_until_hold_runs_out() -> None:
    params = BaselineParams(frames=4, gap=0, min_frames=4, hold=3)
    baseline = Baseline(params)
    for _ in range(4):
        baseline.push(10.0)
    for _ in range(3):  # frozen: the shifted frames stay out of the reference
        assert baseline.ratio(5.0) == 0.5
        baseline.push(5.0, frozen=True)
    baseline.push(5.0, frozen=True)  # hold used up: this one enters the reference
    assert baseline.ratio(5.0) == pytest.approx(5.0 / np.median([10, 10, 10, 5]))
    for _ in range(3):  # and so do the next ones: the reference follows to the new normal
        baseline.push(5.0, frozen=True)
    assert baseline.ratio(5.0) == 1.0
    baseline.push(10.0)  # a frame that does not trigger starts a fresh hold
    for _ in range(3):
        baseline.push(20.0, frozen=True)
    assert baseline.ratio(5.0) == pytest.approx(5.0 / np.median([5, 5, 5, 10]))
    baseline.reset()
    assert not baseline.ready and baseline.ratio(123.0) == 1.0


def test_non_finite_and_zero_reference() -> None:
    baseline = Baseline(BaselineParams(frames=2, gap=0, min_frames=1, hold=0))
    baseline.push(math.nan)  # never enters the reference
    assert not baseline.ready
    baseline.push(0.0)
    assert baseline.ratio(0.0) == 1.0 and baseline.ratio(2.0) == math.inf


@pytest.mark.parametrize('kwargs, message', [
    ({'frames': -1}, 'baseline frames -1 must be a non-negative integer'),
    ({'gap': 1.5}, 'baseline gap 1.5 must be a non-negative integer'),
    ({'hold': True}, 'baseline hold True must be a non-negative integer'),
    ({'frames': 5, 'min_frames': 6}, r'min_frames 6 must be in 1..frames \(5\)'),
    ({'min_frames': 0}, r'min_frames 0 must be in 1..frames'),
    ({'offset': -1.0}, r'offset -1.0 must be a finite number >= 0'),
    ({'offset': math.nan}, r'offset nan must be a finite number >= 0'),
    ({'offset': '3'}, r"offset '3' must be a finite number >= 0"),
    ({'offset': True}, r'offset True must be a finite number >= 0'),
])
def test_bad_params(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BaselineParams(**kwargs)  # type: ignore[arg-type]


@given(st.lists(st.floats(0.01, 1e6), min_size=1, max_size=80),
       st.integers(2, 20), st.integers(0, 10))
def test_ratios_are_scale_free(values: list[float], frames: int, gap: int) -> None:
    # a scene whose KL is k times higher throughout gives the same ratios: the point of it
    params = BaselineParams(frames, gap, max(1, frames // 3), 0)
    base = relative_scores(values, params)
    np.testing.assert_allclose(relative_scores(np.asarray(values) * 7.5, params), base,
                               rtol=1e-9)
    assert np.all(base > 0) and np.all(base[:params.warmup] == 1.0)
    # with an offset, scaling the scene and the offset together changes nothing either
    shifted = BaselineParams(frames, gap, max(1, frames // 3), 0, offset=3.0)
    scaled = BaselineParams(frames, gap, max(1, frames // 3), 0, offset=3.0 * 7.5)
    np.testing.assert_allclose(relative_scores(np.asarray(values) * 7.5, scaled),
                               relative_scores(values, shifted), rtol=1e-9)


@given(st.lists(st.floats(0.0, 1e6), min_size=1, max_size=80),
       st.integers(1, 31), st.integers(0, 6), st.floats(0.0, 10.0))
def test_ratios_equal_numpys_median_of_the_lagged_window(values: list[float], frames: int,
                                                         gap: int, offset: float) -> None:
    # the runtime takes the median without numpy (ten times cheaper): exactly the same value
    params = BaselineParams(frames, gap, max(1, frames // 3), 0, offset=offset)
    expected = []
    for t, value in enumerate(values):
        window = values[max(0, t - gap - frames):max(0, t - gap)]
        if len(window) < params.min_frames:
            expected.append(1.0)
            continue
        reference = float(np.median(window)) + offset
        expected.append((value + offset) / reference if reference > 0 else
                        (math.inf if value + offset > 0 else 1.0))
    assert relative_scores(values, params).tolist() == expected


def change_partition(**kwargs: object) -> Partition:
    kwargs.setdefault('cusum', CusumParams(3, 0.0, 2.0))
    return Partition('p_change', (0,), calibration_scores=np.linspace(0.8, 1.2, 99),
                     threshold=1.19, threshold_low=0.81, tail=Tail.TWO_SIDED,
                     baseline=BaselineParams(10, 2, 5, 100), **kwargs)  # type: ignore[arg-type]


def stream(level_change_at: int, n: int, before: float = 50.0, after: float = 30.0
           ) -> np.ndarray:
    rng = np.random.default_rng(0)
    values = np.where(np.arange(n) < level_change_at, before, after)
    return (values * rng.uniform(0.97, 1.03, n))[:, None]


def test_change_partition_fires_on_a_drop_within_the_stream() -> None:
    # a 40 % drop: no absolute threshold would see it, the change partition does
    decider = Decider([change_partition()], DecisionMode.CUSUM, clear_frames=5)
    result = decider.run(stream(30, 60))
    scores = result['p_change.score']
    assert np.all(scores[:7] == 1.0)  # warm-up: gap 2 + 5 frames
    assert np.all(np.abs(scores[7:30] - 1) < 0.07)
    assert not result['alert'][:30].any()
    onset = int(np.flatnonzero(result['alert'])[0])
    assert 30 <= onset <= 33
    # the reference is frozen while it fires, so the alert lasts as long as the shift
    assert result['alert'][onset:].all()
    assert np.all(scores[40:] < 0.7)
    decider.reset()
    assert decider.run(stream(100, 10))['p_change.score'].tolist()[:7] == [1.0] * 7


def test_change_partition_never_triggers_in_threshold_mode() -> None:
    detector = PartitionDetector(change_partition(), DecisionMode.THRESHOLD)
    states = [detector.update(row) for row in stream(30, 60)]
    assert min(s.p_value for s in states) == 2 / 100  # it reports the change (two-sided) ...
    assert min(s.score for s in states) < 0.7
    # ... but takes no part in the per-frame rule: one frame cannot show a change
    assert all(s.evidence == 0.0 and not s.triggered for s in states)


def test_non_finite_kl_is_the_most_extreme_p_value() -> None:
    detector = PartitionDetector(change_partition(), DecisionMode.CUSUM)
    for row in stream(100, 12):
        detector.update(row)
    state = detector.update(np.array([math.nan]))
    assert state.score == math.inf and state.p_value == 1 / 100
