"""The image-folder format: listing and decoding images, labels.csv, atomic FolderWriter.

Layout of a folder written here::

    out/000000.png  out/000001.png  ...  out/labels.csv

labels.csv has the columns ``file,label,stamp_ns`` followed by the sorted union of the extra
metadata keys of all rows (``shift``, ``severity``, ``sequence`` ...). ``label`` is ``1`` (OOD),
``0`` (in-distribution) or empty (unknown); ``stamp_ns`` is an integer or empty. Frames are
written into a sibling directory ``<out>.partial-XXXX`` that is renamed to ``out`` only when
the writer closes without error, so an interrupted run never leaves complete-looking output.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
import math
import os
from pathlib import Path
import re
import shutil
import tempfile
from typing import Any, Iterable, Mapping, TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from vae_ood_monitor.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    from types import TracebackType

    from vae_ood_monitor.data.sources import Frame

__all__ = [
    'FolderWriter',
    'IMAGE_EXTENSIONS',
    'LABELS_FILE',
    'LabelRow',
    'list_images',
    'natural_key',
    'read_labels',
    'read_rgb',
    'write_frames',
]

IMAGE_EXTENSIONS = ('.bmp', '.jpeg', '.jpg', '.png', '.tif', '.tiff', '.webp')
LABELS_FILE = 'labels.csv'
_BASE_COLUMNS = ('file', 'label', 'stamp_ns')


def natural_key(text: str) -> list[Any]:
    """Sort key that orders digit runs by value: ``frame_2`` before ``frame_10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r'(\d+)', text)]


def list_images(folder: Path, *, recursive: bool = False) -> list[str]:
    """Image files under ``folder`` as POSIX relative paths, natural-sorted, hidden ones out."""
    found = folder.rglob('*') if recursive else folder.iterdir()
    names = [path.relative_to(folder).as_posix() for path in found
             if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()]
    names = [name for name in names if not any(part.startswith('.') for part in name.split('/'))]
    return sorted(names, key=lambda name: ([natural_key(p) for p in name.split('/')], name))


def read_rgb(path: Path) -> NDArray[np.uint8] | None:
    """Decode an image file to RGB uint8 (h, w, 3); None if it is missing, empty or corrupt."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


@dataclass(frozen=True)
class LabelRow:
    """One data row of a labels.csv: the image path, its label, stamp and extra metadata."""

    line: int
    path: Path
    label: int | None
    stamp_ns: int | None
    meta: Mapping[str, str]


def read_labels(folder: str | os.PathLike[str]) -> list[LabelRow]:
    """Parse ``folder/labels.csv``, checking every row; raise DataError with the line number."""
    csv_path = Path(folder) / LABELS_FILE
    rows: list[LabelRow] = []
    with open(csv_path, newline='', encoding='utf-8-sig') as stream:
        reader = csv.reader(stream)
        header = [column.strip() for column in next(reader, [])]
        for column in ('file', 'label'):
            if column not in header:
                raise DataError(
                    f"{csv_path} line 1: missing column '{column}' (header {header}); "
                    f"the header must name at least 'file' and 'label'")
        for fields in reader:
            line = reader.line_num
            if not any(field.strip() for field in fields):
                continue
            if len(fields) > len(header):
                raise DataError(f'{csv_path} line {line}: {len(fields)} fields but the header '
                                f'has {len(header)}; quote values that contain commas')
            row = dict(zip(header, (field.strip() for field in fields)))
            rows.append(_parse_row(csv_path, line, row))
    return rows


def _parse_row(csv_path: Path, line: int, row: dict[str, str]) -> LabelRow:
    where = f'{csv_path} line {line}'
    name = row.get('file', '')
    path = csv_path.parent / name
    if not name or not path.is_file():
        raise DataError(f"{where}: listed file '{name}' does not exist in {csv_path.parent}; "
                        f'fix the row or remove it')
    label_text = row.get('label', '')
    if label_text not in ('', '0', '1'):
        raise DataError(f"{where}: label '{label_text}' is not 0, 1 or empty "
                        f'(1 = OOD, 0 = in-distribution, empty = unknown)')
    stamp_text = row.get('stamp_ns', '')
    stamp: int | None = None
    if stamp_text:
        try:
            stamp = int(stamp_text)
        except ValueError:
            stamp = -1
        if stamp < 0:
            raise DataError(f"{where}: stamp_ns '{stamp_text}' is not a non-negative integer "
                            f'(nanoseconds); fix it or leave it empty')
    meta = {'file': name}
    meta.update((key, value) for key, value in row.items()
                if key not in _BASE_COLUMNS and key and value)
    return LabelRow(line, path, int(label_text) if label_text else None, stamp, meta)


class FolderWriter:
    """Context manager that writes RGB frames and a labels.csv into a new folder atomically.

    Output goes to a temporary sibling ``<out>.partial-XXXX``; on successful exit it is renamed
    to ``out`` (replacing an existing ``out`` only then, and only with ``force=True``). On an
    exception the partial directory is removed and ``out`` is left as it was.
    """

    def __init__(self, out: str | os.PathLike[str], *, force: bool = False,
                 image_format: str = 'png') -> None:
        """Check the target; raise DataError if ``out`` exists and ``force`` is False."""
        self.out = Path(out)
        self.force = force
        self.image_format = image_format.lower().lstrip('.')
        if f'.{self.image_format}' not in IMAGE_EXTENSIONS:
            raise ConfigError(f"image_format '{image_format}' is not supported; use one of "
                              f"{', '.join(ext[1:] for ext in IMAGE_EXTENSIONS)}")
        if self.out.exists() and not force:
            raise DataError(f"output '{self.out}' exists; pass force=True / --force to overwrite "
                            f'it or choose another path')
        self._partial: Path | None = None
        self._rows: list[dict[str, str]] = []
        self._closed = False

    def __enter__(self) -> FolderWriter:
        """Create the partial directory and return the writer."""
        self._open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Publish the folder on success; discard the partial directory on an exception."""
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open(self) -> Path:
        if self._closed:
            raise DataError(f"writer for '{self.out}' is closed; create a new FolderWriter")
        if self._partial is None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._partial = Path(tempfile.mkdtemp(prefix=f'{self.out.name}.partial-',
                                                  dir=self.out.parent))
        return self._partial

    def write(self, image: NDArray[np.uint8], *, label: int | None = None,
              stamp_ns: int | None = None, **meta: str | int | float) -> str:
        """Write one RGB uint8 (h, w, 3) image; return the file name, e.g. ``000042.png``."""
        partial = self._open()
        if (not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3
                or image.shape[2] != 3):
            shape = getattr(image, 'shape', None)
            raise DataError(f"frame {len(self._rows)} for '{self.out}': expected an RGB uint8 "
                            f'(h, w, 3) array, got shape {shape} dtype '
                            f"{getattr(image, 'dtype', type(image).__name__)}")
        if label not in (None, 0, 1) or isinstance(label, float):
            raise DataError(f"frame {len(self._rows)} for '{self.out}': label {label!r} is not "
                            f'0, 1 or None')
        if stamp_ns is not None and (not isinstance(stamp_ns, (int, np.integer))
                                     or isinstance(stamp_ns, bool) or stamp_ns < 0):
            raise DataError(f"frame {len(self._rows)} for '{self.out}': stamp_ns {stamp_ns!r} "
                            f'is not a non-negative integer')
        name = f'{len(self._rows):06d}.{self.image_format}'
        row = {'file': name, 'label': '' if label is None else str(int(label)),
               'stamp_ns': '' if stamp_ns is None else str(int(stamp_ns))}
        for key, value in meta.items():
            if key in _BASE_COLUMNS:
                raise DataError(f"frame {len(self._rows)} for '{self.out}': meta key '{key}' "
                                f'is reserved; rename it')
            if isinstance(value, float) and not math.isfinite(value):
                raise DataError(f"frame {len(self._rows)} for '{self.out}': meta {key}={value} "
                                f'is not finite')
            row[key] = str(value)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(partial / name), bgr):
            raise DataError(f"could not write '{partial / name}' (disk full or no permission?)")
        self._rows.append(row)
        return name

    def close(self) -> None:
        """Write labels.csv and move the partial directory to ``out``."""
        if self._closed:
            return
        partial = self._open()
        try:
            if not self._rows:
                raise DataError(f"no frames were written to '{self.out}'; the input is empty, "
                                f'so no folder was created')
            extra = sorted({key for row in self._rows for key in row} - set(_BASE_COLUMNS))
            with open(partial / LABELS_FILE, 'w', newline='', encoding='utf-8') as stream:
                writer = csv.DictWriter(stream, fieldnames=[*_BASE_COLUMNS, *extra], restval='')
                writer.writeheader()
                writer.writerows(self._rows)
            self._publish(partial)
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def _publish(self, partial: Path) -> None:
        if not self.out.exists():
            os.rename(partial, self.out)
            return
        if not self.force:
            raise DataError(f"output '{self.out}' appeared while writing; pass force=True / "
                            f'--force to overwrite it')
        old = Path(tempfile.mkdtemp(prefix=f'{self.out.name}.old-', dir=self.out.parent))
        os.rename(self.out, old / self.out.name)
        try:
            os.rename(partial, self.out)
        except OSError:
            os.rename(old / self.out.name, self.out)
            raise
        finally:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        """Remove the partial directory; ``out`` is left untouched."""
        if self._partial is not None:
            shutil.rmtree(self._partial, ignore_errors=True)
            self._partial = None
        self._closed = True


def write_frames(out: str | os.PathLike[str], frames: Iterable[Frame], *, force: bool = False,
                 image_format: str = 'png') -> int:
    """Write frames (label, stamp and meta included) to a new folder; return how many.

    A frame's ``meta['file']`` is kept as the ``source_file`` column.
    """
    count = 0
    with FolderWriter(out, force=force, image_format=image_format) as writer:
        for frame in frames:
            meta = {('source_file' if key == 'file' else key): value
                    for key, value in frame.meta.items() if key not in _BASE_COLUMNS[1:]}
            writer.write(frame.image, label=frame.label, stamp_ns=frame.stamp_ns, **meta)
            count += 1
    return count
