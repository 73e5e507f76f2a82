"""Leave-one-family-out figures on the demo's synthetic data: named shifts, caught unnamed.

The demo's model is trained with rain and brightness augmentation (and guided dims for them),
and the generic partition's CUSUM is tuned on rain and brightness validation sequences, so its
figures on those two shifts are *named*: they show what the detector learnt, not how it meets
the unexpected. For each family F of ``--families`` this script trains the demo's model
without F (augmentation and guided dims of the other families only), calibrates the default
alert without F (F never tunes anything), and reports the frame-level AUROC and the sequence
results on F, now an unnamed shift, beside every other shift.

    python scripts/eval_leave_one_out.py [--data work/demo/data] [--out work/leave_one_out]
        [--families rain brightness] [--epochs N]

``--data`` is the demo's data folder (train/, calib/, test/ as `vae-ood demo` writes them; the
script synthesises them when missing). Each family trains one model: about 6-10 minutes on two
CPU cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Train, calibrate and evaluate once per left-out family; print one table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', type=Path, default=ROOT / 'work' / 'demo' / 'data')
    parser.add_argument('--out', type=Path, default=ROOT / 'work' / 'leave_one_out')
    parser.add_argument('--families', nargs='+', default=['rain', 'brightness'])
    parser.add_argument('--epochs', type=int, default=None, help="default: the preset's")
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    from vae_ood_monitor.cli.cmd_data import synthesize
    from vae_ood_monitor.cli.cmd_demo import PLANS
    from vae_ood_monitor.cli.options import ALL_SHIFTS
    from vae_ood_monitor.core.errors import ConfigError
    from vae_ood_monitor.data.dataset import load_frames
    from vae_ood_monitor.data.shifts import shift_frames
    from vae_ood_monitor.evaluate.calibration import calibrate, CalibrationOptions
    from vae_ood_monitor.evaluate.report import evaluate_encodings
    from vae_ood_monitor.evaluate.scores import encodings_of_images
    from vae_ood_monitor.evaluate.sequence_eval import build_sequences, evaluate_sequences
    from vae_ood_monitor.train.export import bundle_from_run
    from vae_ood_monitor.train.trainer import train, TrainConfig

    augmented = TrainConfig().augment
    unknown = [f for f in args.families if f not in augmented]
    if unknown:
        raise ConfigError(f'Families {unknown!r} are not augmented in training; leave out one '
                          f'of: {", ".join(augmented)}.')
    plan = PLANS['full']
    sets = {'train': (plan.train_drives, args.seed),
            'calib': (plan.calib_drives, args.seed + 10_000),
            'test': (plan.test_drives, args.seed + 20_000)}
    for name, (drives, first) in sets.items():
        if not (args.data / name).is_dir():
            synthesize(args.data / name, sequences=drives, frames=plan.frames, size=(160, 120),
                       seed=first, shift=None, severity='test', mode='id', force=False)
    train_set = load_frames([args.data / 'train'], 120, 160)
    calib = load_frames([args.data / 'calib'], 120, 160)
    test = load_frames([args.data / 'test'], 120, 160)
    sample = test.subset(slice(0, len(test), max(1, len(test) // plan.eval_frames)))
    results = {}
    for family in args.families:
        started = time.monotonic()
        others = tuple(k for k in augmented if k != family)
        run = args.out / f'without_{family}'
        if not (run / 'model.pt').is_file():
            train(train_set, run, TrainConfig(preset=plan.preset, epochs=args.epochs,
                                              seed=args.seed, augment=others,
                                              select_shifts=others or ('fog',)),
                  force=True)
        bundle = bundle_from_run(run, name=f'without-{family}')
        options = CalibrationOptions(seed=args.seed, validation_shifts=others or ('fog',))
        bundle, _ = calibrate(bundle, calib, options)
        id_rows = encodings_of_images(bundle, sample.images)
        ood = {k: encodings_of_images(bundle, shift_frames(sample.images, k, 'test', args.seed))
               for k in ALL_SHIFTS}
        evaluation = evaluate_encodings(bundle, id_rows, ood)
        sequences = build_sequences(bundle, test, (family,), per_kind=plan.shifted_drives,
                                    seed=args.seed)
        summary, _ = evaluate_sequences(bundle, sequences)
        cusum = summary['modes']['cusum'] if 'cusum' in summary.get('modes', {}) else {}
        results[family] = {'named': list(evaluation.named),
                           'auroc': {k: evaluation.auroc(k) for k in ALL_SHIFTS},
                           'sequences': cusum, 'seconds': time.monotonic() - started}
        print(f'without {family}: named {evaluation.named}; AUROC '
              + ', '.join(f'{k} {evaluation.auroc(k):.3f}' for k in ALL_SHIFTS), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'summary.json').write_text(json.dumps(results, indent=1, default=str))
    print('\n| left out | AUROC on it (unnamed) | ' + ' | '.join(ALL_SHIFTS)
          + ' | sequences on it (cusum): missed / median delay / false alarms |')
    print('|' + '---|' * (len(ALL_SHIFTS) + 3))
    for family, result in results.items():
        seq = result['sequences']
        cells = ' | '.join(f'{result["auroc"][k]:.3f}' for k in ALL_SHIFTS)
        seq_text = (f'{seq.get("missed_segments")}/{seq.get("segments")} / '
                    f'{seq.get("median_delay")} / {seq.get("false_alarms")} in '
                    f'{seq.get("id_frames")}' if seq else '-')
        print(f'| {family} | {result["auroc"][family]:.3f} | {cells} | {seq_text} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
