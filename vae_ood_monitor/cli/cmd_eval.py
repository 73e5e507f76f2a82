"""``vae-ood calibrate``, ``evaluate`` and ``info``: ONNX-only workstation commands."""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path
import sys
from typing import Any, TYPE_CHECKING

from vae_ood_monitor.cli.common import add_force, check_output, emit_json
from vae_ood_monitor.cli.options import (add_calibration_options, add_data_options, ALL_SHIFTS,
                                         calibration_options, check_shifts, load_for_bundle,
                                         MOTION_SHIFTS)

if TYPE_CHECKING:
    from vae_ood_monitor.core.bundle import Bundle
    from vae_ood_monitor.data.dataset import FrameArray

__all__ = ['describe_partitions', 'register']


def register(commands: argparse._SubParsersAction) -> None:
    """Add calibrate, evaluate and info."""
    parser = commands.add_parser(
        'calibrate', help='calibrate a bundle on held-out in-distribution frames',
        description="Chooses each partition's latent dims and tail, stores sorted "
        'in-distribution scores, per-frame thresholds at the target false-alarm rate and the '
        'CUSUM parameters in the bundle (rewritten atomically, in place unless --out). Use '
        'several recorded sequences that the model was not trained on.')
    parser.add_argument('model', type=Path, help='bundle (.vood)')
    parser.add_argument('--data', nargs='+', required=True,
                        help='held-out in-distribution frame sources (not the training frames)')
    parser.add_argument('--out', type=Path, default=None, help='write a new bundle instead')
    add_calibration_options(parser)
    add_data_options(parser)
    add_force(parser)
    parser.set_defaults(func=_calibrate)

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
    parser.add_argument('--shift', nargs='+', default=[],
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

    parser = commands.add_parser('info', help='show what a bundle contains')
    parser.add_argument('model', type=Path)
    parser.add_argument('--json', action='store_true', help='print the manifest as JSON')
    parser.set_defaults(func=_info)


def _calibrate(args: argparse.Namespace) -> int:
    from vae_ood_monitor.core.bundle import load_bundle, save_bundle
    from vae_ood_monitor.evaluate.calibration import calibrate

    options = calibration_options(args)
    bundle = load_bundle(args.model)
    out = args.out or args.model
    if args.out is not None:
        check_output(args.out, args.force)
    frames = load_for_bundle(bundle, args.data, args, inputs=True)
    bundle, _ = calibrate(bundle, frames, options, log=lambda text: print(f'  {text}'))
    save_bundle(bundle, out, force=True if args.out is None else args.force)
    print(describe_partitions(bundle))
    print(f'wrote {out}')
    return 0


def describe_partitions(bundle: Bundle) -> str:
    """Describe each partition in one line: dims, tail, thresholds and CUSUM parameters."""
    lines = []
    for part in bundle.manifest.partitions:
        limits = ' '.join(f'{name} {value:.3f}' for name, value in
                          (('threshold', part.threshold), ('low', part.threshold_low))
                          if value is not None)
        cusum = (f'; cusum window {part.cusum.window} delta {part.cusum.delta:.3f} tau '
                 f'{part.cusum.tau:.2f}' if part.cusum else '')
        change = (f', change vs the median of {part.baseline.frames} frames from '
                  f'{part.baseline.gap} back (offset {part.baseline.offset:.3g})'
                  if part.baseline else '')
        if part.density is not None:
            density = part.density
            what = (f'{density.method.value} distance over {len(density.columns)} encoder '
                    f'features ({", ".join(density.groups)})')
        else:
            what = f'{len(part.dims)} dims ({part.selection.value})'
        lines.append(f'partition {part.name}: {what}, {part.tail.value} tail{change}, '
                     f'{part.calibration_scores.size} calibration scores, {limits}{cusum}')
    return '\n'.join(lines)


def _evaluate(args: argparse.Namespace) -> int:
    from vae_ood_monitor.core.bundle import load_bundle
    from vae_ood_monitor.core.errors import ConfigError
    from vae_ood_monitor.data.flowdata import model_inputs
    from vae_ood_monitor.data.shifts import shift_frames
    from vae_ood_monitor.evaluate.motion import motion_frames, motion_sequences
    from vae_ood_monitor.evaluate.report import (add_baseline, baseline_warnings,
                                                 evaluate_encodings, format_table, write_report)
    from vae_ood_monitor.evaluate.scores import encodings_of_images

    bundle = load_bundle(args.model)
    if not bundle.manifest.calibrated:
        from vae_ood_monitor.core.errors import CalibrationError
        raise CalibrationError(f'{str(args.model)!r} is not calibrated; run `vae-ood calibrate '
                               f'{args.model} --data ID_FRAMES` first.')
    shifts = [s for name in args.shift for s in {'all': ALL_SHIFTS, 'motion': MOTION_SHIFTS}
              .get(name, (name,))]
    shifts = list(dict.fromkeys(shifts))
    check_shifts(shifts, also=', all, motion', motion=True)
    motion = [s for s in shifts if s in MOTION_SHIFTS]
    shifts = [s for s in shifts if s not in MOTION_SHIFTS]
    flow = bundle.manifest.flow is not None
    if not shifts and not motion and not args.ood:
        raise ConfigError('Nothing to evaluate against: pass --ood DATA and/or --shift NAME.')
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
        name = Path(path).name
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
    from vae_ood_monitor.evaluate.sequences import (build_sequences, evaluate_sequences,
                                                    format_sequence_table, write_timelines)

    sequences = build_sequences(bundle, frames, shifts, per_kind=args.per_kind, seed=args.seed)
    summary, traces = evaluate_sequences(bundle, sequences)
    if args.out is not None:
        write_timelines(traces, args.out, bundle)
    return summary, format_sequence_table(summary)


def _info(args: argparse.Namespace) -> int:
    from vae_ood_monitor.core.bundle import load_bundle

    bundle = load_bundle(args.model)
    manifest = bundle.manifest
    if args.json:
        data = manifest.to_dict()
        for part in data['partitions']:
            part['calibration_scores'] = f'<{len(part["calibration_scores"])} scores>'
        emit_json(data)
        return 0
    spec, model = manifest.input, manifest.model
    print(f'{args.model}: bundle {manifest.name!r} (schema {manifest.schema_version}, created '
          f'{manifest.created or "?"})')
    print(f'  model   sha256 {model.sha256[:16]}..., {model.precision.value}, '
          f'{model.parameters:,} parameters, {model.macs / 1e6:.1f} MMAC, latent '
          f'{model.latent_dim}')
    print(f'  input   {spec.width}x{spec.height} {spec.channel_order.value}, '
          f'{spec.interpolation.value} resize, mean {spec.mean}, std {spec.std}')
    if manifest.flow is not None:
        flow = manifest.flow
        print(f'  flow    a stack of {flow.stack} Farneback fields ({flow.components}) of '
              f'consecutive frames, +-{flow.max_displacement:g} px, restarted after gaps over '
              f'{flow.max_gap_s:g} s')
    if not manifest.partitions:
        print('  not calibrated: run `vae-ood calibrate`')
    else:
        print('  ' + describe_partitions(bundle).replace('\n', '\n  '))
    provenance = manifest.provenance
    if provenance:
        members = provenance.get('members')
        ensemble = (f', an ensemble of {len(members)} seeds '
                    f'({", ".join(str(m.get("seed")) for m in members)})'
                    if isinstance(members, list) and members
                    and all(isinstance(m, dict) for m in members) else '')
        train = provenance.get('train')
        guide = train.get('guide') if isinstance(train, dict) else None
        guided = (', guided dims: ' + ', '.join(f'{kind} (dim {number})' for number, kind
                                                in enumerate(guide))
                  + (' of each model' if ensemble else '')
                  if isinstance(guide, list) and guide else '')
        print(f'  trained preset {provenance.get("preset", "?")}, data '
              f'{provenance.get("data", {}).get("frames", "?")} frames{ensemble}{guided}')
    return 0
