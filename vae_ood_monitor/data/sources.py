"""Frame sources with one interface: image folders, video files and donkeycar tubs.

Every source yields :class:`Frame` records (RGB uint8, stamp in ns, 0-based index, optional
label and string metadata). Cheap checks (existence, emptiness, labels.csv, tub manifest and
catalogs, referenced image files) run in the constructor so a CLI fails fast; decoding errors
surface during iteration. Every problem is a one-line :class:`DataError`.

Donkeycar tub v2 (``manifest.json`` + ``catalog_N.catalog`` + ``images/``): manifest.json holds
five JSON lines (inputs, types, user metadata, manifest metadata, catalog metadata with
``paths``, ``current_index``, ``max_len`` and ``deleted_indexes``); each catalog holds one JSON
record per line. A record is dropped when its ``_index`` (its position counted over all
catalogs when the field is absent) is in ``deleted_indexes``. Without manifest.json the
``catalog_*.catalog`` files are read in natural order and nothing counts as deleted, since the
deletions live only in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain, islice
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Protocol, runtime_checkable

import cv2
import numpy as np
from numpy.typing import NDArray

from vae_ood_monitor.core.errors import ConfigError, DataError
from vae_ood_monitor.data.folder import (IMAGE_EXTENSIONS, LABELS_FILE, list_images,
                                         natural_key, read_labels, read_rgb)

__all__ = [
    'FolderSource',
    'Frame',
    'FrameSource',
    'IMAGE_EXTENSIONS',
    'TubSource',
    'VIDEO_EXTENSIONS',
    'VideoSource',
    'iter_frames',
    'open_source',
]

VIDEO_EXTENSIONS = ('.avi', '.m4v', '.mjpeg', '.mkv', '.mov', '.mp4', '.mpeg', '.mpg', '.webm')
_PathLike = str | os.PathLike[str]


@dataclass(frozen=True, eq=False)
class Frame:
    """One camera frame: RGB uint8 (h, w, 3) C-contiguous image, stamp, index, label, meta.

    Frames compare by identity (``eq=False``): numpy arrays have no boolean equality.
    """

    image: NDArray[np.uint8]
    stamp_ns: int
    index: int
    label: int | None = None
    meta: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class FrameSource(Protocol):
    """Anything with a name, a length (exact, or an estimate for video) and Frame iteration."""

    name: str

    def __len__(self) -> int:
        """Return the number of frames (video: the container's frame count estimate)."""

    def __iter__(self) -> Iterator[Frame]:
        """Yield the frames in order with non-decreasing stamps."""


def _check_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise DataError(f"{what} '{path}' does not exist; check the path")
    if not path.is_dir():
        raise DataError(f"{what} '{path}' is not a directory; use open_source() for video files")


@dataclass
class _Entry:
    pos: int  # position in the full listing, drives rate-based stamps
    path: Path
    stamp_ns: int | None
    label: int | None
    meta: dict[str, str]
    where: str = ''  # for error messages, e.g. ' (in catalog_0.catalog line 3)'


class _ListSource:
    name: str
    rate_hz = 20.0
    skip_unreadable = False
    skipped: list[Path]
    _entries: list[_Entry]

    def __len__(self) -> int:
        """Return the number of listed frames (exact, before any unreadable one is skipped)."""
        return len(self._entries)

    def __iter__(self) -> Iterator[Frame]:
        """Decode the images in order; unreadable ones raise DataError or are skipped."""
        self.skipped = []
        index = 0
        for entry in self._entries:
            image = read_rgb(entry.path)
            if image is None:
                if self.skip_unreadable:
                    self.skipped.append(entry.path)
                    continue
                raise DataError(f"cannot read image '{entry.path}'{entry.where} (corrupt, empty "
                                f'or not an image); replace or delete it, or pass '
                                f'skip_unreadable=True')
            stamp = entry.stamp_ns
            if stamp is None:
                stamp = round(entry.pos * 1e9 / self.rate_hz)
            yield Frame(image, stamp, index, entry.label, entry.meta)
            index += 1


class FolderSource(_ListSource):
    """Images in a folder, natural-sorted, or in the row order of the folder's labels.csv.

    Without labels.csv, stamps are ``position / rate_hz``; hidden files (``.*``) are ignored.
    With labels.csv (see :mod:`vae_ood_monitor.data.folder`) only the listed files are read and
    rows carry their label, stamp (verbatim; ``position / rate_hz`` where empty) and metadata.
    ``len()`` is exact unless ``skip_unreadable`` drops files; those end up in ``skipped``.
    """

    def __init__(self, path: _PathLike, *, recursive: bool = False, rate_hz: float = 20.0,
                 skip_unreadable: bool = False) -> None:
        """List the folder (or parse its labels.csv); raise DataError if it has no images."""
        self.path = Path(path)
        self.name = str(path)
        if not (isinstance(rate_hz, (int, float)) and math.isfinite(rate_hz) and rate_hz > 0):
            raise ConfigError(f'rate_hz must be a positive number of frames per second, '
                              f'got {rate_hz!r}')
        self.rate_hz = float(rate_hz)
        self.skip_unreadable = skip_unreadable
        self.skipped: list[Path] = []
        _check_dir(self.path, 'image folder')
        if (self.path / LABELS_FILE).is_file():
            self._entries = [_Entry(pos, row.path, row.stamp_ns, row.label, dict(row.meta),
                                    f' (row of {LABELS_FILE} line {row.line})')
                             for pos, row in enumerate(read_labels(self.path))]
            if not self._entries:
                raise DataError(f'{self.path / LABELS_FILE} lists no images; add rows or '
                                f'delete it to read every image in the folder')
        else:
            names = list_images(self.path, recursive=recursive)
            self._entries = [_Entry(pos, self.path / n, None, None, {'file': n})
                             for pos, n in enumerate(names)]
        if not self._entries:
            raise DataError(
                f"folder '{self.path}' contains no images (looked for "
                f"{', '.join(IMAGE_EXTENSIONS)}{'' if recursive else ', not in subfolders'}); "
                f'point at the folder that holds the frames or use recursive=True')


class TubSource(_ListSource):
    """A donkeycar tub v2; deleted records are dropped, stamps come from ``_timestamp_ms``.

    ``skip_first`` drops the first N remaining records (e.g. 6 to drop a car still on the desk);
    ``skip_unreadable`` works as for :class:`FolderSource`.
    Stamps that step backwards (wall-clock adjustments) are held at the previous stamp. Meta
    carries ``file``, ``tub_index`` and ``user/angle``, ``user/throttle``, ``user/mode``.
    """

    def __init__(self, path: _PathLike, *, skip_first: int = 0,
                 skip_unreadable: bool = False) -> None:
        """Parse manifest.json and every catalog; check that each image file exists."""
        self.path = Path(path)
        self.name = str(path)
        self.skip_unreadable = skip_unreadable
        self.skipped = []
        if not isinstance(skip_first, int) or skip_first < 0:
            raise ConfigError(f'skip_first must be a non-negative integer, got {skip_first!r}')
        _check_dir(self.path, 'tub')
        catalogs, deleted, image_key = self._read_manifest()
        entries: list[_Entry] = []
        position = 0
        for catalog in catalogs:
            position = self._read_catalog(catalog, position, deleted, image_key, entries)
        self._entries = entries[skip_first:]
        if not self._entries:
            raise DataError(f"tub '{self.path}' has no frames left ({position} records, "
                            f'{len(deleted)} deleted, skip_first={skip_first}); pick another tub')

    def _read_manifest(self) -> tuple[list[Path], set[int], str]:
        manifest = self.path / 'manifest.json'
        if not manifest.is_file():
            catalogs = sorted(self.path.glob('catalog_*.catalog'),
                              key=lambda p: natural_key(p.name))
            if not catalogs:
                raise DataError(f"'{self.path}' is not a donkeycar tub: it has neither "
                                f'manifest.json nor catalog_*.catalog files')
            return catalogs, set(), 'cam/image_array'
        lines = [line for line in manifest.read_text(encoding='utf-8').splitlines()
                 if line.strip()]
        parsed: list[Any] = []
        for number, line in enumerate(lines, 1):
            try:
                parsed.append(json.loads(line))
            except ValueError as exc:
                raise DataError(f'{manifest} line {number}: invalid JSON ({exc}); restore the '
                                f'manifest from a backup') from None
        if len(parsed) < 5 or not isinstance(parsed[4], dict) or 'paths' not in parsed[4]:
            raise DataError(f'{manifest}: expected 5 JSON lines, the last with catalog metadata '
                            f"{{'paths': [...], 'deleted_indexes': [...]}}; not a tub v2")
        inputs, types, meta = parsed[0], parsed[1], parsed[4]
        image_key = next((key for key, kind in zip(inputs, types) if kind == 'image_array'),
                         'cam/image_array')
        deleted = {int(i) for i in meta.get('deleted_indexes') or []}
        return [self.path / p for p in meta['paths']], deleted, image_key

    def _read_catalog(self, catalog: Path, position: int, deleted: set[int], image_key: str,
                      entries: list[_Entry]) -> int:
        if not catalog.is_file():
            raise DataError(f"catalog '{catalog}' listed in {self.path / 'manifest.json'} is "
                            f'missing; restore it or remove it from the manifest paths')
        previous = (entries[-1].stamp_ns or 0) if entries else 0
        with open(catalog, encoding='utf-8') as stream:
            for number, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                where = f'{catalog} line {number}'
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise DataError(f'{where}: invalid JSON ({exc}); fix or delete that '
                                    f'line') from None
                record = record if isinstance(record, dict) else {}
                index = record.get('_index')
                index = index if isinstance(index, int) else position
                position += 1
                if index in deleted:
                    continue
                millis, name = record.get('_timestamp_ms'), record.get(image_key)
                if not isinstance(name, str) or not isinstance(millis, (int, float)):
                    raise DataError(f"{where}: record lacks '{image_key}' or a numeric "
                                    f"'_timestamp_ms'; fix or delete that line")
                image = self.path / 'images' / name
                if not image.is_file():
                    raise DataError(f"image '{image}' named in {where} is missing; restore it "
                                    f'or delete the record (donkey tubclean)')
                previous = max(previous, round(millis * 1e6))
                meta = {'file': f'images/{name}', 'tub_index': str(index)}
                meta.update((key, str(record[key])) for key in
                            ('user/angle', 'user/throttle', 'user/mode') if key in record)
                entries.append(_Entry(position - 1, image, previous, None, meta, f' (in {where})'))
        return position


class VideoSource:
    """A video file that OpenCV can decode; frames come out RGB.

    Stamps come from ``CAP_PROP_POS_MSEC`` when it is finite and advancing, otherwise from
    ``frame_number / fps`` (fps from the container, else ``rate_hz``, else 30); they are never
    allowed to decrease. ``step`` keeps every step-th frame (meta ``frame`` is the frame number
    in the file). ``len()`` is an estimate from ``CAP_PROP_FRAME_COUNT`` (0 when unknown).
    """

    def __init__(self, path: _PathLike, *, rate_hz: float | None = None, step: int = 1) -> None:
        """Open the file and decode its first frame; raise DataError if that fails."""
        self.path = Path(path)
        self.name = str(path)
        if not isinstance(step, int) or step < 1:
            raise ConfigError(f'step must be a positive integer, got {step!r}')
        if rate_hz is not None and not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ConfigError(f'rate_hz must be a positive number, got {rate_hz!r}')
        if not self.path.is_file():
            what = 'is not a file' if self.path.exists() else 'does not exist'
            raise DataError(f"video '{self.path}' {what}; check the path")
        self.step = step
        capture = self._open()
        try:
            if not capture.read()[0]:
                raise DataError(f"video '{self.path}' yields no frames; it is empty or "
                                f'truncated: re-record or re-encode it')
            fps = capture.get(cv2.CAP_PROP_FPS)
            count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        finally:
            capture.release()
        self.fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else (rate_hz or 30.0)
        self.frame_count = int(count) if math.isfinite(count) and count > 0 else 0

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise DataError(f"cannot open video '{self.path}': not a video or a codec OpenCV "
                            f'lacks; re-encode it (ffmpeg -i IN -c:v libx264 OUT.mp4)')
        return capture

    def __len__(self) -> int:
        """Return the estimated number of frames after ``step``."""
        return -(-self.frame_count // self.step)

    def __iter__(self) -> Iterator[Frame]:
        """Decode the frames (skipped ones are grabbed, not decoded)."""
        capture = self._open()
        try:
            raw = index = previous = 0
            while True:
                keep = raw % self.step == 0
                ok, bgr = capture.read() if keep else (capture.grab(), None)
                if not ok:
                    break
                if bgr is not None:
                    millis = capture.get(cv2.CAP_PROP_POS_MSEC)
                    if not (math.isfinite(millis) and millis >= 0 and (raw == 0 or millis > 0)):
                        millis = raw * 1000.0 / self.fps
                    previous = max(previous, round(millis * 1e6))
                    code = cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGR2RGB
                    rgb = np.ascontiguousarray(cv2.cvtColor(bgr, code), dtype=np.uint8)
                    yield Frame(rgb, previous, index, None, {'frame': str(raw)})
                    index += 1
                raw += 1
            if raw == 0:
                raise DataError(f"video '{self.path}' yields no frames; re-encode it")
        finally:
            capture.release()


_OPTIONS = {FolderSource: ('recursive', 'rate_hz', 'skip_unreadable'),
            VideoSource: ('rate_hz', 'step'), TubSource: ('skip_first', 'skip_unreadable')}


def open_source(path: _PathLike, **kwargs: Any) -> FrameSource:
    """Open a tub, an image folder or a video file, detected from the path.

    A directory with manifest.json or ``*.catalog`` files is a tub, any other directory an
    image folder; an image file is refused, any other file is tried as video. Options that are
    None are ignored; options the detected kind does not take raise ConfigError.
    """
    target = Path(path)
    kinds = (f"an image folder, a video file ({', '.join(VIDEO_EXTENSIONS)}) or a donkeycar tub "
             '(the vae-ood commands also read ROS 2 bags: a rosbag2 folder or .mcap/.db3 file)')
    if not target.exists():
        raise DataError(f"'{path}' does not exist; expected {kinds}")
    if target.is_dir():
        is_tub = (target / 'manifest.json').is_file() or any(target.glob('*.catalog'))
        kind: type[FolderSource | TubSource | VideoSource] = (
            TubSource if is_tub else FolderSource)
    elif target.suffix.lower() in IMAGE_EXTENSIONS:
        raise DataError(f"'{path}' is a single image; point at the folder that holds the frames")
    else:
        kind = VideoSource
    options = {key: value for key, value in kwargs.items() if value is not None}
    unknown = sorted(set(options) - set(_OPTIONS[kind]))
    if unknown:
        raise ConfigError(f"option(s) {', '.join(unknown)} do not apply to {kind.__name__} "
                          f"'{path}'; it takes {', '.join(_OPTIONS[kind])}")
    try:
        source = kind(target, **options)
    except DataError as exc:
        if kind is not VideoSource or target.suffix.lower() in VIDEO_EXTENSIONS:
            raise
        raise DataError(f"'{path}' is not a source: expected {kinds} ({exc})") from None
    return source


def iter_frames(sources: Iterable[FrameSource], limit: int | None = None) -> Iterator[Frame]:
    """Chain the frames of several sources (indices stay per source), at most ``limit``."""
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ConfigError(f'limit must be a non-negative integer or None, got {limit!r}')
    return islice(chain.from_iterable(sources), limit)
