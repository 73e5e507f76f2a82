"""Tests of vae_ood_monitor.core.image: cv_bridge-compatible decoding and RGB conversion.

Expected arrays are built by hand with numpy and serialised into message bytes with explicit
'<'/'>' dtypes and row padding; the code under test never produces its own expectation.
"""

from __future__ import annotations

import array
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import cv2
from hypothesis import given, HealthCheck, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from vae_ood_monitor.core.errors import ImageEncodingError
from vae_ood_monitor.core.image import (
    decode_image,
    is_supported_encoding,
    SUPPORTED_ENCODINGS,
    to_rgb8,
)

# The encoding table, written out from sensor_msgs/image_encodings.hpp and cv_bridge getCvType.
_NAMED = {
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), 'rgba8': (np.uint8, 4),
    'bgra8': (np.uint8, 4), 'mono8': (np.uint8, 1),
    'rgb16': (np.uint16, 3), 'bgr16': (np.uint16, 3), 'rgba16': (np.uint16, 4),
    'bgra16': (np.uint16, 4), 'mono16': (np.uint16, 1),
    'yuv422': (np.uint8, 2), 'yuv422_yuy2': (np.uint8, 2), 'uyvy': (np.uint8, 2),
    'yuyv': (np.uint8, 2),
}
_BAYER = ('rggb', 'bggr', 'gbrg', 'grbg')
_NAMED.update({f'bayer_{p}8': (np.uint8, 1) for p in _BAYER})
_NAMED.update({f'bayer_{p}16': (np.uint16, 1) for p in _BAYER})
_DEPTHS = {'8U': np.uint8, '8S': np.int8, '16U': np.uint16, '16S': np.int16,
           '32S': np.int32, '32F': np.float32, '64F': np.float64}
SPECS: dict[str, tuple[Any, int]] = dict(_NAMED)
SPECS.update({f'{d}C{n}': (t, n) for d, t in _DEPTHS.items() for n in (1, 2, 3, 4)})
SPECS.update({d: (t, 1) for d, t in _DEPTHS.items()})
# Encodings documented as having no RGB meaning in to_rgb8.
_NO_COLOUR_DEPTHS = ('8S', '16S', '32S', '32F', '64F')
NON_RGB = ({f'{d}C{n}' for d in _NO_COLOUR_DEPTHS for n in (1, 2, 3, 4)}
           | set(_NO_COLOUR_DEPTHS) | {'8UC2', '16UC2'})
YUV = ('yuv422', 'yuv422_yuy2', 'uyvy', 'yuyv')


def _sample(dtype: Any, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == 'f':
        return (rng.standard_normal(shape) * 1000).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def _uint8_array(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, np.uint8).copy()


def _message(expected: np.ndarray, encoding: str, big: bool = False, pad: int = 0,
             extra: int = 0) -> SimpleNamespace:
    """Serialise `expected` into a sensor_msgs/Image-like object by hand."""
    height, width = expected.shape[:2]
    wire = np.ascontiguousarray(expected.astype(expected.dtype.newbyteorder('>' if big else '<')))
    rows = wire.reshape(height, -1).view(np.uint8)
    padded = np.full((height, rows.shape[1] + pad), 0xA5, dtype=np.uint8)
    padded[:, :rows.shape[1]] = rows
    data = padded.tobytes() + b'\x5a' * extra
    return SimpleNamespace(height=height, width=width, encoding=encoding,
                           is_bigendian=int(big), step=rows.shape[1] + pad, data=data)


def _compressed(image: np.ndarray, ext: str, fmt: str, **kwargs: Any) -> SimpleNamespace:
    ok, encoded = cv2.imencode(ext, image, **kwargs)
    assert ok
    return SimpleNamespace(format=fmt, data=encoded.tobytes())


def test_supported_encodings_match_the_ros_list() -> None:
    assert set(SUPPORTED_ENCODINGS) == set(SPECS)
    assert list(SUPPORTED_ENCODINGS) == sorted(SUPPORTED_ENCODINGS)
    assert is_supported_encoding('bayer_grbg16') and is_supported_encoding('32F')
    assert not is_supported_encoding('yuv420') and not is_supported_encoding('8UC5')


@pytest.mark.parametrize('padded', [False, True], ids=['unpadded', 'padded'])
@pytest.mark.parametrize('big', [False, True], ids=['little', 'big'])
@pytest.mark.parametrize('encoding', sorted(SPECS))
def test_decode_image_matches_hand_built_array(encoding: str, big: bool, padded: bool) -> None:
    dtype, channels = SPECS[encoding]
    shape = (3, 4) if channels == 1 else (3, 4, channels)
    expected = _sample(dtype, shape, seed=len(encoding))
    pad = (7 if np.dtype(dtype).itemsize == 1 else 16) if padded else 0
    result = decode_image(_message(expected, encoding, big, pad))
    assert result.dtype == np.dtype(dtype) and result.dtype.isnative
    assert result.shape == shape
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize('encoding', [e for e, (t, _) in sorted(SPECS.items())
                                      if np.dtype(t).itemsize == 1])
def test_endianness_flag_is_ignored_for_8_bit(encoding: str) -> None:
    dtype, channels = SPECS[encoding]
    expected = _sample(dtype, (2, 6) if channels == 1 else (2, 6, channels), seed=3)
    msg = _message(expected, encoding, big=False, pad=5)
    little = decode_image(msg)
    msg.is_bigendian = 1
    np.testing.assert_array_equal(decode_image(msg), little)
    np.testing.assert_array_equal(little, expected)


def test_multi_byte_known_values_both_byte_orders() -> None:
    little = SimpleNamespace(height=1, width=2, encoding='mono16', is_bigendian=0, step=4,
                             data=b'\x34\x12\xcd\xab')
    big = SimpleNamespace(height=1, width=2, encoding='mono16', is_bigendian=1, step=4,
                          data=b'\x12\x34\xab\xcd')
    for msg in (little, big):
        result = decode_image(msg)
        assert result.tolist() == [[0x1234, 0xABCD]] and result.dtype.isnative


@pytest.mark.parametrize('kind', ['bytes', 'bytearray', 'memoryview', 'ndarray', 'list',
                                  'tuple', 'array_B', 'array_H', 'strided_ndarray'])
def test_data_container_types(kind: str) -> None:
    expected = _sample(np.uint8, (2, 3, 3), seed=1)
    raw = _message(expected, 'rgb8', pad=2).data
    converters: dict[str, Callable[[bytes], Any]] = {
        'bytes': bytes, 'bytearray': bytearray, 'memoryview': memoryview,
        'ndarray': _uint8_array, 'list': list, 'tuple': tuple,
        'array_B': lambda b: array.array('B', b), 'array_H': lambda b: array.array('H', b),
        'strided_ndarray': lambda b: np.repeat(np.frombuffer(b, np.uint8), 2)[::2],
    }
    convert = converters[kind]
    msg = SimpleNamespace(height=2, width=3, encoding='rgb8', is_bigendian=0, step=11,
                          data=convert(raw))
    np.testing.assert_array_equal(decode_image(msg), expected)


@pytest.mark.parametrize('pad', [0, 7])
def test_zero_copy_view(pad: int) -> None:
    expected = _sample(np.uint8, (480, 640, 3), seed=2)
    msg = _message(expected, 'rgb8', pad=pad)
    buffer = np.frombuffer(msg.data, np.uint8).copy()
    msg.data = buffer
    result = decode_image(msg)
    assert np.shares_memory(result, buffer) and result.flags.writeable
    assert result.flags.c_contiguous == (pad == 0)
    assert np.shares_memory(to_rgb8(msg), buffer)
    msg.data = bytearray(buffer.tobytes())
    assert np.shares_memory(decode_image(msg), np.frombuffer(msg.data, np.uint8))
    msg.data = bytes(msg.data)  # immutable: the view must be read-only
    readonly = decode_image(msg)
    assert not readonly.flags.writeable
    with pytest.raises(ValueError):
        readonly[0, 0, 0] = 1
    np.testing.assert_array_equal(readonly, expected)


def test_byte_swapped_result_is_a_native_copy() -> None:
    expected = _sample(np.uint16, (4, 5, 3), seed=4)
    msg = _message(expected, 'rgb16', big=True, pad=16)
    msg.data = np.frombuffer(msg.data, np.uint8).copy()
    result = decode_image(msg)
    assert not np.shares_memory(result, msg.data) and result.flags.c_contiguous
    np.testing.assert_array_equal(result, expected)


# -------------------------------------------------------------------------- to_rgb8

def _rgb8(encoding: str, expected: np.ndarray, **kwargs: Any) -> np.ndarray:
    result = to_rgb8(_message(expected, encoding, **kwargs))
    assert result.dtype == np.uint8 and result.shape == expected.shape[:2] + (3,)
    return result


def test_to_rgb8_colour_orders_and_alpha() -> None:
    px = np.array([[[1, 2, 3]]], np.uint8)
    assert _rgb8('rgb8', px).tolist() == [[[1, 2, 3]]]
    assert _rgb8('bgr8', px, pad=3).tolist() == [[[3, 2, 1]]]
    assert _rgb8('8UC3', px).tolist() == [[[3, 2, 1]]]  # OpenCV convention: BGR
    px4 = np.array([[[1, 2, 3, 4]]], np.uint8)
    assert _rgb8('rgba8', px4).tolist() == [[[1, 2, 3]]]
    assert _rgb8('bgra8', px4).tolist() == [[[3, 2, 1]]]
    assert _rgb8('8UC4', px4).tolist() == [[[3, 2, 1]]]


@pytest.mark.parametrize('encoding', ['mono8', '8UC1', '8U'])
def test_to_rgb8_mono_is_replicated(encoding: str) -> None:
    grey = np.array([[0, 7], [128, 255]], np.uint8)
    np.testing.assert_array_equal(_rgb8(encoding, grey, pad=1), np.repeat(grey[..., None], 3, 2))


@pytest.mark.parametrize('big', [False, True])
def test_to_rgb8_16_bit_scaling(big: bool) -> None:
    px = np.array([[[0x1234, 0xFFFF, 0x0000]]], np.uint16)
    assert _rgb8('rgb16', px, big=big).tolist() == [[[0x12, 0xFF, 0x00]]]
    assert _rgb8('bgr16', px, big=big).tolist() == [[[0x00, 0xFF, 0x12]]]
    px4 = np.array([[[0x1234, 0x5678, 0x9ABC, 0xDEF0]]], np.uint16)
    assert _rgb8('bgra16', px4, big=big).tolist() == [[[0x9A, 0x56, 0x12]]]
    # Every 16-bit value: cv_bridge's convertTo(alpha=255/65535) rounds v / 257.
    ramp = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    want = ((ramp.astype(np.int64) + 128) // 257).astype(np.uint8)
    for encoding in ('mono16', '16UC1'):
        np.testing.assert_array_equal(_rgb8(encoding, ramp, big=big)[..., 1], want)


def _mosaic(pattern: str, colour: dict[str, int], dtype: Any, size: int = 8) -> np.ndarray:
    tile = np.array([[colour[pattern[0]], colour[pattern[1]]],
                     [colour[pattern[2]], colour[pattern[3]]]], dtype)
    return np.tile(tile, (size // 2, size // 2))


@pytest.mark.parametrize('pattern', _BAYER)
def test_to_rgb8_bayer_uniform_colour(pattern: str) -> None:
    colour = {'r': 200, 'g': 100, 'b': 50}
    result = _rgb8(f'bayer_{pattern}8', _mosaic(pattern, colour, np.uint8), pad=3)
    assert (result[2:-2, 2:-2] == (200, 100, 50)).all(), result[3, 3]
    colour16 = {k: v * 257 for k, v in colour.items()}
    result16 = _rgb8(f'bayer_{pattern}16', _mosaic(pattern, colour16, np.uint16), big=True)
    assert (result16[2:-2, 2:-2] == (200, 100, 50)).all(), result16[3, 3]


def _bt601(y: int, u: int, v: int) -> np.ndarray:
    """OpenCV's YUV 4:2:2 -> RGB: BT.601 with limited ('video') range."""
    c, d, e = 1.164 * (y - 16), u - 128, v - 128
    return np.clip([c + 1.596 * e, c - 0.813 * e - 0.391 * d, c + 2.018 * d], 0, 255)


@pytest.mark.parametrize('encoding', YUV)
@pytest.mark.parametrize('yuv', [(128, 128, 128), (81, 90, 240), (170, 166, 16)])
def test_to_rgb8_yuv422(encoding: str, yuv: tuple[int, int, int]) -> None:
    y, u, v = yuv
    uyvy = encoding in ('yuv422', 'uyvy')
    pair = [[u, y], [v, y]] if uyvy else [[y, u], [y, v]]
    frame = np.tile(np.array(pair, np.uint8), (2, 3, 1))  # 2 rows, 6 columns, 2 channels
    result = _rgb8(encoding, frame, pad=5).astype(int)
    assert np.abs(result - _bt601(*yuv)).max() <= 2, (result[0, 0], _bt601(*yuv))
    if yuv == (128, 128, 128):
        assert np.abs(result - 128).max() <= 3  # grey (130 in limited range)


@pytest.mark.parametrize('encoding', sorted(NON_RGB))
def test_to_rgb8_refuses_encodings_without_colour(encoding: str) -> None:
    dtype, channels = SPECS[encoding]
    msg = _message(_sample(dtype, (2, 2) if channels == 1 else (2, 2, channels)), encoding)
    with pytest.raises(ImageEncodingError, match=rf"encoding '{encoding}' .*no colour meaning"):
        to_rgb8(msg)
    decode_image(msg)  # passthrough decoding still works


def test_to_rgb8_yuv_odd_width() -> None:
    with pytest.raises(ImageEncodingError, match=r"width 3 is odd.*'yuv422'"):
        to_rgb8(_message(np.zeros((2, 3, 2), np.uint8), 'yuv422'))


# --------------------------------------------------------------------- CompressedImage

_COLS, _ROWS = np.meshgrid(np.arange(32) * 8, np.arange(24) * 10)
_BGR = np.dstack([_COLS, _ROWS, np.full((24, 32), 77)]).astype(np.uint8)  # smooth gradients


@pytest.mark.parametrize('fmt', ['png', 'bgr8; png compressed bgr8'])
def test_compressed_png_is_lossless(fmt: str) -> None:
    msg = _compressed(_BGR, '.png', fmt)
    np.testing.assert_array_equal(decode_image(msg), _BGR)
    np.testing.assert_array_equal(to_rgb8(msg), _BGR[..., ::-1])
    msg.data = bytearray(msg.data)
    np.testing.assert_array_equal(to_rgb8(msg), _BGR[..., ::-1])


@pytest.mark.parametrize('fmt', ['jpeg', 'bgr8; jpeg compressed bgr8',
                                 'rgb8; jpeg compressed bgr8'])
def test_compressed_jpeg(fmt: str) -> None:
    msg = _compressed(_BGR, '.jpg', fmt, params=[cv2.IMWRITE_JPEG_QUALITY, 95])
    msg.data = np.frombuffer(msg.data, np.uint8)
    assert np.abs(decode_image(msg).astype(int) - _BGR).mean() < 3
    assert np.abs(to_rgb8(msg).astype(int) - _BGR[..., ::-1]).mean() < 3


def test_compressed_passthrough_is_imread_unchanged() -> None:
    grey = _BGR[..., 0]
    msg = _compressed(grey, '.png', 'mono8; png compressed mono8')
    np.testing.assert_array_equal(decode_image(msg), grey)  # (h, w), like cv_bridge
    np.testing.assert_array_equal(to_rgb8(msg), np.repeat(grey[..., None], 3, 2))
    deep = grey.astype(np.uint16) * 257
    decoded = decode_image(_compressed(deep, '.png', 'mono16; png compressed mono16'))
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, deep)
    bgra = np.dstack([_BGR, np.full(grey.shape, 9, np.uint8)])
    np.testing.assert_array_equal(decode_image(_compressed(bgra, '.png', 'png')), bgra)


# ------------------------------------------------------------------------------ errors

def _rgb8_msg(**overrides: Any) -> SimpleNamespace:
    msg = _message(np.zeros((2, 4, 3), np.uint8), 'rgb8')
    vars(msg).update(overrides)
    return msg


@pytest.mark.parametrize('overrides, match', [
    ({'encoding': 'yuv420'}, r"encoding 'yuv420' is not supported; supported: 16S, .*yuyv\. "
                             r'Convert the image on the camera driver side'),
    ({'encoding': b'rgb8'}, r"encoding b'rgb8' is not supported"),
    ({'encoding': '8UC5'}, r"encoding '8UC5' is not supported"),
    ({'step': 11}, r'step 11 is smaller than one row of .*expected step >= 12'),
    ({'step': -12}, r'step -12 is smaller than one row'),
    ({'data': bytes(23)}, r'data holds 23 bytes, fewer than height 2 \* step 12 = 24'),
    ({'data': b''}, r'data holds 0 bytes'),
    ({'width': 0}, r'height 2 and width 0 must both be positive'),
    ({'height': -1}, r'height -1 and width 4 must both be positive'),
    ({'height': 2.0}, r'height must be an integer, got 2.0'),
    ({'step': '12'}, r"step must be an integer, got '12'"),
    ({'data': None}, r"data of type 'NoneType' is not a byte buffer"),
    ({'data': 'abc'}, r"data of type 'str' is not a byte buffer"),
    ({'data': np.zeros(24, np.float32)}, r'numpy array of dtype float32; expected uint8'),
    ({'data': [256] * 24}, r'data must hold integers in 0\.\.255'),
    ({'data': [0.5] * 24}, r'data must hold integers in 0\.\.255'),
])
def test_image_errors(overrides: dict[str, Any], match: str) -> None:
    msg = _rgb8_msg(**overrides)
    for function in (decode_image, to_rgb8):
        with pytest.raises(ImageEncodingError, match=match):
            function(msg)


def test_step_not_multiple_of_sample_size() -> None:
    msg = _message(np.zeros((2, 3), np.uint16), 'mono16', pad=1)
    with pytest.raises(ImageEncodingError, match=r'step 7 is not a multiple of the 2-byte'):
        decode_image(msg)


@pytest.mark.parametrize('missing', ['height', 'width', 'step', 'data', 'is_bigendian'])
def test_missing_image_field(missing: str) -> None:
    fields = vars(_rgb8_msg())
    del fields[missing]
    with pytest.raises(ImageEncodingError, match=rf"has no field '{missing}'"):
        decode_image(SimpleNamespace(**fields))


def test_neither_kind_of_message() -> None:
    with pytest.raises(ImageEncodingError, match=r"neither an 'encoding' field .* nor a 'format'"):
        to_rgb8(SimpleNamespace(data=b'x'))
    with pytest.raises(TypeError, match='got None'):
        decode_image(None)


@pytest.mark.parametrize('msg, match', [
    (SimpleNamespace(format='jpeg', data=b''), r"data is empty \(format 'jpeg'\)"),
    (SimpleNamespace(format='png', data=b'not a png at all'),
     r"16 bytes, format 'png'\) could not be decoded"),
    (SimpleNamespace(format='16UC1; compressedDepth png', data=b'\x00' * 40),
     r'compressedDepth depth image'),
    (SimpleNamespace(format=None, data=b'\xff\xd8'), r'format must be a string, got None'),
    (SimpleNamespace(format='jpeg'), r"has no field 'data'"),
])
def test_compressed_errors(msg: SimpleNamespace, match: str) -> None:
    for function in (decode_image, to_rgb8):
        with pytest.raises(ImageEncodingError, match=match):
            function(msg)


def test_truncated_jpeg_is_an_encoding_error() -> None:
    data = _compressed(_BGR, '.jpg', 'jpeg').data
    for function in (decode_image, to_rgb8):
        for cut in (2, 10, len(data) // 3):
            try:
                function(SimpleNamespace(format='jpeg', data=data[:cut]))
            except ImageEncodingError:
                pass


# -------------------------------------------------------------------------- hypothesis

_SETTINGS = settings(max_examples=200, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


@st.composite
def valid_messages(draw: st.DrawFn) -> tuple[SimpleNamespace, str]:
    encoding = draw(st.sampled_from(sorted(SPECS)))
    dtype, channels = SPECS[encoding]
    itemsize = np.dtype(dtype).itemsize
    even_w = encoding in YUV or encoding.startswith('bayer')
    even_h = encoding.startswith('bayer')
    height = draw(st.integers(1, 8)) * 2 if even_h else draw(st.integers(1, 16))
    width = draw(st.integers(1, 8)) * 2 if even_w else draw(st.integers(1, 16))
    step = width * channels * itemsize + draw(st.integers(0, 4)) * itemsize
    size = height * step + draw(st.integers(0, 9))
    data = draw(st.binary(min_size=size, max_size=size))
    containers: list[Callable[[bytes], Any]] = [bytes, bytearray, list, _uint8_array]
    container = draw(st.sampled_from(containers))
    return SimpleNamespace(height=height, width=width, encoding=encoding,
                           is_bigendian=draw(st.sampled_from([0, 1, True, False])), step=step,
                           data=container(data)), encoding


@_SETTINGS
@given(valid_messages())
def test_valid_messages_never_fail(case: tuple[SimpleNamespace, str]) -> None:
    msg, encoding = case
    dtype, channels = SPECS[encoding]
    shape = (msg.height, msg.width) + ((channels,) if channels > 1 else ())
    result = decode_image(msg)
    assert result.shape == shape and result.dtype == np.dtype(dtype)
    if encoding in NON_RGB:
        with pytest.raises(ImageEncodingError):
            to_rgb8(msg)
    else:
        rgb = to_rgb8(msg)
        assert rgb.shape == (msg.height, msg.width, 3) and rgb.dtype == np.uint8


@st.composite
def corrupt_messages(draw: st.DrawFn) -> SimpleNamespace:
    msg, encoding = draw(valid_messages())
    dtype, channels = SPECS[encoding]
    itemsize = np.dtype(dtype).itemsize
    row = msg.width * channels * itemsize
    fault = draw(st.sampled_from(['truncate', 'short_step', 'odd_step', 'encoding', 'size']))
    if fault == 'truncate':
        msg.data = bytes(msg.data)[:max(0, msg.height * msg.step - draw(st.integers(1, 64)))]
    elif fault == 'short_step':
        msg.step = draw(st.integers(-100, row - 1))
    elif fault == 'odd_step' and itemsize > 1:
        msg.step = row + draw(st.integers(0, 3)) * itemsize + 1
    elif fault == 'size':
        setattr(msg, draw(st.sampled_from(['height', 'width'])), draw(st.integers(-5, 0)))
    else:
        msg.encoding = draw(st.text(max_size=12).filter(lambda s: s not in SPECS))
    return msg


@_SETTINGS
@given(corrupt_messages())
def test_corrupt_messages_raise_only_encoding_errors(msg: SimpleNamespace) -> None:
    for function in (decode_image, to_rgb8):
        with pytest.raises(ImageEncodingError):
            function(msg)


@_SETTINGS
@given(st.text(max_size=30), st.binary(max_size=200))
def test_random_compressed_data_raises_only_encoding_errors(fmt: str, data: bytes) -> None:
    for function in (decode_image, to_rgb8):
        try:
            result = function(SimpleNamespace(format=fmt, data=data))
        except ImageEncodingError:
            continue
        assert isinstance(result, np.ndarray)  # random bytes that happen to decode
