"""Frame sets as a flow detector sees them: stacks of optical-flow fields per sequence.

A flow bundle is trained, calibrated and evaluated on the same frame sources as a frame bundle;
:func:`flow_frames` turns their frames (loaded at the flow input size) into flow stacks with the
runtime's own :class:`~vae_ood_monitor.core.flow.FlowStacker`, one sequence at a time, so a
stack never spans two recordings or a gap in one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.errors import DataError
from vae_ood_monitor.core.flow import flow_stacks, grey
from vae_ood_monitor.data.dataset import FrameArray

if TYPE_CHECKING:
    from vae_ood_monitor.core.flow import FlowSpec
    from vae_ood_monitor.core.manifest import Manifest

__all__ = ['flow_frames', 'model_inputs']


def flow_frames(frames: FrameArray, flow: FlowSpec) -> FrameArray:
    """Flow stacks (N, h, w, channels) of ``frames``, sequence by sequence.

    Each stack keeps the label, stamp and group of the frame that completed it; the first
    ``stack`` frames of a sequence (and of each stretch after a gap) complete none.
    """
    if frames.images.ndim != 4 or frames.images.shape[3] != 3:
        raise DataError(f'flow_frames needs colour frames (N, h, w, 3), got '
                        f'{frames.images.shape!r}.')
    stacks, keep = [], []
    for where in frames.sequences():
        greys = [grey(image) for image in frames.images[where]]
        group_stacks, done = flow_stacks(greys, frames.stamps[where], flow)
        if len(done):
            stacks.append(group_stacks)
            keep.append(where[done])
    if not stacks:
        raise DataError(f'No sequence has {flow.stack + 1} consecutive frames (within '
                        f'{flow.max_gap_s} s of each other) to make a flow stack of; give '
                        'longer recordings, and load them without --stride.')
    index = np.concatenate(keep)
    return FrameArray(np.concatenate(stacks), frames.labels[index], frames.stamps[index],
                      frames.groups[index], frames.group_names)


def model_inputs(frames: FrameArray, manifest: Manifest) -> FrameArray:
    """Return what ``manifest``'s encoder reads of ``frames``: the frames or their flow stacks."""
    return frames if manifest.flow is None else flow_frames(frames, manifest.flow)
