"""``vae-ood bench`` (cli/cmd_bench.py): bundles in ONNX Runtime, training runs in eager mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vae_ood_monitor.cli.main import main
from vae_ood_monitor.core.bundle import save_bundle
from vae_ood_monitor.core.stats import STAGES
from vood_testing import make_bundle, run_cli as run, tiny_frames

SHORT = ('--frames', '20', '--warmup', '2', '--input', '160x120:rgb8')


def test_bench_a_bundle_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = save_bundle(make_bundle(120, 160), tmp_path / 'model.vood')
    code, out, err = run(capsys, 'bench', model, *SHORT, '--json')
    assert code == 0, err
    data = json.loads(out)
    assert data['config']['width'] == 160 and data['config']['height'] == 120
    assert data['config']['encoding'] == 'rgb8' and data['config']['frames'] == 20
    (result,) = data['results']
    assert result['runtime'] == 'onnxruntime' and result['path'] == str(model)
    assert set(result['median_ms']) == set(STAGES)
    assert result['median_ms']['flow'] == 0  # a frame bundle computes no optical flow
    assert all(v > 0 for k, v in result['median_ms'].items() if k != 'flow')
    assert result['peak_rss_mb'] > 0
    assert not any('placeholder' in note for note in result['notes'])  # calibrated


def test_bench_table_compares_models(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    first = save_bundle(make_bundle(120, 160), tmp_path / 'a.vood')
    raw = save_bundle(make_bundle(120, 160, calibrated=False), tmp_path / 'b.vood')
    code, out, _ = run(capsys, 'bench', first, raw, '--frames', 10, '--warmup', 0, '--input',
                       '160x120:jpeg', '--no-isolate')
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == ('input 160x120 jpeg, 1 thread(s), 10 frames after 0 warm-up; overhead '
                        '= (decode + preprocess [+ flow] + scoring) / inference')
    assert lines[1].startswith('| model | runtime | decode |')
    rows = [line for line in lines if line.startswith('| tiny-linear | onnxruntime/cpu |')]
    assert len(rows) == 2 and ' | 1.0x | ' in rows[0]
    assert lines[-1] == ('note (tiny-linear): uncalibrated bundle: placeholder thresholds '
                         '(timing only)')


def test_bench_a_training_run_in_eager_mode(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip('torch')
    from vae_ood_monitor.train.trainer import train, TrainConfig

    run_dir = tmp_path / 'tinyrun'
    train(tiny_frames(64), run_dir, TrainConfig(preset='tiny', epochs=1, threads=1, amp='off'),
          progress=False)
    code, out, err = run(capsys, 'bench', run_dir, *SHORT, '--json', '--no-isolate')
    assert code == 0, err
    (result,) = json.loads(out)['results']
    assert result['runtime'] == 'pytorch-eager' and result['name'] == 'tinyrun (eager)'
    assert result['size_bytes'] > 0 and result['parameters'] > 0
    assert 'uncalibrated bundle: placeholder thresholds (timing only)' in result['notes']


def test_bench_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = save_bundle(make_bundle(120, 160), tmp_path / 'model.vood')
    with pytest.raises(SystemExit) as exit_info:
        main(['bench', str(model), '--input', 'large'])
    assert exit_info.value.code == 2
    assert "--input 'large' must look like 640x480:rgb8" in capsys.readouterr().err
    code, _, err = run(capsys, 'bench', model, '--frames', 5)
    assert code == 2 and err == ('vae-ood bench: error: frames 5 must be >= 10 and warmup 50 '
                                 '>= 0.\n')
    code, _, err = run(capsys, 'bench', tmp_path / 'missing.vood', *SHORT)
    assert code == 2
    assert err.startswith(f"vae-ood bench: error: Benchmark of '{tmp_path / 'missing.vood'}' "
                          'failed: BundleError: ')


def test_bench_times_the_flow_stage_of_a_flow_bundle(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from vae_ood_monitor.core.flow import FlowSpec
    from vood_testing import make_flow_bundle

    flow = save_bundle(make_flow_bundle(FlowSpec(stack=3), 60, 80), tmp_path / 'flow.vood')
    frame = save_bundle(make_bundle(120, 160), tmp_path / 'frame.vood')
    code, out, err = run(capsys, 'bench', frame, flow, *SHORT)
    assert code == 0, err
    header, _, frame_row, flow_row = out.splitlines()[1:5]
    assert '| flow |' in header
    column = header.split(' | ').index('flow')
    assert float(frame_row.split(' | ')[column]) == 0.0
    assert float(flow_row.split(' | ')[column]) > 0.0
