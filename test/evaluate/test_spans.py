"""Runs of a mask, as the evaluation and the replay report count alarm and OOD spans."""

from __future__ import annotations

from hypothesis import given, strategies as st
import numpy as np
import pytest

from vae_ood_monitor.evaluate.spans import runs


@pytest.mark.parametrize(('mask', 'spans'), [
    ([0, 1, 1, 0, 1], [(1, 3), (4, 5)]),
    ([1, 1, 1], [(0, 3)]),
    ([0, 0], []),
    ([], []),
    ([1, 0, 0, 1], [(0, 1), (3, 4)]),
])
def test_runs_by_hand(mask: list[int], spans: list[tuple[int, int]]) -> None:
    assert runs(np.asarray(mask, bool)) == spans


@given(st.lists(st.booleans(), max_size=40))
def test_runs_cover_exactly_the_true_frames(mask: list[bool]) -> None:
    rebuilt = np.zeros(len(mask), bool)
    previous_stop = -1
    for start, stop in runs(mask):
        assert start < stop and start > previous_stop  # non-empty, ordered, separated
        rebuilt[start:stop] = True
        previous_stop = stop
    assert rebuilt.tolist() == mask
