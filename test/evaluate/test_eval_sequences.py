"""Sequence-level evaluation (evaluate/sequence_eval.py) on constructed encoding-row sequences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vae_ood_monitor.core.bundle import Bundle
from vae_ood_monitor.core.encoding import Layout
from vae_ood_monitor.core.manifest import CusumParams, Partition
from vae_ood_monitor.core.typedefs import DecisionMode
from vae_ood_monitor.data.shifts import SEVERITY_RANGES, ShiftKind
from vae_ood_monitor.evaluate.cusum_fit import log_martingales, run_cusum
from vae_ood_monitor.evaluate.scores import encodings_of_images
from vae_ood_monitor.evaluate.sequence_eval import (build_sequences, evaluate_sequences,
                                                    format_sequence_table, LabelledSequence,
                                                    write_timelines)
from vae_ood_monitor.evaluate.spans import runs
from vood_testing import make_bundle, rows_with_kl, tiny_frames

N = 40
CUSUM = CusumParams(window=5, delta=0.5, tau=10.0)
# calibration scores 1.0 .. 2.0, median 1.5, per-frame threshold 2.0
PARTITION = Partition('all', (0, 1, 2, 3), calibration_scores=np.linspace(1.0, 2.0, 201),
                      threshold=2.0, cusum=CUSUM)
LAYOUT = Layout(4)  # make_bundle's encoding rows: mu (4) and logvar (4)


def _rows(sums: np.ndarray) -> np.ndarray:
    """Encoding rows (T, 8) whose per-dim KL (T, 4) sums to ``sums``."""
    return rows_with_kl(np.repeat(np.asarray(sums, float)[:, None] / 4, 4, axis=1))


def _truth(start: int, stop: int) -> np.ndarray:
    truth = np.zeros(N, bool)
    truth[start:stop] = True
    return truth


def _sequences() -> list[LabelledSequence]:
    """Two clean drives (one with a single-frame spike), a clear m2 shift and a subtle m3 one."""
    normal = np.full(N, 1.5)  # the ID median
    spike, clear, subtle = normal.copy(), normal.copy(), normal.copy()
    spike[10] = 10.0  # one frame far above the threshold
    clear[20:] = 10.0
    subtle[10:30] = 1.9  # below the per-frame threshold, but persistently high
    return [LabelledSequence('id_0', 'none', 'id', _rows(normal), _truth(0, 0)),
            LabelledSequence('id_1', 'none', 'id', _rows(spike), _truth(0, 0)),
            LabelledSequence('rain_m2_0', 'rain', 'm2', _rows(clear), _truth(20, 40)),
            LabelledSequence('fog_m3_0', 'fog', 'm3', _rows(subtle), _truth(10, 30))]


@pytest.fixture(scope='module')
def bundle() -> Bundle:
    return make_bundle().with_manifest(partitions=(PARTITION,))


@pytest.fixture(scope='module')
def evaluated(bundle: Bundle) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    return evaluate_sequences(bundle, _sequences())


def _cusum_delay(seq: LabelledSequence) -> int:
    """First frame of the OOD span where the runtime's CUSUM exceeds tau."""
    statistic = run_cusum(log_martingales(PARTITION, seq.rows, CUSUM.window, LAYOUT),
                          CUSUM.delta, CUSUM.tau)
    start = int(np.argmax(seq.truth))
    return int(np.flatnonzero(statistic[start:] > CUSUM.tau)[0])


def test_threshold_mode(evaluated: tuple[dict[str, Any], dict[str, Any]]) -> None:
    summary, _ = evaluated
    assert (summary['sequences'], summary['frames']) == (4, 160)
    assert (summary['id_frames'], summary['ood_frames']) == (120, 40)
    threshold = summary['modes']['threshold']
    assert threshold['median_delay'] == 0.0 and threshold['p95_delay'] == 0.0  # rain at once
    assert (threshold['missed_segments'], threshold['segments']) == (1, 2)  # subtle fog missed
    assert threshold['false_alarms'] == 1  # the spike
    assert threshold['false_alarms_per_1000_id_frames'] == pytest.approx(1000 / 120)
    assert threshold['frame_detection_rate'] == 0.5  # 20 rain frames of 40 OOD frames


def test_cusum_mode(evaluated: tuple[dict[str, Any], dict[str, Any]]) -> None:
    summary, _ = evaluated
    cusum = summary['modes']['cusum']
    sequences = _sequences()
    rain, fog = _cusum_delay(sequences[2]), _cusum_delay(sequences[3])
    assert 0 < rain < fog < 20
    assert cusum['median_delay'] == (rain + fog) / 2
    assert (cusum['missed_segments'], cusum['false_alarms']) == (0, 0)  # no alarm on the spike
    assert cusum['frame_detection_rate'] == pytest.approx((40 - rain - fog) / 40)
    shifts = summary['shifts']
    assert shifts['rain']['cusum']['median_delay'] == rain
    assert shifts['fog']['cusum']['median_delay'] == fog


def test_per_shift_breakdown(evaluated: tuple[dict[str, Any], dict[str, Any]]) -> None:
    summary, _ = evaluated
    shifts = summary['shifts']
    assert set(shifts) == {'none', 'rain', 'fog'}
    assert all(set(modes) == {'threshold', 'cusum'} for modes in shifts.values())
    none = shifts['none']['threshold']
    assert (none['segments'], none['false_alarms'], none['id_frames']) == (0, 1, 80)
    assert none['median_delay'] is None and none['false_alarms_per_1000_id_frames'] == 12.5
    assert shifts['fog']['threshold']['missed_segments'] == 1
    assert shifts['rain']['threshold']['median_delay'] == 0.0
    assert 0.9 < summary['auroc_evidence'] <= 1.0 and 0.5 < summary['auroc_cusum'] <= 1.0
    # by kind of shifted sequence (the ID-only drives belong to none of them)
    kinds = summary['sequence_modes']
    assert set(kinds) == {'m2', 'm3'}
    m2, m3 = kinds['m2']['threshold'], kinds['m3']['threshold']
    assert (m2['segments'], m2['missed_segments'], m2['median_delay']) == (1, 0, 0.0)
    assert (m3['segments'], m3['missed_segments'], m3['median_delay']) == (1, 1, None)
    assert m2['id_frames'] + m3['id_frames'] == 40 and m2['false_alarms'] == 0
    assert kinds['m2']['cusum']['median_delay'] == summary['shifts']['rain']['cusum'][
        'median_delay']
    json.dumps(summary, allow_nan=False)


def test_traces(evaluated: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, traces = evaluated
    assert list(traces) == ['id_0', 'id_1', 'rain_m2_0', 'fog_m3_0']
    spike = traces['id_1']
    np.testing.assert_allclose(spike['score'][9:12], [1.5, 10.0, 1.5])
    # the alert holds until the 10th quiet frame after the spike (clear_frames=10)
    assert spike['alert.threshold'].tolist() == [False] * 10 + [True] * 10 + [False] * 20
    assert not spike['alert.cusum'].any()
    assert spike['p_value'][10] == pytest.approx(1 / 202)
    assert spike['evidence'][10] > 1.0 > spike['evidence'][9]
    rain = traces['rain_m2_0']
    assert rain['cusum'][19] == 0.0 and rain['cusum'][-1] == pytest.approx(2.0)  # capped at 2 tau
    assert (rain['shift'], rain['mode']) == ('rain', 'm2')


def test_modes_follow_the_bundle(bundle: Bundle) -> None:
    summary, traces = evaluate_sequences(bundle, _sequences(),
                                         modes=(DecisionMode.THRESHOLD,))
    assert list(summary['modes']) == ['threshold'] and 'auroc_cusum' not in summary
    no_cusum = make_bundle()  # calibrated, threshold mode only
    summary, traces = evaluate_sequences(no_cusum, _sequences())
    assert list(summary['modes']) == ['threshold'] and 'cusum' not in traces['id_0']
    clean = [s for s in _sequences() if s.shift == 'none']
    summary, _ = evaluate_sequences(bundle, clean)  # no OOD frame: no AUROC to report
    assert 'auroc_evidence' not in summary and summary['ood_frames'] == 0


def test_format_sequence_table(evaluated: tuple[dict[str, Any], dict[str, Any]]) -> None:
    table = format_sequence_table(evaluated[0]).splitlines()
    assert table[0].startswith('| shift | decision | median delay |')
    assert '| all sequences | threshold | 0 | 0.0 | 1/2 | 8.33 (1 in 120) | 50.0% |' in table
    assert '| fog | threshold | - | - | 1/1 | 0.00 (0 in 20) | 0.0% |' in table
    assert '| none | threshold | - | - | 0/0 | 12.50 (1 in 80) | 0.0% |' in table
    rows = [line.split(' | ')[0] for line in table[2:] if line.startswith('|')]
    assert rows == (['| all sequences'] * 2 + ['| fog'] * 2 + ['| none'] * 2 + ['| rain'] * 2
                    + ['| m2 sequences (every shift)'] * 2
                    + ['| m3 sequences (every shift)'] * 2 + ['| all sequences'])
    matched = evaluated[0]['threshold_matched']
    assert matched['missed_segments'] <= evaluated[0]['modes']['cusum']['missed_segments']
    assert any(line.startswith('| all sequences | threshold matched to cusum detection')
               for line in table)
    assert table[-1].startswith('Frame-level AUROC over all sequences: per-frame evidence ')
    assert ', CUSUM 0.' in table[-1]
    assert ('Which partitions raised the threshold alerts (several can at once): false alarm '
            'onsets: all 1; first detecting frames: all 1.') in table
    assert ('Which partitions raised the cusum alerts (several can at once): false alarm '
            'onsets: none; first detecting frames: all 2.') in table
    assert 'Missed by threshold (1): fog_m3_0 (fog m3).' in table
    assert not any(line.startswith('Missed by cusum') for line in table)
    assert ('False alarms: alarm onsets on in-distribution (ID) frames, per 1,000 distinct ID '
            'frames ("in N": N distinct ID frames).') in table  # no copies share frames here


def _latch_misses(traces: dict[str, dict[str, Any]], level: float) -> int:
    """OOD spans the per-frame rule at ``level`` misses, counted with the runtime's latch."""
    from vae_ood_monitor.core.detector import AlertLatch
    from vae_ood_monitor.evaluate.spans import first_detection

    missed = 0
    for trace in traces.values():
        latch = AlertLatch(10)
        alert = np.array([latch.update(bool(e > level)) for e in trace['evidence']])
        missed += sum(first_detection(alert, a, b) is None for a, b in runs(trace['truth']))
    return missed


def test_matched_threshold_reaches_above_the_old_sweep(bundle: Bundle) -> None:
    # every span's evidence is ~55, a clean drive spikes to ~23: the strictest level that
    # misses nothing sits just below 55 and never fires on the spike (8.0 did)
    huge, spike = np.full(N, 1.5), np.full(N, 1.5)
    huge[20:] = 1e7
    spike[5] = 1e3
    sequences = [LabelledSequence('id_0', 'none', 'id', _rows(spike), _truth(0, 0)),
                 LabelledSequence('rain_m2_0', 'rain', 'm2', _rows(huge), _truth(20, 40))]
    summary, traces = evaluate_sequences(bundle, sequences)
    matched = summary['threshold_matched']
    top = float(traces['rain_m2_0']['evidence'][-1])
    assert summary['modes']['cusum']['missed_segments'] == 0
    assert matched['matched'] is True and matched['missed_segments'] == 0
    assert 8.0 < float(traces['id_0']['evidence'][5]) < matched['evidence_level'] < top
    assert matched['false_alarms'] == 0
    assert _latch_misses(traces, top) == 1  # at the evidence itself nothing fires


def test_no_per_frame_level_matching_the_cusum_is_said_so(bundle: Bundle) -> None:
    # a single-frame spike just before the onset, then a persistent subtle rise: every level
    # that fires on the span fires on the spike first, and the latch carries that alarm in
    sums = np.full(N, 1.5)
    sums[19] = 10.0
    sums[20:] = 1.95
    drive = LabelledSequence('fog_m2_0', 'fog', 'm2', _rows(sums), _truth(20, 40))
    summary, traces = evaluate_sequences(bundle, [drive])
    assert summary['modes']['cusum']['missed_segments'] == 0
    matched = summary['threshold_matched']
    assert matched['matched'] is False and matched['missed_segments'] == 1
    levels = np.r_[np.unique(traces['fog_m2_0']['evidence']), -10.0, 0.05, 8.0]
    assert all(_latch_misses(traces, float(v)) == 1 for v in levels)
    table = format_sequence_table(summary).splitlines()
    assert any(line.startswith('| all sequences | threshold, no level matches cusum detection '
                               '(fewest missed) (level ') for line in table)
    assert not any('threshold matched to cusum' in line for line in table)
    assert ('No per-frame evidence level detects as many OOD spans as the CUSUM (at best 1 '
            'missed, CUSUM 0): the per-frame rule is not compared at equal detection.') in table


@pytest.mark.parametrize('seed', range(4))  # seed 0 can match the CUSUM, 1-3 cannot
def test_matched_threshold_is_the_strictest_level(bundle: Bundle, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sequences = []
    for n in range(6):  # noisy drives, a spike shortly before a shift of random size
        sums = rng.uniform(1.2, 1.9, N)
        start = int(rng.integers(5, 30))
        sums[start - rng.integers(1, 4)] = rng.uniform(1.5, 4.0)
        sums[start:] *= rng.uniform(0.9, 1.6)
        sequences.append(LabelledSequence(f'rain_m2_{n}', 'rain', 'm2', _rows(sums),
                                          _truth(start, N)))
    summary, traces = evaluate_sequences(bundle, sequences)
    matched = summary['threshold_matched']
    target = summary['modes']['cusum']['missed_segments']
    level = matched['evidence_level']
    assert _latch_misses(traces, level) == matched['missed_segments']
    values = np.unique(np.concatenate([t['evidence'] for t in traces.values()]))
    stricter = [float(v) for v in np.nextafter(values, -np.inf) if v > level]
    best = min([_latch_misses(traces, v) for v in stricter] + [matched['segments']])
    if matched['matched']:
        assert matched['missed_segments'] <= target < best  # no stricter level does it
    else:
        assert matched['missed_segments'] > target
        assert matched['missed_segments'] < best or not stricter


def test_copies_of_one_drive_count_their_shared_frames_once(bundle: Bundle) -> None:
    # a drive with a spike at frame 5 and three shifted copies of it: each starts with the
    # same clean frames (the same threshold false alarm on the spike); m3 has clean frames
    # after its span too, seen by a detector that has been through the shift: they count
    base = np.full(N, 1.5)
    base[5] = 10.0
    shifted = base.copy()
    shifted[20:] = 10.0
    middle = base.copy()
    middle[16:30] = 10.0  # from the first frame the spike's alarm has cleared
    sequences = [LabelledSequence('id_0', 'none', 'id', _rows(base), _truth(0, 0)),
                 LabelledSequence('rain_m2_0', 'rain', 'm2', _rows(shifted), _truth(20, 40),
                                  base='id_0'),
                 LabelledSequence('brightness_m2_0', 'brightness', 'm2', _rows(shifted),
                                  _truth(20, 40), base='id_0'),
                 LabelledSequence('rain_m3_0', 'rain', 'm3', _rows(middle), _truth(16, 30),
                                  base='id_0'),
                 # another drive that happens to have the same KL: its frames are its own
                 LabelledSequence('id_1', 'none', 'id', _rows(base), _truth(0, 0))]
    summary, traces = evaluate_sequences(bundle, sequences, modes=(DecisionMode.THRESHOLD,))
    threshold = summary['modes']['threshold']
    # ID frames 40 + 20 + 20 + 26 + 40; the copies' first 20, 20 and 16 repeat id_0's
    assert (threshold['id_frames'], threshold['repeated_id_frames']) == (90, 56)
    assert (summary['id_frames'], summary['repeated_id_frames']) == (90, 56)
    assert threshold['false_alarms'] == 2  # id_0's spike and id_1's, not the copies'
    assert threshold['false_alarms_per_1000_id_frames'] == pytest.approx(2000 / 90)
    assert threshold['partitions']['all']['false_alarms'] == 2
    assert [traces[s.name]['repeated'] for s in sequences] == [0, 20, 20, 16, 0]
    # within a group a copy repeats the copies before it: m2 rain and brightness share 20
    # frames, rain m2 and m3 share 16
    m2 = summary['sequence_modes']['m2']['threshold']
    assert (m2['id_frames'], m2['repeated_id_frames'], m2['false_alarms']) == (20, 20, 1)
    rain = summary['shifts']['rain']['threshold']
    assert (rain['id_frames'], rain['repeated_id_frames'], rain['false_alarms']) == (30, 16, 1)
    assert summary['shifts']['none']['threshold']['id_frames'] == 80
    table = format_sequence_table(summary).splitlines()
    assert '| all sequences | threshold | 0 | 0.0 | 0/3 | 22.22 (2 in 90) | 100.0% |' in table
    assert ('False alarms: alarm onsets on in-distribution (ID) frames, per 1,000 distinct ID '
            'frames ("in N": N distinct ID frames); the 56 ID frames that shifted copies of a '
            'drive share with it from its first frame on (the same frames, the detectors in '
            'the same state) count once, and so do alarms on them.') in table
    # the CUSUM's matched per-frame rule counts them alike
    full, _ = evaluate_sequences(bundle, sequences)
    assert full['threshold_matched']['repeated_id_frames'] == 56
    assert full['threshold_matched']['id_frames'] == 90


def test_missed_sequences_are_named_with_their_severity(bundle: Bundle) -> None:
    sequences = _sequences()
    quiet = LabelledSequence('fog_m3_1', 'fog', 'm3', _rows(np.full(N, 1.5)), _truth(10, 30),
                             severity=0.61)  # labelled OOD, scores like the ID median
    summary, _ = evaluate_sequences(bundle, sequences + [quiet])
    assert summary['missed_sequences'] == {
        'threshold': [{'sequence': 'fog_m3_0', 'shift': 'fog', 'mode': 'm3', 'severity': None},
                      {'sequence': 'fog_m3_1', 'shift': 'fog', 'mode': 'm3', 'severity': 0.61}],
        'cusum': [{'sequence': 'fog_m3_1', 'shift': 'fog', 'mode': 'm3', 'severity': 0.61}]}
    assert summary['modes']['cusum']['missed_segments'] == 1
    table = format_sequence_table(summary).splitlines()
    assert 'Missed by cusum (1): fog_m3_1 (fog m3, severity 0.61).' in table
    many = [LabelledSequence(f'fog_m1_{n}', 'fog', 'm1', _rows(np.full(N, 1.5)), _truth(0, N))
            for n in range(15)]
    summary, _ = evaluate_sequences(bundle, many)
    line = next(x for x in format_sequence_table(summary).splitlines()
                if x.startswith('Missed by cusum'))
    assert line.startswith('Missed by cusum (15): fog_m1_0 (fog m1), ')
    assert line.endswith('fog_m1_11 (fog m1) and 3 more.')


def test_alerts_are_attributed_to_the_partitions_that_fired(
        evaluated: tuple[dict[str, Any], dict[str, Any]], bundle: Bundle) -> None:
    modes = evaluated[0]['modes']  # one partition: the spike's false alarm and both detections
    assert modes['threshold']['partitions'] == {'all': {'false_alarms': 1, 'detections': 1}}
    assert modes['cusum']['partitions'] == {'all': {'false_alarms': 0, 'detections': 2}}
    # two partitions on separate dims: a spike in dims 0-1 is left's false alarm, a jump in
    # dims 2-3 is right's detection, a jump in all four dims is both's
    scores = np.linspace(0.5, 1.0, 101)
    left = Partition('left', (0, 1), calibration_scores=scores, threshold=1.0)
    right = Partition('right', (2, 3), calibration_scores=scores, threshold=1.0)
    base = np.full((N, 4), 0.375)  # pairs sum to 0.75, the calibration median
    spike, jump, both = base.copy(), base.copy(), base.copy()
    spike[5, :2] = 5.0
    jump[20:, 2:] = 5.0
    both[30:] = 5.0
    sequences = [LabelledSequence('id_0', 'none', 'id', rows_with_kl(spike), _truth(0, 0)),
                 LabelledSequence('rain_m2_0', 'rain', 'm2', rows_with_kl(jump), _truth(20, 40)),
                 LabelledSequence('fog_m2_0', 'fog', 'm2', rows_with_kl(both), _truth(30, 40))]
    two = bundle.with_manifest(partitions=(left, right))
    summary, _ = evaluate_sequences(two, sequences, modes=(DecisionMode.THRESHOLD,))
    assert summary['modes']['threshold']['partitions'] == {
        'left': {'false_alarms': 1, 'detections': 1},
        'right': {'false_alarms': 0, 'detections': 2}}
    assert summary['shifts']['rain']['threshold']['partitions'] == {
        'left': {'false_alarms': 0, 'detections': 0},
        'right': {'false_alarms': 0, 'detections': 1}}


def test_write_timelines(evaluated: tuple[dict[str, Any], dict[str, Any]], bundle: Bundle,
                         tmp_path: Path) -> None:
    written = write_timelines(evaluated[1], tmp_path / 'plots', bundle)
    # one per (shift, mode) kind: the second clean drive is left out
    assert [p.name for p in written] == ['timeline_id_0.png', 'timeline_rain_m2_0.png',
                                         'timeline_fog_m3_0.png']
    for path in written:
        assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert len(write_timelines(evaluated[1], tmp_path / 'all', bundle, limit_per_kind=2)) == 4
    # a second fog m3 drive is past the per-kind limit, but the CUSUM misses it: it is drawn
    quiet = LabelledSequence('fog_m3_1', 'fog', 'm3', _rows(np.full(N, 1.5)), _truth(10, 30))
    _, traces = evaluate_sequences(bundle, _sequences() + [quiet])
    names = [p.name for p in write_timelines(traces, tmp_path / 'missed', bundle)]
    assert names[-1] == 'timeline_fog_m3_1.png' and len(names) == 4
    assert len(write_timelines(traces, tmp_path / 'limit', bundle, missed=False)) == 3


def test_build_sequences_on_tiny_frames() -> None:
    bundle = make_bundle(30, 40)
    frames = tiny_frames(96, groups=4)  # 4 sequences of 24 frames
    sequences = build_sequences(bundle, frames, ['rain'], modes=('m2', 'm3'), per_kind=1)
    assert [s.name for s in sequences] == ['id_0', 'id_1', 'id_2', 'id_3', 'rain_m2_0',
                                           'rain_m3_0']
    clean = encodings_of_images(bundle, frames.images[:24])
    np.testing.assert_allclose(sequences[0].rows, clean)
    assert not any(s.truth.any() for s in sequences[:4])
    m2, m3 = sequences[4], sequences[5]
    assert all(s.severity is None for s in sequences[:4])
    low, high = SEVERITY_RANGES[ShiftKind.RAIN]['test']
    assert all(low <= s.severity <= high for s in (m2, m3))
    assert np.flatnonzero(m2.truth).tolist() == list(range(12, 24))
    assert np.flatnonzero(m3.truth).tolist() == list(range(6, 18))
    for seq in (m2, m3):  # clean frames keep the drive's encoding rows, shifted ones change
        assert (seq.shift, seq.rows.shape, seq.base) == ('rain', (24, 8), 'id_0')
        np.testing.assert_allclose(seq.rows[~seq.truth], clean[~seq.truth])
        np.testing.assert_array_equal(seq.rows[~seq.truth], sequences[0].rows[~seq.truth])
        assert not np.allclose(seq.rows[seq.truth], clean[seq.truth])
    assert all(s.base is None for s in sequences[:4])
    # the copies' frames before their onset are id_0's: 12 (m2) and 6 (m3) counted once; m3's
    # last 6 clean frames follow the shift, and count
    summary, _ = evaluate_sequences(bundle, sequences)
    assert (summary['id_frames'], summary['repeated_id_frames']) == (96 + 6, 12 + 6)
    every = build_sequences(bundle, frames, ['fog', 'rain'], modes=('m1',))
    assert len(every) == 4 + 2 * 4 and every[-1].name == 'rain_m1_3'
    again = build_sequences(bundle, frames, ['fog', 'rain'], modes=('m1',))
    np.testing.assert_array_equal(every[-1].rows, again[-1].rows)  # seeded


def test_change_partition_in_the_sequence_evaluation() -> None:
    # a drive whose KL sits in the middle of the calibration scores and drops by 30 % at frame
    # 20: still inside the absolute partition's calibration range, a clear change for its twin
    from vae_ood_monitor.core.baseline import BaselineParams

    sums = np.r_[np.full(20, 1.9), np.full(20, 1.33)]
    absolute = Partition('all', (0, 1, 2, 3), calibration_scores=np.linspace(1.0, 2.0, 201),
                         threshold=2.0, threshold_low=1.0, tail='two_sided', cusum=CUSUM)
    change = Partition('all_change', (0, 1, 2, 3), tail='two_sided',
                       calibration_scores=np.linspace(0.9, 1.1, 201), threshold=1.1,
                       threshold_low=0.9, cusum=CUSUM, baseline=BaselineParams(10, 2, 5, 100))
    bundle = make_bundle().with_manifest(partitions=(absolute, change))
    drive = LabelledSequence('rain_m2_0', 'rain', 'm2', _rows(sums), _truth(20, 40))
    summary, traces = evaluate_sequences(bundle, [drive])
    cusum, threshold = summary['modes']['cusum'], summary['modes']['threshold']
    assert threshold['missed_segments'] == 1  # no frame is out of the absolute range
    assert cusum['missed_segments'] == 0 and cusum['median_delay'] <= 5
    trace = traces['rain_m2_0']
    # the per-frame evidence and the KL score trace are the absolute partition's alone
    np.testing.assert_allclose(trace['evidence'], absolute.evidence(sums))
    np.testing.assert_allclose(trace['score'], sums)
    alone, _ = evaluate_sequences(bundle.with_manifest(partitions=(absolute,)), [drive])
    assert alone['modes']['cusum']['missed_segments'] == 1


def test_an_alarm_carried_over_from_in_distribution_frames_is_no_detection(
        bundle: Bundle) -> None:
    from vae_ood_monitor.evaluate.spans import first_detection

    alert = np.array([0, 0, 1, 1, 1, 1, 0, 0, 1, 1], bool)
    assert first_detection(alert, 3, 10) == 5  # on at the onset: only the new alarm counts
    assert first_detection(alert, 2, 10) == 0  # rises on the onset frame: delay 0
    assert first_detection(alert, 3, 6) is None  # still the old alarm: missed
    assert first_detection(alert[2:], 0, 3) == 0  # a stream starting inside the span
    # one ID spike just before the onset; the shifted frames look like ID frames. The latched
    # per-frame alert is still on at the onset: a false alarm, and the span is missed
    sums = np.full(N, 1.5)
    sums[17] = 10.0
    drive = LabelledSequence('fog_m2_0', 'fog', 'm2', _rows(sums), _truth(20, 40))
    summary, _ = evaluate_sequences(bundle, [drive], modes=(DecisionMode.THRESHOLD,))
    threshold = summary['modes']['threshold']
    assert threshold['false_alarms'] == 1 and threshold['missed_segments'] == 1


def test_non_finite_scores_rank_as_most_out_of_distribution(bundle: Bundle) -> None:
    from vae_ood_monitor.evaluate.metrics import detection_metrics

    metrics = detection_metrics([1.0, 2.0, 3.0], [np.inf, np.nan, 2.5], threshold=2.5)
    assert metrics.auroc == pytest.approx(8 / 9)  # inf and NaN above every ID score
    sums = np.full(N, 1.5)
    sums[25] = np.inf  # broken encoder output inside the OOD span: no crash, still ranked
    drive = LabelledSequence('fog_m2_0', 'fog', 'm2', _rows(sums), _truth(20, 40))
    clean = LabelledSequence('id_0', 'none', 'id', _rows(np.full(N, 1.5)), _truth(0, 0))
    summary, _ = evaluate_sequences(bundle, [clean, drive])
    assert 0.5 <= summary['auroc_evidence'] <= 1.0
