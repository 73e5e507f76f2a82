"""The velocity gate's decision logic: pure, clock-injected, exhaustively testable.

The gate sits between a controller and the robot base. It passes velocity commands through
while the OOD monitor reports "no alert", and otherwise stops or slows the robot:

* **STALE** -- no alert message for ``monitor_timeout_s`` (also at start-up, before the first
  message): the monitor died, stalled or was never started. Treated like STOP (fail-safe).
* **STOP** -- the monitor raised an alert and the action is ``stop``.
* **SLOW** -- the monitor raised an alert and the action is ``slowdown``: commands are scaled
  by ``slowdown_ratio``. Only once the monitor has proven itself (reached PASS) since start-up
  or since it was last stale: before that an alert stops the robot, since the monitor alerts
  until every camera has had a frame processed and a robot must not creep on an unwatched
  camera.
* **PASS** -- the alert has been clear, with fresh messages, for at least ``clear_hold_s``.

In STOP and STALE the gate publishes zero velocity for ``stop_publish_s`` after entering the
state (on every incoming command and every tick), then goes quiet, like Nav2's collision
monitor. Time is passed in as integer nanoseconds from any monotonic clock (the ROS node uses
its own clock, so ``use_sim_time`` replays work).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
import math

from vae_ood_monitor.core.errors import ConfigError

__all__ = ['GateAction', 'GateConfig', 'GateOutput', 'GatePolicy', 'GateState', 'Velocity',
           'ZERO']


class GateAction(str, Enum):
    """What an alert does to velocity commands."""

    STOP = 'stop'
    SLOWDOWN = 'slowdown'


class GateState(str, Enum):
    """The gate's state, published on gate/state."""

    PASS = 'PASS'
    SLOW = 'SLOW'
    STOP = 'STOP'
    STALE = 'STALE'

    @property
    def locked(self) -> bool:
        """Whether the gate blocks motion (the value of the twist_mux lock topic)."""
        return self in (GateState.STOP, GateState.STALE)


@dataclass(frozen=True)
class Velocity:
    """A twist: linear (x, y, z) in m/s and angular (x, y, z) in rad/s."""

    linear: tuple[float, float, float] = (0.0, 0.0, 0.0)
    angular: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def scaled(self, ratio: float) -> Velocity:
        """Return this twist with every component multiplied by ``ratio``."""
        return Velocity(tuple(v * ratio for v in self.linear),  # type: ignore[arg-type]
                        tuple(v * ratio for v in self.angular))  # type: ignore[arg-type]


ZERO = Velocity()


@dataclass(frozen=True)
class GateConfig:
    """Gate settings (validated here for YAML, CLI and ROS parameters alike)."""

    action: GateAction = GateAction.STOP
    slowdown_ratio: float = 0.3
    monitor_timeout_s: float = 0.5
    clear_hold_s: float = 1.0
    stop_publish_s: float = 1.0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, 'action', GateAction(self.action))
        except ValueError:
            raise ConfigError(f"action {self.action!r} must be 'stop' or 'slowdown'.") from None
        if not 0.0 <= self.slowdown_ratio <= 1.0:
            raise ConfigError(f'slowdown_ratio {self.slowdown_ratio!r} must be in [0, 1].')
        for name in ('monitor_timeout_s', 'clear_hold_s', 'stop_publish_s'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ConfigError(f'{name} {value!r} must be a finite number >= 0 (seconds).')
        if self.monitor_timeout_s == 0.0:
            raise ConfigError('monitor_timeout_s must be > 0: without it a dead monitor would '
                              'never stop the robot.')


@dataclass(frozen=True)
class GateOutput:
    """What to publish now: ``command`` (None = publish nothing) and the current state."""

    command: Velocity | None
    state: GateState


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


class GatePolicy:
    """The gate state machine. Call :meth:`on_alert`, :meth:`on_command` and :meth:`tick`."""

    def __init__(self, config: GateConfig, now_ns: int) -> None:
        self.reconfigure(config)
        self._latest_ns = now_ns
        self._last_msg_ns: int | None = None
        self._clear_since_ns: int | None = None
        self._alert = False
        # what the gate does while a clear monitor waits out clear_hold_s: after an alert, the
        # alert action (whatever it is by then); after silence (or at start-up), STOP -- a
        # monitor that comes back has to prove itself before the robot moves again.
        self._hold_after_alert = False
        # whether the monitor reported clear for clear_hold_s since start-up or since it was
        # last stale: until then an alert stops the robot whatever the action
        self._proven = False
        self._state = GateState.STALE
        self._entered_ns = now_ns

    def reconfigure(self, config: GateConfig) -> None:
        """Apply new settings (``ros2 param set``); the state carries over."""
        self.config = config
        self._timeout = _ns(config.monitor_timeout_s)
        self._hold = _ns(config.clear_hold_s)
        self._publish = _ns(config.stop_publish_s)
        self._alert_state = (GateState.SLOW if config.action is GateAction.SLOWDOWN
                             else GateState.STOP)

    def _check_clock(self, now_ns: int) -> None:
        """Forget the monitor's history when the clock jumps back (sim time reset, bag loop).

        Elapsed times would turn negative: a dead monitor would look fresh and a clear hold
        would last until the clock caught up. The gate goes STALE (fail-safe) and the monitor
        has to prove itself again.
        """
        if now_ns < self._latest_ns:
            self._last_msg_ns = None
            self._clear_since_ns = None
            self._alert = False
            self._hold_after_alert = False
            self._proven = False
            self._entered_ns = now_ns
        self._latest_ns = now_ns

    def _stale(self, now_ns: int) -> bool:
        return self._last_msg_ns is None or now_ns - self._last_msg_ns > self._timeout

    def on_alert(self, alert: bool, now_ns: int) -> GateState:
        """Record an ``ood/alert`` message received at ``now_ns``; return the new state."""
        self._check_clock(now_ns)
        if alert:
            self._clear_since_ns = None
            self._hold_after_alert = True
        elif self._stale(now_ns):
            self._clear_since_ns = now_ns
            self._hold_after_alert = False
        elif self._clear_since_ns is None:
            self._clear_since_ns = now_ns
        self._alert = bool(alert)
        self._last_msg_ns = now_ns
        return self.state(now_ns)

    def state(self, now_ns: int) -> GateState:
        """Return the state at ``now_ns`` (and remember when it was entered)."""
        self._check_clock(now_ns)
        alert_state = self._alert_state if self._proven else GateState.STOP
        if self._stale(now_ns):
            new = GateState.STALE
            self._proven = False
        elif self._alert:
            new = alert_state
        elif now_ns - self._clear_since_ns >= self._hold:  # type: ignore[operator]
            new = GateState.PASS
            self._proven = True
        else:
            new = alert_state if self._hold_after_alert else GateState.STOP
        if new is not self._state:
            self._state = new
            self._entered_ns = now_ns
        return new

    def _stop_output(self, now_ns: int, state: GateState) -> GateOutput:
        within = now_ns - self._entered_ns <= self._publish
        return GateOutput(ZERO if within else None, state)

    def on_command(self, command: Velocity, now_ns: int) -> GateOutput:
        """Filter one incoming velocity command."""
        state = self.state(now_ns)
        if state is GateState.PASS:
            return GateOutput(command, state)
        if state is GateState.SLOW:
            return GateOutput(command.scaled(self.config.slowdown_ratio), state)
        return self._stop_output(now_ns, state)

    def tick(self, now_ns: int) -> GateOutput:
        """Advance time: zero commands while a stop is being published, else nothing."""
        state = self.state(now_ns)
        if state.locked:
            return self._stop_output(now_ns, state)
        return GateOutput(None, state)
