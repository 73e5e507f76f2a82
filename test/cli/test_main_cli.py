"""The ``vae-ood`` entry point (cli/main.py) and the shared options (cli/options.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
import subprocess
import sys

import pytest

from vae_ood_monitor import __version__
from vae_ood_monitor.cli import cmd_info
from vae_ood_monitor.cli.main import build_parser, EXIT_BAD_INPUT, EXIT_INTERRUPTED, main
from vae_ood_monitor.cli.options import (add_calibration_options, ALL_SHIFTS,
                                         calibration_options)
from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.typedefs import DimSelection
from vae_ood_monitor.data.shifts import ShiftKind


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(['--version'])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f'vae-ood {__version__}'


def test_library_errors_exit_2_with_one_line(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['info', str(tmp_path / 'missing.vood')]) == EXIT_BAD_INPUT == 2
    captured = capsys.readouterr()
    assert captured.out == ''
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith('vae-ood info: error: ')
    assert 'missing.vood' in lines[0]


def test_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(_args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd_info, '_info', interrupted)
    assert main(['info', 'any.vood']) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == 'vae-ood info: interrupted\n'


def test_usage_errors_are_argparse_exits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(['no-such-command'])
    assert exit_info.value.code == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([])  # a command is required


def test_every_command_is_registered() -> None:
    commands = next(a for a in build_parser()._actions
                    if isinstance(a, argparse._SubParsersAction))
    assert {'synth', 'train', 'export', 'calibrate', 'evaluate', 'info', 'bench', 'bag', 'replay',
            'demo'} <= set(commands.choices)


def test_module_entry_point() -> None:
    result = subprocess.run([sys.executable, '-m', 'vae_ood_monitor.cli', '--version'],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout.strip() == f'vae-ood {__version__}'


def test_all_shifts_match_the_shift_kinds() -> None:
    assert list(ALL_SHIFTS) == [k.value for k in ShiftKind]


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_calibration_options(parser)
    return parser.parse_args(list(argv))


def test_calibration_options_defaults() -> None:
    options = calibration_options(_parse())
    assert options.partitions == ('generic',) and options.selection is DimSelection.LABELLED
    assert not options.change and options.generic_method == 'mahalanobis'
    assert options.target_far == 0.01 and options.sequential and options.windows == (20,)
    assert options.alarm_rate == 1e-4 and options.margin == 0.25 and options.seed == 0
    assert options.sequence_share == 0.5


def test_calibration_options_from_flags() -> None:
    options = calibration_options(_parse(
        '--target-far', '0.02', '--partitions', 'all', 'rain', '--select', 'paper',
        '--no-sequential', '--window', '10', '5', '--alarm-rate', '0.001', '--margin', '0.5',
        '--validation-shifts', 'fog', 'snow', '--seed', '3', '--sequence-share', '0.75',
        '--change'))
    assert options.target_far == 0.02 and options.partitions == ('all', 'rain')
    assert options.selection is DimSelection.PAPER and not options.sequential
    assert (options.windows, options.alarm_rate, options.margin) == ((5, 10), 1e-3, 0.5)
    assert options.seed == 3 and options.sequence_share == 0.75
    assert options.validation_shifts == ('fog', 'snow') and options.change


def test_calibration_options_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"Partitions \['sun'\] must be distinct names from"):
        calibration_options(_parse('--partitions', 'sun'))
    with pytest.raises(ConfigError, match=r'target_far 0.7 must be in \(0, 0.5\)'):
        calibration_options(_parse('--target-far', '0.7'))
