"""The generic score's runtime model (core/density.py): distances by hand, validation, I/O."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vae_ood_monitor.core.density import DensityMethod, DensityModel
from vae_ood_monitor.core.errors import ConfigError


def mahalanobis() -> DensityModel:
    """Columns 1 and 3 of a row, centred on (1, 2), scaled by 1/2 and 1 (diagonal)."""
    return DensityModel((1, 3), np.array([1.0, 2.0]), np.diag([0.5, 1.0]),
                        DensityMethod.MAHALANOBIS)


def knn(k: int = 1) -> DensityModel:
    """Identity whitening around 0 on columns 0 and 1; references at (0, 0), (3, 0), (0, 4)."""
    reference = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    return DensityModel((0, 1), np.zeros(2), np.eye(2), DensityMethod.KNN, reference, k)


def test_mahalanobis_distance_by_hand() -> None:
    rows = np.array([[9.0, 1.0, 9.0, 2.0],     # at the centre
                     [0.0, 5.0, 0.0, 2.0],     # 4 off in column 1, scaled by 1/2: 2
                     [0.0, 7.0, 0.0, 10.0]])   # (3, 8): sqrt(9 + 64)
    np.testing.assert_allclose(mahalanobis().scores(rows), [0.0, 2.0, math.sqrt(73.0)])
    assert mahalanobis().score(rows[2]) == pytest.approx(math.sqrt(73.0))


@pytest.mark.parametrize(('k', 'expected'), [
    (1, [1.0, 1.0, 2.0]),
    (2, [(1.0 + 2.0) / 2, (1.0 + math.sqrt(10.0)) / 2, (2.0 + 2.0) / 2]),
])
def test_knn_distance_by_hand(k: int, expected: list[float]) -> None:
    rows = np.array([[1.0, 0.0, 7.0],    # 1 from (0, 0), 2 from (3, 0), sqrt(17) from (0, 4)
                     [3.0, 1.0, 7.0],    # 1 from (3, 0), sqrt(10) from (0, 0), 5 from (0, 4)
                     [0.0, 2.0, 7.0]])   # 2 from (0, 0) and from (0, 4)
    model = knn(k)
    np.testing.assert_allclose(model.scores(rows), expected)
    for row, value in zip(rows, expected):
        assert model.score(row) == pytest.approx(value)


def test_scores_work_in_blocks_beyond_256_rows() -> None:
    rng = np.random.default_rng(0)
    model = DensityModel((0, 1), np.zeros(2), np.eye(2), 'knn', rng.normal(size=(50, 2)), 3)
    rows = rng.normal(size=(600, 2))
    # float32 arithmetic in a different order (matrix-matrix vs matrix-vector)
    np.testing.assert_allclose(model.scores(rows), [model.score(r) for r in rows], rtol=1e-5)


def test_a_non_finite_row_scores_nan_not_an_error() -> None:
    assert math.isnan(mahalanobis().score(np.array([0.0, math.nan, 0.0, 0.0])))
    assert math.isnan(float(knn().scores(np.array([[math.inf, 0.0]]))[0]))


def test_round_trip_through_json() -> None:
    for model in (mahalanobis(), knn(2)):
        again = DensityModel.from_dict(json.loads(json.dumps(model.to_dict())))
        rows = np.random.default_rng(1).normal(size=(5, 4))
        np.testing.assert_allclose(again.scores(rows), model.scores(rows), rtol=1e-6)
        assert again.method is model.method and again.k == model.k
    assert mahalanobis().to_dict()['reference'] is None and mahalanobis().width == 4


@pytest.mark.parametrize(('changes', 'match'), [
    ({'columns': ()}, 'density columns .* distinct non-negative integers'),
    ({'columns': (0, 0)}, 'density columns'),
    ({'columns': (-1, 2)}, 'density columns'),
    ({'centre': np.zeros(3)}, 'do not fit 2 columns'),
    ({'whitening': np.eye(3)}, 'do not fit 2 columns'),
    ({'whitening': [[1.0, math.nan], [0.0, 1.0]]}, 'finite 2-d array'),
    ({'method': 'lof'}, "method 'lof' is not supported; choose one of: knn, mahalanobis"),
    ({'reference': None}, 'A knn density needs reference encodings'),
    ({'reference': np.zeros((3, 5))}, 'does not fit the whitening'),
    ({'k': 4}, r'k 4 must be an integer in 1..3'),
    ({'k': True}, 'k True must be an integer'),
])
def test_validation(changes: dict[str, object], match: str) -> None:
    fields = {'columns': (0, 1), 'centre': np.zeros(2), 'whitening': np.eye(2),
              'method': 'knn', 'reference': np.zeros((3, 2)), 'k': 1}
    with pytest.raises(ConfigError, match=match):
        DensityModel(**{**fields, **changes})  # type: ignore[arg-type]


def test_mahalanobis_takes_no_reference() -> None:
    with pytest.raises(ConfigError, match='takes no reference'):
        DensityModel((0,), np.zeros(1), np.eye(1), 'mahalanobis', np.zeros((2, 1)))
