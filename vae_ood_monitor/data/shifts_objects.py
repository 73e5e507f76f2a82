"""Private renderer of the ``objects`` shift of :mod:`vae_ood_monitor.data.shifts`.

Novel objects (dog-like animals, brightly coloured boxes, balls, traffic signs) stand on the
road in the lower-central part of the image. Each object has a ground distance ``d`` (in
units of the distance at which it would touch the bottom edge); its base is drawn at
``y = horizon + (h - horizon) / d`` and its height is proportional to ``1 / d``, which is the
ground-plane perspective of a forward camera. In a sequence the robot drives toward the
objects: ``d`` shrinks every frame, and an object that reaches the camera is replaced by a
new one far away. Nothing here is public API.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from vae_ood_monitor.data.shifts_render import static

__all__ = ['render_objects']

U8 = NDArray[np.uint8]
Col = tuple[float, float, float]
_FAR, _NEAR, _SPEED = 5.5, 1.0, 0.035      # distance range and approach per frame
_HORIZON = 0.3                             # assumed horizon row, as a fraction of the height
_ANIMAL = ((140, 90, 50), (35, 32, 30), (232, 230, 222), (125, 122, 118), (205, 160, 90))
_VIVID = ((210, 30, 30), (30, 70, 210), (30, 170, 60), (150, 40, 170), (235, 205, 20),
          (245, 105, 185), (20, 190, 200))


class _Pen:
    """Draws the same shape into the overlay (colour) and the alpha mask."""

    def __init__(self, ov: U8, alpha: U8) -> None:
        self.ov, self.alpha = ov, alpha

    @staticmethod
    def _p(x: float, y: float) -> tuple[int, int]:
        return int(round(x * 16)), int(round(y * 16))

    def poly(self, pts: list[tuple[float, float]], col: Col, a: int = 255) -> None:
        arr = np.round(np.asarray(pts) * 16).astype(np.int32)
        cv2.fillPoly(self.ov, [arr], col, cv2.LINE_AA, 4)
        cv2.fillPoly(self.alpha, [arr], a, cv2.LINE_AA, 4)

    def ellipse(self, x: float, y: float, ax: float, ay: float, col: Col, a: int = 255,
                angle: float = 0.0) -> None:
        axes = (max(1, int(ax * 16)), max(1, int(ay * 16)))
        cv2.ellipse(self.ov, self._p(x, y), axes, angle, 0, 360, col, -1, cv2.LINE_AA, 4)
        cv2.ellipse(self.alpha, self._p(x, y), axes, angle, 0, 360, a, -1, cv2.LINE_AA, 4)

    def line(self, x0: float, y0: float, x1: float, y1: float, col: Col, t: float) -> None:
        th = max(1, int(round(t)))
        cv2.line(self.ov, self._p(x0, y0), self._p(x1, y1), col, th, cv2.LINE_AA, 4)
        cv2.line(self.alpha, self._p(x0, y0), self._p(x1, y1), 255, th, cv2.LINE_AA, 4)


def _shade(col: Col, k: float) -> Col:
    return (min(255.0, col[0] * k), min(255.0, col[1] * k), min(255.0, col[2] * k))


def _draw(pen: _Pen, kind: str, x: float, y: float, size: float,
          rng: np.random.Generator) -> None:
    """Draw one object of height ``size`` px standing at (x, y)."""
    pen.ellipse(x, y, 0.6 * size, 0.12 * size, (0.0, 0.0, 0.0), 110)      # contact shadow
    if kind == 'animal':
        col = tuple(float(c) for c in _ANIMAL[int(rng.integers(len(_ANIMAL)))])
        side = 1 if rng.random() < 0.5 else -1
        leg = _shade(col, 0.8)
        for dx in (-0.5, -0.3, 0.3, 0.5):
            pen.line(x + dx * size, y - 0.5 * size, x + dx * size, y, leg, 0.1 * size)
        pen.line(x - side * 0.65 * size, y - 0.6 * size, x - side * 0.95 * size,
                 y - 0.85 * size, leg, 0.07 * size)
        pen.ellipse(x, y - 0.55 * size, 0.7 * size, 0.26 * size, col)
        hx, hy = x + side * 0.75 * size, y - 0.82 * size
        pen.ellipse(hx, hy, 0.22 * size, 0.2 * size, col)
        pen.poly([(hx - 0.15 * size, hy - 0.1 * size), (hx - 0.05 * size, hy - 0.1 * size),
                  (hx - 0.12 * size, hy - 0.34 * size)], leg)
        pen.ellipse(hx + side * 0.2 * size, hy + 0.05 * size, 0.1 * size, 0.07 * size,
                    _shade(col, 0.6))
    elif kind == 'box':
        col = tuple(float(c) for c in _VIVID[int(rng.integers(len(_VIVID)))])
        half, dx, dy = 0.5 * size * rng.uniform(0.7, 1.3), 0.3 * size, 0.22 * size
        pen.poly([(x - half, y), (x + half, y), (x + half, y - size), (x - half, y - size)], col)
        pen.poly([(x - half, y - size), (x + half, y - size), (x + half + dx, y - size - dy),
                  (x - half + dx, y - size - dy)], _shade(col, 1.3))
        pen.poly([(x + half, y), (x + half + dx, y - dy), (x + half + dx, y - size - dy),
                  (x + half, y - size)], _shade(col, 0.65))
    elif kind == 'ball':
        col = tuple(float(c) for c in _VIVID[int(rng.integers(len(_VIVID)))])
        r = 0.5 * size
        pen.ellipse(x, y - r, r, r, _shade(col, 0.75))
        pen.ellipse(x - 0.1 * r, y - 1.1 * r, 0.85 * r, 0.85 * r, col)
        pen.ellipse(x - 0.35 * r, y - 1.35 * r, 0.25 * r, 0.25 * r, _shade(col, 1.6))
    else:
        pen.line(x, y, x, y - 0.75 * size, (150.0, 150.0, 155.0), 0.06 * size)
        r = 0.28 * size
        cy = y - 0.75 * size - r * 0.9
        t = np.linspace(0, 2 * np.pi, 9)[:-1] + np.pi / 8
        if rng.random() < 0.5:
            pen.poly(list(zip(x + 1.1 * r * np.cos(t), cy + 1.1 * r * np.sin(t))),
                     (240.0, 240.0, 240.0))
            pen.poly(list(zip(x + r * np.cos(t), cy + r * np.sin(t))), (205.0, 25.0, 30.0))
        else:
            pen.poly([(x, cy - 1.2 * r), (x + 1.2 * r, cy), (x, cy + 1.2 * r),
                      (x - 1.2 * r, cy)], (20.0, 20.0, 20.0))
            pen.poly([(x, cy - r), (x + r, cy), (x, cy + r), (x - r, cy)], (245.0, 200.0, 20.0))


def render_objects(img: U8, s: float, key: tuple[int, ...], index: int,
                   direction: int | None) -> U8:
    """Paste ceil(3 s) objects whose size grows with the severity ``s``."""
    h, w = img.shape[:2]
    st = static(key)
    count = int(math.ceil(3 * s - 1e-9))
    items = []
    for j in range(count):
        start = st.uniform(1.3, _FAR)
        pos = _FAR - start + _SPEED * index
        gen = int(pos // (_FAR - _NEAR))
        dist = _FAR - pos % (_FAR - _NEAR)
        rng = np.random.default_rng([*key, 2, j, gen])
        q = 1.0 / dist
        horizon = _HORIZON * h
        y = horizon + (h - horizon) * q
        x = w / 2 + rng.uniform(-0.3, 0.3) * w * q * 1.2
        size = (0.15 + 0.55 * s) * q * h * rng.uniform(0.8, 1.2)
        kind = str(rng.choice(['animal', 'box', 'ball', 'sign']))
        items.append((y, x, size, kind, rng))
    ov = img.copy()
    alpha = np.zeros((h, w), np.uint8)
    pen = _Pen(ov, alpha)
    for y, x, size, kind, rng in sorted(items, key=lambda t: t[0]):
        _draw(pen, kind, x, y, size, rng)
    a = alpha.astype(np.float32) * np.float32(1 / 255)
    out = img.astype(np.float32)
    diff = ov.astype(np.float32) - out
    diff *= cv2.merge((a, a, a))
    out += diff
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
