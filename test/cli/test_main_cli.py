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


def _parse(*argv: str) -> argparse.Namespace:  # noqa: D103
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


def test_calibration_options_from_a_config_file_and_flags(tmp_path: Path) -> None:
    config = tmp_path / 'calibration.yaml'
    config.write_text('# research knobs\nselection: paper\nsequential: false\nwindows: [10, 5]\n'
                      'margin: 0.5\nvalidation_shifts: [fog, snow]\nseed: 3\n'
                      'sequence_share: 0.75\nchange: true\ntarget_far: 0.05\n')
    options = calibration_options(_parse('--config', str(config), '--target-far', '0.02',
                                         '--partitions', 'all', 'rain', '--alarm-rate', '0.001'))
    assert options.target_far == 0.02 and options.partitions == ('all', 'rain')  # flags win
    assert options.selection is DimSelection.PAPER and not options.sequential
    assert (options.windows, options.alarm_rate, options.margin) == ((5, 10), 1e-3, 0.5)
    assert options.seed == 3 and options.sequence_share == 0.75
    assert options.validation_shifts == ('fog', 'snow') and options.change


def test_old_calibration_flags_still_work_and_warn(capsys: pytest.CaptureFixture[str]) -> None:
    options = calibration_options(_parse('--select', 'paper', '--no-sequential', '--window',
                                         '10', '5', '--margin', '0.5', '--change'))
    assert options.selection is DimSelection.PAPER and not options.sequential
    assert (options.windows, options.margin, options.change) == ((5, 10), 0.5, True)
    err = capsys.readouterr().err
    assert '--window is deprecated' in err and "'windows' in a --config YAML" in err


def test_calibration_config_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / 'bad.yaml'
    bad.write_text('windowz: [10]\n')
    with pytest.raises(ConfigError, match=r"Unknown calibration setting\(s\) \['windowz'\]"):
        calibration_options(_parse('--config', str(bad)))
    bad.write_text('- 10\n')
    with pytest.raises(ConfigError, match='must hold a mapping'):
        calibration_options(_parse('--config', str(bad)))
    with pytest.raises(ConfigError, match='Cannot read'):
        calibration_options(_parse('--config', str(tmp_path / 'missing.yaml')))


def test_calibrate_lists_at_most_eight_options() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    shown = [a for a in commands.choices['calibrate']._actions
             if a.option_strings and a.help != argparse.SUPPRESS and '-h' not in a.option_strings]
    assert len(shown) <= 8, [a.option_strings for a in shown]


#: One spelling per idea: the spellings on the right must not be offered by any subcommand.
OLD_SPELLINGS = {
    '--calib': ('--calibrate', '--calibration'),  # held-out calibration frames
    '--shifts': ('--shift', '--select-shifts', '--validation-shifts'),  # shifts to apply
    'MODEL (positional)': ('--model',),
}


def test_options_naming_the_same_idea_share_one_spelling() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    offered = {}
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if action.help != argparse.SUPPRESS:
                for option in action.option_strings:
                    offered.setdefault(option, []).append(name)
    # synth renders drives with one shift: its singular --shift KIND is that one shift
    offered['--shift'] = [c for c in offered.get('--shift', []) if c != 'synth']
    for spelling, old in OLD_SPELLINGS.items():
        clash = {o: offered[o] for o in old if offered.get(o)}
        assert not clash, f'{clash} offered where {spelling} is the spelling'
    # calibration frames are --calib wherever a command calibrates
    for name in ('calibrate', 'export', 'compress'):
        assert name in offered['--calib'], name


def test_calibration_options_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"Partitions \['sun'\] must be distinct names from"):
        calibration_options(_parse('--partitions', 'sun'))
    with pytest.raises(ConfigError, match=r'target_far 0.7 must be in \(0, 0.5\)'):
        calibration_options(_parse('--target-far', '0.7'))


def test_research_tools_sit_apart_and_the_old_spelling_is_marked() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    listed = {action.dest for action in commands._choices_actions}
    assert 'research' in listed and 'table' not in listed
    table = ['--paper-run', 'p', '--teacher-run', 't', '--compressed', 'c', '--calib', 'x',
             '--val', 'v', '--out', 'o.md']
    args = parser.parse_args(['research', 'table', *table])
    assert args.tool == 'table' and not getattr(args, 'deprecated', None)
    old = parser.parse_args(['table', *table])
    assert old.deprecated == 'vae-ood table is deprecated: use vae-ood research table'
    assert old.func is args.func
