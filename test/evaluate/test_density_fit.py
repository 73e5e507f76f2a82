"""Fitting the generic score (evaluate/density_fit.py): whitening, cross-fitting, small data."""

from __future__ import annotations

import numpy as np
import pytest

from vae_ood_monitor.core.density import DensityMethod
from vae_ood_monitor.core.encoding import Layout
from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.evaluate.density_fit import fit_density, fit_density_scored, pseudo_groups

LAYOUT = Layout(2, 6)


def rows(n: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """Gaussian encoding rows whose 6 stats columns are correlated and differently scaled."""
    rng = np.random.default_rng(seed)
    stats = rng.normal(size=(n, 6)) @ np.triu(np.ones((6, 6))) * [1, 10, 100, 1, 1, 1] * scale
    return np.concatenate([rng.normal(size=(n, 4)), stats + 5.0], axis=1)


def test_whitening_makes_in_distribution_stats_isotropic() -> None:
    data = rows(4000)
    model = fit_density(data, LAYOUT, method='mahalanobis')
    assert model.columns == (4, 5, 6, 7, 8, 9) and model.groups == ('stats',)
    z = (data[:, 4:] - model.centre) @ model.whitening
    np.testing.assert_allclose(np.cov(z.T), np.eye(6), atol=0.08)
    # the squared distance of Gaussian rows is about chi-square with 6 degrees of freedom
    assert np.mean(model.scores(data) ** 2) == pytest.approx(6.0, rel=0.05)


def test_knn_keeps_an_evenly_spaced_reference() -> None:
    model = fit_density(rows(500), LAYOUT, max_reference=100, k=3)
    assert model.method is DensityMethod.KNN and model.reference.shape == (100, 6)
    assert model.k == 3


def test_far_rows_score_higher_than_any_in_distribution_row() -> None:
    for method in DensityMethod:
        model = fit_density(rows(1000), LAYOUT, method=method)
        shifted = rows(50, seed=1)
        shifted[:, 4] += 8.0  # a shift along the least varying column
        assert model.scores(shifted).min() > np.quantile(model.scores(rows(500, seed=2)), 0.99)


def test_cross_fitted_scores_are_not_optimistic() -> None:
    data = rows(300)
    groups = np.repeat(np.arange(6), 50)
    model, honest = fit_density_scored(data, groups, LAYOUT, method='knn')
    in_sample = model.scores(data)  # every row is its own nearest reference: 0 (float32)
    assert np.all(in_sample < 0.01) and np.all(honest > 0.1)
    fresh = model.scores(rows(300, seed=5))
    assert np.median(honest) == pytest.approx(np.median(fresh), rel=0.25)


def test_a_model_without_stats_falls_back_to_the_latent() -> None:
    model = fit_density(rows(200)[:, :4], Layout(2), method='mahalanobis')
    assert model.groups == ('mu', 'logvar') and model.columns == (0, 1, 2, 3)


def test_pseudo_groups_cut_one_recording_into_stretches() -> None:
    np.testing.assert_array_equal(pseudo_groups(np.array([7, 7, 3, 3])), [1, 1, 0, 0])
    cut = pseudo_groups(np.zeros(260, np.int32))
    assert cut.max() == 5 and np.all(np.bincount(cut)[:5] == 50)
    assert pseudo_groups(np.zeros(12, np.int32)).max() == 3  # at least 4 stretches


def test_errors() -> None:
    with pytest.raises(CalibrationError, match='Only 10 frames to fit the generic score'):
        fit_density(rows(10), LAYOUT)
    flat = np.ones((50, LAYOUT.width))
    with pytest.raises(CalibrationError, match='encoder output is degenerate'):
        fit_density(flat, LAYOUT)
    with pytest.raises(CalibrationError, match='too few to cross-fit'):
        fit_density_scored(rows(3), np.zeros(3), LAYOUT)
