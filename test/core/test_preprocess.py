"""Tests of vae_ood_monitor.core.preprocess: InputSpec, resize_image and Preprocessor.

Expected values are computed by hand (a constant frame of value v becomes v / 255) or with plain
OpenCV / numpy, never with the code under test.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vae_ood_monitor.core.errors import ConfigError, ImageEncodingError
from vae_ood_monitor.core.preprocess import InputSpec, Preprocessor, resize_image
from vae_ood_monitor.core.typedefs import ChannelOrder, Interpolation


def random_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A uint8 image with random pixels (the worst case for resize rounding)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, channels), dtype=np.uint8)


def smooth_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A uint8 image with camera-like smooth content."""
    return cv2.GaussianBlur(random_image(height, width, channels, seed), (0, 0), 3)


# --- InputSpec -----------------------------------------------------------------------------------

@pytest.mark.parametrize('height, width', [(0, 16), (12, 0), (-1, 16), (12.0, 16), ('12', 16)])
def test_input_spec_rejects_bad_size(height: object, width: object) -> None:
    with pytest.raises(ConfigError, match='Input size .* is invalid'):
        InputSpec(height, width)  # type: ignore[arg-type]


def test_input_spec_rejects_unknown_channel_order_naming_choices() -> None:
    with pytest.raises(ConfigError, match=r"channel_order 'rgba' is not supported.*rgb, bgr"):
        InputSpec(12, 16, channel_order='rgba')  # type: ignore[arg-type]


def test_input_spec_rejects_unknown_interpolation_naming_choices() -> None:
    with pytest.raises(ConfigError,
                       match=r"interpolation 'lanczos'.*area, linear, nearest, cubic"):
        InputSpec(12, 16, interpolation='lanczos')  # type: ignore[arg-type]


@pytest.mark.parametrize('std', [(1.0, 0.0, 1.0), (1.0, 1.0, -0.5)])
def test_input_spec_rejects_non_positive_std(std: tuple[float, float, float]) -> None:
    with pytest.raises(ConfigError, match='std .* must be positive'):
        InputSpec(12, 16, std=std)


@pytest.mark.parametrize('name, value', [('mean', (0.0, 0.0)), ('mean', (0.0, float('nan'), 0.0)),
                                         ('std', (1.0, float('inf'), 1.0))])
def test_input_spec_rejects_bad_mean_std_values(name: str, value: tuple[float, ...]) -> None:
    with pytest.raises(ConfigError, match=f'Input {name} .* must be three finite numbers'):
        InputSpec(12, 16, **{name: value})  # type: ignore[arg-type]


def test_input_spec_normalises_strings_and_round_trips() -> None:
    spec = InputSpec(12, 16, channel_order='bgr', interpolation='nearest',  # type: ignore
                     mean=[0.5, 0.25, 0], std=[2, 1, 0.5])  # type: ignore[arg-type]
    assert spec.channel_order is ChannelOrder.BGR
    assert spec.interpolation is Interpolation.NEAREST
    assert spec.mean == (0.5, 0.25, 0.0) and spec.std == (2.0, 1.0, 0.5)
    assert spec.shape == (1, 3, 12, 16)
    assert InputSpec.from_dict(spec.to_dict()) == spec


# --- resize_image --------------------------------------------------------------------------------

@pytest.mark.parametrize('make', [random_image, smooth_image])
@pytest.mark.parametrize('source, target', [
    ((480, 640), (120, 160)),   # 4x: two exact halvings
    ((48, 64), (12, 16)),       # 4x, small
    ((480, 640), (240, 320)),   # 2x: one halving
    ((200, 300), (120, 160)),   # non-power-of-two factor: INTER_AREA only
    ((200, 300), (120, 100)),   # non-uniform non-power-of-two factors
])
def test_resize_area_matches_opencv_inter_area(make, source: tuple[int, int],
                                               target: tuple[int, int]) -> None:
    image = make(*source)
    got = resize_image(image, target[1], target[0], 'area')
    expected = cv2.resize(image, (target[1], target[0]), interpolation=cv2.INTER_AREA)
    assert got.shape == expected.shape == (*target, 3)
    assert got.dtype == np.uint8
    assert np.abs(got.astype(np.int16) - expected).max() <= 1


def test_resize_area_halving_then_remainder_is_close_on_smooth_images() -> None:
    # 640x480 -> 200x150 halves once to 320x240 and then applies INTER_AREA for the 1.6x rest.
    # Halving snaps the box edges to even source pixels, so this is only close to a direct
    # INTER_AREA for smooth (camera-like) content; on pixel noise it differs by tens of levels.
    image = smooth_image(480, 640)
    got = resize_image(image, 200, 150, 'area')
    expected = cv2.resize(image, (200, 150), interpolation=cv2.INTER_AREA)
    diff = np.abs(got.astype(np.int16) - expected)
    assert diff.max() <= 2 and diff.mean() < 0.5


def test_resize_area_four_channels() -> None:
    image = random_image(480, 640, 4)
    got = resize_image(image, 160, 120, Interpolation.AREA)
    expected = cv2.resize(image, (160, 120), interpolation=cv2.INTER_AREA)
    assert got.shape == (120, 160, 4)
    assert np.abs(got.astype(np.int16) - expected).max() <= 1


@pytest.mark.parametrize('size', [(480, 640), (240, 320), (120, 160)])
def test_padding_large_frames_to_four_planes_changes_no_pixel(size: tuple[int, int]) -> None:
    # large frames are halved as 4-plane images (OpenCV's SIMD path): the same pixels as
    # halving the 3 planes themselves, plane order and shape kept
    image = random_image(*size, seed=5)
    expected = image
    while expected.shape[0] >= 120:
        expected = cv2.resize(expected, (expected.shape[1] // 2, expected.shape[0] // 2),
                              interpolation=cv2.INTER_LINEAR)
    got = resize_image(image, 80, 60, 'area')
    assert got.shape == (60, 80, 3) and got.flags['C_CONTIGUOUS']
    np.testing.assert_array_equal(got, expected)
    # the Preprocessor takes the padded frame as it is: its output is the same planes / 255
    out = Preprocessor(InputSpec(60, 80))(image)[0]
    np.testing.assert_array_equal(out, expected.transpose(2, 0, 1).astype(np.float32) / 255)
    bgr = Preprocessor(InputSpec(60, 80, channel_order='bgr'))(image)[0]
    np.testing.assert_array_equal(bgr, out[::-1])


def test_resize_exact_halving_is_block_mean() -> None:
    image = np.array([[0, 4, 10, 10], [8, 4, 20, 0]], np.uint8)[:, :, None].repeat(3, axis=2)
    got = resize_image(image, 2, 1, 'area')
    assert got[0, :, 0].tolist() == [4, 10]  # (0+4+8+4)/4, (10+10+20+0)/4


@pytest.mark.parametrize('interpolation', list(Interpolation))
def test_resize_is_noop_at_target_size(interpolation: Interpolation) -> None:
    image = random_image(120, 160)
    assert resize_image(image, 160, 120, interpolation) is image


@pytest.mark.parametrize('interpolation, flag', [('linear', cv2.INTER_LINEAR),
                                                 ('nearest', cv2.INTER_NEAREST),
                                                 ('cubic', cv2.INTER_CUBIC)])
def test_resize_other_modes_are_opencv(interpolation: str, flag: int) -> None:
    image = random_image(100, 130)
    expected = cv2.resize(image, (40, 30), interpolation=flag)
    np.testing.assert_array_equal(resize_image(image, 40, 30, interpolation), expected)


def test_resize_upscale() -> None:
    image = random_image(6, 8)
    assert resize_image(image, 16, 12, 'area').shape == (12, 16, 3)


# --- Preprocessor --------------------------------------------------------------------------------

@pytest.mark.parametrize('value', [0, 1, 3, 7, 51, 128, 200, 254, 255])
def test_constant_image_gives_exactly_v_over_255(value: int) -> None:
    pre = Preprocessor(InputSpec(12, 16))
    out = pre(np.full((48, 64, 3), value, np.uint8))
    assert out.shape == (1, 3, 12, 16) and out.dtype == np.float32
    assert np.all(out == np.float32(value) / np.float32(255))


def test_all_pixel_values_exact_without_resize() -> None:
    # 256 pixels: every uint8 value once per plane; float32 division is correctly rounded.
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image = np.stack([values, values[::-1], values.T], axis=2)
    out = Preprocessor(InputSpec(16, 16))(image)
    expected = image.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(out[0], expected)


def test_mean_std_per_plane() -> None:
    mean, std = (0.5, 0.25, 0.1), (0.5, 2.0, 0.25)
    pre = Preprocessor(InputSpec(12, 16, mean=mean, std=std))
    image = np.zeros((12, 16, 3), np.uint8)
    image[:] = (51, 102, 255)
    out = pre(image)
    for plane, (v, m, s) in enumerate(zip((51, 102, 255), mean, std)):
        np.testing.assert_allclose(out[0, plane], (v / 255 - m) / s, rtol=1e-6, atol=1e-6)
    # By hand: (0.2 - 0.5) / 0.5 = -0.6, (0.4 - 0.25) / 2 = 0.075, (1 - 0.1) / 0.25 = 3.6.
    np.testing.assert_allclose(out[0, :, 0, 0], [-0.6, 0.075, 3.6], rtol=1e-6)


def test_plane_order_rgb_model() -> None:
    pre = Preprocessor(InputSpec(12, 16))
    image = np.zeros((12, 16, 3), np.uint8)
    image[:] = (10, 20, 30)  # R, G, B
    out = pre(image, 'rgb')
    assert out[0, :, 0, 0].tolist() == pytest.approx([10 / 255, 20 / 255, 30 / 255])
    out = pre(image[:, :, ::-1], ChannelOrder.BGR)
    assert out[0, :, 0, 0].tolist() == pytest.approx([10 / 255, 20 / 255, 30 / 255])


def test_plane_order_bgr_model() -> None:
    pre = Preprocessor(InputSpec(12, 16, channel_order='bgr'))  # type: ignore[arg-type]
    image = np.zeros((12, 16, 3), np.uint8)
    image[:] = (10, 20, 30)  # R, G, B
    out = pre(image, 'rgb')
    assert out[0, :, 0, 0].tolist() == pytest.approx([30 / 255, 20 / 255, 10 / 255])


@pytest.mark.parametrize('model_order', ['rgb', 'bgr'])
def test_bgr_input_equals_rgb_input(model_order: str) -> None:
    pre = Preprocessor(InputSpec(12, 16, channel_order=model_order,  # type: ignore[arg-type]
                                 mean=(0.1, 0.2, 0.3), std=(0.9, 1.0, 1.1)))
    rgb = smooth_image(48, 64)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    from_rgb = pre(rgb, 'rgb').copy()
    from_bgr = pre(bgr, 'bgr').copy()
    np.testing.assert_array_equal(from_bgr, from_rgb)


def test_alpha_plane_is_ignored() -> None:
    pre = Preprocessor(InputSpec(12, 16))
    rgb = smooth_image(48, 64)
    rgba = np.concatenate([rgb, random_image(48, 64, 1, seed=5)], axis=2)
    from_rgb = pre(rgb).copy()
    np.testing.assert_array_equal(pre(rgba), from_rgb)


def test_returns_the_internal_buffer() -> None:
    pre = Preprocessor(InputSpec(12, 16))
    first = pre(np.full((12, 16, 3), 10, np.uint8))
    second = pre(np.full((12, 16, 3), 20, np.uint8))
    assert first is second is pre.buffer
    assert np.all(first == np.float32(20) / np.float32(255))  # overwritten by the second call


def test_batch_matches_per_frame_calls() -> None:
    pre = Preprocessor(InputSpec(12, 16, mean=(0.1, 0.2, 0.3)))
    images = [smooth_image(48, 64, seed=s) for s in range(3)]
    batch = pre.batch(images)
    assert batch.shape == (3, 3, 12, 16) and batch.dtype == np.float32
    assert batch is not pre.buffer
    for i, image in enumerate(images):
        np.testing.assert_array_equal(batch[i], pre(image)[0])
    np.testing.assert_array_equal(pre.batch(np.stack(images)), batch)
    assert pre.batch([]).shape == (0, 3, 12, 16)


def test_batch_order() -> None:
    pre = Preprocessor(InputSpec(12, 16))
    images = [smooth_image(24, 32, seed=s) for s in range(2)]
    bgr = [np.ascontiguousarray(i[:, :, ::-1]) for i in images]
    np.testing.assert_array_equal(pre.batch(bgr, 'bgr'), pre.batch(images, 'rgb'))


@pytest.mark.parametrize('image', [
    np.zeros((12, 16), np.uint8),
    np.zeros((12, 16, 3), np.float32),
    np.zeros((12, 16, 3), np.uint16),
    np.zeros((12, 16, 5), np.uint8),
    np.zeros((12, 16, 1), np.uint8),
], ids=['2d', 'float32', 'uint16', '5ch', '1ch'])
def test_bad_input_raises_image_encoding_error(image: np.ndarray) -> None:
    pre = Preprocessor(InputSpec(12, 16))
    with pytest.raises(ImageEncodingError, match=r'uint8 colour image, got shape .*to_rgb8'):
        pre(image)
