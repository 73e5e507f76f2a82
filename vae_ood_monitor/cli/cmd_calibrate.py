"""``vae-ood calibrate``: fit a bundle's partitions, thresholds and CUSUM (ONNX only)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from vae_ood_monitor.cli.common import add_force, check_output
from vae_ood_monitor.cli.options import (add_calib_data, add_calibration_options,
                                         add_data_options, calib_data, calibration_options,
                                         load_for_bundle)

if TYPE_CHECKING:
    from vae_ood_monitor.core.bundle import Bundle

__all__ = ['describe_partitions', 'register']


def register(commands: argparse._SubParsersAction) -> None:
    """Add calibrate."""
    parser = commands.add_parser(
        'calibrate', help='calibrate a bundle on held-out in-distribution frames',
        description="Chooses each partition's latent dims and tail, stores sorted "
        'in-distribution scores, per-frame thresholds at the target false-alarm rate and the '
        'CUSUM parameters in the bundle (rewritten atomically, in place unless --out). Use '
        'several recorded sequences that the model was not trained on.')
    parser.add_argument('model', type=Path, help='bundle (.vood)')
    add_calib_data(parser, required=True)
    parser.add_argument('--out', type=Path, default=None, help='write a new bundle instead')
    add_calibration_options(parser)
    add_data_options(parser, sequences=True)
    add_force(parser)
    parser.set_defaults(func=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from vae_ood_monitor.core.bundle import load_bundle, save_bundle
    from vae_ood_monitor.evaluate.calibration import calibrate

    options = calibration_options(args)
    bundle = load_bundle(args.model)
    out = args.out or args.model
    if args.out is not None:
        check_output(args.out, args.force)
    frames = load_for_bundle(bundle, calib_data(args, 'calibrate'), args, inputs=True)
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
