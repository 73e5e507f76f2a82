"""Choosing a partition's latent dims and tail (evaluate/dims.py) on constructed KL."""

from __future__ import annotations

import numpy as np
import pytest

from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.core.typedefs import Tail
from vae_ood_monitor.evaluate.dims import (labelled_dims, paper_dims, per_dim_auroc,
                                           separation_gap, tail_score)

DIMS, FRAMES = 6, 2000


def _id(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(5.0, 1.0, (FRAMES, DIMS)).clip(0.1)


def test_paper_rule_finds_the_dim_that_follows_the_factor() -> None:
    rng = np.random.default_rng(0)
    videos = []
    for level in np.linspace(0.0, 1.0, 6):  # graded severity of the partition's factor
        kl = rng.normal(5.0, 0.3, (50, DIMS))
        kl[:, 2] += rng.normal(0.0, 0.1 + 3.0 * level, 50)  # dim 2 jitters with the factor
        videos.append(kl)
    assert paper_dims(videos, count=1) == (2,)
    chosen = paper_dims(videos, count=3)
    assert 2 in chosen and len(chosen) == 3 and list(chosen) == sorted(chosen)
    assert paper_dims(videos, count=0) == (2,)  # at least one dim


def test_paper_rule_needs_two_videos() -> None:
    with pytest.raises(CalibrationError, match='at least two calibration videos'):
        paper_dims([np.ones((10, 3))])


def test_per_dim_auroc() -> None:
    id_kl = np.array([[1.0, 5.0], [2.0, 6.0]])
    ood_kl = np.array([[3.0, 0.0], [4.0, 5.5]])
    # dim 0: every OOD value is larger (1.0); dim 1: OOD 5.5 beats only ID 5.0 (1 of 4 pairs)
    np.testing.assert_allclose(per_dim_auroc(id_kl, ood_kl), [1.0, 0.25])


def test_tail_score_by_hand() -> None:
    id_scores = np.exp([0.0, 1.0, 2.0])  # median log score 1
    scores = np.exp([3.0, 0.0, 1.0])
    np.testing.assert_allclose(tail_score(scores, Tail.UPPER, id_scores), scores)
    np.testing.assert_allclose(tail_score(scores, Tail.LOWER, id_scores), -scores)
    np.testing.assert_allclose(tail_score(scores, Tail.TWO_SIDED, id_scores), [2.0, 1.0, 0.0])
    assert np.isfinite(tail_score(np.zeros(1), Tail.TWO_SIDED, id_scores)).all()


def test_labelled_rule_upper_tail() -> None:
    ood = _id(1)
    ood[:, [0, 1]] += 1.5  # dims 0 and 1 rise under the shift; their sum separates best
    dims, tail, auroc = labelled_dims(_id(), ood)
    assert (dims, tail) == ((0, 1), Tail.UPPER)
    assert 0.9 < auroc <= 1.0
    single = per_dim_auroc(_id(), ood)[:2]
    assert auroc > single.max()  # two dims beat either alone


def test_labelled_rule_lower_tail() -> None:
    ood = _id(1)
    ood[:, [3, 4]] -= 1.5  # the posterior widens back towards the prior in dims 3 and 4
    dims, tail, auroc = labelled_dims(_id(), ood)
    assert (dims, tail) == ((3, 4), Tail.LOWER)
    assert auroc > 0.9


def test_labelled_rule_two_sided() -> None:
    ood = _id(1)
    ood[: FRAMES // 2] *= 2.5  # half of the shifted frames score far higher, half far lower
    ood[FRAMES // 2:] /= 2.5
    dims, tail, auroc = labelled_dims(_id(), ood)
    assert (dims, tail) == (tuple(range(DIMS)), Tail.TWO_SIDED)
    assert auroc > 0.95


def test_labelled_rule_fixed_count_and_tails() -> None:
    ood = _id(1)
    ood[:, [0, 1]] += 1.5
    assert labelled_dims(_id(), ood, count=1)[0] in ((0,), (1,))
    dims, tail, auroc = labelled_dims(_id(), ood, tails=(Tail.LOWER,))
    assert tail is Tail.LOWER and auroc < 0.6  # nothing falls under this shift


def test_labelled_rule_needs_both_sets() -> None:
    with pytest.raises(CalibrationError, match='needs in-distribution and shifted frames'):
        labelled_dims(_id(), np.zeros((0, DIMS)))
    with pytest.raises(CalibrationError, match='needs in-distribution and shifted frames'):
        labelled_dims(np.zeros((0, DIMS)), _id())


def test_separation_gap_by_hand() -> None:
    low, high = np.ones(100), np.full(100, np.exp(2.0))
    assert separation_gap(low, high, Tail.UPPER) == pytest.approx(2.0)
    assert separation_gap(high, low, Tail.LOWER) == pytest.approx(2.0)
    assert separation_gap(high, low, Tail.UPPER) == pytest.approx(-2.0)  # overlap: negative
    assert np.isfinite(separation_gap(np.zeros(10), high, Tail.UPPER))


def test_labelled_rule_prefers_the_widest_gap_where_auroc_saturates() -> None:
    rng = np.random.default_rng(0)
    id_kl = rng.uniform(0.04, 0.06, (FRAMES, DIMS))
    ood = rng.uniform(1.4, 1.6, (FRAMES, DIMS))
    ood[:, 3:] = id_kl[:, 3:]  # dims 0-2 see the shift (three guided dims), 3-5 do not
    for dim in range(3):  # each shifted dim has its own rare quirk on normal frames
        id_kl[rng.choice(FRAMES, FRAMES // 50, replace=False), dim] = 0.8
    assert (per_dim_auroc(id_kl, ood)[:3] == 1.0).all()  # any one alone separates perfectly
    dims, tail, auroc = labelled_dims(id_kl, ood)
    assert (dims, tail, auroc) == ((0, 1, 2), Tail.UPPER, 1.0)
    gap = separation_gap(id_kl[:, :3].sum(axis=1), ood[:, :3].sum(axis=1), Tail.UPPER)
    assert gap > max(separation_gap(id_kl[:, d], ood[:, d], Tail.UPPER) for d in range(3))
