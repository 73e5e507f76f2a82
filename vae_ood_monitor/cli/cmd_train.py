"""``vae-ood train`` and ``vae-ood export``: the torch side of the workflow."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys
from typing import Any

from vae_ood_monitor.cli.common import add_force, check_output, tqdm_progress
from vae_ood_monitor.cli.options import (add_calib_data, add_calibration_options,
                                         add_data_options, calib_data, frame_inputs)

__all__ = ['register']


def register(commands: argparse._SubParsersAction) -> None:
    """Add the training commands."""
    parser = commands.add_parser(
        'train', help='train a beta-VAE on in-distribution frames',
        description='DATA is an image folder, a video file, a donkeycar tub or a ROS 2 bag '
        '(BAG:TOPIC picks one of several image topics; several sources allowed). '
        'Under torchrun the same command trains data-parallel (gloo on CPU, nccl on GPU).')
    parser.add_argument('data', nargs='+', help='in-distribution frame sources')
    parser.add_argument('--out', type=Path, required=True, help='run directory to create')
    parser.add_argument('--preset', default='default',
                        help='tiny, default or paper (colour frames); flow or flow-tiny (an '
                        'optical-flow VAE on stacks of Farneback fields of consecutive frames: '
                        'camera shake, frozen or dropped frames, motion changes)')
    parser.add_argument('--flow-stack', type=int, default=None, metavar='K',
                        help="flow presets: flow fields per input, 2-12 (default: the preset's)")
    parser.add_argument('--flow-components', choices=['x', 'xy'], default=None,
                        help='flow presets: the horizontal component only (x, default) or both')
    parser.add_argument('--epochs', type=int, default=None, help="default: the preset's")
    parser.add_argument('--batch-size', type=int, default=None, help='per process')
    parser.add_argument('--lr', type=float, default=None, help='Adam learning rate')
    parser.add_argument('--beta', type=float, default=None, help='KL weight (paper: 1.4)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--members', type=int, default=1,
                        help='train an ensemble of this many models (seeds SEED, SEED+1, ...; '
                        'each keeps its own epoch) that export as one encoder with their '
                        'latents side by side: steadier sequential detection, N times the '
                        'training time and teacher inference (`vae-ood compress` distils it '
                        'back into one lean student)')
    parser.add_argument('--no-augment', action='store_true',
                        help='disable in-range rain/brightness augmentation (and guiding; '
                        'flow presets never augment)')
    parser.add_argument('--guide', nargs='+', default=None, metavar='SHIFT',
                        help='augmented shifts whose level latent dims 0, 1, ... learn to carry '
                        '(default: every augmented shift, rain and brightness): their KL then '
                        'rises with that shift alone, far past training for test-range '
                        'severities')
    parser.add_argument('--no-guide', action='store_true',
                        help='no guided dims: every dim is free, as in the paper')
    parser.add_argument('--guide-weight', type=float, default=1000.0,
                        help="weight of the guided dims' squared error against the VAE loss")
    parser.add_argument('--val-fraction', type=float, default=0.1,
                        help='last fraction of every sequence held out for validation')
    parser.add_argument('--select', default=None, choices=['detection', 'loss', 'last'],
                        help="which epoch's weights to keep: the one whose encoder separates "
                        'validation frames from shifted copies best (detection, default for '
                        'frame presets), the lowest validation loss (default for flow presets), '
                        'or the last')
    parser.add_argument('--select-shifts', dest='old_shifts', nargs='+', default=None,
                        help=argparse.SUPPRESS)
    parser.add_argument('--shifts', nargs='+', default=['rain', 'brightness'],
                        metavar='SHIFT', help='validation shifts for --select detection')
    parser.add_argument('--device', default='auto', help='auto, cpu or cuda[:N]')
    parser.add_argument('--threads', type=int, default=None, help='torch threads per process')
    parser.add_argument('--amp', default='auto', choices=['auto', 'bf16', 'off'],
                        help='mixed precision (auto: bf16 where the hardware supports it)')
    parser.add_argument('--resume', action='store_true', help='continue an unfinished run')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    add_data_options(parser)
    add_force(parser)
    parser.set_defaults(func=_train)

    parser = commands.add_parser(
        'export', help='export a trained encoder to a model bundle (.vood)',
        description='Writes the encoder as ONNX plus a manifest into one .vood file. Calibrate '
        'it next (or pass --calib DATA here).')
    parser.add_argument('run', type=Path, help='training run directory')
    parser.add_argument('--out', type=Path, required=True, help='bundle file to write (.vood)')
    parser.add_argument('--name', default=None, help='bundle name (default: run folder name)')
    add_calib_data(parser, required=False)
    add_calibration_options(parser)
    add_data_options(parser, sequences=True)
    add_force(parser)
    parser.set_defaults(func=_export)


def _shifts(args: argparse.Namespace) -> list[str]:
    if args.old_shifts is not None:
        print('warning: train: --select-shifts is deprecated: use --shifts', file=sys.stderr)
        return list(args.old_shifts)
    return list(args.shifts)


def _flow_option(args: argparse.Namespace) -> Any:
    if args.flow_stack is None and args.flow_components is None:
        return None
    from dataclasses import replace

    from vae_ood_monitor.core.flow import FlowSpec
    from vae_ood_monitor.train.models import get_preset

    base = get_preset(args.preset).flow or FlowSpec()
    chosen = {'stack': args.flow_stack, 'components': args.flow_components}
    return replace(base, **{k: v for k, v in chosen.items() if v is not None})


def _train(args: argparse.Namespace) -> int:
    from vae_ood_monitor.data.dataset import load_frames
    from vae_ood_monitor.train.ensemble import train_ensemble
    from vae_ood_monitor.train.trainer import TrainConfig

    config = TrainConfig(preset=args.preset, epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, beta=args.beta, seed=args.seed,
                         augment=() if args.no_augment else None,
                         guide=() if args.no_guide or args.no_augment else args.guide,
                         guide_weight=args.guide_weight,
                         val_fraction=args.val_fraction, amp=args.amp, threads=args.threads,
                         device=args.device, select=args.select,
                         select_shifts=tuple(_shifts(args)), flow=_flow_option(args))
    if not args.resume:
        check_output(args.out, args.force)
    preset = config.get_preset()
    height, width = preset.encoder.input_hw
    frames = load_frames(frame_inputs(args.data), height, width, limit=args.limit,
                         stride=args.stride, skip_first=args.skip_first,
                         progress=None if args.no_progress else tqdm_progress)
    if preset.flow is not None:
        from vae_ood_monitor.data.flowdata import flow_frames
        count = len(frames)
        frames = flow_frames(frames, preset.flow)
        print(f'{count} frames -> {len(frames)} flow stacks of {preset.flow.stack} fields')
    info = train_ensemble(frames, args.out, config, args.members, resume=args.resume,
                          force=args.force, progress=not args.no_progress)
    last = info.history[-1] if info.history else {}
    if int(os.environ.get('RANK', '0')) != 0:  # under torchrun only rank 0 reports
        return 0
    if args.members > 1:
        print(f'trained an ensemble of {args.members} {info.preset} models on {len(frames)} '
              f'frames -> {info.path} (latent {info.spec.latent_dim} = {args.members} x '
              f'{info.spec.latent_dim // args.members})')
    else:
        what = 'flow stacks' if preset.flow is not None else 'frames'
        print(f'trained {info.preset} on {len(frames)} {what} -> {info.path} '
              f'(final loss {last.get("loss", float("nan")):.1f}, '
              f'val {last.get("val_loss", float("nan")):.1f})')
    print(describe_selection(info.selection, len(info.history)))
    return 0


def describe_selection(selection: dict[str, object], epochs: int) -> str:
    """One line on which epoch a run kept and why (one per member of an ensemble)."""
    members = selection.get('members')
    if isinstance(members, list):
        return '\n'.join(
            f'member {number} (seed {member.get("seed")}): '
            + describe_selection(member, int(member.get('epochs') or epochs))
            for number, member in enumerate(members))
    epoch = selection.get('epoch')
    if epoch is None:
        return f'kept the last of {epochs} epochs'
    rule = selection.get('rule')
    why = {'detection': 'best validation-shift AUROC', 'loss': 'lowest validation loss',
           'last': 'the last'}.get(str(rule), str(rule))
    figures = ', '.join(f'{k[len("val_auroc_"):]} {v:.3f}' for k, v in selection.items()
                        if k.startswith('val_auroc_'))
    return f'kept epoch {epoch} of {epochs} ({why}' + (f': {figures})' if figures else ')')


def _export(args: argparse.Namespace) -> int:
    from vae_ood_monitor.core.bundle import save_bundle
    from vae_ood_monitor.train.export import bundle_from_run

    check_output(args.out, args.force)
    bundle = bundle_from_run(args.run, name=args.name)
    calib = calib_data(args, 'export')
    if calib:
        from vae_ood_monitor.cli.options import calibration_options, load_for_bundle
        from vae_ood_monitor.evaluate.calibration import calibrate
        frames = load_for_bundle(bundle, calib, args, inputs=True)
        bundle, _ = calibrate(bundle, frames, calibration_options(args),
                              log=lambda text: print(f'  {text}'))
    save_bundle(bundle, args.out, force=args.force)
    info = bundle.manifest.model
    state = 'calibrated' if bundle.manifest.calibrated else 'not calibrated yet'
    print(f'exported {args.out} ({info.parameters:,} parameters, {info.macs / 1e6:.1f} MMAC, '
          f'sha256 {bundle.short_hash}, {state})')
    return 0
