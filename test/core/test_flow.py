"""Flow input: Farneback fields, stacking, stream gaps, training/run-time parity, flow bundles."""

from __future__ import annotations

import numpy as np
import pytest

from vae_ood_monitor.core.bundle import Bundle
from vae_ood_monitor.core.errors import BundleError, ConfigError
from vae_ood_monitor.core.flow import (flow_field, flow_stacks, FlowBatcher, FlowSpec,
                                       FlowStacker, grey)
from vae_ood_monitor.core.manifest import Manifest, Partition
from vae_ood_monitor.core.monitor import FROZEN, Monitor, MonitorConfig
from vae_ood_monitor.core.preprocess import resize_image
from vae_ood_monitor.data.dataset import FrameArray
from vae_ood_monitor.data.flowdata import flow_frames, model_inputs

from vood_testing import make_bundle, make_flow_bundle, moving_frames

PERIOD = 50_000_000  # 20 fps


def _greys(count: int, step: int = 8) -> list[np.ndarray]:
    return [grey(resize_image(f, 80, 60)) for f in moving_frames(count, step=step)]


@pytest.mark.parametrize('kwargs', [{'stack': 1}, {'stack': 13}, {'stack': 2.5},
                                    {'components': 'z'}, {'max_displacement': 0},
                                    {'max_gap_s': -1}])
def test_flow_spec_refuses_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        FlowSpec(**kwargs)


def test_flow_spec_round_trip_and_foreign_farneback_settings() -> None:
    spec = FlowSpec(stack=4, components='xy', max_displacement=3.0, max_gap_s=0.2)
    assert spec.channels == 8
    assert FlowSpec.from_dict(spec.to_dict()) == spec
    foreign = {**spec.to_dict(), 'farneback': [0.5, 3, 15, 3, 5, 1.2]}
    with pytest.raises(ConfigError, match='differ'):
        FlowSpec.from_dict(foreign)


def test_flow_field_measures_a_known_pan() -> None:
    first, second = _greys(2)  # 8 px at 640x480 = 1 px at 80x60, to the right
    field = flow_field(first, second, FlowSpec(components='xy'))
    assert field.shape == (60, 80, 2) and field.dtype == np.uint8
    centre = field[10:-10, 10:-10].astype(float) - 128
    scale = 4.0 / 127.5  # uint8 levels -> pixels
    assert np.median(centre[..., 0]) * scale == pytest.approx(1.0, abs=0.15)
    assert abs(np.median(centre[..., 1]) * scale) < 0.15
    x_only = flow_field(first, second, FlowSpec())
    np.testing.assert_array_equal(x_only[..., 0], field[..., 0])


def test_stacker_fills_then_slides() -> None:
    spec = FlowSpec(stack=3)
    stacker = FlowStacker(spec)
    greys = _greys(6)
    ready = [stacker.push(g, i * PERIOD) for i, g in enumerate(greys)]
    assert ready == [False, False, False, True, True, True]
    assert stacker.stack.shape == (60, 80, 3)
    # the newest field is last: the stack after frame 5 is the one after frame 4 moved on
    fields = [flow_field(a, b, spec) for a, b in zip(greys, greys[1:])]
    np.testing.assert_array_equal(stacker.stack, np.concatenate(fields[-3:], axis=2))


@pytest.mark.parametrize('jump', [int(0.6e9), 0, -PERIOD])
def test_stacker_restarts_at_a_gap_or_a_step_back(jump: int) -> None:
    spec = FlowSpec(stack=2, max_gap_s=0.5)
    stacker = FlowStacker(spec)
    greys = _greys(8)
    stamps = [0, PERIOD, 2 * PERIOD, 3 * PERIOD]
    stamps += [stamps[-1] + jump + k * PERIOD for k in range(4)]
    ready = [stacker.push(g, s) for g, s in zip(greys, stamps)]
    # after the jump, two more frames are needed before the stack is whole again
    assert ready == [False, False, True, True, False, False, True, True]
    assert stacker.restarts == 1


def test_flow_stacks_names_the_frames_that_complete_stacks() -> None:
    greys = _greys(7)
    stamps = np.arange(7) * PERIOD
    stamps[4:] += 10 ** 9  # a one-second gap before frame 4
    stacks, index = flow_stacks(greys, stamps, FlowSpec(stack=2))
    assert index.tolist() == [2, 3, 6]
    assert stacks.shape == (3, 60, 80, 2)


def test_training_and_runtime_flow_agree_exactly() -> None:
    """Stacks made from stored frames (training) == what the Monitor feeds the encoder."""
    spec = FlowSpec(stack=3)
    frames = moving_frames(9)
    stamps = np.arange(9, dtype=np.int64) * PERIOD
    stamps[6:] += 10 ** 9  # a gap: both paths restart there
    stored = FrameArray(np.stack([resize_image(f, 80, 60) for f in frames]),
                        np.zeros(9, np.int8), stamps, np.zeros(9, np.int32), ('drive',))
    bundle = make_flow_bundle(spec, 60, 80)
    training = model_inputs(stored, bundle.manifest)
    fed = []

    class Recorder:
        def encode(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            fed.append(batch.copy())
            return np.zeros((1, 4), np.float32), np.zeros((1, 4), np.float32)

    monitor = Monitor(bundle, encoder=Recorder())
    decisions = [monitor.process(f, int(s)) for f, s in zip(frames, stamps)]
    assert [d.ready for d in decisions] == [False] * 3 + [True] * 3 + [False] * 3
    assert len(training) == len(fed) == 3
    expected = FlowBatcher(60, 80, spec).batch(training.images)
    np.testing.assert_array_equal(np.concatenate(fed), expected)
    assert monitor.flow_restarts('camera') == 1


def test_monitor_reports_flow_as_its_own_stage_and_keeps_the_alert_while_filling() -> None:
    spec = FlowSpec(stack=2)
    bundle = make_flow_bundle(spec, 60, 80)
    # calibrated so that every stack alerts: the threshold below any KL
    part = bundle.manifest.partitions[0]
    low = type(part)(part.name, part.dims, calibration_scores=np.zeros(10), threshold=-1.0)
    monitor = Monitor(bundle.with_manifest(partitions=(low,)))
    frames = moving_frames(6)
    decisions = [monitor.process(f, i * PERIOD) for i, f in enumerate(frames)]
    assert [d.ready for d in decisions] == [False, False, True, True, True, True]
    assert not decisions[0].alert and decisions[2].alert
    assert decisions[0].partitions == () and decisions[0].score == 0.0
    assert all(d.latency.flow > 0 for d in decisions[1:])
    assert decisions[0].latency.inference == 0
    # a gap restarts the stack; the latched alert stands while it refills
    after = monitor.process(frames[0], 10 * 10 ** 9)
    assert not after.ready and after.alert
    frame_monitor = Monitor(make_bundle())
    assert frame_monitor.process(frames[0], 0).latency.flow == 0


def test_flow_manifest_round_trip_and_kind_checks() -> None:
    bundle = make_flow_bundle(FlowSpec(stack=4), 15, 20)
    data = bundle.manifest.to_dict()
    assert data['kind'] == 'flow' and data['schema_version'] == 4
    manifest = Manifest.from_dict(data)
    assert manifest.flow == FlowSpec(stack=4) and manifest.kind == 'flow'
    assert manifest.input_shape == (1, 4, 15, 20)
    assert make_bundle().manifest.kind == 'frame'
    with pytest.raises(BundleError, match='schema version 3'):
        Manifest.from_dict({**data, 'schema_version': 3})
    with pytest.raises(BundleError, match='together'):
        Manifest.from_dict({k: v for k, v in data.items() if k != 'flow'})
    with pytest.raises(BundleError, match='kind'):
        Manifest.from_dict({**data, 'kind': 'radar'})


def test_flow_bundle_runs_in_onnx_runtime(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from vae_ood_monitor.core.bundle import load_bundle, save_bundle

    bundle: Bundle = make_flow_bundle(FlowSpec(stack=3), 60, 80)
    loaded = load_bundle(save_bundle(bundle, tmp_path / 'flow.vood'))
    monitor = Monitor(loaded)
    decisions = [monitor.process(f, i * PERIOD) for i, f in enumerate(moving_frames(5))]
    assert [d.ready for d in decisions] == [False] * 3 + [True] * 2
    assert np.isfinite(decisions[-1].score) and decisions[-1].score > 0


def test_flow_frames_needs_sequences_long_enough() -> None:
    from vae_ood_monitor.core.errors import DataError

    frames = FrameArray(np.stack([resize_image(f, 80, 60) for f in moving_frames(3)]),
                        np.zeros(3, np.int8), np.arange(3) * PERIOD, np.zeros(3, np.int32),
                        ('short',))
    with pytest.raises(DataError, match='consecutive frames'):
        flow_frames(frames, FlowSpec(stack=3))


def test_a_flow_companion_ors_its_alert_into_the_frame_monitor() -> None:
    spec = FlowSpec(stack=2)
    flow = make_flow_bundle(spec, 60, 80)
    part = flow.manifest.partitions[0]
    alerting = flow.with_manifest(partitions=(type(part)(
        part.name, part.dims, calibration_scores=np.zeros(10), threshold=-1.0),))
    frame_bundle = make_bundle()
    quiet_part = frame_bundle.manifest.partitions[0]
    quiet = frame_bundle.with_manifest(partitions=(type(quiet_part)(
        quiet_part.name, quiet_part.dims, calibration_scores=np.ones(10), threshold=1e9),))
    companion = Monitor(alerting)
    both = Monitor(quiet, companion=companion)
    alone = Monitor(quiet)
    frames = moving_frames(4)
    decisions = [both.process(f, i * PERIOD) for i, f in enumerate(frames)]
    singles = [alone.process(f, i * PERIOD) for i, f in enumerate(frames)]
    assert [d.alert for d in decisions] == [False, False, True, True]
    assert not any(d.alert for d in singles)
    assert decisions[2].fired == ('flow/all',)
    assert [p.name for p in decisions[2].partitions] == ['all', 'flow/all']
    assert decisions[2].score == singles[2].score  # the frame bundle's encoding
    assert decisions[2].latency.flow > 0 and decisions[2].latency.total > 0
    assert both.counts('camera').alerts == 2
    both.reset()
    assert not both.process(frames[0], 10 * PERIOD).alert  # the companion restarted too
    with pytest.raises(ConfigError, match='companion'):
        Monitor(quiet, companion=both)


def test_a_frozen_camera_is_caught_by_a_flow_monitor_while_its_stack_fills() -> None:
    spec = FlowSpec(stack=3)
    bundle = make_flow_bundle(spec, 60, 80)
    quiet = Partition('all', tuple(range(4)), calibration_scores=np.linspace(0, 1, 50),
                      threshold=1e9)
    monitor = Monitor(bundle.with_manifest(partitions=(quiet,)),
                      MonitorConfig(frozen_frames=2))
    frame = moving_frames(1)[0]
    first, second = (monitor.process(frame, i * PERIOD) for i in range(2))
    assert not first.alert and not second.ready
    assert second.alert and second.fired == (FROZEN,)


def test_a_companion_leaves_the_frozen_check_to_the_primary() -> None:
    flow = Monitor(make_flow_bundle(FlowSpec(stack=2), 60, 80), MonitorConfig(frozen_frames=3))
    with pytest.raises(ConfigError, match='frozen-stream check runs on the primary monitor'):
        Monitor(make_bundle(), MonitorConfig(frozen_frames=3), companion=flow)
