"""Tests of replay/replay.py: decisions equal the Monitor's, outputs like the node's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from replay_testing import cut, frames, image_message, tuned_bundle, write_bag

from vae_ood_monitor.core.errors import ReplayError
from vae_ood_monitor.core.monitor import Monitor, MonitorConfig
from vae_ood_monitor.core.session import SessionConfig
from vae_ood_monitor.core.topics import MONITOR_NODE
from vae_ood_monitor.data.messages import compress_rgb, encode_rgb
from vae_ood_monitor.replay.bagio import typestore
from vae_ood_monitor.replay.bagmaker import BagSpec, make_bag, T0_NS
from vae_ood_monitor.replay.replay import replay_bag, ReplayConfig

TOPIC = '/cam/image_raw'
QUIET = MonitorConfig(session=SessionConfig(warmup=0))
CASES = {
    'rgb8': BagSpec(topic=TOPIC, storage='mcap'),
    'bgr8': BagSpec(topic=TOPIC, encoding='bgr8', storage='sqlite3'),
    'mono8': BagSpec(topic=TOPIC, encoding='mono8', storage='mcap'),
    'padded': BagSpec(topic=TOPIC, padding=5, storage='sqlite3'),
    'jpeg': BagSpec(topic=TOPIC + '/compressed', compressed='jpeg', storage='mcap'),
}


def config(**kwargs: Any) -> ReplayConfig:
    mode = kwargs.pop('decision', None)
    return ReplayConfig(monitor=MonitorConfig(decision=mode, session=QUIET.session), **kwargs)


def read_back(path: Path) -> dict[str, list[tuple[int, Any]]]:
    from rosbags.highlevel import AnyReader

    found: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([path], default_typestore=typestore()) as reader:
        for connection, stamp, raw in reader.messages():
            found.setdefault(connection.topic, []).append(
                (stamp, reader.deserialize(raw, connection.msgtype)))
    return found


@pytest.mark.parametrize('mode', ['cusum', 'threshold'])
@pytest.mark.parametrize('case', list(CASES))
def test_decisions_equal_the_monitor(tmp_path: Path, case: str, mode: str) -> None:
    spec = CASES[case]
    made = make_bag(frames(), tmp_path / 'bag', spec)
    result = replay_bag(made.path, tuned_bundle(), config(decision=mode))
    track = result.cameras['cam_image_raw']
    assert result.mode.value == mode and track.topic == spec.topic
    assert track.frames == track.processed == 40 and not track.failed
    direct = Monitor(tuned_bundle(), MonitorConfig(decision=mode, session=QUIET.session))
    expected = []
    for i, frame in enumerate(frames()):
        fields = (compress_rgb(frame.image, 'jpeg', spec.quality) if spec.compressed
                  else encode_rgb(frame.image, spec.encoding, padding=spec.padding))
        expected.append(direct.process(fields, T0_NS + i * 50_000_000, 'cam_image_raw'))
    assert track.score == [d.score for d in expected]
    assert track.alert == [d.alert for d in expected]
    assert track.stamp_ns == [d.stamp_ns for d in expected] == track.log_ns
    assert any(track.alert) and not all(track.alert)  # fog alarms, the clean start does not


def test_output_bag_like_the_node(tmp_path: Path) -> None:
    from mcap.reader import make_reader

    made = make_bag(frames(), tmp_path / 'bag', BagSpec(topic=TOPIC, rate_hz=10.0))
    out = tmp_path / 'out'
    result = replay_bag(made.path, tuned_bundle(),
                        config(out=out, copy_input=True, debug_image=True, debug_width=32,
                               diagnostics_period=1.0))
    track = result.cameras['cam_image_raw']
    found = read_back(out)
    inputs = [t for t, _ in read_back(made.path)[TOPIC]]
    for topic in ('/ood/cam_image_raw/alert', '/ood/cam_image_raw/score',
                  '/ood/cam_image_raw/kl', '/ood/cam_image_raw/debug_image', '/ood/alert',
                  '/ood/score', TOPIC):
        assert [t for t, _ in found[topic]] == inputs, topic  # stamped like the inputs
    assert [m.data for _, m in found['/ood/cam_image_raw/alert']] == track.alert
    assert [m.data for _, m in found['/ood/alert']] == track.alert
    np.testing.assert_allclose([m.data for _, m in found['/ood/cam_image_raw/score']],
                               track.score, rtol=1e-6)
    kl = found['/ood/cam_image_raw/kl'][7][1]
    assert kl.layout.dim[0].label == 'latent' and kl.data.shape == (4,)
    np.testing.assert_allclose(kl.data.sum(), track.score[7], rtol=1e-5)
    debug = found['/ood/cam_image_raw/debug_image'][0][1]
    assert (debug.encoding, debug.width, debug.height) == ('rgb8', 32, 24)
    assert debug.header.stamp.sec == T0_NS // 10**9
    # 40 frames at 10 Hz span 3.9 s: diagnostics after 1, 2 and 3 s, and one at the end
    diagnostics = found['/diagnostics']
    assert [t for t, _ in diagnostics] == [T0_NS + k * 10**9 for k in (1, 2, 3)] + [inputs[-1]]
    status = diagnostics[-1][1].status[0]
    values = {v.key: v.value for v in status.values}
    assert status.name == 'vae_ood_monitor: cam_image_raw'
    assert values['frames_processed'] == '40' and values['input_rate_hz'] == '10.00'
    assert values['model_sha256'] == tuned_bundle().short_hash
    model = diagnostics[-1][1].status[1]  # the node's model entry
    assert model.name == f'{MONITOR_NODE}: model' and model.message == 'tiny-linear'
    assert {v.key: v.value for v in model.values}['decision_mode'] == 'cusum'
    # the raw camera bytes are copied unchanged
    with open(made.path / 'bag.mcap', 'rb') as a, open(out / 'out.mcap', 'rb') as b:
        original = [m.data for _, _, m in make_reader(a).iter_messages(topics=[TOPIC])]
        reader = make_reader(b)
        copied = [m.data for _, _, m in reader.iter_messages(topics=[TOPIC])]
        summary = reader.get_summary()
    assert copied == original
    counts = {c.topic: summary.statistics.channel_message_counts[c.id]
              for c in summary.channels.values()}
    assert counts['/ood/cam_image_raw/alert'] == counts['/ood/score'] == 40
    assert counts['/diagnostics'] == 4
    assert summary.schemas[next(c.schema_id for c in summary.channels.values()
                                if c.topic == '/ood/alert')].name == 'std_msgs/msg/Bool'
    assert result.out_topics and not list(tmp_path.glob('.out.partial-*'))


def test_two_cameras_and_the_aggregate(tmp_path: Path) -> None:
    fog = [image_message(f.image, T0_NS + i * 10**8) for i, f in enumerate(frames())]
    clean = [image_message(f.image, T0_NS + i * 10**8)
             for i, f in enumerate(frames('synth:none:id:40:5'))]
    bag = write_bag(tmp_path / 'bag', {'/front/image_raw': fog, '/rear/image_raw': clean},
                    storage='sqlite3')
    out = tmp_path / 'out'
    result = replay_bag(bag, tuned_bundle(),
                        config(topics=('/front/image_raw', 'rear/image_raw'), out=out,
                               storage='sqlite3', decision='threshold'))
    assert list(result.cameras) == ['front_image_raw', 'rear_image_raw']
    front, rear = result.cameras.values()
    assert any(front.alert) and not any(rear.alert)
    found = read_back(out)
    assert len(found['/ood/alert']) == len(found['/ood/score']) == 80
    latest: dict[str, tuple[bool, float]] = {}
    events = sorted([(t, 'f', m.data) for t, m in found['/ood/front_image_raw/score']]
                    + [(t, 'r', m.data) for t, m in found['/ood/rear_image_raw/score']])
    alerts = {**{(t, 'f'): m.data for t, m in found['/ood/front_image_raw/alert']},
              **{(t, 'r'): m.data for t, m in found['/ood/rear_image_raw/alert']}}
    expected = []
    for t, cam, score in events:
        latest[cam] = (alerts[(t, cam)], score)
        expected.append((any(a for a, _ in latest.values()), max(s for _, s in latest.values())))
    assert [m.data for _, m in found['/ood/alert']] == [e[0] for e in expected]
    assert [m.data for _, m in found['/ood/score']] == [e[1] for e in expected]


def test_a_camera_that_stops_reads_a_falling_rate(tmp_path: Path) -> None:
    # front sends 10 frames at 10 Hz and stops; rear goes on for 4 s
    front = [image_message(f.image, T0_NS + i * 10**8) for i, f in enumerate(frames()[:10])]
    rear = [image_message(f.image, T0_NS + i * 10**8)
            for i, f in enumerate(frames('synth:none:id:40:5'))]
    bag = write_bag(tmp_path / 'bag', {'/front/image_raw': front, '/rear/image_raw': rear},
                    storage='sqlite3')
    out = tmp_path / 'out'
    replay_bag(bag, tuned_bundle(), config(topics=('/front/image_raw', '/rear/image_raw'),
                                           out=out, storage='sqlite3', diagnostics_period=1.0))
    last = read_back(out)['/diagnostics'][-1]
    rates = {s.name.split(': ')[1]: {v.key: float(v.value) for v in s.values
                                     if v.key.endswith('rate_hz')}
             for s in last[1].status if s.name.endswith('image_raw')}
    assert rates['rear_image_raw']['input_rate_hz'] == pytest.approx(10.0)
    # silent for 3 s at the last message (3.9 s): at most one frame per 3 s
    assert rates['front_image_raw']['input_rate_hz'] == pytest.approx(1 / 3.0, abs=0.01)
    assert rates['front_image_raw']['processed_rate_hz'] < 0.34


def test_undecodable_frame_is_counted_and_skipped(tmp_path: Path) -> None:
    images = [image_message(f.image, T0_NS + i * 10**8) for i, f in enumerate(frames()[:6])]
    images[2] = image_message(frames()[2].image, T0_NS + 2 * 10**8, data=b'\x00' * 100)
    bag = write_bag(tmp_path / 'bag', {TOPIC: images})
    result = replay_bag(bag, tuned_bundle(), config(out=tmp_path / 'out'))
    track = result.cameras['cam_image_raw']
    assert (track.frames, track.processed) == (6, 5)
    assert dict(track.failed) == {'ImageEncodingError': 1}
    assert track.failures == [(2, T0_NS + 2 * 10**8, 'ImageEncodingError')]
    assert len(read_back(tmp_path / 'out')['/ood/cam_image_raw/alert']) == 5


def test_zero_header_stamps_fall_back_to_bag_time(tmp_path: Path) -> None:
    images = [image_message(f.image, 0) for f in frames()[:3]]
    bag = write_bag(tmp_path / 'bag', {TOPIC: images})
    track = replay_bag(bag, tuned_bundle(), config()).cameras['cam_image_raw']
    assert track.stamp_ns == track.log_ns == [T0_NS + i * 10**8 for i in range(3)]


def test_mixed_frame_formats(tmp_path: Path) -> None:
    images = [image_message(f.image, T0_NS + i * 10**8) for i, f in enumerate(frames()[:6])]
    images[3] = image_message(frames()[3].image[::2, ::2].copy(), T0_NS + 3 * 10**8)
    bag = write_bag(tmp_path / 'bag', {TOPIC: images})
    with pytest.raises(ReplayError, match=r"Topic '/cam/image_raw' changes frame format at "
                       r'message 3: 64x48 rgb8 -> 32x24 rgb8; .*pass --allow-mixed'):
        replay_bag(bag, tuned_bundle(), config(out=tmp_path / 'out'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']  # no output, no staging
    result = replay_bag(bag, tuned_bundle(), config(allow_mixed=True))
    assert result.cameras['cam_image_raw'].formats == ['64x48 rgb8', '32x24 rgb8']
    assert result.processed == 6


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_damaged_bag_is_replayed_up_to_the_damage(tmp_path: Path, storage: str) -> None:
    made = make_bag(frames(), tmp_path / 'bag', BagSpec(topic=TOPIC, storage=storage))
    cut(made.path, 0.5)
    out = tmp_path / 'out'
    result = replay_bag(made.path, tuned_bundle(), config(out=out))
    track = result.cameras['cam_image_raw']
    assert 5 < track.processed < 40 and result.stopped is not None
    assert result.stopped.index == track.processed
    assert result.stopped.stamp_ns == track.stamp_ns[-1]
    assert result.recovered is not None
    found = read_back(out)
    assert [t for t, _ in found['/ood/cam_image_raw/score']] == track.log_ns


def test_window(tmp_path: Path) -> None:
    made = make_bag(frames(), tmp_path / 'bag', BagSpec(topic=TOPIC, rate_hz=10.0))
    result = replay_bag(made.path, tuned_bundle(), config(start_s=1.0, end_s=2.05))
    track = result.cameras['cam_image_raw']
    assert track.index == list(range(11)) and track.log_ns[0] == T0_NS + 10**9
    assert result.window_ns == (T0_NS + 10**9, T0_NS + 2_050_000_000)


def test_bad_requests(tmp_path: Path) -> None:
    images = [image_message(f.image, T0_NS + i) for i, f in enumerate(frames()[:2])]
    bag = write_bag(tmp_path / 'bag', {'/cam/image_raw': images,
                                       '/cam/image_raw/compressed': images})
    with pytest.raises(ReplayError, match="'/cam/image_raw' and '/cam/image_raw/compressed' "
                       "both map to camera name 'cam_image_raw'"):
        replay_bag(bag, tuned_bundle(), config(topics=('/cam/image_raw',
                                                       '/cam/image_raw/compressed')))
    with pytest.raises(ReplayError, match='would replace the input'):
        replay_bag(bag, tuned_bundle(), config(topics=('/cam/image_raw',), out=bag,
                                               force=True))
    (tmp_path / 'taken').mkdir()
    with pytest.raises(ReplayError, match="Output '.*taken' exists"):
        replay_bag(bag, tuned_bundle(), config(topics=('/cam/image_raw',),
                                               out=tmp_path / 'taken'))


def test_replay_layer_imports(tmp_path: Path) -> None:
    """replay imports core, data, evaluate's spans and rosbags; never torch, rclpy, train, ros,
    scikit-learn or matplotlib."""
    import json
    import subprocess
    import sys

    from vae_ood_monitor.core.bundle import save_bundle

    made = make_bag(frames()[:3], tmp_path / 'bag', BagSpec(topic=TOPIC))
    model = save_bundle(tuned_bundle(), tmp_path / 'm.vood')
    script = (
        'import json, sys\n'
        'from vae_ood_monitor.replay import replay_bag, ReplayConfig, summarize\n'
        f'result = replay_bag({str(made.path)!r}, {str(model)!r}, '
        f'ReplayConfig(out={str(tmp_path / "out")!r}))\n'
        'summarize(result)\n'
        "bad = ('torch', 'rclpy', 'vae_ood_monitor.train', 'vae_ood_monitor.ros', "
        "'sklearn', 'matplotlib')\n"
        'print(json.dumps(sorted(m for m in sys.modules if m.startswith(bad))))\n')
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_a_flow_bundle_replays_like_the_monitor(tmp_path: Path) -> None:
    from vae_ood_monitor.core.flow import FlowSpec
    from vood_testing import make_flow_bundle

    bundle = make_flow_bundle(FlowSpec(stack=3), 30, 40)
    made = make_bag(frames(), tmp_path / 'bag', BagSpec(topic=TOPIC))
    result = replay_bag(made.path, bundle, config())
    track = result.cameras['cam_image_raw']
    assert track.frames == track.processed == 40 and not track.failed
    direct = Monitor(bundle, QUIET)
    expected = [direct.process(encode_rgb(f.image, 'rgb8'), T0_NS + i * 50_000_000,
                               'cam_image_raw') for i, f in enumerate(frames())]
    assert track.score == [d.score for d in expected]
    assert track.score[:3] == [0.0] * 3 and all(s > 0 for s in track.score[3:])
    latency = track.array('latency_ns')
    assert latency.shape == (40, 6) and (latency[3:, 2] > 0).all()  # the flow stage
