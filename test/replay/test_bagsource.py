"""Tests of replay/bagsource.py: bags as frame sources for training, calibration, evaluation."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from replay_testing import cut, frames, image_message, string_message, write_bag

from vae_ood_monitor.core.errors import DataError, ReplayError
from vae_ood_monitor.data.dataset import load_frames
from vae_ood_monitor.data.sources import FrameSource
from vae_ood_monitor.replay.bagmaker import BagSpec, make_bag, T0_NS
from vae_ood_monitor.replay.bagsource import bag_sources, BagSource, split_bag_spec


def synth_bag(path: Path, spec: str = 'synth:fog:m3:40:3', **kwargs: object) -> Path:
    return make_bag(frames(spec), path, BagSpec(topic='/cam/image_raw', rate_hz=10.0,
                                                **kwargs)).path  # type: ignore[arg-type]


def test_bag_specs_are_told_from_other_paths(tmp_path: Path) -> None:
    bag = synth_bag(tmp_path / 'drive:1')  # a colon in the folder name itself
    assert split_bag_spec(bag) == (bag, None)
    assert split_bag_spec(f'{bag}:/cam/image_raw') == (bag, '/cam/image_raw')
    assert split_bag_spec(f'{bag}:front/image_raw') == (bag, 'front/image_raw')
    folder = tmp_path / 'frames'
    folder.mkdir()
    assert split_bag_spec(folder) is None and split_bag_spec(tmp_path / 'missing') is None
    assert split_bag_spec(f'{folder}:/cam/image_raw') is None  # not a bag: left to the caller


def test_a_bag_yields_the_frames_stamps_and_labels_it_was_made_of(tmp_path: Path) -> None:
    bag = synth_bag(tmp_path / 'bag')  # vae-ood bag writes labels.csv beside the storage
    source = BagSource(bag)
    assert isinstance(source, FrameSource)
    assert source.topic == '/cam/image_raw' and source.name == 'bag:/cam/image_raw'
    assert len(source) == 40
    read = list(source)
    made = frames()
    assert [f.index for f in read] == list(range(40))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(read, made))
    assert np.all(np.diff([f.stamp_ns for f in read]) == 100_000_000)  # 10 Hz
    assert [f.label for f in read] == [f.label for f in made]  # fog on the middle half
    assert read[0].meta['topic'] == '/cam/image_raw'


def test_compressed_frames_decode_as_the_node_decodes_them(tmp_path: Path) -> None:
    bag = synth_bag(tmp_path / 'bag', compressed='png')
    (first, *_) = BagSource(bag)
    assert np.array_equal(first.image, frames()[0].image)  # png is lossless


def test_load_frames_reads_bags_beside_other_sources(tmp_path: Path) -> None:
    bag = synth_bag(tmp_path / 'bag')
    loaded = load_frames([BagSource(bag), BagSource(bag)], 24, 32, stride=2)
    assert loaded.images.shape == (40, 24, 32, 3)
    assert loaded.group_names == ('bag:/cam/image_raw#',)  # one drive, read twice


def test_several_image_topics_need_one_named(tmp_path: Path) -> None:
    images = [image_message(f.image, T0_NS + i) for i, f in enumerate(frames()[:3])]
    bag = write_bag(tmp_path / 'bag', {'/front/image_raw': images, '/rear/image_raw': images,
                                       '/chatter': [string_message('hi')] * 3})
    with pytest.raises(ReplayError, match=r'has 2 image topics \(/front/image_raw, '
                       r"/rear/image_raw\); name one as '.*bag:/front/image_raw'"):
        BagSource(bag)
    rear = BagSource(bag, 'rear/image_raw')
    assert rear.topic == '/rear/image_raw' and len(list(rear)) == 3
    with pytest.raises(ReplayError, match="'/chatter' has type 'std_msgs/msg/String'"):
        BagSource(bag, '/chatter')


def test_a_damaged_bag_gives_its_readable_frames_and_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bag = synth_bag(tmp_path / 'bag')
    cut(bag, 0.5)
    with caplog.at_level(logging.WARNING):
        read = list(BagSource(bag))
    assert 0 < len(read) < 40
    assert 'the bag is damaged after that' in caplog.text


def test_an_undecodable_frame_names_the_frame_and_the_bag(tmp_path: Path) -> None:
    good = frames()[0].image
    broken = image_message(good, T0_NS, data=b'\x00' * 10)  # far too few bytes
    bag = write_bag(tmp_path / 'bag', {'/cam/image_raw': [image_message(good, T0_NS), broken]})
    with pytest.raises(DataError, match=r"frame 1 of 'bag:/cam/image_raw'"):
        list(BagSource(bag))


def test_a_folder_of_bags_gives_one_source_per_bag(tmp_path: Path) -> None:
    archive = tmp_path / 'archive'
    for day in ('day1', 'day2'):
        synth_bag(archive / 'robot' / day / 'drive')
    (archive / 'notes.txt').write_text('not a bag')
    assert split_bag_spec(archive) == (archive, None)
    assert split_bag_spec(f'{archive}:/cam/image_raw') == (archive, '/cam/image_raw')
    sources = bag_sources(archive, '/cam/image_raw')
    assert [s.name for s in sources] == ['robot/day1/drive:/cam/image_raw',
                                         'robot/day2/drive:/cam/image_raw']
    loaded = load_frames(sources, 24, 32)
    assert len(loaded) == 80 and len(loaded.group_names) == 2  # one drive per bag
    assert [s.name for s in bag_sources(archive / 'robot' / 'day1' / 'drive')] == [
        'drive:/cam/image_raw']
