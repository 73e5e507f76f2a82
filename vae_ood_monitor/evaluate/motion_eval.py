"""Evaluate detectors on motion anomalies, frame by frame and as sequences.

Frame bundles and flow bundles side by side on the same drives: each motion anomaly
(:mod:`~vae_ood_monitor.data.motion`) is applied to whole held-out drives for frame-level AUROC
(a flow bundle scores the stacks the shifted drive gives, a frame bundle its frames), and to
the second half of each drive (mode m2) for the sequential decision, which runs the real
:class:`~vae_ood_monitor.core.monitor.Monitor` frame by frame, stream gaps and all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.monitor import Monitor
from vae_ood_monitor.data.dataset import concat_frames, FrameArray
from vae_ood_monitor.data.flowdata import model_inputs
from vae_ood_monitor.data.motion import motion_shift, MotionKind
from vae_ood_monitor.evaluate.report import evaluate_encodings
from vae_ood_monitor.evaluate.scores import encodings_of_images

if TYPE_CHECKING:
    from collections.abc import Sequence

    from vae_ood_monitor.core.bundle import Bundle
    from vae_ood_monitor.evaluate.report import Evaluation

__all__ = ['SequenceResult', 'evaluate_motion', 'motion_frames', 'motion_sequences']

#: Every motion anomaly, in table order.
MOTION_KINDS = tuple(k.value for k in MotionKind)


def motion_frames(frames: FrameArray, kind: str, seed: int = 0) -> FrameArray:
    """Every drive of ``frames`` with motion anomaly ``kind`` throughout (labels 1)."""
    parts = []
    for number, idx in enumerate(frames.sequences()):
        images, stamps = motion_shift(frames.images[idx], frames.stamps[idx], kind,
                                      np.random.default_rng([seed, number]))
        parts.append(FrameArray(images, np.ones(len(images), np.int8), stamps,
                                np.zeros(len(images), np.int32),
                                (frames.group_names[int(frames.groups[idx[0]])],)))
    return concat_frames(parts)


def evaluate_motion(bundle: Bundle, clean: FrameArray, shifted: dict[str, FrameArray]
                    ) -> Evaluation:
    """Frame-level detection of each motion anomaly by ``bundle``'s default alert."""
    spec = bundle.manifest.input

    def rows(frames: FrameArray) -> np.ndarray:
        if bundle.manifest.flow is not None:  # stacks are made at the input size
            frames = frames.resized(spec.height, spec.width, spec.interpolation)
        return encodings_of_images(bundle, model_inputs(frames, bundle.manifest).images)

    return evaluate_encodings(bundle, rows(clean), {k: rows(v) for k, v in shifted.items()})


@dataclass(frozen=True)
class SequenceResult:
    """The sequential decision over drives whose second half carries one anomaly."""

    drives: int
    detected: int
    false_alarms: int
    id_frames: int
    delays: tuple[int, ...]

    def describe(self) -> str:
        """One table cell: detections, median delay, false alarms."""
        delay = f', delay {int(np.median(self.delays))}' if self.delays else ''
        return (f'{self.detected}/{self.drives} detected{delay}, {self.false_alarms} FA in '
                f'{self.id_frames}')


def motion_sequences(bundle: Bundle, frames: FrameArray, kinds: Sequence[str],
                     seed: int = 0) -> dict[str, SequenceResult]:
    """Per anomaly, run the Monitor over each drive: first half clean, second half shifted.

    A false alarm is an alert raised before the onset (each drive starts with a fresh
    monitor state); a detection is an alert at or after it, its delay counted in frames
    from the onset. ``frames`` must be at least the bundle's input size.
    """
    monitor = Monitor(bundle)
    drives = frames.sequences()
    out = {}
    for kind in kinds:
        detected, alarms, id_frames, delays = 0, 0, 0, []
        for number, idx in enumerate(drives):
            onset = len(idx) // 2
            images, stamps = motion_shift(frames.images[idx[onset:]], frames.stamps[idx[onset:]],
                                          kind, np.random.default_rng([seed, 7919, number]))
            # the shifted half continues the clock of the clean half
            stamps = stamps - stamps[0] + frames.stamps[idx[onset]]
            sequence = list(zip(frames.images[idx[:onset]], frames.stamps[idx[:onset]]))
            sequence += list(zip(images, stamps))
            monitor.reset('eval')
            alerts = np.array([monitor.process(image, int(stamp), 'eval').alert
                               for image, stamp in sequence])
            alarms += int(np.sum(np.diff(alerts[:onset].astype(np.int8), prepend=0) == 1))
            id_frames += onset
            hits = np.flatnonzero(alerts[onset:])
            if len(hits):
                detected += 1
                delays.append(int(hits[0]))
        out[kind] = SequenceResult(len(drives), detected, alarms, id_frames, tuple(delays))
    return out
