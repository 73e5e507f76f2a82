"""monitor_node as a real process over DDS (ROS 2 Jazzy wheels): what a user sees on the graph.

Every test starts the node with ``--ros-args --params-file config/monitor.yaml`` plus overrides
on a ROS domain of its own and talks to it from an in-process rclpy node. The model is a tiny
linear encoder calibrated so that dim grey frames are normal and bright frames alert.
"""

from __future__ import annotations

import os
from pathlib import Path
import signal
import time
from typing import Any

import numpy as np
import pytest

from ros_harness import (BEST_EFFORT, Bool, compressed_msg, CompressedImage, DiagnosticArray,
                         Float32, Float32MultiArray, Image, image_msg, RosGraph, Trigger)
from vae_ood_monitor.core.bundle import save_bundle
from vae_ood_monitor.core.manifest import Partition
from vood_testing import make_bundle

NODE = 'ood_monitor'
CAMERA = 'camera_image_raw'  # the camera name of topic camera/image_raw
RNG = np.random.default_rng(0)
NORMAL = [np.clip(100 + RNG.normal(0, 5, (12, 16, 3)), 0, 255).astype(np.uint8)
          for _ in range(8)]
BRIGHT = [np.clip(230 + RNG.normal(0, 5, (12, 16, 3)), 0, 255).astype(np.uint8)
          for _ in range(8)]


@pytest.fixture(scope='module')
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Normal frames have KL sums near 1.0, bright ones near 2.0: threshold 1.5."""
    base = make_bundle(calibrated=False)
    partition = Partition('all', tuple(range(4)), calibration_scores=np.linspace(0.9, 1.1, 200),
                          threshold=1.5)
    return save_bundle(base.with_manifest(partitions=(partition,)),
                       tmp_path_factory.mktemp('model') / 'ctl.vood')


def _status(diagnostics: list[Any], name: str) -> Any | None:
    """The latest DiagnosticStatus called ``name``."""
    for array in reversed(diagnostics):
        for status in array.status:
            if status.name == name:
                return status
    return None


def _values(status: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def _level(status: Any) -> int:
    """DiagnosticStatus.level (a byte in rclpy) as an int: 0 OK, 1 WARN, 2 ERROR, 3 STALE."""
    level = status.level
    return level[0] if isinstance(level, bytes) else int(level)


class Feeder:
    """Publishes frames from a list in turn whenever it is called."""

    def __init__(self, publisher: Any, frames: list[np.ndarray], **kwargs: Any) -> None:
        self.publisher, self.frames, self.kwargs, self.sent = publisher, frames, kwargs, 0

    def __call__(self) -> None:
        frame = self.frames[self.sent % len(self.frames)]
        self.publisher.publish(image_msg(frame, **self.kwargs))
        self.sent += 1


def test_alerts_scores_kl_diagnostics_and_debug_image(graph: RosGraph, model: Path) -> None:
    node = graph.monitor(model, publish_debug_image=True, debug_image_width=64)
    alerts = graph.subscribe(Bool, f'ood/{CAMERA}/alert')
    overall = graph.subscribe(Bool, 'ood/alert')
    scores = graph.subscribe(Float32, f'ood/{CAMERA}/score')
    kl = graph.subscribe(Float32MultiArray, f'ood/{CAMERA}/kl')
    debug = graph.subscribe(Image, f'ood/{CAMERA}/debug_image')
    diagnostics = graph.subscribe(DiagnosticArray, '/diagnostics')
    publisher = graph.publisher(Image, 'camera/image_raw')
    normal = Feeder(publisher, NORMAL)
    assert graph.spin_until(lambda: len(kl) >= 5 and debug and not alerts[-1].data, each=normal)
    assert len(kl[-1].data) == 4 and 0.5 < scores[-1].data < 1.5
    assert debug[-1].width == 64 and debug[-1].encoding in ('rgb8', 'bgr8')
    bright = Feeder(publisher, BRIGHT)
    assert graph.spin_until(lambda: alerts[-1].data and overall[-1].data
                            and scores[-1].data > 1.5, each=bright)
    assert graph.spin_until(lambda: _status(diagnostics, f'vae_ood_monitor: {CAMERA}')
                            is not None, timeout=3.0)
    camera = _values(_status(diagnostics, f'vae_ood_monitor: {CAMERA}'))
    assert int(camera['frames_processed']) >= 5 and camera['alert'] == 'true'
    assert _values(_status(diagnostics, f'{NODE}: model'))['model_path'] == str(model)
    assert node.alive()


def test_malformed_frames_are_counted_and_survived(graph: RosGraph, model: Path) -> None:
    node = graph.monitor(model)
    kl = graph.subscribe(Float32MultiArray, f'ood/{CAMERA}/kl')
    diagnostics = graph.subscribe(DiagnosticArray, '/diagnostics')
    publisher = graph.publisher(Image, 'camera/image_raw')
    assert graph.spin_until(lambda: kl, each=Feeder(publisher, NORMAL))  # connected
    short = image_msg(NORMAL[0])
    short.data = short.data[:-7]  # a truncated frame
    unknown = image_msg(NORMAL[0])
    unknown.encoding = 'yuv420'
    for bad in (short, unknown, short):
        publisher.publish(bad)
        graph.spin(0.1)
    count = len(kl)
    assert graph.spin_until(lambda: len(kl) >= count + 3, each=Feeder(publisher, NORMAL))

    def failed() -> int:
        status = _status(diagnostics, f'vae_ood_monitor: {CAMERA}')
        return int(_values(status)['frames_failed']) if status else 0

    assert graph.spin_until(lambda: failed() == 3, timeout=4.0)
    assert _values(_status(diagnostics, f'vae_ood_monitor: {CAMERA}'))[
        'failed_ImageEncodingError'] == '3'
    assert node.alive() and 'Traceback' not in node.output()


def test_lifecycle_by_id_and_label_including_invalid_requests(graph: RosGraph,
                                                              model: Path) -> None:
    node = graph.monitor(model, autostart=False)
    assert graph.state(NODE) == 'unconfigured'
    # activate (id 3) is not a transition of 'unconfigured': refused, not a crash
    assert not graph.change_state(NODE, transition_id=3)
    assert not graph.change_state(NODE, label='activate')
    assert not graph.change_state(NODE, transition_id=99)
    assert node.alive() and graph.state(NODE) == 'unconfigured'
    assert graph.change_state(NODE, transition_id=1)  # configure: loads the model
    assert graph.state(NODE) == 'inactive'
    assert graph.change_state(NODE, label='activate') and graph.state(NODE) == 'active'
    assert graph.change_state(NODE, transition_id=4) and graph.state(NODE) == 'inactive'
    assert not graph.change_state(NODE, label='configure')  # already configured
    assert graph.change_state(NODE, label='cleanup') and graph.state(NODE) == 'unconfigured'
    assert node.alive()
    assert 'lifecycle transition refused (id 3' in node.output()


def test_the_model_loads_on_configure_and_pausing_keeps_it(graph: RosGraph, model: Path,
                                                           tmp_path: Path) -> None:
    missing = graph.monitor(tmp_path / 'missing.vood', autostart=False)
    assert not graph.change_state(NODE, label='configure')  # the bundle is checked at once
    assert graph.state(NODE) == 'unconfigured' and missing.alive()
    assert 'configure failed' in missing.output()
    missing.stop()
    node = graph.monitor(model, autostart=False)
    assert graph.spin_until(lambda: 'loaded model' not in node.output() and node.alive(), 1.0)
    assert graph.change_state(NODE, label='configure')
    kl = graph.subscribe(Float32MultiArray, f'ood/{CAMERA}/kl')
    feeder = Feeder(graph.publisher(Image, 'camera/image_raw'), NORMAL)
    for _ in range(3):  # pause and resume without reloading (one 'loaded model' below)
        assert graph.change_state(NODE, label='activate')
        count = len(kl)
        assert graph.spin_until(lambda: len(kl) > count + 2, each=feeder)
        assert graph.change_state(NODE, label='deactivate')
    assert node.output().count('loaded model') == 1


def test_parameters_are_refused_with_a_reason_naming_them(graph: RosGraph, model: Path) -> None:
    graph.monitor(model)
    (empty,) = graph.set_parameters(NODE, image_topics=[''])
    assert not empty.successful and 'image_topics' in empty.reason
    (deep,) = graph.set_parameters(NODE, qos_depth=1000)
    assert not deep.successful and 'qos_depth' in deep.reason
    (fine,) = graph.set_parameters(NODE, debug_image_width=128)
    assert fine.successful
    # safety settings are fixed at start-up: nobody on the graph loosens them
    for name, value in (('alert_on_stale', False), ('stale_after_s', 60.0),
                        ('max_frame_age_s', 0.0)):
        (result,) = graph.set_parameters(NODE, **{name: value})
        assert not result.successful and 'read-only' in result.reason, name
    assert graph.get_parameters(NODE, 'alert_on_stale', 'image_topics') == [
        True, ['camera/image_raw']]


def test_a_flow_bundle_beside_the_frame_bundle_ors_its_alert(graph: RosGraph, model: Path,
                                                             tmp_path: Path) -> None:
    from vae_ood_monitor.core.flow import FlowSpec
    from vood_testing import make_flow_bundle

    flow = make_flow_bundle(FlowSpec(stack=2), 12, 16)
    part = flow.manifest.partitions[0]
    always = Partition(part.name, part.dims, calibration_scores=np.zeros(10), threshold=-1.0)
    flow_model = save_bundle(flow.with_manifest(partitions=(always,)), tmp_path / 'flow.vood')
    node = graph.monitor(model, flow_model_path=str(flow_model))
    alerts = graph.subscribe(Bool, f'ood/{CAMERA}/alert')
    scores = graph.subscribe(Float32, f'ood/{CAMERA}/score')
    publisher = graph.publisher(Image, 'camera/image_raw')
    # normal frames: the frame bundle is quiet, the flow bundle (alerting on any motion) fires
    # once its two-field stack is full, and the camera's alert is the OR of both
    assert graph.spin_until(lambda: len(scores) >= 5 and alerts and alerts[-1].data,
                            each=Feeder(publisher, NORMAL))
    assert 0.5 < scores[-1].data < 1.5  # the frame bundle's score
    assert node.alive()


def test_reset_clears_the_alert(graph: RosGraph, model: Path) -> None:
    graph.monitor(model, decision='threshold', clear_frames=10000)
    alerts = graph.subscribe(Bool, f'ood/{CAMERA}/alert')
    publisher = graph.publisher(Image, 'camera/image_raw')
    assert graph.spin_until(lambda: alerts and alerts[-1].data, each=Feeder(publisher, BRIGHT))
    # 10,000 quiet frames would be needed to clear it; ~/reset clears it now
    response = graph.call(Trigger, f'/{NODE}/reset', Trigger.Request(), attempts=3)
    assert response.success and 'cleared' in response.message
    count = len(alerts)
    assert graph.spin_until(lambda: len(alerts) > count + 3 and not alerts[-1].data,
                            each=Feeder(publisher, NORMAL))


def test_two_cameras_one_compressed(graph: RosGraph, model: Path) -> None:
    graph.monitor(model, image_topics=['front/image_raw', 'rear/image_raw/compressed'])
    front = graph.subscribe(Bool, 'ood/front_image_raw/alert')
    rear = graph.subscribe(Bool, 'ood/rear_image_raw/alert')
    rear_kl = graph.subscribe(Float32MultiArray, 'ood/rear_image_raw/kl')
    front_pub = graph.publisher(Image, 'front/image_raw')
    rear_pub = graph.publisher(CompressedImage, 'rear/image_raw/compressed')

    def both() -> None:
        front_pub.publish(image_msg(NORMAL[0]))
        rear_pub.publish(compressed_msg(BRIGHT[0]))

    assert graph.spin_until(lambda: rear_kl and rear[-1].data and front
                            and not front[-1].data, each=both)


def test_a_stale_camera_alerts_and_its_diagnostics_say_so(graph: RosGraph, model: Path) -> None:
    graph.monitor(model, stale_after_s=0.3, diagnostics_period_s=0.2)
    alerts = graph.subscribe(Bool, f'ood/{CAMERA}/alert')
    diagnostics = graph.subscribe(DiagnosticArray, '/diagnostics')
    feeder = Feeder(graph.publisher(Image, 'camera/image_raw'), NORMAL)
    assert graph.spin_until(lambda: alerts and not alerts[-1].data, each=feeder)
    start = len(diagnostics)  # the camera goes quiet: stale
    assert graph.spin_until(lambda: alerts[-1].data and any(
        s.name == f'vae_ood_monitor: {CAMERA}' and _level(s) == 3 for d in diagnostics[start:]
        for s in d.status), timeout=4.0)
    status = _status(diagnostics, f'vae_ood_monitor: {CAMERA}')
    assert _values(status)['alert'] == 'true'  # as the alert topic says
    assert 'alert raised: the camera is not being watched' in status.message


def test_old_frames_are_not_judged_and_the_camera_counts_as_stale(graph: RosGraph,
                                                                  model: Path) -> None:
    node = graph.monitor(model, max_frame_age_s=0.5, diagnostics_period_s=0.2)
    alerts = graph.subscribe(Bool, f'ood/{CAMERA}/alert')
    kl = graph.subscribe(Float32MultiArray, f'ood/{CAMERA}/kl')
    diagnostics = graph.subscribe(DiagnosticArray, '/diagnostics')
    publisher = graph.publisher(Image, 'camera/image_raw')

    def frame(age_s: float) -> None:
        now = graph.node.get_clock().now().nanoseconds
        publisher.publish(image_msg(NORMAL[0], stamp_ns=now - int(age_s * 1e9)))

    assert graph.spin_until(lambda: len(alerts) > 5, each=lambda: frame(10.0))
    assert not kl and alerts[-1].data  # nothing judged; the unwatched camera alerts

    def too_old() -> bool:
        status = _status(diagnostics, f'vae_ood_monitor: {CAMERA}')
        return status is not None and int(_values(status)['frames_too_old']) > 0

    assert graph.spin_until(too_old, timeout=3.0, each=lambda: frame(10.0))
    status = _status(diagnostics, f'vae_ood_monitor: {CAMERA}')
    assert _level(status) == 2 and status.message.startswith('frames too old:')
    assert 'max_frame_age_s 0.5' in status.message and 'max_frame_age_s 0.5' in node.output()
    assert graph.spin_until(lambda: kl and not alerts[-1].data, each=lambda: frame(0.0))


def test_a_qos_mismatch_is_reported_by_name(graph: RosGraph, model: Path) -> None:
    node = graph.monitor(model, diagnostics_period_s=0.2)  # a reliable subscription
    diagnostics = graph.subscribe(DiagnosticArray, '/diagnostics')
    publisher = graph.publisher(Image, 'camera/image_raw', BEST_EFFORT)

    def reported() -> bool:
        status = _status(diagnostics, f'vae_ood_monitor: {CAMERA}')
        return status is not None and _values(status)['qos_incompatible'] != 'none'

    assert graph.spin_until(reported, each=lambda: publisher.publish(image_msg(NORMAL[0])))
    status = _status(diagnostics, f'vae_ood_monitor: {CAMERA}')
    assert _values(status)['qos_incompatible'] == 'RELIABILITY'
    assert _level(status) == 2 and 'qos_reliability' in status.message
    assert 'incompatible' in node.output()


#: Stops per signal in the clean-exit tests (VOOD_STOP_REPEATS=20 for a thorough check).
STOPS = int(os.environ.get('VOOD_STOP_REPEATS', '3'))


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_clean_exit_under_load(graph: RosGraph, model: Path, sig: int) -> None:
    for _ in range(STOPS):
        node = graph.monitor(model, heartbeat_period_s=0.01)
        kl = graph.subscribe(Float32MultiArray, f'ood/{CAMERA}/kl')
        feeder = Feeder(graph.publisher(Image, 'camera/image_raw'), NORMAL)
        assert graph.spin_until(lambda: len(kl) > 10, each=feeder)
        for _ in range(5):
            feeder()
        assert node.stop(sig) == 0
        output = node.output()
        assert 'Traceback' not in output and '[ERROR]' not in output, output


def test_overload_keeps_latency_bounded_counts_drops_and_holds_memory(graph: RosGraph,
                                                                      tmp_path: Path) -> None:
    """Frames far faster than inference: the newest is judged, the rest dropped and counted."""
    from ros_harness import slow_bundle

    node = graph.monitor(slow_bundle(tmp_path / 'slow.vood'), diagnostics_period_s=0.5,
                         stale_after_s=5.0)
    diagnostics = graph.subscribe(DiagnosticArray, '/diagnostics')
    publisher = graph.publisher(Image, 'camera/image_raw')
    frame = np.full((120, 160, 3), 90, np.uint8)
    sent = [0]

    def burst() -> None:
        for _ in range(5):
            publisher.publish(image_msg(frame))
            sent[0] += 1

    def camera() -> dict[str, str] | None:
        status = _status(diagnostics, f'vae_ood_monitor: {CAMERA}')
        return _values(status) if status else None

    assert graph.spin_until(lambda: camera() and int(camera()['frames_processed']) > 20,
                            each=burst, period=0.002)
    start, rss_start, sent_start, t_start = camera(), node.rss_kb(), sent[0], time.monotonic()
    graph.spin_until(lambda: False, 6.0, each=burst, period=0.002)
    graph.spin_until(lambda: False, 0.6, each=burst, period=0.002)  # one more diagnostics
    end, rss_end, elapsed = camera(), node.rss_kb(), time.monotonic() - t_start
    processed = int(end['frames_processed']) - int(start['frames_processed'])
    figures = {'publish_hz': (sent[0] - sent_start) / elapsed, 'processed_hz': processed / elapsed,
               'p50_start_ms': float(start['latency_total_p50_ms']),
               'p50_end_ms': float(end['latency_total_p50_ms']),
               'dropped': int(end['frames_dropped']), 'rss_start_kb': rss_start,
               'rss_end_kb': rss_end}
    print('overload:', figures)
    assert figures['publish_hz'] > 3 * figures['processed_hz'] > 0
    assert figures['dropped'] > processed
    assert figures['p50_end_ms'] < 3 * figures['p50_start_ms'] + 5.0
    assert rss_end - rss_start < 30_000
    assert node.alive()


def test_frozen_frames_alerts_on_a_camera_repeating_one_frame(graph: RosGraph, model: Path,
                                                              tmp_path: Path) -> None:
    from vae_ood_monitor.core.flow import FlowSpec
    from vood_testing import make_flow_bundle

    flow = make_flow_bundle(FlowSpec(stack=2), 12, 16)  # a quiet companion: never fires
    part = flow.manifest.partitions[0]
    never = Partition(part.name, part.dims, calibration_scores=np.zeros(10), threshold=1e12)
    flow_model = save_bundle(flow.with_manifest(partitions=(never,)), tmp_path / 'flow.vood')
    graph.monitor(model, frozen_frames=4, flow_model_path=str(flow_model))
    alerts = graph.subscribe(Bool, f'ood/{CAMERA}/alert')
    diagnostics = graph.subscribe(DiagnosticArray, '/diagnostics')
    publisher = graph.publisher(Image, 'camera/image_raw')
    # changing normal frames: quiet (the detector too: NORMAL is in distribution)
    assert graph.spin_until(lambda: len(alerts) > 5 and not alerts[-1].data,
                            each=Feeder(publisher, NORMAL))
    # the driver freezes: the same normal frame again and again
    assert graph.spin_until(lambda: alerts and alerts[-1].data,
                            each=Feeder(publisher, NORMAL[:1]))
    name = f'vae_ood_monitor: {CAMERA}'

    def frozen_reported() -> bool:
        status = _status(diagnostics, name)
        return status is not None and 'repeats one frame' in status.message

    assert graph.spin_until(frozen_reported, each=Feeder(publisher, NORMAL[:1]))
    status = _status(diagnostics, name)
    assert _level(status) == 2 and int(_values(status)['frames_frozen']) >= 1
    assert status.message.endswith('OOD alert (frozen)')  # checked once, not by the companion
    assert graph.spin_until(lambda: not alerts[-1].data, each=Feeder(publisher, NORMAL))
