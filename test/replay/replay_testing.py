"""Helpers of the replay tests: tiny labelled synthetic frames, a tuned bundle, real bags.

A uniquely named module (not conftest.py) so that test files can import it unambiguously.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vae_ood_monitor.core.bundle import Bundle, save_bundle
from vae_ood_monitor.core.manifest import CusumParams, Partition
from vae_ood_monitor.data.sources import Frame
from vae_ood_monitor.replay.bagio import typestore
from vae_ood_monitor.replay.bagmaker import parse_synth, synth_frames
from vood_testing import make_bundle

SIZE = (64, 48)  # width, height of the synthetic test frames
CUSUM = CusumParams(window=10, delta=0.5, tau=3.0)


def tuned_path(folder: Path) -> Path:
    """Save :func:`tuned_bundle` into ``folder``."""
    return save_bundle(tuned_bundle(), folder / 'tuned.vood')


def tuned_bundle() -> Bundle:
    """The tiny linear bundle calibrated so that fog frames alarm and clean frames do not.

    Clean 64x48 drives score 0.85-1.0 with this encoder, fog at test severity 1.2-1.3.
    """
    partition = Partition('all', (0, 1, 2, 3), calibration_scores=np.linspace(0.85, 1.05, 200),
                          threshold=1.1, cusum=CUSUM)
    return make_bundle(cusum=CUSUM).with_manifest(partitions=(partition,))


_FRAMES: dict[str, list[Frame]] = {}


def frames(spec: str = 'synth:fog:m3:40:3') -> list[Frame]:
    """Rendered synthetic frames (cached per spec; treat them as read-only)."""
    if spec not in _FRAMES:
        _FRAMES[spec] = synth_frames(parse_synth(spec), SIZE)
    return _FRAMES[spec]


def write_bag(path: Path, topics: dict[str, Sequence[Any]], *, storage: str = 'mcap',
              stamps: Sequence[int] | None = None) -> Path:
    """Write rosbags messages (already built) on several topics, one per time step."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = typestore()
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    with Writer(path, version=8, storage_plugin=plugin) as writer:
        for topic, messages in topics.items():
            connection = writer.add_connection(topic, type(messages[0]).__msgtype__,
                                               typestore=ts)
            for i, message in enumerate(messages):
                stamp = stamps[i] if stamps is not None else 1_700_000_000_000_000_000 + i * 10**8
                writer.write(connection, stamp,
                             ts.serialize_cdr(message, type(message).__msgtype__))
    return path


def image_message(rgb: np.ndarray, stamp_ns: int, encoding: str = 'rgb8',
                  data: bytes | None = None) -> Any:
    """Build a rosbags sensor_msgs/Image from an RGB frame (or with explicit data bytes)."""
    from vae_ood_monitor.data.messages import encode_rgb

    ts = typestore()
    fields = encode_rgb(rgb, encoding)
    header = ts.types['std_msgs/msg/Header'](
        stamp=ts.types['builtin_interfaces/msg/Time'](sec=stamp_ns // 10**9,
                                                      nanosec=stamp_ns % 10**9),
        frame_id='cam')
    payload = fields.data if data is None else data
    return ts.types['sensor_msgs/msg/Image'](
        header=header, height=fields.height, width=fields.width, encoding=fields.encoding,
        is_bigendian=0, step=fields.step, data=np.frombuffer(payload, np.uint8))


def string_message(text: str) -> Any:
    """Build a rosbags std_msgs/String."""
    return typestore().types['std_msgs/msg/String'](data=text)


def cut(path: Path, fraction: float = 0.5) -> Path:
    """Truncate the storage file of a bag folder (or a file) to ``fraction`` of its size."""
    target = path if path.is_file() else next(p for p in path.iterdir()
                                              if p.suffix in ('.mcap', '.db3'))
    size = target.stat().st_size
    with open(target, 'r+b') as stream:
        stream.truncate(int(size * fraction))
    return target
