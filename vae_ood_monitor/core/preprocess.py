"""Frame preprocessing exactly as a bundle's manifest prescribes.

Training, calibration, evaluation, bag replay and the ROS node all call :func:`resize_image` and
:class:`Preprocessor`, so a model sees identical pixels everywhere. The hot path writes into one
preallocated float32 buffer, with one strided division of all planes when they share their
scaling (else per-plane scalar operations: numpy broadcasting over a length-3 last axis is
~30x slower), and reorders colour planes for free while doing so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast, TYPE_CHECKING

import cv2
import numpy as np

from vae_ood_monitor.core.errors import ConfigError, ImageEncodingError
from vae_ood_monitor.core.typedefs import ChannelOrder, Interpolation

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

__all__ = ['InputSpec', 'Preprocessor', 'resize_image']

_CV_INTERPOLATION = {
    Interpolation.LINEAR: cv2.INTER_LINEAR,
    Interpolation.NEAREST: cv2.INTER_NEAREST,
    Interpolation.CUBIC: cv2.INTER_CUBIC,
    Interpolation.AREA: cv2.INTER_AREA,
}


@dataclass(frozen=True)
class InputSpec:
    """What the encoder expects: size, colour order, resize interpolation and scaling.

    A pixel value v in [0, 255] of plane c becomes ``(v / 255 - mean[c]) / std[c]``.
    """

    height: int
    width: int
    channel_order: ChannelOrder = ChannelOrder.RGB
    interpolation: Interpolation = Interpolation.AREA
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        if not (isinstance(self.height, int) and isinstance(self.width, int)) or min(
                self.height, self.width) < 1:
            raise ConfigError(
                f'Input size {self.height!r}x{self.width!r} is invalid; height and width must be '
                'positive integers.')
        object.__setattr__(self, 'channel_order', _enum(ChannelOrder, self.channel_order,
                                                        'channel_order'))
        object.__setattr__(self, 'interpolation', _enum(Interpolation, self.interpolation,
                                                        'interpolation'))
        for name in ('mean', 'std'):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != 3 or not all(np.isfinite(values)):
                raise ConfigError(f'Input {name} {values!r} must be three finite numbers.')
            object.__setattr__(self, name, values)
        if min(self.std) <= 0:
            raise ConfigError(f'Input std {self.std!r} must be positive.')

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The model's input tensor shape for one frame: (1, 3, height, width)."""
        return (1, 3, self.height, self.width)

    def to_dict(self) -> dict[str, object]:
        """Return the manifest representation."""
        return {'height': self.height, 'width': self.width,
                'channel_order': self.channel_order.value,
                'interpolation': self.interpolation.value,
                'mean': list(self.mean), 'std': list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> InputSpec:
        """Build from the manifest representation."""
        return cls(height=data['height'], width=data['width'],  # type: ignore[arg-type]
                   channel_order=data.get('channel_order', 'rgb'),  # type: ignore[arg-type]
                   interpolation=data.get('interpolation', 'area'),  # type: ignore[arg-type]
                   mean=tuple(data.get('mean', (0.0, 0.0, 0.0))),  # type: ignore[arg-type]
                   std=tuple(data.get('std', (1.0, 1.0, 1.0))))  # type: ignore[arg-type]


def _enum(cls: type, value: object, name: str):  # type: ignore[no-untyped-def]
    try:
        return cls(value)
    except ValueError:
        choices = ', '.join(m.value for m in cls)  # type: ignore[attr-defined]
        raise ConfigError(
            f'{name} {value!r} is not supported; choose one of: {choices}.') from None


#: Smallest frame (pixels) whose area resize pads 3 planes to 4 first (measured break-even
#: is well below a 320x240 frame)
_PAD_PIXELS = 320 * 240


def resize_image(image: NDArray[np.uint8], width: int, height: int,
                 interpolation: Interpolation | str = Interpolation.AREA) -> NDArray[np.uint8]:
    """Resize an (h, w, c) uint8 image to (height, width, c).

    ``area`` is box-filter averaging: repeated exact 2x halvings (bilinear sampling at the centre
    of each 2x2 block, 3x faster than OpenCV's INTER_AREA on a 640x480 frame) followed by
    INTER_AREA for the remaining non-power-of-two factor. Other modes map to OpenCV directly.
    """
    out = _resize(image, width, height, Interpolation(interpolation))
    if out.shape[2] != image.shape[2]:  # 3 planes were padded to 4 for speed
        return _u8(cv2.cvtColor(out, cv2.COLOR_RGBA2RGB))
    return out


def _resize(image: NDArray[np.uint8], width: int, height: int,
            interpolation: Interpolation) -> NDArray[np.uint8]:
    """:func:`resize_image`, except that an area resize of 3 planes may return 4.

    A large 3-plane frame is first padded to 4 planes: OpenCV halves 4-plane images with SIMD
    and 3-plane ones without, so the padding copy pays for itself (a 640x480 frame halves in
    ~60 % of the time, and the copy brings a frame that is not in the cache into it). The
    first three planes are bit-identical to halving the 3-plane image.
    """
    if image.shape[0] == height and image.shape[1] == width:
        return image
    if interpolation is Interpolation.AREA:
        if (image.shape[2] == 3 and image.shape[0] >= 2 * height and image.shape[1] >= 2 * width
                and image.shape[0] * image.shape[1] >= _PAD_PIXELS):
            image = _u8(cv2.cvtColor(image, cv2.COLOR_RGB2RGBA))  # order kept: BGR stays BGR
        while image.shape[0] >= 2 * height and image.shape[1] >= 2 * width:
            image = _u8(cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2),
                                   interpolation=cv2.INTER_LINEAR))
        if image.shape[0] == height and image.shape[1] == width:
            return image
    return _u8(cv2.resize(image, (width, height),
                          interpolation=_CV_INTERPOLATION[interpolation]))


def _u8(image: object) -> NDArray[np.uint8]:
    """Type an OpenCV result that is uint8 because its input was (OpenCV keeps the depth)."""
    return cast('NDArray[np.uint8]', image)


class Preprocessor:
    """Turn one colour frame into the model's (1, 3, H, W) float32 input, in place.

    The returned array is a buffer owned by this object and overwritten by the next call: copy it
    if you need to keep it.
    """

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        self.buffer = np.empty(spec.shape, dtype=np.float32)
        # Divide (not multiply by the reciprocal): v / 255 in float32 is then bit-identical to
        # training's ``tensor.float().div_(255)``; the reciprocal is off by 1 ulp for half of v.
        self._divisor = [np.float32(255.0 * s) for s in spec.std]
        self._offset = [np.float32(-m / s) for m, s in zip(spec.mean, spec.std)]
        self._identity = all(o == 0 for o in self._offset)
        self._uniform = self._identity and len(set(self._divisor)) == 1

    def resize(self, image: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """Resize an (h, w, 3|4) uint8 image to the model's size with the manifest's filter.

        The result may have a fourth plane (padding) after the first three.
        """
        return _resize(image, self.spec.width, self.spec.height, self.spec.interpolation)

    def __call__(self, image: NDArray[np.uint8],
                 order: ChannelOrder | str = ChannelOrder.RGB) -> NDArray[np.float32]:
        """Preprocess an (h, w, 3|4) uint8 image whose first three planes are in ``order``.

        A fourth (alpha) plane is ignored. Returns the internal (1, 3, H, W) buffer.
        """
        if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
            raise ImageEncodingError(
                f'Expected an (h, w, 3) or (h, w, 4) uint8 colour image, got shape '
                f'{image.shape!r} dtype {image.dtype}; convert it with to_rgb8() first.')
        small = self.resize(image)
        sources = _plane_order(ChannelOrder(order), self.spec.channel_order)
        out = self.buffer[0]
        if self._uniform:
            # one strided division for all planes (the common case: no per-plane mean/std)
            planes = small.transpose(2, 0, 1)
            view = planes[:3] if sources[0] == 0 else planes[2::-1]
            np.divide(view, self._divisor[0], out=out, casting='unsafe')
            return self.buffer
        # cv2.split gives contiguous planes: dividing those beats dividing strided views
        split = cv2.split(small)
        for dst, src in enumerate(sources):
            np.divide(split[src], self._divisor[dst], out=out[dst], casting='unsafe')
            if not self._identity:
                out[dst] += self._offset[dst]
        return self.buffer

    def batch(self, images: Sequence[NDArray[np.uint8]] | NDArray[np.uint8],
              order: ChannelOrder | str = ChannelOrder.RGB) -> NDArray[np.float32]:
        """Preprocess several frames into a new (N, 3, H, W) float32 array."""
        result = np.empty((len(images), 3, self.spec.height, self.spec.width), np.float32)
        for i, image in enumerate(images):
            result[i] = self(image, order)[0]
        return result


def _plane_order(src: ChannelOrder, dst: ChannelOrder) -> tuple[int, int, int]:
    return (0, 1, 2) if src is dst else (2, 1, 0)
