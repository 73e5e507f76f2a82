"""Motion anomalies: a flow detector beside a frame detector, frame by frame and as sequences.

Trains the ``flow`` preset (stacks of Farneback fields at 80x60) on in-distribution drives,
calibrates its default alert on held-out drives, and evaluates it with a frame bundle beside it
on held-out drives carrying each motion anomaly (shake, frozen, speed, reverse, drop):
frame-level AUROC with every drive shifted throughout, and the sequential decision (the real
Monitor, frame by frame) with the anomaly from the middle of each drive on.

Synthetic (default): the demo's data folder (``--data work/demo/data``: train, calib, test) or,
without it, a fresh small set of generated drives. Real frames (``--donkeycar``): tubs 5 and 6
of ../shared/data/donkeycar_mat_track in 100-frame stretches, 3 of 5 for training, 1 for
calibration, 1 for test (evaluation only: the frames never leave ../shared).

    python scripts/eval_motion.py [--data DIR | --donkeycar [PATH]] [--frame-bundle MODEL]
        [--compress CANDIDATE] [--out DIR]

``--compress`` also distils that compression candidate from the flow teacher, evaluates it the
same way and times both with the bench (640x480 rgb8, 1 thread).
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

ROOT = Path(__file__).resolve().parents[1]
DONKEYCAR = ROOT.parent / 'shared' / 'data' / 'donkeycar_mat_track'


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from vae_ood_monitor.cli.cmd_data import synthesize
    from vae_ood_monitor.data.dataset import load_frames, split_stretches
    from vae_ood_monitor.data.sources import TubSource

    if args.donkeycar is not None:
        tubs = [args.donkeycar / f'tub_{n}_24-04-23' for n in (5, 6)]
        if not all(t.is_dir() for t in tubs):
            raise SystemExit(f'{args.donkeycar} has no tubs 5 and 6: the real frames live in '
                             '../shared (evaluation only).')
        frames = load_frames([TubSource(tubs[0], skip_first=6), TubSource(tubs[1])], 120, 160)
        return split_stretches(frames)
    data = args.data
    if data is None:
        data = args.out / 'data'
        for name, drives, seed in (('train', 40, 0), ('calib', 16, 10_000)):
            if not (data / name).is_dir():
                synthesize(data / name, sequences=drives, frames=100, size=(160, 120),
                           seed=seed, shift=None, severity='test', mode='id', force=False)
    test = data / 'test'
    if args.test_frames or not test.is_dir():  # long drives: the sequences need OOD frames
        test = args.out / f'test_{args.test_frames or 200}'
        if not test.is_dir():
            synthesize(test, sequences=args.test_drives, frames=args.test_frames or 200,
                       size=(160, 120), seed=30_000, shift=None, severity='test', mode='id',
                       force=False)
    paths = (data / 'train', data / 'calib', test)
    return tuple(load_frames([path], 120, 160) for path in paths)


def main(argv: list[str] | None = None) -> int:
    """Train, calibrate and evaluate; print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', type=Path, default=None,
                        help='folder with train, calib and test frame folders (synthetic)')
    parser.add_argument('--donkeycar', type=Path, nargs='?', const=DONKEYCAR, default=None,
                        help='real frames instead: tubs 5 and 6 of the donkeycar data')
    parser.add_argument('--frame-bundle', type=Path, default=None,
                        help="a calibrated frame bundle to compare with (e.g. the demo's)")
    parser.add_argument('--out', type=Path, default=ROOT / 'work' / 'motion')
    parser.add_argument('--epochs', type=int, default=None, help="default: the preset's")
    parser.add_argument('--stack', type=int, default=None, help='flow fields per input')
    parser.add_argument('--compress', default=None, metavar='CANDIDATE',
                        help='also distil this candidate (e.g. student-w0.5-int8) and compare')
    parser.add_argument('--test-frames', type=int, default=None,
                        help='synthetic: generate test drives this long (default: DATA/test, '
                        'or 200-frame drives without --data)')
    parser.add_argument('--test-drives', type=int, default=20, help='synthetic test drives')
    parser.add_argument('--run', type=Path, default=None,
                        help='reuse this finished flow training run instead of training')
    parser.add_argument('--partitions', nargs='+', default=None,
                        help='the flow alert to calibrate (default: the default alert)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    from vae_ood_monitor.core.bundle import load_bundle, save_bundle
    from vae_ood_monitor.core.flow import FlowSpec
    from vae_ood_monitor.data.flowdata import flow_frames
    from vae_ood_monitor.evaluate.calibration import calibrate, CalibrationOptions
    from vae_ood_monitor.evaluate.motion_eval import (evaluate_motion, MOTION_KINDS, motion_frames,
                                                      motion_sequences)
    from vae_ood_monitor.train.export import bundle_from_run
    from vae_ood_monitor.train.trainer import train, TrainConfig

    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    train_set, calib_set, test_set = _load(args)
    config = TrainConfig(preset='flow', epochs=args.epochs, seed=args.seed,
                         flow=FlowSpec(stack=args.stack) if args.stack else None)
    preset = config.get_preset()
    height, width = preset.encoder.input_hw
    small = {name: part.resized(height, width) for name, part in
             (('train', train_set), ('calib', calib_set))}
    stacks = {name: flow_frames(part, preset.flow) for name, part in small.items()}
    print(f'frames train/calib/test {len(train_set)}/{len(calib_set)}/{len(test_set)}; flow '
          f'stacks train/calib {len(stacks["train"])}/{len(stacks["calib"])}', flush=True)
    run = args.run or args.out / 'flow_run'
    if args.run is None:
        train(stacks['train'], run, config, force=True)
    teacher = bundle_from_run(run, name='flow')
    chosen = {'partitions': tuple(args.partitions)} if args.partitions else {}
    options = CalibrationOptions(seed=args.seed, **chosen)
    teacher, _ = calibrate(teacher, stacks['calib'], options, log=lambda t: print('   ', t))
    bundles = {'flow': save_bundle(teacher, args.out / 'flow.vood', force=True)}
    if args.compress:
        from vae_ood_monitor.train.distill import DistillConfig
        from vae_ood_monitor.train.runs import load_run
        from vae_ood_monitor.train.search import build_candidate, select_grid

        (recipe,) = select_grid('cpu', [args.compress])
        _, model = load_run(run)
        lean, _ = build_candidate(recipe, model, stacks['train'], stacks['calib'],
                                  DistillConfig(seed=args.seed, augment=()),
                                  teacher_provenance=teacher.manifest.provenance,
                                  flow=teacher.manifest.flow)
        lean, _ = calibrate(lean, stacks['calib'], options)
        bundles['flow lean'] = save_bundle(lean, args.out / 'flow_lean.vood', force=True)
    if args.frame_bundle is not None:
        bundles['frame'] = args.frame_bundle
    shifted = {kind: motion_frames(test_set, kind, args.seed) for kind in MOTION_KINDS}
    rows: dict[str, dict[str, str]] = {}
    for label, path in bundles.items():
        bundle = load_bundle(path)
        evaluation = evaluate_motion(bundle, test_set, shifted)
        sequences = motion_sequences(bundle, test_set, MOTION_KINDS, args.seed)
        for kind in MOTION_KINDS:
            rows.setdefault(kind, {})[label] = (f'{evaluation.auroc(kind):.3f} | '
                                                f'{sequences[kind].describe()}')
        print(f'evaluated {label}', flush=True)
    labels = list(bundles)
    cells = ' | '.join(f'{b} AUROC | {b} sequences (m2)' for b in labels)
    print(f'\n| motion anomaly | {cells} |')
    print('|---|' + '---|---|' * len(labels))
    for kind in MOTION_KINDS:
        print(f'| {kind} | ' + ' | '.join(rows[kind][b] for b in labels) + ' |')
    if args.compress:
        from vae_ood_monitor.evaluate.bench import bench_models, BenchConfig

        timed = bench_models([(str(bundles['flow']), None), (str(bundles['flow lean']), None)],
                             BenchConfig(frames=500, warmup=30, threads=1))
        print('\n| bundle | preprocess | flow | inference | scoring | total ms |')
        print('|---|---|---|---|---|---|')
        for label, result in zip(('flow', 'flow lean'), timed):
            m = result.median_ms
            print(f'| {label} | {m["preprocess"]:.3f} | {m["flow"]:.3f} | '
                  f'{m["inference"]:.3f} | {m["scoring"]:.3f} | {m["total"]:.3f} |')
        ratio = timed[0].median_ms['inference'] / timed[1].median_ms['inference']
        print(f'inference: lean {ratio:.1f}x faster than its teacher')
    print(f'\n{time.monotonic() - started:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
