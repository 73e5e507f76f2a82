"""Tests of replay/bagio.py: opening bags, topics, windows, clear errors, damaged bags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from replay_testing import cut, frames, image_message, string_message, write_bag

from vae_ood_monitor.core.errors import ReplayError
from vae_ood_monitor.replay.bagio import (Bag, COMPRESSED_IMAGE, header_stamp_ns, IMAGE,
                                          open_bag, Storage, typestore)
from vae_ood_monitor.replay.bagmaker import BagSpec, make_bag, T0_NS


def synth_bag(path: Path, n: int = 12, storage: str = 'mcap') -> Path:
    return make_bag(frames()[:n], path, BagSpec(topic='/cam/image_raw', storage=storage,
                                                rate_hz=10.0)).path


def two_topic_bag(path: Path) -> Path:
    images = [image_message(f.image, T0_NS + i) for i, f in enumerate(frames()[:3])]
    return write_bag(path, {'/front/image_raw': images, '/rear/image_raw': images,
                            '/chatter': [string_message('hi')] * 3})


def read_all(bag: Bag, topics: list[str]) -> list[int]:
    return [m.log_ns for m in bag.messages(topics)]


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_open_folder_or_single_file(tmp_path: Path, storage: str) -> None:
    folder = synth_bag(tmp_path / 'bag', storage=storage)
    single = next(p for p in folder.iterdir() if p.suffix in ('.mcap', '.db3'))
    for path in (folder, single):
        with open_bag(path) as bag:
            assert bag.storage is Storage(storage) and bag.recovered is None
            assert list(bag.topics) == ['/cam/image_raw']
            assert bag.topics['/cam/image_raw'].msgtype == IMAGE
            assert bag.topics['/cam/image_raw'].count == 12
            assert bag.start_ns == T0_NS
            messages = list(bag.messages(['/cam/image_raw']))
            assert [m.index for m in messages] == list(range(12))
            assert [m.log_ns for m in messages] == [T0_NS + i * 10**8 for i in range(12)]
            assert [m.stamp_ns for m in messages] == [m.log_ns for m in messages]
            assert messages[0].frame_id == 'camera' and messages[0].msg.encoding == 'rgb8'
            assert bag.stopped is None


def test_select_topics(tmp_path: Path) -> None:
    with open_bag(two_topic_bag(tmp_path / 'bag')) as bag:
        assert bag.image_topics == ['/front/image_raw', '/rear/image_raw']
        assert [t.name for t in bag.select(['rear/image_raw'])] == ['/rear/image_raw']
        with pytest.raises(ReplayError, match=r'has 2 image topics \(/front/image_raw, '
                           r'/rear/image_raw\); choose with --topic'):
            bag.select()
        with pytest.raises(ReplayError, match="Topic '/side' is not in bag .*; its image "
                           'topics are: /front/image_raw, /rear/image_raw'):
            bag.select(['/side'])
        with pytest.raises(ReplayError, match="Topic '/chatter' has type 'std_msgs/msg/String', "
                           f'not {IMAGE} or {COMPRESSED_IMAGE}'):
            bag.select(['/chatter'])


def test_select_the_only_image_topic(tmp_path: Path) -> None:
    with open_bag(synth_bag(tmp_path / 'bag')) as bag:
        assert [t.name for t in bag.select()] == ['/cam/image_raw']
    path = write_bag(tmp_path / 'text', {'/chatter': [string_message('hi')]})
    with open_bag(path) as bag, pytest.raises(ReplayError, match='has no image topic; its '
                                              'topics are: /chatter'):
        bag.select()


def test_window_in_seconds_from_the_start(tmp_path: Path) -> None:
    with open_bag(synth_bag(tmp_path / 'bag')) as bag:
        start, stop = bag.window(0.25, 0.65)
        assert (start, stop) == (T0_NS + 250_000_000, T0_NS + 650_000_000)
        assert read_all(bag, ['/cam/image_raw']) != read_all(bag, [])
        logs = [m.log_ns for m in bag.messages(['/cam/image_raw'], start, stop)]
        assert logs == [T0_NS + i * 10**8 for i in (3, 4, 5, 6)]
        with pytest.raises(ReplayError, match='--end 1.0 must be after --start 2.0'):
            bag.window(2.0, 1.0)
        with pytest.raises(ReplayError, match='--start -1.0 must be >= 0'):
            bag.window(-1.0)


def write_text(path: Path, text: str = 'not a bag\n') -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize('make, match', [
    (lambda d: d / 'missing', "Bag '.*missing' does not exist; check the path"),
    (lambda d: write_text(d / 'notes.txt'), "notes.txt' is not a ROS 2 bag: expected a rosbag2 "
     'folder'),
    (lambda d: write_text(d / 'fake.mcap'), r"fake.mcap' is not an MCAP file \("),
    (lambda d: write_text(d / 'fake.db3'), r"fake.db3' is not a SQLite database \("),
    (lambda d: write_text(d / 'empty.mcap', ''), r"empty.mcap' is empty \("),
    (lambda d: (d / 'folder').mkdir() or d / 'folder', 'has neither metadata.yaml nor '
     '.mcap/.db3 storage files'),
])
def test_not_a_bag(tmp_path: Path, make: object, match: str) -> None:
    with pytest.raises(ReplayError, match=match):
        open_bag(make(tmp_path))  # type: ignore[operator]


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_cut_before_the_first_message(tmp_path: Path, storage: str) -> None:
    folder = synth_bag(tmp_path / 'bag', storage=storage)
    size = 60 if storage == 'mcap' else 200
    target = cut(folder, size / next(p for p in folder.iterdir() if p.suffix in (
        '.mcap', '.db3')).stat().st_size)
    with pytest.raises(ReplayError, match='truncated or corrupt') as info:
        open_bag(folder)
    assert target.name in str(info.value) or 'bag' in str(info.value)


def test_folder_without_metadata_reads_its_storage_file(tmp_path: Path) -> None:
    folder = synth_bag(tmp_path / 'bag')
    (folder / 'metadata.yaml').unlink()
    with open_bag(folder) as bag:
        assert len(read_all(bag, ['/cam/image_raw'])) == 12
        assert 'no metadata.yaml' in bag.notes[0]


@pytest.mark.parametrize('storage, damage', [('mcap', 'cut'), ('sqlite3', 'cut'),
                                             ('sqlite3', 'overwritten')])
def test_damaged_bag_is_read_up_to_the_damage(tmp_path: Path, storage: str,
                                              damage: str) -> None:
    # 96x72 frames are ~21 kB, so damage in the middle loses about half of the messages
    big = [f.image.repeat(2, 0).repeat(2, 1)[:72, :96] for f in frames()[:30]]
    images = [image_message(rgb, T0_NS + i * 10**8) for i, rgb in enumerate(big)]
    folder = write_bag(tmp_path / 'bag', {'/cam/image_raw': images}, storage=storage)
    if damage == 'cut':
        cut(folder, 0.5)
    else:
        target = folder / 'bag.db3'
        size = target.stat().st_size
        with open(target, 'r+b') as stream:
            stream.seek(size // 2)
            stream.write(np.random.default_rng(0).integers(0, 256, size // 5, np.uint8)
                         .tobytes())
    with open_bag(folder) as bag:
        assert bag.recovered is not None and 'rosbags could not open it' in bag.recovered
        assert bag.topics['/cam/image_raw'].msgtype == IMAGE
        messages = list(bag.messages(['/cam/image_raw']))
        assert 5 < len(messages) < 30
        assert [m.stamp_ns for m in messages] == [T0_NS + i * 10**8
                                                  for i in range(len(messages))]
        assert messages[-1].msg.data.tobytes() == images[len(messages) - 1].data.tobytes()
        stop = bag.stopped
        assert stop is not None and stop.index == len(messages)
        assert stop.log_ns == stop.stamp_ns == messages[-1].log_ns
        assert stop.reason


def test_header_stamp_ns() -> None:
    assert header_stamp_ns(image_message(frames()[0].image, 1_234_567_890_123)) == \
        1_234_567_890_123
    assert header_stamp_ns(string_message('no header')) == 0


def test_cut_zstd_chunk_written_by_the_mcap_library(tmp_path: Path) -> None:
    # ros2 bag record's MCAP plugin compresses chunks with zstd by default; rosbags cannot
    # open such a file once cut, the recovery reads the complete messages of the cut chunk.
    from mcap.writer import CompressionType, Writer

    ts = typestore()
    definition = ts.generate_msgdef(IMAGE, ros_version=2)[0]
    path = tmp_path / 'recorded.mcap'
    images = [image_message(f.image, T0_NS + i * 10**8) for i, f in enumerate(frames())]
    with open(path, 'wb') as stream:
        writer = Writer(stream, compression=CompressionType.ZSTD, chunk_size=10**7)
        writer.start(profile='ros2', library='test')
        schema = writer.register_schema(IMAGE, 'ros2msg', definition.encode())
        channel = writer.register_channel('/cam/image_raw', 'cdr', schema)
        for i, message in enumerate(images):
            writer.add_message(channel, T0_NS + i * 10**8,
                               bytes(ts.serialize_cdr(message, IMAGE)), T0_NS + i * 10**8)
        writer.finish()
    with open_bag(path) as bag:
        assert len(list(bag.messages(['/cam/image_raw']))) == 40 and bag.recovered is None
    cut(path, 0.8)  # one chunk of three zstd blocks: the first two survive
    with open_bag(path) as bag:
        messages = list(bag.messages(['/cam/image_raw']))
        assert bag.recovered is not None and bag.stopped is not None
        assert 5 < len(messages) < 40
        assert all(m.msg.data.tobytes() == images[i].data.tobytes()
                   for i, m in enumerate(messages))
