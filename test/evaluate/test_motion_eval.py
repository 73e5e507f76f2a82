"""Motion-anomaly evaluation (evaluate/motion_eval.py): shifted drives and sequence counts."""

from __future__ import annotations

import numpy as np

from vae_ood_monitor.evaluate.motion_eval import motion_frames, motion_sequences
from vood_testing import bundle_for_frames, tiny_frames


def test_motion_frames_shift_every_drive_and_label_it() -> None:
    frames = tiny_frames(96, groups=4)
    frozen = motion_frames(frames, 'frozen')
    assert len(frozen) == len(frames) and np.all(frozen.labels == 1)
    assert frozen.group_names == frames.group_names
    for number, idx in enumerate(frozen.sequences()):
        first = frames.images[frames.sequences()[number][0]]
        assert np.all(frozen.images[idx] == first)  # the drive's first frame, repeated
        assert np.all(np.diff(frozen.stamps[idx]) > 0)  # with fresh timestamps
    dropped = motion_frames(frames, 'drop')
    assert len(dropped) < len(frames)


def test_motion_frames_are_reproducible_per_seed() -> None:
    frames = tiny_frames(48, groups=2)
    one, two = motion_frames(frames, 'shake', seed=3), motion_frames(frames, 'shake', seed=3)
    assert np.array_equal(one.images, two.images)
    assert not np.array_equal(one.images, motion_frames(frames, 'shake', seed=4).images)


def test_motion_sequences_count_alarms_before_the_onset_and_delays_after_it() -> None:
    frames = tiny_frames(96, groups=4)
    quiet = bundle_for_frames(list(frames.images), alert=False)
    result = motion_sequences(quiet, frames, ['frozen'])['frozen']
    assert (result.drives, result.detected, result.false_alarms) == (4, 0, 0)
    assert result.id_frames == 4 * 12 and result.delays == ()

    loud = bundle_for_frames(list(frames.images), alert=True)
    result = motion_sequences(loud, frames, ['frozen'])['frozen']
    # every frame alerts: one alarm onset per drive before the onset, detected at delay 0
    assert (result.detected, result.false_alarms) == (4, 4) and result.delays == (0,) * 4
    assert result.describe() == '4/4 detected, delay 0, 4 FA in 48'
