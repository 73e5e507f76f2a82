"""The output bag: the monitor node's topics and types, written atomically.

Topics are those of :mod:`vae_ood_monitor.core.topics`, fully qualified in the root namespace
(``/ood/<camera>/alert`` ...) as ``ros2 bag record`` stores the live node's output, plus
``/diagnostics``. The bag is written with rosbag2 format version 8, which ROS 2 Humble's
rosbag2 can play (version 9 stores QoS profiles in a form Humble cannot parse).

:func:`staged_output` writes into a hidden temporary sibling and renames it into place only
when everything succeeded, so a failed run never leaves a complete-looking bag behind, and an
existing output (with ``force``) is replaced only then.
"""

from __future__ import annotations

from contextlib import contextmanager
import os
from pathlib import Path
import shutil
import struct
import tempfile
from typing import Any, Iterator, Literal, Sequence, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.errors import ReplayError
from vae_ood_monitor.core.topics import AGGREGATE, output_topics
from vae_ood_monitor.replay.bagio import IMAGE, Storage, typestore

if TYPE_CHECKING:
    from types import TracebackType

    from numpy.typing import NDArray

    from vae_ood_monitor.core.diagnostics import DiagnosticEntry

__all__ = ['DIAGNOSTICS', 'OutputBag', 'check_output', 'qualified', 'staged_output']

DIAGNOSTICS = '/diagnostics'
BOOL = 'std_msgs/msg/Bool'
FLOAT32 = 'std_msgs/msg/Float32'
FLOAT32_ARRAY = 'std_msgs/msg/Float32MultiArray'
DIAGNOSTIC_ARRAY = 'diagnostic_msgs/msg/DiagnosticArray'
#: rosbag2 format version: 8 is the newest ROS 2 Humble reads (see module docstring).
BAG_VERSION: Literal[8] = 8


# Small messages are serialised by hand (little-endian CDR; test_writer checks every one against
# rosbags' serialize_cdr): the score topics cost a struct.pack instead of a message object.
_CDR_LE = b'\x00\x01\x00\x00'  # CDR encapsulation header: plain CDR, little endian
_BOOL = {False: _CDR_LE + b'\x00', True: _CDR_LE + b'\x01'}
_F32 = struct.Struct('<f')
_U32 = struct.Struct('<I')


def _kl_prefix(ts: Any, latent_dim: int) -> bytes:
    """Serialise a Float32MultiArray up to its data: header, layout (dim 'latent'), offset."""
    types = ts.types
    dimension = types['std_msgs/msg/MultiArrayDimension']
    dim = dimension(label='latent', size=latent_dim, stride=latent_dim)
    empty = types[FLOAT32_ARRAY](layout=types['std_msgs/msg/MultiArrayLayout'](
        dim=[dim], data_offset=0), data=np.zeros(0, np.float32))
    return bytes(ts.serialize_cdr(empty, FLOAT32_ARRAY))[:-4]  # drop the data length (0)


def qualified(name: str, namespace: str = '/') -> str:
    """Resolve a relative topic name in ``namespace`` (absolute names stay as they are)."""
    if name.startswith('/'):
        return name
    namespace = '/' + namespace.strip('/')
    return f'{namespace.rstrip("/")}/{name}'


def check_output(path: str | os.PathLike[str], force: bool,
                 inputs: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Refuse an existing output without ``force``, and any output that would hit an input."""
    path = Path(path)
    for source in inputs:
        source = Path(source).resolve()
        target = path.resolve()
        if target == source or target in source.parents:
            raise ReplayError(f"Output '{path}' would replace the input '{source}'; choose "
                              'another output path.')
    if (path.exists() or path.is_symlink()) and not force:
        raise ReplayError(f"Output '{path}' exists; choose another path or pass --force to "
                          'replace it (it is replaced only after a successful run).')
    return path


@contextmanager
def staged_output(path: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a fresh path to write ``path`` into; move it into place if the block succeeds.

    The staging path lives in a hidden sibling folder ``.<name>.partial-XXXX`` (same file
    system, so the final move is a rename) and is removed whatever happens.
    """
    path = check_output(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{path.name}.partial-', dir=path.parent))
    try:
        target = staging / path.name
        yield target
        if not target.exists():
            raise ReplayError(f"Nothing was written for '{path}'.")
        if path.exists() or path.is_symlink():
            check_output(path, force)
            os.rename(path, staging / '.previous')
        os.rename(target, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class OutputBag:
    """Write the monitor's outputs (and optionally its camera inputs) into a new bag.

    Use as a context manager: leaving the block normally publishes the bag at ``path``; an
    exception discards everything written.
    """

    def __init__(self, path: str | Path, *, storage: Storage | str = Storage.MCAP,
                 force: bool = False, namespace: str = '/') -> None:
        """Check the target now (fail fast) but create nothing yet."""
        from rosbags.rosbag2 import StoragePlugin, Writer

        self._writer_type, self._plugins = Writer, StoragePlugin
        try:
            self.storage = Storage(storage)
        except ValueError:
            raise ReplayError(f'Storage {storage!r} is not supported; choose '
                              f'{", ".join(s.value for s in Storage)}.') from None
        self.path = check_output(path, force)
        self.force = force
        self.namespace = namespace
        self._stage: Any = None
        self._writer: Any = None
        self._connections: dict[str, Any] = {}
        self._cameras: dict[str, tuple[Any, Any, Any, bytes]] = {}
        self._aggregate: tuple[Any, Any] = (None, None)
        self._ts = typestore()

    def __enter__(self) -> OutputBag:
        """Open the staged bag for writing."""
        self._stage = staged_output(self.path, force=self.force)
        target = self._stage.__enter__()
        plugins = self._plugins
        plugin = plugins.MCAP if self.storage is Storage.MCAP else plugins.SQLITE3
        self._writer = self._writer_type(target, version=BAG_VERSION, storage_plugin=plugin)
        try:
            self._writer.open()
        except BaseException as err:
            self._stage.__exit__(type(err), err, err.__traceback__)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close and publish the bag, or discard it after an exception."""
        writer, self._writer = self._writer, None
        stage, self._stage = self._stage, None
        if exc_type is None:
            try:
                writer.close()
            except BaseException as err:
                writer.abort()
                stage.__exit__(type(err), err, err.__traceback__)
                raise
            stage.__exit__(None, None, None)
        else:
            try:
                writer.abort()
            finally:
                stage.__exit__(exc_type, exc, tb)

    # connections -------------------------------------------------------------------------

    def _add(self, topic: str, msgtype: str) -> Any:
        key = f'{topic}\0{msgtype}'
        connection = self._connections.get(key)
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=self._ts)
            self._connections[key] = connection
        return connection

    def add_camera(self, camera: str, latent_dim: int, *, debug_image: bool = False) -> None:
        """Create the output topics of one camera (``camera`` AGGREGATE: the aggregate ones)."""
        names = output_topics(camera)
        alert = self._add(qualified(names.alert, self.namespace), BOOL)
        score = self._add(qualified(names.score, self.namespace), FLOAT32)
        if camera == AGGREGATE:
            self._aggregate = (alert, score)
            return
        kl = self._add(qualified(names.kl, self.namespace), FLOAT32_ARRAY)
        if debug_image:
            self._add(qualified(names.debug_image, self.namespace), IMAGE)
        self._cameras[camera] = (alert, score, kl, _kl_prefix(self._ts, latent_dim))

    def add_diagnostics(self) -> None:
        """Create the /diagnostics topic."""
        self._add(DIAGNOSTICS, DIAGNOSTIC_ARRAY)

    def add_copy(self, topic: str, msgtype: str) -> None:
        """Create a topic for copied input messages (same name and type)."""
        self._add(topic, msgtype)

    @property
    def topics(self) -> list[str]:
        """Names of the topics created so far."""
        return [c.topic for c in self._connections.values()]

    # messages ----------------------------------------------------------------------------

    def _write(self, topic: str, msgtype: str, log_ns: int, data: Any) -> None:
        self._writer.write(self._connections[f'{topic}\0{msgtype}'], log_ns, data)

    def write_camera(self, camera: str, log_ns: int, alert: bool, score: float,
                     kl: NDArray[np.floating[Any]]) -> None:
        """Write one decision of ``camera``: alert, summed KL score and per-dimension KL."""
        alert_conn, score_conn, kl_conn, prefix = self._cameras[camera]
        write = self._writer.write
        write(alert_conn, log_ns, _BOOL[bool(alert)])
        write(score_conn, log_ns, _CDR_LE + _F32.pack(score))
        values = np.asarray(kl, dtype='<f4')
        write(kl_conn, log_ns, prefix + _U32.pack(values.size) + values.tobytes())

    def write_aggregate(self, log_ns: int, alert: bool, score: float) -> None:
        """Write the aggregate alert (OR over cameras) and score (max over cameras)."""
        alert_conn, score_conn = self._aggregate
        self._writer.write(alert_conn, log_ns, _BOOL[bool(alert)])
        self._writer.write(score_conn, log_ns, _CDR_LE + _F32.pack(score))

    def _header(self, stamp_ns: int, frame_id: str) -> Any:
        types = self._ts.types
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        stamp = types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)
        return types['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)

    def write_diagnostics(self, log_ns: int, stamp_ns: int,
                          entries: Sequence[DiagnosticEntry]) -> None:
        """Write one DiagnosticArray holding a status per entry."""
        types = self._ts.types
        status_type = types['diagnostic_msgs/msg/DiagnosticStatus']
        key_value = types['diagnostic_msgs/msg/KeyValue']
        status = [status_type(level=int(e.level), name=e.name, message=e.message,
                              hardware_id=e.hardware_id,
                              values=[key_value(key=k, value=v) for k, v in e.values])
                  for e in entries]
        message = types[DIAGNOSTIC_ARRAY](header=self._header(stamp_ns, ''), status=status)
        self._write(DIAGNOSTICS, DIAGNOSTIC_ARRAY, log_ns,
                    self._ts.serialize_cdr(message, DIAGNOSTIC_ARRAY))

    def write_debug_image(self, camera: str, log_ns: int, stamp_ns: int, frame_id: str,
                          rgb: NDArray[np.uint8]) -> None:
        """Write an rgb8 sensor_msgs/Image on the camera's debug_image topic."""
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        height, width = rgb.shape[:2]
        message = self._ts.types[IMAGE](
            header=self._header(stamp_ns, frame_id), height=height, width=width,
            encoding='rgb8', is_bigendian=0, step=width * 3, data=rgb.reshape(-1))
        topic = qualified(output_topics(camera).debug_image, self.namespace)
        self._write(topic, IMAGE, log_ns, self._ts.serialize_cdr(message, IMAGE))

    def write_raw(self, topic: str, msgtype: str, log_ns: int, raw: Any) -> None:
        """Copy an input message's serialised bytes unchanged."""
        self._write(topic, msgtype, log_ns, raw)
