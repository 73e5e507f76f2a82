"""Private renderers of the OOD shifts in :mod:`vae_ood_monitor.data.shifts`.

Every renderer has the signature ``(image, severity, key, index, direction) -> image``: the
input is an RGB uint8 (h, w, 3) array (never modified), severity is in (0, 1], ``key`` is a
tuple of ints from which the renderer derives its generators and ``index`` is the frame
number. Parameters that must persist over a sequence (lens dirt, drops on the lens, wind and
blur direction, snow flakes, objects) come from ``static(key)``; per-frame randomness (rain
streaks, sensor noise, blur jitter) from ``per_frame(key, index)``. Pixel sizes scale with
``min(h, w) / 120``, so a shift looks alike at every resolution. Nothing here is public API.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ['RENDERERS', 'brightness_direction', 'brightness_factor', 'per_frame', 'static']

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]
Key = tuple[int, ...]


def static(key: Key) -> np.random.Generator:
    return np.random.default_rng([*key, 0])


def per_frame(key: Key, index: int) -> np.random.Generator:
    return np.random.default_rng([*key, 1, index])


def _scale(img: U8) -> float:
    return min(img.shape[0], img.shape[1]) / 120.0


def _to_u8(img: F32) -> U8:
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _lerp(out: F32, target: F32 | tuple[float, ...], alpha: F32) -> F32:
    """Return out + alpha * (target - out) with a (h, w) alpha over 3 channels (in place)."""
    diff = (np.asarray(target, np.float32) - out) if isinstance(target, tuple) else target - out
    diff *= cv2.merge((alpha, alpha, alpha))
    out += diff
    return out


def _contrast(out: F32, loss: float) -> F32:
    """Pull every channel toward its mean by the fraction ``loss`` (in place)."""
    mean = np.asarray(cv2.mean(out)[:3], np.float32)
    out *= np.float32(1 - loss)
    out += mean * np.float32(loss)
    return out


def _blur(img: F32, sigma: float) -> F32:
    """Gaussian blur; wide ones run on a downsampled copy (same look, a fraction of the cost)."""
    h, w = img.shape[:2]
    f = int(min(sigma / 1.5, min(h, w) / 8))
    if f < 2:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    small = cv2.resize(img, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / f)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _rain(img: U8, s: float, key: Key, index: int, direction: int | None) -> U8:
    h, w = img.shape[:2]
    sc, st, fr = _scale(img), static(key), per_frame(key, index)
    out = _contrast(img.astype(np.float32), 0.3 * s)
    n = int(round(s * 420 * h * w / 19200 / max(sc, 0.25)))
    if n:
        ang = st.uniform(-0.35, 0.35) + fr.normal(0, 0.04, n)
        length = sc * fr.uniform(4, 12, n) * (0.7 + 0.6 * s)
        x0, y0 = fr.uniform(-0.1 * w, 1.1 * w, n), fr.uniform(-0.1 * h, h, n)
        seg = np.stack([np.stack([x0, y0], 1),
                        np.stack([x0 + length * np.sin(ang), y0 + length * np.cos(ang)], 1)], 1)
        seg = np.round(seg * 16).astype(np.int32)
        layer = np.zeros((h, w), np.float32)
        thick = max(1, int(round(sc)))
        cut = n * 4 // 5
        cv2.polylines(layer, seg[:cut], False, 1.0, thick, cv2.LINE_AA, 4)
        cv2.polylines(layer, seg[cut:], False, 1.0, thick + 1, cv2.LINE_AA, 4)
        layer = cv2.GaussianBlur(layer, (0, 0), 0.5 * sc)
        shade = float(st.uniform(195, 225))
        out = _lerp(out, (shade, shade + 3, shade + 8), np.minimum(layer * (0.2 + 0.45 * s), 0.85))
    drops = int(round(s * st.uniform(6, 14)))
    if drops:
        blur = _blur(out, 3 * sc) * np.float32(1.06) + np.float32(6)
        mask = np.zeros((h, w), np.float32)
        for _ in range(drops):
            r = sc * st.uniform(2.0, 6.0) * (0.6 + 0.6 * s)
            ctr = (int(st.uniform(0, w) * 16), int(st.uniform(0, h) * 16))
            axes = (int(r * 16), int(r * st.uniform(1.0, 1.5) * 16))
            cv2.ellipse(mask, ctr, axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA, 4)
        out = _lerp(out, blur, cv2.GaussianBlur(mask, (0, 0), 0.8 * sc))
    return _to_u8(out)


def brightness_factor(s: float, direction: int) -> float:
    """HSV value factor: 1.5 ** (s / 0.4) brighter or 2 ** (-s / 0.4) darker."""
    return 1.5 ** (s / 0.4) if direction > 0 else 2.0 ** (-s / 0.4)


def brightness_direction(key: Key) -> int:
    """Return the direction (+1 brighter, -1 darker) a brightness shift with ``key`` draws."""
    return 1 if static(key).random() < 0.5 else -1


def _brightness(img: U8, s: float, key: Key, index: int, direction: int | None) -> U8:
    if direction is None:
        direction = brightness_direction(key)
    factor = brightness_factor(s, direction)
    lut = np.clip(np.arange(256) * factor + 0.5, 0, 255).astype(np.uint8)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hsv[..., 2] = cv2.LUT(hsv[..., 2], lut)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _fog(img: U8, s: float, key: Key, index: int, direction: int | None) -> U8:
    h = img.shape[0]
    st = static(key)
    out = _contrast(img.astype(np.float32), 0.45 * s)
    if s > 0.05:
        out = _blur(out, 1.5 * s * _scale(img))
    grey = float(st.uniform(195, 225))
    up = (1.0 - (np.arange(h) + 0.5) / h) ** 0.8
    alpha = (s * (0.35 + 0.6 * up)).astype(np.float32)[:, None, None]
    out *= 1 - alpha      # (h, 1, 1) broadcasts over a contiguous (w, 3) run: fast
    out += alpha * np.asarray([grey, grey + 2, grey + 6], np.float32)
    return _to_u8(out)


def _flakes(w: int, h: int, n: int, sc: float, st: np.random.Generator, index: int,
            r_lo: float, r_hi: float, speed: float) -> tuple[NDArray[np.int32], NDArray]:
    """Short vertical segments (n, 2, 2) in 1/16 px and radii of flakes falling with index."""
    m = 4 * sc
    x0, y0 = st.uniform(0, w + 2 * m, n), st.uniform(0, h + 2 * m, n)
    vy = sc * speed * st.uniform(0.7, 1.3, n)
    vx = sc * st.normal(st.uniform(-0.6, 0.6), 0.3, n)
    phase = st.uniform(0, 2 * np.pi, n)
    x = (x0 + vx * index + sc * np.sin(0.15 * index + phase)) % (w + 2 * m) - m
    y = (y0 + vy * index) % (h + 2 * m) - m
    seg = np.stack([np.stack([x, y], 1), np.stack([x, y + 0.3 * speed * sc], 1)], 1)
    return np.round(seg * 16).astype(np.int32), sc * st.uniform(r_lo, r_hi, n)


def _snow(img: U8, s: float, key: Key, index: int, direction: int | None) -> U8:
    h, w = img.shape[:2]
    sc, st = _scale(img), static(key)
    out = _contrast(img.astype(np.float32), 0.2 * s)
    out *= np.float32(1 + 0.12 * s)
    out += np.float32(14 * s)
    if s > 0.1:
        out = _blur(out, 0.7 * s * sc)
    n = int(round(s * 0.016 * h * w / max(sc, 0.25) ** 2 * sc))
    layer = np.zeros((h, w), np.float32)
    near = np.zeros((h, w), np.float32)
    for dst, count, lo, hi, speed in ((layer, n * 7 // 10, 0.5, 1.3, 1.5),
                                      (near, n - n * 7 // 10, 1.2, 2.6, 4.0)):
        pts, rad = _flakes(w, h, count, sc, st, index, lo, hi, speed)
        rad = rad * (0.7 + 0.6 * s)
        for t in np.unique(np.maximum(1, np.round(2 * rad)).astype(int)):
            sel = np.round(2 * rad).astype(int).clip(1) == t
            cv2.polylines(dst, pts[sel], False, 1.0, int(t), cv2.LINE_AA, 4)
    layer = cv2.GaussianBlur(layer, (0, 0), 0.45 * sc)
    near = _blur(near, 1.2 * sc)
    alpha = np.minimum(np.maximum(layer * 1.3, near * 0.8), 1.0)
    return _to_u8(_lerp(out, (246.0, 247.0, 250.0), alpha))


def _line_kernel(length: float, ang: float) -> F32:
    """Normalised anti-aliased line kernel of ``length`` px at angle ``ang`` (size <= 11)."""
    k = int(math.ceil(length)) | 1
    kernel = np.zeros((k, k), np.float32)
    c, r = (k - 1) / 2, (length - 1) / 2
    p0 = (int(round((c - r * math.cos(ang)) * 16)), int(round((c - r * math.sin(ang)) * 16)))
    p1 = (int(round((c + r * math.cos(ang)) * 16)), int(round((c + r * math.sin(ang)) * 16)))
    cv2.line(kernel, p0, p1, 1.0, 1, cv2.LINE_AA, 4)
    if kernel.sum() <= 0:
        kernel[k // 2, k // 2] = 1.0
    return kernel / kernel.sum()


def _motion_blur(img: U8, s: float, key: Key, index: int, direction: int | None) -> U8:
    fr = per_frame(key, index)
    length = 1.0 + s * 0.13 * max(img.shape[:2]) * fr.uniform(0.9, 1.1)
    ang = static(key).uniform(0, np.pi) + fr.normal(0, 0.08)
    # a line of length L = a line of length L / 2**m convolved with m two-tap kernels; short
    # kernels keep cv2.filter2D on its direct path (it switches to a slow DFT above 11 x 11)
    base, stages = length, 0
    while base > 10:
        base, stages = base / 2, stages + 1
    out = cv2.filter2D(img.astype(np.float32), -1, _line_kernel(base, ang),
                       borderType=cv2.BORDER_REFLECT)
    h, w = img.shape[:2]
    for j in range(stages):
        half = base * 2 ** j / 2
        dx, dy = int(round(half * math.cos(ang))), int(round(half * math.sin(ang)))
        ax, ay = abs(dx), abs(dy)
        pad = cv2.copyMakeBorder(out, ay, ay, ax, ax, cv2.BORDER_REFLECT)
        out = pad[ay + dy:ay + dy + h, ax + dx:ax + dx + w] + pad[ay - dy:ay - dy + h,
                                                                  ax - dx:ax - dx + w]
        out *= np.float32(0.5)
    return _to_u8(out)


@functools.lru_cache(maxsize=1)
def _normal_table() -> F32:
    """65536 standard normal samples (a fixed table) indexed by random uint16 values."""
    return np.random.default_rng(20240611).standard_normal(65536).astype(np.float32)


def _noise(img: U8, s: float, key: Key, index: int, direction: int | None) -> U8:
    fr = per_frame(key, index)
    out = img.astype(np.float32)
    sigma = np.sqrt(np.float32((30 * s) ** 2) + np.float32((1.6 * s) ** 2) * out)
    idx = np.frombuffer(fr.bytes(2 * out.size), np.uint16).reshape(out.shape)
    sigma *= _normal_table()[idx]        # table look-up: 5x faster than drawing normals
    out += sigma
    p = 0.04 * s
    u = fr.random(img.shape[:2], dtype=np.float32)
    out[u < p / 2] = 255.0
    out[u > 1 - p / 2] = 0.0
    return _to_u8(out)


def _blob(mask: F32, st: np.random.Generator, ctr: tuple[float, float], radius: float,
          prof: NDArray[np.float64]) -> None:
    """Fill an irregular blob (radial profile ``prof``) of mean radius ``radius`` px."""
    t = np.linspace(0, 2 * np.pi, len(prof), endpoint=False)
    xs, ys = ctr[0] + radius * prof * np.cos(t), ctr[1] + radius * prof * np.sin(t)
    pts = np.round(np.stack([xs, ys], 1) * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1.0, cv2.LINE_AA, 4)


def _occlusion(img: U8, s: float, key: Key, index: int, direction: int | None) -> U8:
    h, w = img.shape[:2]
    st = static(key)
    k = 1 + int(s * 2.999)
    frac = 0.4 * s
    blobs = []
    for _ in range(k):
        raw = st.normal(0, 1, 24)
        prof = np.real(np.fft.ifft(np.fft.fft(raw) * (np.arange(24) % 20 < 4)))
        prof = 1.0 + 0.3 * prof / (np.abs(prof).max() + 1e-9)
        ctr = (st.uniform(0.1, 0.9) * w, st.uniform(0.1, 0.9) * h)
        blobs.append((ctr, prof * st.uniform(0.8, 1.2, 1), st.random() < 0.6,
                      st.uniform(25, 60), st.uniform(0.85, 0.97)))
    radius = math.sqrt(frac * h * w / k / math.pi)
    for _ in range(3):          # rescale until the union covers about frac of the image
        masks = []
        for ctr, prof, *_ in blobs:
            m = np.zeros((h, w), np.float32)
            _blob(m, st, ctr, radius, prof)
            masks.append(m)
        cover = float(np.maximum.reduce(masks).mean())
        if cover <= 0 or abs(cover - frac) < 0.1 * frac:
            break
        radius *= math.sqrt(frac / cover)
    out = img.astype(np.float32)
    smear = _blur(out, 0.05 * min(h, w) * (1 + s)) * np.float32(0.7)
    smear += np.float32(0.3 * 120)
    for m, (_, _, dirt, shade, opacity) in zip(masks, blobs):
        m = _blur(m, max(0.5, 0.12 * radius)) * np.float32(opacity)
        out = _lerp(out, (shade, shade * 0.9, shade * 0.75) if dirt else smear, m)
    return _to_u8(out)


RENDERERS: dict[str, Callable[[U8, float, Key, int, int | None], U8]] = {
    'brightness': _brightness, 'fog': _fog, 'motion_blur': _motion_blur, 'noise': _noise,
    'occlusion': _occlusion, 'rain': _rain, 'snow': _snow,
}
