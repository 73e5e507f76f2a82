"""``vae-ood train`` and ``vae-ood export`` (cli/cmd_train.py) on synthetic folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vae_ood_monitor.cli.main import main
from vae_ood_monitor.core.bundle import load_bundle
from vood_testing import run_cli as run, TINY_TRAIN


@pytest.fixture(scope='module')
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training drives (4 x 24 frames), held-out drives (8 x 30) and a run trained by the CLI."""
    root = tmp_path_factory.mktemp('train_cli')
    size = ('--size', '40x30')
    assert main(['synth', str(root / 'train'), '--sequences', '4', '--frames', '24', *size]) == 0
    assert main(['synth', str(root / 'calib'), '--sequences', '8', '--frames', '30', '--seed',
                 '100', *size]) == 0
    assert main(['train', str(root / 'train'), '--out', str(root / 'run'), *TINY_TRAIN]) == 0
    return root


def test_train_writes_a_complete_run(work: Path) -> None:
    meta = json.loads((work / 'run' / 'run.json').read_text())
    assert meta['complete'] is True and meta['preset'] == 'tiny' and meta['world_size'] == 1
    assert meta['config']['epochs'] == 1 and meta['data']['frames'] == 96
    assert [h['epoch'] for h in meta['history']] == [1]
    assert (work / 'run' / 'model.pt').is_file()
    # guided dims by default: one per augmented shift
    assert meta['config']['guide'] == ['rain', 'brightness']
    assert meta['config']['guide_weight'] == 1000.0 and 'guide_error' in meta['history'][0]


def test_train_guide_options(work: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(capsys, 'train', work / 'train', '--out', tmp_path / 'rain', *TINY_TRAIN,
                     '--limit', 48, '--guide', 'rain', '--guide-weight', 10)
    meta = json.loads((tmp_path / 'rain' / 'run.json').read_text())
    assert code == 0 and meta['config']['guide'] == ['rain']
    assert meta['config']['guide_weight'] == 10.0
    code, _, _ = run(capsys, 'train', work / 'train', '--out', tmp_path / 'free', *TINY_TRAIN,
                     '--limit', 48, '--no-guide')
    meta = json.loads((tmp_path / 'free' / 'run.json').read_text())
    assert code == 0 and meta['config']['guide'] == []
    assert 'guide_error' not in meta['history'][0]
    for name, says in (('rain', 'frames, guided dims: rain (dim 0)\n'), ('free', 'frames\n')):
        assert run(capsys, 'export', tmp_path / name, '--out', tmp_path / f'{name}.vood')[0] == 0
        code, out, _ = run(capsys, 'info', tmp_path / f'{name}.vood')
        assert code == 0 and out.endswith(says)
    code, _, err = run(capsys, 'train', work / 'train', '--out', tmp_path / 'bad', *TINY_TRAIN,
                       '--guide', 'fog')
    assert code == 2 and "guide ['fog'] must name distinct shifts of augment" in err
    assert not (tmp_path / 'bad').exists()


def test_train_prints_a_summary(work: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, 'train', work / 'train', '--out', tmp_path / 'run', *TINY_TRAIN,
                       '--limit', 48, '--no-augment', '--seed', 3)
    assert code == 0
    assert out.startswith(f'trained tiny on 48 frames -> {tmp_path / "run"} (final loss ')
    meta = json.loads((tmp_path / 'run' / 'run.json').read_text())
    assert meta['config']['augment'] == [] and meta['config']['seed'] == 3
    assert meta['config']['guide'] == []  # nothing augmented, nothing to guide
    # the augmentation is off, the epoch is still chosen by the validation-shift probe
    assert meta['selection']['rule'] == 'detection' and meta['selection']['epoch'] == 1
    assert out.splitlines()[1].startswith('kept epoch 1 of 1 (best validation-shift AUROC: '
                                          'rain ')


def test_train_an_ensemble_and_export_it(work: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, 'train', work / 'train', '--out', tmp_path / 'run', *TINY_TRAIN,
                       '--limit', 48, '--members', 2, '--seed', 3)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == 'member 1/2 (seed 3)' and lines[1] == 'member 2/2 (seed 4)'
    assert lines[2] == (f'trained an ensemble of 2 tiny models on 48 frames -> '
                        f'{tmp_path / "run"} (latent 16 = 2 x 8)')
    assert lines[3].startswith('member 0 (seed 3): kept epoch 1 of 1')
    assert lines[4].startswith('member 1 (seed 4): kept epoch 1 of 1')
    code, out, _ = run(capsys, 'export', tmp_path / 'run', '--out', tmp_path / 'ens.vood')
    assert code == 0 and load_bundle(tmp_path / 'ens.vood').manifest.model.latent_dim == 16
    code, out, _ = run(capsys, 'info', tmp_path / 'ens.vood')
    assert code == 0 and 'latent 16' in out
    assert ('trained preset tiny, data 48 frames, an ensemble of 2 seeds (3, 4), guided dims: '
            'rain (dim 0), brightness (dim 1) of each model') in out
    code, _, err = run(capsys, 'train', work / 'train', '--out', tmp_path / 'run', *TINY_TRAIN,
                       '--members', 3, '--resume')
    assert code == 2 and 'ensemble of 2 members, not 3; resume it with the same --members' in err


def test_train_selection_options(work: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, 'train', work / 'train', '--out', tmp_path / 'run', *TINY_TRAIN,
                       '--select', 'last')
    assert code == 0 and out.splitlines()[1] == 'kept epoch 1 of 1 (the last)'
    code, out, _ = run(capsys, 'train', work / 'train', '--out', tmp_path / 'fog', *TINY_TRAIN,
                       '--select-shifts', 'fog')
    assert code == 0 and 'fog ' in out.splitlines()[1] and 'rain' not in out.splitlines()[1]
    code, _, err = run(capsys, 'train', work / 'train', '--out', tmp_path / 'bad', *TINY_TRAIN,
                       '--select-shifts', 'hail')
    assert code == 2 and "select_shifts ['hail']: unknown shift" in err
    assert not (tmp_path / 'bad').exists()


def test_train_refuses_an_existing_out(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (work / 'run' / 'model.pt').read_bytes()
    code, _, err = run(capsys, 'train', work / 'train', '--out', work / 'run', *TINY_TRAIN)
    assert code == 2
    assert err == (f"vae-ood train: error: Output {str(work / 'run')!r} exists; choose another "
                   'path or pass --force to overwrite it.\n')
    assert (work / 'run' / 'model.pt').read_bytes() == before


def test_train_unknown_preset(work: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, 'train', work / 'train', '--out', tmp_path / 'run', '--preset',
                       'huge')
    assert code == 2
    assert err == ("vae-ood train: error: Unknown preset 'huge'; choose one of: tiny, default, "
                   'paper, flow, flow-tiny.\n')
    assert not (tmp_path / 'run').exists()


def test_export(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'model.vood'
    code, stdout, _ = run(capsys, 'export', work / 'run', '--out', out)
    assert code == 0
    assert stdout.startswith(f'exported {out} (') and stdout.endswith('not calibrated yet)\n')
    bundle = load_bundle(out)
    assert bundle.name == 'run' and not bundle.manifest.calibrated
    assert bundle.manifest.model.latent_dim == 8 and bundle.manifest.provenance['preset'] == 'tiny'
    assert f'sha256 {bundle.short_hash}' in stdout
    code, _, err = run(capsys, 'export', work / 'run', '--out', out, '--name', 'other')
    assert code == 2 and 'exists' in err and load_bundle(out).name == 'run'
    assert run(capsys, 'export', work / 'run', '--out', out, '--name', 'other', '--force')[0] == 0
    assert load_bundle(out).name == 'other'


def test_export_of_a_missing_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, 'export', tmp_path / 'nothing', '--out', tmp_path / 'm.vood')
    assert code == 2
    assert err == (f"vae-ood export: error: {str(tmp_path / 'nothing')!r} is not a training run "
                   '(no run.json or ensemble.json); pass the directory given to '
                   '`vae-ood train --out`.\n')
    assert not (tmp_path / 'm.vood').exists()


def test_export_and_calibrate(work: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'calibrated.vood'
    code, stdout, err = run(capsys, 'export', work / 'run', '--out', out, '--calib',
                            work / 'calib', '--target-far', 0.05, '--window', 10)
    assert code == 0, err
    # the default alert: the generic partition over the exported activation statistics
    manifest = load_bundle(out).manifest
    stats = manifest.model.stats_dim
    assert stats > 0
    assert (f'  partition generic: mahalanobis distance over {stats} encoder features '
            '(stats)') in stdout
    assert '  partition generic: window 10, CUSUM delta ' in stdout
    assert stdout.endswith(', calibrated)\n')
    assert manifest.calibrated and manifest.target_far == 0.05
    (part,) = manifest.partitions
    assert part.name == 'generic' and len(part.density.columns) == stats
    assert part.calibration_scores.size == 120 and part.cusum.window == 10
    assert manifest.metrics['calibration']['frames'] == 240


def test_compress_builds_the_chosen_candidates_and_resumes(work: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    out = tmp_path / 'compress'
    assert main(['synth', str(tmp_path / 'val'), '--sequences', '3', '--frames', '20', '--seed',
                 '200', '--size', '40x30']) == 0
    argv = ['compress', work / 'run', '--data', work / 'train', '--calib', work / 'calib',
            '--val', tmp_path / 'val', '--out', out, '--candidates', 'student-w0.5-int8',
            '--shifts', 'rain', 'fog', '--transfer', tmp_path / 'val',
            '--distill-augment', 'noise', 'fog', '--distill-augment-range', 'train',
            '--epochs', 1, '--bench-frames', 10, '--partitions', 'all', '--target-far', 0.05,
            '--no-progress']
    code, text, err = run(capsys, *argv)
    assert code == 0, err
    assert 'distilling on 96 frames of --data and 60 of --transfer' in text
    assert sorted(p.name for p in (out / 'candidates').glob('*.vood')) == [
        'student-w0.5-int8.vood', 'teacher-fp32.vood']
    search = json.loads((out / 'search.json').read_text())
    assert [r['spec']['name'] for r in search['rows']] == ['teacher-fp32', 'student-w0.5-int8']
    assert set(search['rows'][1]['auroc']) == {'rain', 'fog'}
    assert load_bundle(out / 'lean.vood').manifest.calibrated
    assert (out / 'pareto.md').is_file() and 'lean detector:' in text
    code, text, err = run(capsys, *argv, '--resume')
    assert code == 0, err
    assert 'student-w0.5-int8: AUROC' in text and 'reused' in text


def test_compress_rejects_an_unknown_candidate(work: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, 'compress', work / 'run', '--data', work / 'train', '--calib',
                       work / 'calib', '--out', tmp_path / 'c', '--candidates', 'student-w9')
    assert code != 0 and "Unknown candidate(s) ['student-w9']" in err
    assert not (tmp_path / 'c').exists()
    code, _, err = run(capsys, 'compress', work / 'run', '--data', work / 'train', '--calib',
                       work / 'calib', '--out', tmp_path / 'c', '--distill-augment', 'lava')
    assert code != 0 and "Unknown shift(s) ['lava'] in --distill-augment" in err


def test_compress_calibrates_the_deployed_bundle_on_whole_sequences(
        work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # without --val the search calibrates on the first half of each 30-frame drive (15 frames:
    # too short for a window-10 sequential test); lean.vood is calibrated on them whole
    out = tmp_path / 'compress'
    code, text, err = run(capsys, 'compress', work / 'run', '--data', work / 'train', '--calib',
                          work / 'calib', '--out', out, '--candidates', 'student-w0.5-int8',
                          '--shifts', 'rain', '--epochs', 1, '--bench-frames', 10,
                          '--target-far', 0.05, '--window', 10, '--no-progress')
    assert code == 0, err
    searched = load_bundle(out / 'candidates' / 'student-w0.5-int8.vood').manifest
    assert all(p.cusum is None for p in searched.partitions)
    assert 'calibrating ' in text and ' on all of --calib for lean.vood' in text
    lean = load_bundle(out / 'lean.vood').manifest
    assert lean.metrics['calibration']['frames'] == 240
    assert lean.partitions and all(p.cusum is not None for p in lean.partitions)


def test_train_and_calibrate_straight_from_ros2_bags(work: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for name, folder in (('train_bag', 'train'), ('calib_bag', 'calib')):
        assert main(['bag', str(work / folder), '--out', str(tmp_path / name), '--topic',
                     '/front/image_raw']) == 0
    assert main(['train', str(tmp_path / 'train_bag'), '--out', str(tmp_path / 'run'),
                 *TINY_TRAIN]) == 0
    meta = json.loads((tmp_path / 'run' / 'run.json').read_text())
    assert meta['data']['frames'] == 96
    capsys.readouterr()
    code, out, err = run(capsys, 'export', tmp_path / 'run', '--out', tmp_path / 'm.vood',
                         '--calib', f'{tmp_path / "calib_bag"}:/front/image_raw')
    assert code == 0, err
    assert load_bundle(tmp_path / 'm.vood').manifest.partitions
    code, out, err = run(capsys, 'evaluate', tmp_path / 'm.vood', '--id', tmp_path / 'calib_bag',
                         '--ood', f'{tmp_path / "train_bag"}:/front/image_raw', '--json')
    assert code == 0, err
    assert 'train_bag:/front/image_raw' in json.loads(out)['shifts']
    code, out, err = run(capsys, 'calibrate', tmp_path / 'm.vood', '--calib',
                         f'{tmp_path / "calib_bag"}:/rear/image_raw')
    assert code == 2 and "Topic '/rear/image_raw' is not in bag" in err
