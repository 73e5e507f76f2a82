"""Motion anomalies: shifts of a frame *sequence* that leave every single frame looking normal.

A camera that shakes, a stream that freezes or drops frames, a robot that suddenly drives three
times as fast or backwards: a frame detector sees ordinary frames, a flow detector sees the
motion between them change. :func:`motion_shift` applies one to a drive (frames in time order
with their timestamps) and returns the frames and stamps a camera would then deliver.

``shake``
    every frame moved by a random sub-frame translation and rotation (the image border mirrored
    in, so no frame shows a black edge).
``frozen``
    the driver keeps publishing the first frame with fresh timestamps.
``speed``
    the robot drives ``speed_factor`` times as fast: every ``speed_factor``-th frame, at the
    normal frame rate (the drive is shorter).
``reverse``
    the drive played backwards, timestamps still increasing.
``drop``
    about ``drop_fraction`` of the frames never arrive: the rest keep their own timestamps, so
    the steps between them grow (within the flow detector's gap limit).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vae_ood_monitor.core.errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ['MotionKind', 'motion_sequence', 'motion_shift', 'source_frames']


class MotionKind(str, Enum):
    """Motion anomalies of a frame sequence."""

    SHAKE = 'shake'
    FROZEN = 'frozen'
    SPEED = 'speed'
    REVERSE = 'reverse'
    DROP = 'drop'


def motion_shift(images: NDArray[np.uint8], stamps: NDArray[np.int64], kind: MotionKind | str,
                 rng: np.random.Generator, *, shake_px: float = 0.04,
                 shake_degrees: float = 2.0, speed_factor: int = 3,
                 drop_fraction: float = 0.5) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Apply motion anomaly ``kind`` to one sequence (T, h, w, 3) with its stamps (T,).

    ``shake_px`` is the largest shift as a fraction of the frame width. Returns new arrays;
    the stamps always increase.
    """
    try:
        kind = MotionKind(kind)
    except ValueError:
        raise ConfigError(f'Unknown motion shift {kind!r}; choose one of: '
                          f'{", ".join(k.value for k in MotionKind)}.') from None
    images = np.asarray(images)
    stamps = np.asarray(stamps, np.int64)
    if len(images) != len(stamps) or len(images) < 2:
        raise ConfigError(f'A motion shift needs a sequence of >= 2 frames with one stamp each, '
                          f'got {len(images)} frames and {len(stamps)} stamps.')
    if kind is MotionKind.SHAKE:
        h, w = images.shape[1:3]
        out = np.empty_like(images)
        for i, image in enumerate(images):
            dx, dy = rng.uniform(-1, 1, 2) * shake_px * w
            matrix = cv2.getRotationMatrix2D((w / 2, h / 2),
                                             float(rng.uniform(-1, 1) * shake_degrees), 1.0)
            matrix[:, 2] += (dx, dy)
            out[i] = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT_101)
        return out, stamps.copy()
    if kind is MotionKind.FROZEN:
        return np.repeat(images[:1], len(images), axis=0), stamps.copy()
    if kind is MotionKind.SPEED:
        if not (isinstance(speed_factor, int) and speed_factor >= 2):
            raise ConfigError(f'speed_factor {speed_factor!r} must be an integer >= 2.')
        kept = images[::speed_factor]
        return kept.copy(), stamps[:len(kept)].copy()
    if kind is MotionKind.REVERSE:
        return images[::-1].copy(), stamps.copy()
    if not 0.0 < drop_fraction < 1.0:
        raise ConfigError(f'drop_fraction {drop_fraction!r} must be in (0, 1).')
    keep = rng.random(len(images)) >= drop_fraction
    keep[0] = True
    return images[keep].copy(), stamps[keep].copy()


def source_frames(n: int, kind: MotionKind | str, mode: str, speed_factor: int = 3) -> int:
    """Clean frames to render for an ``n``-frame :func:`motion_sequence` (speed needs more)."""
    from vae_ood_monitor.data.drives import ood_mask

    ood = int(ood_mask(n, mode).sum())
    return n + (speed_factor - 1) * ood if MotionKind(kind) is MotionKind.SPEED else n


def motion_sequence(images: NDArray[np.uint8], n: int, kind: MotionKind | str, mode: str,
                    rng: np.random.Generator, *, speed_factor: int = 3
                    ) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.bool_]]:
    """Make an ``n``-frame drive with motion anomaly ``kind`` over the OOD stretch of ``mode``.

    ``images`` is the clean drive, :func:`source_frames` long. Returns the frames, their
    frame *positions* (multiply by the frame period for stamps: dropped frames leave gaps)
    and the OOD labels. The frames after the stretch continue the drive where it left off.
    """
    from vae_ood_monitor.data.drives import ood_mask

    kind = MotionKind(kind)
    mask = ood_mask(n, mode)
    where = np.flatnonzero(mask)
    if len(images) < source_frames(n, kind, mode, speed_factor):
        raise ConfigError(f'{len(images)} clean frames are too few for a {n}-frame {kind.value} '
                          f'drive in mode {mode}; render source_frames(...) of them.')
    if not len(where):
        return images[:n].copy(), np.arange(n, dtype=np.int64), mask
    lo, hi = int(where[0]), int(where[-1]) + 1
    end = lo + (hi - lo) * (speed_factor if kind is MotionKind.SPEED else 1)
    positions = np.arange(len(images), dtype=np.int64)
    shifted, kept = motion_shift(images[lo:end], positions[lo:end], kind, rng,
                                 speed_factor=speed_factor)
    if kind is not MotionKind.DROP:  # the anomaly plays at the normal frame rate
        kept = np.arange(lo, lo + len(shifted), dtype=np.int64)
    tail = images[end:end + n - hi]
    frames = np.concatenate([images[:lo], shifted, tail])
    stamps = np.concatenate([positions[:lo], kept, np.arange(hi, hi + len(tail))])
    labels = np.concatenate([np.zeros(lo, bool), np.ones(len(shifted), bool),
                             np.zeros(len(tail), bool)])
    return frames, stamps, labels
