"""Private backdrop helper of :mod:`vae_ood_monitor.data.scenes`: the world above the floor.

A backdrop is a 360 degree panorama painted on a vertical cylinder of radius ``dist`` metres
around the robot: room walls with doors, windows and furniture for the indoor styles, sky,
tree lines and buildings for the outdoor one. Panorama row ``r`` shows height
``top - (r - 0.5) / ppm`` metres above the floor; the column wraps around. Nothing here is
public API.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ['make_backdrop']

F32 = NDArray[np.float32]
Colour = tuple[float, float, float]

_WALLS = ((226, 221, 210), (200, 206, 202), (236, 230, 214), (182, 192, 204), (212, 196, 172),
          (196, 186, 196))
_FABRIC = ((70, 80, 110), (120, 60, 55), (90, 110, 80), (150, 140, 120), (60, 60, 65))
_FURN = ((230, 230, 228), (150, 110, 70), (95, 70, 50), (60, 62, 66), (190, 170, 140))
_RACK = ((220, 110, 30), (40, 90, 170), (200, 180, 40))


class _Canvas:
    """Panorama image with drawing helpers in metres (x along the wall, y height)."""

    def __init__(self, wp: int, ppm: float, top: float) -> None:
        self.ppm, self.top, self.wp = ppm, top, wp
        self.hp = int(np.ceil((top + 0.05) * ppm)) + 2
        self.img = np.zeros((self.hp, wp, 3), np.float32)
        self.length = wp / ppm

    def rect(self, x0: float, x1: float, y0: float, y1: float, col: Colour) -> None:
        """Fill [x0, x1] x [y0, y1] metres, wrapping around the cylinder."""
        px0, px1 = int(round(x0 * self.ppm)), int(round(x1 * self.ppm))
        py0, py1 = int(round((self.top - y1) * self.ppm)), int(round((self.top - y0) * self.ppm))
        if px1 <= px0 or py1 <= py0:
            return
        for shift in (0, -self.wp):
            if px0 + shift < self.wp and px1 + shift > 0:
                cv2.rectangle(self.img, (px0 + shift, py0), (px1 + shift - 1, py1 - 1),
                              col, -1)

    def poly(self, xs: NDArray[np.float64], ys: NDArray[np.float64], col: Colour) -> None:
        """Fill a polygon given in metres (drawn twice to wrap around)."""
        pts = np.stack([xs * self.ppm, (self.top - ys) * self.ppm], axis=1)
        for shift in (0, -self.wp):
            cv2.fillPoly(self.img, [np.round(pts + [shift, 0]).astype(np.int32)], col)

    def rows_for(self, y0: float, y1: float) -> slice:
        """Pixel rows covering heights [y0, y1] metres."""
        return slice(max(0, int((self.top - y1) * self.ppm)),
                     max(0, int(np.ceil((self.top - y0) * self.ppm))))


def _col(rng: np.random.Generator, palette: tuple[tuple[int, int, int], ...],
         jitter: float = 0.1) -> Colour:
    base = np.asarray(palette[int(rng.integers(len(palette)))], np.float64)
    out = np.clip(base * rng.uniform(1 - jitter, 1 + jitter), 0, 255)
    return (float(out[0]), float(out[1]), float(out[2]))


def _room(cv: _Canvas, rng: np.random.Generator, garage: bool) -> None:
    wall = np.asarray(_col(rng, ((150, 152, 156), (128, 130, 132)) if garage else _WALLS))
    walls = int(rng.integers(4, 7))
    xs = np.arange(cv.wp) / cv.ppm
    panel = ((xs / cv.length * walls + rng.random()) % walls).astype(np.int64)
    shade = rng.uniform(0.82, 1.05, walls)[panel]
    ys = cv.top - (np.arange(cv.hp) + 0.5) / cv.ppm
    grad = 1.0 - 0.05 * np.clip(ys / 2.0, 0, 1)
    cv.img[:] = (wall[None, None, :] * shade[None, :, None] * grad[:, None, None])
    board = rng.uniform(0.05, 0.1)
    cv.rect(0, cv.length, -1.0, board, _col(rng, ((235, 235, 232), (110, 80, 55), (50, 50, 52))))
    x = rng.uniform(0, 1.0)
    while x < cv.length - 0.3:
        kind = rng.choice(['gap', 'door', 'window', 'cabinet', 'sofa', 'table', 'shelf', 'plant',
                           'box']) if not garage else rng.choice(['gap', 'rack', 'pillar', 'box',
                                                                  'door', 'barrel'])
        w = float(rng.uniform(0.5, 1.6))
        if kind == 'door':
            w = 0.85
            col = _col(rng, ((240, 240, 236), (140, 100, 64), (100, 104, 110)))
            cv.rect(x - 0.05, x + w + 0.05, 0.0, 2.1, tuple(c * 0.8 for c in col))
            cv.rect(x, x + w, 0.0, 2.05, col)
            cv.rect(x + w - 0.12, x + w - 0.04, 0.98, 1.02, (60.0, 60.0, 60.0))
        elif kind == 'window':
            sill = rng.uniform(0.7, 1.0)
            cv.rect(x - 0.04, x + w + 0.04, sill - 0.04, sill + 1.4, (238.0, 238.0, 236.0))
            cv.rect(x, x + w, sill, sill + 1.36, (215.0, 228.0, 245.0))
            cv.rect(x - 0.1, x + w + 0.1, 0.05, 0.45, (232.0, 232.0, 232.0))
        elif kind in ('cabinet', 'box'):
            h = rng.uniform(0.4, 1.0) if kind == 'cabinet' else rng.uniform(0.15, 0.5)
            col = _col(rng, _FURN, 0.15)
            cv.rect(x, x + w * (1 if kind == 'cabinet' else 0.5), 0.0, h, col)
            for k in range(1, 3 if kind == 'cabinet' else 1):
                cv.rect(x + w * k / 3 - 0.01, x + w * k / 3 + 0.01, 0.05, h - 0.03,
                        tuple(c * 0.6 for c in col))
        elif kind == 'sofa':
            col = _col(rng, _FABRIC, 0.15)
            cv.rect(x, x + w + 0.6, 0.08, 0.8, tuple(c * 0.85 for c in col))
            cv.rect(x + 0.15, x + w + 0.45, 0.08, 0.45, col)
            cv.rect(x + 0.1, x + 0.18, 0.0, 0.08, (40.0, 30.0, 25.0))
            cv.rect(x + w + 0.42, x + w + 0.5, 0.0, 0.08, (40.0, 30.0, 25.0))
            w += 0.6
        elif kind == 'table':
            col = _col(rng, _FURN, 0.15)
            cv.rect(x, x + w, 0.7, 0.76, col)
            for lx in (x + 0.04, x + w - 0.08):
                cv.rect(lx, lx + 0.04, 0.0, 0.7, tuple(c * 0.7 for c in col))
        elif kind == 'shelf':
            col = _col(rng, _FURN, 0.15)
            cv.rect(x, x + w, 0.0, 2.0, tuple(c * 0.55 for c in col))
            for y in np.arange(0.05, 2.0, 0.38):
                cv.rect(x, x + w, y, y + 0.03, col)
                bx = x + 0.03
                while bx < x + w - 0.08:
                    bw = rng.uniform(0.03, 0.08)
                    cv.rect(bx, bx + bw, y + 0.03, y + rng.uniform(0.2, 0.32),
                            _col(rng, _FABRIC + _RACK, 0.3))
                    bx += bw + 0.005
        elif kind == 'plant':
            cv.rect(x, x + 0.3, 0.0, 0.3, _col(rng, ((170, 90, 60), (220, 220, 215))))
            for _ in range(6):
                cx, cy = x + 0.15 + rng.normal(0, 0.15), 0.3 + abs(rng.normal(0.35, 0.25))
                rr = rng.uniform(0.08, 0.18)
                t = np.linspace(0, 2 * np.pi, 12)
                cv.poly(cx + rr * np.cos(t), cy + rr * np.sin(t), _col(rng, ((50, 110, 50),), 0.3))
            w = 0.4
        elif kind == 'rack':
            col = _col(rng, _RACK)
            for lx in (x, x + w):
                cv.rect(lx, lx + 0.06, 0.0, 2.5, col)
            for y in (0.12, 0.9, 1.7):
                cv.rect(x, x + w + 0.06, y, y + 0.08, col)
                cv.rect(x + 0.1, x + w * rng.uniform(0.4, 0.9), y + 0.08, y + 0.5,
                        _col(rng, ((165, 125, 85), (120, 120, 125)), 0.15))
        elif kind == 'pillar':
            w = 0.35
            cv.rect(x, x + w, 0.0, 3.0, tuple(float(c) * 0.9 for c in wall))
            cv.rect(x, x + w, 0.0, 0.6, (215.0, 190.0, 40.0))
        elif kind == 'barrel':
            w = 0.55
            cv.rect(x, x + w, 0.0, 0.85, _col(rng, ((40, 80, 160), (170, 40, 30), (50, 50, 55))))
        x += w + float(rng.uniform(0.2, 1.5))


def _outdoor(cv: _Canvas, rng: np.random.Generator, cam_h: float, dist: float) -> None:
    ys = cv.top - (np.arange(cv.hp) + 0.5) / cv.ppm
    el = np.clip((ys - cam_h) / dist / 0.4, 0, 1)[:, None]
    zenith = np.asarray([110, 155, 215]) * rng.uniform(0.9, 1.05)
    haze = np.asarray([205, 216, 228]) * rng.uniform(0.95, 1.05)
    cv.img[:] = (haze * (1 - el) + zenith * el)[:, None, :]
    ground = np.asarray(_col(rng, ((110, 128, 88), (128, 132, 100)), 0.05))
    cv.img[cv.rows_for(-1.0, cam_h)] = ground
    xs = np.arange(cv.wp + 1) / cv.ppm
    ridge = np.cumsum(rng.normal(0, 1, xs.size))
    ridge = (ridge - np.linspace(ridge[0], ridge[-1], xs.size))
    ridge = cam_h + rng.uniform(1.5, 3.0) + 0.4 * ridge / (np.abs(ridge).max() + 1e-9) * 2.0
    bumps = np.abs(np.sin(xs * rng.uniform(1.5, 3.0))) * rng.uniform(0.5, 1.5)
    top = ridge + bumps
    tree = np.asarray(_col(rng, ((46, 78, 40), (58, 88, 46), (70, 90, 52)), 0.1))
    cv.poly(np.concatenate([xs, xs[::-1]]), np.concatenate([top, np.zeros(xs.size)]),
            (float(tree[0]), float(tree[1]), float(tree[2])))
    x = rng.uniform(0, 5.0)
    while x < cv.length - 3.0:
        if rng.random() < 0.4:
            w, h = rng.uniform(3, 8), rng.uniform(3, 7)
            wall = _col(rng, ((200, 190, 170), (170, 170, 175), (150, 90, 70)), 0.1)
            cv.rect(x, x + w, 0.0, h, wall)
            cv.poly(np.array([x - 0.3, x + w / 2, x + w + 0.3]), np.array([h, h + 1.5, h]),
                    _col(rng, ((120, 60, 50), (80, 80, 85)), 0.1))
            for wx in np.arange(x + 0.6, x + w - 0.8, 1.4):
                cv.rect(wx, wx + 0.7, h * 0.55, h * 0.55 + 0.9, (120.0, 140.0, 160.0))
        else:
            cv.rect(x, x + 0.15, 0.0, rng.uniform(2, 4), (90.0, 90.0, 92.0))
        x += float(rng.uniform(4, 14))


def make_backdrop(style: str, rng: np.random.Generator, wp: int, ppm: float, top: float,
                  cam_h: float, dist: float) -> F32:
    """Paint the panorama (rows, wp, 3) float32 of a world for floor style ``style``."""
    cv = _Canvas(wp, ppm, top)
    if style == 'grass':
        _outdoor(cv, rng, cam_h, dist)
    else:
        _room(cv, rng, garage=style == 'concrete')
    tex = 1.0 + 0.025 * rng.standard_normal((cv.hp, cv.wp, 1)).astype(np.float32)
    img = cv2.GaussianBlur(cv.img * tex, (0, 0), 0.6)
    return np.clip(img, 0, 255).astype(np.float32)
