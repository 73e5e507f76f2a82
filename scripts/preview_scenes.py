#!/usr/bin/env python3
"""Write a PNG contact sheet of synthetic road frames and OOD shifts for a person to inspect.

Rows 1-4: four worlds (seeds), six frames each, 2 s apart. Then one row per shift kind:
three frames at a train-range severity, three at a test-range severity.

Usage: ``python scripts/preview_scenes.py [--out /tmp/scenes_preview.png] [--seed 0]
[--scale 2] [--width 160 --height 120]``
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from vae_ood_monitor.data.scenes import RoadScene, SceneConfig
from vae_ood_monitor.data.shifts import sample_severity, ShiftKind, ShiftProcess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='/tmp/scenes_preview.png')
    parser.add_argument('--seed', type=int, default=0, help='first world seed')
    parser.add_argument('--scale', type=int, default=2, help='nearest-neighbour upscale')
    parser.add_argument('--width', type=int, default=160)
    parser.add_argument('--height', type=int, default=120)
    args = parser.parse_args()
    cfg = SceneConfig(width=args.width, height=args.height)
    rows, labels = [], []
    for seed in range(args.seed, args.seed + 4):
        scene = RoadScene(seed, cfg)
        rows.append([scene.render(i) for i in range(0, 240, 40)])
        labels.append(f'seed {seed}: {scene.style}')
    rng = np.random.default_rng(args.seed)
    base = [RoadScene(args.seed + 4 + i, cfg).render(30 * i) for i in range(6)]
    for kind in ShiftKind:
        row, sevs = [], []
        for i, frame in enumerate(base):
            split = 'train' if i < 3 else 'test'
            sev = sample_severity(kind, split, rng)
            row.append(ShiftProcess(kind, sev, seed=i)(frame, 0))
            sevs.append(f'{sev:.2f}')
        rows.append(row)
        labels.append(f'{kind.value}: train {" ".join(sevs[:3])} | test {" ".join(sevs[3:])}')
    sheet = np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)
    sheet = cv2.resize(sheet, None, fx=args.scale, fy=args.scale,
                       interpolation=cv2.INTER_NEAREST)
    step = args.height * args.scale
    for i, text in enumerate(labels):
        for col, th in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(sheet, text, (6, i * step + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, col,
                        th, cv2.LINE_AA)
    cv2.imwrite(args.out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f'wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})')


if __name__ == '__main__':
    main()
