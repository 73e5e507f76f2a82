"""Evaluate the whole pipeline on real camera frames: ../shared/data/donkeycar_mat_track.

Trains the default preset on tubs 5 and 6 (a small car on a dark mat track; frames 0-5 of
tub 5 show the car on a desk and are dropped), calibrates the default alert (or
``--partitions``) on held-out stretches of the same tubs, and reports frame-level AUROC, with
the built-in six-number colour baseline's beside it, for

* tub 10 (a bare granite floor with tape lanes: a natural shift),
* held-out in-distribution frames with test-range rain and brightness (the paper's protocol;
  both named: training augments them) and the other synthetic shifts (unnamed),

plus the sequential decision on sequences (held-out stretches as in-distribution sequences,
tub 10 stretches as all-OOD sequences, and shifted copies of the held-out stretches in modes
m1, m2 and m3). The tubs are split into 100-frame stretches assigned in turn to training (3 of
5), calibration (1 of 5) and test (1 of 5), so that neighbouring near-duplicate frames never
straddle training and test.

This is an evaluation script, not a unit test: it trains for several minutes. The frames are
evaluation data only and never leave ../shared.

    python scripts/eval_donkeycar.py [--data ../shared/data/donkeycar_mat_track] [--out DIR]
        [--run DIR] [--compress CANDIDATE...]

``--compress`` then builds those candidates of the compression grid (e.g. the lean recipe
``vae-ood compress`` chose on synthetic data) from this teacher, and prints their AUROC on the
same real-frame shifts next to the teacher's, with the largest drop.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from functools import partial
import json
from pathlib import Path
import sys
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / 'shared' / 'data' / 'donkeycar_mat_track'
FLOOR = 'tub10 (granite floor)'


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation and print/write the figures."""
    from vae_ood_monitor.cli.options import add_distill_options

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', type=Path, default=DEFAULT_DATA)
    parser.add_argument('--out', type=Path, default=ROOT / 'work' / 'donkeycar')
    parser.add_argument('--epochs', type=int, default=None, help="default: the preset's")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--members', type=int, default=1,
                        help='train an ensemble of this many seeds (as `vae-ood train --members`)')
    parser.add_argument('--target-far', type=float, default=0.03,
                        help='per-frame false-alarm rate (the held-out fifth is ~800 frames: '
                        'three partitions at 0.01 would need ~1,200)')
    parser.add_argument('--partitions', nargs='+', default=None,
                        help='the alert to calibrate (default: the default alert of `vae-ood '
                        'calibrate`)')
    parser.add_argument('--force', action='store_true')
    parser.add_argument('--select', default='detection', choices=['detection', 'loss', 'last'],
                        help="which training epoch's weights the teacher keeps")
    parser.add_argument('--no-guide', action='store_true',
                        help='train without guided dims (for a side-by-side run)')
    parser.add_argument('--run', type=Path, default=None,
                        help='reuse a finished training run instead of training')
    parser.add_argument('--change', action='store_true',
                        help='calibrate with change partitions (for a side-by-side run)')
    parser.add_argument('--change-offset', type=float, default=0.5, metavar='Q',
                        help='offset quantile of the change partitions (0: plain ratio)')
    parser.add_argument('--compress', nargs='+', default=[], metavar='CANDIDATE',
                        help='compression candidates to build from the teacher and compare')
    parser.add_argument('--distill-mix', type=float, default=0.0,
                        help='fraction of each distillation batch replaced by blended frames')
    add_distill_options(parser, epochs_flag='--distill-epochs')
    parser.add_argument('--compress-out', type=Path, default=None,
                        help='where the candidates go (default: OUT/compress)')
    args = parser.parse_args(argv)
    if args.partitions is None:
        from vae_ood_monitor.evaluate.calibration import DEFAULT_PARTITIONS
        args.partitions = list(DEFAULT_PARTITIONS)
    grid = None
    if args.compress:  # checked before the evaluation, which takes minutes
        from vae_ood_monitor.core.errors import ConfigError
        from vae_ood_monitor.train.search import select_grid

        try:
            grid = select_grid('cpu', args.compress)
        except ConfigError as err:
            raise SystemExit(str(err)) from None
    if not args.data.is_dir():
        print(f'{args.data} not found: the real frames live in ../shared (evaluation only).')
        return 2

    from vae_ood_monitor.cli.cmd_calibrate import describe_partitions
    from vae_ood_monitor.cli.cmd_train import describe_selection
    from vae_ood_monitor.cli.common import check_output
    from vae_ood_monitor.cli.options import ALL_SHIFTS
    from vae_ood_monitor.core.bundle import save_bundle
    from vae_ood_monitor.data.dataset import load_frames, split_stretches
    from vae_ood_monitor.data.shifts import shift_frames
    from vae_ood_monitor.data.sources import TubSource
    from vae_ood_monitor.evaluate.calibration import calibrate, CalibrationOptions
    from vae_ood_monitor.evaluate.colour import colour_scores, fit_colour_baseline
    from vae_ood_monitor.evaluate.metrics import detection_metrics
    from vae_ood_monitor.evaluate.report import (add_baseline, baseline_warnings,
                                                 evaluate_encodings, format_table, write_report)
    from vae_ood_monitor.evaluate.scores import encodings_of_images
    from vae_ood_monitor.evaluate.sequence_eval import evaluate_sequences, format_sequence_table
    from vae_ood_monitor.train.ensemble import train_ensemble
    from vae_ood_monitor.train.export import bundle_from_run
    from vae_ood_monitor.train.trainer import TrainConfig

    if args.run is None or not str(args.run).startswith(str(args.out)):
        check_output(args.out, args.force, remove=True)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tubs = {n: args.data / f'tub_{n}_24-04-23' for n in (5, 6, 10)}
    in_dist = load_frames([TubSource(tubs[5], skip_first=6), TubSource(tubs[6])], 120, 160)
    train_set, calib_set, test_set = split_stretches(in_dist)
    ood_floor = load_frames([TubSource(tubs[10])], 120, 160)
    print(f'frames: train {len(train_set)}, calibration {len(calib_set)}, test '
          f'{len(test_set)}, tub 10 {len(ood_floor)}')
    run = args.run
    if run is None:
        run = args.out / 'run'
        info = train_ensemble(train_set, run, TrainConfig(preset='default', epochs=args.epochs,
                                                          seed=args.seed, select=args.select,
                                                          guide=() if args.no_guide else None),
                              args.members)
        print(f'trained ({time.monotonic() - started:.0f} s so far); '
              f'{describe_selection(info.selection, len(info.history))}')
    bundle = bundle_from_run(run, name='donkeycar-default')
    options = CalibrationOptions(partitions=tuple(args.partitions),
                                 target_far=args.target_far, seed=args.seed,
                                 change=args.change, change_offset=args.change_offset)
    bundle, _ = calibrate(bundle, calib_set, options, log=print)
    save_bundle(bundle, args.out / 'model.vood', force=True)
    id_rows = encodings_of_images(bundle, test_set.images)
    shifted = {kind: replace(test_set, images=shift_frames(test_set.images, kind, 'test',
                                                           args.seed)) for kind in ALL_SHIFTS}
    images = {FLOOR: ood_floor.images, **{k: f.images for k, f in shifted.items()}}
    ood = {name: encodings_of_images(bundle, frames) for name, frames in images.items()}
    evaluation = evaluate_encodings(bundle, id_rows, ood)
    add_baseline(evaluation, bundle, test_set.images, images)
    sequences = real_sequences(bundle, test_set, ood[FLOOR], args.seed)
    summary, _ = evaluate_sequences(bundle, sequences)
    evaluation.extra['sequences'] = summary
    table = format_sequence_table(summary)
    if (args.out / 'report').exists():
        check_output(args.out / 'report', True, remove=True)
    write_report(evaluation, args.out / 'report', title='Real frames: donkeycar mat track',
                 notes='## Sequences\n\n' + table + '\n\n' + describe_partitions(bundle))
    print(describe_partitions(bundle))
    print(format_table(evaluation))
    for line in baseline_warnings(evaluation):
        print(line)
    # the baseline fitted on the 2,400 training frames instead of calibration half A (more
    # frames for its six numbers; the detector may not use training frames for its own fit)
    trained = fit_colour_baseline(train_set.images)
    id_colour = colour_scores(trained, test_set.images)
    aurocs = {name: detection_metrics(id_colour, colour_scores(trained, frames), 1e9).auroc
              for name, frames in images.items()}
    evaluation.extra['baseline_auroc_training_fit'] = aurocs
    print('colour baseline fitted on the training frames: '
          + ', '.join(f'{name} {value:.3f}' for name, value in aurocs.items()))
    print(table)
    print(f'total {time.monotonic() - started:.0f} s; report in {args.out / "report"}')
    (args.out / 'summary.json').write_text(json.dumps(evaluation.to_dict(), indent=1,
                                                      default=str))
    if grid:
        ood_sets = {'tub10': ood_floor, **shifted}
        compare_compressed(run, grid, train_set, calib_set, test_set, ood_sets, options,
                           args)
    return 0


def real_sequences(bundle, test_set, floor_rows, seed):  # type: ignore[no-untyped-def]
    """Return the held-out stretches, rain and brightness copies of them, and tub 10 cut up."""
    from vae_ood_monitor.evaluate.sequence_eval import build_sequences, LabelledSequence

    sequences = build_sequences(bundle, test_set, ('rain', 'brightness'), seed=seed)
    for start in range(0, len(floor_rows), 100):
        chunk = floor_rows[start:start + 100]
        sequences.append(LabelledSequence(f'tub10_{start}', 'tub10', 'm1', chunk,
                                          np.ones(len(chunk), bool)))
    return sequences


def sequence_cells(summary) -> str:  # type: ignore[no-untyped-def]
    """Return CUSUM and per-frame rule figures: false alarms, missed spans, median delay."""
    cells = []
    for mode in ('cusum', 'threshold'):
        m = summary['modes'][mode]
        cells.append(f'{m["false_alarms"]} FA / {m["missed_segments"]} of {m["segments"]} '
                     f'missed / delay {m["median_delay"]}')
    return ' | '.join(cells)


def compare_compressed(run, grid, train_set, calib_set, test_set,  # type: ignore
                       ood_sets, options, args) -> None:
    """Build the ``--compress`` candidates from the teacher run; print AUROC side by side."""
    from vae_ood_monitor.cli.options import distill_config, with_transfer
    from vae_ood_monitor.core.bundle import load_bundle
    from vae_ood_monitor.evaluate.bench import BenchConfig, median_total_ms
    from vae_ood_monitor.evaluate.calibration import calibrate_and_score
    from vae_ood_monitor.evaluate.scores import encodings_of_images
    from vae_ood_monitor.evaluate.sequence_eval import evaluate_sequences
    from vae_ood_monitor.train.export import bundle_from_run
    from vae_ood_monitor.train.runs import load_run
    from vae_ood_monitor.train.search import run_search

    assess = partial(calibrate_and_score, calib=calib_set, val=test_set, ood=ood_sets,
                     options=options)
    timer = partial(median_total_ms, config=BenchConfig(frames=200, warmup=30, threads=1))
    _, teacher = load_run(run)
    teacher_row, rows = run_search(
        teacher, bundle_from_run(run, name='teacher-fp32'), with_transfer(train_set, args),
        calib_set, grid, args.compress_out or args.out / 'compress', assess, timer,
        config=distill_config(args, mix_p=args.distill_mix), progress=False,
        resume=True, log=lambda text: print(f'  {text}'))
    shifts = list(teacher_row.auroc)
    print('| model | median ms (640x480 rgb8, 1 thread) | '
          + ' | '.join(shifts) + ' | max drop | sequences: CUSUM | per-frame rule |')
    print('|' + '---|' * (len(shifts) + 5))
    for row in [teacher_row] + [r for r in rows if r is not teacher_row]:
        bundle = load_bundle(row.path)
        floor = encodings_of_images(bundle, ood_sets['tub10'].images)
        summary, _ = evaluate_sequences(bundle, real_sequences(bundle, test_set, floor,
                                                               args.seed))
        print(f'| {row.spec.name} | {row.median_ms:.3f} | '
              + ' | '.join(f'{row.auroc[s]:.3f}' for s in shifts)
              + f' | {row.min_drop(teacher_row.auroc):+.3f} | {sequence_cells(summary)} |')


if __name__ == '__main__':
    sys.exit(main())
