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
    #: epochs of the lean student's distillation
    distill_epochs: int = 8
    #: timed frames per bundle in the latency comparison
    bench_frames: int = 300


PLANS = {
    # 60 worlds to learn from, 200 held-out worlds to calibrate on (the CUSUM thresholds must
    # sit above the rare world whose score wanders most), 100 new worlds to test on (5,000
    # in-distribution frames for the false-alarm count). One model: the seed ensemble
    # (`--members 3`) steadied the KL partitions' sequence figures
    # (docs/research/seed_ensembles.md); the generic partition of the default alert does not
    # need it.
    'full': DemoPlan('default', train_drives=60, calib_drives=200, test_drives=100, frames=50,
                     epochs=None, shifted_drives=10, eval_frames=2000, members=1),
    'quick': DemoPlan('tiny', train_drives=8, calib_drives=32, test_drives=8, frames=40,
                      epochs=3, shifted_drives=2, eval_frames=300, distill_epochs=2,
                      bench_frames=50),
}
# The demo calibrates the default alert (the generic partition) like `vae-ood calibrate`, and
# evaluates the sequential decision on the two shifts that training augments.
SEQUENCE_SHIFTS = ('rain', 'brightness')
#: The lean bundle the demo deploys: `vae-ood compress --candidates` names the same recipe.
LEAN_RECIPE = 'student-w0.25-stem24-int8'
ENSEMBLE_RECIPE = 'student-w0.25-p4-int8'


def register(commands: argparse._SubParsersAction) -> None:
    """Add the demo command."""
    parser = commands.add_parser(
        'demo', help='synthesise, train, compress, calibrate and evaluate on every shift',
        description='Runs the whole workflow on synthetic road scenes in a work folder: renders '
        'drives, trains a model of the default preset (the teacher, guided rain and '
        f'brightness dims), compresses it into a lean bundle ({LEAN_RECIPE}: a quarter-width '
        "student that keeps the teacher's first convolution at every other column, distilled "
        'from the teacher and quantised to int8), '
        'calibrates both with the default alert (the generic partition and its sequential '
        'test), evaluates every OOD shift frame by frame beside the built-in colour baseline '
        'and the decision rules on m1/m2/m3 sequences, times the full monitor path of both, '
        'and prints teacher and lean side by side. work/lean.vood is the bundle to deploy. '
        'About 10 minutes on 2 CPU cores; --quick: tiny models in about a minute.')
    parser.add_argument('--work', type=Path, default=Path('work/demo'), help='work folder')
    parser.add_argument('--quick', action='store_true', help='tiny preset, few frames')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--members', type=int, default=None,
                        help='models side by side in the teacher (default 1; see `vae-ood train '
                        "--members`); an ensemble's lean bundle is distilled with a stem of its "
                        'own (student-w0.25-p4-int8)')
    parser.add_argument('--force', action='store_true', help='replace the work folder')
    parser.set_defaults(func=_demo)


@dataclass
class _Result:
    """One bundle's figures in the demo."""

    label: str
    path: Path
    evaluation: Any
    sequences: dict[str, Any]
    bench: Any = None


def run_demo(work: Path, plan: DemoPlan, *, seed: int = 0, force: bool = False
             ) -> dict[str, Any]:
    """Run every step; return the metrics of teacher and lean bundle (also in work/)."""
    from vae_ood_monitor.cli.cmd_calibrate import describe_partitions
    from vae_ood_monitor.cli.cmd_data import synthesize
    from vae_ood_monitor.cli.cmd_train import describe_selection
    from vae_ood_monitor.cli.options import ALL_SHIFTS
    from vae_ood_monitor.core.bundle import save_bundle
    from vae_ood_monitor.data.dataset import load_frames
    from vae_ood_monitor.data.shifts import shift_frames
    from vae_ood_monitor.evaluate.bench import bench_models, BenchConfig
    from vae_ood_monitor.evaluate.calibration import calibrate, CalibrationOptions
    from vae_ood_monitor.evaluate.report import (add_baseline, baseline_warnings,
                                                 evaluate_encodings, format_table, write_report)
    from vae_ood_monitor.evaluate.scores import encodings_of_images
    from vae_ood_monitor.evaluate.sequence_eval import (build_sequence_sets, evaluate_sequences,
                                                        format_sequence_table, write_timelines)
    from vae_ood_monitor.train.distill import DistillConfig
    from vae_ood_monitor.train.ensemble import train_ensemble
    from vae_ood_monitor.train.export import bundle_from_run
    from vae_ood_monitor.train.models import get_preset
    from vae_ood_monitor.train.runs import load_run
    from vae_ood_monitor.train.search import build_candidate, select_grid
    from vae_ood_monitor.train.trainer import TrainConfig

    check_output(work, force, remove=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    data = work / 'data'
    height, width = get_preset(plan.preset).encoder.input_hw
    stages: dict[str, float] = {}
    last = [started]

    def step(text: str) -> None:
        now = time.monotonic()
        print(f'[{now - started:6.1f} s] {text}', flush=True)
        last[0] = now

    def done(stage: str) -> None:
        stages[stage] = time.monotonic() - last[0]

    step('1/7 synthesising road scenes (every drive is a new world)')
    sets = {'train': (plan.train_drives, seed), 'calib': (plan.calib_drives, seed + 10_000),
            'test': (plan.test_drives, seed + 20_000)}
    for name, (drives, first) in sets.items():
        count = synthesize(data / name, sequences=drives, frames=plan.frames,
                           size=(width, height), seed=first, shift=None, severity='test',
                           mode='id', force=False)
        print(f'    {name}: {count} frames ({drives} drives)')
    done('synthesise')
    models = f'{plan.members} models of ' if plan.members > 1 else ''
    step(f'2/7 training {models}the {plan.preset!r} preset (the teacher)')
    frames = load_frames([data / 'train'], height, width)
    config = TrainConfig(preset=plan.preset, epochs=plan.epochs, seed=seed)
    info = train_ensemble(frames, work / 'run', config, plan.members,
                          log=lambda text: print(f'    {text}'))
    for line in describe_selection(info.selection, len(info.history)).splitlines():
        print(f'    {line}')
    done('train')
    step('3/7 exporting the teacher to ONNX')
    teacher = bundle_from_run(work / 'run', name=f'demo-{plan.preset}')
    done('export')
    # a seed ensemble has one stem per member: its student learns a stem of its own
    (recipe,) = select_grid('cpu', [LEAN_RECIPE if plan.members == 1 else ENSEMBLE_RECIPE])
    step(f'4/7 compressing: distilling {recipe.name} from the teacher, int8')
    _, model = load_run(work / 'run')
    calib = load_frames([data / 'calib'], height, width)
    # distilled on the shifts the teacher was trained with, no others: the rest stay unnamed
    # for the lean bundle as for its teacher
    distill = DistillConfig(epochs=plan.distill_epochs, seed=seed, augment=config.augment)
    lean, _ = build_candidate(recipe, model, frames, calib, distill,
                              teacher_provenance=teacher.manifest.provenance)
    lean = lean.with_manifest(name=f'demo-{plan.preset}-lean')
    done('compress')
    step('5/7 calibrating both on held-out drives (generic partition, thresholds, CUSUM)')
    bundles = {}
    for label, bundle, file in (('teacher', teacher, 'model.vood'),
                                ('lean', lean, 'lean.vood')):
        print(f'    {label}:')
        bundle, _ = calibrate(bundle, calib, CalibrationOptions(seed=seed),
                              log=lambda text: print(f'      {text}'))
        bundles[label] = (bundle, save_bundle(bundle, work / file))
    done('calibrate')
    step('6/7 evaluating both: every shift frame by frame, the decision rules on sequences')
    test = load_frames([data / 'test'], height, width)
    sample = test.subset(slice(0, len(test), max(1, len(test) // plan.eval_frames)))
    ood_images = {kind: shift_frames(sample.images, kind, 'test', seed) for kind in ALL_SHIFTS}
    sequence_sets = build_sequence_sets([b for b, _ in bundles.values()], test,
                                        SEQUENCE_SHIFTS, per_kind=plan.shifted_drives,
                                        seed=seed)
    results = []
    for (label, (bundle, path)), sequences in zip(bundles.items(), sequence_sets):
        id_rows = encodings_of_images(bundle, sample.images)
        ood_rows = {kind: encodings_of_images(bundle, images)
                    for kind, images in ood_images.items()}
        evaluation = evaluate_encodings(bundle, id_rows, ood_rows)
        add_baseline(evaluation, bundle, sample.images, ood_images)
        summary, traces = evaluate_sequences(bundle, sequences)
        evaluation.extra['sequences'] = summary
        report = work / ('report' if label == 'teacher' else f'report_{label}')
        write_report(evaluation, report, title=f'Demo evaluation: {label} ({bundle.name})',
                     notes='## Sequences\n\n' + format_sequence_table(summary) + '\n\n'
                     + describe_partitions(bundle))
        write_timelines(traces, report, bundle)
        results.append(_Result(label, path, evaluation, summary))
    done('evaluate')
    step('7/7 timing the full monitor path of both (640x480 rgb8, 1 thread, own processes)')
    timed = bench_models([(str(r.path), None) for r in results],
                         BenchConfig(frames=plan.bench_frames, warmup=30, threads=1))
    for result, bench in zip(results, timed):
        result.bench = bench
    done('bench')
    step('done')
    teacher_result = results[0]
    print()
    print(describe_partitions(bundles['teacher'][0]))
    print()
    print('Teacher, frame-level detection per test-range shift ("named": augmented in training '
          'or used by calibration; the others were never shown to the detector):')
    print(format_table(teacher_result.evaluation))
    for line in baseline_warnings(teacher_result.evaluation):
        print(line)
    print()
    print('Teacher, sequences (m1: all frames OOD, m2: second half, m3: middle half; false '
          f'alarms over {teacher_result.sequences["id_frames"]} distinct in-distribution '
          'frames):')
    print(format_sequence_table(teacher_result.sequences))
    table = side_by_side(results)
    (work / 'teacher_vs_lean.md').write_text(table + '\n')
    print()
    print(f'Teacher and lean bundle side by side ({work / "teacher_vs_lean.md"}):')
    print(table)
    print()
    print('Stage times: ' + ', '.join(f'{k} {v:.0f} s' for k, v in stages.items())
          + f'; total {time.monotonic() - started:.0f} s')
    print(f'\nteacher: {results[0].path}   lean bundle (deploy this one): {results[1].path}'
          f'\nreports: {work / "report" / "report.md"}, {work / "report_lean" / "report.md"}')
    return {r.label: {**r.evaluation.to_dict(), 'bench': r.bench.as_dict()} for r in results} \
        | {'stage_seconds': stages}


def side_by_side(results: list[_Result]) -> str:
    """One Markdown table: latency, size, AUROC per shift and sequence results per bundle."""
    first = results[0]
    names = [f'{r.label} ({r.evaluation.name})' for r in results]
    lines = ['| | ' + ' | '.join(names) + ' |', '|---|' + '---|' * len(results)]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')

    base = first.bench.median_ms['total']
    row('full path ms, median (p99)', [
        f'{r.bench.median_ms["total"]:.3f} ({r.bench.p99_ms["total"]:.3f})'
        + ('' if r is first else f', {base / r.bench.median_ms["total"]:.1f}x faster')
        for r in results])
    stages = ('decode', 'preprocess', 'inference', 'scoring')
    row('decode / preprocess / inference / scoring ms', [
        ' / '.join(f'{r.bench.median_ms[s]:.3f}' for s in stages) for r in results])
    row('bundle size', [f'{r.bench.size_bytes / 1e6:.2f} MB' for r in results])
    row('encoder MMAC / parameters', [
        f'{r.bench.macs / 1e6:.2f} / {r.bench.parameters / 1e6:.3f} M' for r in results])
    named = set(first.evaluation.named)
    order = sorted(first.evaluation.metrics, key=lambda s: s not in named)
    for shift in order:
        label = f'AUROC {shift}' + (' (named)' if shift in named else '')
        cells = []
        for r in results:
            value = r.evaluation.auroc(shift)
            delta = '' if r is first else f' ({value - first.evaluation.auroc(shift):+.3f})'
            cells.append(f'{value:.3f}{delta}')
        row(label, cells)
    for mode in ('cusum', 'threshold'):
        cells = []
        for r in results:
            m = r.sequences['modes'].get(mode)
            if m is None:
                cells.append('-')
                continue
            median = '-' if m['median_delay'] is None else f'{m["median_delay"]:g}'
            cells.append(f'{m["false_alarms"]} false alarms in {m["id_frames"]} ID frames, '
                         f'{m["missed_segments"]}/{m["segments"]} missed, median delay {median}')
        row(f'sequences, {mode}', cells)
    return '\n'.join(lines)


def _demo(args: argparse.Namespace) -> int:
    plan = PLANS['quick' if args.quick else 'full']
    if args.members is not None:
        if args.members < 1:
            raise ConfigError(f'--members {args.members} must be at least 1.')
        plan = replace(plan, members=args.members)
    run_demo(args.work, plan, seed=args.seed, force=args.force)
    return 0
