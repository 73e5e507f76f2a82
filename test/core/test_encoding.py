"""Encoding rows (core/encoding.py): column layout, KL from rows, encoders with and without
activation statistics."""

from __future__ import annotations

import numpy as np
import pytest

from vae_ood_monitor.core.encoding import encode_rows, Layout
from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.scoring import kl_per_dim


def test_columns_of_each_group() -> None:
    layout = Layout(3, 4)
    assert layout.width == 10
    assert layout.columns(['mu']) == (0, 1, 2)
    assert layout.columns(['stats', 'mu']) == (0, 1, 2, 6, 7, 8, 9)  # always in row order
    assert layout.columns(('logvar',)) == (3, 4, 5)


@pytest.mark.parametrize(('groups', 'match'), [
    ([], 'must be a non-empty selection of mu, logvar, stats'),
    (['sigma'], "'sigma'"),
])
def test_unknown_groups(groups: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Layout(3, 4).columns(groups)


def test_stats_of_a_model_without_them() -> None:
    with pytest.raises(ConfigError, match="'stats' asked for, but the model has no activation"):
        Layout(3).columns(['stats'])


@pytest.mark.parametrize(('latent', 'stats'), [(0, 0), (2, -1), (True, 0), (2.5, 0)])
def test_layout_validation(latent: object, stats: object) -> None:
    with pytest.raises(ConfigError):
        Layout(latent, stats)  # type: ignore[arg-type]


def test_kl_from_rows_matches_kl_per_dim() -> None:
    rng = np.random.default_rng(0)
    mu, logvar, stats = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    rows = np.concatenate([mu, logvar, stats], axis=1)
    layout = Layout(3, 2)
    np.testing.assert_allclose(layout.kl(rows), kl_per_dim(mu, logvar))
    np.testing.assert_allclose(layout.kl(rows[0]), kl_per_dim(mu[0], logvar[0]))


def test_check_names_the_shapes() -> None:
    with pytest.raises(ConfigError, match=r'encodings have shape \(2, 7\); this model gives '
                       r'rows of 8 columns \(latent 3 x 2 \+ 2 activation statistics\)'):
        Layout(3, 2).check(np.zeros((2, 7)))
    assert Layout(3, 2).check(np.zeros((2, 8), np.float32)).dtype == np.float64


def test_encode_rows_with_and_without_stats() -> None:
    batch = np.zeros((2, 3, 4, 4), np.float32)

    class Plain:
        def encode(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return np.ones((len(batch), 2), np.float32), np.zeros((len(batch), 2), np.float32)

    class WithStats(Plain):
        def encode_with_stats(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
            mu, logvar = self.encode(batch)
            return mu, logvar, np.full((len(batch), 3), 7.0, np.float32)

    plain = encode_rows(Plain(), batch)
    assert plain.shape == (2, 4) and plain.dtype == np.float64
    np.testing.assert_array_equal(plain[0], [1, 1, 0, 0])
    np.testing.assert_array_equal(encode_rows(WithStats(), batch)[1], [1, 1, 0, 0, 7, 7, 7])
