"""Command-line options shared by several subcommands (data, calibration, distillation)."""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
from typing import Any, Sequence, TYPE_CHECKING

from vae_ood_monitor.cli.common import tqdm_progress

if TYPE_CHECKING:
    from vae_ood_monitor.core.bundle import Bundle
    from vae_ood_monitor.data.dataset import FrameArray
    from vae_ood_monitor.data.sources import FrameSource
    from vae_ood_monitor.evaluate.calibration import CalibrationOptions
    from vae_ood_monitor.train.distill import DistillConfig

__all__ = ['ALL_SHIFTS', 'MOTION_SHIFTS', 'add_calibration_options', 'add_data_options',
           'add_distill_options', 'calibration_options', 'check_shifts', 'distill_config',
           'frame_inputs', 'load_for_bundle', 'read_calibration_config', 'source_name',
           'with_transfer']

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


def add_data_options(parser: argparse.ArgumentParser, *, sequences: bool = False) -> None:
    """Options shared by every command that reads frame sources.

    ``sequences``: the command needs whole recordings in time order (calibration): thinning
    them out is still accepted but not offered.
    """
    parser.add_argument('--skip-first', type=int, default=0, metavar='N',
                        help='drop the first N frames of every source (e.g. robot on a desk)')
    parser.add_argument('--stride', type=int, default=1, metavar='N',
                        help=argparse.SUPPRESS if sequences else 'keep every N-th frame')
    parser.add_argument('--limit', type=int, default=None, metavar='N',
                        help=argparse.SUPPRESS if sequences else 'use at most N frames in total')


def add_calib_data(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--calib DATA...``: held-out in-distribution frames (``--data``/``--calibrate``: old)."""
    parser.add_argument('--calib', nargs='+', default=None, metavar='DATA',
                        help='held-out in-distribution frame sources to calibrate on (recorded '
                        'sequences the model was not trained on)' + (
                            '' if required else ': calibrate right away'))
    parser.add_argument('--data', '--calibrate', dest='old_calib', nargs='+', default=None,
                        help=argparse.SUPPRESS)
    parser.set_defaults(calib_required=required)


def calib_data(args: argparse.Namespace, command: str) -> list[str] | None:
    """Return the ``--calib`` sources (warning on the old spellings), or None without any."""
    from vae_ood_monitor.core.errors import ConfigError

    if args.old_calib is not None:
        print(f'warning: {command}: --data / --calibrate for calibration frames are deprecated: '
              'use --calib', file=sys.stderr)
        return list(args.old_calib)
    if args.calib is None and args.calib_required:
        raise ConfigError(f'{command} needs --calib DATA: held-out in-distribution frames.')
    return args.calib


#: Calibration settings only a ``--config`` YAML file sets (CalibrationOptions fields), with
#: the command-line flags that set them until this release: hidden, they still work and warn.
_RESEARCH_FLAGS = (
    ('--select', 'selection', {'choices': ['labelled', 'paper', 'all']}),
    ('--no-sequential', 'sequential', {'action': 'store_false'}),
    ('--window', 'windows', {'type': int, 'nargs': '+'}),
    ('--margin', 'margin', {'type': float}),
    ('--sequence-share', 'sequence_share', {'type': float}),
    ('--validation-shifts', 'validation_shifts', {'nargs': '+'}),
    ('--change', 'change', {'action': 'store_true'}),
    ('--baseline-frames', 'baseline_frames', {'type': int}),
    ('--baseline-gap', 'baseline_gap', {'type': int}),
    ('--change-offset', 'change_offset', {'type': float}),
)


def add_calibration_options(parser: argparse.ArgumentParser, *, seed: bool = True) -> None:
    """Options of the calibration (shared by calibrate, export --calib, compress and table).

    The everyday settings are flags; the research knobs of
    :class:`~vae_ood_monitor.evaluate.calibration.CalibrationOptions` go in a YAML file given
    with ``--config`` (see docs/calibration.md). ``seed`` False: the command has a ``--seed``
    of its own, which calibration then also uses.
    """
    group = parser.add_argument_group('calibration')
    group.add_argument('--partitions', nargs='+', default=None, metavar='NAME',
                       help="what the alert ORs: 'generic' (distance of the frame's encoder "
                       'features from in-distribution frames: shifts nobody named), '
                       "'all' (KL of every latent dim, two-sided: the paper's score) and/or "
                       f'shift names ({", ".join(ALL_SHIFTS)}) with their own latent dims '
                       '(default: generic)')
    group.add_argument('--target-far', type=float, default=None,
                       help='per-frame false-alarm rate of the whole detector (default 0.01)')
    group.add_argument('--alarm-rate', type=float, default=None,
                       help='CUSUM false alarms allowed per in-distribution frame, for the '
                       'alert (default 1e-4)')
    group.add_argument('--config', type=Path, default=None, metavar='YAML',
                       help='calibration settings file (every setting of the calibration, '
                       'e.g. windows, margin, dims, change partitions; see '
                       'docs/calibration.md); the flags above override it')
    for flag, dest, kwargs in _RESEARCH_FLAGS:
        group.add_argument(flag, dest=f'old_{dest}', default=None, help=argparse.SUPPRESS,
                           **kwargs)
    if seed:
        group.add_argument('--seed', dest='old_seed', type=int, default=None,
                           help=argparse.SUPPRESS)


def calibration_options(args: argparse.Namespace) -> CalibrationOptions:
    """Build validated calibration options: the ``--config`` file, then the flags."""
    from dataclasses import fields

    from vae_ood_monitor.core.errors import ConfigError
    from vae_ood_monitor.evaluate.calibration import CalibrationOptions

    settings: dict[str, Any] = {}
    if getattr(args, 'config', None) is not None:
        settings = read_calibration_config(args.config)
    for flag, dest, _ in _RESEARCH_FLAGS + (('--seed', 'seed', {}),):
        value = getattr(args, f'old_{dest}', None)
        if value is not None:
            print(f'warning: {flag} is deprecated: set {dest!r} in a --config YAML file '
                  '(docs/calibration.md)', file=sys.stderr)
            settings[dest] = value
    if getattr(args, 'old_seed', None) is None and 'seed' not in settings and hasattr(
            args, 'seed'):
        settings['seed'] = args.seed  # the command's own --seed
    for dest in ('partitions', 'target_far', 'alarm_rate'):
        if getattr(args, dest, None) is not None:
            settings[dest] = getattr(args, dest)
    for key in ('partitions', 'windows', 'validation_shifts'):
        if key in settings:
            settings[key] = tuple(settings[key])
    known = {f.name for f in fields(CalibrationOptions)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f'Unknown calibration setting(s) {unknown}; choose from '
                          f'{", ".join(sorted(known))}.')
    return CalibrationOptions(**settings)


def read_calibration_config(path: Path) -> dict[str, Any]:
    """Read a calibration settings YAML file (a mapping of CalibrationOptions fields)."""
    import yaml

    from vae_ood_monitor.core.errors import ConfigError

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f'Cannot read the calibration config {str(path)!r}: {err}.') from err
    except yaml.YAMLError as err:
        raise ConfigError(f'{str(path)!r} is not valid YAML ({err}).') from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f'{str(path)!r} must hold a mapping of calibration settings '
                          f'(e.g. "windows: [10, 20]"), not {type(data).__name__}.')
    return dict(data.get('calibration', data))


def add_distill_options(parser: argparse.ArgumentParser, epochs_flag: str = '--epochs') -> None:
    """Options of the knowledge distillation (compress; scripts/eval_donkeycar.py)."""
    group = parser.add_argument_group('distillation')
    group.add_argument(epochs_flag, dest='distill_epochs', type=int, default=8, metavar='N',
                       help='distillation epochs (default 8)')
    group.add_argument('--transfer', nargs='+', default=[], metavar='PATH',
                       help='extra frames (image folders, videos, tubs, bags) the students learn '
                       'the teacher on, besides --data: other recordings or synthetic drives '
                       'widen the inputs where student and teacher agree')
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


def frame_inputs(paths: Sequence[str | Path]) -> list[str | Path | FrameSource]:
    """``paths`` as :func:`~vae_ood_monitor.data.dataset.load_frames` takes them, bags opened.

    A ROS 2 bag (a rosbag2 folder or one .mcap / .db3 file; ``BAG:TOPIC`` picks one of several
    image topics) becomes a :class:`~vae_ood_monitor.replay.bagsource.BagSource`, a folder of
    bags one source per bag; image folders, videos and tubs stay paths.
    """
    from vae_ood_monitor.replay.bagsource import bag_sources, split_bag_spec

    out: list[str | Path | FrameSource] = []
    for path in paths:
        spec = split_bag_spec(path)
        out.extend([path] if spec is None else bag_sources(*spec))
    return out


def source_name(path: str | Path) -> str:
    """Name a frame source for tables: its file name (a bag's with the topic given)."""
    from vae_ood_monitor.replay.bagsource import split_bag_spec

    spec = split_bag_spec(path)
    if spec is None or spec[1] is None:
        return Path(path).name
    return f'{spec[0].name}:{spec[1]}'


def with_transfer(frames: FrameArray, args: argparse.Namespace) -> FrameArray:
    """Return the distillation inputs: ``frames`` plus the ``--transfer`` frames, same size."""
    from vae_ood_monitor.data.dataset import concat_frames, load_frames

    if not args.transfer:
        return frames
    extra = load_frames(frame_inputs(args.transfer), *frames.images.shape[1:3])
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
    frames = load_frames(frame_inputs(paths), spec.height, spec.width, spec.interpolation,
                         limit=getattr(args, 'limit', None), stride=getattr(args, 'stride', 1),
                         skip_first=getattr(args, 'skip_first', 0), progress=tqdm_progress)
    return model_inputs(frames, bundle.manifest) if inputs else frames
