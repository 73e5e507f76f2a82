"""``vae-ood calibrate``, ``evaluate`` and ``info``: ONNX-only workstation commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence, TYPE_CHECKING

from vae_ood_monitor.cli.cmd_train import add_data_options
from vae_ood_monitor.cli.common import add_force, check_output, emit_json, tqdm_progress

if TYPE_CHECKING:
    import numpy as np

    from vae_ood_monitor.core.bundle import Bundle
    from vae_ood_monitor.data.dataset import FrameArray

__all__ = ['apply_test_shift', 'calibrate_bundle', 'load_for_bundle', 'register']

ALL_SHIFTS = ('rain', 'brightness', 'fog', 'snow', 'motion_blur', 'noise', 'occlusion',
              'objects')


def register(commands: argparse._SubParsersAction) -> None:
    """Add calibrate, evaluate and info."""
    parser = commands.add_parser(
        'calibrate', help='calibrate a bundle on held-out in-distribution frames',
        description='Stores sorted in-distribution scores and the per-frame threshold at the '
        'target false-alarm rate in the bundle (rewritten atomically, in place unless --out).')
    parser.add_argument('model', type=Path, help='bundle (.vood)')
    parser.add_argument('--data', nargs='+', required=True,
                        help='held-out in-distribution frame sources (not the training frames)')
    parser.add_argument('--target-far', type=float, default=0.01,
                        help='per-frame false-alarm rate of the threshold (default 0.01)')
    parser.add_argument('--out', type=Path, default=None, help='write a new bundle instead')
    add_data_options(parser)
    add_force(parser)
    parser.set_defaults(func=_calibrate)

    parser = commands.add_parser(
        'evaluate', help='AUROC, AUPR, FPR@95%%TPR and false alarms per OOD shift',
        description='Scores in-distribution frames (--id) against OOD sets: folders/videos/tubs '
        '(--ood; frames labelled 0 in a labels.csv are skipped) and/or synthetic test-range '
        'shifts applied to the --id frames (--shift). Writes metrics.json, report.md and PNG '
        'plots with --out.')
    parser.add_argument('model', type=Path, help='calibrated bundle (.vood)')
    parser.add_argument('--id', nargs='+', required=True, dest='id_data',
                        help='held-out in-distribution frame sources')
    parser.add_argument('--ood', nargs='+', default=[], help='OOD frame sources')
    parser.add_argument('--shift', nargs='+', default=[],
                        help=f'test-range shifts to apply to the --id frames: '
                        f'{", ".join(ALL_SHIFTS)} or all')
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


def load_for_bundle(bundle: Bundle, paths: Sequence[str], args: Any = None) -> FrameArray:
    """Load frames at the bundle's input size with its interpolation."""
    from vae_ood_monitor.data.dataset import load_frames

    spec = bundle.manifest.input
    return load_frames(paths, spec.height, spec.width, spec.interpolation,
                       limit=getattr(args, 'limit', None), stride=getattr(args, 'stride', 1),
                       skip_first=getattr(args, 'skip_first', 0), progress=tqdm_progress)


def calibrate_bundle(bundle: Bundle, paths: Sequence[str], *, target_far: float,
                     args: Any = None) -> Bundle:
    """Score held-out in-distribution frames and calibrate every partition."""
    from vae_ood_monitor.evaluate.calibrate import calibrate_partitions
    from vae_ood_monitor.evaluate.scores import kl_of_images

    frames = load_for_bundle(bundle, paths, args)
    kl = kl_of_images(bundle, frames.images)
    plans = None
    if bundle.manifest.partitions:
        from vae_ood_monitor.evaluate.calibrate import PartitionPlan
        plans = [PartitionPlan(p.name, p.dims, p.selection) for p in bundle.manifest.partitions]
    return calibrate_partitions(bundle, kl, target_far=target_far, plans=plans)


def apply_test_shift(images: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """Apply a test-range shift (severity drawn per frame) to every image."""
    import numpy as np

    from vae_ood_monitor.data.shifts import apply_shift, sample_severity

    rng = np.random.default_rng([seed, ALL_SHIFTS.index(kind) if kind in ALL_SHIFTS else 99])
    return np.stack([apply_shift(img, kind, sample_severity(kind, 'test', rng), rng)
                     for img in images])


def _calibrate(args: argparse.Namespace) -> int:
    from vae_ood_monitor.core.bundle import load_bundle, save_bundle

    bundle = load_bundle(args.model)
    out = args.out or args.model
    if args.out is not None:
        check_output(args.out, args.force)
    bundle = calibrate_bundle(bundle, args.data, target_far=args.target_far, args=args)
    save_bundle(bundle, out, force=True if args.out is None else args.force)
    for part in bundle.manifest.partitions:
        print(f'partition {part.name}: {part.calibration_scores.size} calibration frames, '
              f'threshold {part.threshold:.3f} at target false-alarm rate '
              f'{bundle.manifest.target_far:g}')
    print(f'wrote {out}')
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from vae_ood_monitor.core.bundle import load_bundle
    from vae_ood_monitor.evaluate.report import evaluate_kl, format_table, write_report
    from vae_ood_monitor.evaluate.scores import kl_of_images

    bundle = load_bundle(args.model)
    shifts = list(ALL_SHIFTS) if 'all' in args.shift else list(args.shift)
    unknown = sorted(set(shifts) - set(ALL_SHIFTS))
    if unknown:
        from vae_ood_monitor.core.errors import ConfigError
        raise ConfigError(f'Unknown shift(s) {unknown!r}; choose from {", ".join(ALL_SHIFTS)} '
                          'or all.')
    if args.out is not None:
        check_output(args.out, args.force, remove=True)
    id_frames = load_for_bundle(bundle, args.id_data, args)
    id_frames = id_frames.subset(id_frames.labels != 1)
    id_kl = kl_of_images(bundle, id_frames.images)
    ood_kl = {}
    for path in args.ood:
        frames = load_for_bundle(bundle, [path], args)
        if (frames.labels == 1).any():
            frames = frames.subset(frames.labels == 1)
        ood_kl[Path(path).name] = kl_of_images(bundle, frames.images)
    for kind in shifts:
        ood_kl[kind] = kl_of_images(bundle, apply_test_shift(id_frames.images, kind, args.seed))
    evaluation = evaluate_kl(bundle, id_kl, ood_kl)
    if args.out is not None:
        write_report(evaluation, args.out, title=f'OOD evaluation of {bundle.name}')
    if args.json:
        emit_json(evaluation.to_dict())
    else:
        print(format_table(evaluation))
        if args.out is not None:
            print(f'report: {args.out / "report.md"}')
    return 0


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
    if not manifest.partitions:
        print('  not calibrated: run `vae-ood calibrate`')
    for part in manifest.partitions:
        cusum = (f', cusum window {part.cusum.window} delta {part.cusum.delta:.3f} tau '
                 f'{part.cusum.tau:.2f}' if part.cusum else '')
        print(f'  partition {part.name}: dims {list(part.dims)} ({part.selection.value}), '
              f'{part.calibration_scores.size} calibration scores, threshold '
              f'{part.threshold}{cusum}')
    provenance = manifest.provenance
    if provenance:
        print(f'  trained preset {provenance.get("preset", "?")}, data '
              f'{provenance.get("data", {}).get("frames", "?")} frames')
    return 0
