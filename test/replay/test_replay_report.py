"""Tests of replay/report.py: summary.json, timeline plots, ground-truth metrics.

(Named test_replay_report.py, not test_report.py: test folders are not packages, so test
file names must be unique across folders and evaluate/report.py has its own.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from replay_testing import frames, tuned_bundle

from vae_ood_monitor.core.errors import ReplayError
from vae_ood_monitor.core.monitor import MonitorConfig
from vae_ood_monitor.core.session import SessionConfig
from vae_ood_monitor.evaluate.plots import plot_timeline
from vae_ood_monitor.replay.bagmaker import BagSpec, make_bag, T0_NS
from vae_ood_monitor.replay.replay import CameraTrack, replay_bag, ReplayConfig
from vae_ood_monitor.replay.report import (alarm_spans, find_labels, ground_truth_metrics,
                                           read_labels, summarize, write_report)


def test_ground_truth_metrics_by_hand() -> None:
    #          0  1  2  3  4  5  6  7  8  9 10 11
    labels = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, -1], np.int8)
    alert = np.array([0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1], bool)
    score = np.array([1, 2, 5, 6, 7, 3, 1, 4, 8, 0, 2, 9], float)
    metrics = ground_truth_metrics(score, alert, labels)
    assert metrics['labelled_frames'] == 11
    assert (metrics['id_frames'], metrics['ood_frames']) == (6, 5)
    # onset at 2 is detected at 3 (delay 1); the segment 7-8 has no alert frame (missed)
    assert metrics['onsets'] == [{'index': 2, 'frames': 3, 'delay_frames': 1},
                                 {'index': 7, 'frames': 2, 'delay_frames': None}]
    assert metrics['missed_segments'] == 1 and metrics['mean_delay_frames'] == 1.0
    # alarm onsets at 1 (ID: false), 3 (OOD) and 10 (ID: false); 11 is unlabelled
    assert metrics['false_alarm_onsets'] == 2
    assert metrics['false_alarms_per_1000_id_frames'] == pytest.approx(2000 / 6)
    # ID scores 1 2 3 1 0 2 against OOD 5 6 7 4 8: perfectly separated
    assert metrics['auroc'] == 1.0


def test_alarm_on_at_onset_is_not_a_detection_and_broken_scores_rank_first() -> None:
    # the same rule as the offline sequence evaluation: an alarm raised on the ID frames before
    # the onset and still on is a false alarm; only an alarm that begins inside the span detects
    labels = np.array([0, 0, 1, 1, 1, 1, 0, 1, 1], np.int8)
    alert = np.array([0, 1, 1, 0, 1, 1, 0, 1, 1], bool)
    score = np.array([1, 2, np.inf, np.nan, 5, 6, 0, 3, 4], float)  # broken encoder output
    metrics = ground_truth_metrics(score, alert, labels)
    assert [o['delay_frames'] for o in metrics['onsets']] == [2, 0]
    assert metrics['false_alarm_onsets'] == 1
    assert metrics['auroc'] == 1.0


def test_auroc_needs_both_classes() -> None:
    metrics = ground_truth_metrics(np.ones(3), np.zeros(3, bool), np.zeros(3, np.int8))
    assert metrics['auroc'] is None and metrics['ood_segments'] == 0
    assert metrics['false_alarms_per_1000_id_frames'] == 0.0


def test_alarm_spans_by_hand() -> None:
    track = CameraTrack('front', '/front', 'sensor_msgs/msg/Image')
    track.index = [0, 1, 2, 4, 5, 6]  # message 3 failed to decode
    track.alert = [False, True, True, True, False, True]
    track.fired = [(), ('all',), ('all', 'b'), (), (), ('b',)]
    track.log_ns = [10**9 + k * 10**8 for k in track.index]
    track.stamp_ns = [5 + k for k in track.index]
    assert alarm_spans(track, 10**9) == [
        {'start_ns': 6, 'end_ns': 9, 'start_index': 1, 'end_index': 4, 'start_s': 0.1,
         'end_s': 0.4, 'frames': 3, 'fired': ['all', 'b']},
        {'start_ns': 11, 'end_ns': 11, 'start_index': 6, 'end_index': 6, 'start_s': 0.6,
         'end_s': 0.6, 'frames': 1, 'fired': ['b']}]


def test_read_labels(tmp_path: Path) -> None:
    path = tmp_path / 'labels.csv'
    path.write_text('stamp_ns,label,topic\n10,0,\n20,1,/front\n20,0,\n\n')
    labels = read_labels(path)
    stamps = np.array([10, 20, 30])
    assert labels.for_frames('/front', stamps).tolist() == [0, 1, -1]
    assert labels.for_frames('/rear', stamps).tolist() == [0, 0, -1]


@pytest.mark.parametrize('text, match', [
    ('stamp,label\n1,0\n', r'line 1: missing column\(s\) stamp_ns'),
    ('stamp_ns,label\n1,2\n', "line 2: label '2' must be 0"),
    ('stamp_ns,label\n1,0\nsoon,1\n', "line 3: stamp_ns 'soon' is not an integer"),
])
def test_bad_labels(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / 'labels.csv'
    path.write_text(text)
    with pytest.raises(ReplayError, match=match):
        read_labels(path)
    with pytest.raises(ReplayError, match='does not exist'):
        read_labels(tmp_path / 'missing.csv')


def test_report_of_a_labelled_replay(tmp_path: Path) -> None:
    made = make_bag('synth:fog:m3:40:3', tmp_path / 'bag', BagSpec(topic='/cam/image_raw',
                                                                   size=(64, 48)))
    assert find_labels(made.path) == made.path / 'labels.csv'
    assert find_labels(made.path / 'bag.mcap') is None
    labels = read_labels(made.path / 'labels.csv')
    config = ReplayConfig(monitor=MonitorConfig(decision='threshold',
                                                session=SessionConfig(warmup=0)))
    result = replay_bag(made.path, tuned_bundle(), config)
    summary = write_report(result, tmp_path / 'report', labels, plot=plot_timeline)
    assert json.loads((tmp_path / 'report' / 'summary.json').read_text()) == summary
    assert (tmp_path / 'report' / 'cam_image_raw' / 'timeline.png').stat().st_size > 1000
    assert summary['bag'] == str(made.path) and summary['decision'] == 'threshold'
    assert summary['model'] == {'name': 'tiny-linear',
                                'sha256': tuned_bundle().manifest.model.sha256}
    assert summary['stopped_early'] is None and summary['bag_start_ns'] == T0_NS
    camera = summary['cameras']['cam_image_raw']
    assert camera['timeline'] == 'cam_image_raw/timeline.png'
    assert (camera['frames'], camera['processed'], camera['failed']) == (40, 40, {})
    assert camera['alerts'] == sum(s['frames'] for s in camera['alarm_spans']) > 0
    span = camera['alarm_spans'][0]
    assert span['start_index'] == 10 and span['start_s'] == 0.5  # fog starts at frame 10
    assert span['start_ns'] == T0_NS + 10 * 50_000_000 and span['fired'] == ['all']
    assert set(camera['latency_ms']) == {'decode', 'preprocess', 'flow', 'inference',
                                         'scoring', 'total'}
    total = camera['latency_ms']['total']
    assert 0 < total['p50'] <= total['p99'] <= total['max']
    assert summary['throughput_fps'] > 0 and camera['throughput_fps'] > 0
    truth = camera['ground_truth']
    assert truth['labelled_frames'] == 40 and truth['ood_frames'] == 20
    assert truth['auroc'] > 0.9
    assert truth['onsets'] == [{'index': 10, 'frames': 20, 'delay_frames': 0}]
    assert truth['missed_segments'] == 0 and truth['false_alarm_onsets'] == 0
    with pytest.raises(ReplayError, match="Report folder '.*report' exists"):
        write_report(result, tmp_path / 'report')
    replaced = write_report(result, tmp_path / 'report', force=True)  # no plotter: no plots
    assert replaced['labels'] is None and 'timeline' not in replaced['cameras']['cam_image_raw']
    assert not (tmp_path / 'report' / 'cam_image_raw').exists()


def test_summary_of_a_cut_bag_says_where_it_stopped(tmp_path: Path) -> None:
    made = make_bag(frames(), tmp_path / 'bag', BagSpec(topic='/cam/image_raw'))
    storage = made.path / 'bag.mcap'
    with open(storage, 'r+b') as stream:
        stream.truncate(storage.stat().st_size // 2)
    result = replay_bag(made.path, tuned_bundle(), ReplayConfig(monitor=MonitorConfig(
        session=SessionConfig(warmup=0))))
    summary = summarize(result)
    stop = summary['stopped_early']
    processed = summary['cameras']['cam_image_raw']['processed']
    assert stop['index'] == processed and stop['stamp_ns'] == T0_NS + (processed - 1) * 50_000_000
    assert 'EndOfFile' in stop['reason'] and summary['recovered']
