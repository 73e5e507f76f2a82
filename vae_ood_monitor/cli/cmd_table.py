"""``vae-ood research table``: the reference paper's comparison, reproduced and beaten.

One benchmark run (side by side, 1 thread, 640x480 rgb8 through the full Monitor path) and one
evaluation over: (a) the paper preset in PyTorch eager fp32 (what the paper deployed), (b) the
paper preset in ONNX Runtime fp32, (c) the uncompressed teacher (default preset) fp32, (d) each
compression step alone, (e) the lean detector.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vae_ood_monitor.cli.common import add_force, check_output
from vae_ood_monitor.cli.options import (add_calibration_options, ALL_SHIFTS, calibration_options,
                                         frame_inputs, source_name)

__all__ = ['register']

STEPS = (('quantisation alone (int8 PTQ)', 'teacher-int8'),
         ('pruning alone (50 % channels, fine-tuned)', 'pruned50'),
         ('distillation alone (half width)', 'student-w0.5'))


def register(commands: argparse._SubParsersAction) -> None:
    """Add the table command."""
    parser = commands.add_parser(
        'table', help="reproduce the paper's compression table (Markdown) in one run",
        description='Benchmarks and evaluates the paper preset (PyTorch eager and ONNX '
        'Runtime), the teacher, each compression step alone and the lean detector; writes a '
        'Markdown table (median/p99 latency, size, parameters, MACs, peak memory, test loss, '
        'AUROC per shift, false alarms at the calibrated threshold).')
    parser.add_argument('--paper-run', type=Path, required=True, help='paper preset run')
    parser.add_argument('--teacher-run', type=Path, required=True, help='default preset run')
    parser.add_argument('--compressed', type=Path, required=True,
                        help='output folder of `vae-ood compress` (candidates/, lean.vood)')
    parser.add_argument('--calib', nargs='+', required=True,
                        help='held-out in-distribution sequences (calibration)')
    parser.add_argument('--val', nargs='+', required=True,
                        help='held-out in-distribution frames (AUROC, test loss)')
    parser.add_argument('--ood', nargs='+', default=[],
                        help='natural OOD frame sources reported as extra columns')
    parser.add_argument('--out', type=Path, required=True, help='Markdown file to write')
    parser.add_argument('--title', default='Compression: the paper reproduced and beaten')
    parser.add_argument('--frames', type=int, default=300, help='timed frames per model')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the validation shifts and calibration')
    add_calibration_options(parser, seed=False)
    add_force(parser)
    parser.set_defaults(func=_table, partitions=['all', 'rain', 'brightness'])


def _table(args: argparse.Namespace) -> int:
    import numpy as np

    from vae_ood_monitor.cli.cmd_bench import EAGER_LOADER, format_bench
    from vae_ood_monitor.core.bundle import load_bundle, save_bundle
    from vae_ood_monitor.core.errors import ConfigError
    from vae_ood_monitor.data.dataset import load_frames
    from vae_ood_monitor.data.shifts import shift_frames
    from vae_ood_monitor.evaluate.bench import bench_models, BenchConfig
    from vae_ood_monitor.evaluate.calibration import calibrate
    from vae_ood_monitor.evaluate.report import evaluate_encodings
    from vae_ood_monitor.evaluate.scores import encodings_of_images
    from vae_ood_monitor.train.export import bundle_from_run
    from vae_ood_monitor.train.runs import load_run

    check_output(args.out, args.force)
    work = args.out.with_suffix('.models')
    work.mkdir(parents=True, exist_ok=True)
    options = calibration_options(args)
    candidates = args.compressed / 'candidates'
    teacher_info, teacher = load_run(args.teacher_run)
    height, width = teacher_info.spec.input_hw
    calib = load_frames(frame_inputs(args.calib), height, width)
    val = load_frames(frame_inputs(args.val), height, width)
    naturals = {source_name(p): load_frames(frame_inputs([p]), height, width) for p in args.ood}
    shifted = {k: shift_frames(val.images, k, 'test', args.seed) for k in ALL_SHIFTS}

    paper_bundle = bundle_from_run(args.paper_run, name='paper-fp32')
    spec = paper_bundle.manifest.input
    paper_bundle, _ = calibrate(paper_bundle, calib.resized(spec.height, spec.width), options)
    paper_path = save_bundle(paper_bundle, work / 'paper-fp32.vood', force=True)
    rows: list[tuple[str, str, str | None]] = [
        ('(a) paper preset, PyTorch eager fp32', str(args.paper_run), EAGER_LOADER),
        ('(b) paper preset, ONNX Runtime fp32', str(paper_path), None),
        ('(c) teacher (default preset), ONNX Runtime fp32',
         str(candidates / 'teacher-fp32.vood'), None)]
    for label, name in STEPS:
        path = candidates / f'{name}.vood'
        if path.is_file():
            rows.append((f'(d) {label}', str(path), None))
    rows.append(('(e) lean detector', str(args.compressed / 'lean.vood'), None))
    for _, path, loader in rows:
        if loader is None and not Path(path).is_file():
            raise ConfigError(f'{path!r} is missing: run `vae-ood compress` first.')

    bench = bench_models([(p, loader) for _, p, loader in rows],
                         BenchConfig(frames=args.frames, warmup=30, threads=1))
    _, paper_model = load_run(args.paper_run)
    lines = [f'# {args.title}', '',
             'Generated by `vae-ood research table` on '
             f'{datetime.now(timezone.utc):%Y-%m-%d} (machine: {_machine()}). Latency: full '
             'Monitor path (decode, preprocess, inference, '
             'scoring) on 640x480 rgb8 frames, batch 1, 1 thread, each model in its own process '
             'after warm-up, one run. AUROC: combined detector evidence on held-out frames '
             'with test-range shifts; test loss: beta-VAE loss on held-out frames (compressed '
             "encoders are scored with the teacher's decoder).", '']
    header = ['model', 'median ms', 'p99 ms', 'x (a)', 'size MB', 'params M', 'MMAC',
              'peak RSS MB', 'test loss'] + [f'AUROC {k}' for k in list(naturals) + list(
                  ALL_SHIFTS)] + ['false alarms @thr']
    lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    base = bench[0].median_ms['total']
    cached: dict[str, Any] = {}
    for (label, path, loader), result in zip(rows, bench):
        key = str(paper_path) if loader else path
        if key not in cached:
            bundle = load_bundle(key)
            size = (bundle.manifest.input.height, bundle.manifest.input.width)
            id_rows = encodings_of_images(bundle, val.resized(*size).images)
            ood = {n: encodings_of_images(bundle, f.resized(*size).images)
                   for n, f in naturals.items()}
            ood.update({k: encodings_of_images(bundle, np.stack([_fit(i, size) for i in v]))
                        for k, v in shifted.items()})
            evaluation = evaluate_encodings(bundle, id_rows, ood)
            decoder = paper_model if loader or path == str(paper_path) else teacher
            cached[key] = (evaluation, _test_loss(bundle, decoder, val))
        evaluation, loss = cached[key]
        med, p99 = result.median_ms['total'], result.p99_ms['total']
        far = float(np.mean(evaluation.id_scores > 1.0))
        cells = [label, f'{med:.3f}', f'{p99:.3f}', f'{base / med:.1f}x',
                 f'{result.size_bytes / 1e6:.2f}', f'{result.parameters / 1e6:.3f}',
                 f'{result.macs / 1e6:.1f}', f'{result.peak_rss_mb:.0f}', f'{loss:.0f}']
        cells += [f'{evaluation.auroc(k):.3f}' for k in list(naturals) + list(ALL_SHIFTS)]
        cells.append(f'{far:.2%}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', '## Per-stage latency (same run)', '', format_bench(bench), '']
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


def _fit(image: Any, size: tuple[int, int]) -> Any:
    from vae_ood_monitor.core.preprocess import resize_image
    return resize_image(image, size[1], size[0], 'area')


def _test_loss(bundle: Any, model: Any, frames: Any) -> float:
    """beta-VAE loss on ``frames`` with ``bundle``'s posterior and ``model``'s decoder."""
    import torch

    from vae_ood_monitor.core.preprocess import Preprocessor
    from vae_ood_monitor.evaluate.scores import batch_session, encode_images
    from vae_ood_monitor.train.losses import vae_loss
    from vae_ood_monitor.train.runtime import images_tensor

    spec = bundle.manifest.input
    images = frames.resized(spec.height, spec.width).images
    mu, logvar = encode_images(batch_session(bundle), Preprocessor(spec), images)
    target_hw = model.spec.input_hw
    targets = frames.resized(*target_hw).images
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(images), 64):
            m = torch.from_numpy(mu[start:start + 64])
            lv = torch.from_numpy(logvar[start:start + 64])
            x = images_tensor(targets[start:start + 64], torch.device('cpu'))
            recon = model.decoder(m)
            total += float(vae_loss(recon, x, m, lv, 1.4)[0]) * len(m)
    return total / len(images)


def _machine() -> str:
    import os
    import platform
    return f'{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} ' \
           f'{platform.python_version()}'
