"""Tests of the labelled test sequences."""

from __future__ import annotations

import numpy as np
import pytest

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.data.drives import make_sequence, ood_mask, SequenceMode
from vae_ood_monitor.data.scenes import render_sequence, SceneConfig

SMALL = SceneConfig(width=64, height=48)


@pytest.mark.parametrize(('n', 'mode', 'expected'), [
    (8, 'id', [0, 0, 0, 0, 0, 0, 0, 0]),
    (8, 'm1', [1, 1, 1, 1, 1, 1, 1, 1]),
    (8, 'm2', [0, 0, 0, 0, 1, 1, 1, 1]),
    (8, 'm3', [0, 0, 1, 1, 1, 1, 0, 0]),
    (7, 'm2', [0, 0, 0, 1, 1, 1, 1]),
    (7, 'm3', [0, 1, 1, 1, 1, 0, 0]),
    (4, SequenceMode.M3, [0, 1, 1, 0]),
    (1, 'm1', [1]),
    (1, 'm2', [1]),
    (1, 'm3', [0]),
    (0, 'm1', []),
])
def test_ood_mask_by_hand(n: int, mode: str, expected: list[int]) -> None:
    mask = ood_mask(n, mode)
    assert mask.dtype == np.bool_ and mask.shape == (n,)
    assert mask.astype(int).tolist() == expected


def test_modes() -> None:
    assert [m.value for m in SequenceMode] == ['id', 'm1', 'm2', 'm3']
    assert SequenceMode('m2') is SequenceMode.M2


@pytest.mark.parametrize('mode', list(SequenceMode))
def test_make_sequence_labels_and_frames(mode: SequenceMode) -> None:
    n = 12
    clean = render_sequence(5, n, SMALL)
    frames, labels = make_sequence(5, n, 'occlusion', 0.8, mode, SMALL)
    assert frames.shape == (n, 48, 64, 3) and frames.dtype == np.uint8
    assert np.array_equal(labels, ood_mask(n, mode))
    for i in range(n):
        if labels[i]:
            assert not np.array_equal(frames[i], clean[i]), i
        else:
            assert np.array_equal(frames[i], clean[i]), i


def test_make_sequence_is_deterministic() -> None:
    a, la = make_sequence(2, 10, 'rain', 0.9, 'm3', SMALL)
    b, lb = make_sequence(2, 10, 'rain', 0.9, 'm3', SMALL)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    c, _ = make_sequence(3, 10, 'rain', 0.9, 'm3', SMALL)
    assert not np.array_equal(a, c)


def test_clean_sequences() -> None:
    clean = render_sequence(1, 6, SMALL)
    frames, labels = make_sequence(1, 6, None, 0.0, 'id', SMALL)
    assert np.array_equal(frames, clean) and not labels.any()
    frames, labels = make_sequence(1, 6, 'fog', 0.9, 'id', SMALL)     # nothing to shift
    assert np.array_equal(frames, clean) and not labels.any()


def test_lens_dirt_stays_put_over_the_sequence() -> None:
    clean = render_sequence(4, 8, SMALL)
    frames, _ = make_sequence(4, 8, 'occlusion', 1.0, 'm1', SMALL)
    diff = np.abs(frames.astype(int) - clean).max(axis=3) > 25
    first, last = diff[0], diff[-1]
    assert first.mean() > 0.1
    assert (first & last).sum() / (first | last).sum() > 0.6


def test_brightness_direction_can_be_forced() -> None:
    clean = render_sequence(0, 4, SMALL)
    dark, _ = make_sequence(0, 4, 'brightness', 1.0, 'm1', SMALL, direction=-1)
    bright, _ = make_sequence(0, 4, 'brightness', 1.0, 'm1', SMALL, direction=1)
    assert dark.mean() < 0.4 * clean.mean() < 0.4 * bright.mean()


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'kind': None, 'mode': 'm2'}, "kind None \\(no shift\\) requires mode 'id', got mode 'm2'"),
    ({'mode': 'm4'}, r"unknown sequence mode 'm4'; valid modes: \['id', 'm1', 'm2', 'm3'\]"),
    ({'n': -1}, 'n must be a non-negative int, got -1'),
    ({'n': 2.5}, 'n must be a non-negative int, got 2.5'),
    ({'kind': 'hail'}, "unknown shift kind 'hail'"),
    ({'severity': 1.2}, r'severity must be a number in \[0, 1\], got 1.2'),
    ({'seed': -4}, 'seed must be a non-negative int, got -4'),
])
def test_make_sequence_errors(kwargs: dict, match: str) -> None:
    args = {'seed': 0, 'n': 4, 'kind': 'fog', 'severity': 0.5, 'mode': 'm1', 'config': SMALL}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        make_sequence(**args)


def test_ood_mask_errors() -> None:
    with pytest.raises(ConfigError, match='n must be a non-negative int, got -1'):
        ood_mask(-1, 'm1')
    with pytest.raises(ConfigError, match="unknown sequence mode 'M9'"):
        ood_mask(4, 'M9')
