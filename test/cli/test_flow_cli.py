"""A flow bundle through the CLI: train, export with calibration, info, evaluate, bench."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vae_ood_monitor.cli.main import main
from vae_ood_monitor.cli.options import MOTION_SHIFTS
from vae_ood_monitor.data.motion import MotionKind
from vood_testing import run_cli as run

TRAIN = ('--preset', 'flow-tiny', '--flow-stack', '3', '--epochs', '1', '--threads', '1',
         '--amp', 'off', '--no-progress')


@pytest.fixture(scope='module')
def flow_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated drives, a flow run trained by the CLI and its calibrated bundle."""
    root = tmp_path_factory.mktemp('flow_cli')
    size = ('--size', '40x30')
    assert main(['synth', str(root / 'train'), '--sequences', '4', '--frames', '30', *size,
                 '--workers', '1']) == 0
    assert main(['synth', str(root / 'calib'), '--sequences', '10', '--frames', '44', '--seed',
                 '100', *size, '--workers', '1']) == 0
    assert main(['train', str(root / 'train'), '--out', str(root / 'run'), *TRAIN]) == 0
    assert main(['export', str(root / 'run'), '--out', str(root / 'flow.vood'), '--calib',
                 str(root / 'calib')]) == 0
    return root


def test_the_cli_lists_the_motion_anomalies_of_the_data_layer() -> None:
    assert MOTION_SHIFTS == tuple(k.value for k in MotionKind)


def test_train_and_export_a_calibrated_flow_bundle(flow_work: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    meta = json.loads((flow_work / 'run' / 'run.json').read_text())
    assert meta['flow']['stack'] == 3 and meta['config']['augment'] == []
    assert meta['encoder'].get('in_channels', 3) == 3 and meta['config']['select'] == 'loss'
    code, out, _ = run(capsys, 'info', flow_work / 'flow.vood')
    assert code == 0 and 'a stack of 3 Farneback fields (x)' in out
    assert 'partition generic' in out and 'two_sided tail' in out


def test_evaluate_motion_anomalies_of_a_flow_bundle(flow_work: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, 'evaluate', flow_work / 'flow.vood', '--id',
                         flow_work / 'calib', '--shifts', 'motion', '--sequences', '--json')
    assert code == 0, err
    data = json.loads(out)
    assert set(data['shifts']) == set(MOTION_SHIFTS)
    motion = data['sequences']['motion']
    assert set(motion) == set(MOTION_SHIFTS) and motion['frozen']['drives'] == 10
    # frame shifts reach a flow bundle through the flow of the shifted frames
    code, out, err = run(capsys, 'evaluate', flow_work / 'flow.vood', '--id',
                         flow_work / 'calib', '--shifts', 'fog', 'frozen')
    assert code == 0, err
    assert '| fog |' in out and '| frozen |' in out


def test_evaluate_refuses_frame_shift_sequences_of_a_flow_bundle(
        flow_work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, 'evaluate', flow_work / 'flow.vood', '--id', flow_work / 'calib',
                       '--shifts', 'fog', '--sequences')
    assert code == 2 and 'not built for flow bundles' in err


def test_train_refuses_flow_settings_for_a_frame_preset(flow_work: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    code, _, err = run(capsys, 'train', flow_work / 'train', '--out', tmp_path / 'run',
                       '--preset', 'tiny', '--flow-stack', '4')
    assert code == 2 and 'flow preset' in err


def test_compress_a_flow_teacher_into_a_lean_flow_bundle(flow_work: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from vae_ood_monitor.core.bundle import load_bundle

    out = tmp_path / 'compress'
    code, text, err = run(capsys, 'compress', flow_work / 'run', '--data', flow_work / 'train',
                          '--calib', flow_work / 'calib', '--out', out, '--candidates',
                          'student-w0.5-int8', '--shifts', 'shake', 'frozen', '--epochs', 1,
                          '--bench-frames', 10, '--no-progress')
    assert code == 0, err
    lean = load_bundle(out / 'lean.vood')
    student = load_bundle(out / 'candidates' / 'student-w0.5-int8.vood')
    assert lean.manifest.kind == student.manifest.kind == 'flow'
    assert student.manifest.model.precision.value == 'int8' and lean.manifest.calibrated
    search = json.loads((out / 'search.json').read_text())
    assert set(search['rows'][1]['auroc']) == {'shake', 'frozen'}
