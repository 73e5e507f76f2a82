"""The whole calibration of a bundle (evaluate/calibration.py), down to a tiny trained model."""

from __future__ import annotations

from dataclasses import replace
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vae_ood_monitor.core.baseline import BaselineParams
from vae_ood_monitor.core.bundle import Bundle, load_bundle, save_bundle
from vae_ood_monitor.core.errors import CalibrationError, ConfigError
from vae_ood_monitor.core.typedefs import DimSelection, Tail
from vae_ood_monitor.data.dataset import FrameArray
from vae_ood_monitor.data.scenes import RoadScene, SceneConfig
from vae_ood_monitor.evaluate import calibration
from vae_ood_monitor.evaluate.calibration import (_validation_sequences, calibrate,
                                                  CalibrationOptions, MIN_FRAMES,
                                                  split_for_calibration)
from vae_ood_monitor.evaluate.metrics import conformal_threshold
from vood_testing import make_bundle, tiny_frames

SHIFTS = 'generic, all, brightness, fog, motion_blur, noise, objects, occlusion, rain, snow'


def drives(first_seed: int, count: int, frames: int = 40) -> FrameArray:
    """``count`` synthetic 40x30 drives, one group each."""
    config = SceneConfig(width=40, height=30)
    images = np.concatenate([np.stack(list(RoadScene(first_seed + d, config).frames(frames)))
                             for d in range(count)])
    n = len(images)
    return FrameArray(images, np.zeros(n, np.int8),
                      np.tile(np.arange(frames, dtype=np.int64) * 50_000_000, count),
                      np.repeat(np.arange(count, dtype=np.int32), frames),
                      tuple(f'drive{first_seed + d}' for d in range(count)))


# ----------------------------------------------------------------------------- the split


def test_split_alternates_whole_groups() -> None:
    frames = tiny_frames(96, groups=4)
    part_a, part_b = split_for_calibration(frames)
    assert sorted(set(part_a.groups)) == [0, 2] and sorted(set(part_b.groups)) == [1, 3]
    assert len(part_a) == len(part_b) == 48
    np.testing.assert_array_equal(part_a.images, frames.images[frames.groups % 2 == 0])


@pytest.mark.parametrize(('share', 'in_b'), [
    (0.75, [1, 2, 3, 5, 6, 7]), (0.25, [3, 7]), (0.9, [1, 2, 3, 4, 5, 6, 7]), (0.01, [7])])
def test_split_gives_b_its_share_of_the_groups_spread_evenly(share: float,
                                                             in_b: list[int]) -> None:
    frames = tiny_frames(96, groups=8)
    part_a, part_b = split_for_calibration(frames, share)
    assert sorted(set(part_b.groups)) == in_b  # group 0 always stays in A
    assert sorted(set(part_a.groups)) == sorted(set(range(8)) - set(in_b))


def test_split_of_a_single_group_takes_time_halves() -> None:
    frames = tiny_frames(40, groups=1)
    part_a, part_b = split_for_calibration(frames)
    np.testing.assert_array_equal(part_a.stamps, frames.stamps[:20])
    np.testing.assert_array_equal(part_b.stamps, frames.stamps[20:])
    part_a, part_b = split_for_calibration(frames, 0.75)
    np.testing.assert_array_equal(part_b.stamps, frames.stamps[10:])


# ----------------------------------------------------------------------------- options


def test_option_defaults_and_normalisation() -> None:
    options = CalibrationOptions(partitions=['all', 'rain'], selection='paper',
                                 validation_shifts=['fog'])
    assert options.partitions == ('all', 'rain') and options.validation_shifts == ('fog',)
    assert options.selection is DimSelection.PAPER
    assert options.shifts_for_delta == ('fog',)
    assert CalibrationOptions(partitions=('all', 'snow')).shifts_for_delta == ('snow',)
    assert CalibrationOptions().shifts_for_delta == ('rain', 'brightness')
    # by default the alert is the generic partition alone, measured by mahalanobis distance,
    # without change partitions
    default = CalibrationOptions()
    assert (default.partitions, default.change, default.generic_method) == (
        ('generic',), False, 'mahalanobis')
    assert CalibrationOptions(partitions=('generic', 'rain')).named == ('rain',)
    assert CalibrationOptions(generic_method='knn').generic_method == 'knn'


@pytest.mark.parametrize('partitions', [('sun',), (), ('rain', 'rain')])
def test_bad_partitions_list_the_choices(partitions: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError, match=f'must be distinct names from: {SHIFTS}.'):
        CalibrationOptions(partitions=partitions)


@pytest.mark.parametrize(('field', 'value', 'message'), [
    ('validation_shifts', ('all',), r"Validation shifts \['all'\] must be among: brightness"),
    ('target_far', 0.5, r'target_far 0.5 must be in \(0, 0.5\)'),
    ('target_far', 0.0, r'target_far 0.0 must be in \(0, 0.5\)'),
    ('alarm_rate', 1.0, r'alarm_rate 1.0 in \(0, 1\)'),
    ('windows', 0, r'windows \[0\] and paper_dims 3 must be >= 1'),
    ('windows', (10, 0), r'windows \[0, 10\] and paper_dims 3 must be >= 1'),
    ('windows', (), r'windows \[\] and paper_dims 3 must be >= 1'),
    ('paper_dims', 0, r'windows \[20\] and paper_dims 0 must be >= 1'),
    ('margin', -0.1, r'and margin -0.1 >= 0'),
    ('baseline_frames', 1, 'baseline_frames 1 must be >= 2'),
    ('baseline_gap', -1, 'baseline_gap -1 >= 0'),
    ('change_offset', 1.0, r'change_offset 1.0 must be a quantile level in \[0, 1\)'),
    ('change_offset', -0.1, r'change_offset -0.1 must be a quantile level'),
    ('selection', 'best', r"selection 'best' is not supported; choose one of: all, paper"),
    ('cusum_cap', 0.5, 'cusum_cap 0.5 must be finite and >= 1'),
    ('sequence_share', 1.0, r'sequence_share 1.0 must be in \(0, 1\)'),
    ('sequence_share', 0.0, r'sequence_share 0.0 must be in \(0, 1\)'),
    ('cusum_cap', float('inf'), 'cusum_cap inf must be finite and >= 1'),
    ('generic_method', 'kde', "generic_method 'kde' is not supported; choose one of: knn, "
     'mahalanobis'),
])
def test_bad_options(field: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CalibrationOptions(**{field: value})


# ----------------------------------------------------------------------------- cheap paths
# A linear encoder at the frames' size: fast, torch-free, enough for the bookkeeping.


def test_too_few_frames() -> None:
    with pytest.raises(CalibrationError, match='36 calibration frames are too few: calibration '
                       f'needs at least {MIN_FRAMES} held-out in-distribution frames'):
        calibrate(make_bundle(30, 40, calibrated=False), tiny_frames(36))
    assert MIN_FRAMES == 40


def test_a_few_dozen_frames_calibrate_at_the_rate_they_can_certify() -> None:
    # 96 frames in 4 sequences: A's 48 scores certify 1 / 49 per frame at best
    lines: list[str] = []
    bundle, report = calibrate(make_bundle(30, 40, calibrated=False), tiny_frames(96, groups=4),
                               CalibrationOptions(sequential=False), log=lines.append)
    assert bundle.manifest.calibrated
    assert report['target_far'] == pytest.approx(1 / 49)
    assert report['target_far_requested'] == 0.01
    assert any('48 calibration scores certify a per-frame false-alarm rate of 0.0204' in line
               for line in lines)


def test_a_rate_the_frames_cannot_certify_is_raised_to_the_lowest_they_can() -> None:
    # 240 frames: half A's 120 scores certify 1 / 121 per frame at best, not 0.005
    lines: list[str] = []
    options = CalibrationOptions(target_far=0.005, sequential=False)
    bundle, report = calibrate(make_bundle(30, 40, calibrated=False),
                               tiny_frames(240, groups=12), options, log=lines.append)
    assert bundle.manifest.target_far == report['target_far'] == pytest.approx(1 / 121)
    assert report['target_far_requested'] == 0.005
    assert lines[1] == ('note: 120 calibration scores certify a per-frame false-alarm rate of '
                        '0.00826 at best, not the 0.005 asked for; the thresholds use 0.00826. '
                        '0.005 needs about 398 calibration frames (199 for the scores, as many '
                        'again for the sequential test).')
    (part,) = bundle.manifest.partitions
    assert part.threshold == conformal_threshold(part.calibration_scores, 1 / 121)
    # a rate the frames can certify is kept as asked
    _, report = calibrate(make_bundle(30, 40, calibrated=False), tiny_frames(240, groups=12),
                          replace(options, target_far=0.01))
    assert report['target_far'] == 0.01 and 'target_far_requested' not in report


def test_short_sequences_skip_the_sequential_test() -> None:
    lines: list[str] = []
    bundle, report = calibrate(make_bundle(30, 40, calibrated=False),
                               tiny_frames(240, groups=12), CalibrationOptions(target_far=0.05),
                               log=lines.append)
    (part,) = bundle.manifest.partitions  # the default: the generic partition alone
    assert part.name == 'generic' and part.density is not None and part.tail is Tail.UPPER
    assert bundle.manifest.calibrated and part.cusum is None
    assert report['sequential'] == 'skipped: no calibration sequence has 40 frames or more'
    assert report['split'] == [120, 120] and report['frames'] == 240
    assert part.calibration_scores.size == 120  # A only: B's scores would tune the CUSUM
    # a model without activation statistics: the generic score measures mu and logvar
    assert part.density.groups == ('mu', 'logvar') and len(part.density.columns) == 8
    assert report['colour_baseline']['frames'] == 120
    assert lines == ['partition generic: mahalanobis distance over 8 encoder features (mu, '
                     'logvar)',
                     'per-frame false-alarm rate 0.05 (120 calibration scores can certify down '
                     'to 0.00826)',
                     'sequential calibration skipped: the frames form no sequences long enough']


def test_change_partitions_need_enough_frames_past_the_warm_up() -> None:
    # 8 drives of 40 frames: sequential calibration runs, but half A keeps only 4 x 2 frames
    # past a 38-frame warm-up, too few to calibrate change partitions: they are left out
    lines: list[str] = []
    options = CalibrationOptions(target_far=0.05, partitions=('all',), windows=(10,),
                                 change=True, baseline_frames=100, baseline_gap=5)
    bundle, report = calibrate(make_bundle(30, 40, calibrated=False),
                               tiny_frames(320, groups=8), options, log=lines.append)
    assert [p.name for p in bundle.manifest.partitions] == ['all']
    assert bundle.manifest.schema_version == 1
    assert report['change'] == 'skipped: sequences too short'
    assert lines[2] == ('change partitions skipped: they need sequences of at least 20 frames '
                        'and 20 frames past a 38-frame warm-up')
    no_change = CalibrationOptions(target_far=0.05, partitions=('all',), windows=(10,))
    bundle, report = calibrate(make_bundle(30, 40, calibrated=False),
                               tiny_frames(320, groups=8), no_change)
    assert [p.name for p in bundle.manifest.partitions] == ['all']  # no change: the default
    assert 'change' not in report


def test_the_alarm_budget_is_split_between_the_or_ed_partitions() -> None:
    # 8 drives of 40 frames: B has 160 frames, partitions 'all' and 'all_change'. The alert
    # may alarm floor(160 x 0.0125) = 2 times; fitted to the whole rate each could take 2
    options = CalibrationOptions(target_far=0.05, partitions=('all',), windows=(10, 5),
                                 alarm_rate=0.0125, change=True)
    bundle, report = calibrate(make_bundle(30, 40, calibrated=False),
                               tiny_frames(320, groups=8), options)
    fits = [details['cusum'] for details in report['partitions'].values()]
    # both candidate windows were tried; each partition stores the one it chose
    assert all({c['window'] for c in fit['candidates']} == {5, 10} for fit in fits)
    assert [p.cusum.window for p in bundle.manifest.partitions] == [f['window'] for f in fits]
    assert len(fits) == 2 and all(fit['id_frames'] == 160 for fit in fits)
    assert sum(fit['id_alarms'] for fit in fits) <= 2  # union bound on the OR-ed alert
    assert report['alarm_rate_per_partition'] == pytest.approx(0.0125 / 2)
    assert all(fit['target_rate'] == pytest.approx(0.0125 / 2) for fit in fits)
    assert report['drive_resolution']['partitions'] == len(fits)


@pytest.mark.parametrize('name', ['all', 'generic'])
@pytest.mark.parametrize('level', [0.0, 0.25, 0.9])
def test_change_offset_is_a_quantile_of_the_partitions_own_sums(level: float, name: str) -> None:
    # the generic partition's own scores: its cross-fitted scores of half A
    options = CalibrationOptions(target_far=0.05, partitions=(name,), windows=(10,),
                                 change=True, change_offset=level)
    bundle, report = calibrate(make_bundle(30, 40, calibrated=False),
                               tiny_frames(320, groups=8), options)
    part, twin = bundle.manifest.partitions
    assert twin.name == f'{name}_change' and twin.baseline is not None
    assert twin.density is part.density and twin.dims == part.dims
    expected = float(np.quantile(part.calibration_scores, level)) if level else 0.0
    assert twin.baseline.offset == pytest.approx(expected)
    assert report['partitions'][twin.name]['baseline']['offset'] == twin.baseline.offset
    if level:
        assert twin.baseline.offset > 0


@pytest.mark.parametrize('selection', ['paper', 'all'])
def test_unlabelled_selection_rules(selection: str) -> None:
    options = CalibrationOptions(target_far=0.05, partitions=('fog',), selection=selection,
                                 sequential=False, paper_dims=2)
    bundle, report = calibrate(make_bundle(30, 40, calibrated=False),
                               tiny_frames(240, groups=6), options)
    (part,) = bundle.manifest.partitions
    details = report['partitions']['fog']
    assert 'sequential' not in report and part.cusum is None
    assert details['selection'] == selection and part.selection.value == selection
    if selection == 'paper':  # one video per B sequence, graded training-range severities
        assert details['videos'] == 3 and len(part.dims) == 2 and part.tail is Tail.UPPER
    else:
        assert part.dims == (0, 1, 2, 3) and part.tail is Tail.TWO_SIDED


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The encoder of a 'tiny' preset run (1 epoch on 8 drives), exported to a bundle."""
    pytest.importorskip('torch')
    from vae_ood_monitor.train.export import bundle_from_run
    from vae_ood_monitor.train.trainer import train, TrainConfig

    run = tmp_path_factory.mktemp('calibration') / 'run'
    train(drives(100, 8), run, TrainConfig(preset='tiny', epochs=1, threads=1, amp='off'),
          progress=False)
    return bundle_from_run(run, name='tiny-calibration')


@pytest.fixture(scope='module')
def calibrated(tiny_model: Bundle) -> tuple[Bundle, dict[str, Any], list[str]]:
    """The tiny model calibrated on 16 held-out drives x 40 frames."""
    lines: list[str] = []
    options = CalibrationOptions(target_far=0.05, partitions=('all', 'rain', 'brightness'),
                                 change=True)
    bundle, report = calibrate(tiny_model, drives(0, 16), options, log=lines.append)
    return bundle, report, lines


def test_calibrated_bundle(calibrated: tuple[Bundle, dict[str, Any], list[str]]) -> None:
    bundle, report, _ = calibrated
    manifest = bundle.manifest
    assert manifest.calibrated and manifest.target_far == 0.05
    assert [p.name for p in manifest.partitions] == [
        'all', 'rain', 'brightness', 'all_change', 'rain_change', 'brightness_change']
    generic, rain, brightness = manifest.partitions[:3]
    assert generic.dims == tuple(range(8)) and generic.tail is Tail.TWO_SIDED
    for part, twin in zip(manifest.partitions[:3], manifest.partitions[3:]):
        # a change partition: the same dims and tail, scored against its own drive's past
        # the offset is the median of the partition's own sums on half A (its scores)
        median = float(np.median(part.calibration_scores))
        assert part.baseline is None and twin.baseline == BaselineParams(30, 5, 10,
                                                                         offset=median)
        assert (twin.dims, twin.tail, twin.selection) == (part.dims, part.tail, part.selection)
        assert twin.calibration_scores.size == 8 * (40 - 15)  # A's drives past the warm-up
        assert 0.5 < float(np.median(twin.calibration_scores)) < 2.0  # ratios around 1
        assert report['partitions'][twin.name]['baseline']['frames'] == 30
        assert twin.cusum is not None
        assert report['partitions'][twin.name]['cusum']['validation_sequences'] == (
            report['partitions'][part.name]['cusum']['validation_sequences'])
    for part in manifest.partitions[:3]:
        assert part.calibration_scores.size == 320  # the 8 drives of half A
        assert part.cusum is not None and part.cusum.window == 20 and part.cusum.tau >= 1.0
        fit = report['partitions'][part.name]['cusum']  # the paper's window by default
        assert fit['window'] == 20 and {c['window'] for c in fit['candidates']} == {20}
        details = report['partitions'][part.name]
        assert details['dims'] == list(part.dims) and details['tail'] == part.tail.value
        assert details['cusum']['tau'] == part.cusum.tau
        assert details['cusum']['id_frames'] == 320 and details['cusum']['id_sequences'] == 8
    for part in (rain, brightness):
        assert part.selection is DimSelection.LABELLED
        assert 0.5 < report['partitions'][part.name]['validation_auroc'] <= 1.0
    # the generic partition is tuned on both named shifts, each named one on its own
    assert report['partitions']['all']['cusum']['validation_sequences'] == 16
    assert report['partitions']['rain']['cusum']['validation_sequences'] == 8


def test_report_goes_into_the_manifest(calibrated: tuple[Bundle, dict[str, Any], list[str]],
                                       tiny_model: Bundle, tmp_path: Path) -> None:
    bundle, report, lines = calibrated
    assert bundle.manifest.metrics['calibration'] is report
    assert bundle.manifest.provenance == tiny_model.manifest.provenance
    assert report['frames'] == 640 and report['split'] == [320, 320]
    assert report['target_far'] == 0.05 and 'target_far_requested' not in report
    assert report['colour_baseline']['frames'] == 320  # fitted on half A
    assert report['options']['selection'] == 'labelled'
    assert len(lines) == 12 and lines[1].startswith('partition rain: ')
    assert lines[3] == ('per-frame false-alarm rate 0.05 (320 calibration scores can certify '
                        'down to 0.0187)')
    assert lines[4] == ('change partitions: all_change, rain_change, brightness_change '
                        '(reference 30 frames, 5 frames back)')
    assert 'CUSUM delta' in lines[5] and lines[10].startswith('partition brightness_change: ')
    # 8 drives of 40 frames (half B) and 6 partitions: 6 / (9 * 40) alarms per frame at best
    assert report['drive_resolution'] == {
        'drives': 8, 'partitions': 6, 'frames_per_drive': 40.0, 'target_rate': 1e-4,
        'rate': 6 / (9 * 40), 'drives_needed': 1499}
    assert lines[11] == ('note: 8 held-out drives of ~40 frames cannot vouch for fewer than '
                         '~1.7e+02 false alarms per 10,000 frames of new drives (a new drive '
                         'beats the highest of them 1 time in 9, for each of 6 partitions); the '
                         'target 1 per 10,000 needs about 1499 such drives, or fewer partitions')
    json.dumps(report, allow_nan=False)  # JSON-safe: no inf, no numpy types
    loaded = load_bundle(save_bundle(bundle, tmp_path / 'calibrated.vood'))
    assert loaded.manifest.metrics['calibration'] == json.loads(json.dumps(report))
    assert [p.cusum for p in loaded.manifest.partitions] == [
        p.cusum for p in bundle.manifest.partitions]


def test_default_generic_partition_on_a_trained_model(tiny_model: Bundle) -> None:
    # an exported model outputs activation statistics: the generic score measures them
    assert tiny_model.manifest.model.stats_dim > 0
    assert tiny_model.manifest.model.output_names == ('mu', 'logvar', 'stats')
    bundle, report = calibrate(tiny_model, drives(0, 16), CalibrationOptions(target_far=0.05))
    manifest = bundle.manifest
    (generic,) = manifest.partitions
    assert generic.name == 'generic' and generic.tail is Tail.UPPER
    assert generic.density is not None and generic.density.groups == ('stats',)
    assert generic.density.method.value == 'mahalanobis' and generic.dims == ()
    assert len(generic.density.columns) == manifest.model.stats_dim
    assert generic.calibration_scores.size == 320  # half A's cross-fitted scores
    assert generic.cusum is not None and manifest.schema_version == 3
    details = report['partitions']['generic']
    assert (details['method'], details['groups'], details['features']) == (
        'mahalanobis', ['stats'], manifest.model.stats_dim)
    # tuned on the default validation shifts (rain and brightness), 8 drives of half B each
    assert details['cusum']['validation_sequences'] == 16 and details['cusum']['id_frames'] == 320


# ----------------------------------------------------------------------------- what gets encoded


def _mean_kl(images: np.ndarray) -> np.ndarray:
    """A stand-in for the encoder: two 'dims' per frame that any change of the image moves."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    return np.stack([flat.mean(axis=1), flat.std(axis=1)], axis=1)


def test_validation_sequences_encode_only_the_shifted_half() -> None:
    part_b = drives(50, 3, frames=12)
    rows_b = _mean_kl(part_b.images)
    sizes: list[int] = []

    def encode(images: np.ndarray) -> np.ndarray:
        sizes.append(len(images))
        return _mean_kl(images)

    options = CalibrationOptions(partitions=('rain', 'brightness'), windows=(5, 6))
    out = _validation_sequences(part_b, rows_b, options, encode)
    assert sorted(out) == ['brightness', 'rain'] and sizes == [6] * 6
    for sequences in out.values():
        assert len(sequences) == 3
        for number, (rows, onset, idx) in enumerate(sequences):
            assert onset == 6 and rows.shape == (12, 2)
            # the drive's row indices in B
            np.testing.assert_array_equal(idx, np.arange(number * 12, (number + 1) * 12))
            clean = rows_b[idx]
            np.testing.assert_array_equal(rows[:onset], clean[:onset])  # taken, not encoded
            assert not np.allclose(rows[onset:], clean[onset:])  # the shift changed them


def test_labelled_selection_shifts_at_most_the_capped_frames(
        tiny_model: Bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calibration, 'LABELLED_FRAMES', 100)
    options = CalibrationOptions(partitions=('rain',), sequential=False)
    _, report = calibrate(tiny_model, drives(0, 16), options)
    # half B holds 320 frames: every 4th of them gets the shift
    assert report['partitions']['rain']['validation_frames'] == 80
    _, full = calibrate(tiny_model, drives(0, 5), options)
    assert full['partitions']['rain']['validation_frames'] == 80  # 2 of 5 drives: every frame
