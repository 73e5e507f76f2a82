"""Run the Monitor over a bag exactly like the live node and collect per-frame results.

As in the node, every camera topic gets its own sequential state keyed by
:func:`~vae_ood_monitor.core.topics.camera_name`, the header stamp is passed to
:meth:`Monitor.process` as ``stamp_ns``, a frame that fails to decode is counted and skipped,
and each decision publishes the camera's alert, score and per-dimension KL plus the aggregate
alert (OR of every camera's latest alert) and score (max of their latest scores).
Diagnostics go out every ``diagnostics_period`` seconds of bag time and once at the end.
Outputs carry the input message's bag timestamp, so they line up with the inputs in playback.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
import math
import os
from pathlib import Path
import time
from typing import Any, Callable, Iterable, TYPE_CHECKING, TypeVar

import numpy as np

from vae_ood_monitor.core.bundle import Bundle
from vae_ood_monitor.core.diagnostics import camera_diagnostics, model_diagnostics
from vae_ood_monitor.core.errors import ConfigError, ReplayError, VaeOodError
from vae_ood_monitor.core.monitor import Monitor, MonitorConfig
from vae_ood_monitor.core.stats import RateMeter, STAGES
from vae_ood_monitor.core.topics import AGGREGATE, camera_name, is_compressed_topic
from vae_ood_monitor.core.typedefs import DecisionMode
from vae_ood_monitor.replay.bagio import COMPRESSED_IMAGE, open_bag, Storage
from vae_ood_monitor.replay.writer import check_output, OutputBag

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from vae_ood_monitor.core.monitor import Decision
    from vae_ood_monitor.replay.bagio import BagMessage, StopInfo

__all__ = ['CameraTrack', 'Progress', 'ReplayConfig', 'ReplayResult', 'frame_format',
           'replay_bag']

T = TypeVar('T')
#: ``progress(iterable, total, description)``: wraps the message stream (e.g. with tqdm).
Progress = Callable[[Iterable[T], 'int | None', str], Iterable[T]]


@dataclass(frozen=True)
class ReplayConfig:
    """What to replay and what to write (validated here, whether from the CLI or code).

    ``topics`` empty means the bag's only image topic. ``start_s`` / ``end_s`` bound the bag
    time in seconds from the bag start. ``out`` None writes no bag. ``debug_width`` is the
    width of the debug overlay image (None: the camera's own width). ``latency_budget_ms``
    turns diagnostics to WARN when the p99 latency exceeds it, as the node's parameter does.
    """

    topics: tuple[str, ...] = ()
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    out: Path | None = None
    storage: Storage = Storage.MCAP
    start_s: float | None = None
    end_s: float | None = None
    copy_input: bool = False
    debug_image: bool = False
    debug_width: int | None = 320
    allow_mixed: bool = False
    diagnostics_period: float = 1.0
    latency_budget_ms: float | None = None
    namespace: str = '/'
    force: bool = False

    def __post_init__(self) -> None:
        topics = (self.topics,) if isinstance(self.topics, str) else tuple(self.topics)
        object.__setattr__(self, 'topics', topics)
        try:
            object.__setattr__(self, 'storage', Storage(self.storage))
        except ValueError:
            raise ConfigError(f'storage {self.storage!r} must be one of: '
                              f'{", ".join(s.value for s in Storage)}.') from None
        if self.out is not None:
            object.__setattr__(self, 'out', Path(self.out))
        if self.latency_budget_ms is not None and not self.latency_budget_ms > 0:
            raise ConfigError(f'latency_budget_ms {self.latency_budget_ms!r} must be positive '
                              'or None.')
        if not (isinstance(self.diagnostics_period, (int, float))
                and math.isfinite(self.diagnostics_period) and self.diagnostics_period > 0):
            raise ConfigError(f'diagnostics_period {self.diagnostics_period!r} must be a '
                              'positive number of seconds.')
        if self.debug_width is not None and not (isinstance(self.debug_width, int)
                                                 and self.debug_width >= 16):
            raise ConfigError(f'debug_width {self.debug_width!r} must be an integer >= 16 or '
                              'None.')
        if (self.copy_input or self.debug_image) and self.out is None:
            raise ConfigError('copy_input and debug_image need an output bag (--out).')


@dataclass
class CameraTrack:
    """Everything replay saw of one camera: per processed frame, plus failures and counts."""

    camera: str
    topic: str
    msgtype: str
    frames: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[int, int, str]] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    log_ns: list[int] = field(default_factory=list)
    stamp_ns: list[int] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    evidence: list[float] = field(default_factory=list)
    alert: list[bool] = field(default_factory=list)
    fired: list[tuple[str, ...]] = field(default_factory=list)
    latency_ns: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def processed(self) -> int:
        """Number of frames with a decision."""
        return len(self.score)

    def add(self, message: BagMessage, decision: Decision) -> None:
        """Record one decision."""
        self.index.append(message.index)
        self.log_ns.append(message.log_ns)
        self.stamp_ns.append(decision.stamp_ns)
        self.score.append(decision.score)
        self.evidence.append(evidence(decision))
        self.alert.append(decision.alert)
        self.fired.append(decision.fired)
        self.latency_ns.append(tuple(decision.latency.as_dict().values()))

    def fail(self, message: BagMessage, kind: str) -> None:
        """Record a frame that produced no decision."""
        self.failed[kind] += 1
        self.failures.append((message.index, message.stamp_ns, kind))

    def array(self, name: str) -> NDArray[Any]:
        """Return one per-frame column as numpy values; ``latency_ns`` is n x 6 in STAGES order."""
        values = getattr(self, name)
        if name == 'latency_ns':
            return np.asarray(values, np.int64).reshape(-1, len(STAGES))
        dtypes = {'alert': np.bool_, 'score': np.float64, 'evidence': np.float64}
        return np.asarray(values, dtypes.get(name, np.int64))


@dataclass
class ReplayResult:
    """The outcome of one replay."""

    bag: Path
    storage: Storage
    bag_start_ns: int | None
    window_ns: tuple[int | None, int | None]
    model_name: str
    model_sha256: str
    mode: DecisionMode
    cameras: dict[str, CameraTrack]
    wall_s: float
    load_s: float
    out: Path | None = None
    out_topics: list[str] = field(default_factory=list)
    stopped: StopInfo | None = None
    recovered: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def processed(self) -> int:
        """Frames with a decision, over all cameras."""
        return sum(t.processed for t in self.cameras.values())

    @property
    def throughput(self) -> float:
        """Processed frames per second of replay wall time (read + monitor + write)."""
        return self.processed / self.wall_s if self.wall_s > 0 else 0.0


def evidence(decision: Decision) -> float:
    """Return the strongest partition's evidence: above 1.0 it triggers (as the overlay shows).

    CUSUM statistic / tau in cusum mode, the score against its threshold(s) in threshold mode.
    """
    return max((state.evidence for state in decision.partitions), default=0.0)


def frame_format(msg: Any) -> str:
    """Describe what must stay constant within a topic: size and encoding, or the format."""
    if hasattr(msg, 'encoding'):
        return f'{msg.width}x{msg.height} {msg.encoding}'
    return f'compressed {getattr(msg, "format", "?")}'


def _identity(iterable: Iterable[T], total: int | None, desc: str) -> Iterable[T]:
    return iterable


def replay_bag(bag_path: str | os.PathLike[str], model: Bundle | str | os.PathLike[str],
               config: ReplayConfig | None = None, *, progress: Progress[Any] | None = None,
               monitor: Monitor | None = None) -> ReplayResult:
    """Replay the camera topics of a bag through a Monitor; optionally write an output bag.

    ``monitor`` lets a caller inject a ready Monitor (e.g. with a custom encoder); otherwise one
    is built from ``model`` and ``config.monitor``.

    Raises:
        ReplayError: bad bag, topic, window, mixed frame formats, or an existing output.
    """
    config = config or ReplayConfig()
    progress = progress or _identity
    if config.out is not None:
        check_output(config.out, config.force, inputs=[bag_path])
    with open_bag(bag_path) as bag:
        topics = bag.select(config.topics)
        window = bag.window(config.start_s, config.end_s)
        tracks: dict[str, CameraTrack] = {}
        for info in topics:
            camera = camera_name(info.name)
            if camera in tracks:
                raise ReplayError(f'Topics {tracks[camera].topic!r} and {info.name!r} both map '
                                  f'to camera name {camera!r}; replay one of them at a time.')
            tracks[camera] = CameraTrack(camera, info.name, info.msgtype)
        started = time.perf_counter()
        monitor = monitor or Monitor(model, config.monitor)
        model_path = '' if isinstance(model, Bundle) else str(model)
        load_s = time.perf_counter() - started
        result = ReplayResult(
            bag=Path(bag_path), storage=bag.storage, bag_start_ns=bag.start_ns,
            window_ns=window, model_name=monitor.bundle.name,
            model_sha256=monitor.bundle.manifest.model.sha256, mode=monitor.mode,
            cameras=tracks, wall_s=0.0, load_s=load_s, out=config.out,
            recovered=bag.recovered, notes=list(bag.notes))
        if bag.recovered:
            result.notes.append(bag.recovered)
        for info in topics:
            if is_compressed_topic(info.name) != (info.msgtype == COMPRESSED_IMAGE):
                result.notes.append(f'topic {info.name!r} carries {info.msgtype} (its name '
                                    'suggests otherwise); decoded by its type')
        counts = [t.count for t in topics]
        total = None if any(c is None for c in counts) or any(window) else sum(
            c for c in counts if c is not None)
        messages = progress(bag.messages([t.name for t in topics], *window), total,
                            f'replay {Path(bag_path).name}')
        output = None if config.out is None else OutputBag(
            config.out, storage=config.storage, force=config.force, namespace=config.namespace)
        started = time.perf_counter()
        try:
            if output is None:
                _run(messages, monitor, tracks, config, None, model_path)
            else:
                with output as out:
                    _setup_outputs(out, monitor, tracks, config)
                    _run(messages, monitor, tracks, config, out, model_path)
                    result.out_topics = out.topics
        finally:
            _close(messages)  # a progress bar clears its line before any error is printed
        result.wall_s = time.perf_counter() - started
        result.stopped = bag.stopped
    if not result.processed:
        result.notes.append('no frame was processed (empty window, topic or all frames failed)')
    return result


def _close(iterable: Iterable[Any]) -> None:
    close = getattr(iterable, 'close', None)
    if close is not None:
        close()


def _setup_outputs(out: OutputBag, monitor: Monitor, tracks: dict[str, CameraTrack],
                   config: ReplayConfig) -> None:
    latent = monitor.bundle.manifest.model.latent_dim
    for camera, track in tracks.items():
        out.add_camera(camera, latent, debug_image=config.debug_image)
    out.add_camera(AGGREGATE, latent)
    out.add_diagnostics()
    if config.copy_input:
        for track in tracks.values():
            out.add_copy(track.topic, track.msgtype)


class _Diagnostics:
    """Bag-time diagnostics as the node publishes them, every period and at the end.

    Rates come from bag (receive) timestamps; the entries are the node's: one per camera
    (core.diagnostics.camera_diagnostics) plus the model entry.
    """

    def __init__(self, monitor: Monitor, config: ReplayConfig, model_path: str) -> None:
        self.monitor = monitor
        self.period_ns = round(config.diagnostics_period * 1e9)
        self.budget_ms = config.latency_budget_ms
        self.model_path = model_path
        self.rates: dict[str, RateMeter] = {}
        self.next_ns: int | None = None
        self.last: tuple[int, int] | None = None

    def rate(self, camera: str) -> float:
        """Frames per second of ``camera`` at the bag time now (a silent camera's falls)."""
        meter = self.rates.get(camera)
        if meter is None:
            return 0.0
        return meter.rate(self.last[0] if self.last is not None else None)

    def tick(self, camera: str, log_ns: int, stamp_ns: int, out: OutputBag | None) -> None:
        self.rates.setdefault(camera, RateMeter()).tick(log_ns)
        self.last = (log_ns, stamp_ns)
        if self.next_ns is None:
            self.next_ns = log_ns + self.period_ns
        elif log_ns >= self.next_ns and out is not None:
            self.publish(out)
            self.next_ns = log_ns + self.period_ns

    def publish(self, out: OutputBag) -> None:
        if self.last is None:
            return
        monitor = self.monitor
        entries = [camera_diagnostics(monitor, camera, input_rate=self.rate(camera),
                                      processed_rate=self.rate(camera),
                                      latency_budget_ms=self.budget_ms)
                   for camera in self.rates]
        entries.append(model_diagnostics(monitor, self.model_path))
        out.write_diagnostics(self.last[0], self.last[1], entries)


def _run(messages: Iterable[BagMessage], monitor: Monitor, tracks: dict[str, CameraTrack],
         config: ReplayConfig, out: OutputBag | None, model_path: str = '') -> None:
    by_topic = {track.topic: track for track in tracks.values()}
    latest: dict[str, tuple[bool, float]] = {}
    diagnostics = _Diagnostics(monitor, config, model_path)
    formats: dict[str, str] = {}
    debug = out is not None and config.debug_image
    for message in messages:
        track = by_topic[message.topic]
        camera = track.camera
        track.frames += 1
        if out is not None and config.copy_input:
            out.write_raw(message.topic, message.msgtype, message.log_ns, message.raw)
        # As the node: the header stamp, or the arrival time when the driver left it zero.
        stamp = message.stamp_ns or message.log_ns
        diagnostics.tick(camera, message.log_ns, stamp, out)
        msg = message.msg
        if msg is None:
            error = message.error or ReplayError('message could not be deserialised')
            monitor.record_failure(camera, error)
            track.fail(message, type(error).__name__)
            continue
        fmt = frame_format(msg)
        previous = formats.get(camera)
        if previous != fmt:
            if previous is not None and not config.allow_mixed:
                raise ReplayError(
                    f'Topic {track.topic!r} changes frame format at message {message.index}: '
                    f'{previous} -> {fmt}; frames of one topic must share size and encoding '
                    '(pass --allow-mixed to replay it anyway).')
            formats[camera] = fmt
            if fmt not in track.formats:
                track.formats.append(fmt)
        try:
            decision = monitor.process(msg, stamp, camera)
        except VaeOodError as err:  # bad frame: counted by the Monitor, as in the node
            track.fail(message, err.kind)
            continue
        track.add(message, decision)
        latest[camera] = (decision.alert, decision.score)
        if out is None:
            continue
        out.write_camera(camera, message.log_ns, decision.alert, decision.score, decision.kl)
        out.write_aggregate(message.log_ns, any(a for a, _ in latest.values()),
                            max(s for _, s in latest.values()))
        if debug:
            from vae_ood_monitor.core.image import to_rgb8
            from vae_ood_monitor.core.overlay import render_debug_image

            lines = (f'{camera}: {decision.latency.total / 1e6:.1f} ms/frame, in '
                     f'{diagnostics.rate(camera):.1f} Hz',
                     f'provider {monitor.provider}, dropped 0')
            image = render_debug_image(to_rgb8(msg), decision, config.debug_width, lines)
            out.write_debug_image(camera, message.log_ns, stamp, message.frame_id,
                                  image)
    if out is not None:
        diagnostics.publish(out)
