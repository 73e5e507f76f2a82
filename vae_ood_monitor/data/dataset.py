"""Load frame sources into one in-memory uint8 array at a model's input size.

Training, calibration and evaluation pre-decode their frames once (JPEG decoding would
otherwise compete with training for the CPU) and resize them with the same
:func:`~vae_ood_monitor.core.preprocess.resize_image` the robot runtime uses, so every stage sees
identical pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from typing import Callable, Iterable, Iterator, Sequence, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.errors import DataError
from vae_ood_monitor.core.preprocess import resize_image
from vae_ood_monitor.core.typedefs import Interpolation
from vae_ood_monitor.data.sources import Frame, FrameSource, open_source

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ['concat_frames', 'FrameArray', 'Progress', 'load_frames', 'split_stretches']

#: Wraps an iterable to show progress (e.g. ``functools.partial(tqdm, desc=...)``).
Progress = Callable[[Iterable[Frame], int, str], Iterable[Frame]]


@dataclass(frozen=True, eq=False)
class FrameArray:
    """Frames of one or more sources at one size.

    ``labels``: 1 OOD, 0 in-distribution, -1 unknown. ``groups``: one id per (source, sequence),
    named in ``group_names``; consecutive frames of a group form a time series.
    """

    images: NDArray[np.uint8]
    labels: NDArray[np.int8]
    stamps: NDArray[np.int64]
    groups: NDArray[np.int32]
    group_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: NDArray[np.bool_] | NDArray[np.intp] | slice) -> FrameArray:
        """Frames selected by a mask, an index array or a slice (group names kept)."""
        return FrameArray(self.images[index], self.labels[index], self.stamps[index],
                          self.groups[index], self.group_names)

    def sequences(self) -> list[NDArray[np.intp]]:
        """Frame indices of each group (one recorded sequence), in group order."""
        return [np.flatnonzero(self.groups == g) for g in np.unique(self.groups)]

    def split_groups(self, fraction: float) -> tuple[FrameArray, FrameArray]:
        """Split each group in time: the first part and the last ``fraction`` of its frames.

        Splitting in time (not at random) keeps near-duplicate neighbouring frames on one side.
        """
        tail = np.zeros(len(self), dtype=bool)
        for group in np.unique(self.groups):
            where = np.flatnonzero(self.groups == group)
            cut = len(where) - int(round(len(where) * fraction))
            tail[where[cut:]] = True
        return self.subset(~tail), self.subset(tail)

    def resized(self, height: int, width: int,
                interpolation: Interpolation | str = Interpolation.AREA) -> FrameArray:
        """Return the frames at another size (the runtime's resize; self when already so)."""
        if self.images.shape[1:3] == (height, width):
            return self
        images = np.stack([resize_image(img, width, height, interpolation)
                           for img in self.images])
        return FrameArray(images, self.labels, self.stamps, self.groups, self.group_names)

    def summary(self) -> dict[str, object]:
        """Describe the frames for provenance records (JSON-ready)."""
        return {'frames': len(self), 'size': list(self.images.shape[1:3]),
                'sources': sorted({n.split('#')[0] for n in self.group_names}),
                'labelled_ood': int((self.labels == 1).sum()),
                'labelled_id': int((self.labels == 0).sum())}


def concat_frames(parts: Sequence[FrameArray]) -> FrameArray:
    """Join frame sets of one size into one; group ids are renumbered to stay distinct."""
    if not parts:
        raise DataError('No frame sets to join.')
    sizes = {part.images.shape[1:] for part in parts}
    if len(sizes) > 1:
        raise DataError(f'Frame sets of different sizes {sorted(sizes)} cannot be joined; '
                        'load them at one size.')
    offsets = np.cumsum([0] + [len(part.group_names) for part in parts[:-1]])
    return FrameArray(np.concatenate([part.images for part in parts]),
                      np.concatenate([part.labels for part in parts]),
                      np.concatenate([part.stamps for part in parts]),
                      np.concatenate([part.groups + offset
                                      for part, offset in zip(parts, offsets)]).astype(np.int32),
                      tuple(name for part in parts for name in part.group_names))


def split_stretches(frames: FrameArray, length: int = 100,
                    pattern: Sequence[int] = (0, 0, 0, 1, 2)) -> tuple[FrameArray, ...]:
    """Cut every group into stretches of ``length`` frames and deal them out by ``pattern``.

    Stretch k (counted over all groups) goes to part ``pattern[k % len(pattern)]``; each
    stretch becomes a group of its own. The default deals train, train, train, calibration,
    test (3:1:1), so that neighbouring near-duplicate frames never straddle two parts.
    """
    if length < 1 or not pattern or min(pattern) < 0:
        raise DataError(f'length {length!r} must be >= 1 and pattern {list(pattern)!r} a '
                        'non-empty list of part numbers.')
    part = np.zeros(len(frames), np.int8)
    groups = np.zeros(len(frames), np.int32)
    stretch = 0
    for group in np.unique(frames.groups):
        where = np.flatnonzero(frames.groups == group)
        for start in range(0, len(where), length):
            idx = where[start:start + length]
            part[idx] = pattern[stretch % len(pattern)]
            groups[idx] = stretch
            stretch += 1
    names = tuple(f'stretch{i}' for i in range(stretch))
    relabelled = FrameArray(frames.images, frames.labels, frames.stamps, groups, names)
    return tuple(relabelled.subset(part == k) for k in range(max(pattern) + 1))


def load_frames(paths: Sequence[str | os.PathLike[str] | FrameSource], height: int, width: int,
                interpolation: Interpolation | str = Interpolation.AREA, *,
                limit: int | None = None, stride: int = 1, skip_first: int = 0,
                progress: Progress | None = None) -> FrameArray:
    """Decode and resize every frame of ``paths`` (folders, videos, tubs or sources).

    ``stride`` keeps every n-th frame, ``skip_first`` drops the first frames of each source (a
    robot still on the desk), ``limit`` caps the total.
    """
    if stride < 1 or skip_first < 0:
        raise DataError(f'stride {stride!r} must be >= 1 and skip_first {skip_first!r} >= 0.')
    sources = [p if isinstance(p, FrameSource) else open_source(p) for p in paths]
    if not sources:
        raise DataError('No frame sources given; pass at least one folder, video or tub.')
    total = sum(max(0, len(s) - skip_first) // stride for s in sources)
    if limit is not None:
        total = min(total, limit)
    images = np.empty((max(total, 1), height, width, 3), np.uint8)
    labels, stamps, groups, names = [], [], [], {}
    count = 0
    for number, source in enumerate(sources):
        frames: Iterable[Frame] = _select(source, skip_first, stride)
        if progress is not None:
            frames = progress(frames, max(0, len(source) - skip_first) // stride, source.name)
        for frame in frames:
            if limit is not None and count >= limit:
                break
            if count >= images.shape[0]:  # video lengths are estimates: grow
                images = np.concatenate([images, np.empty_like(images)])
            images[count] = resize_image(frame.image, width, height, interpolation)
            key = f'{source.name}#{frame.meta.get("sequence", "")}'
            groups.append(names.setdefault(key, len(names)))
            labels.append(-1 if frame.label is None else int(frame.label))
            stamps.append(frame.stamp_ns)
            count += 1
    if count == 0:
        raise DataError(f'No frames found in {", ".join(s.name for s in sources)}; check the '
                        'paths (and --skip-first / --stride).')
    return FrameArray(images[:count], np.asarray(labels, np.int8), np.asarray(stamps, np.int64),
                      np.asarray(groups, np.int32), tuple(names))


def _select(source: FrameSource, skip_first: int, stride: int) -> Iterator[Frame]:
    for position, frame in enumerate(source):
        if position >= skip_first and (position - skip_first) % stride == 0:
            yield frame
