"""Procedural road scenes: what a small robot's forward camera sees while driving a lane.

Duckietown / Donkey Car style: a pinhole camera ``camera_height_m`` above the floor, pitched
down ``camera_pitch_deg``, looks at a dark road with a yellow dashed centre line and white
solid edge lines; the robot drives in the right lane with a small lateral and heading wobble.
Rendering uses the real ground-plane perspective: per :class:`SceneConfig` every image row has
a ground distance ``z`` and every pixel a lateral ground coordinate ``x``; per frame the road
centre's lateral offset as a function of ``z`` comes from the integrated curvature profile
ahead of the car, and the rest is vectorised numpy plus ``cv2.remap`` texture look-ups.

Each seed is one world: floor style (carpet, concrete, grass, tiles, wood), road surface and
width, textures and soft lighting baked into the floor, a backdrop (room walls with furniture,
a garage, or sky and trees), global gain and colour temperature, curvature profile and the
props beside the road. The same (config, seed) always gives bit-identical frames. Frames are
RGB uint8 rendered directly at the configured size.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import math
from typing import Iterator

import cv2
import numpy as np
from numpy.typing import NDArray

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.data.scenes_backdrop import make_backdrop
from vae_ood_monitor.data.scenes_props import draw_props, Props
from vae_ood_monitor.data.scenes_road import Camera, Track
from vae_ood_monitor.data.scenes_textures import (
    make_ground, PAINT_SCALE, STYLES, TEX_N, TEXEL_M)

__all__ = ['RoadScene', 'SceneConfig', 'STYLES', 'render_sequence']

F32 = NDArray[np.float32]


def _check_range(name: str, value: object, lo: float, hi: float) -> None:
    if (not isinstance(value, tuple) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or not lo <= value[0] <= value[1] <= hi):
        raise ConfigError(f'SceneConfig.{name} must be a (low, high) tuple with '
                          f'{lo} <= low <= high <= {hi}, got {value!r}')


@dataclass(frozen=True)
class SceneConfig:
    """Camera geometry, drive and world variety of :class:`RoadScene` (validated).

    Ranges are (low, high) tuples from which each seed draws its own value.
    """

    width: int = 160
    height: int = 120
    fps: float = 20.0
    speed_mps: float = 0.6
    camera_height_m: float = 0.12
    camera_pitch_deg: float = 15.0
    hfov_deg: float = 80.0
    road_width_m: tuple[float, float] = (0.45, 0.65)
    curve_radius_m: tuple[float, float] = (1.0, 6.0)
    lighting_gain: tuple[float, float] = (0.8, 1.2)
    prop_density_per_m: float = 0.6
    wobble_m: float = 0.03
    sensor_noise: float = 1.5
    softness_px: float = 0.6
    styles: tuple[str, ...] = STYLES

    def __post_init__(self) -> None:
        for name in ('width', 'height'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 8 <= value <= 4096:
                raise ConfigError(f'SceneConfig.{name} must be an int in [8, 4096], '
                                  f'got {value!r}')
        scalars = {'fps': (1e-3, 1e4, False), 'speed_mps': (0.0, 20.0, True),
                   'camera_height_m': (0.02, 2.0, False), 'camera_pitch_deg': (0.0, 60.0, True),
                   'hfov_deg': (20.0, 150.0, True), 'prop_density_per_m': (0.0, 5.0, True),
                   'wobble_m': (0.0, 0.2, True), 'sensor_noise': (0.0, 20.0, True),
                   'softness_px': (0.0, 3.0, True)}
        for name, (lo, hi, closed) in scalars.items():
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or not (lo <= value if closed else lo < value) \
                    or value > hi:
                raise ConfigError(f'SceneConfig.{name} must be a number in '
                                  f'{"[" if closed else "("}{lo}, {hi}], got {value!r}')
        _check_range('road_width_m', self.road_width_m, 0.1, 3.0)
        _check_range('curve_radius_m', self.curve_radius_m, 0.3, 1e4)
        _check_range('lighting_gain', self.lighting_gain, 0.1, 3.0)
        styles = tuple(self.styles) if isinstance(self.styles, (list, tuple)) else None
        if not styles or any(s not in STYLES for s in styles):
            raise ConfigError(f'SceneConfig.styles must be a non-empty tuple of {STYLES}, '
                              f'got {self.styles!r}')
        object.__setattr__(self, 'styles', styles)


@dataclass(frozen=True)
class _Geometry:
    """Per-config camera geometry (rows: image rows; x: lateral ground coordinate)."""

    cam: Camera
    z: NDArray[np.float64]          # ground distance ahead per row (inf above the horizon)
    x: F32                          # (h, w) lateral ground coordinate (m, right positive)
    pix_x: NDArray[np.float64]      # lateral ground size of a pixel per row (m)
    pix_z: NDArray[np.float64]      # along-track ground size of a pixel per row (m)
    azimuth: F32                    # (h, w) horizontal ray angle (rad, right positive)
    rise: F32                       # (h, w) ray rise per metre of horizontal travel
    vignette: F32                   # (h, w)


@functools.lru_cache(maxsize=8)
def _geometry(cfg: SceneConfig) -> _Geometry:
    w, h = cfg.width, cfg.height
    f = (w / 2) / math.tan(math.radians(cfg.hfov_deg) / 2)
    pitch = math.radians(cfg.camera_pitch_deg)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cam = Camera(f, w / 2, h / 2, cfg.camera_height_m, pitch)

    def ground(v: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        yc = (v - h / 2) / f
        denom = yc * cp + sp
        with np.errstate(divide='ignore'):
            t = np.where(denom > 1e-9, cfg.camera_height_m / np.maximum(denom, 1e-9), np.inf)
        return t, np.where(np.isfinite(t), t * (cp - yc * sp), np.inf)

    rows = np.arange(h) + 0.5
    t, z = ground(rows)
    _, z_hi = ground(rows - 0.5)
    _, z_lo = ground(rows + 0.5)
    pix_z = np.where(np.isfinite(z_hi), z_hi - np.where(np.isfinite(z_lo), z_lo, 0), np.inf)
    xc = ((np.arange(w) + 0.5 - w / 2) / f)[None, :]
    yc = ((rows - h / 2) / f)[:, None]
    x = np.where(np.isfinite(t)[:, None], np.where(np.isfinite(t), t, 0)[:, None] * xc, 0)
    dz = cp - yc * sp
    horiz = np.sqrt(xc * xc + dz * dz)
    rise = np.clip((-yc * cp - sp) / horiz, -5.0, 5.0)
    r2 = ((xc * f) ** 2 + (yc * f) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
    return _Geometry(cam=cam, z=z, x=x.astype(np.float32), pix_x=t / f,
                     pix_z=pix_z, azimuth=np.arctan2(xc, dz).astype(np.float32),
                     rise=rise.astype(np.float32),
                     vignette=(1.0 - 0.22 * r2).astype(np.float32))


def _cover(lo_a: F32, hi_a: F32, half: float, inv_p: F32) -> F32:
    """Fraction of each pixel footprint [lo_a, hi_a] inside [-half, half] (box filter)."""
    out = np.minimum(hi_a, half) - np.maximum(lo_a, -half)
    out *= inv_p
    return np.clip(out, 0.0, 1.0, out=out)


class RoadScene:
    """One procedurally drawn world and the robot's drive through it.

    ``render(i)`` is frame ``i`` of the drive (the robot has driven ``i * speed_mps / fps``
    metres); frames are RGB uint8 (height, width, 3) and depend only on (seed, config, i).
    """

    def __init__(self, seed: int, config: SceneConfig = SceneConfig()) -> None:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f'seed must be a non-negative int, got {seed!r}')
        if not isinstance(config, SceneConfig):
            raise ConfigError(f'config must be a SceneConfig, got {type(config).__name__}')
        self.seed, self.config = int(seed), config
        geo = self._geo = _geometry(config)
        rng = np.random.default_rng([self.seed, 7])
        self.style = str(config.styles[int(rng.integers(len(config.styles)))])
        self.road_width = float(rng.uniform(*config.road_width_m))
        self._edge_w = rng.uniform(0.02, 0.045)
        self._centre_w = rng.uniform(0.02, 0.035)
        self._dash = rng.uniform(0.06, 0.14)
        self._period = self._dash * rng.uniform(1.8, 2.5)
        self._dist = rng.uniform(10.0, 16.0) if self.style == 'grass' else rng.uniform(2.5, 6.0)
        self._yellow = (float(rng.uniform(225, 250)), float(rng.uniform(180, 210)),
                        float(rng.uniform(20, 60)))
        self._white = tuple(float(v) for v in rng.uniform(222, 245) + rng.uniform(-4, 4, 3))
        self._lane = self.road_width / 4 + rng.uniform(-0.02, 0.02)
        wob = config.wobble_m
        self._wob = (rng.uniform(0.4, 1.0) * wob, rng.uniform(2.0, 5.0), rng.uniform(0, 6.3),
                     rng.uniform(0.2, 0.5) * wob, rng.uniform(0.7, 1.6), rng.uniform(0, 6.3),
                     rng.uniform(0.005, 0.02), rng.uniform(1.0, 3.0), rng.uniform(0, 6.3))
        temp = rng.uniform(-1.0, 1.0)
        gain = rng.uniform(*config.lighting_gain)
        tint = np.asarray([1 + 0.07 * temp, 1.0, 1 - 0.08 * temp, 0.0], np.float32)
        tint *= np.float32(gain)
        self._vig_gain = geo.vignette[..., None] * tint
        self._track = Track(self.seed, config.curve_radius_m)
        self._props = Props(self.seed, self._track, self.road_width, config.prop_density_per_m)
        self._tex = make_ground(self.style, [self.seed, 8])
        self._noise: F32 | None = None
        self._shadow = (self._tex.off_mean * 0.55).tolist()
        self._setup_backdrop(np.random.default_rng([self.seed, 9]))
        self._setup_bands()

    def _setup_backdrop(self, rng: np.random.Generator) -> None:
        geo, cam, d = self._geo, self._geo.cam, self._dist
        below = geo.z <= d
        self._vw = int(np.argmax(below)) if below.any() else self.config.height
        self._wp = max(16, int(round(2 * math.pi * cam.f)))
        rise = geo.rise[:self._vw]
        height = cam.height + d * rise
        top = float(height.max()) + 0.1 if self._vw else 1.0
        ppm = self._wp / (2 * math.pi * d)
        pano = make_backdrop(self.style, rng, self._wp, ppm, top, cam.height, d)
        self._pano = cv2.cvtColor(pano, cv2.COLOR_RGB2RGBA)
        hp = self._pano.shape[0]
        self._map_y = np.clip((top - height) * ppm - 0.5, 0, hp - 1).astype(np.float32)
        self._map_x = (geo.azimuth[:self._vw] * (self._wp / (2 * math.pi))).astype(np.float32)

    def _setup_bands(self) -> None:
        geo, vw, h = self._geo, self._vw, self.config.height
        foot = np.sqrt(geo.pix_x[vw:] * geo.pix_z[vw:]) / TEXEL_M
        level = np.digitize(foot, [2.0, 4.0, 8.0, 16.0])
        self._bands: list[tuple[int, int, int]] = []
        start = vw
        for r in range(vw + 1, h + 1):
            if r == h or level[r - vw] != level[start - vw]:
                self._bands.append((start - vw, r - vw, int(level[start - vw])))
                start = r
        self._inv_pix = (1.0 / geo.pix_x[vw:]).astype(np.float32)[:, None]
        self._half_pix = (geo.pix_x[vw:] / 2).astype(np.float32)[:, None]

    def _wobble(self, s: float) -> tuple[float, float]:
        a1, l1, p1, a2, l2, p2, b, m, q = self._wob
        w1, w2 = 2 * math.pi / l1, 2 * math.pi / l2
        e = self._lane + a1 * math.sin(w1 * s + p1) + a2 * math.sin(w2 * s + p2)
        de = a1 * w1 * math.cos(w1 * s + p1) + a2 * w2 * math.cos(w2 * s + p2)
        return e, math.atan(de) + b * math.sin(2 * math.pi * s / m + q)

    def _road_rows(self, s0: float, car: tuple[float, float, float]) -> tuple[F32, ...]:
        """Per ground row: road centre offset, cos/sin of road angle, dash coverage."""
        head, cx, cy = car
        s, th, x, y = self._track.window(s0 - 0.3, s0 + self._dist * 1.3 + 0.5)
        dx, dy = x - cx, y - cy
        ch, sh = math.cos(head), math.sin(head)
        zk, xk = dx * ch + dy * sh, dx * sh - dy * ch
        stop = np.flatnonzero(np.diff(zk) <= 0)
        n = int(stop[0]) + 1 if stop.size else zk.size
        zr = self._geo.z[self._vw:]
        centre = np.interp(zr, zk[:n], xk[:n])
        centre[zr > zk[n - 1]] = 1e3
        phi = np.interp(zr, zk[:n], th[:n] - head)
        arc = np.interp(zr, zk[:n], s[:n])
        m = arc % self._period
        pz = np.maximum(self._geo.pix_z[self._vw:], 1e-6)
        dash = np.clip(np.minimum(m, self._dash - m) / pz + 0.5, 0, 1)
        dash = np.where(pz > self._period / 2, self._dash / self._period, dash)
        return tuple(a.astype(np.float32)[:, None]
                     for a in (centre, np.cos(phi), np.sin(phi), dash))

    def _ground(self, s0: float, car: tuple[float, float, float]) -> F32:
        head, cx, cy = car
        centre, cphi, _, dash = self._road_rows(s0, car)
        xg = self._geo.x[self._vw:]
        a = np.abs((xg - centre) * cphi)
        lo_a, hi_a = a - self._half_pix, a + self._half_pix
        half = self.road_width / 2
        road = _cover(lo_a, hi_a, half, self._inv_pix)
        edge = road - _cover(lo_a, hi_a, half - self._edge_w, self._inv_pix)
        mid = _cover(lo_a, hi_a, self._centre_w / 2, self._inv_pix) * dash
        ch, sh = math.cos(head), math.sin(head)
        zr = self._geo.z[self._vw:]
        row_x = ((cx + zr * ch) / TEXEL_M % TEX_N).astype(np.float32)[:, None]
        row_y = ((cy + zr * sh) / TEXEL_M % TEX_N).astype(np.float32)[:, None]
        map_x = xg * np.float32(sh / TEXEL_M) + row_x
        map_y = row_y - xg * np.float32(ch / TEXEL_M)
        off = np.empty(xg.shape + (4,), np.float32)
        surf = np.empty(xg.shape + (4,), np.float32)
        tex = self._tex
        for r0, r1, lev in self._bands:
            if lev < 4:
                mx, my = map_x[r0:r1], map_y[r0:r1]
                if lev:
                    mx, my = mx * np.float32(0.5 ** lev), my * np.float32(0.5 ** lev)
                off[r0:r1] = cv2.remap(tex.off[lev], mx, my, cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_WRAP)
                surf[r0:r1] = cv2.remap(tex.road[lev], mx, my, cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_WRAP)
            else:
                off[r0:r1], surf[r0:r1] = tex.off_mean, tex.road_mean
        # all arithmetic on same-shape 4-channel arrays (flat loops; broadcasting a mask over a
        # trailing channel axis is ten times slower)
        paint = cv2.extractChannel(surf, 3) * np.float32(1 / PAINT_SCALE)
        surf -= off
        surf *= cv2.merge((road, road, road, road))
        out = off + surf
        keep = 1.0 - edge - mid
        out *= cv2.merge((keep, keep, keep, keep))
        edge *= paint
        mid *= paint
        wr, wg, wb = self._white
        yr, yg, yb = self._yellow
        out += cv2.merge((edge * wr + mid * yr, edge * wg + mid * yg, edge * wb + mid * yb,
                          np.zeros_like(keep)))
        return out

    def render(self, index: int) -> NDArray[np.uint8]:
        """Frame ``index`` (>= 0) of this world's drive: RGB uint8 (height, width, 3)."""
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
            raise ConfigError(f'frame index must be a non-negative int, got {index!r}')
        cfg = self.config
        s0 = int(index) * cfg.speed_mps / cfg.fps
        e, psi = self._wobble(s0)
        th, x, y = self._track.pose(s0)
        car = (th + psi, x + e * math.sin(th), y - e * math.cos(th))
        img = np.empty((cfg.height, cfg.width, 4), np.float32)
        if self._vw:
            shift = np.float32(car[0] * self._wp / (2 * math.pi) % self._wp)
            img[:self._vw] = cv2.remap(self._pano, self._map_x - shift, self._map_y,
                                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        if self._vw < cfg.height:
            img[self._vw:] = self._ground(s0, car)
        near = self._props.near(s0, s0 + self._dist * 1.3)
        draw_props(img, self._geo.cam, self._props, near, car, self._dist, self._shadow)
        if cfg.softness_px > 0:
            img = cv2.GaussianBlur(img, (0, 0), cfg.softness_px * math.sqrt(cfg.width / 160))
        img *= self._vig_gain
        img += self._noise_frame(int(index))
        np.clip(img, 0, 255, out=img)
        return cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGBA2RGB)

    def _noise_frame(self, index: int) -> F32:
        if self._noise is None:
            rng = np.random.default_rng([self.seed, 10])
            shape = (4, self.config.height, self.config.width, 4)
            noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(
                self.config.sensor_noise)
            self._noise = noise + np.float32(0.5)     # + 0.5: round instead of truncate
        return self._noise[index % 4]

    def frames(self, n: int, start: int = 0) -> Iterator[NDArray[np.uint8]]:
        """Yield frames ``start .. start + n - 1`` of the drive (a coherent sequence)."""
        for name, value in (('n', n), ('start', start)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f'{name} must be a non-negative int, got {value!r}')
        for i in range(int(start), int(start) + int(n)):
            yield self.render(i)


def render_sequence(seed: int, n: int, config: SceneConfig = SceneConfig()) -> NDArray[np.uint8]:
    """Render frames 0 .. n-1 of world ``seed`` as one (n, height, width, 3) uint8 array."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ConfigError(f'n must be a non-negative int, got {n!r}')
    scene = RoadScene(seed, config)
    out = np.empty((int(n), config.height, config.width, 3), np.uint8)
    for i, frame in enumerate(scene.frames(int(n))):
        out[i] = frame
    return out
