"""Build sensor_msgs/Image and CompressedImage fields from RGB frames (the inverse of to_rgb8).

Used by the bag maker, the benchmark and the tests to produce camera messages in any encoding a
driver might publish. The records satisfy the ``ImageMessage`` / ``CompressedImageMessage``
protocols, so the runtime decodes them exactly like rclpy or rosbags messages.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from vae_ood_monitor.core.errors import ConfigError

__all__ = ['ENCODABLE', 'CompressedFields', 'ImageFields', 'compress_rgb', 'encode_rgb']


@dataclass(frozen=True)
class ImageFields:
    """The fields of a sensor_msgs/Image (without the header)."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes


@dataclass(frozen=True)
class CompressedFields:
    """The fields of a sensor_msgs/CompressedImage (without the header)."""

    format: str  # noqa: A003 (the ROS message field name)
    data: bytes


_BAYER = {  # ROS pattern -> (row, col) offsets of R and B in each 2x2 cell
    'rggb': ((0, 0), (1, 1)), 'bggr': ((1, 1), (0, 0)),
    'gbrg': ((1, 0), (0, 1)), 'grbg': ((0, 1), (1, 0)),
}


def _bayer(rgb: NDArray[np.uint8], pattern: str) -> NDArray[np.uint8]:
    (ry, rx), (by, bx) = _BAYER[pattern]
    mosaic = rgb[:, :, 1].copy()
    mosaic[ry::2, rx::2] = rgb[ry::2, rx::2, 0]
    mosaic[by::2, bx::2] = rgb[by::2, bx::2, 2]
    return mosaic


def _yuv422(rgb: NDArray[np.uint8], uyvy: bool) -> NDArray[np.uint8]:
    # BT.601 limited range, the inverse of OpenCV's COLOR_YUV2RGB_UYVY / _YUY2.
    f = rgb.astype(np.float32)
    y = 16 + 0.257 * f[..., 0] + 0.504 * f[..., 1] + 0.098 * f[..., 2]
    u = 128 - 0.148 * f[..., 0] - 0.291 * f[..., 1] + 0.439 * f[..., 2]
    v = 128 + 0.439 * f[..., 0] - 0.368 * f[..., 1] - 0.071 * f[..., 2]
    u = (u[:, 0::2] + u[:, 1::2]) / 2
    v = (v[:, 0::2] + v[:, 1::2]) / 2
    out = np.empty((rgb.shape[0], rgb.shape[1], 2), np.float32)
    out[:, :, 1 if uyvy else 0] = y
    chroma = out[:, :, 0 if uyvy else 1]
    chroma[:, 0::2], chroma[:, 1::2] = u, v
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _pixels(rgb: NDArray[np.uint8], encoding: str) -> NDArray[np.generic]:
    if encoding == 'rgb8':
        return rgb
    if encoding == 'bgr8':
        return rgb[:, :, ::-1]
    if encoding in ('rgba8', 'bgra8'):
        alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
        base = rgb if encoding == 'rgba8' else rgb[:, :, ::-1]
        return np.concatenate([base, alpha], axis=2)
    if encoding == 'mono8':
        return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if encoding in ('rgb16', 'bgr16', 'mono16'):
        eight = _pixels(rgb, encoding.replace('16', '8'))
        return eight.astype(np.uint16) * 257
    if encoding.startswith('bayer_'):
        pattern, depth = encoding[6:10], encoding[10:]
        mosaic = _bayer(rgb, pattern)
        return mosaic if depth == '8' else mosaic.astype(np.uint16) * 257
    if encoding in ('yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv'):
        return _yuv422(rgb, uyvy=encoding in ('yuv422', 'uyvy'))
    raise ConfigError(f'Cannot encode to {encoding!r}; choose one of: {", ".join(ENCODABLE)}.')


ENCODABLE = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', 'rgb16', 'bgr16',
             *(f'bayer_{p}{d}' for p in _BAYER for d in ('8', '16')),
             'yuv422', 'yuv422_yuy2')


def encode_rgb(rgb: NDArray[np.uint8], encoding: str = 'rgb8', *, big_endian: bool = False,
               padding: int = 0) -> ImageFields:
    """Encode an (h, w, 3) RGB uint8 frame as sensor_msgs/Image fields.

    ``padding`` extra bytes end every row (``step`` > row size), as some drivers publish.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ConfigError(f'Expected an (h, w, 3) uint8 RGB frame, got {rgb.shape!r} '
                          f'{rgb.dtype}.')
    if padding < 0:
        raise ConfigError(f'padding {padding!r} must be >= 0.')
    pixels = _pixels(rgb, encoding)
    if pixels.dtype.itemsize > 1:
        pixels = pixels.astype(pixels.dtype.newbyteorder('>' if big_endian else '<'))
    height = rgb.shape[0]
    rows = np.ascontiguousarray(pixels).reshape(height, -1).view(np.uint8)
    if padding:
        rows = np.concatenate([rows, np.zeros((height, padding), np.uint8)], axis=1)
    return ImageFields(height, rgb.shape[1], encoding, int(big_endian), rows.shape[1],
                       rows.tobytes())


def compress_rgb(rgb: NDArray[np.uint8], fmt: str = 'jpeg', quality: int = 90) -> CompressedFields:
    """Encode an RGB frame as sensor_msgs/CompressedImage fields (JPEG or PNG)."""
    if fmt not in ('jpeg', 'png'):
        raise ConfigError(f"Compressed format {fmt!r} must be 'jpeg' or 'png'.")
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == 'jpeg' else []
    ok, data = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png',
                            np.ascontiguousarray(rgb[:, :, ::-1]), params)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise ConfigError(f'OpenCV could not encode the frame as {fmt}.')
    return CompressedFields(f'rgb8; {fmt} compressed bgr8', data.tobytes())
