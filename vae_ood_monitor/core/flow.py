"""Dense optical flow as a detector input: what a single frame cannot show.

A *flow* bundle scores a stack of the last ``stack`` optical-flow fields of a camera instead of
one frame: a camera that shakes or freezes, frames that are dropped, a robot that suddenly moves
faster or backwards all leave single frames looking normal but change the motion between them.

Each frame is reduced to a small grey image (the bundle's input size, the same area resize as a
frame bundle), OpenCV's Farneback flow runs between consecutive grey images, and each field is
stored as uint8 (``128 + 127.5 * flow / max_displacement``, clipped): the horizontal component,
or both. Training, calibration, evaluation, replay and the ROS node all build stacks with
:class:`FlowStacker`, so the model sees identical numbers everywhere. A stream gap (a timestamp
jump beyond ``max_gap_s``, or one that does not advance) restarts the stack instead of
computing flow across it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast, TYPE_CHECKING

import cv2
import numpy as np

from vae_ood_monitor.core.errors import ConfigError, ImageEncodingError
from vae_ood_monitor.core.preprocess import Preprocessor
from vae_ood_monitor.core.typedefs import ChannelOrder

if TYPE_CHECKING:
    from collections.abc import Iterable

    from numpy.typing import NDArray

    from vae_ood_monitor.core.manifest import Manifest

__all__ = ['FLOW_COMPONENTS', 'FlowBatcher', 'FlowSpec', 'FlowStacker', 'flow_field',
           'flow_stacks', 'grey', 'input_batcher']

#: ``x``: the horizontal component only (the paper's choice); ``xy``: both.
FLOW_COMPONENTS = ('x', 'xy')
#: Farneback settings for small images: pyramid scale, levels, window, iterations, poly_n,
#: poly_sigma. Part of the detector's definition: a bundle records them.
FARNEBACK = (0.5, 2, 9, 2, 5, 1.1)


@dataclass(frozen=True)
class FlowSpec:
    """How a flow bundle turns consecutive frames into its input.

    ``stack``: flow fields per input (2-12); ``components``: ``x`` or ``xy``;
    ``max_displacement``: pixels (at the input size) that map to the ends of the uint8 range;
    ``max_gap_s``: a larger timestamp step restarts the stack.
    """

    stack: int = 6
    components: str = 'x'
    max_displacement: float = 4.0
    max_gap_s: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.stack, bool) or not isinstance(self.stack, int) or not (
                2 <= self.stack <= 12):
            raise ConfigError(f'flow stack {self.stack!r} must be an integer from 2 to 12.')
        if self.components not in FLOW_COMPONENTS:
            raise ConfigError(f'flow components {self.components!r} must be one of: '
                              f'{", ".join(FLOW_COMPONENTS)}.')
        for name in ('max_displacement', 'max_gap_s'):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value > 0):
                raise ConfigError(f'flow {name} {getattr(self, name)!r} must be positive.')
            object.__setattr__(self, name, value)

    @property
    def planes(self) -> int:
        """Flow components per field (1 or 2)."""
        return len(self.components)

    @property
    def channels(self) -> int:
        """Input channels of the model: ``stack`` fields x components, oldest first."""
        return self.stack * self.planes

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest representation."""
        return {'stack': self.stack, 'components': self.components,
                'max_displacement': self.max_displacement, 'max_gap_s': self.max_gap_s,
                'farneback': list(FARNEBACK)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlowSpec:
        """Build from the manifest representation (refusing other Farneback settings)."""
        if list(data.get('farneback', FARNEBACK)) != list(FARNEBACK):
            raise ConfigError(f'flow settings {data.get("farneback")!r} differ from this '
                              f"runtime's {list(FARNEBACK)!r}; use the vae_ood_monitor version "
                              'that exported the bundle.')
        return cls(stack=data.get('stack', 6), components=data.get('components', 'x'),
                   max_displacement=data.get('max_displacement', 4.0),
                   max_gap_s=data.get('max_gap_s', 0.5))


def grey(small: NDArray[np.uint8], order: ChannelOrder | str = ChannelOrder.RGB
         ) -> NDArray[np.uint8]:
    """Grey image of an (h, w, 3|4) uint8 colour frame already at the input size.

    Resize first with :meth:`Preprocessor.resize` (or load frames at the input size).
    """
    if small.ndim != 3 or small.shape[2] not in (3, 4) or small.dtype != np.uint8:
        raise ImageEncodingError(
            f'Expected an (h, w, 3) or (h, w, 4) uint8 colour image, got shape '
            f'{small.shape!r} dtype {small.dtype}; convert it with to_rgb8() first.')
    bgr = ChannelOrder(order) is ChannelOrder.BGR
    code = ((cv2.COLOR_BGRA2GRAY if bgr else cv2.COLOR_RGBA2GRAY) if small.shape[2] == 4
            else (cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY))
    return cast('NDArray[np.uint8]', cv2.cvtColor(small, code))


def flow_field(previous: NDArray[np.uint8], current: NDArray[np.uint8],
               spec: FlowSpec) -> NDArray[np.uint8]:
    """Farneback flow from ``previous`` to ``current`` grey images, as (h, w, planes) uint8."""
    flow = cv2.calcOpticalFlowFarneback(previous, current, None, *FARNEBACK, 0)
    if spec.planes == 1:
        flow = flow[:, :, :1]
    scaled = flow * np.float32(127.5 / spec.max_displacement) + np.float32(128.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


class FlowStacker:
    """The last ``stack`` flow fields of one camera, restarted at stream gaps.

    :meth:`push` takes grey images in time order and says whether a full stack is ready
    (:attr:`stack`, (h, w, channels) uint8, oldest field first).
    """

    def __init__(self, spec: FlowSpec) -> None:
        self.spec = spec
        self._previous: NDArray[np.uint8] | None = None
        self._last_ns: int | None = None
        self._fields: list[NDArray[np.uint8]] = []
        self.restarts = 0

    @property
    def ready(self) -> bool:
        """Whether the last push completed a stack."""
        return len(self._fields) == self.spec.stack

    @property
    def stack(self) -> NDArray[np.uint8]:
        """Return the current stack, (h, w, channels); meaningful only when :attr:`ready`."""
        return np.concatenate(self._fields, axis=2)

    def gap(self, stamp_ns: int) -> bool:
        """Whether a frame at ``stamp_ns`` cannot continue the current stream."""
        if self._last_ns is None:
            return False
        step = stamp_ns - self._last_ns
        return step <= 0 or step > self.spec.max_gap_s * 1e9

    def push(self, image: NDArray[np.uint8], stamp_ns: int) -> bool:
        """Add one grey image; return whether a full stack is ready."""
        stamp_ns = int(stamp_ns)
        if self.gap(stamp_ns):
            self.reset()
            self.restarts += 1
        if self._previous is not None:
            if image.shape != self._previous.shape:
                raise ImageEncodingError(f'Grey frame {image.shape!r} differs from the previous '
                                         f'one {self._previous.shape!r}.')
            self._fields.append(flow_field(self._previous, image, self.spec))
            if len(self._fields) > self.spec.stack:
                del self._fields[0]
        self._previous = image
        self._last_ns = stamp_ns
        return self.ready

    def reset(self) -> None:
        """Forget the stream: the next frame starts a new stack."""
        self._previous = None
        self._last_ns = None
        self._fields = []


def flow_stacks(images: Iterable[NDArray[np.uint8]], stamps: Iterable[int],
                spec: FlowSpec) -> tuple[NDArray[np.uint8], NDArray[np.intp]]:
    """Run a :class:`FlowStacker` over one stream of grey images.

    Returns the stacks (N, h, w, channels) and, for each, the index of the frame that completed
    it (frames before a full stack, and right after a gap, give none).
    """
    stacker = FlowStacker(spec)
    out, index = [], []
    for i, (image, stamp) in enumerate(zip(images, stamps)):
        if stacker.push(image, stamp):
            out.append(stacker.stack)
            index.append(i)
    if not out:
        return np.zeros((0, 0, 0, spec.channels), np.uint8), np.zeros(0, np.intp)
    return np.stack(out), np.asarray(index, np.intp)


class FlowBatcher:
    """Turn uint8 flow stacks into the model's float32 (N, channels, h, w) input in [0, 1]."""

    def __init__(self, height: int, width: int, flow: FlowSpec) -> None:
        self.shape = (1, flow.channels, height, width)
        self.buffer = np.empty(self.shape, np.float32)

    def __call__(self, stack: NDArray[np.uint8]) -> NDArray[np.float32]:
        """One (h, w, channels) stack -> the internal (1, channels, h, w) buffer."""
        np.divide(stack.transpose(2, 0, 1), np.float32(255.0), out=self.buffer[0],
                  casting='unsafe')
        return self.buffer

    def batch(self, stacks: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Several stacks (N, h, w, channels) -> a new (N, channels, h, w) float32 array."""
        stacks = np.asarray(stacks)
        wanted = (self.shape[2], self.shape[3], self.shape[1])
        if stacks.ndim != 4 or stacks.shape[1:] != wanted:
            raise ImageEncodingError(
                f'Flow stacks of shape {stacks.shape!r} do not fit the model input '
                f"{self.shape[1:]!r}; build them with the bundle's FlowSpec (flow_frames).")
        return np.divide(stacks.transpose(0, 3, 1, 2), np.float32(255.0), dtype=np.float32)


def input_batcher(manifest: Manifest) -> Preprocessor | FlowBatcher:
    """Return what turns a bundle's stored inputs into model batches (``.batch``).

    Colour frames (N, h, w, 3) for a frame bundle, flow stacks (N, h, w, channels) for a flow
    bundle.
    """
    if manifest.flow is not None:
        return FlowBatcher(manifest.input.height, manifest.input.width, manifest.flow)
    return Preprocessor(manifest.input)
