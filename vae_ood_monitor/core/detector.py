"""Per-partition detectors and the alert latch: the decision layer on top of per-frame scores.

Each partition (a group of latent dims tuned to one kind of shift, or the generic score of a
density model) gets a :class:`PartitionDetector` that turns the frame's encoding (per-dim KL,
or the whole encoding row for a generic partition) into its score, a conformal p-value, the
window martingale and the CUSUM statistic. The mode decides what *triggers*: the
score above the per-frame threshold, or the CUSUM above tau. The :class:`AlertLatch` ORs the
partitions and clears the alert only after ``clear_frames`` quiet frames (hysteresis).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.baseline import Baseline
from vae_ood_monitor.core.cusum import Cusum
from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.core.martingale import PowerMartingale
from vae_ood_monitor.core.scoring import conformal_p_value
from vae_ood_monitor.core.typedefs import DecisionMode

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from vae_ood_monitor.core.encoding import Layout
    from vae_ood_monitor.core.manifest import Partition

__all__ = ['AlertLatch', 'Decider', 'PartitionDetector', 'PartitionState']


@dataclass(frozen=True)
class PartitionState:
    """One partition's view of one frame.

    ``evidence`` is what triggers: above 1.0 the partition fires. In threshold mode it is the
    score against its per-frame threshold(s) (see :meth:`Partition.evidence`), in cusum mode
    the CUSUM statistic divided by tau.
    """

    name: str
    score: float
    p_value: float
    log_martingale: float
    statistic: float
    triggered: bool
    evidence: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.p_value <= 1.0:
            raise ValueError(f'p-value must be in (0, 1], got {self.p_value!r}')
        if not (self.statistic >= 0.0 and math.isfinite(self.log_martingale)):
            raise ValueError('CUSUM statistic must be >= 0 and log M finite')


class PartitionDetector:
    """Score, p-value, martingale and CUSUM of one partition; stateful over a camera's frames."""

    def __init__(self, partition: Partition, mode: DecisionMode,
                 cusum_cap: float | None = None) -> None:
        if not partition.calibrated:
            raise CalibrationError(
                f'Partition {partition.name!r} is not calibrated (no calibration scores or '
                'threshold); run `vae-ood calibrate MODEL --calib ID_FRAMES` first.')
        if mode is DecisionMode.CUSUM and partition.cusum is None:
            raise CalibrationError(
                f'Partition {partition.name!r} has no CUSUM parameters; run `vae-ood calibrate` '
                "with sequential calibration, or use decision mode 'threshold'.")
        self.name = partition.name
        self.mode = mode
        self.dims = np.asarray(partition.dims, dtype=np.intp)
        self.calibration = partition.calibration_scores
        self.partition = partition
        self.tail = partition.tail
        params = partition.cusum
        self.martingale = PowerMartingale(params.window if params else 20)
        cap = params.cap if params and cusum_cap is None else cusum_cap
        self.cusum = (Cusum(params.delta, params.tau, cap=cap * params.tau)
                      if params and cap is not None else None)
        self.baseline = Baseline(partition.baseline) if partition.baseline else None

    def update(self, kl: NDArray[np.float64] | None, row: NDArray[np.float64] | None = None
               ) -> PartitionState:
        """Consume one frame and return the partition's state.

        ``kl``: the frame's per-dim KL (D,), what a KL partition sums (None will do for a
        generic partition); ``row``: its encoding row (what a generic partition scores). A
        change partition scores relative to its own recent past (its reference is frozen while
        the partition triggers).
        """
        density = self.partition.density
        if density is None:
            if kl is None:
                raise ValueError(f'partition {self.name!r} sums per-dim KL; pass kl')
            raw = score = float(kl[self.dims].sum())
        elif row is None:
            raise ValueError(f'partition {self.name!r} scores encoding rows; pass row=')
        else:
            raw = score = density.score(row)
        finite = math.isfinite(score)
        if finite and self.baseline is not None:
            score = self.baseline.ratio(raw)
            finite = math.isfinite(score)
        if finite:
            p_value = conformal_p_value(self.calibration, score, self.tail)
        else:  # a NaN/inf encoder output is as far from normal as it gets, whatever the tail
            score = math.inf
            p_value = 1.0 / (self.calibration.size + 1)
        log_m = self.martingale.update(p_value)
        statistic = 0.0
        if self.cusum is not None:
            statistic = self.cusum.update(log_m).statistic
        if self.mode is DecisionMode.CUSUM:
            evidence = statistic / self.cusum.tau  # type: ignore[union-attr]
        elif self.baseline is not None:
            # a change shows over frames: in threshold mode a change partition reports its
            # score and p-value but takes no part in the per-frame rule (never triggers)
            evidence = 0.0
        else:
            evidence = self.partition.evidence_of(score) if finite else math.inf
        triggered = evidence > 1.0
        if self.baseline is not None:
            self.baseline.push(raw, frozen=triggered)
        return PartitionState(self.name, score, p_value, log_m, statistic, triggered, evidence)

    def reset(self) -> None:
        """Clear the sequential state (martingale window, CUSUM and a change reference)."""
        self.martingale.reset()
        if self.cusum is not None:
            self.cusum.reset()
        if self.baseline is not None:
            self.baseline.reset()


class AlertLatch:
    """Raise at once on a trigger; clear after ``clear_frames`` consecutive quiet frames."""

    def __init__(self, clear_frames: int = 1) -> None:
        if not isinstance(clear_frames, int) or clear_frames < 1:
            raise ValueError(f'clear_frames must be a positive integer, got {clear_frames!r}')
        self.clear_frames = clear_frames
        self.active = False
        self._quiet = 0

    def update(self, triggered: bool) -> bool:
        """Feed one frame's trigger and return whether the alert is active."""
        if triggered:
            self.active = True
            self._quiet = 0
        elif self.active:
            self._quiet += 1
            if self._quiet >= self.clear_frames:
                self.active = False
                self._quiet = 0
        return self.active

    def reset(self) -> None:
        """Clear the alert."""
        self.active = False
        self._quiet = 0


class Decider:
    """All partitions of one camera plus the alert latch: encoding rows in, verdict out.

    With a ``layout`` (:class:`~vae_ood_monitor.core.encoding.Layout`) each frame is its
    encoding row; without one, its per-dim KL (enough when no partition is generic). The
    Monitor keeps one per camera; evaluation and calibration run the same class over
    precomputed arrays, so offline figures describe exactly what the robot does.
    """

    def __init__(self, partitions: Sequence[Partition], mode: DecisionMode,
                 clear_frames: int = 1, cusum_cap: float | None = None,
                 layout: Layout | None = None) -> None:
        if layout is None and any(p.density is not None for p in partitions):
            raise ValueError('a Decider with generic partitions needs the encoding layout')
        self.detectors = [PartitionDetector(p, mode, cusum_cap) for p in partitions]
        self.latch = AlertLatch(clear_frames)
        self.layout = layout
        self._needs_kl = any(p.density is None for p in partitions)

    def update(self, row: NDArray[np.float64]
               ) -> tuple[tuple[PartitionState, ...], tuple[str, ...], bool]:
        """Return (partition states, names of triggered partitions, alert) for one frame."""
        if self.layout is None:
            states = tuple(d.update(row) for d in self.detectors)
        else:
            # the per-dim KL only when a KL partition reads it (a generic one scores the row)
            kl = self.layout.kl(row) if self._needs_kl else None
            states = tuple(d.update(kl, row) for d in self.detectors)
        fired = tuple(s.name for s in states if s.triggered)
        return states, fired, self.latch.update(bool(fired))

    def run(self, rows: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
        """Feed a sequence of frames (T, width), as :meth:`update` takes them; return arrays.

        Keys: ``alert`` and ``triggered`` (bool, T), and per partition ``<name>.score``,
        ``<name>.p_value``, ``<name>.log_m``, ``<name>.statistic`` and ``<name>.triggered``
        (bool: this partition fired on the frame).
        """
        out: dict[str, list[float]] = {'alert': [], 'triggered': []}
        for row in np.asarray(rows, np.float64):
            states, fired, alert = self.update(row)
            out['alert'].append(alert)
            out['triggered'].append(bool(fired))
            for s in states:
                for key, value in (('score', s.score), ('p_value', s.p_value),
                                   ('log_m', s.log_martingale), ('statistic', s.statistic),
                                   ('triggered', s.triggered)):
                    out.setdefault(f'{s.name}.{key}', []).append(value)
        return {k: np.asarray(v, dtype=bool if k.endswith('triggered') or k == 'alert'
                              else np.float64)
                for k, v in out.items()}

    def reset(self) -> None:
        """Clear all sequential state and the alert."""
        for detector in self.detectors:
            detector.reset()
        self.latch.reset()
