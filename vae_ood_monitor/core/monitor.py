"""The Monitor: frame in, decision out, with a latency breakdown and per-camera state.

The ROS node and bag replay both call :meth:`Monitor.process`, so live and replayed decisions
are identical. One thread should call a Monitor (the node runs it from a single worker); the
per-camera state (sequential detectors, alert latch, counters) is keyed by camera name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
import math
import os
import time
from typing import Any, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.bundle import Bundle, load_bundle
from vae_ood_monitor.core.detector import Decider, PartitionState
from vae_ood_monitor.core.encoding import encode_rows
from vae_ood_monitor.core.errors import (BundleError, CalibrationError, ConfigError,
                                         ImageEncodingError)
from vae_ood_monitor.core.errors import VaeOodError
from vae_ood_monitor.core.flow import FlowBatcher, FlowStacker, grey
from vae_ood_monitor.core.image import decode_image, to_rgb8
from vae_ood_monitor.core.preprocess import Preprocessor
from vae_ood_monitor.core.session import EncoderSession, SessionConfig
from vae_ood_monitor.core.stats import Counts, Latency, LatencyStats, RateMeter
from vae_ood_monitor.core.typedefs import ChannelOrder, DecisionMode

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from vae_ood_monitor.core.encoding import Layout
    from vae_ood_monitor.core.flow import FlowSpec
    from vae_ood_monitor.core.typedefs import Encoder

__all__ = ['Decision', 'FROZEN', 'Monitor', 'MonitorConfig']

#: The trigger a camera that repeats one frame raises (see ``MonitorConfig.frozen_frames``).
FROZEN = 'frozen'

# Encodings whose pixels feed the model without a full-resolution colour conversion: they are
# decoded as a zero-copy view, resized first, and their planes reordered while scaling.
_DIRECT = {'rgb8': ChannelOrder.RGB, 'rgba8': ChannelOrder.RGB,
           'bgr8': ChannelOrder.BGR, 'bgra8': ChannelOrder.BGR}


@dataclass(frozen=True)
class MonitorConfig:
    """Runtime settings of a Monitor (validated here, whether they come from CLI, YAML or ROS).

    ``decision`` None picks ``cusum`` when the bundle has CUSUM parameters, else ``threshold``.
    ``clear_frames`` is the alert hysteresis: frames without a trigger before the alert clears.
    ``cusum_cap`` bounds the CUSUM statistic at ``cusum_cap * tau`` so alarms clear in bounded
    time after a shift ends (None: the cap each partition was calibrated with).
    ``partitions`` restricts the partitions used (empty: all).
    ``frozen_frames`` N > 0 raises the alert, trigger ``frozen``, while a camera's last N
    frames were identical after preprocessing: a driver that republishes its last buffer with
    fresh stamps, which neither the staleness check nor a detector's score may notice (a real
    sensor's noise never repeats a frame exactly; a simulator's camera does while the robot
    stands still, so it is off by default).
    """

    decision: DecisionMode | None = None
    session: SessionConfig = field(default_factory=SessionConfig)
    clear_frames: int = 10
    cusum_cap: float | None = None
    stats_window: int = 1000
    partitions: tuple[str, ...] = ()
    frozen_frames: int = 0

    def __post_init__(self) -> None:
        if self.decision is not None:
            try:
                object.__setattr__(self, 'decision', DecisionMode(self.decision))
            except ValueError:
                raise ConfigError(f'decision {self.decision!r} must be one of: '
                                  f'{", ".join(m.value for m in DecisionMode)}.') from None
        if not isinstance(self.clear_frames, int) or self.clear_frames < 1:
            raise ConfigError(f'clear_frames {self.clear_frames!r} must be an integer >= 1.')
        if self.cusum_cap is not None and not (math.isfinite(self.cusum_cap)
                                               and self.cusum_cap >= 1.0):
            raise ConfigError(f'cusum_cap {self.cusum_cap!r} must be >= 1 (a multiple of tau), '
                              "or unset to use the bundle's.")
        if not isinstance(self.stats_window, int) or self.stats_window < 1:
            raise ConfigError(f'stats_window {self.stats_window!r} must be a positive integer.')
        partitions = (self.partitions,) if isinstance(self.partitions, str) else self.partitions
        object.__setattr__(self, 'partitions', tuple(partitions))
        if (not isinstance(self.frozen_frames, int) or isinstance(self.frozen_frames, bool)
                or self.frozen_frames < 0 or self.frozen_frames == 1):
            raise ConfigError(f'frozen_frames {self.frozen_frames!r} must be 0 (off) or an '
                              'integer >= 2: identical consecutive frames before the alert.')


@dataclass(frozen=True, eq=False)
class Decision:
    """The monitor's verdict on one frame of one camera.

    ``row`` is the frame's encoding (:mod:`~vae_ood_monitor.core.encoding`); its per-dim KL
    (``kl``) and their sum (``score``) are worked out when first read, not on the hot path.
    ``ready`` is False while a flow bundle's stack fills (after a start, a gap or a reset):
    the encoder did not run, ``row`` is zeros, no partition was updated and the alert is
    the one latched before.
    """

    camera: str
    stamp_ns: int
    row: NDArray[np.float64]
    partitions: tuple[PartitionState, ...]
    alert: bool
    fired: tuple[str, ...]
    latency: Latency
    mode: DecisionMode
    layout: Layout
    ready: bool = True

    def joined(self, other: Decision, prefix: str) -> Decision:
        """Return this decision with a companion's alert ORed in.

        The companion's partitions and triggers join this one's, their names prefixed (the
        Monitor uses its bundle's kind: ``flow/generic``); the latency adds up stage by stage.
        The encoding (``row``, ``kl``, ``score``) and ``ready`` stay this decision's.
        """
        partitions = self.partitions + tuple(replace(p, name=prefix + p.name)
                                             for p in other.partitions)
        mine, theirs = self.latency.as_dict(), other.latency.as_dict()
        latency = Latency(**{k: mine[k] + theirs[k] for k in mine})
        return replace(self, partitions=partitions, alert=self.alert or other.alert,
                       fired=self.fired + tuple(prefix + f for f in other.fired),
                       latency=latency)

    @cached_property
    def kl(self) -> NDArray[np.float64]:
        """Per-dim KL divergence of the frame's latent posterior from the prior."""
        return self.layout.kl(self.row)

    @cached_property
    def score(self) -> float:
        """The summed KL (the classic VAE novelty score; the alert uses the partitions)."""
        return float(self.kl.sum())


class _Camera:
    """Per-camera state: decider (detectors + latch), counters, latency window, flow stack."""

    def __init__(self, decider: Decider, config: MonitorConfig,
                 flow: FlowSpec | None = None) -> None:
        self.decider = decider
        self.stacker = FlowStacker(flow) if flow is not None else None
        self.counts = Counts()
        self.latency = LatencyStats(config.stats_window)
        self.rate = RateMeter()
        self.last: Decision | None = None
        self.previous: NDArray[Any] | None = None  # the last model input, for frozen_frames
        self.repeats = 0

    def reset(self) -> None:
        self.decider.reset()
        if self.stacker is not None:
            self.stacker.reset()
        self.previous, self.repeats = None, 0

    def repeated(self, image: NDArray[Any], frames: int) -> bool:
        """Note ``image``; True when it completes ``frames`` identical ones in a row."""
        previous = self.previous
        if previous is not None and previous.shape == image.shape:
            self.repeats = self.repeats + 1 if np.array_equal(previous, image) else 0
            np.copyto(previous, image)  # the preprocessor may reuse its output buffer
        else:
            self.repeats, self.previous = 0, image.copy()
        return self.repeats + 1 >= frames


class Monitor:
    """Run a bundle's encoder on camera frames and decide whether they are out of distribution."""

    config: MonitorConfig

    def __init__(self, bundle: Bundle | str | os.PathLike[str],
                 config: MonitorConfig | None = None, encoder: Encoder | None = None, *,
                 companion: Monitor | None = None) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        #: A second monitor judging the same frames (e.g. a flow bundle beside a frame
        #: bundle): its alert is ORed into this one's decisions (see :meth:`Decision.joined`).
        self.companion = companion
        if companion is not None and companion.companion is not None:
            raise ConfigError('A companion monitor cannot have a companion of its own.')
        if companion is not None and companion.config.frozen_frames:
            raise ConfigError('The frozen-stream check runs on the primary monitor, which sees '
                              'the same frames; build the companion with frozen_frames=0.')
        self.config = config or MonitorConfig()
        manifest = self.bundle.manifest
        partitions = [p for p in manifest.partitions
                      if not self.config.partitions or p.name in self.config.partitions]
        missing = set(self.config.partitions) - {p.name for p in manifest.partitions}
        if missing:
            raise ConfigError(f'Partition(s) {sorted(missing)!r} not in the bundle; it has '
                              f'{[p.name for p in manifest.partitions]!r}.')
        if not partitions:
            raise CalibrationError(f'{self.bundle.name!r} is not calibrated; run `vae-ood '
                                   'calibrate MODEL --calib ID_FRAMES` first.')
        has_cusum = all(p.cusum is not None for p in partitions)
        self.mode = self.config.decision or (DecisionMode.CUSUM if has_cusum
                                             else DecisionMode.THRESHOLD)
        self._partitions = partitions
        self._layout = manifest.model.layout
        Decider(partitions, self.mode, layout=self._layout)  # checks calibration before ORT
        self.encoder: Encoder = encoder or EncoderSession(self.bundle, self.config.session)
        self.preprocessor = Preprocessor(manifest.input)
        self._flow = manifest.flow
        self._batcher = (FlowBatcher(manifest.input.height, manifest.input.width, manifest.flow)
                         if manifest.flow is not None else None)
        self._blank = np.zeros(self._layout.width)
        self._cameras: dict[str, _Camera] = {}

    @property
    def provider(self) -> str:
        """The execution provider in use (short name), or 'custom' for an injected encoder."""
        return getattr(self.encoder, 'provider_short', 'custom')

    def _camera(self, name: str) -> _Camera:
        state = self._cameras.get(name)
        if state is None:
            decider = Decider(self._partitions, self.mode, self.config.clear_frames,
                              self.config.cusum_cap, layout=self._layout)
            state = self._cameras[name] = _Camera(decider, self.config, self._flow)
        return state

    def _pixels(self, frame: Any) -> tuple[NDArray[np.uint8], ChannelOrder]:
        if isinstance(frame, np.ndarray):
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ImageEncodingError(
                    f'A numpy frame must be an (h, w, 3) uint8 RGB array, got shape '
                    f'{frame.shape!r} dtype {frame.dtype}; convert it first (e.g. to_rgb8).')
            return frame, ChannelOrder.RGB
        order = _DIRECT.get(getattr(frame, 'encoding', None))  # type: ignore[arg-type]
        if order is not None:
            return decode_image(frame), order
        return to_rgb8(frame), ChannelOrder.RGB

    def process(self, frame: Any, stamp_ns: int, camera: str = 'camera') -> Decision:
        """Decide on one frame: an RGB uint8 array, a sensor_msgs Image or CompressedImage.

        Bad input raises a :class:`VaeOodError` subclass after being counted for ``camera``.
        A flow bundle decides on the flow stack that this frame completes; frames of one
        camera must come in time order (a gap or a step back restarts the stack).
        """
        state = self._camera(camera)
        if state.stacker is not None:
            decision = self._process_flow(state, frame, stamp_ns, camera)
        else:
            decision = self._process_frame(state, frame, stamp_ns, camera)
        if self.companion is not None:
            decision = decision.joined(self.companion.process(frame, stamp_ns, camera),
                                       f'{self.companion.bundle.manifest.kind}/')
        return self._record(state, decision)

    def _process_frame(self, state: _Camera, frame: Any, stamp_ns: int,
                       camera: str) -> Decision:
        t0 = time.perf_counter_ns()
        try:
            pixels, order = self._pixels(frame)
            t1 = time.perf_counter_ns()
            batch = self.preprocessor(pixels, order)
        except VaeOodError as err:
            state.counts.failed[err.kind] += 1
            raise
        t2 = time.perf_counter_ns()
        row = self._encode(batch)
        t3 = time.perf_counter_ns()
        states, fired, alert = state.decider.update(row)
        alert, fired = self._frozen(state, batch, alert, fired)
        t4 = time.perf_counter_ns()
        latency = Latency(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)
        return Decision(camera, int(stamp_ns), row, states, alert, fired, latency, self.mode,
                        self._layout)

    def _process_flow(self, state: _Camera, frame: Any, stamp_ns: int,
                      camera: str) -> Decision:
        stacker = state.stacker
        assert stacker is not None and self._batcher is not None
        t0 = time.perf_counter_ns()
        try:
            pixels, order = self._pixels(frame)
            t1 = time.perf_counter_ns()
            image = grey(self.preprocessor.resize(pixels), order)
            t2 = time.perf_counter_ns()
            ready = stacker.push(image, stamp_ns)
            batch = self._batcher(stacker.stack) if ready else None
        except VaeOodError as err:
            state.counts.failed[err.kind] += 1
            raise
        t3 = time.perf_counter_ns()
        if batch is not None:
            row = self._encode(batch)
            t4 = time.perf_counter_ns()
            states, fired, alert = state.decider.update(row)
        else:  # the stack is filling: nothing to score, the latched alert stands
            row, states, fired, alert = self._blank, (), (), state.decider.latch.active
            t4 = t3
        alert, fired = self._frozen(state, image, alert, fired)
        t5 = time.perf_counter_ns()
        latency = Latency(t1 - t0, t2 - t1, t4 - t3, t5 - t4, t5 - t0, flow=t3 - t2)
        return Decision(camera, int(stamp_ns), row, states, alert, fired, latency, self.mode,
                        self._layout, ready)

    def _frozen(self, state: _Camera, image: NDArray[Any], alert: bool,
                fired: tuple[str, ...]) -> tuple[bool, tuple[str, ...]]:
        """Add the ``frozen`` trigger while the camera repeats one frame (``frozen_frames``)."""
        frames = self.config.frozen_frames
        if not frames or not state.repeated(image, frames):
            return alert, fired
        state.counts.frozen += 1
        return True, fired + (FROZEN,)

    def _encode(self, batch: NDArray[np.float32]) -> NDArray[np.float64]:
        """One frame's encoding row, checked against the bundle's layout."""
        row = encode_rows(self.encoder, batch)[0]
        if row.size != self._layout.width:
            raise BundleError(f'The encoder gave {row.size} numbers per frame; the bundle '
                              f'expects {self._layout.width}. Re-export the bundle.')
        return row

    def _record(self, state: _Camera, decision: Decision) -> Decision:
        alert = decision.alert
        latency = decision.latency
        state.counts.processed += 1
        state.counts.alerts += alert
        state.latency.add(latency)
        state.rate.tick(time.monotonic_ns())
        state.last = decision
        return decision

    def record_drop(self, camera: str = 'camera', count: int = 1) -> None:
        """Count frames that arrived but were never processed (a newer frame replaced them)."""
        self._camera(camera).counts.dropped += count

    def record_failure(self, camera: str, error: BaseException) -> None:
        """Count a failure that happened outside :meth:`process` (e.g. in a ROS callback)."""
        kind = error.kind if isinstance(error, VaeOodError) else type(error).__name__
        self._camera(camera).counts.failed[kind] += 1

    def reset(self, camera: str | None = None) -> None:
        """Clear the sequential state of one camera, or of all cameras (companion's too)."""
        for name, state in self._cameras.items():
            if camera is None or name == camera:
                state.reset()
        if self.companion is not None:
            self.companion.reset(camera)

    @property
    def cameras(self) -> list[str]:
        """Names of the cameras seen so far."""
        return list(self._cameras)

    def counts(self, camera: str | None = None) -> Counts:
        """Frame counters of one camera, or summed over all cameras."""
        if camera is not None:
            return self._camera(camera).counts
        return Counts().merge(s.counts for s in self._cameras.values())

    def latency(self, camera: str) -> LatencyStats:
        """Return the latency window of one camera."""
        return self._camera(camera).latency

    def processed_rate(self, camera: str) -> float:
        """Frames per second processed for ``camera`` (wall clock, recent window).

        Falls towards 0 while no frame is processed (:meth:`RateMeter.rate` with the time now).
        """
        return self._camera(camera).rate.rate(time.monotonic_ns())

    def flow_restarts(self, camera: str) -> int:
        """How often a stream gap restarted ``camera``'s flow stack (0 for a frame bundle)."""
        stacker = self._camera(camera).stacker
        return stacker.restarts if stacker is not None else 0

    def last_decision(self, camera: str) -> Decision | None:
        """Return the latest decision for ``camera`` (None before its first frame)."""
        state = self._cameras.get(camera)
        return state.last if state else None
