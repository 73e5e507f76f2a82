"""Tests of vae_ood_monitor.core.manifest: validation of Manifest, Partition and friends.

Direct construction raises ConfigError; the same problems read from JSON (Manifest.from_dict)
raise BundleError, which is what load_bundle reports.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from vae_ood_monitor.core.baseline import BaselineParams
from vae_ood_monitor.core.density import DensityModel
from vae_ood_monitor.core.errors import BundleError, ConfigError
from vae_ood_monitor.core.manifest import (CusumParams, Manifest, ModelInfo, Partition,
                                           SCHEMA_VERSION)
from vae_ood_monitor.core.preprocess import InputSpec
from vae_ood_monitor.core.typedefs import DimSelection, Precision
from vood_testing import make_bundle

SHA = 'ab' * 32


def manifest(*partitions: Partition, latent: int = 4, **kwargs: Any) -> Manifest:
    return Manifest(name='m', input=InputSpec(12, 16),
                    model=ModelInfo(sha256=SHA, latent_dim=latent), partitions=partitions,
                    **kwargs)


def part(name: str = 'all', dims: tuple[int, ...] = (0, 1, 2, 3), **kwargs: Any) -> Partition:
    kwargs.setdefault('calibration_scores', [3.0, 1.0, 2.0])
    kwargs.setdefault('threshold', 2.5)
    return Partition(name, dims, **kwargs)


@pytest.fixture
def data() -> dict[str, Any]:
    """A valid manifest dict as read from manifest.json."""
    return json.loads(json.dumps(make_bundle(cusum=CusumParams(20, 0.5, 5.0)).manifest.to_dict()))


# --- Partition -----------------------------------------------------------------------------------

def test_partition_sorts_and_freezes_calibration_scores() -> None:
    p = part(calibration_scores=[3.0, 1.0, 2.0])
    assert p.calibration_scores.tolist() == [1.0, 2.0, 3.0]
    assert p.calibration_scores.dtype == np.float64
    assert not p.calibration_scores.flags.writeable
    with pytest.raises(ValueError, match='read-only'):
        p.calibration_scores[0] = 5.0


def test_partition_normalises_fields() -> None:
    p = Partition('x', [np.int64(2), 0], selection='paper')  # type: ignore[arg-type]
    assert p.dims == (2, 0) and all(type(d) is int for d in p.dims)
    assert p.selection is DimSelection.PAPER


@pytest.mark.parametrize('scores, threshold, calibrated', [
    ([1.0, 2.0], 1.5, True),
    ([], 1.5, False),
    ([1.0, 2.0], None, False),
    ([], None, False),
])
def test_partition_calibrated(scores: list[float], threshold: float | None,
                              calibrated: bool) -> None:
    assert Partition('x', (0,), calibration_scores=scores,
                     threshold=threshold).calibrated is calibrated


@pytest.mark.parametrize('dims', [(), (1, 1), (-1, 0)])
def test_partition_rejects_bad_dims(dims: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match='must be distinct non-negative latent indices'):
        Partition('x', dims)


@pytest.mark.parametrize('name', ['', None, 3])
def test_partition_rejects_bad_name(name: object) -> None:
    with pytest.raises(ConfigError, match='must be a non-empty string'):
        Partition(name, (0,))  # type: ignore[arg-type]


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_partition_rejects_non_finite_calibration_scores(bad: float) -> None:
    with pytest.raises(ConfigError, match="Partition 'x': calibration scores must be finite"):
        Partition('x', (0,), calibration_scores=[1.0, bad], threshold=1.0)


@pytest.mark.parametrize('bad', [math.nan, math.inf])
def test_partition_rejects_non_finite_threshold(bad: float) -> None:
    with pytest.raises(ConfigError, match='threshold .* is not finite'):
        Partition('x', (0,), calibration_scores=[1.0], threshold=bad)


def test_partition_dict_round_trip() -> None:
    p = part(cusum=CusumParams(10, 0.25, 4.0), selection=DimSelection.LABELLED)
    q = Partition.from_dict(json.loads(json.dumps(p.to_dict())))
    assert (q.name, q.dims, q.selection, q.threshold, q.cusum) == (
        p.name, p.dims, p.selection, p.threshold, p.cusum)
    np.testing.assert_array_equal(q.calibration_scores, p.calibration_scores)


# --- CusumParams, ModelInfo ----------------------------------------------------------------------

@pytest.mark.parametrize('window', [0, -3, 2.0])
def test_cusum_params_rejects_bad_window(window: object) -> None:
    with pytest.raises(ConfigError, match='CUSUM window .* must be a positive integer'):
        CusumParams(window, 0.5, 5.0)  # type: ignore[arg-type]


@pytest.mark.parametrize('delta, tau', [(math.nan, 5.0), (0.5, math.inf), (0.5, 0.0),
                                        (0.5, -1.0)])
def test_cusum_params_rejects_bad_delta_tau(delta: float, tau: float) -> None:
    with pytest.raises(ConfigError, match='must be finite, tau positive'):
        CusumParams(20, delta, tau)


def test_model_info_validation() -> None:
    with pytest.raises(ConfigError, match='not a 64-digit hex digest'):
        ModelInfo(sha256='abc', latent_dim=4)
    with pytest.raises(ConfigError, match='latent_dim 0 must be positive'):
        ModelInfo(sha256=SHA, latent_dim=0)
    with pytest.raises(ConfigError, match=r'must be 2 outputs \(mu, logvar\)'):
        ModelInfo(sha256=SHA, latent_dim=4, output_names=('mu',))  # type: ignore[arg-type]
    info = ModelInfo(sha256=SHA, latent_dim=4, precision='fp16',  # type: ignore[arg-type]
                     output_names=['a', 'b'])  # type: ignore[arg-type]
    assert info.precision is Precision.FP16 and info.output_names == ('a', 'b')
    assert (info.stats_dim, info.layout.width) == (0, 8) and 'stats_dim' not in info.to_dict()
    # activation statistics: a third output, and rows of mu, logvar and the statistics
    with pytest.raises(ConfigError, match=r'must be 3 outputs \(mu, logvar, stats\)'):
        ModelInfo(sha256=SHA, latent_dim=4, stats_dim=6)
    with pytest.raises(ConfigError, match='stats_dim -1 must be an integer >= 0'):
        ModelInfo(sha256=SHA, latent_dim=4, stats_dim=-1)
    info = ModelInfo(sha256=SHA, latent_dim=4, stats_dim=6,
                     output_names=('mu', 'logvar', 'stats'))
    assert (info.layout.width, info.to_dict()['stats_dim']) == (14, 6)


# --- Manifest ------------------------------------------------------------------------------------

def test_manifest_rejects_dims_out_of_latent_range() -> None:
    with pytest.raises(ConfigError, match="Partition 'all' uses latent dim 4 but the model has "
                                          'only 4 latent dimensions'):
        manifest(part(dims=(0, 4)))


def test_manifest_rejects_duplicate_partition_names() -> None:
    with pytest.raises(ConfigError, match=r"names must be unique, got \['a', 'a'\]"):
        manifest(part('a', (0,)), part('a', (1,)))


@pytest.mark.parametrize('far', [0.0, 1.0, -0.1, 1.5, math.nan])
def test_manifest_rejects_target_far_outside_unit_interval(far: float) -> None:
    with pytest.raises(ConfigError, match=r'target_far .* must be in \(0, 1\)'):
        manifest(part(), target_far=far)


def test_manifest_calibrated() -> None:
    assert manifest(part('a', (0,)), part('b', (1, 2))).calibrated
    assert not manifest().calibrated
    assert not manifest(part('a', (0,)), part('b', (1,), threshold=None)).calibrated


def test_manifest_replace_validates_again() -> None:
    m = manifest(part())
    assert m.replace(target_far=0.05).target_far == 0.05
    with pytest.raises(ConfigError, match='target_far'):
        m.replace(target_far=2.0)
    with pytest.raises(ConfigError, match='latent dim'):
        m.replace(model=ModelInfo(sha256=SHA, latent_dim=2))


def test_manifest_dict_round_trip(data: dict[str, Any]) -> None:
    m = Manifest.from_dict(data)
    assert m.schema_version == 1  # no change partitions
    assert json.loads(json.dumps(m.to_dict())) == data


def test_change_partitions_need_schema_version_2(data: dict[str, Any]) -> None:
    part = Partition('all_change', (0, 1), calibration_scores=[0.8, 1.0, 1.3], threshold=1.25,
                     threshold_low=0.85, tail='two_sided',
                     baseline=BaselineParams(20, 3, 5, 50, offset=12.5))
    m = Manifest.from_dict(data)
    m2 = m.replace(partitions=m.partitions + (part,))
    assert (m2.schema_version, SCHEMA_VERSION) == (2, 4)
    assert m2.frame_partitions == m.partitions
    written = m2.to_dict()
    assert written['schema_version'] == 2
    assert written['partitions'][-1]['baseline'] == {'frames': 20, 'gap': 3, 'min_frames': 5,
                                                     'hold': 50, 'offset': 12.5}
    back = Manifest.from_dict(json.loads(json.dumps(written)))
    assert back.partitions[-1].baseline == BaselineParams(20, 3, 5, 50, offset=12.5)
    assert back.to_dict() == written
    # a version-2 manifest written before offsets existed reads as a plain ratio
    older = json.loads(json.dumps(written))
    del older['partitions'][-1]['baseline']['offset']
    assert Manifest.from_dict(older).partitions[-1].baseline.offset == 0.0
    older['partitions'][-1]['baseline']['offset'] = -1.0  # tampered: a clear error
    with pytest.raises(BundleError, match='malformed.*offset -1.0 must be a finite number'):
        Manifest.from_dict(older, source='x.vood')
    written['schema_version'] = 1  # an old version number cannot carry change partitions
    with pytest.raises(BundleError, match=r'declares schema version 1 but uses features of '
                       r'version 2 \(change partitions need 2'):
        Manifest.from_dict(written, source='x.vood')


def test_generic_partitions_and_statistics_need_schema_version_3(data: dict[str, Any]) -> None:
    density = DensityModel(columns=(0, 5), centre=[0.0, 1.0], whitening=np.eye(2),
                           method='mahalanobis', groups=('mu', 'logvar'))
    generic = Partition('generic', (), calibration_scores=[1.0, 2.0, 3.0], threshold=2.5,
                        density=density)  # a generic partition may sum no latent dims
    m = Manifest.from_dict(data)
    m3 = m.replace(partitions=m.partitions + (generic,))
    assert m3.schema_version == 3
    written = json.loads(json.dumps(m3.to_dict()))
    assert written['schema_version'] == 3
    back = Manifest.from_dict(written).partitions[-1]
    assert back.dims == () and back.density is not None and back.density.columns == (0, 5)
    np.testing.assert_allclose(back.raw_scores(np.ones((1, 8)), m3.model.layout), [1.0])
    written['schema_version'] = 2  # a version-2 runtime would misread the generic partition
    with pytest.raises(BundleError, match=r'declares schema version 2 but uses features of '
                       r'version 3 \(.*activation statistics and generic partitions 3, flow 4\)'):
        Manifest.from_dict(written, source='x.vood')
    # the activation statistics output alone needs version 3 too
    stats = m.replace(model=ModelInfo(sha256=SHA, latent_dim=4, stats_dim=6,
                                      output_names=('mu', 'logvar', 'stats')))
    assert stats.schema_version == 3 and stats.to_dict()['model']['stats_dim'] == 6
    with pytest.raises(ConfigError, match='scores encoding column 8 but the model gives 8'):
        manifest(Partition('generic', (), calibration_scores=[1.0, 2.0], threshold=1.5,
                           density=DensityModel(columns=(8,), centre=[0.0],
                                                whitening=[[1.0]], method='mahalanobis')))


def test_manifest_json_never_contains_nan() -> None:
    text = json.dumps(make_bundle().manifest.to_dict(), allow_nan=False)
    assert 'NaN' not in text and 'Infinity' not in text


def test_from_dict_rejects_wrong_format(data: dict[str, Any]) -> None:
    data['format'] = 'something-else'
    with pytest.raises(BundleError, match="format field 'something-else'.*vae-ood export"):
        Manifest.from_dict(data)
    with pytest.raises(BundleError, match='not a vae-ood bundle manifest'):
        Manifest.from_dict([1, 2])  # type: ignore[arg-type]


def test_from_dict_newer_schema_says_upgrade(data: dict[str, Any]) -> None:
    data['schema_version'] = SCHEMA_VERSION + 1
    with pytest.raises(BundleError, match='schema version 5.*reads versions 1, 2, 3, 4: upgrade'):
        Manifest.from_dict(data, source='x.vood')


@pytest.mark.parametrize('version', [0, '1', None, 1.5, 1.0, True])
def test_from_dict_older_or_other_schema_says_reexport(data: dict[str, Any],
                                                       version: object) -> None:
    data['schema_version'] = version
    with pytest.raises(BundleError, match='schema version .*re-export the model'):
        Manifest.from_dict(data)


def _set(path: tuple[Any, ...], value: Any):  # type: ignore[no-untyped-def]
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return change


@pytest.mark.parametrize('change', [
    _set(('partitions', 0, 'dims'), [0, 7]),                    # out of latent range
    _set(('partitions', 0, 'dims'), []),                        # empty dims
    _set(('partitions', 0, 'calibration_scores'), [1.0, math.nan]),
    lambda data: data['partitions'].append(copy.deepcopy(data['partitions'][0])),
    _set(('target_far',), 1.0),
    _set(('target_far',), 'often'),
    _set(('input', 'height'), 0),
    _set(('input', 'channel_order'), 'cmyk'),
    _set(('model', 'sha256'), 'abc'),
    _set(('model',), KeyError),
    _set(('model', 'output_names'), KeyError),
    _set(('partitions', 0, 'cusum'), {'window': 0, 'delta': 0.5, 'tau': 5.0}),
    _set(('partitions', 0, 'cusum'), [20, 0.5, 5.0]),
    _set(('partitions', 0, 'selection'), 'best'),
    _set(('partitions', 0), 5),                                 # not an object
    _set(('partitions',), None),
    _set(('provenance',), 5),
], ids=['dims-range', 'dims-empty', 'nan-score', 'duplicate-name', 'far-1', 'far-str',
        'height', 'order', 'sha', 'no-model', 'no-outputs', 'cusum-window', 'cusum-list',
        'selection', 'partition-int', 'partitions-null', 'provenance-int'])
def test_from_dict_invalid_content_is_bundle_error(data: dict[str, Any], change) -> None:
    change(data)
    with pytest.raises(BundleError, match=r"'x\.vood' is malformed .*re-export"):
        Manifest.from_dict(data, source="'x.vood'")


def test_from_dict_defaults(data: dict[str, Any]) -> None:
    for key in ('target_far', 'provenance', 'metrics', 'created', 'partitions'):
        del data[key]
    for key in ('channel_order', 'interpolation', 'mean', 'std'):
        del data['input'][key]
    m = Manifest.from_dict(data)
    assert m.target_far == 0.01 and m.partitions == () and m.created == ''
    assert m.input == InputSpec(12, 16)


@pytest.mark.parametrize('tail, threshold, threshold_low, calibrated', [
    ('upper', 5.0, None, True), ('upper', None, 2.0, False),
    ('lower', None, 2.0, True), ('lower', 5.0, None, False),
    ('two_sided', 5.0, 2.0, True), ('two_sided', 5.0, None, False),
])
def test_partition_tails_need_their_thresholds(tail: str, threshold: float | None,
                                               threshold_low: float | None,
                                               calibrated: bool) -> None:
    part = Partition('p', (0,), calibration_scores=[1.0, 2.0], threshold=threshold,
                     threshold_low=threshold_low, tail=tail)
    assert part.calibrated is calibrated


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=40))
def test_partition_median_is_numpys_median(scores: list[float]) -> None:
    # read off the sorted calibration scores (per frame, in the per-frame rule): the same value
    median = Partition('p', (0,), calibration_scores=scores).median
    if scores:
        assert median == float(np.median(scores))
    else:
        assert math.isnan(median)


def test_partition_evidence_per_tail_scalar_and_vector_agree() -> None:
    # calibration median 4; upper threshold 16 (two doublings up), lower threshold 2 (one down)
    scores = np.array([0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    inf = math.inf
    expected = {
        'upper': [-inf, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5],
        'lower': [inf, 2.0, 1.0, 0.0, -1.0, -2.0, -3.0],
        'two_sided': [inf, 2.0, 1.0, 0.0, 0.5, 1.0, 1.5],
    }
    for tail, values in expected.items():
        part = Partition('p', (0,), calibration_scores=[1.0, 2.0, 4.0, 8.0, 16.0],
                         threshold=16.0, threshold_low=2.0, tail=tail)
        assert part.median == 4.0
        np.testing.assert_allclose(part.evidence(scores), values)
        assert [part.evidence_of(float(s)) for s in scores] == pytest.approx(values)
        assert part.evidence_of(math.nan) == inf  # a broken encoder output always triggers
    round_trip = Partition.from_dict(Partition('p', (0,), calibration_scores=[1.0],
                                               threshold_low=2.0, tail='lower').to_dict())
    assert round_trip.tail.value == 'lower' and round_trip.threshold_low == 2.0
    with pytest.raises(ConfigError, match="tail 'sideways'"):
        Partition('p', (0,), tail='sideways')


@pytest.mark.parametrize('tail', ['upper', 'lower', 'two_sided'])
def test_partition_evidence_with_zero_median_or_threshold_is_a_comparison(tail: str) -> None:
    # a calibration whose median score or lower threshold is 0 (e.g. dims that never moved)
    # has no log scale; the evidence falls back to the threshold comparison instead of raising
    part = Partition('p', (0,), calibration_scores=[0.0, 0.0, 0.0, 1.0], threshold=2.0,
                     threshold_low=0.0, tail=tail)
    assert part.median == 0.0
    beyond_upper = math.inf if tail != 'lower' else -math.inf
    assert part.evidence_of(3.0) == beyond_upper
    assert part.evidence_of(0.5) == -math.inf  # inside both thresholds
    assert part.evidence_of(0.0) == -math.inf  # not below a lower threshold of 0
    low = Partition('q', (0,), calibration_scores=[1.0, 2.0, 4.0], threshold_low=0.0,
                    tail='lower')
    assert low.evidence_of(1.0) == -math.inf and low.evidence_of(0.0) == -math.inf
