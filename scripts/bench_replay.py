#!/usr/bin/env python3
"""Compare bag replay throughput with ``vae-ood bench`` on the same model and frame size.

Builds a 640x480 rgb8 bag of synthetic frames with the bag maker, then, each in its own
spawned process with one inference thread (as ``vae-ood bench --threads 1``), times the full
Monitor path on in-memory messages (evaluate.bench) and a replay of the bag that also writes
the output bag (read + deserialise + Monitor + write). Prints both frames/s and their ratio.

The ratio depends on the model: replay adds a roughly fixed cost per frame (reading ~1 MB,
writing ~5 small messages), so with a tiny model the fixed costs dominate and the ratio drops;
with a real encoder it approaches 1 (the demo's bundles, work/demo/model.vood and
work/demo/lean.vood, are representative).

Replay's figure includes its fixed costs (opening the bag, writing the output's metadata), so
longer bags (``--frames 1200 --distinct 100``) show the steady state.

Usage: ``python scripts/bench_replay.py MODEL.vood [--frames 300] [--distinct N]
[--size 640x480] [--repeat 2] [--storage mcap]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
from pathlib import Path
import sys
import tempfile
import time
from typing import Any


def _replay_child(bag: str, model: str, out: str, storage: str, queue: Any) -> None:
    import cv2

    from vae_ood_monitor.core.monitor import MonitorConfig
    from vae_ood_monitor.core.session import SessionConfig
    from vae_ood_monitor.core.typedefs import DecisionMode
    from vae_ood_monitor.replay.replay import replay_bag, ReplayConfig

    cv2.setNumThreads(1)
    try:
        config = ReplayConfig(monitor=MonitorConfig(decision=DecisionMode.THRESHOLD,
                                                    session=SessionConfig(threads=1)),
                              out=Path(out), storage=storage, force=True)
        started = time.perf_counter()
        result = replay_bag(bag, model, config)
        total = time.perf_counter() - started
        queue.put(('ok', result.processed, result.wall_s, total))
    except Exception as err:  # noqa: B902 - reported by the parent
        queue.put(('error', f'{type(err).__name__}: {err}', 0.0, 0.0))


def replay_fps(bag: Path, model: Path, out: Path, storage: str) -> tuple[float, float]:
    """Frames/s of the replay loop, and of the whole call (bag open and model load included)."""
    context = multiprocessing.get_context('spawn')
    queue = context.Queue()
    saved = os.environ.get('OMP_NUM_THREADS')
    os.environ['OMP_NUM_THREADS'] = '1'
    try:
        child = context.Process(target=_replay_child,
                                args=(str(bag), str(model), str(out), storage, queue))
        child.start()
        status, processed, wall, total = queue.get()
        child.join()
    finally:
        if saved is None:
            os.environ.pop('OMP_NUM_THREADS', None)
        else:
            os.environ['OMP_NUM_THREADS'] = saved
    if status != 'ok':
        raise SystemExit(f'replay failed: {processed}')
    return processed / wall, processed / total


def main() -> int:
    from vae_ood_monitor.cli.common import parse_size, progress
    from vae_ood_monitor.evaluate.bench import bench_models, BenchConfig
    from vae_ood_monitor.data.sources import Frame
    from vae_ood_monitor.replay.bagmaker import BagSpec, make_bag, synth_frames, SynthSpec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('model', type=Path,
                        help='calibrated bundle (.vood), e.g. work/demo/lean.vood')
    parser.add_argument('--frames', type=int, default=300, help='frames in the bag')
    parser.add_argument('--distinct', type=int, default=None,
                        help='render only this many distinct frames and repeat them (faster '
                        'for long bags; default: all distinct)')
    parser.add_argument('--size', type=parse_size, default=(640, 480), metavar='WxH')
    parser.add_argument('--repeat', type=int, default=2,
                        help='alternate bench and replay this often; report the best of each')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    args = parser.parse_args()
    width, height = args.size
    with tempfile.TemporaryDirectory(prefix='bench_replay-') as tmp:
        work = Path(tmp)
        model = args.model
        started = time.perf_counter()
        distinct = synth_frames(SynthSpec(None, 'id', min(args.distinct or args.frames,
                                                          args.frames), 7), (width, height))
        frames = [Frame(distinct[i % len(distinct)].image, i * 50_000_000, i)
                  for i in range(args.frames)]
        made = make_bag(frames, work / 'bag', BagSpec(topic='/camera/image_raw',
                                                      storage=args.storage), progress=progress)
        size_mb = sum(p.stat().st_size for p in made.path.iterdir()) / 2**20
        print(f'bag: {made.count} frames {width}x{height} rgb8, {size_mb:.0f} MiB '
              f'({args.storage}), built in {time.perf_counter() - started:.1f} s')
        config = BenchConfig(width=width, height=height, encoding='rgb8', threads=1,
                             frames=max(10, args.frames), warmup=30)
        bench, loop, whole = 0.0, 0.0, 0.0
        for _ in range(max(1, args.repeat)):
            bench = max(bench, bench_models([(str(model), None)], config)[0].fps)
            fps = replay_fps(made.path, model, work / 'out', args.storage)
            loop, whole = max(loop, fps[0]), max(whole, fps[1])
        print(f'vae-ood bench (full path, in-memory messages): {bench:8.1f} frames/s')
        print(f'vae-ood replay (read + monitor + write):      {loop:8.1f} frames/s')
        print(f'  including bag open and model load:          {whole:8.1f} frames/s')
        print(f'ratio replay / bench: {loop / bench:.2f} (target >= 0.75)')
        print(f'cpus: {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
