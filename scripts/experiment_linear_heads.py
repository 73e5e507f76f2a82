"""Experiment (not a feature): score a named partition by a learned linear head over all dims.

The labelled rule scores a partition by the KL sum over a few chosen dims. This experiment
replaces that sum, for each named partition (rain, brightness), by a logistic-regression head
over log(KL + 1e-3) of every latent dim, fitted on in-distribution frames against the same
frames with the partition's shift at a test-range severity (what the labelled rule sees), and
scored as softplus(w . log(KL + eps) + b) so that it stays positive for the change twins. The
head's score is appended to the KL rows as an extra column that the partition then "selects";
everything else (conformal scores, thresholds, change twins, CUSUM fit, sequence evaluation) is
the shipped code, unchanged. It monkeypatches ``kl_of_images`` and ``_plan`` of
``vae_ood_monitor.evaluate.calibration`` for that, which is why it lives here and not in the
package. Findings: docs/linear_heads.md.

Usage, after ``make demo`` (work/demo) and rendering extra held-out drives with ``vae-ood data
synth`` (or cmd_data.synthesize) into a folder::

    python scripts/experiment_linear_heads.py --work work/demo --extra extra_drives \
        --drives 800 --fit demo --share 0.75 --C 0.01

``--fit demo`` fits the heads on the demo's 200 calibration drives and calibrates on the extra
drives only (heads out of sample for the calibration); ``--fit b`` fits them on the
calibration's own B half (in sample: its CUSUM thresholds come out too low).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import hashlib
import json
from pathlib import Path
import time

import numpy as np

from vae_ood_monitor.core.bundle import load_bundle
from vae_ood_monitor.core.typedefs import DimSelection, Tail
from vae_ood_monitor.data.dataset import concat_frames, load_frames
from vae_ood_monitor.data.shifts import shift_frames
from vae_ood_monitor.evaluate.calibrate import PartitionPlan
import vae_ood_monitor.evaluate.calibration as calmod
import vae_ood_monitor.evaluate.scores as scoremod
from vae_ood_monitor.evaluate.sequences import build_sequences, evaluate_sequences

EPS = 1e-3
ENCODE = scoremod.kl_of_images
PLAN = calmod._plan


class Heads:
    """The heads, the unmodified bundle that encodes, and a KL cache by image hash."""

    def __init__(self, bundle, cache: Path | None) -> None:
        self.bundle = bundle
        self.latent = bundle.manifest.model.latent_dim
        self.heads: dict[str, tuple[np.ndarray, float]] = {}
        self.cache = cache
        self.memo: dict[bytes, np.ndarray] = {}
        if cache and cache.exists():
            with np.load(cache) as stored:
                self.memo = dict(zip((bytes(k) for k in stored['keys']), stored['rows']))

    def save(self) -> None:
        if self.cache and self.memo:
            keys = np.array(list(self.memo), dtype='S20')
            np.savez(self.cache, keys=keys, rows=np.stack(list(self.memo.values())))

    def raw(self, images: np.ndarray) -> np.ndarray:
        keys = [hashlib.sha1(image.tobytes()).digest() for image in images]
        todo = [i for i, key in enumerate(keys) if key not in self.memo]
        if todo:
            for i, row in zip(todo, ENCODE(self.bundle, images[todo])):
                self.memo[keys[i]] = row.astype(np.float32)
        if not keys:
            return np.zeros((0, self.latent))
        return np.stack([self.memo[k] for k in keys]).astype(np.float64)

    def with_columns(self, images: np.ndarray) -> np.ndarray:
        kl = self.raw(images)
        cols = [np.logaddexp(0.0, np.log(kl + EPS) @ w + b) for w, b in self.heads.values()]
        return np.column_stack([kl, *cols]) if cols else kl

    def fit(self, name: str, images: np.ndarray, seed: int, c: float) -> None:
        from sklearn.linear_model import LogisticRegression

        clean = self.raw(images)
        shifted = self.raw(shift_frames(images, name, 'test', seed + calmod.VALIDATION_SEED))
        x = np.log(np.concatenate([clean, shifted]) + EPS)
        y = np.r_[np.zeros(len(clean)), np.ones(len(shifted))]
        model = LogisticRegression(C=c, max_iter=2000, class_weight='balanced').fit(x, y)
        self.heads[name] = (model.coef_[0], float(model.intercept_[0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--work', type=Path, default=Path('work/demo'), help='demo work folder')
    ap.add_argument('--extra', type=Path, help='folder of extra held-out drives')
    ap.add_argument('--drives', type=int, default=0, help='extra drives to use')
    ap.add_argument('--fit', choices=('a', 'b', 'demo'), default='demo')
    ap.add_argument('--no-heads', action='store_true', help='shipped dims (the comparison)')
    ap.add_argument('--share', type=float, default=0.5, help='--sequence-share')
    ap.add_argument('--C', type=float, default=0.01, help='inverse L2 strength of the heads')
    ap.add_argument('--margin', type=float, default=0.25)
    ap.add_argument('--cache', type=Path, help='KL cache (.npz) for repeated runs')
    ap.add_argument('--out', type=Path, help='append the result as a JSON line here')
    args = ap.parse_args()

    bundle = load_bundle(args.work / 'model.vood')
    heads = Heads(bundle, args.cache)
    size = (bundle.manifest.input.height, bundle.manifest.input.width)
    demo_calib = load_frames([args.work / 'data' / 'calib'], *size)
    calib = demo_calib
    if args.drives:
        extra = load_frames([args.extra], *size)
        extra = extra.subset(np.isin(extra.groups, np.unique(extra.groups)[:args.drives]))
        calib = extra if args.fit == 'demo' else concat_frames([demo_calib, extra])
    partitions = ('all', 'rain', 'brightness')
    options = calmod.CalibrationOptions(partitions=partitions, sequence_share=args.share,
                                        margin=args.margin)
    started = time.monotonic()
    if not args.no_heads:
        part_a, part_b = calmod.split_for_calibration(calib, options.sequence_share)
        fit_on = {'a': part_a, 'b': part_b, 'demo': demo_calib}[args.fit]
        for name in partitions[1:]:
            heads.fit(name, fit_on.images, options.seed, args.C)
        model = replace(bundle.manifest.model, latent_dim=heads.latent + len(heads.heads))
        bundle = bundle.with_manifest(model=model)

    def plan(name, opts, kl_b, part_b, kl):
        if name in heads.heads:
            column = heads.latent + list(heads.heads).index(name)
            return (PartitionPlan(name, (column,), DimSelection.LABELLED, Tail.UPPER),
                    {'dims': [column], 'selection': 'linear head', 'tail': 'upper'})
        return PLAN(name, opts, kl_b[:, :heads.latent], part_b, kl)

    def encode(_bundle, images, **_kwargs):
        return heads.with_columns(images)

    calmod.kl_of_images = scoremod.kl_of_images = encode
    calmod._plan = plan
    calibrated, _ = calmod.calibrate(bundle, calib, options, log=print)
    test = load_frames([args.work / 'data' / 'test'], *size)
    sequences = build_sequences(calibrated, test, ('rain', 'brightness'), per_kind=10)
    heads.save()
    summary, _ = evaluate_sequences(calibrated, sequences)
    cusum, m2 = summary['modes']['cusum'], summary['sequence_modes']['m2']['cusum']
    matched = summary.get('threshold_matched') or {}
    result = {'args': {k: str(v) for k, v in vars(args).items()},
              'seconds': round(time.monotonic() - started),
              'false_alarms': cusum['false_alarms'], 'id_frames': cusum['id_frames'],
              'missed': f"{cusum['missed_segments']}/{cusum['segments']}",
              'median_delay': cusum['median_delay'], 'p95_delay': cusum['p95_delay'],
              'm2_missed': f"{m2['missed_segments']}/{m2['segments']}",
              'm2_median_delay': m2['median_delay'], 'm2_p95_delay': m2['p95_delay'],
              'matched_false_alarms': matched.get('false_alarms'),
              'matched_missed': matched.get('missed_segments')}
    print(json.dumps(result, indent=1))
    if args.out:
        with args.out.open('a') as stream:
            stream.write(json.dumps(result) + '\n')


if __name__ == '__main__':
    main()
