"""Private props of :mod:`vae_ood_monitor.data.scenes`: cones, boxes, posts, furniture blocks.

Props stand beside the road at world positions drawn per track chunk from their own
generator (so they do not depend on the order frames are rendered in). Each is a vertical
prism or frustum, projected through the camera every frame and drawn far to near with a soft
contact shadow and simple directional shading, so it grows and passes as the robot drives.
Nothing here is public API.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from vae_ood_monitor.data.scenes_road import Camera, CHUNK_M, Track

__all__ = ['Props', 'draw_props']

F64 = NDArray[np.float64]
_KINDS = ('cone', 'box', 'post', 'block')
_SHARE = (0.35, 0.3, 0.15, 0.2)
_COL = {'cone': ((240, 100, 20), (235, 70, 30)),
        'box': ((175, 130, 85), (150, 115, 80), (60, 100, 170), (200, 60, 50), (225, 225, 220)),
        'post': ((90, 90, 95), (200, 180, 40), (230, 230, 230)),
        'block': ((150, 110, 70), (225, 225, 222), (70, 72, 78), (170, 150, 120))}
_WHITE = np.array([235.0, 235.0, 230.0, 0.0])


class _Prop:
    """One prop: world pose plus local geometry prepared for fast per-frame drawing."""

    __slots__ = ('x', 'y', 'yaw', 'reach', 'size', 'k', 'pts', 'hts', 'quads', 'normals', 'nm',
                 'cols', 'tops')

    def __init__(self, x: float, y: float, yaw: float, kind: str, hx: float, hz: float,
                 height: float, col: F64) -> None:
        self.x, self.y, self.yaw = x, y, yaw
        self.reach = max(hx, hz) * 1.5
        self.size = max(height, 2 * max(hx, hz))
        if kind == 'cone':
            t = np.linspace(0, 2 * np.pi, 11)[:-1]
            ring = np.stack([hx * np.cos(t), hz * np.sin(t)], axis=1)
            parts = [(0.0, height, 1.0, 0.15, col, False),
                     (0.4 * height, 0.6 * height, 0.665, 0.495, _WHITE, False)]
        else:
            ring = np.array([[hx, hz], [-hx, hz], [-hx, -hz], [hx, -hz]], float)
            parts = [(0.0, height, 1.0, 1.0, col, True)]
        k = self.k = len(ring)
        nxt = np.roll(np.arange(k), -1)
        edge = ring[nxt] - ring
        normal = np.stack([edge[:, 1], -edge[:, 0]], axis=1)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        mid = (ring + ring[nxt]) / 2
        normal *= np.sign(np.einsum('ij,ij->i', normal, mid))[:, None]
        pts, hts, quads, cols, tops = [ring * 1.4], [np.zeros(k)], [], [], []
        for j, (y0, y1, s0, s1, c, top) in enumerate(parts):
            lo, hi = k * (1 + 2 * j), k * (2 + 2 * j)
            pts += [ring * s0, ring * s1]
            hts += [np.full(k, y0), np.full(k, y1)]
            quads.append(np.stack([lo + np.arange(k), lo + nxt, hi + nxt, hi + np.arange(k)], 1))
            cols.append(np.repeat(c[None, :], k, axis=0))
            if top:
                tops.append((np.arange(hi, hi + k), y1, (c * 1.05).tolist()))
        self.pts, self.hts = np.concatenate(pts), np.concatenate(hts)
        self.quads = np.concatenate(quads)
        self.normals = np.tile(normal, (len(parts), 1))
        self.nm = np.tile(np.einsum('ij,ij->i', normal, mid), len(parts))
        self.cols = np.concatenate(cols)
        self.tops = tops


class Props:
    """Distractor objects beside the road, generated per track chunk."""

    def __init__(self, seed: int, track: Track, road_width: float, density: float) -> None:
        self._seed, self._track, self._w, self._density = seed, track, road_width, density
        self._chunks: dict[int, list[_Prop]] = {}
        ang = np.random.default_rng([seed, 13]).uniform(0, 2 * math.pi)
        self.light = (math.cos(ang), math.sin(ang))

    def _make(self, c: int) -> list[_Prop]:
        rng = np.random.default_rng([self._seed, 12, c])
        out = []
        for _ in range(int(rng.poisson(self._density * CHUNK_M))):
            s = (c + rng.random()) * CHUNK_M
            kind = _KINDS[int(rng.choice(4, p=_SHARE))]
            if kind == 'cone':
                hx = hz = rng.uniform(0.035, 0.07)
                height, gap = hx * rng.uniform(3.0, 4.0), rng.uniform(0.03, 0.5)
            elif kind == 'box':
                hx, hz = rng.uniform(0.05, 0.16, 2)
                height, gap = rng.uniform(0.06, 0.3), rng.uniform(0.05, 0.6)
            elif kind == 'post':
                hx = hz = rng.uniform(0.012, 0.03)
                height, gap = rng.uniform(0.3, 0.9), rng.uniform(0.04, 0.5)
            else:
                hx, hz = rng.uniform(0.15, 0.45), rng.uniform(0.12, 0.3)
                height, gap = rng.uniform(0.25, 0.6), rng.uniform(0.3, 1.2)
            pal = _COL[kind]
            col = np.asarray(pal[int(rng.integers(len(pal)))], float) * rng.uniform(0.85, 1.1)
            side = 1.0 if rng.random() < 0.5 else -1.0
            yaw_j = rng.uniform(-0.5, 0.5)
            th, x, y = self._track.pose(s)
            d = side * (self._w / 2 + gap + max(hx, hz))
            out.append(_Prop(x + d * math.sin(th), y - d * math.cos(th), th + yaw_j, kind,
                             hx, hz, height, np.append(np.clip(col, 0, 255), 0.0)))
        return out

    def near(self, s0: float, s1: float) -> list[_Prop]:
        """Props generated for the chunks overlapping [s0 - 1 m, s1]."""
        out: list[_Prop] = []
        for c in range(max(0, int((s0 - 1.0) // CHUNK_M)), int(s1 // CHUNK_M) + 1):
            if c not in self._chunks:
                self._chunks[c] = self._make(c)
            out.extend(self._chunks[c])
        return out


def draw_props(img: NDArray[np.float32], cam: Camera, props: Props, near: list[_Prop],
               car: tuple[float, float, float], z_max: float, shadow: list[float]) -> None:
    """Draw the props visible from ``car`` = (heading, x, y), far to near, into ``img``."""
    head, cxw, cyw = car
    ch, sh = math.cos(head), math.sin(head)
    todo = []
    for p in near:
        dx, dy = p.x - cxw, p.y - cyw
        z, x = dx * ch + dy * sh, dx * sh - dy * ch
        if (z - p.reach < 0.08 or z > z_max or abs(x) - p.reach > z * cam.cx / cam.f + 0.05
                or cam.f * p.size < 1.2 * z):
            continue
        todo.append((z, x, p))
    lxw, lyw = props.light
    lx, lz = lxw * sh - lyw * ch, lxw * ch + lyw * sh
    for z, x, p in sorted(todo, key=lambda t: -t[0]):
        yaw = p.yaw - head
        c, s = math.cos(yaw), math.sin(yaw)
        loc = p.pts
        u, v, zc = cam.project(x + loc[:, 0] * c - loc[:, 1] * s, p.hts,
                               z + loc[:, 0] * s + loc[:, 1] * c)
        if zc.min() < 0.02:
            continue
        pts = np.empty((len(u), 2), np.int32)
        pts[:, 0] = np.round(u * 16)
        pts[:, 1] = np.round(v * 16)
        nrm = p.normals
        seen = (nrm[:, 0] * (c * x + s * z) + nrm[:, 1] * (c * z - s * x) + p.nm) < 0
        lit = nrm[:, 0] * (lx * c + lz * s) + nrm[:, 1] * (lz * c - lx * s)
        bright = 0.55 + 0.4 * np.clip(lit, 0, 1)
        cv2.fillConvexPoly(img, pts[:p.k], shadow, cv2.LINE_AA, 4)
        cols = (p.cols * bright[:, None]).tolist()
        for i in np.flatnonzero(seen):
            cv2.fillConvexPoly(img, pts[p.quads[i]], cols[i], cv2.LINE_AA, 4)
        for idx, y1, col in p.tops:
            if y1 < cam.height:
                cv2.fillConvexPoly(img, pts[idx], col, cv2.LINE_AA, 4)
