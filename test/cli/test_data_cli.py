"""``vae-ood synth`` (cli/cmd_data.py): frames, labels.csv, modes, errors and exit codes."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import pytest

from vae_ood_monitor.cli.main import main
from vae_ood_monitor.data.dataset import load_frames
from vood_testing import run_cli as run


def rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / 'labels.csv', newline='') as stream:
        return list(csv.DictReader(stream))


def test_clean_drives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'clean'
    code, stdout, _ = run(capsys, 'synth', out, '--sequences', 2, '--frames', 6, '--size',
                          '40x30', '--seed', 5)
    assert code == 0 and stdout == f'wrote 12 frames to {out}\n'
    header = (out / 'labels.csv').read_text().splitlines()[0]
    assert header == 'file,label,stamp_ns,sequence,severity,shift'
    table = rows(out)
    assert [r['file'] for r in table] == [f'{i:06d}.png' for i in range(12)]
    assert {r['label'] for r in table} == {'0'} and {r['shift'] for r in table} == {'none'}
    assert [r['sequence'] for r in table] == ['5'] * 6 + ['6'] * 6
    assert [int(r['stamp_ns']) for r in table[:3]] == [0, 50_000_000, 100_000_000]
    image = cv2.imread(str(out / '000000.png'))
    assert image.shape == (30, 40, 3)
    frames = load_frames([out], 30, 40)  # one group per drive
    assert len(frames) == 12 and len(set(frames.groups)) == 2


def test_worker_processes_write_the_same_drives(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ['--sequences', 3, '--frames', 4, '--size', '40x30', '--shift', 'snow', '--seed', 9]
    assert run(capsys, 'synth', tmp_path / 'one', *args, '--workers', 1)[0] == 0
    assert run(capsys, 'synth', tmp_path / 'two', *args, '--workers', 2)[0] == 0
    assert rows(tmp_path / 'one') == rows(tmp_path / 'two')  # severities drawn in drive order
    for row in rows(tmp_path / 'one'):
        assert (tmp_path / 'one' / row['file']).read_bytes() == (
            tmp_path / 'two' / row['file']).read_bytes()
    code, _, err = run(capsys, 'synth', tmp_path / 'bad', *args, '--workers', 0)
    assert code == 2 and err == 'vae-ood synth: error: --workers 0 must be >= 1.\n'


def test_m2_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'rain'
    code, _, _ = run(capsys, 'synth', out, '--sequences', 2, '--frames', 6, '--size', '40x30',
                     '--shift', 'rain', '--mode', 'm2', '--severity', '0.7')
    assert code == 0
    table = rows(out)
    assert [r['label'] for r in table] == ['0', '0', '0', '1', '1', '1'] * 2
    assert {(r['shift'], r['severity']) for r in table} == {('rain', '0.700')}


def test_shift_without_mode_is_m1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'fog'
    assert run(capsys, 'synth', out, '--sequences', 2, '--frames', 4, '--size', '40x30',
               '--shift', 'fog')[0] == 0
    table = rows(out)
    assert {r['label'] for r in table} == {'1'}
    severities = {float(r['severity']) for r in table}  # drawn per drive from the test range
    assert len(severities) == 2 and all(0.6 <= s <= 1.0 for s in severities)


@pytest.mark.parametrize(('argv', 'message'), [
    (['--shift', 'sun'], "Unknown shift 'sun'; choose one of: rain, brightness, fog, snow, "
                         'motion_blur, noise, occlusion, objects.'),
    (['--shift', 'rain', '--severity', '2'],
     "--severity '2' must be 'train', 'test' or a number in [0, 1]."),
    (['--shift', 'rain', '--severity', 'hard'],
     "--severity 'hard' must be 'train', 'test' or a number in [0, 1]."),
    (['--mode', 'm2'], '--mode m2 needs --shift; without a shift only --mode id makes sense.'),
    (['--sequences', '0'], '--sequences 0 and --frames 2 must be >= 1.'),
])
def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           argv: list[str], message: str) -> None:
    out = tmp_path / 'bad'
    code, stdout, err = run(capsys, 'synth', out, '--frames', 2, '--size', '40x30', *argv)
    assert code == 2 and stdout == ''
    assert err == f'vae-ood synth: error: {message}\n'
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no partial folder left


def test_existing_output_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'data'
    args = ['synth', out, '--sequences', 1, '--frames', 3, '--size', '40x30']
    assert run(capsys, *args)[0] == 0
    code, _, err = run(capsys, *args, '--frames', 2)
    assert code == 2 and err.startswith('vae-ood synth: error: output ') and '--force' in err
    assert len(rows(out)) == 3  # untouched
    assert run(capsys, *args, '--frames', 2, '--force')[0] == 0
    assert len(rows(out)) == 2


def test_bad_size_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(['synth', str(tmp_path / 'x'), '--size', 'big'])
    assert exit_info.value.code == 2
    assert "size 'big' must look like 640x480" in capsys.readouterr().err
