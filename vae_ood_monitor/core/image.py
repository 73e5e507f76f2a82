"""Decode sensor_msgs/Image and sensor_msgs/CompressedImage messages into NumPy arrays.

`decode_image` returns what ROS 2 cv_bridge's ``imgmsg_to_cv2(msg, 'passthrough')`` and
``compressed_imgmsg_to_cv2(msg, 'passthrough')`` return (cv_bridge/python/cv_bridge/core.py and
getCvType in cv_bridge/src/cv_bridge.cpp of ros-perception/vision_opencv, rolling), with fixes:
it works with NumPy 2, multi-byte data of the other byte order comes back byte-swapped in native
order, and an unswapped image is a zero-copy view into the message buffer (rows padded by
``step`` are skipped through strides, so the view may be non-contiguous and, for ``bytes`` data,
read-only). `to_rgb8` turns any colour, mono, Bayer or YUV image into the model's (h, w, 3)
uint8 RGB colour space the way cv_bridge's ``cvtColor2(..., 'rgb8')`` does.

Only numpy and OpenCV are used: this module runs per camera frame on the robot.
"""

from __future__ import annotations

import array
from dataclasses import dataclass
import operator
import sys
from typing import Any, Final

import cv2
import numpy as np
from numpy.typing import NDArray

from vae_ood_monitor.core.errors import ImageEncodingError

__all__ = ['SUPPORTED_ENCODINGS', 'decode_image', 'is_supported_encoding', 'to_rgb8']

_SAME: Final = -1  # conversion code: the decoded pixels are already RGB
_U8: Final = np.dtype(np.uint8)
_U16: Final = np.dtype(np.uint16)
_HOST_BIG_ENDIAN: Final = sys.byteorder == 'big'
# 16 -> 8 bit exactly as cv_bridge: convertTo(..., 255. / 65535.), i.e. round(v / 257).
_SCALE_16_TO_8: Final = 255.0 / 65535.0
_IMAGE_FIELDS: Final = 'height, width, encoding, is_bigendian, step and data'


@dataclass(frozen=True, slots=True)
class _Encoding:
    """How one `encoding` string is laid out and how it becomes RGB."""

    dtype: np.dtype[Any]  # native byte order
    channels: int
    to_rgb: int | None  # cv2.COLOR_* code, _SAME, or None when it has no colour meaning
    even_width: bool = False  # YUV 4:2:2 macro-pixels span two columns


def _build_table() -> dict[str, _Encoding]:
    table = {
        'rgb8': _Encoding(_U8, 3, _SAME),
        'bgr8': _Encoding(_U8, 3, cv2.COLOR_BGR2RGB),
        'rgba8': _Encoding(_U8, 4, cv2.COLOR_RGBA2RGB),
        'bgra8': _Encoding(_U8, 4, cv2.COLOR_BGRA2RGB),
        'mono8': _Encoding(_U8, 1, cv2.COLOR_GRAY2RGB),
        'rgb16': _Encoding(_U16, 3, _SAME),
        'bgr16': _Encoding(_U16, 3, cv2.COLOR_BGR2RGB),
        'rgba16': _Encoding(_U16, 4, cv2.COLOR_RGBA2RGB),
        'bgra16': _Encoding(_U16, 4, cv2.COLOR_BGRA2RGB),
        'mono16': _Encoding(_U16, 1, cv2.COLOR_GRAY2RGB),
        # UYVY; 'uyvy' and 'yuyv' are the newer sensor_msgs names of the deprecated yuv422*.
        'yuv422': _Encoding(_U8, 2, cv2.COLOR_YUV2RGB_UYVY, even_width=True),
        'uyvy': _Encoding(_U8, 2, cv2.COLOR_YUV2RGB_UYVY, even_width=True),
        'yuv422_yuy2': _Encoding(_U8, 2, cv2.COLOR_YUV2RGB_YUY2, even_width=True),
        'yuyv': _Encoding(_U8, 2, cv2.COLOR_YUV2RGB_YUY2, even_width=True),
    }
    # OpenCV names a Bayer pattern by the second row's first two pixels: ROS rggb is BayerBG.
    bayer = {'rggb': cv2.COLOR_BayerBG2RGB, 'bggr': cv2.COLOR_BayerRG2RGB,
             'gbrg': cv2.COLOR_BayerGR2RGB, 'grbg': cv2.COLOR_BayerGB2RGB}
    for pattern, code in bayer.items():
        table[f'bayer_{pattern}8'] = _Encoding(_U8, 1, code)
        table[f'bayer_{pattern}16'] = _Encoding(_U16, 1, code)
    # Generic OpenCV types. cv_bridge gives them no colour meaning; we read unsigned 1, 3 and 4
    # channels as OpenCV does (mono, BGR, BGRA) and refuse the rest in to_rgb8.
    generic_rgb = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}
    depths = {'8U': np.uint8, '8S': np.int8, '16U': np.uint16, '16S': np.int16,
              '32S': np.int32, '32F': np.float32, '64F': np.float64}
    for depth, scalar in depths.items():
        for channels in (1, 2, 3, 4):
            rgb_code = generic_rgb.get(channels) if depth in ('8U', '16U') else None
            table[f'{depth}C{channels}'] = _Encoding(np.dtype(scalar), channels, rgb_code)
        table[depth] = table[f'{depth}C1']  # getCvType accepts the bare depth as one channel
    return table


_ENCODINGS: Final = _build_table()
SUPPORTED_ENCODINGS: Final[tuple[str, ...]] = tuple(sorted(_ENCODINGS))


def is_supported_encoding(name: str) -> bool:
    """Return whether `decode_image` accepts the sensor_msgs/Image encoding `name`."""
    return name in _ENCODINGS


def decode_image(msg: Any) -> NDArray[Any]:
    """Return the pixels of an Image or CompressedImage message as cv_bridge 'passthrough' does.

    Image: native dtype, shape (h, w) for one channel, (h, w, c) otherwise; a view into
    ``msg.data`` (possibly non-contiguous, read-only for ``bytes``) unless the byte order had to
    be swapped. CompressedImage: ``cv2.imdecode(data, IMREAD_UNCHANGED)``, a new array (BGR or
    BGRA channel order, uint16 for 16-bit PNG).

    Raises:
        ImageEncodingError: unknown encoding, inconsistent geometry, short or corrupt data.
        TypeError: `msg` is None.
    """
    if _is_raw_image(msg):
        return _decode_raw(msg)[0]
    return _decode_compressed(msg, cv2.IMREAD_UNCHANGED)


def to_rgb8(msg: Any) -> NDArray[np.uint8]:
    """Return an Image or CompressedImage message as an RGB uint8 array of shape (h, w, 3).

    For 'rgb8' the result is the (possibly read-only, non-C-contiguous) view `decode_image`
    returns; otherwise a new C-contiguous array. Alpha is dropped, mono is replicated, Bayer is
    demosaiced (bilinear, at the source depth) and 16-bit data is then scaled like cv_bridge,
    ``round(v * 255 / 65535)``. Generic 8UC1/8UC3/8UC4 (and 16U) are read as mono/BGR/BGRA.

    Raises:
        ImageEncodingError: as `decode_image`, and for encodings without colour meaning
            (2-channel generic, signed, 32-bit and floating-point types such as depth images)
            or YUV 4:2:2 with an odd width.
        TypeError: `msg` is None.
    """
    if not _is_raw_image(msg):
        bgr = _decode_compressed(msg, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        rgb: NDArray[np.uint8] = _cv(cv2.cvtColor, bgr, cv2.COLOR_BGR2RGB)
        return rgb
    image: NDArray[Any]
    image, encoding, name = _decode_raw(msg)
    if encoding.to_rgb is None:
        raise ImageEncodingError(
            f'encoding {name!r} ({encoding.channels} channel(s) of {encoding.dtype}) has no '
            'colour meaning, so it cannot become an RGB camera image (floating-point and '
            'signed encodings are usually depth or disparity images); point the monitor at a '
            'colour, mono, Bayer or YUV camera topic.')
    if encoding.even_width and image.shape[1] % 2:
        raise ImageEncodingError(
            f'width {image.shape[1]!r} is odd, but {name!r} packs two pixels per 4-byte '
            'macro-pixel; expected an even width. Fix the camera driver settings.')
    if encoding.to_rgb != _SAME:
        image = _cv(cv2.cvtColor, image, encoding.to_rgb)
    if image.dtype == _U16:
        image = _cv(cv2.convertScaleAbs, image, alpha=_SCALE_16_TO_8)
    return image


def _is_raw_image(msg: Any) -> bool:
    """Tell sensor_msgs/Image (True) from CompressedImage (False) by their fields."""
    if msg is None:
        raise TypeError('msg must be a sensor_msgs/Image or CompressedImage, got None')
    if hasattr(msg, 'encoding'):
        return True
    if hasattr(msg, 'format'):
        return False
    raise ImageEncodingError(
        f"message of type {type(msg).__name__!r} has neither an 'encoding' field "
        "(sensor_msgs/Image) nor a 'format' field (sensor_msgs/CompressedImage); "
        'expected one of those two message types.')


def _field(msg: Any, name: str) -> Any:
    try:
        return getattr(msg, name)
    except AttributeError:
        raise ImageEncodingError(
            f'message of type {type(msg).__name__!r} has no field {name!r}; a '
            f'sensor_msgs/Image needs {_IMAGE_FIELDS}.') from None


def _int_field(msg: Any, name: str) -> int:
    value = _field(msg, name)
    try:
        return operator.index(value)
    except TypeError:
        raise ImageEncodingError(f'{name} must be an integer, got {value!r}.') from None


def _decode_raw(msg: Any) -> tuple[NDArray[Any], _Encoding, str]:
    name = _field(msg, 'encoding')
    encoding = _ENCODINGS.get(name) if isinstance(name, str) else None
    if encoding is None:
        raise ImageEncodingError(
            f'encoding {name!r} is not supported; supported: {", ".join(SUPPORTED_ENCODINGS)}. '
            'Convert the image on the camera driver side or with an image_proc node.')
    height, width = _int_field(msg, 'height'), _int_field(msg, 'width')
    if height <= 0 or width <= 0:
        raise ImageEncodingError(
            f'height {height!r} and width {width!r} must both be positive; the message holds '
            'no image.')
    step = _int_field(msg, 'step')
    itemsize, channels = encoding.dtype.itemsize, encoding.channels
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ImageEncodingError(
            f'step {step!r} is smaller than one row of {name!r}: width {width} * {channels} '
            f'channel(s) * {itemsize} byte(s) = {row_bytes}; expected step >= {row_bytes}.')
    if step % itemsize:
        raise ImageEncodingError(
            f'step {step!r} is not a multiple of the {itemsize}-byte sample size of {name!r}.')
    flat = _byte_buffer(_field(msg, 'data'))
    if flat.size < height * step:
        raise ImageEncodingError(
            f'data holds {flat.size} bytes, fewer than height {height} * step {step} = '
            f'{height * step}; the message is truncated.')
    big_endian = bool(_field(msg, 'is_bigendian'))
    swap = itemsize > 1 and big_endian != _HOST_BIG_ENDIAN
    dtype = encoding.dtype.newbyteorder('S') if swap else encoding.dtype
    shape: tuple[int, ...] = (height, width)
    strides: tuple[int, ...] = (step, itemsize)
    if channels > 1:
        shape, strides = (height, width, channels), (step, channels * itemsize, itemsize)
    image = np.ndarray(shape, dtype=dtype, buffer=flat, strides=strides)
    if swap:
        image = image.astype(encoding.dtype)  # one pass: swapped, native, C-contiguous copy
    return image, encoding, name


def _byte_buffer(data: Any) -> NDArray[np.uint8]:
    """Return `data` (bytes-like, uint8 array, list or array.array of ints) as flat uint8."""
    if isinstance(data, np.ndarray):
        if data.dtype.itemsize != 1 or data.dtype.kind not in 'biu':
            raise ImageEncodingError(
                f'data is a numpy array of dtype {data.dtype!s}; expected uint8 bytes.')
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)) or (
            isinstance(data, array.array) and data.itemsize != 1):
        try:
            data = bytes(data)  # one C-level pass, range-checked, faster than np.array(list)
        except (TypeError, ValueError) as exc:
            raise ImageEncodingError(
                f'data must hold integers in 0..255 ({exc}); got a {type(data).__name__} of '
                f'{len(data)} items.') from None
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        raise ImageEncodingError(
            f'data of type {type(data).__name__!r} is not a byte buffer; expected bytes, '
            'bytearray, memoryview, a uint8 numpy array or a list of ints.') from None


def _decode_compressed(msg: Any, flags: int) -> NDArray[Any]:
    fmt = _field(msg, 'format')
    if not isinstance(fmt, str):
        raise ImageEncodingError(f'format must be a string, got {fmt!r}.')
    if 'compresseddepth' in fmt.lower():
        raise ImageEncodingError(
            f'format {fmt!r} is a compressedDepth depth image, not a camera colour image; '
            'subscribe to a colour image topic (raw or jpeg/png compressed).')
    flat = _byte_buffer(_field(msg, 'data'))
    if flat.size == 0:
        raise ImageEncodingError(f'CompressedImage data is empty (format {fmt!r}).')
    image: NDArray[Any] | None = _cv(cv2.imdecode, flat, flags)
    if image is None:
        raise ImageEncodingError(
            f'CompressedImage data ({flat.size} bytes, format {fmt!r}) could not be decoded '
            'by OpenCV; expected a complete JPEG or PNG stream.')
    return image


def _cv(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call an OpenCV function, turning its errors on bad pixels into ImageEncodingError."""
    try:
        return function(*args, **kwargs)
    except cv2.error as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
        raise ImageEncodingError(
            f'OpenCV {function.__name__} failed on this image: {message}') from None
