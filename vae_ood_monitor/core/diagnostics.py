"""Diagnostics content (level, message, key/values) built from a Monitor, without ROS.

The ROS node turns :class:`DiagnosticEntry` records into diagnostic_msgs/DiagnosticStatus and
bag replay writes the same records into its output bag, so both report identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from vae_ood_monitor.core.monitor import FROZEN
from vae_ood_monitor.core.stats import STAGES
from vae_ood_monitor.core.topics import MONITOR_NODE

if TYPE_CHECKING:
    from vae_ood_monitor.core.monitor import Monitor

__all__ = ['DiagnosticEntry', 'Level', 'camera_diagnostics', 'model_diagnostics']


class Level(IntEnum):
    """diagnostic_msgs/DiagnosticStatus levels."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass(frozen=True)
class DiagnosticEntry:
    """One DiagnosticStatus worth of information."""

    level: Level
    name: str
    message: str
    hardware_id: str
    values: tuple[tuple[str, str], ...]


def camera_diagnostics(monitor: Monitor, camera: str, *, input_rate: float | None = None,
                       processed_rate: float | None = None, stale: bool = False,
                       latency_budget_ms: float | None = None, alert: bool | None = None,
                       problem: str | None = None,
                       extra: tuple[tuple[str, str], ...] = (),
                       prefix: str = 'vae_ood_monitor') -> DiagnosticEntry:
    """Summarise one camera: latency p50/p99/max per stage, rates, counts, provider, model.

    Level: ERROR with ``problem`` as the message when the caller knows why the camera is not
    being watched (an incompatible QoS, frames too old); STALE when ``stale`` (no frame
    processed within the expected period; the message says "no frame processed yet" while the
    Monitor has processed none); ERROR while the camera repeats one frame (the Monitor's
    ``frozen_frames`` check) or when every frame failed; WARN when some failed, frames
    were dropped (the monitor sees only part of the stream) or the p99 total latency exceeds
    ``latency_budget_ms``; otherwise OK. ``alert``: the camera's alert as published (a stale
    camera alerts with ``alert_on_stale``); None: the last decision's. ``extra``: more key/values.
    """
    counts = monitor.counts(camera)
    summary = monitor.latency(camera).summary()
    values: list[tuple[str, str]] = []
    for stage in STAGES:
        if stage in summary:
            s = summary[stage]
            values += [(f'latency_{stage}_p50_ms', f'{s.p50 / 1e6:.3f}'),
                       (f'latency_{stage}_p99_ms', f'{s.p99 / 1e6:.3f}'),
                       (f'latency_{stage}_max_ms', f'{s.peak / 1e6:.3f}')]
    if input_rate is not None:
        values.append(('input_rate_hz', f'{input_rate:.2f}'))
    rate = monitor.processed_rate(camera) if processed_rate is None else processed_rate
    values += [('processed_rate_hz', f'{rate:.2f}'),
               ('frames_processed', str(counts.processed)),
               ('frames_dropped', str(counts.dropped)),
               ('frames_failed', str(counts.failed_total))]
    values += [(f'failed_{kind}', str(n)) for kind, n in sorted(counts.failed.items())]
    if monitor.config.frozen_frames:
        values.append(('frames_frozen', str(counts.frozen)))
    last = monitor.last_decision(camera)
    frozen = bool(last and FROZEN in last.fired)
    decided = bool(last and last.alert)
    alert = decided if alert is None else alert
    values += [('alert', str(alert).lower()),
               ('decision_mode', monitor.mode.value),
               ('execution_provider', monitor.provider),
               ('model_name', monitor.bundle.name),
               ('model_sha256', monitor.bundle.short_hash)]
    values += list(extra)
    p99 = summary['total'].p99 / 1e6 if 'total' in summary else 0.0
    if problem:
        level, message = Level.ERROR, problem
    elif stale:
        level = Level.STALE
        message = 'no frame processed recently' if counts.processed else 'no frame processed yet'
        if counts.failed_total:
            message += f', {counts.failed_total} failed'
    elif frozen:
        level, message = Level.ERROR, (f'the camera repeats one frame (at least '
                                       f'{monitor.config.frozen_frames} identical frames)')
    elif counts.failed_total and not counts.processed:
        level, message = Level.ERROR, f'all {counts.failed_total} frames failed'
    elif counts.failed_total:
        level, message = Level.WARN, f'{counts.failed_total} frames failed'
    elif latency_budget_ms is not None and p99 > latency_budget_ms:
        level, message = Level.WARN, f'p99 latency {p99:.1f} ms over {latency_budget_ms:g} ms'
    elif counts.dropped:
        level, message = Level.WARN, (f'running, {counts.dropped} stale frames dropped (the '
                                      'camera sends faster than the model runs)')
    else:
        level, message = Level.OK, 'running'
    if decided and last is not None:
        message += f'; OOD alert ({", ".join(last.fired) or "holding"})'
    elif alert:
        message += '; alert raised: the camera is not being watched'
    return DiagnosticEntry(level, f'{prefix}: {camera}', message, camera, tuple(values))


def model_diagnostics(monitor: Monitor, model_path: str,
                      node_name: str = MONITOR_NODE) -> DiagnosticEntry:
    """Summarise the loaded model: path, sha256, execution provider (and fallbacks), mode."""
    notes = '; '.join(getattr(monitor.encoder, 'notes', [])) or 'none'
    return DiagnosticEntry(
        Level.OK, f'{node_name}: model', monitor.bundle.name, node_name,
        (('model_path', model_path), ('model_sha256', monitor.bundle.manifest.model.sha256),
         ('execution_provider', monitor.provider), ('provider_notes', notes),
         ('decision_mode', monitor.mode.value)))
