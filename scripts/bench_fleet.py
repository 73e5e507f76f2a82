"""Fleet replay throughput: the same bags replayed serially, by N worker processes and on Ray.

    python scripts/bench_fleet.py MODEL [--bags 8] [--frames 150] [--size 640x480]
        [--workers 2] [--ray]

Writes ``--bags`` synthetic drives of ``--frames`` rgb8 frames into a temporary folder (not
timed), replays them with ``vae-ood replay``'s fleet code one bag at a time, then with
``--workers`` processes (and, with ``--ray``, on a local Ray instance with that many CPUs), and
prints wall time, frames per second and the speed-up over one worker, measured side by side in
one run. The per-bag rows must agree between the modes (checked).
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code."""
    from vae_ood_monitor.replay.bagmaker import BagSpec, make_bag
    from vae_ood_monitor.replay.fleet import find_bags, run_fleet

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model', type=Path, help='calibrated bundle (.vood)')
    parser.add_argument('--bags', type=int, default=8)
    parser.add_argument('--frames', type=int, default=150)
    parser.add_argument('--size', default='640x480', help='WxH of the frames')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--ray', action='store_true', help='also on a local Ray instance')
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split('x'))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shifts = ['none:id', 'fog:m3', 'rain:m2', 'none:id']
        for number in range(args.bags):
            make_bag(f'synth:{shifts[number % len(shifts)]}:{args.frames}:{number}',
                     root / 'bags' / f'drive_{number:03d}',
                     BagSpec(topic='/cam/image_raw', size=(width, height)))
        bags = find_bags([root / 'bags'])
        frames = args.bags * args.frames
        print(f'{args.bags} bags x {args.frames} frames ({width}x{height} rgb8), model '
              f'{args.model}')
        runs = [('serial (1 worker)', {}),
                (f'{args.workers} worker processes', {'workers': args.workers})]
        if args.ray:
            runs.append((f'Ray, local, {args.workers} CPUs', {'ray_address': 'local'}))
        results = []
        for name, options in runs:
            if 'ray_address' in options:
                import ray
                ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
            started = time.perf_counter()
            report = run_fleet(args.model, bags, root / name.split()[0], **options)
            wall = time.perf_counter() - started
            if 'ray_address' in options:
                ray.shutdown()
            results.append((name, wall, report.rows))
        base = results[0][1]
        print('| mode | wall s | frames/s | x serial |')
        print('|---|---|---|---|')
        for name, wall, _ in results:
            print(f'| {name} | {wall:.1f} | {frames / wall:.0f} | {base / wall:.2f}x |')
        same = all(rows == results[0][2] for _, _, rows in results)
        print('per-bag rows identical in every mode: ' + ('yes' if same else 'NO'))
        return 0 if same else 1


if __name__ == '__main__':
    sys.exit(main())
