"""Private road geometry of :mod:`vae_ood_monitor.data.scenes`: track, car pose and props.

The track is a curvature profile over arc length ``s`` (straights, arcs and S-bends joined by
linear curvature ramps, i.e. clothoids) integrated on a fixed grid in fixed-size chunks, so
the centreline is bit-identical whatever order frames are requested in. Nothing here is
public API.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
import math

import numpy as np
from numpy.typing import NDArray

__all__ = ['CHUNK_M', 'Camera', 'DS', 'Track']

F64 = NDArray[np.float64]
DS = 0.02                 # grid step of the centreline (m)
CHUNK = 1024              # grid points per chunk
CHUNK_M = DS * CHUNK
_RAMP = 0.4               # length of the curvature ramps between segments (m)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera ``height`` m above the floor, pitched down by ``pitch`` rad."""

    f: float
    cx: float
    cy: float
    height: float
    pitch: float

    def project(self, x: F64, y: F64, z: F64) -> tuple[F64, F64, F64]:
        """Car-frame points (x right, y up, z ahead) -> pixel u, v (cv2 centres) and depth."""
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        dy = y - self.height
        zc = z * cp - dy * sp
        yc = -dy * cp - z * sp
        zs = np.maximum(zc, 1e-6)
        return self.cx + self.f * x / zs - 0.5, self.cy + self.f * yc / zs - 0.5, zc


class Track:
    """Road centreline of one world (world x, y, heading theta over arc length s)."""

    def __init__(self, seed: int, radius: tuple[float, float]) -> None:
        self._rng = np.random.default_rng([seed, 11])
        self._radius = (math.log(radius[0]), math.log(radius[1]))
        start = self._rng.uniform(0.5, 2.0)
        self._ks: list[float] = [-1.0, start]
        self._kv: list[float] = [0.0, 0.0]
        self._end = start
        self._chunks: list[F64] = []           # (3, CHUNK) theta, x, y per chunk
        head = self._rng.uniform(0, 2 * math.pi)
        self._state = (head, *self._rng.uniform(0, 5.12, 2))

    def _segment(self, length: float, k: float) -> None:
        a, b = self._end, self._end + length
        m = min(_RAMP / 2, length / 2 - 1e-3)
        self._ks += [a + m, b - m]
        self._kv += [k, k]
        self._end = b

    def _more(self) -> None:
        rng = self._rng
        u = rng.random()
        if u < 0.35:
            self._segment(rng.uniform(0.8, 3.0), 0.0)
            return
        r = math.exp(rng.uniform(*self._radius))
        sign = 1.0 if rng.random() < 0.5 else -1.0
        if u < 0.75:
            self._segment(r * math.radians(rng.uniform(35, 110)), sign / r)
        else:
            ang = math.radians(rng.uniform(30, 70))
            self._segment(r * ang, sign / r)
            self._segment(r * ang, -sign / r)

    def _chunk(self) -> None:
        s = (np.arange(CHUNK) + len(self._chunks) * CHUNK) * DS
        while self._end < s[-1] + 2.0:
            self._more()
        first = max(0, bisect.bisect_right(self._ks, s[0]) - 1)    # knots before s stay put
        k = np.interp(s, self._ks[first:], self._kv[first:])
        th = self._state[0] + np.cumsum(k) * DS
        x = self._state[1] + np.cumsum(np.cos(th)) * DS
        y = self._state[2] + np.cumsum(np.sin(th)) * DS
        self._state = (float(th[-1]), float(x[-1]), float(y[-1]))
        self._chunks.append(np.stack([th, x, y]))

    def ensure(self, s_max: float) -> None:
        """Integrate chunks until the centreline covers arc length ``s_max``."""
        while len(self._chunks) * CHUNK_M < s_max + 4 * DS:
            self._chunk()

    def _rows(self, i0: int, i1: int) -> F64:
        c0, c1 = i0 // CHUNK, (i1 - 1) // CHUNK
        block = self._chunks[c0] if c0 == c1 else np.concatenate(self._chunks[c0:c1 + 1], 1)
        return block[:, i0 - c0 * CHUNK:i1 - c0 * CHUNK]

    def window(self, s0: float, s1: float) -> tuple[F64, F64, F64, F64]:
        """Grid points with s in about [s0, s1]: (s, theta, x, y)."""
        self.ensure(s1 + 4 * DS)
        i0, i1 = max(0, int(s0 / DS) - 3), int(s1 / DS) + 3
        th, x, y = self._rows(i0, i1)
        return np.arange(i0, i0 + th.size) * DS, th, x, y

    def pose(self, s: float) -> tuple[float, float, float]:
        """Interpolated (theta, x, y) of the centreline at arc length ``s``."""
        self.ensure(s + 1.0)
        i = int(s / DS)
        a = s / DS - i
        pair = self._rows(i, i + 2)
        th, x, y = pair[:, 0] * (1 - a) + pair[:, 1] * a
        return float(th), float(x), float(y)
