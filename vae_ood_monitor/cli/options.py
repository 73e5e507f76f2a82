"""Command-line options shared by several subcommands (data, calibration, distillation)."""

from __future__ import annotations

import argparse
from typing import Any, Sequence, TYPE_CHECKING

from vae_ood_monitor.cli.common import tqdm_progress

if TYPE_CHECKING:
    from vae_ood_monitor.core.bundle import Bundle
    from vae_ood_monitor.data.dataset import FrameArray
    from vae_ood_monitor.evaluate.calibration import CalibrationOptions
    from vae_ood_monitor.train.distill import DistillConfig

__all__ = ['ALL_SHIFTS', 'MOTION_SHIFTS', 'add_calibration_options', 'add_data_options',
           'add_distill_options', 'calibration_options', 'check_shifts', 'distill_config',
           'load_for_bundle', 'with_transfer']

#: The synthetic shifts (data.shifts.ShiftKind values; a test keeps them in step).
ALL_SHIFTS = ('rain', 'brightness', 'fog', 'snow', 'motion_blur', 'noise', 'occlusion',
              'objects')
#: Motion anomalies of whole sequences (:mod:`vae_ood_monitor.data.motion`, in its order).
MOTION_SHIFTS = ('shake', 'frozen', 'speed', 'reverse', 'drop')


def check_shifts(names: Sequence[str], option: str = '', also: str = '',
                 motion: bool = False) -> None:
    """Raise ConfigError naming every unknown shift in ``names`` (given to ``option``)."""
    from vae_ood_monitor.core.errors import ConfigError

    known = ALL_SHIFTS + (MOTION_SHIFTS if motion else ())
    unknown = sorted(set(names) - set(known))
    if unknown:
        where = f' in {option}' if option else ''
        raise ConfigError(f'Unknown shift(s) {unknown!r}{where}; choose from '
                          f'{", ".join(known)}{also}.')


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that reads frame sources."""
    parser.add_argument('--skip-first', type=int, default=0, metavar='N',
                        help='drop the first N frames of every source (e.g. robot on a desk)')
    parser.add_argument('--stride', type=int, default=1, metavar='N',
                        help='keep every N-th frame')
    parser.add_argument('--limit', type=int, default=None, metavar='N',
                        help='use at most N frames in total')


def add_calibration_options(parser: argparse.ArgumentParser) -> None:
    """Options of the calibration (shared by calibrate, export --calibrate and compress)."""
    group = parser.add_argument_group('calibration')
    group.add_argument('--target-far', type=float, default=0.01,
                       help='per-frame false-alarm rate of the whole detector (default 0.01)')
    group.add_argument('--partitions', nargs='+', default=['generic'], metavar='NAME',
                       help="what the alert ORs: 'generic' (distance of the frame's encoder "
                       'features from in-distribution frames: shifts nobody named), '
                       "'all' (KL of every latent dim, two-sided: the paper's score) and/or "
                       f'shift names ({", ".join(ALL_SHIFTS)}) with their own latent dims '
                       '(default: generic)')
    group.add_argument('--select', default='labelled', choices=['labelled', 'paper', 'all'],
                       help='how shift partitions choose their dims (default labelled)')
    group.add_argument('--no-sequential', action='store_true',
                       help='skip the CUSUM calibration (per-frame thresholds only)')
    group.add_argument('--window', type=int, nargs='+', default=[20], metavar='W',
                       help='martingale window in frames, or several candidates: calibration '
                       'then picks, per partition, the one that detects the validation shifts '
                       'soonest within the false-alarm budget (default 20, as in the paper; '
                       '5 10 20 halved the demo delays at more false alarms)')
    group.add_argument('--alarm-rate', type=float, default=1e-4,
                       help='CUSUM false alarms allowed per in-distribution frame, for the '
                       'alert (split evenly between the partitions; default 1e-4)')
    group.add_argument('--margin', type=float, default=0.25,
                       help='safety margin on the CUSUM threshold (default 0.25 = +25 %%)')
    group.add_argument('--sequence-share', type=float, default=0.5, metavar='F',
                       help='share of the calibration drives that fit the CUSUM; the rest give '
                       'the conformal scores. The CUSUM needs many drives to vouch for few '
                       'false alarms, the scores fewer (default 0.5)')
    group.add_argument('--validation-shifts', nargs='+', default=[], metavar='SHIFT',
                       help="shifts that tune the generic partitions' CUSUM (default: the "
                       'named partitions, else rain and brightness)')
    group.add_argument('--change', action='store_true',
                       help='add change partitions, which score each frame against the same '
                       "camera's recent frames and feed the CUSUM (default: none)")
    group.add_argument('--baseline-frames', type=int, default=30, metavar='N',
                       help='reference window of the change partitions (default 30 frames)')
    group.add_argument('--baseline-gap', type=int, default=5, metavar='N',
                       help='frames between the reference window and the scored frame '
                       '(default 5)')
    group.add_argument('--change-offset', type=float, default=0.5, metavar='Q',
                       help='a change partition scores (KL + c) / (reference + c), c = this '
                       "quantile of the partition's calibration KL: keeps near-zero KL from "
                       'making huge ratios (default 0.5, the median; 0: plain ratio)')
    group.add_argument('--seed', type=int, default=0, help='seed of the validation shifts')


def calibration_options(args: argparse.Namespace) -> CalibrationOptions:
    """Build validated calibration options from parsed arguments."""
    from vae_ood_monitor.evaluate.calibration import CalibrationOptions

    return CalibrationOptions(
        target_far=args.target_far, partitions=tuple(args.partitions), selection=args.select,
        sequential=not args.no_sequential, windows=tuple(args.window),
        alarm_rate=args.alarm_rate, margin=args.margin, sequence_share=args.sequence_share,
        validation_shifts=tuple(args.validation_shifts),
        change=args.change, baseline_frames=args.baseline_frames,
        baseline_gap=args.baseline_gap, change_offset=args.change_offset, seed=args.seed)


def add_distill_options(parser: argparse.ArgumentParser, epochs_flag: str = '--epochs') -> None:
    """Options of the knowledge distillation (compress; scripts/eval_donkeycar.py)."""
    group = parser.add_argument_group('distillation')
    group.add_argument(epochs_flag, dest='distill_epochs', type=int, default=8, metavar='N',
                       help='distillation epochs (default 8)')
    group.add_argument('--transfer', nargs='+', default=[], metavar='PATH',
                       help='extra frames (image folders, videos, tubs) the students learn the '
                       'teacher on, besides --data: other recordings or synthetic drives widen '
                       'the inputs where student and teacher agree')
    group.add_argument('--distill-augment', nargs='+', default=None, metavar='SHIFT',
                       help='shifts applied to distillation inputs (default: every synthetic '
                       'shift)')
    group.add_argument('--distill-augment-p', type=float, default=None, metavar='P',
                       help='probability of each --distill-augment shift per frame '
                       '(default 0.1)')
    group.add_argument('--distill-augment-range', default=None, choices=['train', 'full'],
                       help="severities of those shifts: 'full' = all of [0, 1] (default), "
                       "'train' = the teacher's training range")
    group.add_argument('--distill-loss', default=None,
                       choices=['moments', 'scores', 'latent_kl', 'paper'],
                       help='moments: MSE of (mu, logvar) (default); scores: plus the per-dim '
                       'KL on a log scale; latent_kl: KL(teacher || student); paper: the '
                       "paper's output matching with a student decoder")


def distill_config(args: argparse.Namespace, **fixed: Any) -> DistillConfig:
    """Build the DistillConfig from parsed :func:`add_distill_options` arguments."""
    from vae_ood_monitor.train.distill import DistillConfig

    check_shifts(args.distill_augment or (), '--distill-augment')
    chosen = {'augment': args.distill_augment, 'augment_p': args.distill_augment_p,
              'augment_split': args.distill_augment_range, 'loss': args.distill_loss}
    return DistillConfig(epochs=args.distill_epochs, seed=args.seed, **fixed,
                         **{key: value for key, value in chosen.items() if value is not None})


def with_transfer(frames: FrameArray, args: argparse.Namespace) -> FrameArray:
    """Return the distillation inputs: ``frames`` plus the ``--transfer`` frames, same size."""
    from vae_ood_monitor.data.dataset import concat_frames, load_frames

    if not args.transfer:
        return frames
    extra = load_frames(args.transfer, *frames.images.shape[1:3])
    print(f'distilling on {len(frames)} frames of --data and {len(extra)} of --transfer')
    return concat_frames([frames, extra])


def load_for_bundle(bundle: Bundle, paths: Sequence[str], args: Any = None, *,
                    inputs: bool = False) -> FrameArray:
    """Load frames at the bundle's input size with its interpolation.

    ``inputs``: return what the encoder reads of them (a flow bundle's flow stacks).
    """
    from vae_ood_monitor.data.dataset import load_frames
    from vae_ood_monitor.data.flowdata import model_inputs

    spec = bundle.manifest.input
    frames = load_frames(paths, spec.height, spec.width, spec.interpolation,
                         limit=getattr(args, 'limit', None), stride=getattr(args, 'stride', 1),
                         skip_first=getattr(args, 'skip_first', 0), progress=tqdm_progress)
    return model_inputs(frames, bundle.manifest) if inputs else frames
