"""The built-in colour baseline (evaluate/colour.py)."""

from __future__ import annotations

import numpy as np
import pytest

from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.evaluate.colour import colour_moments, colour_scores, fit_colour_baseline


def test_moments_by_hand() -> None:
    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 0] = [[0, 10], [20, 30]]   # mean 15, std sqrt(125)
    image[..., 1] = 100
    image[..., 2] = [[0, 0], [200, 200]]  # mean 100, std 100
    np.testing.assert_allclose(colour_moments(image[None])[0],
                               [15, 100, 100, np.sqrt(125), 0, 100], rtol=1e-6)


def test_scores_grow_with_the_colour_change() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(90, 110, size=(200, 6, 8, 3)).astype(np.uint8)
    baseline = fit_colour_baseline(frames)
    assert baseline['kind'] == 'colour_moments' and baseline['frames'] == 200
    near, far = frames[:20] + 3, frames[:20] + 30
    assert np.all(colour_scores(baseline, far) > colour_scores(baseline, near).max())
    assert np.median(colour_scores(baseline, frames)) < np.median(colour_scores(baseline, near))


def test_bad_input() -> None:
    with pytest.raises(CalibrationError, match=r'shape \(N, h, w, 3\)'):
        colour_moments(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(CalibrationError, match='at least 2'):
        fit_colour_baseline(np.zeros((1, 4, 4, 3), np.uint8))
    with pytest.raises(CalibrationError, match='colour baseline is malformed'):
        colour_scores({'mean': [0.0] * 5}, np.zeros((1, 4, 4, 3), np.uint8))
