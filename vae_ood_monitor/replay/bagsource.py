"""ROS 2 bags as frame sources: train, calibrate and evaluate on recorded camera topics.

A :class:`BagSource` yields the frames of one Image or CompressedImage topic of a bag as
:class:`~vae_ood_monitor.data.sources.Frame` records, so every command that reads image
folders, videos and tubs reads bags too. Frames are decoded exactly as the monitor node
decodes them (:func:`~vae_ood_monitor.core.image.to_rgb8`), stamped with their header stamp
(the bag's log time where the header has none) and labelled from the bag's ``labels.csv``
when it has one (as ``vae-ood bag`` writes). :func:`bag_sources` also opens a folder of bags
(an archive sorted by robot and day: one source, so one drive, per bag). The CLI spells a
topic as ``BAG:TOPIC``; with no topic a bag's only image topic is used.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from vae_ood_monitor.core.errors import DataError, ImageEncodingError, ReplayError
from vae_ood_monitor.core.image import to_rgb8
from vae_ood_monitor.data.sources import Frame
from vae_ood_monitor.replay.bagio import open_bag
from vae_ood_monitor.replay.bagtypes import bags_below, holds_bags, is_bag
from vae_ood_monitor.replay.report import find_labels, Labels, read_labels

__all__ = ['BagSource', 'bag_sources', 'split_bag_spec']

_LOG = logging.getLogger(__name__)


def _bags(path: Path) -> bool:
    return is_bag(path) or holds_bags(path)


def split_bag_spec(spec: str | os.PathLike[str]) -> tuple[Path, str | None] | None:
    """Return (path, topic) when ``spec`` names a bag or a folder of bags, else None.

    ``spec`` is ``PATH`` or ``PATH:TOPIC``. Nothing is opened: the check looks at the paths
    only (see :func:`~vae_ood_monitor.replay.bagtypes.is_bag`).
    """
    path = Path(spec)
    if _bags(path):
        return path, None
    text = os.fspath(spec)
    bag, colon, topic = text.partition(':')
    while colon:
        if topic and _bags(Path(bag)):
            return Path(bag), topic
        head, colon, topic = topic.partition(':')
        bag = f'{bag}:{head}'
    return None


def bag_sources(path: str | os.PathLike[str], topic: str | None = None) -> list[BagSource]:
    """Open a bag, or every bag in and below a folder of bags, on ``topic``.

    Each bag is one source (so one drive for calibration's cross-fitting), named by its path
    below ``path``.
    """
    root = Path(path)
    if is_bag(root):
        return [BagSource(root, topic)]
    return [BagSource(bag, topic, name=str(bag.relative_to(root)))
            for bag in bags_below(root)]


class BagSource:
    """The frames of one image topic of a ROS 2 bag (a :class:`FrameSource`)."""

    def __init__(self, path: str | os.PathLike[str], topic: str | None = None, *,
                 name: str | None = None) -> None:
        self.path = Path(path)
        with open_bag(self.path) as bag:
            try:
                (info,) = bag.select([topic] if topic else [])
            except ReplayError:
                if topic or len(bag.image_topics) < 2:
                    raise
                raise ReplayError(
                    f"Bag '{self.path}' has {len(bag.image_topics)} image topics "
                    f"({', '.join(bag.image_topics)}); name one as "
                    f"'{self.path}:{bag.image_topics[0]}'.") from None
        self.topic = info.name
        self._count = info.count or 0  # unknown in a recovered bag: an estimate, as for video
        self.name = f'{name or self.path.name}:{self.topic}'
        labels_path = find_labels(self.path)
        self.labels: Labels | None = read_labels(labels_path) if labels_path else None

    def __len__(self) -> int:
        """Messages on the topic as the bag's index counts them (0 when it does not)."""
        return self._count

    def __iter__(self) -> Iterator[Frame]:
        """Yield the topic's frames in bag order; stop (with a warning) where a bag is damaged."""
        rows = self.labels.rows if self.labels is not None else {}
        with open_bag(self.path) as bag:
            for index, message in enumerate(bag.messages([self.topic])):
                where = f"frame {message.index} of '{self.name}'"
                if message.msg is None:
                    raise DataError(f'{where} cannot be deserialised ({message.error}); the '
                                    'bag is damaged: re-record it or cut it before that frame.')
                try:
                    image = np.ascontiguousarray(to_rgb8(message.msg))
                except ImageEncodingError as err:
                    raise DataError(f'{where}: {err}') from err
                stamp = message.stamp_ns or message.log_ns
                label = rows.get((self.topic, stamp), rows.get((None, stamp)))
                yield Frame(image, int(stamp), index, label,
                            {'topic': self.topic, 'frame_id': message.frame_id})
            if bag.stopped is not None:
                _LOG.warning('%s: read %d frame(s); the bag is damaged after that (%s)',
                             self.name, bag.stopped.index, bag.stopped.reason)
