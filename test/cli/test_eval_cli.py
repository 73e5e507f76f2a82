"""``vae-ood calibrate``, ``evaluate`` and ``info`` (cli/cmd_calibrate, cmd_eval, cmd_info).

A linear ONNX encoder stands in for a trained one: the commands only need a bundle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vae_ood_monitor.cli.main import main
from vae_ood_monitor.cli.options import ALL_SHIFTS
from vae_ood_monitor.core.bundle import load_bundle, save_bundle
from vood_testing import make_bundle, run_cli

PNG = b'\x89PNG\r\n\x1a\n'
CALIBRATION = ('--target-far', '0.05', '--window', '10')


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """Exit code, stdout and the last line of stderr (after any cleared progress bars)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, (captured.err.splitlines() or [''])[-1]


@pytest.fixture(scope='module')
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clean drives (8 x 30 frames), a labelled fog folder and a bundle calibrated on them."""
    root = tmp_path_factory.mktemp('eval_cli')
    size = ('--size', '40x30')
    assert main(['synth', str(root / 'id'), '--sequences', '8', '--frames', '30', *size]) == 0
    assert main(['synth', str(root / 'fog'), '--sequences', '2', '--frames', '10', '--seed', '50',
                 '--shift', 'fog', '--mode', 'm2', '--severity', '1', *size]) == 0
    save_bundle(make_bundle(calibrated=False), root / 'raw.vood')
    assert main(['calibrate', str(root / 'raw.vood'), '--calib', str(root / 'id'),
                 '--out', str(root / 'model.vood'), *CALIBRATION]) == 0
    return root


def test_calibrate_in_place(work: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    model = save_bundle(make_bundle(calibrated=False), tmp_path / 'model.vood')
    code, out, err = run(capsys, 'calibrate', model, '--calib', work / 'id', *CALIBRATION,
                         '--partitions', 'all', 'fog')
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == '  partition all: 4/4 dims, two_sided tail'
    assert lines[1].startswith('  partition fog: ') and 'validation AUROC' in lines[1]
    assert lines[-1] == f'wrote {model}'
    assert lines[-3].startswith('partition all: 4 dims (all), two_sided tail, 120 calibration '
                                'scores, threshold ')
    assert '; cusum window 10 delta ' in lines[-3] and lines[-2].startswith('partition fog: ')
    manifest = load_bundle(model).manifest
    assert manifest.calibrated and [p.name for p in manifest.partitions] == ['all', 'fog']
    assert all(p.cusum is not None for p in manifest.partitions)


def test_calibrate_change_partition_options(work: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # 6-frame references one frame back: half A's 4 drives keep 27 frames each past warm-up
    code, out, err = run(capsys, 'calibrate', work / 'raw.vood', '--calib', work / 'id',
                         '--out', tmp_path / 'c.vood', *CALIBRATION, '--partitions', 'all',
                         '--change', '--baseline-frames', '6', '--baseline-gap', '1',
                         '--change-offset', '0.25')
    assert code == 0, err
    part, twin = load_bundle(tmp_path / 'c.vood').manifest.partitions
    assert twin.name == 'all_change' and twin.baseline is not None
    assert (twin.baseline.frames, twin.baseline.gap) == (6, 1)
    assert twin.baseline.offset == pytest.approx(np.quantile(part.calibration_scores, 0.25))
    assert (f'partition all_change: 4 dims (all), two_sided tail, change vs the median of 6 '
            f'frames from 1 back (offset {twin.baseline.offset:.3g}), 108 calibration scores'
            in out)
    code, _, err = run(capsys, 'calibrate', work / 'raw.vood', '--calib', work / 'id',
                       '--out', tmp_path / 'd.vood', '--change-offset', '1.5')
    assert code == 2 and 'change_offset 1.5 must be a quantile level in [0, 1)' in err
    # without --change (the default) there are no change partitions
    assert [p.name for p in load_bundle(work / 'model.vood').manifest.partitions] == ['generic']


def test_calibrate_to_a_new_file(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert not load_bundle(work / 'raw.vood').manifest.calibrated  # the input is untouched
    manifest = load_bundle(work / 'model.vood').manifest
    assert manifest.calibrated and manifest.target_far == 0.05
    code, _, err = run(capsys, 'calibrate', work / 'raw.vood', '--calib', work / 'id', '--out',
                       work / 'model.vood', *CALIBRATION)
    assert code == 2 and 'exists; choose another path or pass --force' in err


def test_old_spellings_still_work_and_warn(work: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, 'calibrate', work / 'raw.vood', '--data', work / 'id', '--out',
                           tmp_path / 'old.vood', *CALIBRATION)
    assert code == 0 and '--data / --calibrate for calibration frames are deprecated' in err
    assert load_bundle(tmp_path / 'old.vood').manifest.calibrated
    code, out, err = run_cli(capsys, 'evaluate', tmp_path / 'old.vood', '--id', work / 'id',
                             '--shift', 'rain')
    assert code == 0 and '--shift is deprecated: use --shifts' in err and '| rain' in out
    code, _, err = run(capsys, 'calibrate', work / 'raw.vood', '--out', tmp_path / 'x.vood')
    assert code == 2 and 'calibrate needs --calib DATA' in err


def test_calibrate_errors(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, 'calibrate', work / 'raw.vood', '--calib', work / 'id',
                       '--partitions', 'sun')
    assert code == 2 and err.startswith("vae-ood calibrate: error: Partitions ['sun'] must be")
    code, _, err = run(capsys, 'calibrate', work / 'raw.vood', '--calib', work / 'fog')
    assert code == 2 and err.startswith('vae-ood calibrate: error: 20 calibration frames are '
                                        'too few')
    assert not load_bundle(work / 'raw.vood').manifest.calibrated


def test_evaluate_shifts(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, 'evaluate', work / 'model.vood', '--id', work / 'id',
                         '--shifts', 'rain', 'brightness')
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith('| shift | AUROC | AUPR |') and len(lines) == 5
    assert lines[0].endswith(' | OOD frames | colour baseline AUROC |')
    # rain and brightness tuned the generic partition's CUSUM: they are named shifts
    assert lines[2].startswith('| rain (named) | ')
    assert lines[3].startswith('| brightness (named) | ')
    assert ' | 240 | ' in lines[2]  # every clean frame, shifted
    assert lines[4] == ('named shifts (used in training or calibration): rain, brightness; the '
                        'others say how the detector meets the unexpected')


def test_evaluate_labelled_ood_folder_as_json(work: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, 'evaluate', work / 'model.vood', '--id', work / 'id', '--ood',
                       work / 'fog', '--json')
    assert code == 0
    data = json.loads(out)
    assert data['bundle'] == 'tiny-linear' and data['id_frames'] == 240
    assert list(data['shifts']) == ['fog']
    fog = data['shifts']['fog']['combined']
    assert fog['n_ood'] == 10 and fog['n_id'] == 240  # only the frames labelled 1
    assert 0.0 <= fog['auroc'] <= 1.0


def test_evaluate_every_shift(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, 'evaluate', work / 'model.vood', '--id', work / 'id', '--shifts',
                       'all', '--limit', 60, '--json')
    assert code == 0
    data = json.loads(out)
    assert list(data['shifts']) == list(ALL_SHIFTS) and data['id_frames'] == 60


def test_evaluate_sequences_with_a_report(work: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / 'report'
    code, out, err = run(capsys, 'evaluate', work / 'model.vood', '--id', work / 'id',
                         '--shifts', 'rain', '--sequences', '--per-kind', 1, '--out', report)
    assert code == 0, err
    assert '| all sequences | threshold | ' in out and '| rain | cusum | ' in out
    assert out.rstrip().endswith(f'report: {report / "report.md"}')
    metrics = json.loads((report / 'metrics.json').read_text())
    sequences = metrics['sequences']
    assert sequences['sequences'] == 8 + 3  # every clean drive, one per mode m1, m2, m3
    assert set(sequences['modes']) == {'threshold', 'cusum'}
    assert set(sequences['shifts']) == {'none', 'rain'}
    text = (report / 'report.md').read_text()
    assert text.startswith('# OOD evaluation of tiny-linear') and '| all sequences |' in text
    for name in ('roc.png', 'histograms.png', 'timeline_rain_m2_0.png', 'timeline_id_0.png'):
        assert (report / name).read_bytes()[:8] == PNG
    # an existing report folder is kept unless --force, then replaced
    code, _, err = run(capsys, 'evaluate', work / 'model.vood', '--id', work / 'id', '--shifts',
                       'rain', '--out', report)
    assert code == 2 and 'pass --force' in err and (report / 'timeline_id_0.png').exists()
    assert run(capsys, 'evaluate', work / 'model.vood', '--id', work / 'id', '--shifts', 'rain',
               '--out', report, '--force')[0] == 0
    assert not (report / 'timeline_id_0.png').exists()
    assert 'sequences' not in json.loads((report / 'metrics.json').read_text())


@pytest.mark.parametrize(('argv', 'message'), [
    (['--shifts', 'sun', 'rain'], "Unknown shift(s) ['sun']; choose from rain, brightness"),
    ([], 'Nothing to evaluate against: pass --ood DATA and/or --shifts NAME.'),
])
def test_evaluate_errors(work: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                         message: str) -> None:
    code, out, err = run(capsys, 'evaluate', work / 'model.vood', '--id', work / 'id', *argv)
    assert code == 2 and out == ''
    assert err.startswith(f'vae-ood evaluate: error: {message}')


def test_evaluate_needs_a_calibrated_bundle(work: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, 'evaluate', work / 'raw.vood', '--id', work / 'id', '--shifts',
                       'rain', '--limit', 20)
    assert code == 2
    assert err.startswith('vae-ood evaluate: error: ') and 'raw.vood' in err
    assert err.endswith('is not calibrated; run `vae-ood calibrate '
                        f'{work / "raw.vood"} --data ID_FRAMES` first.')


def test_info(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, 'info', work / 'model.vood')
    assert code == 0
    lines = out.splitlines()
    # the default generic partition needs schema 3
    assert lines[0].startswith(f"{work / 'model.vood'}: bundle 'tiny-linear' (schema 3")
    assert lines[1].startswith('  model   sha256 ') and lines[1].endswith('latent 4')
    assert lines[2] == ('  input   16x12 rgb, area resize, mean (0.0, 0.0, 0.0), std '
                        '(1.0, 1.0, 1.0)')
    assert lines[3].startswith('  partition generic: mahalanobis distance over 8 encoder '
                               'features (mu, logvar), upper tail, 120 calibration scores, '
                               'threshold ')
    code, out, _ = run(capsys, 'info', work / 'raw.vood')
    assert code == 0 and '  not calibrated: run `vae-ood calibrate`' in out


def test_info_json(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, 'info', work / 'model.vood', '--json')
    assert code == 0
    data = json.loads(out)
    assert data['format'] == 'vae-ood-bundle' and data['name'] == 'tiny-linear'
    (part,) = data['partitions']
    assert part['calibration_scores'] == '<120 scores>'
    assert part['cusum']['window'] == 10 and part['tail'] == 'upper'
    assert part['name'] == 'generic' and part['dims'] == [0, 1, 2, 3]
    assert part['density']['method'] == 'mahalanobis' and len(part['density']['columns']) == 8
    assert data['schema_version'] == 3
    assert data['metrics']['calibration']['split'] == [120, 120]
