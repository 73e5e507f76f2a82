"""Private texture helpers of :mod:`vae_ood_monitor.data.scenes`.

Ground textures are periodic ``TEX_N x TEX_N`` float32 tiles (one texel is ``TEXEL_M`` metres)
sampled in world ground coordinates, so they stay fixed to the floor while the robot drives.
Periodic noise comes from filtering white noise in the Fourier domain, which makes every tile
seamless. Lighting (soft shadows, light patches) is baked into the tiles. Nothing here is
public API.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ['GroundTextures', 'PAINT_SCALE', 'STYLES', 'TEX_N', 'TEXEL_M', 'blur_wrap',
           'make_ground']

TEX_N = 512
TEXEL_M = 0.01
PAINT_SCALE = 100.0          # paint brightness 1.0 is stored as 100 in the road tile
STYLES = ('carpet', 'concrete', 'grass', 'tiles', 'wood')

F32 = NDArray[np.float32]

_CARPET = ((95, 100, 118), (150, 135, 112), (92, 108, 96), (128, 78, 76), (120, 120, 124))
_WOOD = ((190, 148, 100), (132, 88, 56), (205, 170, 120), (165, 120, 82))
_GRASS = ((72, 112, 42), (88, 122, 50), (104, 122, 58))
_TILE = ((220, 214, 200), (200, 202, 206), (178, 170, 158), (226, 226, 222))


def _noise(rng: np.random.Generator, sy: float, sx: float | None = None,
           n: int = TEX_N) -> F32:
    """Periodic Gaussian noise (n, n): zero mean, unit std, correlation lengths sy, sx texels.

    Smooth fields are made at a lower resolution (blurred white noise) and upsampled.
    """
    sx = sy if sx is None else sx
    fy = 2 ** int(np.clip(np.floor(np.log2(max(sy, 1e-3) / 1.5)), 0, 4))
    fx = 2 ** int(np.clip(np.floor(np.log2(max(sx, 1e-3) / 1.5)), 0, 4))
    small = rng.standard_normal((n // fy, n // fx), dtype=np.float32)
    out = blur_wrap(small, sy / fy, sx / fx)
    if fy > 1 or fx > 1:
        big = cv2.resize(cv2.copyMakeBorder(out, 2, 2, 2, 2, cv2.BORDER_WRAP),
                         ((n // fx + 4) * fx, (n // fy + 4) * fy),
                         interpolation=cv2.INTER_CUBIC)
        out = big[2 * fy:2 * fy + n, 2 * fx:2 * fx + n]
    out = out - out.mean()
    return (out / (out.std() + 1e-12)).astype(np.float32)


def blur_wrap(img: F32, sigma: float, sigma_x: float | None = None) -> F32:
    """Gaussian blur of a periodic tile (wrap-around borders); sigma_x defaults to sigma."""
    sigma_x = sigma if sigma_x is None else sigma_x
    pad_y, pad_x = int(3 * sigma) + 1, int(3 * sigma_x) + 1
    big = cv2.copyMakeBorder(img, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_WRAP)
    big = cv2.GaussianBlur(big, (0, 0), sigmaX=sigma_x, sigmaY=sigma)
    return np.ascontiguousarray(big[pad_y:-pad_y, pad_x:-pad_x])


def _pick(rng: np.random.Generator, palette: tuple[tuple[int, int, int], ...]) -> F32:
    base = np.asarray(palette[int(rng.integers(len(palette)))], np.float32)
    return base * np.float32(rng.uniform(0.9, 1.1)) + rng.uniform(-6, 6, 3).astype(np.float32)


def _shade(base: F32, lum: F32) -> F32:
    """Colour tile: ``base`` (3,) scaled by a (n, n) luminance factor field."""
    return base[None, None, :] * lum[:, :, None]


def _grid(n: int, cells: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Cell index and position in the cell (0..1) along one axis for ``cells`` periodic cells."""
    pos = np.arange(n) * cells / n
    return pos.astype(np.int64), pos % 1.0


def _tiles(rng: np.random.Generator, n: int) -> F32:
    cells = max(2, int(round(n * TEXEL_M / rng.uniform(0.2, 0.6))))
    ci, fi = _grid(n, cells)
    grout = rng.uniform(0.6, 1.2) * cells / n
    base = _pick(rng, _TILE)
    other = base * np.float32(rng.uniform(0.35, 0.6)) if rng.random() < 0.3 else base
    jitter = rng.uniform(0.93, 1.05, (cells, cells)).astype(np.float32)
    checker = (ci[:, None] + ci[None, :]) % 2 == 1
    col = np.where(checker[..., None], other, base) * jitter[ci][:, ci][..., None]
    lum = 1.0 + 0.03 * _noise(rng, 0.7, n=n) + 0.04 * _noise(rng, 20.0, n=n)
    col = col * lum[..., None]
    line = (fi[:, None] < grout) | (fi[None, :] < grout)
    gcol = base * np.float32(rng.choice([0.55, 0.75, 1.05]))
    return np.where(line[..., None], gcol, col).astype(np.float32)


def _carpet(rng: np.random.Generator, n: int) -> F32:
    base = _pick(rng, _CARPET)
    lum = 1.0 + 0.10 * _noise(rng, 0.5, n=n) + 0.05 * _noise(rng, 6.0, n=n)
    lum += 0.04 * _noise(rng, 40.0, n=n)
    return _shade(base, lum)


def _wood(rng: np.random.Generator, n: int) -> F32:
    planks = int(round(n * TEXEL_M / rng.uniform(0.08, 0.2)))
    runs = int(rng.choice([4, 5, 6, 8]))
    pi, _ = _grid(n, planks)
    offs = rng.random(planks)
    along = (np.arange(n)[None, :] * runs / n + offs[pi][:, None]) % runs
    seg = along.astype(np.int64)
    seam_a = (along % 1.0) < 1.2 * runs / n
    _, fi = _grid(n, planks)
    seam_c = (fi < 0.8 * planks / n)[:, None]
    tone = rng.uniform(0.82, 1.15, (planks, runs)).astype(np.float32)[pi[:, None], seg]
    grain = _noise(rng, 0.8, 20.0, n=n)
    lum = tone * (1.0 + 0.08 * grain + 0.03 * _noise(rng, 0.6, n=n))
    lum = np.where(seam_a | seam_c, lum * 0.55, lum)
    col = _shade(_pick(rng, _WOOD), lum.astype(np.float32))
    return np.ascontiguousarray(np.swapaxes(col, 0, 1)) if rng.random() < 0.5 else col


def _grass(rng: np.random.Generator, n: int) -> F32:
    base = _pick(rng, _GRASS)
    fine = _noise(rng, 0.6, n=n)
    lum = 1.0 + 0.22 * fine + 0.10 * _noise(rng, 5.0, n=n)
    col = _shade(base, lum)
    col[..., 0] += 8.0 * _noise(rng, 3.0, n=n)
    dirt = np.clip(_noise(rng, 28.0, n=n) * 1.5 - 1.6, 0.0, 1.0)[..., None]
    soil = np.asarray([112, 92, 64], np.float32) * (1.0 + 0.12 * fine[..., None])
    return (col * (1.0 - dirt) + soil * dirt).astype(np.float32)


def _concrete(rng: np.random.Generator, n: int) -> F32:
    grey = rng.uniform(120, 165)
    base = np.asarray([grey, grey, grey], np.float32) + rng.uniform(-5, 5, 3).astype(np.float32)
    lum = 1.0 + 0.07 * _noise(rng, 25.0, n=n) + 0.04 * _noise(rng, 3.0, n=n)
    lum += 0.05 * _noise(rng, 0.5, n=n)
    cells = int(rng.choice([3, 4, 5]))
    _, fi = _grid(n, cells)
    joint = (fi[:, None] < 1.2 * cells / n) | (fi[None, :] < 1.2 * cells / n)
    lum = np.where(joint, lum * 0.7, lum)
    col = _shade(base, lum.astype(np.float32))
    for _ in range(int(rng.integers(1, 4))):
        steps = np.cumsum(rng.normal(0, 6, (30, 2)), axis=0) + rng.uniform(0, n, 2)
        crack = np.zeros((n, n), np.float32)
        cv2.polylines(crack, [np.round(steps).astype(np.int32)], False, 1.0, 1, cv2.LINE_AA)
        col *= (1.0 - 0.35 * crack)[..., None]
    return col


def _road(rng: np.random.Generator, n: int) -> F32:
    if rng.random() < 0.55:      # asphalt: grainy with sparse light specks
        grey = rng.uniform(44, 62)
        fine = _noise(rng, 0.5, n=n)
        lum = 1.0 + 0.16 * fine + 0.05 * _noise(rng, 20.0, n=n) + 0.35 * (fine > 2.4)
    else:                        # vinyl / foam mat: smooth, faint seams
        grey = rng.uniform(28, 42)
        lum = 1.0 + 0.05 * _noise(rng, 1.0, n=n) + 0.04 * _noise(rng, 30.0, n=n)
        _, fi = _grid(n, 8)
        lum = np.where((fi[:, None] < 8 / n) | (fi[None, :] < 8 / n), lum * 0.8, lum)
    tint = rng.uniform(-2.5, 2.5, 3).astype(np.float32)
    return _shade(np.float32(grey) + tint, lum.astype(np.float32))


def _light(rng: np.random.Generator, n: int, outdoor: bool) -> F32:
    """Multiplicative illumination of the floor: soft shadows and light patches."""
    light = 1.0 + 0.07 * _noise(rng, 45.0, n=n)
    if outdoor:    # dappled tree shadows
        shade = np.clip(_noise(rng, 18.0, n=n) * 1.2 - 0.6, 0.0, 1.0)
        return (light - rng.uniform(0.15, 0.3) * shade).astype(np.float32)
    mask = np.zeros((n, n), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        ctr = rng.uniform(0, n, 2)
        size = rng.uniform(20, 90, 2)
        ang = rng.uniform(0, 180)
        box = cv2.boxPoints(((float(ctr[0]), float(ctr[1])),
                             (float(size[0]), float(size[1])), float(ang)))
        val = rng.uniform(0.15, 0.35) * (1 if rng.random() < 0.5 else -1)
        patch = np.zeros_like(mask)
        cv2.fillConvexPoly(patch, np.round(box).astype(np.int32), float(val))
        mask += patch
    return (light + blur_wrap(mask, float(rng.uniform(6, 14)))).astype(np.float32)


class GroundTextures:
    """Floor and road tiles of one world, with mip levels for distant rows.

    ``off[k]`` is the off-road floor (n / 2**k, n / 2**k, 4; 4th channel unused: cv2.remap is
    fastest on four channels) at mip level k, ``road[k]`` the road surface whose 4th channel is
    the paint brightness (wear x light) of the lane lines times ``PAINT_SCALE``. Tiles are
    uint8 (a quarter of the memory of float32; cv2.remap is as fast).
    """

    def __init__(self, style: str, rng: np.random.Generator, n: int = TEX_N) -> None:
        makers = {'carpet': _carpet, 'concrete': _concrete, 'grass': _grass,
                  'tiles': _tiles, 'wood': _wood}
        light = _light(rng, n, outdoor=style == 'grass')[..., None]
        off = makers[style](rng, n) * light
        off4 = np.concatenate([off, np.zeros_like(light)], axis=2)
        road = _road(rng, n) * light
        wear = (0.9 + 0.06 * _noise(rng, 1.5, n=n))[..., None] * light * PAINT_SCALE
        road4 = np.concatenate([road, wear], axis=2)
        off4, road4 = (np.clip(t + 0.5, 0, 255).astype(np.uint8) for t in (off4, road4))
        self.off, self.road = [off4], [road4]
        for _ in range(3):      # mip levels: 2x2 box averages keep the tiles periodic
            for lev in (self.off, self.road):
                half = lev[-1].shape[0] // 2
                lev.append(cv2.resize(lev[-1], (half, half), interpolation=cv2.INTER_AREA))
        self.off_mean = off4.reshape(-1, 4).mean(axis=0).astype(np.float32)
        self.road_mean = road4.reshape(-1, 4).mean(axis=0).astype(np.float32)


def make_ground(style: str, seed_seq: list[int]) -> GroundTextures:
    """Build the floor/road tiles of a world from its seed sequence."""
    return GroundTextures(style, np.random.default_rng(seed_seq))
