"""Labelled test sequences: a synthetic drive with an OOD shift on some of its frames.

Modes (n frames, OOD frames as a half-open index range):

- ``id``: no OOD frame.
- ``m1``: all frames are OOD, [0, n).
- ``m2``: the second half is OOD, [n // 2, n).
- ``m3``: the middle half is OOD, [n // 4, 3 * n // 4).

For n = 8: m2 -> 0 0 0 0 1 1 1 1 and m3 -> 0 0 1 1 1 1 0 0.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
from numpy.typing import NDArray

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.data.scenes import render_sequence, SceneConfig
from vae_ood_monitor.data.shifts import ShiftKind, ShiftProcess

__all__ = ['SequenceMode', 'make_sequence', 'ood_mask', 'shift_sequence']


class SequenceMode(str, Enum):
    """Which frames of a sequence are out of distribution."""

    ID = 'id'
    M1 = 'm1'
    M2 = 'm2'
    M3 = 'm3'


def _mode(mode: object) -> SequenceMode:
    try:
        return SequenceMode(mode)
    except ValueError:
        raise ConfigError(f'unknown sequence mode {mode!r}; valid modes: '
                          f'{[m.value for m in SequenceMode]}') from None


def _count(n: object) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ConfigError(f'n must be a non-negative int, got {n!r}')
    return int(n)


def ood_mask(n: int, mode: SequenceMode | str) -> NDArray[np.bool_]:
    """Per-frame OOD labels (n,) of a sequence of ``n`` frames in ``mode``."""
    n, m = _count(n), _mode(mode)
    lo, hi = {SequenceMode.ID: (0, 0), SequenceMode.M1: (0, n),
              SequenceMode.M2: (n // 2, n), SequenceMode.M3: (n // 4, 3 * n // 4)}[m]
    mask = np.zeros(n, np.bool_)
    mask[lo:hi] = True
    return mask


def make_sequence(seed: int, n: int, kind: ShiftKind | str | None, severity: float,
                  mode: SequenceMode | str, config: SceneConfig = SceneConfig(), *,
                  direction: int | None = None
                  ) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """Render an ``n``-frame drive of world ``seed`` and shift its OOD frames.

    The shift is a :class:`ShiftProcess` (seeded from ``seed``) whose frame index counts from
    the first OOD frame, so lens dirt stays put and objects approach over the OOD stretch.
    ID frames are exactly the clean render.

    Args:
        seed: world seed of the :class:`RoadScene`.
        n: number of frames.
        kind: the shift, or None for a clean sequence (then ``mode`` must be 'id').
        severity: shift severity in [0, 1] (ignored when ``kind`` is None).
        mode: which frames are OOD (see :class:`SequenceMode`).
        config: scene geometry and size.
        direction: brightness only: +1 brighter, -1 darker, None drawn from the seed.

    Returns:
        frames (n, height, width, 3) RGB uint8 and labels (n,) bool (True = OOD).

    Raises:
        ConfigError: bad n, mode, kind, severity or seed, or kind None with an OOD mode.
    """
    m = _mode(mode)
    mask = ood_mask(n, m)
    if kind is None:
        if m is not SequenceMode.ID:
            raise ConfigError(f'kind None (no shift) requires mode {SequenceMode.ID.value!r}, '
                              f'got mode {m.value!r}')
        return render_sequence(seed, n, config), mask
    return shift_sequence(render_sequence(seed, n, config), kind, severity, m, seed,
                          direction=direction)


def shift_sequence(frames: NDArray[np.uint8], kind: ShiftKind | str, severity: float,
                   mode: SequenceMode | str, seed: int, *, direction: int | None = None
                   ) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """Apply a temporally coherent shift to the OOD frames of any recorded sequence.

    The same as :func:`make_sequence` for frames that already exist (real recordings): the
    :class:`ShiftProcess` frame index counts from the first OOD frame. Returns new frames and
    the per-frame OOD labels; ``frames`` is not modified.
    """
    m = _mode(mode)
    mask = ood_mask(len(frames), m)
    process = ShiftProcess(kind, severity, seed, direction)
    out = np.array(frames, copy=True)
    first = int(np.argmax(mask)) if mask.any() else 0
    for i in np.flatnonzero(mask):
        out[i] = process(out[i], int(i) - first)
    return out, mask
