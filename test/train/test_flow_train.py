"""The flow VAE: training on flow stacks, export as a flow bundle, compression of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.flow import FlowBatcher, FlowSpec
from vae_ood_monitor.data.dataset import FrameArray
from vae_ood_monitor.data.flowdata import flow_frames

from vood_testing import moving_frames

FLOW = FlowSpec(stack=3)


@pytest.fixture(scope='module')
def stacks() -> FrameArray:
    """Flow stacks of four 24-frame drives panning at different speeds, at 40x30."""
    images = np.concatenate([np.stack(moving_frames(24, 30, 40, step=1 + d % 2, seed=d))
                             for d in range(4)])
    frames = FrameArray(images, np.zeros(96, np.int8),
                        np.tile(np.arange(24, dtype=np.int64) * 50_000_000, 4),
                        np.repeat(np.arange(4, dtype=np.int32), 24),
                        tuple(f'drive{d}' for d in range(4)))
    return flow_frames(frames, FLOW)


@pytest.fixture(scope='module')
def flow_run(stacks: FrameArray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vae_ood_monitor.train.trainer import train, TrainConfig

    out = tmp_path_factory.mktemp('runs') / 'flow'
    train(stacks, out, TrainConfig(preset='flow-tiny', epochs=2, threads=1, amp='off',
                                   flow=FLOW), progress=False)
    return out


def test_flow_presets_train_without_frame_augmentation() -> None:
    from vae_ood_monitor.train.trainer import TrainConfig

    config = TrainConfig(preset='flow-tiny')
    assert config.augment == () and config.select == 'loss'
    assert config.get_preset().encoder.in_channels == 3
    with pytest.raises(ConfigError, match='optical flow'):
        TrainConfig(preset='flow-tiny', augment=('rain',))
    with pytest.raises(ConfigError, match='flow preset'):
        TrainConfig(preset='tiny', flow=FLOW)
    assert TrainConfig(preset='flow-tiny', flow=FlowSpec(stack=4, components='xy')
                       ).get_preset().encoder.in_channels == 8


def test_frames_are_refused_by_a_flow_preset(tmp_path: Path) -> None:
    from vae_ood_monitor.train.trainer import train, TrainConfig

    frames = FrameArray(np.zeros((40, 30, 40, 3), np.uint8), np.zeros(40, np.int8),
                        np.arange(40, dtype=np.int64), np.zeros(40, np.int32), ('a',))
    with pytest.raises(ConfigError, match='flow stacks first'):
        train(frames, tmp_path / 'run', TrainConfig(preset='flow-tiny', epochs=1, flow=FlowSpec(
            stack=4)), progress=False)


def test_flow_run_exports_a_flow_bundle_that_onnx_runtime_agrees_with(
        flow_run: Path, stacks: FrameArray) -> None:
    import torch

    from vae_ood_monitor.core.session import EncoderSession
    from vae_ood_monitor.train.export import bundle_from_run
    from vae_ood_monitor.train.runs import load_run

    info, model = load_run(flow_run)
    assert info.flow == FLOW
    bundle = bundle_from_run(flow_run)
    assert bundle.manifest.kind == 'flow' and bundle.manifest.flow == FLOW
    batch = FlowBatcher(30, 40, FLOW).batch(stacks.images[:8])
    mu, _ = EncoderSession(bundle).encode(batch)
    with torch.no_grad():
        expected, _ = model.encoder(torch.from_numpy(batch))
    np.testing.assert_allclose(mu, expected.numpy(), atol=1e-4)


def test_a_distilled_int8_student_of_a_flow_teacher_is_a_flow_bundle(
        flow_run: Path, stacks: FrameArray) -> None:
    from vae_ood_monitor.core.monitor import Monitor
    from vae_ood_monitor.evaluate.scores import encodings_of_images
    from vae_ood_monitor.train.distill import DistillConfig
    from vae_ood_monitor.train.runs import load_run
    from vae_ood_monitor.train.search import build_candidate, select_grid

    _, teacher = load_run(flow_run)
    (recipe,) = select_grid('cpu', ['student-w0.25-int8'])
    with pytest.raises(ConfigError, match='augmentation'):
        build_candidate(recipe, teacher, stacks, stacks, DistillConfig(epochs=1), flow=FLOW)
    lean, _ = build_candidate(recipe, teacher, stacks, stacks,
                              DistillConfig(epochs=1, augment=()), flow=FLOW, progress=False)
    assert lean.manifest.flow == FLOW and lean.manifest.model.precision.value == 'int8'
    rows = encodings_of_images(lean, stacks.images[:5])
    assert rows.shape == (5, lean.manifest.model.layout.width) and np.isfinite(rows).all()
    with pytest.raises(Exception, match='calibrated'):
        Monitor(lean)  # uncalibrated: the monitor refuses it before running anything
