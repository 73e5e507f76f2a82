"""Tests of replay/bagmaker.py: frame sources into bags readable by rosbags, with labels."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from replay_testing import frames, SIZE

from vae_ood_monitor.core.errors import ConfigError, ReplayError
from vae_ood_monitor.core.image import to_rgb8
from vae_ood_monitor.data.folder import FolderWriter
from vae_ood_monitor.data.sources import Frame
from vae_ood_monitor.replay.bagio import header_stamp_ns, typestore
from vae_ood_monitor.replay.bagmaker import BagSpec, make_bag, parse_synth, SynthSpec, T0_NS


def read_back(path: Path) -> list[tuple[str, str, int, object]]:
    """Every message of a bag as (topic, msgtype, bag timestamp, message)."""
    from rosbags.highlevel import AnyReader

    with AnyReader([path], default_typestore=typestore()) as reader:
        return [(c.topic, c.msgtype, t, reader.deserialize(raw, c.msgtype))
                for c, t, raw in reader.messages()]


CASES = {
    'rgb8': BagSpec(topic='/cam/image_raw'),
    'bgr8': BagSpec(topic='/cam/image_raw', encoding='bgr8'),
    'mono8': BagSpec(topic='/cam/image_raw', encoding='mono8'),
    'padded': BagSpec(topic='/cam/image_raw', padding=7),
    'jpeg': BagSpec(topic='/cam/image_raw/compressed', compressed='jpeg', quality=95),
}


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
@pytest.mark.parametrize('case', list(CASES))
def test_frames_round_trip_through_a_bag(tmp_path: Path, case: str, storage: str) -> None:
    spec = BagSpec(**{**CASES[case].__dict__, 'storage': storage, 'rate_hz': 10.0})
    source = frames()[:6]
    made = make_bag(source, tmp_path / 'bag', spec)
    assert made.count == 6 and made.msgtype == spec.msgtype
    suffix = '.mcap' if storage == 'mcap' else '.db3'
    assert sorted(p.name for p in made.path.iterdir()) == ['bag' + suffix, 'labels.csv',
                                                           'metadata.yaml']
    assert 'version: 8' in (made.path / 'metadata.yaml').read_text()
    messages = read_back(made.path)
    assert [m[0] for m in messages] == [spec.topic] * 6
    assert {m[1] for m in messages} == {spec.msgtype}
    expected = [T0_NS + i * 100_000_000 for i in range(6)]
    assert [m[2] for m in messages] == expected  # bag time
    assert [header_stamp_ns(m[3]) for m in messages] == expected  # header stamp
    assert {m[3].header.frame_id for m in messages} == {'camera'}
    for frame, (_, _, _, msg) in zip(source, messages):
        rgb = to_rgb8(msg)
        if case == 'jpeg':
            assert msg.format.endswith('jpeg compressed bgr8')
            assert np.abs(rgb.astype(int) - frame.image).mean() < 6
        elif case == 'mono8':
            grey = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)
            np.testing.assert_array_equal(rgb[:, :, 0], grey)
        else:
            assert msg.encoding == spec.encoding
            assert msg.step == SIZE[0] * 3 + spec.padding
            np.testing.assert_array_equal(rgb, frame.image)


def test_synthetic_source_writes_labels(tmp_path: Path) -> None:
    made = make_bag('synth:fog:m2:16:3', tmp_path / 'bag',
                    BagSpec(topic='cam/image_raw', size=(32, 24)))
    assert made.topic == '/cam/image_raw' and made.count == 16
    with open(made.labels, newline='') as stream:
        rows = list(csv.DictReader(stream))
    period = 50_000_000  # the scene renders at 20 Hz
    assert [int(r['stamp_ns']) for r in rows] == [T0_NS + i * period for i in range(16)]
    assert [r['label'] for r in rows] == ['0'] * 8 + ['1'] * 8
    from rosbags.rosbag2 import Reader

    with Reader(made.path) as reader:  # metadata.yaml as rosbags (and rosbag2) read it
        assert reader.message_count == 16 and reader.start_time == T0_NS
        assert reader.duration == 15 * period + 1
        assert [(c.topic, c.msgtype, c.msgcount) for c in reader.connections] == [
            ('/cam/image_raw', 'sensor_msgs/msg/Image', 16)]
    messages = read_back(made.path)
    assert [m[2] for m in messages] == [int(r['stamp_ns']) for r in rows]
    assert (messages[0][3].width, messages[0][3].height) == (32, 24)
    # the same spec gives the same frames: the severity is drawn from the seed
    again = make_bag('synth:fog:m2:16:3', tmp_path / 'again', BagSpec(size=(32, 24)))
    assert np.array_equal(read_back(again.path)[12][3].data, messages[12][3].data)


def test_folder_source_keeps_its_stamps_and_labels(tmp_path: Path) -> None:
    with FolderWriter(tmp_path / 'frames') as writer:
        for i, frame in enumerate(frames()[:4]):
            writer.write(frame.image, label=i % 2, stamp_ns=i * 40_000_000)
    made = make_bag(tmp_path / 'frames', tmp_path / 'bag', BagSpec(storage='sqlite3'))
    assert [m[2] for m in read_back(made.path)] == [T0_NS + i * 40_000_000 for i in range(4)]
    assert made.labels is not None
    assert made.labels.read_text().splitlines()[1:] == [
        f'{T0_NS + i * 40_000_000},{i % 2}' for i in range(4)]


def test_stamps_epoch_sources_verbatim_rate_overrides(tmp_path: Path) -> None:
    image = frames()[0].image
    epoch = [Frame(image, 1_650_000_000_000_000_000 + i * 7, i) for i in range(3)]
    made = make_bag(epoch, tmp_path / 'a', BagSpec())
    assert [m[2] for m in read_back(made.path)] == [f.stamp_ns for f in epoch]
    assert made.labels is None and not (made.path / 'labels.csv').exists()
    made = make_bag(epoch, tmp_path / 'b', BagSpec(rate_hz=4.0, limit=2))
    assert [m[2] for m in read_back(made.path)] == [T0_NS, T0_NS + 250_000_000]


def test_existing_output_needs_force_and_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / 'bag'
    make_bag(frames()[:2], out)
    with pytest.raises(ReplayError, match='exists; choose another path or pass --force'):
        make_bag(frames()[:3], out)
    assert make_bag(frames()[:3], out, force=True).count == 3
    assert len(read_back(out)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']  # no staging left behind


def test_compressed_on_a_plain_topic_is_noted(tmp_path: Path) -> None:
    made = make_bag(frames()[:1], tmp_path / 'bag', BagSpec(topic='/cam', compressed='png'))
    assert any('/cam/compressed' in note for note in made.notes)
    assert read_back(made.path)[0][1] == 'sensor_msgs/msg/CompressedImage'


def test_parse_synth() -> None:
    assert parse_synth('synth:rain:m2:200:7') == SynthSpec('rain', 'm2', 200, 7)
    assert parse_synth('synth:none:id') == SynthSpec(None, 'id', 200, 0)


@pytest.mark.parametrize('text, match', [
    ('synth:rain', 'malformed'),
    ('synth:hail:m2', "Unknown shift 'hail'"),
    ('synth:rain:m9', "Unknown mode 'm9'"),
    ('synth:none:m2', 'needs a shift'),
    ('synth:rain:m2:ten', "N 'ten'"),
    ('synth:rain:m2:0', 'N must be >= 1'),
])
def test_parse_synth_errors(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_synth(text)


@pytest.mark.parametrize('kwargs, match', [
    ({'encoding': 'yuv420'}, "encoding 'yuv420' cannot be written"),
    ({'compressed': 'webp'}, "'jpeg' or 'png'"),
    ({'rate_hz': 0}, 'rate 0 must be'),
    ({'storage': 'rosbag1'}, "storage 'rosbag1'"),
    ({'padding': -1}, 'padding -1'),
])
def test_bag_spec_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        BagSpec(**kwargs)
