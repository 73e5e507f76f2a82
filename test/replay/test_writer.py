"""Tests of replay/writer.py: the node's topics and types, version 8, atomic publication."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vae_ood_monitor.core.diagnostics import DiagnosticEntry, Level
from vae_ood_monitor.core.errors import ReplayError
from vae_ood_monitor.core.topics import AGGREGATE
from vae_ood_monitor.replay.bagio import typestore
from vae_ood_monitor.replay.writer import OutputBag, qualified, staged_output

T = 1_700_000_000_000_000_000


def write_sample(path: Path, storage: str = 'mcap', force: bool = False) -> Path:
    with OutputBag(path, storage=storage, force=force) as out:
        out.add_camera('front', 3, debug_image=True)
        out.add_camera(AGGREGATE, 3)
        out.add_diagnostics()
        out.write_camera('front', T, True, 4.5, np.array([1.0, 2.0, 1.5]))
        out.write_aggregate(T, True, 4.5)
        entry = DiagnosticEntry(Level.WARN, 'vae_ood_monitor: front', 'slow', 'front',
                                (('frames_processed', '1'),))
        out.write_diagnostics(T + 5, T - 7, [entry])
        out.write_debug_image('front', T + 5, T - 7, 'cam', np.full((4, 6, 3), 9, np.uint8))
    return path


def read_back(path: Path) -> dict[str, list[tuple[int, object]]]:
    from rosbags.highlevel import AnyReader

    found: dict[str, list[tuple[int, object]]] = {}
    with AnyReader([path], default_typestore=typestore()) as reader:
        for connection, stamp, raw in reader.messages():
            found.setdefault(connection.topic, []).append(
                (stamp, reader.deserialize(raw, connection.msgtype)))
    return found


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_outputs_read_back(tmp_path: Path, storage: str) -> None:
    found = read_back(write_sample(tmp_path / 'out', storage))
    assert sorted(found) == ['/diagnostics', '/ood/alert', '/ood/front/alert',
                             '/ood/front/debug_image', '/ood/front/kl', '/ood/front/score',
                             '/ood/score']
    assert found['/ood/front/alert'] == [(T, found['/ood/front/alert'][0][1])]
    assert found['/ood/front/alert'][0][1].data is True
    assert found['/ood/front/score'][0][1].data == 4.5
    kl = found['/ood/front/kl'][0][1]
    assert kl.layout.dim[0].label == 'latent' and kl.layout.dim[0].size == 3
    np.testing.assert_array_equal(kl.data, np.array([1.0, 2.0, 1.5], np.float32))
    stamp, diagnostics = found['/diagnostics'][0]
    assert stamp == T + 5
    assert (diagnostics.header.stamp.sec, diagnostics.header.stamp.nanosec) == divmod(T - 7,
                                                                                      10**9)
    status = diagnostics.status[0]
    assert (status.level, status.name, status.message) == (1, 'vae_ood_monitor: front', 'slow')
    assert [(v.key, v.value) for v in status.values] == [('frames_processed', '1')]
    image = found['/ood/front/debug_image'][0][1]
    assert (image.encoding, image.width, image.height, image.step) == ('rgb8', 6, 4, 18)
    assert image.header.frame_id == 'cam' and set(image.data.tolist()) == {9}
    metadata = (tmp_path / 'out' / 'metadata.yaml').read_text()
    assert 'version: 8' in metadata and f'storage_identifier: {storage}' in metadata


def test_mcap_schemas_for_other_tools(tmp_path: Path) -> None:
    from mcap.reader import make_reader

    path = write_sample(tmp_path / 'out')
    with open(path / 'out.mcap', 'rb') as stream:
        reader = make_reader(stream)
        assert reader.get_header().profile == 'ros2'
        summary = reader.get_summary()
        names = {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}
        assert names == {'/ood/front/alert': 'std_msgs/msg/Bool',
                         '/ood/front/score': 'std_msgs/msg/Float32',
                         '/ood/front/kl': 'std_msgs/msg/Float32MultiArray',
                         '/ood/front/debug_image': 'sensor_msgs/msg/Image',
                         '/ood/alert': 'std_msgs/msg/Bool', '/ood/score': 'std_msgs/msg/Float32',
                         '/diagnostics': 'diagnostic_msgs/msg/DiagnosticArray'}
        assert {c.message_encoding for c in summary.channels.values()} == {'cdr'}
        assert summary.statistics.message_count == 7


def test_existing_output_is_replaced_only_after_success(tmp_path: Path) -> None:
    out = write_sample(tmp_path / 'out')
    with pytest.raises(ReplayError, match="Output '.*out' exists; choose another path or pass "
                       '--force'):
        OutputBag(out)
    before = (out / 'out.mcap').read_bytes()
    with pytest.raises(RuntimeError, match='boom'):
        with OutputBag(out, force=True) as bag:
            bag.add_camera('front', 3)
            raise RuntimeError('boom')
    assert (out / 'out.mcap').read_bytes() == before  # the old bag survived the failure
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out']  # no staging left over
    write_sample(out, 'sqlite3', force=True)
    assert sorted(p.name for p in out.iterdir()) == ['metadata.yaml', 'out.db3']


def test_failed_run_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='late'):
        with staged_output(tmp_path / 'new') as target:
            target.mkdir()
            (target / 'metadata.yaml').write_text('looks complete')
            raise ValueError('late failure')
    assert list(tmp_path.iterdir()) == []


def test_qualified_names() -> None:
    assert qualified('ood/front/alert') == '/ood/front/alert'
    assert qualified('ood/alert', 'robot1') == '/robot1/ood/alert'
    assert qualified('/diagnostics', 'robot1') == '/diagnostics'


def test_unknown_storage() -> None:
    with pytest.raises(ReplayError, match="Storage 'rosbag1' is not supported"):
        OutputBag('x', storage='rosbag1')


@pytest.mark.parametrize('latent', [1, 4, 30])
def test_hand_serialised_messages_equal_rosbags(tmp_path: Path, latent: int) -> None:
    ts = typestore()
    types = ts.types
    kl = np.linspace(0.5, 3.0, latent)
    with OutputBag(tmp_path / 'out') as out:
        out.add_camera('cam', latent)
        out.add_camera(AGGREGATE, latent)
        out.write_camera('cam', T, False, 2.75, kl)
        out.write_aggregate(T, True, -1.25)
    dimension = types['std_msgs/msg/MultiArrayDimension'](label='latent', size=latent,
                                                          stride=latent)
    expected = {
        '/ood/cam/alert': ts.serialize_cdr(types['std_msgs/msg/Bool'](data=False),
                                           'std_msgs/msg/Bool'),
        '/ood/cam/score': ts.serialize_cdr(types['std_msgs/msg/Float32'](data=2.75),
                                           'std_msgs/msg/Float32'),
        '/ood/cam/kl': ts.serialize_cdr(types['std_msgs/msg/Float32MultiArray'](
            layout=types['std_msgs/msg/MultiArrayLayout'](dim=[dimension], data_offset=0),
            data=kl.astype(np.float32)), 'std_msgs/msg/Float32MultiArray'),
        '/ood/alert': ts.serialize_cdr(types['std_msgs/msg/Bool'](data=True),
                                       'std_msgs/msg/Bool'),
        '/ood/score': ts.serialize_cdr(types['std_msgs/msg/Float32'](data=-1.25),
                                       'std_msgs/msg/Float32'),
    }
    from mcap.reader import make_reader

    with open(tmp_path / 'out' / 'out.mcap', 'rb') as stream:
        found = {channel.topic: message.data
                 for _, channel, message in make_reader(stream).iter_messages()}
    assert found == {topic: bytes(data) for topic, data in expected.items()}
