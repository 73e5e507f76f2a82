"""``vae-ood replay`` and ``vae-ood bag``: bags in, monitor decisions, reports and bags out."""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
from typing import Any, TYPE_CHECKING

from vae_ood_monitor.cli.common import add_force, emit_json, parse_size, progress

if TYPE_CHECKING:
    from vae_ood_monitor.replay.compare import Comparison

__all__ = ['format_summary', 'register']

STORAGES = ('mcap', 'sqlite3')


def register(commands: argparse._SubParsersAction) -> None:
    """Add the replay and bag commands."""
    parser = commands.add_parser(
        'replay', help='run the monitor over ROS 2 bags exactly like the live node',
        description='MODEL BAG: reads a ROS 2 bag (a bag folder or one .mcap/.db3 file; no ROS '
        'needed), runs the monitor on its camera topics with per-camera state and header '
        "stamps as the node does, and optionally writes the node's output topics into a new "
        'bag, a report (summary.json, timeline plots, ground-truth metrics) and a regression '
        'comparison with a baseline summary (exit code 1 when alarm spans differ). A damaged '
        'bag is processed up to the damage (exit 0 with a warning). MODEL BAG... (several '
        'bags, folders of bags or .txt lists of bags, or --workers/--ray): replays a fleet '
        'archive into --report DIR (a result folder per bag, fleet.json and fleet.md), '
        '--workers N processes at a time or as tasks on a Ray cluster (--ray); a bag that '
        'cannot be read is reported and the others go on; --resume continues an interrupted '
        'run; --baseline compares with an earlier fleet report (exit code 1 when any bag '
        'changed its alarms or lost detections).')
    parser.add_argument('model', type=Path, metavar='MODEL', help='the calibrated bundle (.vood)')
    parser.add_argument('bags', nargs='*', type=Path, metavar='BAG',
                        help='bags (a bag folder, .mcap or .db3 file), folders of bags or .txt '
                        'lists of bags')
    parser.add_argument('--model', dest='model_option', type=Path, default=None,
                        help=argparse.SUPPRESS)  # deprecated: the model comes first
    parser.add_argument('--workers', type=int, default=None, metavar='N',
                        help='several bags: replay N at a time in processes on this machine '
                        '(default 1)')
    parser.add_argument('--ray', default=None, metavar='ADDRESS',
                        help="several bags: run each as a task on a Ray cluster ('auto' to "
                        "join the cluster this machine belongs to, an address, or 'local' for "
                        'a Ray instance started here; needs the fleet extra)')
    parser.add_argument('--resume', action='store_true',
                        help='several bags: keep the complete results an interrupted run left '
                        'in --report (made with the same model)')
    parser.add_argument('--write-bags', action='store_true',
                        help="several bags: write each bag's output topics to "
                        'REPORT/bags/<bag>/bag')
    parser.add_argument('--topic', action='append', default=[], dest='topics', metavar='TOPIC',
                        help='camera topic (sensor_msgs/Image or CompressedImage); repeat for '
                        "several cameras (default: the bag's only image topic)")
    parser.add_argument('--out', type=Path, default=None, metavar='OUT_BAG',
                        help="write the node's outputs (ood/<camera>/alert, score, kl, "
                        'ood/alert, ood/score, /diagnostics) into this new bag folder')
    parser.add_argument('--storage', choices=STORAGES, default='mcap',
                        help='storage of the output bag (default mcap)')
    parser.add_argument('--copy-input', action='store_true',
                        help='also copy the camera topics into the output bag')
    parser.add_argument('--debug-image', action='store_true',
                        help='also write ood/<camera>/debug_image (rgb8 overlay for rviz)')
    parser.add_argument('--report', type=Path, default=None, metavar='DIR',
                        help='write DIR/summary.json and DIR/<camera>/timeline.png (several '
                        'bags: DIR/fleet.json, DIR/fleet.md and DIR/bags/<bag>/)')
    parser.add_argument('--labels', type=Path, default=None, metavar='CSV',
                        help='ground truth stamp_ns,label[,topic] (default: BAG/labels.csv '
                        'when present)')
    parser.add_argument('--start', type=float, default=None, metavar='S',
                        help='skip the first S seconds of the bag')
    parser.add_argument('--end', type=float, default=None, metavar='S',
                        help='stop S seconds after the bag start')
    parser.add_argument('--decision', choices=('cusum', 'threshold'), default=None,
                        help='decision rule (default: cusum when the bundle has CUSUM '
                        'parameters, else threshold)')
    parser.add_argument('--frozen-frames', type=int, default=0, metavar='N',
                        help='alert while a camera repeats one frame N times in a row (as the '
                        'node parameter frozen_frames; default 0: off)')
    parser.add_argument('--threads', type=int, default=1,
                        help='inference and OpenCV threads (default 1, as on the robot)')
    parser.add_argument('--diagnostics-period', type=float, default=1.0, metavar='S',
                        help='bag seconds between /diagnostics messages (default 1.0)')
    parser.add_argument('--latency-budget-ms', type=float, default=None, metavar='MS',
                        help='diagnostics turn WARN when p99 latency exceeds it (as the node)')
    parser.add_argument('--baseline', type=Path, default=None, metavar='SUMMARY_JSON',
                        help='compare alarm spans with an earlier summary.json (several bags: '
                        'an earlier fleet.json or its folder); exit 1 if they differ beyond '
                        '--tolerance')
    parser.add_argument('--tolerance', type=float, default=0.5, metavar='SECONDS',
                        help='allowed shift of alarm span starts and ends (default 0.5 s)')
    parser.add_argument('--allow-mixed', action='store_true',
                        help='accept frames of different sizes or encodings within a topic')
    parser.add_argument('--json', action='store_true', help='print the summary as JSON')
    add_force(parser)
    parser.set_defaults(func=_replay)

    parser = commands.add_parser(
        'bag', help='write frames (folder, video, tub or synth:...) into a ROS 2 bag',
        description='FRAMES is an image folder, a video file, a donkeycar tub or '
        'synth:SHIFT:MODE[:N[:SEED]] (e.g. synth:rain:m2:200:7, synth:none:id:500: a '
        'labelled synthetic drive). Header stamps equal bag timestamps (1.7e9 s + i / rate, '
        "or the source's own stamps without --rate). Labelled frames also give "
        'BAG/labels.csv, which `vae-ood replay` uses as ground truth.')
    parser.add_argument('frames', help='frame source or synth:SHIFT:MODE[:N[:SEED]]')
    parser.add_argument('--out', type=Path, required=True, help='bag folder to create')
    parser.add_argument('--topic', required=True, help='camera topic, e.g. /camera/image_raw')
    parser.add_argument('--encoding', default='rgb8',
                        help='sensor_msgs/Image encoding: rgb8, bgr8, mono8, rgb16, bayer_*, '
                        'yuv422, ... (default rgb8)')
    parser.add_argument('--compressed', choices=('jpeg', 'png'), default=None,
                        help='write sensor_msgs/CompressedImage instead (topic should end in '
                        '/compressed)')
    parser.add_argument('--rate', type=float, default=None, metavar='HZ',
                        help="frame rate of the stamps (default: the source's stamps; 20 Hz "
                        'for synthetic drives)')
    parser.add_argument('--storage', choices=STORAGES, default='mcap',
                        help='bag storage (default mcap)')
    parser.add_argument('--frame-id', default='camera', help='header frame_id (default camera)')
    parser.add_argument('--padding', type=int, default=0, metavar='N',
                        help='extra bytes at the end of every row (step > row size)')
    parser.add_argument('--big-endian', action='store_true',
                        help='big-endian samples for 16-bit encodings')
    parser.add_argument('--size', type=parse_size, default=None, metavar='WxH',
                        help='frame size (synthetic drives are rendered at it, default 160x120; '
                        'other sources are resized)')
    parser.add_argument('--quality', type=int, default=90, help='JPEG quality (default 90)')
    parser.add_argument('--limit', type=int, default=None, metavar='N',
                        help='write at most N frames')
    add_force(parser)
    parser.set_defaults(func=_bag)


def _warn(command: str, text: str) -> None:
    print(f'vae-ood {command}: warning: {text}', file=sys.stderr)


def _replay(args: argparse.Namespace) -> int:
    from vae_ood_monitor.core.errors import ConfigError
    from vae_ood_monitor.replay.fleet import find_bags

    if args.model_option is not None:
        _warn('replay', '--model is deprecated: give the model first (vae-ood replay MODEL '
              'BAG...)')
        model, paths = args.model_option, [args.model, *args.bags]
    elif not args.bags:
        raise ConfigError('Give the model and at least one bag: vae-ood replay MODEL BAG...')
    else:
        model, paths = args.model, list(args.bags)
    fleet = (len(paths) > 1 or _holds_bags(paths[0]) or args.workers is not None
             or args.ray is not None or args.resume)
    if fleet:
        return _replay_fleet(args, model, find_bags(paths))
    if args.write_bags:
        raise ConfigError('--write-bags is for several bags; with one, --out OUT_BAG.')
    args.bag, args.model = paths[0], model
    return _replay_one(args)


def _holds_bags(path: Path) -> bool:
    """Whether one path names several bags: a folder of bags or a .txt list of them."""
    from vae_ood_monitor.replay.bagtypes import holds_bags

    if path.is_dir():
        return holds_bags(path)
    if path.suffix == '.txt' and path.is_file():
        lines = [line.strip() for line in path.read_text(errors='replace').splitlines()]
        named = [line for line in lines if line and not line.startswith('#')]
        return bool(named) and all((path.parent / line).exists() for line in named)
    return False


#: single-bag options that a fleet replay does not take, with what to use instead
_NOT_FOR_FLEETS = {'out': 'use --write-bags', 'labels': 'each bag uses its own labels.csv',
                   'start': None, 'end': None, 'copy_input': None, 'debug_image': None,
                   'latency_budget_ms': None, 'allow_mixed': None}


def _replay_fleet(args: argparse.Namespace, model: Path, bags: list[Path]) -> int:
    import shutil

    from vae_ood_monitor.core.errors import ConfigError
    from vae_ood_monitor.replay.fleet import compare_fleets, format_fleet, load_fleet, run_fleet

    for name, instead in _NOT_FOR_FLEETS.items():
        if getattr(args, name) not in (None, False):
            flag = '--' + name.replace('_', '-')
            raise ConfigError(f'{flag} is for one bag; several bags are replayed whole, '
                              'each as the node would' + (f' ({instead}).' if instead else '.'))
    if args.report is None:
        raise ConfigError('Several bags need --report DIR: the fleet report and a result '
                          'folder per bag go there.')
    if args.baseline is not None:
        baseline = load_fleet(args.baseline)  # fail fast, before hours of replay
    if args.report.exists() and args.force and not args.resume:
        shutil.rmtree(args.report)
    report = run_fleet(model, bags, args.report, workers=args.workers or 1,
                       ray_address=args.ray, topics=tuple(args.topics), decision=args.decision,
                       frozen_frames=args.frozen_frames, write_bags=args.write_bags,
                       resume=args.resume,
                       log=lambda text: print(text, file=sys.stderr if args.json else sys.stdout))
    data = report.as_dict()
    if args.json:
        emit_json(data)
    else:
        print(format_fleet(data))
        print(f'report: {args.report / "fleet.md"}')
    failed = [r for r in report.rows if r['status'] == 'failed']
    for row in failed:
        _warn('replay', f"{row['key']} could not be replayed: {row['error']}")
    if args.baseline is None:
        return 0
    comparison = compare_fleets(baseline, load_fleet(args.report), args.tolerance)
    stream = sys.stderr if args.json else sys.stdout
    for line in comparison.lines():
        print(line, file=stream)
    print(f'baseline: {comparison.same} bag(s) unchanged, {len(comparison.changed)} changed '
          f'({comparison.new_alarms} new alarm span(s), {comparison.lost_detections} lost '
          f'detection(s)), {len(comparison.newly_failed)} newly failed', file=stream)
    return 0 if comparison.ok else 1


def _replay_one(args: argparse.Namespace) -> int:
    import cv2

    from vae_ood_monitor.core.errors import ReplayError
    from vae_ood_monitor.core.monitor import MonitorConfig
    from vae_ood_monitor.core.session import SessionConfig
    from vae_ood_monitor.evaluate.plots import plot_timeline
    from vae_ood_monitor.replay.compare import compare_summaries, load_summary
    from vae_ood_monitor.replay.replay import replay_bag, ReplayConfig
    from vae_ood_monitor.replay.report import (find_labels, read_labels, summarize,
                                               write_report)

    config = ReplayConfig(
        topics=tuple(args.topics),
        monitor=MonitorConfig(decision=args.decision, frozen_frames=args.frozen_frames,
                              session=SessionConfig(threads=args.threads)),
        out=args.out, storage=args.storage, start_s=args.start, end_s=args.end,
        copy_input=args.copy_input, debug_image=args.debug_image,
        allow_mixed=args.allow_mixed, diagnostics_period=args.diagnostics_period,
        latency_budget_ms=args.latency_budget_ms, force=args.force)
    # Fail fast on everything that can be checked before the bag is read.
    if args.report is not None and args.report.exists() and not args.force:
        raise ReplayError(f"Report folder '{args.report}' exists; choose another one or pass "
                          '--force to replace it.')
    baseline = load_summary(args.baseline) if args.baseline is not None else None
    labels_path = args.labels
    if labels_path is None and (found := find_labels(args.bag)) is not None:
        labels_path = found
        print(f'using ground truth {found} (pass --labels to choose another file)',
              file=sys.stderr)
    labels = read_labels(labels_path) if labels_path is not None else None
    if args.threads > 0:
        cv2.setNumThreads(args.threads)

    result = replay_bag(args.bag, args.model, config, progress=progress)
    summary = summarize(result, labels)
    if args.report is not None:
        summary = write_report(result, args.report, labels, force=args.force, summary=summary,
                               plot=plot_timeline)
    comparison = None
    if baseline is not None:
        comparison = compare_summaries(baseline, summary, args.tolerance)
        summary['comparison'] = comparison.as_dict()
    if args.json:
        emit_json(summary)
    else:
        print(format_summary(summary))
        if args.report is not None:
            print(f'report: {args.report / "summary.json"}')
    if result.stopped is not None:
        stop = result.stopped
        _warn('replay', f'the bag is damaged: reading stopped after {stop.index} message(s) '
              f'({stop.reason}); everything before the damage was processed'
              + (' and written' if args.out is not None else ''))
    if comparison is not None:
        return _print_comparison(comparison, args.json)
    return 0


def _print_comparison(comparison: Comparison, quiet: bool) -> int:
    stream = sys.stderr if quiet else sys.stdout
    for note in comparison.notes:
        print(f'baseline note: {note}', file=stream)
    for line in comparison.lines():
        print(line, file=stream)
    if comparison.ok:
        print(f'baseline: all {comparison.matched} alarm span(s) match within '
              f'{comparison.tolerance_s:g} s', file=stream)
        return 0
    print(f'baseline: {len(comparison.differences)} alarm span difference(s) beyond '
          f'{comparison.tolerance_s:g} s', file=stream)
    return 1


def format_summary(summary: dict[str, Any]) -> str:
    """Format a replay summary as a few human-readable lines."""
    lines = [f"replayed {summary['processed']} of {summary['frames']} frame(s) from "
             f"{summary['bag']} in {summary['wall_s']:.2f} s ({summary['throughput_fps']:.1f} "
             f"frames/s), model {summary['model']['name']} "
             f"({summary['model']['sha256'][:12]}), decision {summary['decision']}"]
    for camera, entry in summary['cameras'].items():
        failed = ', '.join(f'{k}: {v}' for k, v in entry['failed'].items())
        spans = entry['alarm_spans']
        shown = ', '.join(f"{s['start_s']:.2f}-{s['end_s']:.2f} s" for s in spans[:5])
        more = f' (+{len(spans) - 5} more)' if len(spans) > 5 else ''
        lines.append(f"  {camera} ({entry['topic']}): {entry['frames']} frames, "
                     f"{entry['processed']} processed"
                     + (f', failed {failed}' if failed else '')
                     + f", {entry['alerts']} alert frame(s) in {len(spans)} alarm span(s)"
                     + (f': {shown}{more}' if spans else ''))
        truth = entry.get('ground_truth')
        if truth:
            auroc = 'n/a' if truth['auroc'] is None else f"{truth['auroc']:.3f}"
            delay = ('n/a' if truth['mean_delay_frames'] is None
                     else f"{truth['mean_delay_frames']:.1f} frames")
            rate = truth['false_alarms_per_1000_id_frames']
            lines.append(f'    ground truth: AUROC {auroc}, mean detection delay {delay}, '
                         f"{truth['missed_segments']} of {truth['ood_segments']} OOD "
                         f"segment(s) missed, {truth['false_alarm_onsets']} false alarm(s)"
                         + ('' if rate is None else f' ({rate:.1f} per 1000 ID frames)'))
    if summary.get('output_bag'):
        lines.append(f"wrote {summary['output_bag']}")
    for note in summary.get('notes', []):
        lines.append(f'note: {note}')
    return '\n'.join(lines)


def _bag(args: argparse.Namespace) -> int:
    from vae_ood_monitor.replay.bagmaker import BagSpec, make_bag

    spec = BagSpec(topic=args.topic, encoding=args.encoding, compressed=args.compressed,
                   rate_hz=args.rate, storage=args.storage, frame_id=args.frame_id,
                   padding=args.padding, limit=args.limit, big_endian=args.big_endian,
                   size=args.size, quality=args.quality)
    made = make_bag(args.frames, args.out, spec, force=args.force, progress=progress)
    for note in made.notes:
        _warn('bag', note)
    kind = f'CompressedImage {args.compressed}' if args.compressed else f'Image {args.encoding}'
    seconds = (made.end_ns - made.start_ns) / 1e9
    print(f'wrote {made.path} ({args.storage}): {made.count} frames on {made.topic} '
          f'({kind}) over {seconds:.2f} s'
          + (f'; ground truth {made.labels}' if made.labels else ''))
    return 0
