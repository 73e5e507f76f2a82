"""CUSUM over the log martingale: ``S_t = max(0, S_{t-1} + log M_t - delta)``, alarm at S > tau."""

from __future__ import annotations

from dataclasses import dataclass
import math

__all__ = ['Cusum', 'CusumState']


@dataclass(frozen=True)
class CusumState:
    """The statistic after one update and whether it exceeds the threshold."""

    statistic: float
    alarm: bool

    def __post_init__(self) -> None:
        if not (self.statistic >= 0.0 and math.isfinite(self.statistic)):
            raise ValueError(f'CUSUM statistic must be finite and >= 0, got {self.statistic!r}')


class Cusum:
    """One-sided CUSUM with drift ``delta`` and alarm threshold ``tau``.

    ``cap`` (optional, >= tau) bounds the statistic so that the alarm clears within a bounded
    number of in-distribution frames after a long shift ends.
    """

    def __init__(self, delta: float, tau: float, cap: float | None = None) -> None:
        if not math.isfinite(delta) or not (math.isfinite(tau) and tau > 0):
            raise ValueError(f'delta must be finite and tau positive, got {delta!r}, {tau!r}')
        if cap is not None and not cap >= tau:
            raise ValueError(f'cap {cap!r} must be >= tau {tau!r}')
        self.delta = float(delta)
        self.tau = float(tau)
        self.cap = cap
        self.statistic = 0.0

    def update(self, log_martingale: float) -> CusumState:
        """Add one log-martingale value and return the new state."""
        if math.isnan(log_martingale):
            raise ValueError('log martingale is NaN')
        value = max(0.0, self.statistic + log_martingale - self.delta)
        if self.cap is not None:
            value = min(value, self.cap)
        self.statistic = value
        return CusumState(value, value > self.tau)

    def reset(self) -> None:
        """Return to the start state (S = 0)."""
        self.statistic = 0.0
