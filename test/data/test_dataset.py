"""Loading frame sources into arrays at a model's input size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vae_ood_monitor.core.errors import DataError
from vae_ood_monitor.core.preprocess import resize_image
from vae_ood_monitor.data.dataset import concat_frames, FrameArray, load_frames
from vae_ood_monitor.data.folder import FolderWriter


def _write(folder: Path, count: int, sequences: int = 2) -> list[np.ndarray]:
    images = []
    with FolderWriter(folder) as writer:
        for i in range(count):
            image = np.full((48, 64, 3), i * 7 % 256, np.uint8)
            image[:, :32, 0] = 255 - i
            writer.write(image, label=int(i >= count // 2), stamp_ns=i * 1000,
                         sequence=i * sequences // count)
            images.append(image)
    return images


def test_load_resizes_like_the_runtime(tmp_path: Path) -> None:
    images = _write(tmp_path / 'a', 10)
    frames = load_frames([tmp_path / 'a'], 12, 16, 'area')
    assert frames.images.shape == (10, 12, 16, 3)
    np.testing.assert_array_equal(frames.images[3], resize_image(images[3], 16, 12, 'area'))
    assert frames.labels.tolist() == [0] * 5 + [1] * 5
    assert frames.stamps.tolist() == [i * 1000 for i in range(10)]
    assert len(set(frames.groups.tolist())) == 2  # one group per labelled sequence


def test_stride_skip_limit_and_several_sources(tmp_path: Path) -> None:
    _write(tmp_path / 'a', 10)
    _write(tmp_path / 'b', 6)
    frames = load_frames([tmp_path / 'a', tmp_path / 'b'], 12, 16, skip_first=2, stride=2)
    assert len(frames) == 4 + 2
    assert frames.stamps[:4].tolist() == [2000, 4000, 6000, 8000]
    assert len(load_frames([tmp_path / 'a', tmp_path / 'b'], 12, 16, limit=7)) == 7
    summary = frames.summary()
    assert summary['frames'] == 6 and summary['size'] == [12, 16]
    assert len(summary['sources']) == 2


def test_split_groups_splits_each_sequence_in_time(tmp_path: Path) -> None:
    _write(tmp_path / 'a', 20, sequences=2)
    frames = load_frames([tmp_path / 'a'], 12, 16)
    head, tail = frames.split_groups(0.2)
    assert len(head) == 16 and len(tail) == 4
    for group in np.unique(frames.groups):
        assert head.stamps[head.groups == group].max() < tail.stamps[tail.groups == group].min()
    assert isinstance(head, FrameArray)


def test_concat_keeps_frames_in_order_and_groups_distinct(tmp_path: Path) -> None:
    _write(tmp_path / 'a', 10, sequences=2)
    _write(tmp_path / 'b', 6, sequences=3)
    a, b = load_frames([tmp_path / 'a'], 12, 16), load_frames([tmp_path / 'b'], 12, 16)
    joined = concat_frames([a, b])
    assert len(joined) == 16
    np.testing.assert_array_equal(joined.images[10:], b.images)
    assert joined.labels.tolist() == a.labels.tolist() + b.labels.tolist()
    assert len(np.unique(joined.groups)) == 5
    assert len(joined.group_names) == len(a.group_names) + len(b.group_names)
    for index in (0, 12):  # a group id still names its own source's group
        source = a if index < 10 else b
        local = index if index < 10 else index - 10
        assert (joined.group_names[joined.groups[index]]
                == source.group_names[source.groups[local]])
    with pytest.raises(DataError, match='different sizes'):
        concat_frames([a, load_frames([tmp_path / 'b'], 24, 32)])
    with pytest.raises(DataError, match='No frame sets'):
        concat_frames([])


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match='No frame sources'):
        load_frames([], 12, 16)
    with pytest.raises(DataError, match='stride'):
        load_frames([tmp_path], 12, 16, stride=0)
    _write(tmp_path / 'a', 4)
    with pytest.raises(DataError, match='No frames found'):
        load_frames([tmp_path / 'a'], 12, 16, skip_first=10)


def test_split_stretches_deals_whole_stretches_in_turn() -> None:
    from vae_ood_monitor.data.dataset import FrameArray, split_stretches

    n = 230  # two groups: 150 + 80 frames -> stretches of 50: 3 + 2
    frames = FrameArray(np.arange(n, dtype=np.uint8)[:, None, None, None].repeat(3, axis=3),
                        np.zeros(n, np.int8), np.arange(n, dtype=np.int64),
                        np.r_[np.zeros(150, np.int32), np.ones(80, np.int32)], ('a', 'b'))
    train, calib, test = split_stretches(frames, length=50)
    assert len(train) + len(calib) + len(test) == n
    # group a gives stretches 0-2 (train, train, train), group b stretches 3 and 4
    assert train.images[:, 0, 0, 0].tolist() == list(range(0, 150))
    assert calib.images[:, 0, 0, 0].tolist() == list(range(150, 200))
    assert test.images[:, 0, 0, 0].tolist() == list(range(200, 230))
    assert sorted(set(train.groups.tolist())) == [0, 1, 2]  # one group per stretch
