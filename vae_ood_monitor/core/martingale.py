"""The simple-mixture power martingale over a sliding window of p-values, in log space.

For the last n p-values (n <= window) the martingale is

    M = integral over eps in (0, 1) of  prod_i eps * p_i ** (eps - 1)  d eps.

With a = -sum(log p_i) >= 0 this integral has the exact series form

    M = sum_{k >= 0} a**k * n! / (n + k + 1)!

(expand exp((1 - eps) * a) and integrate term by term with the Beta function). All terms are
positive, so log M is a log-sum-exp over k that neither overflows nor underflows for any window:
it equals -log(n + 1) when every p is 1 and grows about linearly in a for small p-values. The
paper approximates the same integral with a sum over 100 values of eps; the series is its exact
limit and needs no quadrature grid.
"""

from __future__ import annotations

from collections import deque
import math

import numpy as np

__all__ = ['PowerMartingale', 'log_power_martingale']

_LOG_FACTORIAL = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, 4097, dtype=np.float64)))])


def _log_factorials(upto: int) -> np.ndarray:
    global _LOG_FACTORIAL
    if upto >= _LOG_FACTORIAL.size:
        extra = np.arange(_LOG_FACTORIAL.size, 2 * upto + 1, dtype=np.float64)
        _LOG_FACTORIAL = np.concatenate([_LOG_FACTORIAL,
                                         _LOG_FACTORIAL[-1] + np.cumsum(np.log(extra))])
    return _LOG_FACTORIAL


def log_power_martingale(sum_log_p: float, n: int) -> float:
    """Compute log M exactly for n p-values whose logs sum to ``sum_log_p`` (<= 0).

    Terms are added until they have fallen by more than 2**-40 below the largest: past
    k = 2a the ratio of consecutive terms a / (n + k + 2) is below 1/2.
    """
    if n < 0:
        raise ValueError(f'n must be >= 0, got {n!r}')
    a = max(0.0, -float(sum_log_p))
    if n == 0:
        return 0.0
    if a == 0.0:
        return -math.log(n + 1)
    terms = int(math.ceil(2.0 * a)) + 41
    table = _log_factorials(n + terms + 1)
    k = np.arange(terms, dtype=np.float64)
    log_terms = k * math.log(a) + table[n] - table[n + 1 + np.arange(terms)]
    peak = float(log_terms.max())
    return peak + math.log(float(np.exp(log_terms - peak).sum()))


class PowerMartingale:
    """Sliding-window power martingale: ``update(p)`` returns log M of the last ``window``."""

    def __init__(self, window: int = 20) -> None:
        if not isinstance(window, int) or window < 1:
            raise ValueError(f'window must be a positive integer, got {window!r}')
        self.window = window
        self._logs: deque[float] = deque(maxlen=window)

    def update(self, p_value: float) -> float:
        """Add one p-value in (0, 1] and return the log martingale of the current window."""
        if not 0.0 < p_value <= 1.0:
            raise ValueError(f'p-value must be in (0, 1], got {p_value!r}')
        self._logs.append(math.log(p_value))
        return log_power_martingale(math.fsum(self._logs), len(self._logs))

    def reset(self) -> None:
        """Forget all p-values."""
        self._logs.clear()

    def __len__(self) -> int:
        return len(self._logs)
