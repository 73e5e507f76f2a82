"""Regression check: compare a replay's alarm spans with a baseline summary.json.

Spans are compared per camera on their bag times (seconds from the bag start, ``start_s`` /
``end_s`` in the summary): two spans match when both their starts and their ends differ by at
most the tolerance. Spans left over are paired by overlap as *shifted*; the rest are
*missing* (only in the baseline) or *new* (only in this run). Pure functions: the CLI prints
the differences and chooses the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
from typing import Any, Mapping

from vae_ood_monitor.core.errors import ReplayError

__all__ = ['Comparison', 'Span', 'SpanDifference', 'compare_summaries', 'load_summary']


@dataclass(frozen=True)
class Span:
    """An alarm span in seconds from the bag start (inclusive frame indices)."""

    start_s: float
    end_s: float
    start_index: int = -1
    end_index: int = -1

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Span:
        """Read a span of summary.json."""
        return cls(float(data['start_s']), float(data['end_s']),
                   int(data.get('start_index', -1)), int(data.get('end_index', -1)))

    def overlaps(self, other: Span) -> bool:
        """Whether the two spans share any time."""
        return self.start_s <= other.end_s and other.start_s <= self.end_s

    def __str__(self) -> str:
        """Format as ``12.300-15.100 s``."""
        return f'{self.start_s:.3f}-{self.end_s:.3f} s'


@dataclass(frozen=True)
class SpanDifference:
    """One alarm span that has no counterpart within tolerance.

    ``kind`` is 'shifted' (both spans exist and overlap), 'missing' (baseline only) or 'new'
    (this run only).
    """

    camera: str
    kind: str
    old: Span | None
    new: Span | None

    def describe(self, tolerance_s: float) -> str:
        """One line for humans."""
        if self.old is not None and self.new is not None:
            return (f'{self.camera}: shifted alarm span: baseline {self.old}, now {self.new} '
                    f'(start {self.new.start_s - self.old.start_s:+.3f} s, end '
                    f'{self.new.end_s - self.old.end_s:+.3f} s; tolerance {tolerance_s:g} s)')
        if self.old is not None:
            return f'{self.camera}: missing alarm span: baseline {self.old}, now none'
        return f'{self.camera}: new alarm span: now {self.new}, not in the baseline'

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        def span(s: Span | None) -> dict[str, Any] | None:
            return None if s is None else {'start_s': s.start_s, 'end_s': s.end_s,
                                           'start_index': s.start_index,
                                           'end_index': s.end_index}
        return {'camera': self.camera, 'kind': self.kind, 'old': span(self.old),
                'new': span(self.new)}


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare_summaries`."""

    tolerance_s: float
    matched: int
    differences: tuple[SpanDifference, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every span matched within tolerance."""
        return not self.differences

    def lines(self) -> list[str]:
        """Every difference as one line."""
        return [d.describe(self.tolerance_s) for d in self.differences]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {'ok': self.ok, 'tolerance_s': self.tolerance_s, 'matched': self.matched,
                'differences': [d.as_dict() for d in self.differences],
                'notes': list(self.notes)}


def load_summary(path: str | Path) -> dict[str, Any]:
    """Read a summary.json written by ``vae-ood replay --report``.

    Raises:
        ReplayError: missing or unreadable file, or not a replay summary.
    """
    path = Path(path)
    if path.is_dir():
        path = path / 'summary.json'
    if not path.is_file():
        raise ReplayError(f"Baseline '{path}' does not exist; pass the summary.json of an "
                          'earlier `vae-ood replay --report DIR` run.')
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ReplayError(f"Baseline '{path}' is not readable JSON ({err}); regenerate it "
                          'with `vae-ood replay --report DIR`.') from err
    if not isinstance(data, dict) or not isinstance(data.get('cameras'), dict):
        raise ReplayError(f"Baseline '{path}' is not a replay summary (no 'cameras' object); "
                          'pass the summary.json of `vae-ood replay --report DIR`.')
    return data


def _spans(summary: Mapping[str, Any], camera: str) -> list[Span]:
    entry = summary['cameras'].get(camera) or {}
    try:
        spans = [Span.from_dict(s) for s in entry.get('alarm_spans', [])]
    except (KeyError, TypeError, ValueError) as err:
        raise ReplayError(f'Alarm spans of camera {camera!r} are malformed ({err!r}); '
                          'regenerate the summary with `vae-ood replay --report DIR`.') from err
    return sorted(spans, key=lambda s: (s.start_s, s.end_s))


def _compare_camera(camera: str, old: list[Span], new: list[Span],
                    tolerance: float) -> tuple[int, list[SpanDifference]]:
    unmatched_new = list(new)
    leftover_old = []
    matched = 0
    for span in old:
        match = next((s for s in unmatched_new if abs(s.start_s - span.start_s) <= tolerance
                      and abs(s.end_s - span.end_s) <= tolerance), None)
        if match is None:
            leftover_old.append(span)
        else:
            unmatched_new.remove(match)
            matched += 1
    differences = []
    for span in leftover_old:
        partner = next((s for s in unmatched_new if s.overlaps(span)), None)
        if partner is not None:
            unmatched_new.remove(partner)
        differences.append(SpanDifference(camera, 'missing' if partner is None else 'shifted',
                                          span, partner))
    differences += [SpanDifference(camera, 'new', None, s) for s in unmatched_new]
    differences.sort(key=lambda d: min(s.start_s for s in (d.old, d.new) if s is not None))
    return matched, differences


def compare_summaries(old: Mapping[str, Any], new: Mapping[str, Any],
                      tolerance_s: float = 0.5) -> Comparison:
    """Compare the alarm spans of two replay summaries camera by camera."""
    if not tolerance_s >= 0:
        raise ReplayError(f'--tolerance {tolerance_s!r} must be >= 0 seconds.')
    notes = []
    old_model = (old.get('model') or {}).get('sha256')
    new_model = (new.get('model') or {}).get('sha256')
    if old_model and new_model and old_model != new_model:
        notes.append(f'the baseline used model {old_model[:12]}, this run {new_model[:12]}')
    if old.get('decision') and old.get('decision') != new.get('decision'):
        notes.append(f"the baseline used decision {old.get('decision')!r}, this run "
                     f"{new.get('decision')!r}")
    for key in ('bag_start_ns', 'window_s'):
        if key in old and old.get(key) != new.get(key):
            notes.append(f'{key} differs: baseline {old.get(key)!r}, now {new.get(key)!r}')
    matched = 0
    differences: list[SpanDifference] = []
    cameras = list(old['cameras']) + [c for c in new['cameras'] if c not in old['cameras']]
    for camera in cameras:
        for summary, where in ((old, 'baseline'), (new, 'this run')):
            if camera not in summary['cameras']:
                notes.append(f'camera {camera!r} is missing from {where}')
        count, diffs = _compare_camera(camera, _spans(old, camera), _spans(new, camera),
                                       tolerance_s)
        matched += count
        differences += diffs
    return Comparison(float(tolerance_s), matched, tuple(differences), tuple(notes))
