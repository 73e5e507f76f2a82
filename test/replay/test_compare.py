"""Tests of replay/compare.py: alarm spans against a baseline summary, within a tolerance."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from vae_ood_monitor.core.errors import ReplayError
from vae_ood_monitor.replay.compare import compare_summaries, load_summary, Span


def summary(**cameras: list[tuple[float, float]]) -> dict[str, Any]:
    return {'model': {'sha256': 'a' * 64}, 'decision': 'cusum', 'bag_start_ns': 0,
            'cameras': {name: {'alarm_spans': [
                {'start_s': a, 'end_s': b, 'start_index': int(a * 10),
                 'end_index': int(b * 10)} for a, b in spans]}
                for name, spans in cameras.items()}}


def test_identical_runs_match() -> None:
    old = summary(front=[(1.0, 2.0), (5.0, 6.5)], rear=[])
    result = compare_summaries(old, copy.deepcopy(old))
    assert result.ok and result.matched == 2 and result.lines() == []


def test_within_tolerance_matches() -> None:
    result = compare_summaries(summary(front=[(1.0, 2.0)]), summary(front=[(1.5, 1.6)]), 0.5)
    assert result.ok and result.matched == 1


def test_shift_beyond_tolerance_is_reported() -> None:
    result = compare_summaries(summary(front=[(1.0, 2.0), (5.0, 6.0)]),
                               summary(front=[(1.0, 2.0), (5.75, 6.0)]), 0.5)
    assert not result.ok and result.matched == 1
    [difference] = result.differences
    assert difference.kind == 'shifted'
    assert difference.old == Span(5.0, 6.0, 50, 60) and difference.new == Span(5.75, 6.0, 57, 60)
    assert result.lines() == ['front: shifted alarm span: baseline 5.000-6.000 s, now '
                              '5.750-6.000 s (start +0.750 s, end +0.000 s; tolerance 0.5 s)']


def test_missing_and_new_spans() -> None:
    result = compare_summaries(summary(front=[(1.0, 2.0)], rear=[(3.0, 4.0)]),
                               summary(front=[(8.0, 9.0)], side=[]))
    assert [(d.camera, d.kind) for d in result.differences] == [
        ('front', 'missing'), ('front', 'new'), ('rear', 'missing')]
    assert result.lines()[0] == 'front: missing alarm span: baseline 1.000-2.000 s, now none'
    assert result.lines()[1] == 'front: new alarm span: now 8.000-9.000 s, not in the baseline'
    assert "camera 'rear' is missing from this run" in result.notes
    assert "camera 'side' is missing from baseline" in result.notes
    assert result.as_dict()['differences'][0]['old']['start_s'] == 1.0


def test_notes_on_a_different_model() -> None:
    new = summary(front=[])
    new['model']['sha256'] = 'b' * 64
    result = compare_summaries(summary(front=[]), new)
    assert result.ok and result.notes == ('the baseline used model aaaaaaaaaaaa, this run '
                                          'bbbbbbbbbbbb',)


def test_load_summary(tmp_path: Path) -> None:
    good = tmp_path / 'summary.json'
    good.write_text(json.dumps(summary(front=[])))
    assert load_summary(tmp_path)['cameras'] == {'front': {'alarm_spans': []}}
    with pytest.raises(ReplayError, match="Baseline '.*nope.json' does not exist"):
        load_summary(tmp_path / 'nope.json')
    bad = tmp_path / 'bad.json'
    bad.write_text('{"cameras": ')
    with pytest.raises(ReplayError, match='is not readable JSON'):
        load_summary(bad)
    bad.write_text('[1, 2]')
    with pytest.raises(ReplayError, match='is not a replay summary'):
        load_summary(bad)
    with pytest.raises(ReplayError, match='--tolerance -1 must be >= 0'):
        compare_summaries(summary(), summary(), -1)
