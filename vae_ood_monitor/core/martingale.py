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


__all__ = ['PowerMartingale', 'log_power_martingale']

_EPS = 2.0 ** -45


def log_power_martingale(sum_log_p: float, n: int) -> float:
    """Compute log M exactly for n p-values whose logs sum to ``sum_log_p`` (<= 0).

    Two exact forms in plain floats (a few microseconds per call, no arrays):

    * ``a <= n + 1``: the series itself. Its terms fall from the first, each by the factor
      ``a / (n + k + 2) < 1``; they are summed until they drop below 2**-45 of the total.
    * ``a > n + 1``: the closed form ``M = n! * (exp(a) - sum_{j <= n} a**j / j!) / a**(n + 1)``,
      written as ``log M = log n! - (n + 1) log a + a + log(1 - Q)`` with ``Q`` the Poisson
      probability ``P(X <= n)`` for mean ``a`` (below 1/2 here, so ``log1p(-Q)`` loses nothing).
      Its n + 1 terms are summed from the largest down, in units of the largest.
    """
    if n < 0:
        raise ValueError(f'n must be >= 0, got {n!r}')
    a = max(0.0, -float(sum_log_p))
    if n == 0:
        return 0.0
    if a == 0.0:
        return -math.log(n + 1)
    if a <= n + 1:
        term = 1.0 / (n + 1)
        total = term
        k = n + 2
        while term > _EPS * total:
            term *= a / k
            total += term
            k += 1
        return math.log(total)
    # Poisson P(X <= n) = exp(-a) a**n / n! * sum_{j <= n} r_j with r_n = 1, r_{j-1} = r_j j / a.
    ratio_sum = 1.0
    r = 1.0
    for j in range(n, 0, -1):
        r *= j / a
        if r < _EPS * ratio_sum:
            break
        ratio_sum += r
    log_factorial = math.lgamma(n + 1)
    log_q = -a + n * math.log(a) - log_factorial + math.log(ratio_sum)
    return log_factorial - (n + 1) * math.log(a) + a + math.log1p(-math.exp(log_q))


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
