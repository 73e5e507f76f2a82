"""``vae-ood demo --quick`` (cli/cmd_demo.py): the whole workflow end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from vae_ood_monitor.cli.main import main
from vae_ood_monitor.cli.options import ALL_SHIFTS
from vae_ood_monitor.core.bundle import load_bundle


@pytest.mark.slow
def test_quick_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip('torch')
    work = tmp_path / 'demo'
    assert main(['demo', '--quick', '--work', str(work)]) == 0
    out = capsys.readouterr().out
    assert '1/7 synthesising road scenes' in out and '] done' in out
    table = out.split('Teacher, frame-level detection per test-range shift ("named": augmented '
                      'in training or used by calibration; the others were never shown to the '
                      'detector):\n')[1].splitlines()
    assert table[0].startswith('| shift | AUROC |')
    assert table[0].endswith(' | colour baseline AUROC |')  # the built-in baseline beside
    labels = [line.split(' | ')[0][2:] for line in table[2:2 + len(ALL_SHIFTS)]]
    # the shifts that training augments come first, marked; then those it never saw
    assert labels[:2] == ['rain (named)', 'brightness (named)']
    rows = {label.removesuffix(' (named)'): line
            for label, line in zip(labels, table[2:2 + len(ALL_SHIFTS)])}
    assert sorted(rows) == sorted(ALL_SHIFTS) and len(rows) == len(ALL_SHIFTS)
    for row in rows.values():
        assert 0.0 <= float(row.split(' | ')[1]) <= 1.0
        assert 0.0 <= float(row.split(' | ')[-1].rstrip(' |')) <= 1.0  # the baseline's AUROC
    assert float(rows['rain'].split(' | ')[1]) > 0.8  # the tiny model still sees heavy rain
    assert '| all sequences | cusum | ' in out
    assert "2/7 training the 'tiny' preset (the teacher)" in out
    assert '4/7 compressing: distilling student-w0.25-stem24-int8 from the teacher' in out
    model = load_bundle(work / 'model.vood')
    assert model.manifest.calibrated and model.manifest.model.latent_dim == 8
    # the default alert: the generic partition over the activation statistics
    (generic,) = model.manifest.partitions
    assert generic.name == 'generic' and generic.density is not None
    assert generic.density.groups == ('stats',) and generic.cusum is not None
    assert model.manifest.schema_version == 3
    assert 'colour_baseline' in model.manifest.metrics['calibration']
    report = (work / 'report' / 'report.md').read_text()
    assert report.startswith('# Demo evaluation: teacher (demo-tiny)') and '## Sequences' in report
    assert (work / 'report' / 'metrics.json').is_file()
    # the lean bundle: a distilled int8 student, calibrated with the same default alert
    lean = load_bundle(work / 'lean.vood')
    assert lean.manifest.model.precision.value == 'int8' and lean.manifest.calibrated
    assert lean.manifest.input.height == model.manifest.input.height
    assert lean.manifest.model.macs < model.manifest.model.macs / 2
    assert [p.name for p in lean.manifest.partitions] == ['generic']
    # it inherits the teacher's training record: the teacher's named shifts stay named
    assert lean.manifest.provenance['train']['augment'] == ['rain', 'brightness']
    assert lean.manifest.provenance['distillation']['augment'] == ['rain', 'brightness']
    assert (work / 'report_lean' / 'report.md').read_text().startswith(
        '# Demo evaluation: lean (demo-tiny-lean)')
    side = out.split('Teacher and lean bundle side by side')[1].splitlines()[1:]
    assert side[0] == '| | teacher (demo-tiny) | lean (demo-tiny-lean) |'
    cells = {line.split(' | ')[0][2:]: line.split(' | ')[1:] for line in side[2:] if line}
    assert 'x faster' in cells['full path ms, median (p99)'][1]
    assert {f'AUROC {s}' for s in ALL_SHIFTS} <= {k.removesuffix(' (named)') for k in cells}
    assert cells['AUROC rain (named)'][1].split(' (')[1].startswith(('+', '-'))  # the change
    assert 'false alarms in' in cells['sequences, cusum'][1]
    assert (work / 'teacher_vs_lean.md').read_text().startswith('| | teacher (demo-tiny) |')
    assert 'Stage times: synthesise ' in out
    assert out.rstrip().endswith(f'{work / "report_lean" / "report.md"}')


def test_demo_keeps_an_existing_work_folder(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / 'demo').mkdir()
    (tmp_path / 'demo' / 'keep.txt').write_text('mine')
    assert main(['demo', '--quick', '--work', str(tmp_path / 'demo')]) == 2
    assert 'exists; choose another path or pass --force' in capsys.readouterr().err
    assert (tmp_path / 'demo' / 'keep.txt').read_text() == 'mine'
