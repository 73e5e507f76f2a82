"""The ``vae-ood`` command: argparse -> command function -> library calls.

Subcommands live in small modules that import heavy layers (torch, rosbags, matplotlib) only
inside the command that needs them, so ``vae-ood --help`` and the robot-side commands stay fast.
Library errors (:class:`VaeOodError`) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from vae_ood_monitor import __version__
from vae_ood_monitor.cli import (cmd_bench, cmd_calibrate, cmd_compress, cmd_data, cmd_demo,
                                 cmd_eval, cmd_info, cmd_replay, cmd_table, cmd_train)
from vae_ood_monitor.core.errors import VaeOodError

__all__ = ['build_parser', 'main']

#: Exit codes: 0 success, 1 a check failed (e.g. a regression comparison), 2 bad input.
EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

_MODULES = (cmd_data, cmd_train, cmd_calibrate, cmd_eval, cmd_info, cmd_bench, cmd_compress,
            cmd_replay, cmd_demo)
#: Research tools, apart from the everyday commands: ``vae-ood research COMMAND``.
_RESEARCH = (cmd_table,)


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser (one subparser per command)."""
    parser = argparse.ArgumentParser(
        prog='vae-ood', description='Train, compress, calibrate, evaluate and replay VAE-based '
        'out-of-distribution monitors for robot cameras.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    parser.add_argument('-v', '--verbose', action='store_true', help='log more detail')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for module in _MODULES:
        module.register(commands)
    research = commands.add_parser(
        'research', help="research tools (the paper's compression table)",
        description='Tools that reproduce the studies behind the defaults; not needed to '
        'build, deploy or test a monitor.')
    tools = research.add_subparsers(dest='tool', metavar='TOOL', required=True)
    for module in _RESEARCH:
        module.register(tools)
    # the research tools' old top-level spellings: still accepted for a release, with a warning
    hidden = argparse.ArgumentParser(add_help=False)
    old = hidden.add_subparsers(dest='command')
    for module in _RESEARCH:
        module.register(old)
    for name, sub in old.choices.items():
        sub.set_defaults(deprecated=f'vae-ood {name} is deprecated: use vae-ood research {name}')
        commands._name_parser_map[name] = sub  # parsed, but not listed in the help
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vae-ood`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, 'deprecated', None):
        print(f'warning: {args.deprecated}', file=sys.stderr)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(levelname)s %(name)s: %(message)s')
    try:
        return int(args.func(args) or EXIT_OK)
    except VaeOodError as err:
        print(f'vae-ood {args.command}: error: {err}', file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f'vae-ood {args.command}: interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == '__main__':
    sys.exit(main())
