"""``vae-ood demo``: the whole workflow on synthetic scenes, end to end."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
import time
from typing import Any

from vae_ood_monitor.cli.common import check_output
from vae_ood_monitor.core.errors import ConfigError

__all__ = ['DemoPlan', 'PLANS', 'register', 'run_demo']


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo run (drives x frames per drive for each data set)."""

    preset: str
    train_drives: int
    calib_drives: int
    test_drives: int
    frames: int
    epochs: int | None
    shifted_drives: int
    eval_frames: int
    #: models trained with seeds seed, seed + 1, ... and used side by side (an ensemble)
    members: int = 1


PLANS = {
    # 60 worlds to learn from, 200 held-out worlds to calibrate on (the CUSUM thresholds must
    # sit above the rare world whose KL wanders most: calibrated on 60 worlds, the demo model
    # had 9 false alarms on the test worlds, on 200 worlds 2), 100 new worlds to test on
    # (5,000 in-distribution frames for the false-alarm count). One model: the seed ensemble
    # (`--members 3`) steadied the KL partitions' sequence figures (docs/seed_ensembles.md);
    # the generic partition of the default alert does not need it.
    'full': DemoPlan('default', train_drives=60, calib_drives=200, test_drives=100, frames=50,
                     epochs=None, shifted_drives=10, eval_frames=2000, members=1),
    'quick': DemoPlan('tiny', train_drives=8, calib_drives=32, test_drives=8, frames=40,
                      epochs=3, shifted_drives=2, eval_frames=300, members=2),
}
# The demo calibrates the default alert (the generic partition) like `vae-ood calibrate`, and
# evaluates the sequential decision on the two shifts that training augments.
SEQUENCE_SHIFTS = ('rain', 'brightness')


def register(commands: argparse._SubParsersAction) -> None:
    """Add the demo command."""
    parser = commands.add_parser(
        'demo', help='synthesise, train, export, calibrate and evaluate on every shift',
        description='Runs the whole workflow on synthetic road scenes in a work folder: renders '
        'drives, trains a model of the default preset (guided rain and brightness dims), '
        'exports and calibrates a bundle with the default alert (the generic partition and '
        'its sequential test), then evaluates every OOD shift frame by frame, beside the '
        'built-in colour baseline, and the decision rules on m1/m2/m3 sequences. About '
        '10-20 minutes on 2 CPU cores, by the machine; --quick: two tiny models in about a '
        'minute.')
    parser.add_argument('--work', type=Path, default=Path('work/demo'), help='work folder')
    parser.add_argument('--quick', action='store_true', help='tiny preset, few frames')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--members', type=int, default=None,
                        help='models side by side (default: 1, --quick: 2; see `vae-ood train '
                        '--members`)')
    parser.add_argument('--force', action='store_true', help='replace the work folder')
    parser.set_defaults(func=_demo)


def run_demo(work: Path, plan: DemoPlan, *, seed: int = 0, force: bool = False
             ) -> dict[str, Any]:
    """Run every step; return the metrics (also written to work/report)."""
    from vae_ood_monitor.cli.cmd_data import synthesize
    from vae_ood_monitor.cli.cmd_eval import describe_partitions
    from vae_ood_monitor.cli.cmd_train import describe_selection
    from vae_ood_monitor.cli.options import ALL_SHIFTS
    from vae_ood_monitor.core.bundle import save_bundle
    from vae_ood_monitor.data.dataset import load_frames
    from vae_ood_monitor.data.shifts import shift_frames
    from vae_ood_monitor.evaluate.calibration import calibrate, CalibrationOptions
    from vae_ood_monitor.evaluate.report import (add_baseline, baseline_warnings,
                                                 evaluate_encodings, format_table, write_report)
    from vae_ood_monitor.evaluate.scores import encodings_of_images
    from vae_ood_monitor.evaluate.sequences import (build_sequences, evaluate_sequences,
                                                    format_sequence_table, write_timelines)
    from vae_ood_monitor.train.export import bundle_from_run
    from vae_ood_monitor.train.models import get_preset
    from vae_ood_monitor.train.trainer import train_ensemble, TrainConfig

    check_output(work, force, remove=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    data = work / 'data'
    height, width = get_preset(plan.preset).encoder.input_hw

    def step(text: str) -> None:
        print(f'[{time.monotonic() - started:6.1f} s] {text}', flush=True)

    step('1/5 synthesising road scenes (every drive is a new world)')
    sets = {'train': (plan.train_drives, seed), 'calib': (plan.calib_drives, seed + 10_000),
            'test': (plan.test_drives, seed + 20_000)}
    for name, (drives, first) in sets.items():
        count = synthesize(data / name, sequences=drives, frames=plan.frames,
                           size=(width, height), seed=first, shift=None, severity='test',
                           mode='id', force=False)
        print(f'    {name}: {count} frames ({drives} drives)')
    models = f'{plan.members} models of ' if plan.members > 1 else ''
    step(f'2/5 training {models}the {plan.preset!r} preset')
    frames = load_frames([data / 'train'], height, width)
    info = train_ensemble(frames, work / 'run', TrainConfig(preset=plan.preset,
                                                            epochs=plan.epochs, seed=seed),
                          plan.members, log=lambda text: print(f'    {text}'))
    for line in describe_selection(info.selection, len(info.history)).splitlines():
        print(f'    {line}')
    step('3/5 exporting the encoder to ONNX')
    bundle = bundle_from_run(work / 'run', name=f'demo-{plan.preset}')
    step('4/5 calibrating on held-out drives (partitions, thresholds, CUSUM)')
    calib = load_frames([data / 'calib'], height, width)
    bundle, _ = calibrate(bundle, calib, CalibrationOptions(seed=seed),
                          log=lambda text: print(f'    {text}'))
    model = save_bundle(bundle, work / 'model.vood')
    step('5/5 evaluating every shift frame by frame, and the decision rules on sequences')
    test = load_frames([data / 'test'], height, width)
    sample = test.subset(slice(0, len(test), max(1, len(test) // plan.eval_frames)))
    id_rows = encodings_of_images(bundle, sample.images)
    ood_images = {kind: shift_frames(sample.images, kind, 'test', seed) for kind in ALL_SHIFTS}
    ood_rows = {kind: encodings_of_images(bundle, images) for kind, images in ood_images.items()}
    evaluation = evaluate_encodings(bundle, id_rows, ood_rows)
    add_baseline(evaluation, bundle, sample.images, ood_images)
    sequences = build_sequences(bundle, test, SEQUENCE_SHIFTS, per_kind=plan.shifted_drives,
                                seed=seed)
    summary, traces = evaluate_sequences(bundle, sequences)
    evaluation.extra['sequences'] = summary
    table = format_sequence_table(summary)
    write_report(evaluation, work / 'report', title=f'Demo evaluation ({plan.preset} preset)',
                 notes='## Sequences\n\n' + table + '\n\n' + describe_partitions(bundle))
    write_timelines(traces, work / 'report', bundle)
    step('done')
    print()
    print(describe_partitions(bundle))
    print()
    print('Frame-level detection per test-range shift ("named": augmented in training or '
          'used by calibration; the others were never shown to the detector):')
    print(format_table(evaluation))
    for line in baseline_warnings(evaluation):
        print(line)
    print()
    print('Sequences (m1: all frames OOD, m2: second half, m3: middle half; false alarms over '
          f'{summary["id_frames"]} distinct in-distribution frames):')
    print(table)
    print(f'\nmodel: {model}   report: {work / "report" / "report.md"}')
    return evaluation.to_dict()


def _demo(args: argparse.Namespace) -> int:
    plan = PLANS['quick' if args.quick else 'full']
    if args.members is not None:
        if args.members < 1:
            raise ConfigError(f'--members {args.members} must be at least 1.')
        plan = replace(plan, members=args.members)
    run_demo(args.work, plan, seed=args.seed, force=args.force)
    return 0
