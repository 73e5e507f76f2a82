"""``vae-ood bench``: full Monitor path latency, per stage, several models side by side."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from vae_ood_monitor.cli.common import emit_json

if TYPE_CHECKING:
    from vae_ood_monitor.evaluate.bench import BenchResult

__all__ = ['EAGER_LOADER', 'format_bench', 'register']

#: Turns a training run directory into (bundle, PyTorch eager encoder) inside the child process.
EAGER_LOADER = 'vae_ood_monitor.train.eager:eager_bundle'


def _input_spec(text: str) -> tuple[int, int, str]:
    size, _, encoding = text.partition(':')
    try:
        width, height = (int(v) for v in size.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'--input {text!r} must look like 640x480:rgb8 (or 640x480:jpeg)') from None
    return width, height, encoding or 'rgb8'


def register(commands: argparse._SubParsersAction) -> None:
    """Add the bench command."""
    parser = commands.add_parser(
        'bench', help='time the full monitor path per stage for one or more models',
        description='MODEL is a bundle (.vood, ONNX Runtime) or a training run directory '
        '(PyTorch eager, needs the train extra). Each model runs in its own process after a '
        'warm-up; the table shows median and p99 per stage, frames/s, size, parameters, MACs '
        'and peak resident memory, and speed-ups relative to the first model.')
    parser.add_argument('models', nargs='+', help='bundles and/or training run directories')
    parser.add_argument('--threads', type=int, default=1, help='inference threads (default 1)')
    parser.add_argument('--frames', type=int, default=500, help='timed frames per model')
    parser.add_argument('--warmup', type=int, default=50, help='untimed frames first')
    parser.add_argument('--input', type=_input_spec, default=(640, 480, 'rgb8'),
                        metavar='WxH:ENCODING',
                        help='camera frames to feed (default 640x480:rgb8; any sensor_msgs '
                        'encoding the bag maker writes, or jpeg/png for CompressedImage)')
    parser.add_argument('--providers', nargs='+', default=['cpu'],
                        help='execution providers in order of preference (cpu, cuda, tensorrt)')
    parser.add_argument('--no-isolate', action='store_true',
                        help='run all models in this process (peak memory then accumulates)')
    parser.add_argument('--json', action='store_true', help='print results as JSON')
    parser.set_defaults(func=_bench)


def format_bench(results: list[BenchResult]) -> str:
    """Format benchmark results as a Markdown table with speed-ups against the first row."""
    base = results[0].median_ms['total']
    flow = any(r.median_ms.get('flow', 0) > 0 for r in results)  # a flow bundle among them
    lines = ['| model | runtime | decode | preprocess | ' + ('flow | ' if flow else '')
             + 'inference | scoring | total (p99) ms | frames/s | x first | overhead | size | '
             'params | MMAC | peak RSS |', '|' + '---|' * (15 if flow else 14)]
    for r in results:
        med, p99 = r.median_ms, r.p99_ms
        overhead = (med['decode'] + med['preprocess'] + med.get('flow', 0)
                    + med['scoring']) / med['inference']
        lines.append(
            f'| {r.name} | {r.runtime}/{r.provider} | {med["decode"]:.3f} | '
            f'{med["preprocess"]:.3f} | ' + (f'{med["flow"]:.3f} | ' if flow else '')
            + f'{med["inference"]:.3f} | {med["scoring"]:.3f} | '
            f'{med["total"]:.3f} ({p99["total"]:.3f}) | {r.fps:.0f} | '
            f'{base / med["total"]:.1f}x | {overhead:.1%} | {r.size_bytes / 1e6:.2f} MB | '
            f'{r.parameters / 1e6:.3f} M | {r.macs / 1e6:.1f} | {r.peak_rss_mb:.0f} MB |')
    return '\n'.join(lines)


def _bench(args: argparse.Namespace) -> int:
    from vae_ood_monitor.evaluate.bench import bench_models, BenchConfig

    width, height, encoding = args.input
    config = BenchConfig(width=width, height=height, encoding=encoding, frames=args.frames,
                         warmup=args.warmup, threads=args.threads,
                         providers=tuple(args.providers))
    models = [(m, EAGER_LOADER if Path(m).is_dir() else None) for m in args.models]
    results = bench_models(models, config, isolate=not args.no_isolate)
    if args.json:
        emit_json({'config': vars(config) if hasattr(config, '__dict__') else str(config),
                   'results': [r.as_dict() for r in results]})
    else:
        print(f'input {width}x{height} {encoding}, {args.threads} thread(s), {args.frames} '
              f'frames after {args.warmup} warm-up; overhead = (decode + preprocess [+ flow] + '
              'scoring) / inference')
        print(format_bench(results))
        for r in results:
            for note in r.notes:
                print(f'note ({r.name}): {note}')
    return 0
