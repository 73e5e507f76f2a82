"""Helpers shared by the subcommands: progress bars, size parsing, output checks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import shutil
import sys
from typing import Any, Iterable, Iterator, TypeVar

from vae_ood_monitor.core.errors import ConfigError

__all__ = ['add_force', 'check_output', 'emit_json', 'parse_size', 'progress', 'tqdm_progress']

T = TypeVar('T')


def parse_size(text: str) -> tuple[int, int]:
    """Parse 'WIDTHxHEIGHT' (e.g. 640x480) into (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size {text!r} must look like 640x480') from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f'size {text!r} must be positive')
    return width, height


def add_force(parser: argparse.ArgumentParser) -> None:
    """Add the --force flag (overwrite existing outputs)."""
    parser.add_argument('--force', action='store_true',
                        help='overwrite the output if it exists')


def check_output(path: str | Path, force: bool, *, remove: bool = False) -> Path:
    """Refuse an existing output unless ``force``; with ``remove``, delete it now."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not force:
            raise ConfigError(f'Output {str(path)!r} exists; choose another path or pass '
                              '--force to overwrite it.')
        if remove:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    return path


def progress(iterable: Iterable[T], total: int | None = None, desc: str = '',
             unit: str = 'frame') -> Iterator[T]:
    """Iterate with a tqdm progress bar on stderr (plainly when tqdm is missing)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with every extra
        yield from iterable
        return
    yield from tqdm(iterable, total=total, desc=desc, unit=unit, mininterval=1.0,
                    leave=False, file=sys.stderr)


def tqdm_progress(iterable: Iterable[T], total: int, desc: str) -> Iterable[T]:
    """Adapter with the ``data.dataset.Progress`` signature."""
    return progress(iterable, total, f'load {Path(desc).name}')


def emit_json(data: Any) -> None:
    """Print JSON to stdout."""
    print(json.dumps(data, indent=1, default=str))
