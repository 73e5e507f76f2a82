"""Reading damaged bags record by record (what rosbags refuses to open).

An MCAP file cut short has no footer and rosbags will not open it: the independent ``mcap``
package's streaming reader walks its records, and the complete messages at the start of a
chunk that was cut off are recovered too. A truncated or overwritten sqlite3 file is opened
directly (apsw, with ``writable_schema``) and its rows are read in insertion order. Either way
iteration stops at the first damaged record; :mod:`.bagio` reports where.
"""

from __future__ import annotations

import io
from pathlib import Path
import struct
from typing import Any, Callable, Iterator, Sequence, TYPE_CHECKING

from vae_ood_monitor.replay.bagtypes import Backend, MCAP_MAGIC, RawIterator, TopicInfo, typestore

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

__all__ = ['McapRecovery', 'SqliteRecovery']


def _recovered_typestore(definitions: Sequence[tuple[str, str, str]]) -> Typestore:
    """Build types from (msgtype, encoding, text) definitions found in the file, else Humble."""
    from rosbags.typesys import get_types_from_idl, get_types_from_msg, get_typestore, Stores

    types: dict[str, Any] = {}
    try:
        for msgtype, encoding, text in definitions:
            if encoding == 'ros2msg':
                types.update(get_types_from_msg(text, msgtype))
            elif encoding == 'ros2idl':
                sep = '=' * 80 + '\n'
                parts = text.split(sep)[1:] if text.startswith(f'{sep}IDL: ') else [text]
                for part in parts:
                    types.update(get_types_from_idl(part.split('\n', 1)[1]
                                                    if part.startswith('IDL: ') else part))
    except Exception:  # noqa: B902 - unparsable embedded definitions: fall back to Humble
        types = {}
    if not types:
        return typestore()
    store = get_typestore(Stores.EMPTY)
    store.register(types)
    return store


class McapRecovery(Backend):
    """MCAP files read record by record with the ``mcap`` package (no footer needed).

    A first pass collects channels, message counts and the time range up to the damage.
    """

    def __init__(self, files: Sequence[Path]) -> None:
        from mcap.records import Message, Schema

        self.files = list(files)
        self.channels: dict[int, tuple[str, str]] = {}
        self._schemas: dict[int, str] = {}
        counts: dict[str, int] = {}
        definitions: list[tuple[str, str, str]] = []
        self.start_ns = self.end_ns = None
        record: Any
        try:
            for record in self._records():
                if isinstance(record, Message):
                    topic = self.channels.get(record.channel_id, ('?', '?'))[0]
                    counts[topic] = counts.get(topic, 0) + 1
                    if self.start_ns is None or record.log_time < self.start_ns:
                        self.start_ns = record.log_time
                    if self.end_ns is None or record.log_time >= self.end_ns:
                        self.end_ns = record.log_time + 1
                elif isinstance(record, Schema) and record.encoding in ('ros2msg', 'ros2idl'):
                    definitions.append((record.name, record.encoding,
                                        record.data.decode('utf-8', 'replace')))
        except Exception:  # noqa: B902 - the damage; iteration stops there again, and says so
            pass
        self.topics = {topic: TopicInfo(topic, msgtype, counts.get(topic, 0))
                       for topic, msgtype in self.channels.values()}
        self.store = _recovered_typestore(definitions)

    def _note(self, record: Any) -> Any:
        """Track schema names and channel topics as they stream past."""
        from mcap.records import Channel, Schema

        if isinstance(record, Schema):
            self._schemas[record.id] = record.name
        elif isinstance(record, Channel):
            self.channels[record.id] = (record.topic, self._schemas.get(record.schema_id, '?'))
        return record

    def _records(self) -> Iterator[Any]:
        from mcap.stream_reader import StreamReader

        for path in self.files:
            with open(path, 'rb') as stream:
                offset = len(MCAP_MAGIC)  # end of the last complete top-level record
                try:
                    for record in StreamReader(stream, record_size_limit=2**31).records:
                        offset = stream.tell()
                        yield self._note(record)
                except Exception:
                    # The damaged record is usually the last chunk, cut short: keep the
                    # complete messages at its start, then report the damage.
                    for record in _partial_chunk(path, offset):
                        yield self._note(record)
                    raise

    def raw_messages(self, topics: Sequence[str], start: int | None,
                     stop: int | None) -> RawIterator:
        from mcap.records import Message

        wanted = set(topics)
        record: Any
        for record in self._records():
            if not isinstance(record, Message):
                continue
            topic, msgtype = self.channels.get(record.channel_id, ('?', '?'))
            if topic not in wanted:
                continue
            if (start is not None and record.log_time < start) or (
                    stop is not None and record.log_time >= stop):
                continue
            yield topic, msgtype, record.log_time, record.data

    def deserialize(self, raw: Any, msgtype: str) -> Any:
        return self.store.deserialize_cdr(raw, msgtype)


def _partial_chunk(path: Path, offset: int) -> Iterator[Any]:
    """Yield the complete records at the start of a chunk that was cut short at ``offset``.

    Handles uncompressed, zstd (streaming decompression of the available prefix) and lz4
    chunks; anything else yields nothing.
    """
    from mcap.data_stream import ReadDataStream
    from mcap.opcode import Opcode
    from mcap.records import Channel, Message, Schema

    with open(path, 'rb') as stream:
        stream.seek(offset)
        head = stream.read(9)
        body = stream.read()
    if len(head) < 9 or head[0] != Opcode.CHUNK or len(body) < 32:
        return
    # message_start_time, message_end_time, uncompressed_size (u64), uncompressed_crc (u32),
    # compression (u32 length + text), records length (u64), records
    (name_length,) = struct.unpack_from('<I', body, 28)
    compression = body[32:32 + name_length].decode('utf-8', 'replace')
    data = body[32 + name_length + 8:]
    try:
        if compression == 'zstd':
            import zstandard
            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        elif compression == 'lz4':
            import lz4.frame
            data = lz4.frame.LZ4FrameDecompressor().decompress(data)
        elif compression:
            return
    except Exception:  # noqa: B902 - nothing usable in this chunk
        return
    reader = ReadDataStream(io.BytesIO(data))
    parsers: dict[int, Callable[[Any], Any]] = {Opcode.CHANNEL: Channel.read,
                                                Opcode.SCHEMA: Schema.read}
    while len(data) - reader.count >= 9:
        opcode, length = reader.read1(), reader.read8()
        start = reader.count
        if len(data) - start < length:
            return  # the first incomplete record
        if opcode == Opcode.MESSAGE:
            yield Message.read(reader, length)
        elif opcode in parsers:
            yield parsers[opcode](reader)
        reader.read(length - (reader.count - start))


class SqliteRecovery(Backend):
    """sqlite3 files whose pages are damaged: the messages table read in insertion order."""

    def __init__(self, files: Sequence[Path]) -> None:
        import apsw

        self.files = list(files)
        self.connections: list[Any] = []
        self.topic_ids: list[dict[int, tuple[str, str]]] = []
        definitions: list[tuple[str, str, str]] = []
        self.start_ns = self.end_ns = None
        topics: dict[str, str] = {}
        for path in self.files:
            # writable_schema lets SQLite open a file shorter than its header says (it would
            # call that "malformed"); the connection stays read-only and immutable.
            db = apsw.Connection(f'file:{path}?immutable=1',
                                 flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
            db.execute('PRAGMA writable_schema=ON')
            self.connections.append(db)
            ids = {int(row[0]): (str(row[1]), str(row[2])) for row in
                   db.execute('SELECT id, name, type FROM topics ORDER BY id')}
            self.topic_ids.append(ids)
            topics.update(ids.values())
            try:
                definitions += [(str(a), str(b), str(c)) for a, b, c in db.execute(
                    'SELECT topic_type, encoding, encoded_message_definition '
                    'FROM message_definitions ORDER BY id')]
            except apsw.Error:
                pass  # schema < 4 (Humble) has no message_definitions table
            if self.start_ns is None:
                row = next(iter(db.execute('SELECT timestamp FROM messages ORDER BY id '
                                           'LIMIT 1')), None)
                self.start_ns = None if row is None else int(row[0])
        self.topics = {name: TopicInfo(name, msgtype, None) for name, msgtype in topics.items()}
        self.store = _recovered_typestore(definitions)

    def raw_messages(self, topics: Sequence[str], start: int | None,
                     stop: int | None) -> RawIterator:
        wanted = set(topics)
        for db, ids in zip(self.connections, self.topic_ids):
            for topic_id, log_ns, raw in db.execute(
                    'SELECT topic_id, timestamp, data FROM messages ORDER BY id'):
                topic, msgtype = ids.get(int(topic_id), ('?', '?'))
                if topic not in wanted:
                    continue
                if (start is not None and log_ns < start) or (
                        stop is not None and log_ns >= stop):
                    continue
                yield topic, msgtype, int(log_ns), raw

    def deserialize(self, raw: Any, msgtype: str) -> Any:
        return self.store.deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        for db in self.connections:
            db.close()
