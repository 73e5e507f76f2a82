"""Image-space OOD shifts with a severity, for any RGB uint8 frame (synthetic or real).

Modelled on the augmentations of Bansal et al. (2024): training sees light rain and
brightness within +-50 %, testing sees heavier rain and brightness beyond that. Every kind
takes a severity ``s`` in [0, 1] (``s == 0`` returns an unchanged copy) and has a TRAIN and a
TEST range in :data:`SEVERITY_RANGES`, with a gap between them (test strictly beyond train).
What a severity means, per kind (pixel sizes are for a 120-pixel short side and scale with
the image):

- ``rain``: about 420 s slanted streaks per 160x120 frame (4-12 px long, grown by
  0.7 + 0.6 s), streak opacity 0.2 + 0.45 s, 6-14 s drops on the lens (radius 2-6 px,
  refracting a blurred, brighter view), contrast loss 0.3 s.
- ``brightness``: HSV value scaled by 1.5 ** (s / 0.4) (brighter) or 2 ** (-s / 0.4)
  (darker): train (s <= 0.4) is +-50 % (factors 0.5 .. 1.5), test (s >= 0.6) is darker than
  0.354 or brighter than 1.84. The direction is drawn from the generator unless
  ``direction`` is +1 (brighter) or -1 (darker).
- ``fog``: blend toward a light grey by s * (0.35 .. 0.95) from the bottom to the top row
  (more fog higher up, toward the horizon), after a contrast loss of 0.45 s and a blur of
  1.5 s px.
- ``snow``: about 0.016 s flakes per pixel (far small sharp ones and near blurred ones,
  radius grown by 0.7 + 0.6 s), brightening by 12 % s + 14 s levels, blur 0.7 s px.
- ``motion_blur``: a linear kernel 1 + 0.13 s * max(h, w) px long (21 px at s = 1, 160 px
  wide) at a random angle.
- ``noise``: Gaussian read noise (std 30 s levels) plus shot noise (std 1.6 s sqrt(level))
  plus salt-and-pepper on a fraction 0.04 s of the pixels.
- ``occlusion``: 1-3 irregular dark blobs of lens dirt or blurry smears covering a fraction
  0.4 s of the image.
- ``objects``: ceil(3 s) novel objects (animals, boxes, balls, signs) on the road, whose
  height is (0.15 + 0.55 s) x the image height x 1 / distance.
"""

from __future__ import annotations

from enum import Enum
import math
from types import MappingProxyType
from typing import Iterable, Mapping

import numpy as np
from numpy.typing import NDArray

from vae_ood_monitor.core.errors import ConfigError, DataError
from vae_ood_monitor.data.shifts_objects import render_objects
from vae_ood_monitor.data.shifts_render import brightness_direction, brightness_factor, RENDERERS

__all__ = [
    'SEVERITY_RANGES',
    'ShiftKind',
    'ShiftProcess',
    'SPLITS',
    'apply_shift',
    'augment_in_range',
    'augment_with_levels',
    'brightness_factor',
    'sample_severity',
    'shift_frames',
]


class ShiftKind(str, Enum):
    """Kinds of image-space distribution shift."""

    RAIN = 'rain'
    BRIGHTNESS = 'brightness'
    FOG = 'fog'
    SNOW = 'snow'
    MOTION_BLUR = 'motion_blur'
    NOISE = 'noise'
    OCCLUSION = 'occlusion'
    OBJECTS = 'objects'


SPLITS = ('train', 'test')

_RANGES = {
    ShiftKind.RAIN: ((0.0, 0.3), (0.6, 1.0)),
    ShiftKind.BRIGHTNESS: ((0.0, 0.4), (0.6, 1.0)),
    ShiftKind.FOG: ((0.0, 0.3), (0.6, 1.0)),
    ShiftKind.SNOW: ((0.0, 0.25), (0.6, 1.0)),
    ShiftKind.MOTION_BLUR: ((0.0, 0.25), (0.6, 1.0)),
    ShiftKind.NOISE: ((0.0, 0.2), (0.5, 1.0)),
    ShiftKind.OCCLUSION: ((0.0, 0.15), (0.5, 1.0)),
    ShiftKind.OBJECTS: ((0.0, 0.2), (0.5, 1.0)),
}
SEVERITY_RANGES: Mapping[ShiftKind, Mapping[str, tuple[float, float]]] = MappingProxyType({
    kind: MappingProxyType({'train': train, 'test': test})
    for kind, (train, test) in _RANGES.items()
})  # per kind: 'train' (in-distribution augmentation) and 'test' (OOD) severity ranges

_CODES = {kind: i + 1 for i, kind in enumerate(ShiftKind)}
_RENDER = {**{ShiftKind(k): f for k, f in RENDERERS.items()}, ShiftKind.OBJECTS: render_objects}


def _kind(kind: object) -> ShiftKind:
    try:
        return ShiftKind(kind)
    except ValueError:
        raise ConfigError(f'unknown shift kind {kind!r}; valid kinds: '
                          f'{[k.value for k in ShiftKind]}') from None


def _severity(severity: object) -> float:
    if (not isinstance(severity, (int, float, np.integer, np.floating))
            or isinstance(severity, bool) or not 0.0 <= float(severity) <= 1.0):
        raise ConfigError(f'severity must be a number in [0, 1], got {severity!r}')
    return float(severity)


def _direction(direction: object) -> int | None:
    if direction is not None and (isinstance(direction, bool) or direction not in (-1, 1)):
        raise ConfigError(f'direction must be None, +1 (brighter) or -1 (darker), '
                          f'got {direction!r}')
    return None if direction is None else int(direction)


def _image(image: object) -> NDArray[np.uint8]:
    if (not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3
            or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1):
        desc = (f'{image.dtype} array of shape {image.shape}' if isinstance(image, np.ndarray)
                else type(image).__name__)
        raise DataError(f'image must be an RGB uint8 array of shape (h, w, 3), got {desc}')
    return image


def _rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f'rng must be a numpy.random.Generator, got {type(rng).__name__}')
    return rng


def _render(image: NDArray[np.uint8], kind: ShiftKind, s: float, key: tuple[int, ...],
            index: int, direction: int | None) -> NDArray[np.uint8]:
    if s == 0.0:
        return image.copy()
    return _RENDER[kind](np.ascontiguousarray(image), s, key, index, direction)


def apply_shift(image: NDArray[np.uint8], kind: ShiftKind | str, severity: float,
                rng: np.random.Generator, *, direction: int | None = None
                ) -> NDArray[np.uint8]:
    """Return a shifted copy of an RGB uint8 (h, w, 3) ``image``; the input is untouched.

    Args:
        image: RGB uint8 frame of any size.
        kind: a :class:`ShiftKind` or its value.
        severity: magnitude in [0, 1] (see the module docstring for its meaning per kind).
        rng: source of all randomness (positions, angles, brightness direction).
        direction: brightness only: +1 brighter, -1 darker, None to draw it from ``rng``.

    Raises:
        ConfigError: unknown kind, severity outside [0, 1], bad direction or rng.
        DataError: ``image`` is not an RGB uint8 (h, w, 3) array.
    """
    k, s, d = _kind(kind), _severity(severity), _direction(direction)
    return _apply(_image(image), k, s, _rng(rng), d)[0]


def _apply(image: NDArray[np.uint8], kind: ShiftKind, s: float, gen: np.random.Generator,
           direction: int | None) -> tuple[NDArray[np.uint8], float]:
    """Shift one checked image; return it and the signed level (see augment_with_levels)."""
    key = (int(gen.integers(2 ** 62)), _CODES[kind])
    if kind is ShiftKind.BRIGHTNESS and direction is None:
        direction = brightness_direction(key)  # the one the renderer would draw itself
    return _render(image, kind, s, key, 0, direction), s * (direction or 1)


def sample_severity(kind: ShiftKind | str, split: str, rng: np.random.Generator) -> float:
    """Draw a severity uniformly from the ``split`` range of ``kind``.

    ``split``: 'train', 'test', or 'full' (all of [0, 1]: for distillation inputs, where the
    student must follow the teacher on heavy corruptions too).
    """
    k = _kind(kind)
    if split not in SPLITS + ('full',):
        raise ConfigError(f'split must be one of {list(SPLITS) + ["full"]}, got {split!r}')
    lo, hi = (0.0, 1.0) if split == 'full' else SEVERITY_RANGES[k][split]
    return float(min(hi, _rng(rng).uniform(lo, hi)))


class ShiftProcess:
    """A shift that is temporally coherent over the frames of a sequence.

    Lens dirt and raindrops on the lens stay put, wind, blur direction and brightness
    direction stay fixed, snow flakes fall and drift smoothly, novel objects approach the
    camera, while rain streaks and sensor noise change every frame. The output depends only
    on (kind, severity, seed, direction, index) and the input frame.
    """

    def __init__(self, kind: ShiftKind | str, severity: float, seed: int,
                 direction: int | None = None) -> None:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f'seed must be a non-negative int, got {seed!r}')
        self.kind, self.severity = _kind(kind), _severity(severity)
        self.direction, self.seed = _direction(direction), int(seed)

    def __call__(self, image: NDArray[np.uint8], index: int) -> NDArray[np.uint8]:
        """Shift frame number ``index`` (>= 0) of the sequence; returns a new array."""
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
            raise ConfigError(f'index must be a non-negative int, got {index!r}')
        return _render(_image(image), self.kind, self.severity,
                       (self.seed, _CODES[self.kind]), int(index), self.direction)


def shift_frames(images: NDArray[np.uint8] | Iterable[NDArray[np.uint8]],
                 kind: ShiftKind | str, split: str = 'test', seed: int = 0
                 ) -> NDArray[np.uint8]:
    """Apply ``kind`` to every frame at a severity drawn per frame from the ``split`` range.

    Deterministic per (kind, split, seed): evaluation and calibration use different seeds so
    that they never see the same shifted frames.
    """
    k = _kind(kind)
    if split not in SPLITS:
        raise ConfigError(f'split must be one of {list(SPLITS)}, got {split!r}')
    rng = np.random.default_rng([int(seed), _CODES[k], SPLITS.index(split)])
    return np.stack([apply_shift(img, k, sample_severity(k, split, rng), rng) for img in images])


def augment_in_range(image: NDArray[np.uint8], rng: np.random.Generator,
                     kinds: Iterable[ShiftKind | str] = ('rain', 'brightness'),
                     p: float = 0.5, split: str = 'train') -> NDArray[np.uint8]:
    """Training-time augmentation: apply each kind with probability ``p`` at a train severity.

    ``split='full'`` draws severities from all of [0, 1] instead (distillation inputs).
    Always returns a new array (a copy when nothing was applied).
    """
    return augment_with_levels(image, rng, kinds, p, split)[0]


def augment_with_levels(image: NDArray[np.uint8], rng: np.random.Generator,
                        kinds: Iterable[ShiftKind | str] = ('rain', 'brightness'),
                        p: float = 0.5, split: str = 'train'
                        ) -> tuple[NDArray[np.uint8], dict[str, float]]:
    """:func:`augment_in_range` that also says what it applied: ``{kind: level}`` per kind.

    The level is the severity drawn (0.0 where the kind was not applied), negative for a
    darkening brightness shift, so that a brighter and a darker frame of the same severity
    differ. Same draws, same image as :func:`augment_in_range` for the same generator state.
    """
    if (isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p)
            or not 0.0 <= p <= 1.0):
        raise ConfigError(f'p must be a probability in [0, 1], got {p!r}')
    checked = [_kind(kinds)] if isinstance(kinds, str) else [_kind(k) for k in kinds]
    out, gen = _image(image).copy(), _rng(rng)
    levels = dict.fromkeys((kind.value for kind in checked), 0.0)
    for kind in checked:
        if gen.random() < p:
            out, levels[kind.value] = _apply(out, kind, sample_severity(kind, split, gen), gen,
                                             None)
    return out, levels
