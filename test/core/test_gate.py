"""The gate state machine with a fake clock: fail-safe start-up, alerts, staleness, hysteresis."""

from __future__ import annotations

import pytest

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.gate import (GateAction, GateConfig, GatePolicy, GateState, Velocity,
                                       ZERO)

S = 1_000_000_000
FORWARD = Velocity((0.5, 0.0, 0.0), (0.0, 0.0, 0.2))
CONFIG = GateConfig(monitor_timeout_s=0.5, clear_hold_s=1.0, stop_publish_s=0.3)


class Clock:
    """A fake monotonic clock in nanoseconds."""

    def __init__(self) -> None:
        self.now = 10 * S

    def advance(self, seconds: float) -> int:
        self.now += int(round(seconds * S))
        return self.now


def feed(gate: GatePolicy, clock: Clock, alert: bool, seconds: float,
         period: float = 0.1) -> GateState:
    """Send alert messages every ``period`` for ``seconds``; return the final state."""
    state = gate.state(clock.now)
    for _ in range(int(round(seconds / period))):
        state = gate.on_alert(alert, clock.advance(period))
    return state


def test_no_alert_message_ever_means_stale_and_stopped() -> None:
    clock = Clock()
    gate = GatePolicy(CONFIG, clock.now)
    for _ in range(100):
        out = gate.on_command(FORWARD, clock.advance(0.05))
        assert out.state is GateState.STALE
        assert out.command in (ZERO, None)
    assert gate.state(clock.now).locked


def test_start_up_needs_clear_hold_before_motion() -> None:
    clock = Clock()
    gate = GatePolicy(CONFIG, clock.now)
    assert gate.on_alert(False, clock.advance(0.1)) is GateState.STOP
    assert feed(gate, clock, False, 0.8) is GateState.STOP  # 0.8 s < clear_hold_s
    assert feed(gate, clock, False, 0.3) is GateState.PASS
    out = gate.on_command(FORWARD, clock.advance(0.01))
    assert out.command == FORWARD and out.state is GateState.PASS


def test_alert_stops_then_resumes_only_after_clear_hold() -> None:
    clock = Clock()
    gate = GatePolicy(CONFIG, clock.now)
    feed(gate, clock, False, 1.5)
    assert gate.state(clock.now) is GateState.PASS
    assert gate.on_alert(True, clock.advance(0.1)) is GateState.STOP
    assert gate.on_command(FORWARD, clock.advance(0.01)).command == ZERO
    feed(gate, clock, True, 1.0)
    assert gate.on_alert(False, clock.advance(0.1)) is GateState.STOP
    assert feed(gate, clock, False, 0.9) is GateState.STOP
    # an alert during the hold restarts it
    gate.on_alert(True, clock.advance(0.1))
    assert feed(gate, clock, False, 0.9) is GateState.STOP
    assert feed(gate, clock, False, 0.2) is GateState.PASS


def test_alert_stream_stopping_is_stale_within_one_gate_period() -> None:
    clock = Clock()
    gate = GatePolicy(CONFIG, clock.now)
    feed(gate, clock, False, 1.5)
    last_message = clock.now
    period = 0.05
    stale_at = None
    while stale_at is None:
        out = gate.tick(clock.advance(period))
        if out.state is GateState.STALE:
            stale_at = clock.now
            assert out.command == ZERO  # zero velocity is published at once
    assert stale_at - last_message > CONFIG.monitor_timeout_s * S
    assert stale_at - last_message <= CONFIG.monitor_timeout_s * S + period * S


def test_stop_publishes_zero_for_stop_publish_s_then_goes_quiet() -> None:
    clock = Clock()
    gate = GatePolicy(CONFIG, clock.now)
    feed(gate, clock, False, 1.5)
    gate.on_alert(True, clock.advance(0.1))
    outputs = []
    for _ in range(10):
        clock.advance(0.05)
        gate.on_alert(True, clock.now)
        outputs.append(gate.tick(clock.now).command)
    assert outputs[:6] == [ZERO] * 6  # 0.05 .. 0.30 s after the alert
    assert outputs[6:] == [None] * 4
    assert gate.on_command(FORWARD, clock.advance(0.01)).command is None  # quiet, not moving


def test_slowdown_scales_commands_and_holds_slow() -> None:
    clock = Clock()
    gate = GatePolicy(GateConfig(action='slowdown', slowdown_ratio=0.25, clear_hold_s=0.5),
                      clock.now)
    feed(gate, clock, False, 1.0)
    assert gate.on_alert(True, clock.advance(0.1)) is GateState.SLOW
    out = gate.on_command(FORWARD, clock.advance(0.01))
    assert out.command == Velocity((0.125, 0.0, 0.0), (0.0, 0.0, 0.05))
    assert not out.state.locked
    assert gate.tick(clock.now).command is None  # SLOW publishes only scaled commands
    assert gate.on_alert(False, clock.advance(0.1)) is GateState.SLOW  # holding
    assert feed(gate, clock, False, 0.5) is GateState.PASS


def test_slowdown_gate_still_stops_for_a_stale_monitor() -> None:
    clock = Clock()
    gate = GatePolicy(GateConfig(action=GateAction.SLOWDOWN), clock.now)
    feed(gate, clock, False, 1.5)
    assert gate.tick(clock.advance(0.6)).state is GateState.STALE
    # the monitor comes back: STOP (not SLOW) until it has been clear for clear_hold_s
    assert gate.on_alert(False, clock.advance(0.1)) is GateState.STOP
    assert gate.on_command(FORWARD, clock.advance(0.01)).command == ZERO


def test_slowdown_gate_stops_for_alerts_until_the_monitor_has_proven_itself() -> None:
    # the monitor alerts from activation until every camera has had a frame processed: a
    # robot must not creep on cameras nobody has looked at yet, so before the first PASS (and
    # again after the monitor was stale) an alert stops it even with action slowdown
    clock = Clock()
    gate = GatePolicy(GateConfig(action='slowdown', clear_hold_s=0.5), clock.now)
    assert feed(gate, clock, True, 0.3) is GateState.STOP
    assert gate.on_command(FORWARD, clock.advance(0.01)).command == ZERO
    assert feed(gate, clock, False, 0.3) is GateState.STOP  # clear, holding: not yet proven
    assert feed(gate, clock, False, 0.3) is GateState.PASS
    assert gate.on_alert(True, clock.advance(0.1)) is GateState.SLOW  # proven: the action
    assert gate.tick(clock.advance(0.6)).state is GateState.STALE
    assert gate.on_alert(True, clock.advance(0.1)) is GateState.STOP  # back, unproven again
    assert feed(gate, clock, False, 0.6) is GateState.PASS
    assert gate.on_alert(True, clock.advance(0.1)) is GateState.SLOW


def test_stale_gap_restarts_the_hold() -> None:
    clock = Clock()
    gate = GatePolicy(CONFIG, clock.now)
    feed(gate, clock, False, 0.9)
    clock.advance(0.7)  # silence longer than monitor_timeout_s
    assert gate.state(clock.now) is GateState.STALE
    assert gate.on_alert(False, clock.now) is GateState.STOP
    assert feed(gate, clock, False, 0.9) is GateState.STOP
    assert feed(gate, clock, False, 0.2) is GateState.PASS


@pytest.mark.parametrize('kwargs, match', [
    ({'action': 'brake'}, "action 'brake'"),
    ({'slowdown_ratio': 1.5}, 'slowdown_ratio'),
    ({'monitor_timeout_s': 0.0}, 'dead monitor'),
    ({'clear_hold_s': -1.0}, 'clear_hold_s'),
    ({'stop_publish_s': float('nan')}, 'stop_publish_s'),
])
def test_config_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        GateConfig(**kwargs)  # type: ignore[arg-type]


def test_lock_follows_state() -> None:
    assert GateState.STOP.locked and GateState.STALE.locked
    assert not GateState.PASS.locked and not GateState.SLOW.locked


def test_clock_jumping_back_makes_the_gate_stale_until_the_monitor_proves_itself() -> None:
    clock = Clock()
    gate = GatePolicy(CONFIG, clock.now)
    assert feed(gate, clock, False, 1.5) is GateState.PASS
    clock.now -= 5 * S  # sim time reset / bag loop
    assert gate.state(clock.now) is GateState.STALE
    assert gate.on_command(FORWARD, clock.now).command == ZERO
    # fresh clear messages on the new time line: STOP for clear_hold_s, then PASS (not a hold
    # that lasts until the clock is back where it was)
    assert gate.on_alert(False, clock.advance(0.1)) is GateState.STOP
    assert feed(gate, clock, False, 0.8) is GateState.STOP
    assert feed(gate, clock, False, 0.3) is GateState.PASS
    # and a monitor that dies right after the jump is noticed within monitor_timeout_s
    feed(gate, clock, False, 0.5)
    clock.now -= 3 * S
    gate.on_alert(False, clock.now)
    assert gate.state(clock.advance(0.6)) is GateState.STALE


def test_reconfigure_applies_new_settings_and_keeps_the_state() -> None:
    clock = Clock()
    gate = GatePolicy(CONFIG, clock.now)
    feed(gate, clock, False, 1.5)
    assert feed(gate, clock, True, 0.2) is GateState.STOP
    gate.reconfigure(GateConfig(action='slowdown', slowdown_ratio=0.5, monitor_timeout_s=0.5,
                                clear_hold_s=0.2, stop_publish_s=0.3))
    out = gate.on_command(FORWARD, clock.advance(0.05))
    assert out.state is GateState.SLOW and out.command == FORWARD.scaled(0.5)
    assert feed(gate, clock, False, 0.1) is GateState.SLOW  # holding: the new alert action
    assert feed(gate, clock, False, 0.2) is GateState.PASS  # the new, shorter clear hold


def test_reconfigure_to_slowdown_keeps_a_returning_monitor_stopped() -> None:
    # the clear hold after silence is STOP whatever the alert action: switching to slowdown
    # while a stale monitor comes back must not let the robot creep on before clear_hold_s
    clock = Clock()
    gate = GatePolicy(CONFIG, clock.now)
    assert gate.on_alert(False, clock.advance(0.1)) is GateState.STOP
    gate.reconfigure(GateConfig(action='slowdown', monitor_timeout_s=0.5, clear_hold_s=1.0,
                                stop_publish_s=0.3))
    assert feed(gate, clock, False, 0.5) is GateState.STOP
    assert feed(gate, clock, False, 0.6) is GateState.PASS
