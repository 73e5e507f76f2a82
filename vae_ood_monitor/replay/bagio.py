"""Open ROS 2 bags (a bag folder, or one .mcap / .db3 file) and iterate their image messages.

rosbags' :class:`~rosbags.highlevel.AnyReader` reads intact bags (sqlite3 and MCAP) with a
pinned typestore (ROS 2 Humble) for bags without embedded message definitions. A bag that
rosbags refuses because it is damaged (an MCAP file cut short has no footer; a truncated
sqlite3 file is "malformed") is recovered record by record: MCAP with the independent ``mcap``
package's streaming reader, sqlite3 by reading the messages table in insertion order. Either
way, iteration stops at the first damaged record and :attr:`Bag.stopped` says where.

Every failure to open a bag becomes a one-line :class:`ReplayError` naming the problem and
the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
import re
from typing import Any, Callable, Iterator, Sequence, TYPE_CHECKING

from vae_ood_monitor.core.errors import ReplayError
from vae_ood_monitor.replay.bagtypes import (Backend, BagMessage, COMPRESSED_IMAGE,
                                             header_stamp_ns, IMAGE, IMAGE_TYPES, MCAP_MAGIC,
                                             RawIterator, SQLITE_MAGIC, StopInfo, Storage,
                                             TopicInfo, typestore)

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    'Bag',
    'BagMessage',
    'COMPRESSED_IMAGE',
    'IMAGE',
    'IMAGE_TYPES',
    'Storage',
    'StopInfo',
    'TopicInfo',
    'header_stamp_ns',
    'open_bag',
    'typestore',
]

_KINDS = 'a rosbag2 folder (metadata.yaml + .mcap/.db3 files) or a single .mcap or .db3 file'


class _RosbagsBackend(Backend):
    """An intact bag read with rosbags' AnyReader."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.topics = {}
        for name, info in reader.topics.items():
            self.topics[name] = TopicInfo(name, info.msgtype or '?', info.msgcount)
        count = reader.message_count
        self.start_ns = reader.start_time if count else None
        self.end_ns = reader.end_time if count else None
        self._deserialize = reader.typestore.deserialize_cdr

    def raw_messages(self, topics: Sequence[str], start: int | None,
                     stop: int | None) -> RawIterator:
        wanted = set(topics)
        connections = [c for c in self.reader.connections if c.topic in wanted]
        if not connections:
            return
        for connection, log_ns, raw in self.reader.messages(connections, start, stop):
            yield connection.topic, connection.msgtype, log_ns, raw

    def deserialize(self, raw: Any, msgtype: str) -> Any:
        return self._deserialize(raw, msgtype)

    def close(self) -> None:
        self.reader.close()


class Bag:
    """An open bag: its topics, start time and image messages (use :func:`open_bag`)."""

    def __init__(self, path: Path, storage: Storage, backend: Backend,
                 recovered: str | None = None, notes: Sequence[str] = ()) -> None:
        self.path = path
        self.storage = storage
        self._backend = backend
        #: Why the bag was read by the recovery reader (None for an intact bag).
        self.recovered = recovered
        #: Remarks on how the bag was opened.
        self.notes = list(notes)
        #: Where the last :meth:`messages` iteration stopped on damage (None: it did not).
        self.stopped: StopInfo | None = None

    @property
    def topics(self) -> dict[str, TopicInfo]:
        """Topic name -> info, sorted by name."""
        return dict(sorted(self._backend.topics.items()))

    @property
    def start_ns(self) -> int | None:
        """Bag timestamp of the earliest message (None for an empty bag)."""
        return self._backend.start_ns

    @property
    def image_topics(self) -> list[str]:
        """Names of the topics that carry Image or CompressedImage messages."""
        return [name for name, info in self.topics.items() if info.is_image]

    def _image_list(self) -> str:
        names = self.image_topics
        return ', '.join(names) if names else 'none (the bag has no sensor_msgs/msg/Image or ' \
            'CompressedImage topic)'

    def select(self, requested: Sequence[str] = ()) -> list[TopicInfo]:
        """Validate the requested image topics; with none, pick the bag's only image topic.

        Raises:
            ReplayError: a topic is not in the bag or not an image type, or none was requested
                and the bag has no image topic or several.
        """
        topics = self.topics
        if not requested:
            images = self.image_topics
            if len(images) != 1:
                what = 'no image topic' if not images else f'{len(images)} image topics'
                raise ReplayError(
                    f"Bag '{self.path}' has {what}"
                    + (f' ({", ".join(images)}); choose with --topic.' if images else
                       f'; its topics are: {", ".join(topics) or "none"}.'))
            requested = images
        chosen: list[TopicInfo] = []
        for name in requested:
            info = topics.get(name) or topics.get('/' + name.lstrip('/'))
            if info is None:
                raise ReplayError(f'Topic {name!r} is not in bag {str(self.path)!r}; its '
                                  f'image topics are: {self._image_list()}.')
            if not info.is_image:
                raise ReplayError(
                    f'Topic {info.name!r} has type {info.msgtype!r}, not {IMAGE} or '
                    f'{COMPRESSED_IMAGE}; pick an image topic: {self._image_list()}.')
            if info not in chosen:
                chosen.append(info)
        return chosen

    def window(self, start_s: float | None = None,
               end_s: float | None = None) -> tuple[int | None, int | None]:
        """Turn seconds from the bag start into absolute bag timestamps (start, stop)."""
        for name, value in (('--start', start_s), ('--end', end_s)):
            if value is not None and not value >= 0:
                raise ReplayError(f'{name} {value!r} must be >= 0 seconds from the bag start.')
        if start_s is not None and end_s is not None and end_s <= start_s:
            raise ReplayError(f'--end {end_s!r} must be after --start {start_s!r} (seconds '
                              'from the bag start).')
        base = self.start_ns or 0
        start = None if start_s is None else base + round(start_s * 1e9)
        stop = None if end_s is None else base + round(end_s * 1e9)
        return start, stop

    def messages(self, topics: Sequence[str], start: int | None = None,
                 stop: int | None = None) -> Iterator[BagMessage]:
        """Yield the messages of ``topics`` with bag timestamps in [start, stop).

        Damage stops the iteration quietly and sets :attr:`stopped`; a message whose bytes
        cannot be deserialised is yielded with ``msg=None`` and ``error`` set.
        """
        self.stopped = None
        counts: dict[str, int] = {}
        read = 0
        last: BagMessage | None = None
        raw_iter = self._backend.raw_messages(topics, start, stop)
        deserialize = self._backend.deserialize
        while True:
            try:
                topic, msgtype, log_ns, raw = next(raw_iter)
            except StopIteration:
                return
            except Exception as err:  # noqa: B902 - any reader failure here is damage
                self.stopped = StopInfo(read, last.stamp_ns if last else None,
                                        last.log_ns if last else None, _reason(err))
                return
            index = counts.get(topic, 0)
            counts[topic] = index + 1
            try:
                # A memoryview keeps rosbags' deserialisation zero-copy: slicing bytes would
                # copy the whole image once more.
                msg = deserialize(memoryview(raw), msgtype)
            except Exception as err:  # noqa: B902 - counted as a failed frame by the caller
                message = BagMessage(topic, msgtype, index, int(log_ns), 0, '', None, raw, err)
            else:
                header = getattr(msg, 'header', None)
                message = BagMessage(topic, msgtype, index, int(log_ns), header_stamp_ns(msg),
                                     getattr(header, 'frame_id', ''), msg, raw)
            read += 1
            last = message
            yield message

    def close(self) -> None:
        """Close the underlying files."""
        self._backend.close()

    def __enter__(self) -> Bag:
        """Return the open bag."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close the bag."""
        self.close()


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ''
    return f'{type(err).__name__}: {text}' if text else type(err).__name__


def _natural(path: Path) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r'(\d+)', path.name)]


def _storage_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted((p for p in path.iterdir() if p.suffix in ('.mcap', '.db3') and p.is_file()),
                  key=_natural)


def _storage_of(files: Sequence[Path]) -> Storage:
    return Storage.MCAP if files and files[0].suffix == '.mcap' else Storage.SQLITE3


def _magic(path: Path, size: int) -> bytes:
    try:
        with open(path, 'rb') as stream:
            return stream.read(size)
    except OSError:
        return b''


def open_bag(path: str | os.PathLike[str]) -> Bag:
    """Open a bag folder or a single .mcap / .db3 file; recover a damaged one if possible.

    A folder without metadata.yaml (a recording that was killed before rosbag2 wrote it) is
    read from its single storage file.

    Raises:
        ReplayError: the path does not exist, is not a bag, or is damaged before its first
            message.
    """
    path = Path(path)
    if not path.exists():
        raise ReplayError(f"Bag '{path}' does not exist; check the path (expected {_KINDS}).")
    target = path
    notes: list[str] = []
    if path.is_dir():
        files = _storage_files(path)
        if not (path / 'metadata.yaml').is_file():
            if not files:
                raise ReplayError(
                    f"Folder '{path}' is not a ROS 2 bag: it has neither metadata.yaml nor "
                    '.mcap/.db3 storage files; point at the folder `ros2 bag record` created.')
            if len(files) > 1:
                raise ReplayError(
                    f"Bag folder '{path}' has no metadata.yaml and {len(files)} storage files; "
                    'rebuild it with `ros2 bag reindex` or pass one storage file.')
            target = files[0]
            notes.append(f'{path} has no metadata.yaml; read {files[0].name} directly')
    elif path.suffix not in ('.mcap', '.db3'):
        raise ReplayError(f"'{path}' is not a ROS 2 bag: expected {_KINDS}.")
    else:
        files = [path]
    try:
        from rosbags.highlevel import AnyReader
    except ImportError as err:  # pragma: no cover - rosbags is in the replay extra
        raise ImportError("Bag replay needs rosbags: pip install 'vae_ood_monitor[replay]'") \
            from err
    recovered = None
    try:
        reader = AnyReader([target], default_typestore=typestore())
        reader.open()
        backend: Backend = _RosbagsBackend(reader)
    except PermissionError as err:
        raise ReplayError(f"Cannot read bag '{path}': {err}; check its permissions.") from err
    except Exception as err:  # noqa: B902 - rosbags raises many types (see module docstring)
        backend = _recover(path, files, err)
        recovered = f'rosbags could not open it ({_reason(err)}); read it record by record'
    return Bag(path, _storage_of(files), backend, recovered, notes)


def _recover(path: Path, files: Sequence[Path], err: Exception) -> Backend:
    """Open a bag rosbags refused with a record-by-record reader, or explain why not."""
    why = _reason(err)
    if not files:
        raise ReplayError(f"Bag '{path}' cannot be read ({why}); its folder has no .mcap/.db3 "
                          'storage files.') from err
    storage = _storage_of(files)
    if any(f.suffix != storage.suffix for f in files):
        raise ReplayError(f"Bag '{path}' mixes .mcap and .db3 files and cannot be read "
                          f'({why}).') from err
    magic = MCAP_MAGIC if storage is Storage.MCAP else SQLITE_MAGIC
    bad = [f for f in files if _magic(f, len(magic)) != magic]
    if bad:
        kind = 'an MCAP file' if storage is Storage.MCAP else 'a SQLite database'
        empty = bad[0].stat().st_size == 0
        raise ReplayError(f"'{bad[0]}' is {'empty' if empty else f'not {kind}'} ({why}); "
                          f'expected {_KINDS}.') from err
    from vae_ood_monitor.replay.recovery import McapRecovery, SqliteRecovery

    factory: Callable[[Sequence[Path]], Backend] = (
        McapRecovery if storage is Storage.MCAP else SqliteRecovery)
    try:
        backend = factory(files)
    except Exception as inner:  # noqa: B902 - still unreadable
        raise ReplayError(f"Bag '{path}' is truncated or corrupt ({why}; {_reason(inner)}) "
                          'and nothing could be recovered; re-copy or re-record it.') from err
    if backend.start_ns is None:
        backend.close()
        raise ReplayError(f"Bag '{path}' is truncated or corrupt before its first message "
                          f'({why}); re-copy or re-record it.') from err
    return backend
