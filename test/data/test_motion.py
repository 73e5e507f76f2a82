"""Motion anomalies of frame sequences."""

from __future__ import annotations

import numpy as np
import pytest

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.data.motion import motion_shift, MotionKind

from vood_testing import moving_frames

STAMPS = np.arange(12, dtype=np.int64) * 50_000_000


@pytest.fixture(scope='module')
def drive() -> np.ndarray:
    return np.stack(moving_frames(12, 60, 80, step=1))


def test_frozen_repeats_the_first_frame(drive: np.ndarray) -> None:
    images, stamps = motion_shift(drive, STAMPS, 'frozen', np.random.default_rng(0))
    assert (images == drive[0]).all() and (stamps == STAMPS).all()


def test_speed_reverse_and_drop_keep_stamps_increasing(drive: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    fast, fast_stamps = motion_shift(drive, STAMPS, MotionKind.SPEED, rng, speed_factor=3)
    np.testing.assert_array_equal(fast, drive[::3])
    np.testing.assert_array_equal(fast_stamps, STAMPS[:4])  # the normal frame rate
    back, back_stamps = motion_shift(drive, STAMPS, 'reverse', rng)
    np.testing.assert_array_equal(back, drive[::-1])
    assert (np.diff(back_stamps) > 0).all()
    kept, kept_stamps = motion_shift(drive, STAMPS, 'drop', rng, drop_fraction=0.5)
    assert 1 <= len(kept) < len(drive) and (np.diff(kept_stamps) > 0).all()
    assert set(kept_stamps.tolist()) <= set(STAMPS.tolist())


def test_shake_moves_every_frame_without_black_borders(drive: np.ndarray) -> None:
    images, _ = motion_shift(drive, STAMPS, 'shake', np.random.default_rng(1))
    assert images.shape == drive.shape
    assert all(not np.array_equal(a, b) for a, b in zip(images, drive))
    assert images[:, 0].mean() > 20 and images[:, :, 0].mean() > 20  # mirrored in, not black


def test_bad_motion_requests_are_refused(drive: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match='Unknown motion'):
        motion_shift(drive, STAMPS, 'teleport', rng)
    with pytest.raises(ConfigError, match='one stamp each'):
        motion_shift(drive, STAMPS[:3], 'frozen', rng)
    with pytest.raises(ConfigError, match='speed_factor'):
        motion_shift(drive, STAMPS, 'speed', rng, speed_factor=1)


@pytest.mark.parametrize('kind', ['speed', 'drop', 'frozen'])
def test_motion_sequence_shifts_the_stretch_of_its_mode_only(kind: str) -> None:
    from vae_ood_monitor.data.motion import motion_sequence, source_frames

    count = source_frames(20, kind, 'm3')
    assert count == (40 if kind == 'speed' else 20)
    clean = np.arange(count, dtype=np.uint8)[:, None, None, None].repeat(3, axis=3)
    images, positions, labels = motion_sequence(clean, 20, kind, 'm3',
                                                np.random.default_rng(0))
    values = images[:, 0, 0, 0].tolist()
    assert values[:5] == [0, 1, 2, 3, 4] and not labels[:5].any()
    assert values[-5:] == list(range(count - 5, count)) and not labels[-5:].any()
    assert (np.diff(positions) > 0).all() and positions[-1] == 19
    shifted = [v for v, flag in zip(values, labels) if flag]
    expected = {'speed': list(range(5, 35, 3)), 'frozen': [5] * 10}.get(kind)
    if expected is not None:
        assert shifted == expected and len(images) == 20
    else:  # dropped frames leave gaps in the positions
        assert len(images) < 20 and set(shifted) <= set(range(5, 15))


def test_synth_writes_a_labelled_motion_drive(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from vae_ood_monitor.cli.main import main
    from vae_ood_monitor.data.dataset import load_frames

    assert main(['synth', str(tmp_path / 'frozen'), '--sequences', '2', '--frames', '16',
                 '--size', '40x30', '--shift', 'frozen', '--mode', 'm2', '--workers', '1']) == 0
    frames = load_frames([tmp_path / 'frozen'], 30, 40)
    first = frames.subset(frames.groups == 0)
    assert first.labels.tolist() == [0] * 8 + [1] * 8
    assert (first.images[8:] == first.images[8]).all()
    assert not (first.images[7] == first.images[8]).all()
    assert (np.diff(first.stamps) == 50_000_000).all()
