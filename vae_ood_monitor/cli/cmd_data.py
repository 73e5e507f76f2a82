"""``vae-ood synth``: synthetic road-scene sequences (frames + labels.csv)."""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
import contextlib
import multiprocessing
import os
from pathlib import Path

from vae_ood_monitor.cli.common import add_force, parse_size, progress

__all__ = ['register', 'synthesize']


def register(commands: argparse._SubParsersAction) -> None:
    """Add the data commands."""
    parser = commands.add_parser(
        'synth', help='generate synthetic road-scene sequences (PNG frames + labels.csv)',
        description='Render temporally coherent drives along procedural roads; optionally apply '
        'an OOD shift in a sequence mode (m1: all frames, m2: second half, m3: middle half).')
    parser.add_argument('out', type=Path, help='output folder (must not exist)')
    parser.add_argument('--sequences', type=int, default=10, help='number of drives')
    parser.add_argument('--frames', type=int, default=100, help='frames per drive')
    parser.add_argument('--size', type=parse_size, default=(160, 120), metavar='WxH',
                        help='frame size (default 160x120)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the first drive')
    parser.add_argument('--shift', default=None,
                        help='OOD shift: rain, brightness, fog, snow, motion_blur, noise, '
                        'occlusion, objects, or a motion anomaly of the drive: shake, frozen, '
                        'speed (3x), reverse, drop (half the frames; their stamps stay '
                        'missing) (default: none)')
    parser.add_argument('--severity', default='test',
                        help="'train', 'test' (sampled from that range per drive) or a number "
                        'in [0, 1]')
    parser.add_argument('--mode', default=None, choices=['id', 'm1', 'm2', 'm3'],
                        help='which frames are OOD (default: m1 with --shift, id without)')
    parser.add_argument('--workers', type=int, default=None,
                        help='processes rendering drives (default: one per CPU core)')
    add_force(parser)
    parser.set_defaults(func=_synth)


def synthesize(out: Path, *, sequences: int, frames: int, size: tuple[int, int], seed: int,
               shift: str | None, severity: str, mode: str | None, force: bool,
               show_progress: bool = True, workers: int | None = None) -> int:
    """Write ``sequences`` drives of ``frames`` frames to ``out``; return the frame count.

    Drives render in ``workers`` processes (default: one per CPU core); the frames written are
    the same for any number of workers.
    """
    import numpy as np

    from vae_ood_monitor.core.errors import ConfigError
    from vae_ood_monitor.data.folder import FolderWriter
    from vae_ood_monitor.data.scenes import SceneConfig
    from vae_ood_monitor.data.drives import SequenceMode
    from vae_ood_monitor.data.shifts import sample_severity, ShiftKind

    if sequences < 1 or frames < 1:
        raise ConfigError(f'--sequences {sequences!r} and --frames {frames!r} must be >= 1.')
    if workers is not None and workers < 1:
        raise ConfigError(f'--workers {workers!r} must be >= 1.')
    from vae_ood_monitor.data.motion import MotionKind

    motion = MotionKind(shift) if shift in {k.value for k in MotionKind} else None
    kind = None if shift is None or motion else _shift_kind(ShiftKind, shift)
    seq_mode = SequenceMode(mode or ('m1' if kind or motion else 'id'))
    if kind is None and motion is None and seq_mode is not SequenceMode.ID:
        raise ConfigError(f'--mode {seq_mode.value} needs --shift; without a shift only --mode '
                          'id makes sense.')
    if kind is not None:  # a bad --severity fails before the progress bar starts
        _severity(kind, severity, np.random.default_rng(seed), sample_severity)
    config = SceneConfig(width=size[0], height=size[1])
    rng = np.random.default_rng(seed)
    period_ns = int(round(1e9 / config.fps))
    written = 0
    # severities drawn in drive order first: the output does not depend on the worker count
    levels = [0.0 if kind is None else _severity(kind, severity, rng, sample_severity)
              for _ in range(sequences)]
    if motion is not None:  # clean drives, long enough for the anomaly, shifted below
        from vae_ood_monitor.data.motion import source_frames
        jobs = [(seed + number, source_frames(frames, motion, seq_mode.value), None, 0.0,
                 SequenceMode.ID, config) for number in range(sequences)]
    else:
        jobs = [(seed + number, frames, kind, level, seq_mode, config)
                for number, level in enumerate(levels)]
    workers = max(1, min(workers or os.cpu_count() or 1, sequences))
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(FolderWriter(out, force=force))
        if workers > 1:  # drives render independently: one process per core
            pool = stack.enter_context(ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context('spawn')))
            rendered = pool.map(_render, jobs)
        else:
            rendered = map(_render, jobs)
        if show_progress:
            rendered = progress(rendered, sequences, f'synth {out.name}', 'drive')
        for (number, _, _, level, _, _), (images, labels) in zip(jobs, rendered):
            positions = np.arange(len(images))
            if motion is not None:
                from vae_ood_monitor.data.motion import motion_sequence
                images, positions, labels = motion_sequence(
                    images, frames, motion, seq_mode.value, np.random.default_rng([seed, number]))
            name = (kind or motion).value if (kind or motion) else 'none'
            for position, image, label in zip(positions, images, labels):
                writer.write(image, label=int(label), stamp_ns=int(position) * period_ns,
                             sequence=number, shift=name, severity=f'{level:.3f}')
                written += 1
    return written


def _render(job: tuple) -> tuple:  # type: ignore[type-arg]
    from vae_ood_monitor.data.drives import make_sequence
    return make_sequence(*job)


def _shift_kind(kinds: type, name: str):  # type: ignore[no-untyped-def]
    from vae_ood_monitor.core.errors import ConfigError
    try:
        return kinds(name)
    except ValueError:
        raise ConfigError(f'Unknown shift {name!r}; choose one of: '
                          f'{", ".join(k.value for k in kinds)}.') from None


def _severity(kind, text: str, rng, sampler) -> float:  # type: ignore[no-untyped-def]
    from vae_ood_monitor.core.errors import ConfigError
    if text in ('train', 'test'):
        return float(sampler(kind, text, rng))
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"--severity {text!r} must be 'train', 'test' or a number in [0, 1].")
    return value


def _synth(args: argparse.Namespace) -> int:
    count = synthesize(args.out, sequences=args.sequences, frames=args.frames, size=args.size,
                       seed=args.seed, shift=args.shift, severity=args.severity, mode=args.mode,
                       force=args.force, workers=args.workers)
    print(f'wrote {count} frames to {args.out}')
    return 0
