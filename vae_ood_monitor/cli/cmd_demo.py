"""``vae-ood demo``: the whole workflow on synthetic scenes, end to end."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
import time

from vae_ood_monitor.cli.common import check_output

__all__ = ['DemoPlan', 'register', 'run_demo']


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo run."""

    preset: str
    train_drives: int
    calib_drives: int
    test_drives: int
    frames: int
    epochs: int | None


PLANS = {
    'full': DemoPlan('default', train_drives=30, calib_drives=10, test_drives=10, frames=100,
                     epochs=None),
    'quick': DemoPlan('tiny', train_drives=6, calib_drives=4, test_drives=4, frames=40,
                      epochs=3),
}


def register(commands: argparse._SubParsersAction) -> None:
    """Add the demo command."""
    parser = commands.add_parser(
        'demo', help='synthesise, train, export, calibrate and evaluate on every shift',
        description='Runs the whole workflow on synthetic road scenes in a work folder and '
        'prints per-shift AUROC (about 5-8 minutes on 2 CPU cores; --quick: under a minute with '
        'the tiny preset).')
    parser.add_argument('--work', type=Path, default=Path('work/demo'), help='work folder')
    parser.add_argument('--quick', action='store_true', help='tiny preset, few frames')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true', help='reuse/overwrite the work folder')
    parser.set_defaults(func=_demo)


def run_demo(work: Path, plan: DemoPlan, *, seed: int = 0, force: bool = False) -> dict:
    """Run every step; return the evaluation dict (also written to work/report)."""
    from vae_ood_monitor.cli.cmd_data import synthesize
    from vae_ood_monitor.cli.cmd_eval import ALL_SHIFTS, apply_test_shift, calibrate_bundle
    from vae_ood_monitor.core.bundle import load_bundle, save_bundle
    from vae_ood_monitor.data.dataset import load_frames
    from vae_ood_monitor.evaluate.report import evaluate_kl, format_table, write_report
    from vae_ood_monitor.evaluate.scores import kl_of_images
    from vae_ood_monitor.train.export import bundle_from_run
    from vae_ood_monitor.train.models import get_preset
    from vae_ood_monitor.train.trainer import train, TrainConfig

    check_output(work, force, remove=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    data = work / 'data'
    preset = get_preset(plan.preset)
    height, width = preset.encoder.input_hw

    def step(text: str) -> None:
        print(f'[{time.monotonic() - started:6.1f} s] {text}', flush=True)

    step('1/5 synthesising road scenes')
    sets = {'train': (plan.train_drives, seed), 'calib': (plan.calib_drives, seed + 10_000),
            'test': (plan.test_drives, seed + 20_000)}
    for name, (drives, first) in sets.items():
        count = synthesize(data / name, sequences=drives, frames=plan.frames,
                           size=(width, height), seed=first, shift=None, severity='test',
                           mode='id', force=False)
        print(f'    {name}: {count} frames ({drives} drives)')
    step(f'2/5 training the {plan.preset!r} preset')
    frames = load_frames([data / 'train'], height, width)
    train(frames, work / 'run', TrainConfig(preset=plan.preset, epochs=plan.epochs, seed=seed))
    step('3/5 exporting the encoder to ONNX')
    model = work / 'model.vood'
    save_bundle(bundle_from_run(work / 'run', name=f'demo-{plan.preset}'), model)
    step('4/5 calibrating on held-out in-distribution drives')
    bundle = calibrate_bundle(load_bundle(model), [str(data / 'calib')], target_far=0.01)
    save_bundle(bundle, model, force=True)
    step('5/5 evaluating on every test-range shift')
    test = load_frames([data / 'test'], height, width)
    id_kl = kl_of_images(bundle, test.images)
    ood_kl = {kind: kl_of_images(bundle, apply_test_shift(test.images, kind, seed))
              for kind in ALL_SHIFTS}
    evaluation = evaluate_kl(bundle, id_kl, ood_kl)
    write_report(evaluation, work / 'report', title=f'Demo evaluation ({plan.preset} preset)')
    step('done')
    print()
    print(format_table(evaluation))
    print(f'\nmodel: {model}   report: {work / "report" / "report.md"}')
    return evaluation.to_dict()


def _demo(args: argparse.Namespace) -> int:
    run_demo(args.work, PLANS['quick' if args.quick else 'full'], seed=args.seed,
             force=args.force)
    return 0
