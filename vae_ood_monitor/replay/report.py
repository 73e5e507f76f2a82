"""The replay report: summary.json, a timeline plot per camera, ground-truth metrics.

Ground truth is a CSV with the columns ``stamp_ns,label`` (label 0 = in distribution, 1 =
OOD) and an optional ``topic`` column; a row is matched to a frame by its header stamp exactly
(a row without topic applies to every camera). Frames without a row are left out of the
metrics. With ground truth each camera gets the frame-level AUROC of the score, the detection
delay (frames from each OOD onset to the first alert frame of that OOD segment), the false
alarm onsets (alarm starts on in-distribution frames) per 1000 in-distribution frames and the
missed OOD segments (no alert frame inside them).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
import json
from pathlib import Path
import shutil
from typing import Any, Callable, Mapping, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.errors import ReplayError
from vae_ood_monitor.core.stats import STAGES
from vae_ood_monitor.evaluate.spans import first_detection, ranked, runs

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from vae_ood_monitor.replay.replay import CameraTrack, ReplayResult

__all__ = ['Labels', 'SUMMARY_FILE', 'SUMMARY_SCHEMA', 'TimelinePlot', 'alarm_spans',
           'find_labels', 'ground_truth_metrics', 'read_labels', 'summarize', 'write_report']

#: Draws named per-frame series into a PNG: ``plot(series, path, truth=, alarms=, thresholds=,
#: title=)`` returns the path. The caller passes one (the CLI passes
#: ``vae_ood_monitor.evaluate.plots.plot_timeline``; matplotlib stays out of replay itself).
TimelinePlot = Callable[..., Path]

SUMMARY_FILE = 'summary.json'
SUMMARY_SCHEMA = 1
LABELS_FILE = 'labels.csv'


@dataclass(frozen=True)
class Labels:
    """Ground truth by header stamp; ``(None, stamp)`` rows apply to every topic."""

    path: Path
    rows: Mapping[tuple[str | None, int], int] = field(default_factory=dict)

    def for_frames(self, topic: str, stamps: NDArray[np.int64]) -> NDArray[np.int8]:
        """Label per frame: 1 OOD, 0 in distribution, -1 unknown."""
        rows = self.rows
        out = np.full(len(stamps), -1, np.int8)
        for i, stamp in enumerate(stamps.tolist()):
            label = rows.get((topic, stamp), rows.get((None, stamp)))
            if label is not None:
                out[i] = label
        return out


def read_labels(path: str | Path) -> Labels:
    """Parse a ground-truth CSV (``stamp_ns,label[,topic]``).

    Raises:
        ReplayError: missing file or column, or a bad value (with its line number).
    """
    path = Path(path)
    if not path.is_file():
        raise ReplayError(f"Labels file '{path}' does not exist; pass a CSV with columns "
                          'stamp_ns,label[,topic].')
    rows: dict[tuple[str | None, int], int] = {}
    with open(path, newline='', encoding='utf-8-sig') as stream:
        reader = csv.DictReader(stream)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [c for c in ('stamp_ns', 'label') if c not in header]
        if missing:
            raise ReplayError(f"{path} line 1: missing column(s) {', '.join(missing)} (header "
                              f'{header}); expected stamp_ns,label[,topic].')
        for row in reader:
            row = {(k or '').strip(): (v or '').strip() for k, v in row.items()}
            if not any(row.values()):
                continue
            where = f'{path} line {reader.line_num}'
            try:
                stamp = int(row['stamp_ns'])
            except ValueError:
                raise ReplayError(f"{where}: stamp_ns {row['stamp_ns']!r} is not an integer "
                                  '(nanoseconds of the header stamp).') from None
            if row['label'] not in ('0', '1'):
                raise ReplayError(f"{where}: label {row['label']!r} must be 0 (in "
                                  'distribution) or 1 (OOD).')
            topic = row.get('topic') or None
            rows[(topic, stamp)] = int(row['label'])
    return Labels(path, rows)


def find_labels(bag: str | Path) -> Path | None:
    """Return ``BAG/labels.csv`` when the bag is a folder holding one, else None."""
    candidate = Path(bag) / LABELS_FILE
    return candidate if Path(bag).is_dir() and candidate.is_file() else None


def alarm_spans(track: CameraTrack, bag_start_ns: int | None) -> list[dict[str, Any]]:
    """List the runs of consecutive alert frames of one camera.

    ``start_ns`` / ``end_ns`` are header stamps of the first and last alert frame,
    ``start_index`` / ``end_index`` their message indices in the topic (inclusive), and
    ``start_s`` / ``end_s`` their bag timestamps in seconds from the bag start.
    """
    alert = track.array('alert')
    index, stamp, log = track.array('index'), track.array('stamp_ns'), track.array('log_ns')
    base = bag_start_ns or 0
    spans = []
    for lo, hi in runs(alert):
        fired = sorted({name for names in track.fired[lo:hi] for name in names})
        spans.append({
            'start_ns': int(stamp[lo]), 'end_ns': int(stamp[hi - 1]),
            'start_index': int(index[lo]), 'end_index': int(index[hi - 1]),
            'start_s': round((int(log[lo]) - base) / 1e9, 6),
            'end_s': round((int(log[hi - 1]) - base) / 1e9, 6),
            'frames': hi - lo, 'fired': fired})
    return spans


def ground_truth_metrics(score: NDArray[np.float64], alert: NDArray[np.bool_],
                         labels: NDArray[np.int8],
                         index: NDArray[np.int64] | None = None) -> dict[str, Any]:
    """AUROC, detection delays, false alarm onsets and missed segments over labelled frames.

    Frames labelled -1 (unknown) are dropped first; ``index`` gives the message index reported
    for each onset (default: the position).
    """
    from sklearn.metrics import roc_auc_score

    keep = labels >= 0
    score, alert, truth = score[keep], alert[keep], labels[keep] == 1
    index = (np.arange(keep.size) if index is None else np.asarray(index))[keep]
    n_id, n_ood = int((~truth).sum()), int(truth.sum())
    auroc = float(roc_auc_score(truth, ranked(score))) if n_id and n_ood else None
    onsets = [{'index': int(index[lo]), 'frames': hi - lo,
               'delay_frames': first_detection(alert, lo, hi)} for lo, hi in runs(truth)]
    rising = np.flatnonzero(alert & ~np.r_[False, alert[:-1]]) if alert.size else np.zeros(0)
    false_onsets = int((~truth[rising]).sum()) if rising.size else 0
    delays = [o['delay_frames'] for o in onsets if o['delay_frames'] is not None]
    return {
        'labelled_frames': int(keep.sum()), 'id_frames': n_id, 'ood_frames': n_ood,
        'auroc': auroc,
        'ood_segments': len(onsets),
        'onsets': onsets,
        'mean_delay_frames': float(np.mean(delays)) if delays else None,
        'missed_segments': sum(o['delay_frames'] is None for o in onsets),
        'false_alarm_onsets': false_onsets,
        'false_alarms_per_1000_id_frames': 1000.0 * false_onsets / n_id if n_id else None,
    }


def _latency(track: CameraTrack) -> dict[str, dict[str, float]]:
    values = track.array('latency_ns') / 1e6
    if not len(values):
        return {}
    p50, p99 = np.percentile(values, [50, 99], axis=0)
    peak = values.max(axis=0)
    return {stage: {'p50': round(float(p50[i]), 4), 'p99': round(float(p99[i]), 4),
                    'max': round(float(peak[i]), 4)} for i, stage in enumerate(STAGES)}


def summarize(result: ReplayResult, labels: Labels | None = None) -> dict[str, Any]:
    """Build the JSON-ready summary of a replay (see docs/replay.md for the fields)."""
    cameras: dict[str, Any] = {}
    for camera, track in result.cameras.items():
        entry: dict[str, Any] = {
            'topic': track.topic, 'msgtype': track.msgtype, 'formats': track.formats,
            'frames': track.frames, 'processed': track.processed,
            'failed': dict(sorted(track.failed.items())),
            'alerts': int(track.array('alert').sum()),
            'alarm_spans': alarm_spans(track, result.bag_start_ns),
            'latency_ms': _latency(track),
            'throughput_fps': round(track.processed / result.wall_s, 2) if result.wall_s else 0,
        }
        if labels is not None:
            truth = labels.for_frames(track.topic, track.array('stamp_ns'))
            entry['ground_truth'] = ground_truth_metrics(
                track.array('score'), track.array('alert'), truth, track.array('index'))
        cameras[camera] = entry
    start, stop = result.window_ns
    base = result.bag_start_ns or 0
    return {
        'schema': SUMMARY_SCHEMA,
        'bag': str(result.bag),
        'storage': result.storage.value,
        'bag_start_ns': result.bag_start_ns,
        'window_s': {'start': None if start is None else (start - base) / 1e9,
                     'end': None if stop is None else (stop - base) / 1e9},
        'model': {'name': result.model_name, 'sha256': result.model_sha256},
        'decision': result.mode.value,
        'output_bag': None if result.out is None else str(result.out),
        'labels': None if labels is None else str(labels.path),
        'frames': sum(t.frames for t in result.cameras.values()),
        'processed': result.processed,
        'wall_s': round(result.wall_s, 4),
        'model_load_s': round(result.load_s, 4),
        'throughput_fps': round(result.throughput, 2),
        'stopped_early': None if result.stopped is None else result.stopped.as_dict(),
        'recovered': result.recovered,
        'notes': list(result.notes),
        'cameras': cameras,
    }


def plot_camera(plot: TimelinePlot, track: CameraTrack, path: Path,
                truth: NDArray[np.int8] | None = None, title: str = '') -> Path:
    """Draw score and evidence (1 at the trigger) with alarm and OOD spans through ``plot``."""
    evidence_name = 'evidence (x trigger)'
    return plot(
        {'KL score': track.array('score'), evidence_name: track.array('evidence')}, path,
        truth=None if truth is None else truth == 1, alarms=track.array('alert'),
        thresholds={evidence_name: 1.0}, title=title or track.topic)


def write_report(result: ReplayResult, out: str | Path, labels: Labels | None = None, *,
                 force: bool = False, summary: dict[str, Any] | None = None,
                 plot: TimelinePlot | None = None) -> dict[str, Any]:
    """Write ``out/summary.json`` and, with ``plot``, ``out/<camera>/timeline.png``.

    Returns the summary (with each camera's ``timeline`` path when drawn).

    Raises:
        ReplayError: ``out`` exists and ``force`` is False.
    """
    out = Path(out)
    if out.exists():
        if not force:
            raise ReplayError(f"Report folder '{out}' exists; choose another one or pass "
                              '--force to replace it.')
        if out.is_dir():
            shutil.rmtree(out)
        else:
            out.unlink()
    summary = summary if summary is not None else summarize(result, labels)
    out.mkdir(parents=True)
    for camera, track in result.cameras.items():
        if not track.processed or plot is None:
            continue
        truth = None if labels is None else labels.for_frames(track.topic,
                                                              track.array('stamp_ns'))
        drawn = plot_camera(plot, track, out / camera / 'timeline.png', truth,
                            f'{camera} ({result.mode.value})')
        summary['cameras'][camera]['timeline'] = drawn.relative_to(out).as_posix()
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + '\n', encoding='utf-8')
    return summary
