"""``vae-ood compress``: find the fastest detector within an AUROC budget of the teacher.

Wires the training layer's search (distillation, structured pruning, int8/fp16) to the
evaluation layer (calibration, per-shift AUROC, side-by-side latency benchmark).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from functools import partial
from pathlib import Path
import shutil
from typing import TYPE_CHECKING

from vae_ood_monitor.cli.common import add_force, check_output
from vae_ood_monitor.cli.options import (add_calibration_options, add_distill_options,
                                         calibration_options, check_shifts, distill_config,
                                         frame_inputs, MOTION_SHIFTS, with_transfer)

if TYPE_CHECKING:
    from vae_ood_monitor.train.search import Candidate

__all__ = ['register']

DEFAULT_SHIFTS = ('rain', 'brightness', 'fog', 'snow')


def register(commands: argparse._SubParsersAction) -> None:
    """Add the compress command."""
    parser = commands.add_parser(
        'compress', help='search students x pruning x precision for the fastest detector '
        'within an AUROC budget',
        description='Distils student encoders (narrower, smaller input), prunes channels '
        'physically, quantises (static int8 QDQ for CPUs, fp16 for GPUs, optionally with '
        'quantisation-aware training), calibrates every candidate, measures its AUROC on the '
        'validation shifts and its full-path latency side by side, and exports the fastest '
        'bundle whose AUROC stays within the budget of the teacher on every shift. Writes '
        'candidates/, lean.vood, pareto.md, pareto.png and search.json to --out.')
    parser.add_argument('run', type=Path, help='the teacher training run')
    parser.add_argument('--data', nargs='+', required=True,
                        help='in-distribution frames to distil on (the training frames)')
    parser.add_argument('--calib', nargs='+', required=True,
                        help='held-out in-distribution sequences for calibration')
    parser.add_argument('--val', nargs='+', default=None,
                        help='held-out in-distribution frames for validation AUROC (default: '
                        'the second half of every --calib sequence)')
    parser.add_argument('--out', type=Path, required=True, help='output folder')
    parser.add_argument('--budget-auroc-drop', type=float, default=0.02,
                        help='largest AUROC drop against the teacher on any validation shift')
    parser.add_argument('--target', default='cpu', choices=['cpu', 'gpu'],
                        help='cpu: int8 candidates; gpu: fp16 candidates')
    parser.add_argument('--shifts', nargs='+', default=list(DEFAULT_SHIFTS),
                        help=f'validation shifts (default: {" ".join(DEFAULT_SHIFTS)}); motion '
                        f'anomalies ({", ".join(MOTION_SHIFTS)}) too, for flow teachers')
    parser.add_argument('--candidates', nargs='+', default=None, metavar='NAME',
                        help='search only these candidates of the grid (default: all; '
                        'e.g. the lean recipe found on another teacher)')
    parser.add_argument('--threads', type=int, default=1, help='benchmark threads')
    parser.add_argument('--bench-frames', type=int, default=300, help='timed frames each')
    parser.add_argument('--resume', action='store_true',
                        help='keep the candidates an interrupted search already built in '
                        '--out/candidates (re-assessed, not rebuilt)')
    parser.add_argument('--no-progress', action='store_true')
    add_distill_options(parser)
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the validation shifts, distillation and calibration')
    add_calibration_options(parser, seed=False)
    add_force(parser)
    parser.set_defaults(func=_compress)


def _compress(args: argparse.Namespace) -> int:
    from vae_ood_monitor.core.bundle import load_bundle, save_bundle
    from vae_ood_monitor.data.dataset import FrameArray, load_frames
    from vae_ood_monitor.data.flowdata import flow_frames
    from vae_ood_monitor.data.shifts import shift_frames
    from vae_ood_monitor.evaluate.bench import BenchConfig, median_total_ms
    from vae_ood_monitor.evaluate.calibration import calibrate, calibrate_and_score
    from vae_ood_monitor.evaluate.motion_eval import motion_frames
    from vae_ood_monitor.train.export import bundle_from_run
    from vae_ood_monitor.train.runs import load_run
    from vae_ood_monitor.train.search import run_search, select_grid

    check_shifts(args.shifts, motion=True)
    grid = select_grid(args.target, args.candidates)
    if not (args.resume and (args.out / 'candidates').is_dir()):
        check_output(args.out, args.force, remove=True)
    options = calibration_options(args)
    info, teacher = load_run(args.run)
    config = distill_config(args)
    if info.flow is not None:  # a flow teacher: students learn its flow stacks, unaugmented
        config = replace(config, augment=())
    height, width = info.spec.input_hw

    def inputs(frames: FrameArray) -> FrameArray:
        return frames if info.flow is None else flow_frames(frames, info.flow)

    frames = inputs(with_transfer(load_frames(frame_inputs(args.data), height, width), args))
    calib = whole_calib = load_frames(frame_inputs(args.calib), height, width)
    if args.val:
        val = load_frames(frame_inputs(args.val), height, width)
    else:
        calib, val = calib.split_groups(0.5)
    shifted = {kind: inputs(motion_frames(val, kind, args.seed) if kind in MOTION_SHIFTS else
                            replace(val, images=shift_frames(val.images, kind, 'test',
                                                             args.seed)))
               for kind in args.shifts}
    split = whole_calib is not calib
    calib, whole_calib, val = inputs(calib), inputs(whole_calib), inputs(val)
    assess = partial(calibrate_and_score, calib=calib, val=val, ood=shifted, options=options)
    timer = partial(median_total_ms, config=BenchConfig(
        frames=args.bench_frames, warmup=30, threads=args.threads,
        providers=('cuda', 'cpu') if args.target == 'gpu' else ('cpu',)))

    teacher_row, rows = run_search(
        teacher, bundle_from_run(args.run, name='teacher-fp32'), frames, calib,
        grid, args.out, assess, timer, budget=args.budget_auroc_drop,
        config=config, progress=not args.no_progress,
        resume=args.resume, log=lambda text: print(f'  {text}'))
    within = [r for r in rows[1:] if r.min_drop(teacher_row.auroc) <= args.budget_auroc_drop]
    best = min(within, key=lambda r: r.median_ms) if within else teacher_row
    if not split:
        shutil.copyfile(best.path, args.out / 'lean.vood')
    else:
        # the search calibrated on the first halves of the sequences (the second halves judged
        # the candidates): the deployed bundle is calibrated on them whole, like `calibrate`
        # does, so that its sequential test sees sequences as long as the robot's
        print(f'calibrating {best.spec.name} on all of --calib for lean.vood')
        lean, _ = calibrate(load_bundle(best.path), whole_calib, options,
                            log=lambda text: print(f'  {text}'))
        save_bundle(lean, args.out / 'lean.vood', force=True)
    table = _table(rows, teacher_row, best, args.budget_auroc_drop)
    (args.out / 'pareto.md').write_text(table + '\n')
    _plot(rows, args.out / 'pareto.png')
    print(table)
    if not within:
        print(f'no candidate stays within {args.budget_auroc_drop} AUROC of the teacher; '
              'lean.vood is the teacher')
    print(f'lean detector: {best.spec.name} -> {args.out / "lean.vood"}')
    return 0


def _table(rows: list[Candidate], teacher: Candidate, best: Candidate, budget: float) -> str:
    from vae_ood_monitor.train.search import pareto_front

    front = {r.path for r in pareto_front(rows)}
    shifts = list(teacher.auroc)
    header = ('| candidate | median ms | x teacher | MMAC | params | size MB | '
              + ' | '.join(f'AUROC {s}' for s in shifts) + ' | max drop | within budget |')
    lines = [header, '|' + '---|' * (8 + len(shifts))]
    for row in rows:
        drop = row.min_drop(teacher.auroc)
        mark = ' **(lean)**' if row is best else (' (Pareto)' if row.path in front else '')
        lines.append(
            f'| {row.spec.name}{mark} | {row.median_ms:.3f} | '
            f'{teacher.median_ms / row.median_ms:.1f}x | {row.macs / 1e6:.1f} | '
            f'{row.parameters / 1e6:.3f} M | {row.size_bytes / 1e6:.2f} | '
            + ' | '.join(f'{row.auroc.get(s, float("nan")):.3f}' for s in shifts)
            + f' | {drop:+.3f} | {"yes" if drop <= budget else "no"} |')
    return '\n'.join(lines)


def _plot(rows: list[Candidate], path: Path) -> None:
    from vae_ood_monitor.evaluate.plots import plot_pareto
    from vae_ood_monitor.train.search import pareto_front

    front = {r.path for r in pareto_front(rows)}
    plot_pareto([{'name': r.spec.name, 'latency_ms': r.median_ms,
                  'auroc': min(r.auroc.values()), 'size_mb': r.size_bytes / 1e6,
                  'front': r.path in front} for r in rows], path)
