"""Encoding RGB frames into camera messages must round-trip through the runtime's decoder."""

from __future__ import annotations

import numpy as np
import pytest

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.image import decode_image, to_rgb8
from vae_ood_monitor.data.messages import compress_rgb, ENCODABLE, encode_rgb


def _smooth_rgb(height: int = 24, width: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([40 + 5 * x, 60 + 4 * y, 200 - 3 * x], axis=2).astype(np.uint8)


# exact for colour orders and 16-bit scaling; small errors from luma, demosaicing and chroma
# subsampling for mono, Bayer and YUV 4:2:2.
TOLERANCE = {'mono8': None, 'mono16': None, 'yuv422': 6, 'yuv422_yuy2': 6}


@pytest.mark.parametrize('encoding', ENCODABLE)
@pytest.mark.parametrize('big_endian', [False, True])
@pytest.mark.parametrize('padding', [0, 8])
def test_round_trip(encoding: str, big_endian: bool, padding: int) -> None:
    rgb = _smooth_rgb()
    msg = encode_rgb(rgb, encoding, big_endian=big_endian, padding=padding)
    assert msg.step * msg.height == len(msg.data)
    decode_image(msg)  # decodes without error
    back = to_rgb8(msg).astype(int)
    if encoding.startswith('mono'):
        grey = np.round(rgb @ np.array([0.299, 0.587, 0.114])).astype(int)
        assert np.abs(back - grey[..., None]).max() <= 1
    elif encoding.startswith('bayer'):
        assert np.abs(back[2:-2, 2:-2] - rgb[2:-2, 2:-2]).max() <= 8
    else:
        assert np.abs(back - rgb).max() <= TOLERANCE.get(encoding, 0)


@pytest.mark.parametrize('fmt,tolerance', [('png', 0), ('jpeg', 12)])
def test_compressed_round_trip(fmt: str, tolerance: int) -> None:
    rgb = _smooth_rgb()
    msg = compress_rgb(rgb, fmt)
    assert fmt in msg.format
    assert np.abs(to_rgb8(msg).astype(int) - rgb).max() <= tolerance


def test_errors() -> None:
    with pytest.raises(ConfigError, match="Cannot encode to 'yuv420'"):
        encode_rgb(_smooth_rgb(), 'yuv420')
    with pytest.raises(ConfigError, match=r'\(h, w, 3\) uint8'):
        encode_rgb(np.zeros((4, 4), np.uint8))
    with pytest.raises(ConfigError, match='jpeg'):
        compress_rgb(_smooth_rgb(), 'gif')
