"""Tests of the OOD shifts."""

from __future__ import annotations

import math

import cv2
from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from vae_ood_monitor.core.errors import ConfigError, DataError
from vae_ood_monitor.data.scenes import RoadScene, SceneConfig
from vae_ood_monitor.data.shifts import (
    apply_shift, augment_in_range, augment_with_levels, brightness_factor, sample_severity,
    SEVERITY_RANGES, ShiftKind, ShiftProcess, SPLITS)


@pytest.fixture(scope='module')
def frame() -> np.ndarray:
    return RoadScene(4).render(10)


@pytest.fixture(scope='module')
def texture() -> np.ndarray:
    """A busy random image: any blur, dirt or smear changes almost every covered pixel."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _shift(img: np.ndarray, kind: str, s: float, seed: int = 1, **kw: object) -> np.ndarray:
    return apply_shift(img, kind, s, np.random.default_rng(seed), **kw)


def _value(img: np.ndarray) -> float:
    return float(cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 2].mean())


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(float)


def test_kinds_and_ranges() -> None:
    assert [k.value for k in ShiftKind] == ['rain', 'brightness', 'fog', 'snow', 'motion_blur',
                                            'noise', 'occlusion', 'objects']
    assert set(SEVERITY_RANGES) == set(ShiftKind)
    for kind, ranges in SEVERITY_RANGES.items():
        assert set(ranges) == set(SPLITS) == {'train', 'test'}
        (a, b), (c, d) = ranges['train'], ranges['test']
        assert 0.0 <= a < b < c < d <= 1.0, kind          # a gap: test strictly beyond train
    with pytest.raises(TypeError):
        SEVERITY_RANGES[ShiftKind.RAIN] = {}  # type: ignore[index]


def test_brightness_ranges_match_the_paper() -> None:
    lo, hi = SEVERITY_RANGES[ShiftKind.BRIGHTNESS]['train']
    assert brightness_factor(hi, -1) == pytest.approx(0.5)
    assert brightness_factor(hi, +1) == pytest.approx(1.5)
    test_lo = SEVERITY_RANGES[ShiftKind.BRIGHTNESS]['test'][0]
    assert brightness_factor(test_lo, -1) < 0.36 and brightness_factor(test_lo, +1) > 1.8


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(list(ShiftKind)), split=st.sampled_from(SPLITS),
       seed=st.integers(0, 2 ** 32 - 1))
def test_sample_severity_stays_in_range(kind: ShiftKind, split: str, seed: int) -> None:
    lo, hi = SEVERITY_RANGES[kind][split]
    s = sample_severity(kind.value, split, np.random.default_rng(seed))
    assert isinstance(s, float) and lo <= s <= hi


@pytest.mark.parametrize('kind', list(ShiftKind))
def test_every_kind_changes_the_image_and_keeps_the_input(kind: ShiftKind,
                                                          frame: np.ndarray) -> None:
    before = frame.copy()
    out = _shift(frame, kind, 0.8)
    assert np.array_equal(frame, before)
    assert out.shape == frame.shape and out.dtype == np.uint8 and out is not frame
    changed = np.abs(out.astype(int) - frame).max(axis=2) > 10
    assert changed.mean() > 0.01
    zero = _shift(frame, kind, 0.0)
    assert np.array_equal(zero, frame) and zero is not frame


@pytest.mark.parametrize('kind', list(ShiftKind))
@pytest.mark.parametrize('shape', [(30, 40), (224, 224), (9, 17), (480, 640), (1, 1)])
def test_any_size(kind: ShiftKind, shape: tuple[int, int]) -> None:
    img = np.random.default_rng(1).integers(0, 256, shape + (3,), dtype=np.uint8)
    out = _shift(img, kind, 1.0)
    assert out.shape == img.shape and out.dtype == np.uint8


def test_shift_is_deterministic_per_rng(frame: np.ndarray) -> None:
    for kind in ShiftKind:
        assert np.array_equal(_shift(frame, kind, 0.7, seed=5), _shift(frame, kind, 0.7, seed=5))
    assert not np.array_equal(_shift(frame, 'rain', 0.7, seed=5), _shift(frame, 'rain', 0.7, 6))


@pytest.mark.parametrize('s', [0.2, 0.4, 0.7, 1.0])
def test_brightness_scales_hsv_value(frame: np.ndarray, s: float) -> None:
    v0 = _value(frame)
    dark = _shift(frame, 'brightness', s, direction=-1)
    assert _value(dark) / v0 == pytest.approx(brightness_factor(s, -1), rel=0.05)
    dim = (frame // 4).astype(np.uint8)         # no saturation even at the largest factor
    bright = _shift(dim, 'brightness', s, direction=1)
    assert _value(bright) / _value(dim) == pytest.approx(brightness_factor(s, 1), rel=0.05)


def test_brightness_direction_drawn_from_rng(frame: np.ndarray) -> None:
    v0 = _value(frame)
    ups = {_value(_shift(frame, 'brightness', 0.5, seed=i)) > v0 for i in range(20)}
    assert ups == {True, False}


def test_noise_grows_with_severity(frame: np.ndarray) -> None:
    stds = [float(np.std(_shift(frame, 'noise', s).astype(float) - frame)) for s in (0.2, 0.5, 1)]
    assert stds[0] < stds[1] < stds[2]
    assert stds[2] > 25


def test_fog_lowers_contrast_more_at_the_top(frame: np.ndarray) -> None:
    # contrast within rows (the fog itself is a vertical gradient)
    contrasts = [float(_gray(_shift(frame, 'fog', s)).std(axis=1).mean())
                 for s in (0.0, 0.3, 0.6, 1.0)]
    assert contrasts == sorted(contrasts, reverse=True) and contrasts[-1] < 0.5 * contrasts[0]
    flat = np.full((120, 160, 3), 60, np.uint8)
    fog = _gray(_shift(flat, 'fog', 1.0))
    assert fog[:20].mean() > fog[-20:].mean() + 30


def test_occlusion_area_grows(texture: np.ndarray) -> None:
    covered = []
    for s in (0.2, 0.5, 1.0):
        out = _shift(texture, 'occlusion', s, seed=3)
        covered.append(float((np.abs(out.astype(int) - texture).max(axis=2) > 40).mean()))
    assert covered == sorted(covered)
    for s, c in zip((0.2, 0.5, 1.0), covered):
        assert 0.5 * 0.4 * s < c < 1.6 * 0.4 * s + 0.05, (s, c)


def test_motion_blur_removes_detail(texture: np.ndarray) -> None:
    sharp = [float(cv2.Laplacian(_gray(_shift(texture, 'motion_blur', s)), cv2.CV_64F).var())
             for s in (0.0, 0.2, 0.6, 1.0)]
    assert sharp == sorted(sharp, reverse=True) and sharp[-1] < 0.2 * sharp[0]


@pytest.mark.parametrize('kind', ['rain', 'snow', 'objects'])
def test_effect_grows_with_severity(kind: str, frame: np.ndarray) -> None:
    effects = [_mad(_shift(frame, kind, s, seed=2), frame) for s in (0.15, 0.5, 1.0)]
    assert effects == sorted(effects) and effects[0] > 0


def test_snow_brightens_and_objects_stay_low(frame: np.ndarray) -> None:
    assert _shift(frame, 'snow', 1.0).mean() > frame.mean() + 10
    for seed in range(5):
        out = _shift(frame, 'objects', 1.0, seed=seed)
        changed = np.abs(out.astype(int) - frame).max(axis=2) > 10
        assert changed[:25].mean() < 0.01 < changed[60:].mean()


def test_shift_process_is_deterministic(frame: np.ndarray) -> None:
    for kind in ShiftKind:
        a, b = ShiftProcess(kind, 0.8, seed=7), ShiftProcess(kind.value, 0.8, seed=7)
        for i in (0, 1, 13):
            assert np.array_equal(a(frame, i), b(frame, i))
    rain = ShiftProcess('rain', 0.8, seed=7)
    assert not np.array_equal(rain(frame, 0), rain(frame, 1))       # streaks change per frame


def test_lens_occlusion_is_stable(texture: np.ndarray) -> None:
    proc = ShiftProcess('occlusion', 0.7, seed=11)
    assert np.array_equal(proc(texture, 0), proc(texture, 25))
    other = np.random.default_rng(9).integers(0, 256, texture.shape, dtype=np.uint8)
    mask_a = np.abs(proc(texture, 3).astype(int) - texture).max(axis=2) > 40
    mask_b = np.abs(proc(other, 4).astype(int) - other).max(axis=2) > 40
    assert (mask_a & mask_b).sum() / (mask_a | mask_b).sum() > 0.8


def test_objects_and_snow_move_smoothly(frame: np.ndarray) -> None:
    for kind in ('objects', 'snow'):
        proc = ShiftProcess(kind, 0.9, seed=2)
        outs = [proc(frame, i) for i in range(0, 41)]
        step = np.mean([_mad(outs[i], outs[i + 1]) for i in range(0, 40, 5)])
        jump = _mad(outs[0], ShiftProcess(kind, 0.9, seed=3)(frame, 0))
        assert step < 0.6 * jump, (kind, step, jump)


def test_augment_in_range(frame: np.ndarray) -> None:
    before = frame.copy()
    same = augment_in_range(frame, np.random.default_rng(0), p=0.0)
    assert np.array_equal(same, frame) and same is not frame
    out = augment_in_range(frame, np.random.default_rng(0), kinds=('brightness',), p=1.0)
    assert not np.array_equal(out, frame)
    a = augment_in_range(frame, np.random.default_rng(4), kinds=['rain', 'fog'], p=0.5)
    assert np.array_equal(a, augment_in_range(frame, np.random.default_rng(4), ['rain', 'fog']))
    assert np.array_equal(frame, before)
    small = [abs(_value(augment_in_range(frame, np.random.default_rng(i), ('brightness',), 1.0))
                 / _value(frame) - 1) for i in range(20)]
    assert max(small) < 0.55              # train range: within +-50 % (HSV rounding aside)
    full = [abs(_value(augment_in_range(frame, np.random.default_rng(i), ('brightness',), 1.0,
                                        split='full')) / _value(frame) - 1) for i in range(20)]
    assert max(full) > 0.6                # the full range reaches test-range severities


def test_augment_with_levels_reports_what_it_applied(frame: np.ndarray) -> None:
    value = _value(frame)
    signs = set()
    for seed in range(40):
        image, levels = augment_with_levels(frame, np.random.default_rng(seed))
        # same draws, same image as the plain augmentation
        assert np.array_equal(image, augment_in_range(frame, np.random.default_rng(seed)))
        assert set(levels) == {'rain', 'brightness'}
        assert 0.0 <= levels['rain'] <= SEVERITY_RANGES[ShiftKind.RAIN]['train'][1]
        level = levels['brightness']
        assert abs(level) <= SEVERITY_RANGES[ShiftKind.BRIGHTNESS]['train'][1]
        if levels['rain'] == 0.0 and abs(level) > 0.1:  # brightness alone: its sign is its way
            signs.add(level > 0)
            expected = brightness_factor(abs(level), 1 if level > 0 else -1)
            assert _value(image) / value == pytest.approx(expected, rel=0.05)
        if levels == {'rain': 0.0, 'brightness': 0.0}:
            assert np.array_equal(image, frame)
    assert signs == {True, False}  # both directions came up and were told apart
    _, none = augment_with_levels(frame, np.random.default_rng(0), ('rain',), p=0.0)
    assert none == {'rain': 0.0}
    with pytest.raises(ConfigError, match='unknown shift kind'):
        augment_with_levels(frame, np.random.default_rng(0), ('hail',))


def test_full_split_spans_zero_to_one() -> None:
    rng = np.random.default_rng(0)
    draws = [sample_severity('noise', 'full', rng) for _ in range(400)]
    assert 0.0 <= min(draws) < 0.05 and 0.95 < max(draws) <= 1.0


@pytest.mark.parametrize(('call', 'error', 'match'), [
    (lambda f, r: apply_shift(f, 'lava', 0.5, r), ConfigError,
     r"unknown shift kind 'lava'; valid kinds: \['rain', 'brightness'"),
    (lambda f, r: apply_shift(f, 'rain', 1.5, r), ConfigError,
     r'severity must be a number in \[0, 1\], got 1.5'),
    (lambda f, r: apply_shift(f, 'rain', -0.1, r), ConfigError, 'severity must be'),
    (lambda f, r: apply_shift(f, 'rain', math.nan, r), ConfigError, 'got nan'),
    (lambda f, r: apply_shift(f, 'rain', True, r), ConfigError, 'got True'),
    (lambda f, r: apply_shift(f, 'rain', '0.5', r), ConfigError, "got '0.5'"),
    (lambda f, r: apply_shift(f, 'rain', 0.5, 42), ConfigError,
     'rng must be a numpy.random.Generator, got int'),
    (lambda f, r: apply_shift(f, 'brightness', 0.5, r, direction=2), ConfigError,
     r'direction must be None, \+1 \(brighter\) or -1 \(darker\), got 2'),
    (lambda f, r: apply_shift(f.astype(np.float32), 'rain', 0.5, r), DataError,
     r'RGB uint8 array of shape \(h, w, 3\), got float32 array of shape \(120, 160, 3\)'),
    (lambda f, r: apply_shift(f[..., 0], 'rain', 0.5, r), DataError, r'shape \(120, 160\)'),
    (lambda f, r: apply_shift(f[..., :2], 'rain', 0.5, r), DataError, 'uint8 array'),
    (lambda f, r: apply_shift(f[:0], 'rain', 0.5, r), DataError, r'shape \(0, 160, 3\)'),
    (lambda f, r: apply_shift([[0]], 'rain', 0.5, r), DataError, 'got list'),
    (lambda f, r: sample_severity('rain', 'val', r), ConfigError,
     r"split must be one of \['train', 'test', 'full'\], got 'val'"),
    (lambda f, r: sample_severity('mud', 'train', r), ConfigError, "unknown shift kind 'mud'"),
    (lambda f, r: ShiftProcess('rain', 0.5, seed=-1), ConfigError,
     'seed must be a non-negative int, got -1'),
    (lambda f, r: ShiftProcess('fog', 2.0, seed=0), ConfigError, 'severity must be'),
    (lambda f, r: ShiftProcess('fog', 0.5, seed=0)(f, -3), ConfigError,
     'index must be a non-negative int, got -3'),
    (lambda f, r: ShiftProcess('fog', 0.5, seed=0)(f[..., 0], 0), DataError, 'RGB uint8'),
    (lambda f, r: augment_in_range(f, r, p=1.5), ConfigError,
     r'p must be a probability in \[0, 1\], got 1.5'),
    (lambda f, r: augment_in_range(f, r, kinds=('rain', 'hail')), ConfigError,
     "unknown shift kind 'hail'"),
])
def test_errors(call: object, error: type, match: str, frame: np.ndarray) -> None:
    with pytest.raises(error, match=match):
        call(frame, np.random.default_rng(0))  # type: ignore[operator]


def test_real_camera_like_frame_sizes() -> None:
    big = RoadScene(2, SceneConfig(width=640, height=480)).render(0)
    out = ShiftProcess('objects', 0.9, seed=1)(big, 5)
    assert out.shape == big.shape and _mad(out, big) > 0.5
