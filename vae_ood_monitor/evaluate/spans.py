"""Spans of per-frame series: runs of a mask, first detections, rankable scores.

Shared by the offline evaluation and the bag replay report, which judge the same alarms against
the same ground truth and must count them alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ['first_detection', 'ranked', 'runs']


def runs(mask: ArrayLike) -> list[tuple[int, int]]:
    """Half-open ``(start, stop)`` index ranges of the True runs of ``mask``."""
    padded = np.r_[False, np.asarray(mask, bool).ravel(), False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def first_detection(alert: ArrayLike, start: int, stop: int) -> int | None:
    """Frames from ``start`` to the first alarm that begins in ``alert[start:stop]``; None: missed.

    An alarm already on at ``start`` was raised on the frames before (in-distribution frames
    for an OOD span): it is a false alarm, not a detection, until it clears and fires again.
    """
    alert = np.asarray(alert, bool)
    span = alert[start:stop]
    before = bool(alert[start - 1]) if start > 0 else False
    hits = np.flatnonzero(span & ~np.r_[before, span[:-1]])
    return int(hits[0]) if hits.size else None


def ranked(scores: ArrayLike) -> np.ndarray:
    """Return scores sklearn can rank: NaN and +/-inf become the largest / smallest float.

    NaN and +inf come from broken encoder output, which the runtime treats as maximally out
    of distribution; sklearn refuses non-finite scores.
    """
    big = np.finfo(np.float64).max
    return np.nan_to_num(np.asarray(scores, np.float64), nan=big, posinf=big, neginf=-big)
