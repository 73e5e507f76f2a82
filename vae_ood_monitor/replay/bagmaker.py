"""Turn frame sources (folders, videos, donkeycar tubs, synthetic drives) into ROS 2 bags.

One camera topic of sensor_msgs/Image in any encoding :data:`data.messages.ENCODABLE` lists
(optionally with padded rows) or of CompressedImage (JPEG/PNG). Header stamps equal the bag
timestamps: ``T0 + i / rate`` (``T0`` = 1.7e9 s, so stamps look like epoch time), or the
source's own stamps when ``rate_hz`` is None (relative ones shifted by ``T0``). Frames that
carry labels (folders with labels.csv, synthetic sequences) also give ``BAG/labels.csv``
(``stamp_ns,label``), which ``vae-ood replay`` picks up by itself.

A synthetic source is the string ``synth:SHIFT:MODE[:N[:SEED]]``: N frames (default 200) of
drive SEED (default 0) with SHIFT (``none`` or a :class:`ShiftKind`) on the frames MODE
(id, m1, m2, m3) marks, at a test-range severity drawn from a generator seeded with SEED.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from itertools import islice
import math
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, TYPE_CHECKING

import cv2
import numpy as np

from vae_ood_monitor.core.errors import ConfigError, DataError
from vae_ood_monitor.core.topics import is_compressed_topic
from vae_ood_monitor.data.messages import compress_rgb, ENCODABLE, encode_rgb
from vae_ood_monitor.data.sources import Frame
from vae_ood_monitor.replay.bagio import COMPRESSED_IMAGE, IMAGE, Storage, typestore
from vae_ood_monitor.replay.writer import BAG_VERSION, check_output, staged_output

if TYPE_CHECKING:
    from vae_ood_monitor.replay.replay import Progress

__all__ = ['BagSpec', 'LABELS_FILE', 'MadeBag', 'SynthSpec', 'T0_NS', 'make_bag',
           'parse_synth', 'synth_frames']

#: Base of generated stamps: 2023-11-14T22:13:20Z, so stamps look like real epoch time.
T0_NS = 1_700_000_000 * 1_000_000_000
#: Ground truth next to the bag: columns stamp_ns,label (1 = OOD).
LABELS_FILE = 'labels.csv'
_EPOCH_LIKE_NS = 10**18  # stamps at or after 2001-09-09 are kept as they are
_COMPRESSED = ('jpeg', 'png')


@dataclass(frozen=True)
class BagSpec:
    """How to write the camera topic (validated here, whether from the CLI or code)."""

    topic: str = '/camera/image_raw'
    encoding: str = 'rgb8'
    compressed: str | None = None
    rate_hz: float | None = None
    storage: Storage = Storage.MCAP
    frame_id: str = 'camera'
    padding: int = 0
    limit: int | None = None
    big_endian: bool = False
    size: tuple[int, int] | None = None
    quality: int = 90

    def __post_init__(self) -> None:
        if not isinstance(self.topic, str) or not self.topic.strip('/ '):
            raise ConfigError(f'topic {self.topic!r} must be a topic name such as '
                              '/camera/image_raw.')
        object.__setattr__(self, 'topic', '/' + self.topic.strip().lstrip('/'))
        if self.encoding not in ENCODABLE:
            raise ConfigError(f'encoding {self.encoding!r} cannot be written; choose one of: '
                              f'{", ".join(ENCODABLE)}.')
        if self.compressed is not None and self.compressed not in _COMPRESSED:
            raise ConfigError(f"compressed {self.compressed!r} must be 'jpeg' or 'png'.")
        if self.rate_hz is not None and not (isinstance(self.rate_hz, (int, float))
                                             and math.isfinite(self.rate_hz)
                                             and 0 < self.rate_hz <= 10_000):
            raise ConfigError(f'rate {self.rate_hz!r} must be a frame rate in (0, 10000] Hz.')
        try:
            object.__setattr__(self, 'storage', Storage(self.storage))
        except ValueError:
            raise ConfigError(f'storage {self.storage!r} must be one of: '
                              f'{", ".join(s.value for s in Storage)}.') from None
        if not isinstance(self.padding, int) or self.padding < 0:
            raise ConfigError(f'padding {self.padding!r} must be a non-negative number of '
                              'bytes per row.')
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise ConfigError(f'limit {self.limit!r} must be a positive number of frames.')
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ConfigError(f'size {self.size!r} must be (width, height), both positive.')
        if not 1 <= self.quality <= 100:
            raise ConfigError(f'quality {self.quality!r} must be in [1, 100].')

    @property
    def msgtype(self) -> str:
        """The message type written on the topic."""
        return COMPRESSED_IMAGE if self.compressed else IMAGE


@dataclass(frozen=True)
class SynthSpec:
    """A synthetic labelled drive: ``synth:SHIFT:MODE[:N[:SEED]]``."""

    shift: str | None
    mode: str
    n: int = 200
    seed: int = 0


@dataclass(frozen=True)
class MadeBag:
    """What :func:`make_bag` wrote."""

    path: Path
    topic: str
    msgtype: str
    count: int
    start_ns: int
    end_ns: int
    labels: Path | None
    notes: tuple[str, ...] = ()


def parse_synth(text: str) -> SynthSpec:
    """Parse ``synth:SHIFT:MODE[:N[:SEED]]``, e.g. ``synth:rain:m2:200:7``."""
    from vae_ood_monitor.data.drives import SequenceMode
    from vae_ood_monitor.data.shifts import ShiftKind

    usage = ('expected synth:SHIFT:MODE[:N[:SEED]], e.g. synth:rain:m2:200:7 or '
             'synth:none:id:500')
    parts = text.split(':')
    if parts[0] != 'synth' or not 3 <= len(parts) <= 5:
        raise ConfigError(f'Synthetic source {text!r} is malformed; {usage}.')
    shift = None if parts[1] in ('none', '') else parts[1]
    if shift is not None and shift not in {k.value for k in ShiftKind}:
        raise ConfigError(f'Unknown shift {parts[1]!r} in {text!r}; choose none or one of: '
                          f'{", ".join(k.value for k in ShiftKind)}.')
    if parts[2] not in {m.value for m in SequenceMode}:
        raise ConfigError(f'Unknown mode {parts[2]!r} in {text!r}; choose one of: '
                          f'{", ".join(m.value for m in SequenceMode)}.')
    if shift is None and parts[2] != 'id':
        raise ConfigError(f'{text!r}: mode {parts[2]!r} needs a shift; use synth:none:id:N or '
                          'name a shift.')
    numbers = []
    for name, value in zip(('N', 'SEED'), parts[3:]):
        if not value.isdigit():
            raise ConfigError(f'{name} {value!r} in {text!r} must be a non-negative integer; '
                              f'{usage}.')
        numbers.append(int(value))
    spec = SynthSpec(shift, parts[2], *numbers)
    if spec.n < 1:
        raise ConfigError(f'{text!r} asks for {spec.n} frames; N must be >= 1.')
    return spec


def synth_frames(spec: SynthSpec, size: tuple[int, int] = (160, 120)) -> list[Frame]:
    """Render the labelled synthetic drive ``spec`` at ``size`` (width, height).

    Stamps are relative, at the scene's frame rate (20 Hz); labels are 1 on OOD frames.
    """
    from vae_ood_monitor.data.scenes import SceneConfig
    from vae_ood_monitor.data.drives import make_sequence
    from vae_ood_monitor.data.shifts import sample_severity

    config = SceneConfig(width=size[0], height=size[1])
    severity = 0.0
    if spec.shift is not None:
        severity = sample_severity(spec.shift, 'test', np.random.default_rng(spec.seed))
    images, labels = make_sequence(spec.seed, spec.n, spec.shift, severity, spec.mode, config)
    period = 1e9 / config.fps
    meta = {'shift': spec.shift or 'none', 'severity': f'{severity:.3f}'}
    return [Frame(np.ascontiguousarray(image), round(i * period), i, int(label), meta)
            for i, (image, label) in enumerate(zip(images, labels))]


def _open_frames(frames: Any, spec: BagSpec) -> tuple[Iterable[Frame], int | None, str]:
    if isinstance(frames, str) and frames.startswith('synth:'):
        synth = parse_synth(frames)
        if spec.limit is not None:
            synth = SynthSpec(synth.shift, synth.mode, min(synth.n, spec.limit), synth.seed)
        rendered = synth_frames(synth, spec.size or (160, 120))
        return rendered, len(rendered), frames
    if isinstance(frames, (str, os.PathLike)):
        from vae_ood_monitor.data.sources import open_source

        source = open_source(frames)
        total = len(source) or None
        if spec.limit is not None:
            total = min(total, spec.limit) if total else None
        return source, total, source.name
    frames = list(frames)
    return frames, len(frames), 'frames'


def _stamps(frames: Iterable[Frame], rate_hz: float | None) -> Iterator[tuple[Frame, int]]:
    previous = -1
    for i, frame in enumerate(frames):
        if rate_hz is not None:
            stamp = T0_NS + round(i * 1e9 / rate_hz)
        else:
            stamp = int(frame.stamp_ns)
            stamp = stamp if stamp >= _EPOCH_LIKE_NS else T0_NS + stamp
        stamp = max(stamp, previous)  # bag time never runs backwards
        previous = stamp
        yield frame, stamp


def make_bag(frames: str | os.PathLike[str] | Iterable[Frame], out: str | os.PathLike[str],
             spec: BagSpec | None = None, *, force: bool = False,
             progress: Progress[Any] | None = None) -> MadeBag:
    """Write the frames of a source (path, ``synth:...`` string or Frame iterable) as a bag.

    The bag is written into a temporary sibling and renamed to ``out`` at the end (replacing
    an existing ``out`` only with ``force``, and only then).

    Raises:
        ConfigError: bad spec or synthetic source string.
        DataError: the frame source cannot be read or yields no frame.
        ReplayError: ``out`` exists and ``force`` is False.
    """
    spec = spec or BagSpec()
    out = check_output(out, force)  # fail fast, before frames are rendered or decoded
    notes = []
    if spec.compressed and not is_compressed_topic(spec.topic):
        notes.append(f'topic {spec.topic!r} carries CompressedImage but does not end in '
                     "/compressed (image_transport's naming); consider "
                     f'{spec.topic.rstrip("/")}/compressed')
    source, total, name = _open_frames(frames, spec)
    if spec.limit is not None:
        source = islice(source, spec.limit)
    if progress is not None:
        source = progress(source, total, f'bag {Path(name).name}')
    labels: list[tuple[int, int]] = []
    try:
        with staged_output(out, force=force) as target:
            count, start, end = _write(target, source, spec, labels)
            if count == 0:
                raise DataError(f'Frame source {name!r} yielded no frames; nothing to write.')
            if labels:
                with open(target / LABELS_FILE, 'w', newline='', encoding='utf-8') as stream:
                    rows = csv.writer(stream)
                    rows.writerow(['stamp_ns', 'label'])
                    rows.writerows(labels)
    finally:
        close = getattr(source, 'close', None)
        if close is not None:
            close()  # a progress bar clears its line before any error is printed
    return MadeBag(out, spec.topic, spec.msgtype, count, start, end,
                   out / LABELS_FILE if labels else None, tuple(notes))


def _message(image: Any, stamp: int, spec: BagSpec) -> Any:
    """Build the rosbags Image or CompressedImage of one RGB frame."""
    types = typestore().types
    sec, nanosec = divmod(stamp, 1_000_000_000)
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec),
        frame_id=spec.frame_id)
    if spec.compressed:
        packed = compress_rgb(image, spec.compressed, spec.quality)
        return types[COMPRESSED_IMAGE](header=header, format=packed.format,
                                       data=np.frombuffer(packed.data, np.uint8))
    fields = encode_rgb(image, spec.encoding, big_endian=spec.big_endian, padding=spec.padding)
    return types[IMAGE](header=header, height=fields.height, width=fields.width,
                        encoding=fields.encoding, is_bigendian=fields.is_bigendian,
                        step=fields.step, data=np.frombuffer(fields.data, np.uint8))


def _write(target: Path, source: Iterable[Frame], spec: BagSpec,
           labels: list[tuple[int, int]]) -> tuple[int, int, int]:
    """Write the frames into a new bag at ``target``; return (count, first, last stamp)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = typestore()
    plugin = StoragePlugin.MCAP if spec.storage is Storage.MCAP else StoragePlugin.SQLITE3
    count = start = end = 0
    with Writer(target, version=BAG_VERSION, storage_plugin=plugin) as writer:
        connection = writer.add_connection(spec.topic, spec.msgtype, typestore=ts)
        for frame, stamp in _stamps(source, spec.rate_hz):
            image: Any = frame.image
            if spec.size is not None and image.shape[1::-1] != tuple(spec.size):
                image = cv2.resize(image, tuple(spec.size), interpolation=cv2.INTER_AREA)
            message = _message(image, stamp, spec)
            writer.write(connection, stamp, ts.serialize_cdr(message, spec.msgtype))
            if frame.label is not None:
                labels.append((stamp, int(frame.label)))
            start = stamp if count == 0 else start
            end = stamp
            count += 1
    return count, start, end
