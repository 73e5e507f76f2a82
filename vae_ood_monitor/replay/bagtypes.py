"""The types both bag readers share: topics, messages, where a damaged bag stopped, backends.

A leaf module: :mod:`~vae_ood_monitor.replay.bagio` (rosbags for intact bags) and
:mod:`~vae_ood_monitor.replay.recovery` (record-by-record reading of damaged ones) both build on
it, and neither reaches into the other's private names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
import functools
from pathlib import Path
from typing import Any, Iterator, Sequence, TYPE_CHECKING

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

__all__ = ['BAG_SUFFIXES', 'Backend', 'BagMessage', 'COMPRESSED_IMAGE', 'IMAGE', 'IMAGE_TYPES',
           'MCAP_MAGIC', 'RawIterator', 'SQLITE_MAGIC', 'Storage', 'StopInfo', 'TopicInfo',
           'bags_below', 'header_stamp_ns', 'holds_bags', 'is_bag', 'typestore']

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)

#: The first bytes of an MCAP file and of a SQLite database.
MCAP_MAGIC = b'\x89MCAP0\r\n'
SQLITE_MAGIC = b'SQLite format 3\x00'


class Storage(str, Enum):
    """rosbag2 storage plugins (the spellings of ``ros2 bag record -s``)."""

    MCAP = 'mcap'
    SQLITE3 = 'sqlite3'

    @property
    def suffix(self) -> str:
        """File suffix of this storage."""
        return '.mcap' if self is Storage.MCAP else '.db3'


@functools.cache
def typestore() -> Typestore:
    """Return the pinned ROS 2 Humble store of message types (LATEST moves between releases)."""
    from rosbags.typesys import get_typestore, Stores

    return get_typestore(Stores.ROS2_HUMBLE)


@dataclass(frozen=True)
class TopicInfo:
    """A topic of a bag: name, message type and message count (None when unknown)."""

    name: str
    msgtype: str
    count: int | None

    @property
    def is_image(self) -> bool:
        """Whether the topic carries sensor_msgs Image or CompressedImage."""
        return self.msgtype in IMAGE_TYPES


@dataclass(frozen=True, eq=False)
class BagMessage:
    """One message of a selected topic.

    ``index`` counts the topic's messages read so far (0-based), ``log_ns`` is the bag
    (receive) timestamp, ``stamp_ns`` and ``frame_id`` come from the message header. ``msg``
    is the deserialised message (its byte arrays are zero-copy views into ``raw``), or None
    when the bytes could not be deserialised; then ``error`` says why.
    """

    topic: str
    msgtype: str
    index: int
    log_ns: int
    stamp_ns: int
    frame_id: str
    msg: Any
    raw: bytes | memoryview
    error: Exception | None = None


@dataclass(frozen=True)
class StopInfo:
    """Where iteration stopped on a damaged bag.

    ``index`` is the number of selected messages read before the damage (so the index of the
    first one lost); ``stamp_ns`` / ``log_ns`` are the header and bag timestamps of the last
    good message (None when there was none).
    """

    index: int
    stamp_ns: int | None
    log_ns: int | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {'index': self.index, 'stamp_ns': self.stamp_ns, 'log_ns': self.log_ns,
                'reason': self.reason}


def header_stamp_ns(msg: Any) -> int:
    """Return ``msg.header.stamp`` in nanoseconds (0 for a message without a header)."""
    header = getattr(msg, 'header', None)
    if header is None:
        return 0
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


RawIterator = Iterator[tuple[str, str, int, Any]]


class Backend:
    """What a bag reader provides: topics, start time, raw messages, deserialisation."""

    topics: dict[str, TopicInfo]
    start_ns: int | None
    end_ns: int | None

    def raw_messages(self, topics: Sequence[str], start: int | None,
                     stop: int | None) -> RawIterator:
        """Yield (topic, msgtype, log_ns, raw) in bag order; raise on damage."""
        raise NotImplementedError

    def deserialize(self, raw: Any, msgtype: str) -> Any:
        """Turn CDR bytes into a message object."""
        raise NotImplementedError

    def close(self) -> None:
        """Release files."""


#: File suffixes of rosbag2 storage files (MCAP, sqlite3).
BAG_SUFFIXES = ('.mcap', '.db3')


def is_bag(path: Path) -> bool:
    """Tell whether ``path`` is one bag.

    A .mcap/.db3 file is; so is a folder with metadata.yaml, or with .mcap/.db3 files and no
    bag folders inside (with them, it is a folder of bags).
    """
    if path.is_file():
        return path.suffix in BAG_SUFFIXES
    if not path.is_dir():
        return False
    if (path / 'metadata.yaml').is_file():
        return True
    children = list(path.iterdir())
    return (any(c.suffix in BAG_SUFFIXES and c.is_file() for c in children)
            and not any(c.is_dir() and is_bag(c) for c in children))


def holds_bags(folder: Path) -> bool:
    """Tell whether ``folder`` is a folder of bags (in it or below), not a bag itself."""
    return folder.is_dir() and not is_bag(folder) and next(bags_below(folder), None) is not None


def bags_below(folder: Path) -> Iterator[Path]:
    """Yield the bags in and below ``folder``, in name order (hidden entries skipped)."""
    for child in sorted(c for c in folder.iterdir() if not c.name.startswith('.')):
        if is_bag(child):
            yield child
        elif child.is_dir():
            yield from bags_below(child)
