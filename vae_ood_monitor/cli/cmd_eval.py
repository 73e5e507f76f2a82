"""``vae-ood evaluate``: detection figures of a calibrated bundle (ONNX only, no torch)."""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path
import sys
from typing import Any, TYPE_CHECKING

from vae_ood_monitor.cli.common import add_force, check_output, emit_json
from vae_ood_monitor.cli.options import (add_data_options, ALL_SHIFTS, check_shifts,
                                         load_for_bundle, MOTION_SHIFTS, source_name)

if TYPE_CHECKING:
    from vae_ood_monitor.core.bundle import Bundle
    from vae_ood_monitor.data.dataset import FrameArray

__all__ = ['register']


def register(commands: argparse._SubParsersAction) -> None:
    """Add evaluate."""
    parser = commands.add_parser(
        'evaluate', help='AUROC, AUPR, FPR@95%%TPR, false alarms and delays per OOD shift',
        description='Scores in-distribution frames (--id) against OOD sets: folders/videos/tubs '
        '(--ood; frames labelled 0 in a labels.csv are skipped) and/or synthetic test-range '
        'shifts applied to the --id frames (--shift). With --sequences it also runs the decision '
        'rules over the --id sequences and their shifted copies (m1: all frames, m2: second '
        'half, m3: middle half) for delays and false alarms. Beside the detector it scores the '
        'same frames with a six-number colour baseline (fitted at calibration) and warns where '
        'the detector does not beat it; shifts used in training or calibration are marked '
        '"named". Writes metrics.json, report.md and PNG plots with --out.')
    parser.add_argument('model', type=Path, help='calibrated bundle (.vood)')
    parser.add_argument('--id', nargs='+', required=True, dest='id_data',
                        help='held-out in-distribution frame sources')
    parser.add_argument('--ood', nargs='+', default=[], help='OOD frame sources')
    parser.add_argument('--shift', dest='old_shifts', nargs='+', default=None,
                        help=argparse.SUPPRESS)
    parser.add_argument('--shifts', nargs='+', default=[],
                        help=f'test-range shifts to apply to the --id frames: '
                        f'{", ".join(ALL_SHIFTS)} or all; and motion anomalies of the --id '
                        f'sequences: {", ".join(MOTION_SHIFTS)} or motion')
    parser.add_argument('--sequences', action='store_true',
                        help='also evaluate the sequential decision on m1/m2/m3 sequences')
    parser.add_argument('--per-kind', type=int, default=None, metavar='N',
                        help='with --sequences: shift at most N sequences per shift and mode')
    parser.add_argument('--seed', type=int, default=0, help='seed of the synthetic shifts')
    parser.add_argument('--out', type=Path, default=None, help='report folder')
    parser.add_argument('--json', action='store_true', help='print metrics as JSON')
    add_data_options(parser)
    add_force(parser)
    parser.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from vae_ood_monitor.core.bundle import load_bundle
    from vae_ood_monitor.core.errors import ConfigError
    from vae_ood_monitor.data.flowdata import model_inputs
    from vae_ood_monitor.data.shifts import shift_frames
    from vae_ood_monitor.evaluate.motion_eval import motion_frames, motion_sequences
    from vae_ood_monitor.evaluate.report import (add_baseline, baseline_warnings,
                                                 evaluate_encodings, format_table, write_report)
    from vae_ood_monitor.evaluate.scores import encodings_of_images

    bundle = load_bundle(args.model)
    if not bundle.manifest.calibrated:
        from vae_ood_monitor.core.errors import CalibrationError
        raise CalibrationError(f'{str(args.model)!r} is not calibrated; run `vae-ood calibrate '
                               f'{args.model} --data ID_FRAMES` first.')
    if args.old_shifts is not None:
        print('warning: evaluate: --shift is deprecated: use --shifts', file=sys.stderr)
        args.shifts = args.shifts + args.old_shifts
    shifts = [s for name in args.shifts for s in {'all': ALL_SHIFTS, 'motion': MOTION_SHIFTS}
              .get(name, (name,))]
    shifts = list(dict.fromkeys(shifts))
    check_shifts(shifts, also=', all, motion', motion=True)
    motion = [s for s in shifts if s in MOTION_SHIFTS]
    shifts = [s for s in shifts if s not in MOTION_SHIFTS]
    flow = bundle.manifest.flow is not None
    if not shifts and not motion and not args.ood:
        raise ConfigError('Nothing to evaluate against: pass --ood DATA and/or --shifts NAME.')
    if flow and args.sequences and shifts:
        raise ConfigError(f'--sequences of frame shifts ({", ".join(shifts)}) is not built for '
                          'flow bundles; evaluate their sequences with motion shifts '
                          f'({", ".join(MOTION_SHIFTS)}).')
    if args.out is not None:
        check_output(args.out, args.force, remove=True)
    id_frames = load_for_bundle(bundle, args.id_data, args)

    def inputs(frames: FrameArray, labelled: int | None = None) -> FrameArray:
        """Return what the encoder reads (flow stacks: made before any frame is dropped)."""
        frames = model_inputs(frames, bundle.manifest)
        if labelled == 0:
            return frames.subset(frames.labels != 1)
        if labelled == 1 and (frames.labels == 1).any():
            return frames.subset(frames.labels == 1)
        return frames

    id_inputs = inputs(id_frames, 0)
    id_frames = id_frames.subset(id_frames.labels != 1)
    id_rows = encodings_of_images(bundle, id_inputs.images)
    ood_sets: dict[str, FrameArray] = {}
    for path in args.ood:
        name = source_name(path)
        while name in ood_sets or name in shifts + motion:  # keep every set, even equal names
            name += "'"
        ood_sets[name] = inputs(load_for_bundle(bundle, [path], args), 1)
    for kind in shifts:
        ood_sets[kind] = inputs(replace(id_frames, images=shift_frames(
            id_frames.images, kind, 'test', args.seed)))
    for kind in motion:
        ood_sets[kind] = inputs(motion_frames(id_frames, kind, args.seed))
    ood_rows = {name: encodings_of_images(bundle, frames.images)
                for name, frames in ood_sets.items()}
    evaluation = evaluate_encodings(bundle, id_rows, ood_rows)
    has_baseline = not flow and add_baseline(evaluation, bundle, id_frames.images,
                                             {k: v.images for k, v in ood_sets.items()})
    sequence_table = ''
    if args.sequences:
        summary, sequence_table = ({}, '')
        if shifts:
            summary, sequence_table = _sequences(bundle, id_frames, shifts, args)
        if motion:
            results = motion_sequences(bundle, id_frames, motion, args.seed)
            summary['motion'] = {k: asdict(v) for k, v in results.items()}
            sequence_table += ('\n\n' if sequence_table else '') + '\n'.join(
                ['| motion anomaly (m2) | sequences |', '|---|---|']
                + [f'| {k} | {v.describe()} |' for k, v in results.items()])
        evaluation.extra['sequences'] = summary
    if args.out is not None:
        write_report(evaluation, args.out, title=f'OOD evaluation of {bundle.name}',
                     notes=sequence_table)
    warnings = baseline_warnings(evaluation)
    if args.json:
        emit_json(evaluation.to_dict())
    else:
        print(format_table(evaluation))
        if evaluation.named:
            print(f'named shifts (used in training or calibration): '
                  f'{", ".join(evaluation.named)}; the others say how the detector meets the '
                  'unexpected')
        if not has_baseline and not flow:
            print('no colour baseline in this bundle: calibrate it again with this version to '
                  'compare the detector with the built-in baseline')
        if sequence_table:
            print()
            print(sequence_table)
        if args.out is not None:
            print(f'report: {args.out / "report.md"}')
    for line in warnings:
        print(line, file=sys.stderr)
    return 0


def _sequences(bundle: Bundle, frames: FrameArray, shifts: list[str], args: Any
               ) -> tuple[dict[str, Any], str]:
    from vae_ood_monitor.evaluate.sequence_eval import (build_sequences, evaluate_sequences,
                                                        format_sequence_table, write_timelines)

    sequences = build_sequences(bundle, frames, shifts, per_kind=args.per_kind, seed=args.seed)
    summary, traces = evaluate_sequences(bundle, sequences)
    if args.out is not None:
        write_timelines(traces, args.out, bundle)
    return summary, format_sequence_table(summary)
