"""Names shared by the ROS node and bag replay: camera names and output topics.

Both must publish exactly the same topics so that a replayed bag and a live robot look alike
in rviz, Foxglove or PlotJuggler. All names are relative (remap them in launch files).
"""

from __future__ import annotations

from dataclasses import dataclass
import re

from vae_ood_monitor.core.errors import ConfigError

__all__ = ['AGGREGATE', 'MONITOR_NODE', 'OutputTopics', 'camera_name', 'is_compressed_topic',
           'output_topics']

#: Pseudo camera name of the aggregate outputs (OR of all cameras' alerts).
AGGREGATE = ''
#: Name of the monitor node (also used in diagnostics written by bag replay).
MONITOR_NODE = 'ood_monitor'
_TRAILING = ('/compressed',)


def is_compressed_topic(topic: str) -> bool:
    """Whether a camera topic carries sensor_msgs/CompressedImage (image_transport naming)."""
    return topic.rstrip('/').endswith('/compressed')


def camera_name(topic: str) -> str:
    """Derive a short, stable camera name from an image topic.

    ``/front/image_raw`` -> ``front_image_raw``; ``/front/image_raw/compressed`` -> the same.
    """
    name = topic.strip().rstrip('/')
    for suffix in _TRAILING:
        if name.endswith(suffix):
            name = name[:-len(suffix)]
    name = re.sub(r'[^A-Za-z0-9_]+', '_', name.strip('/~')).strip('_')
    if not name:
        raise ConfigError(f'Camera topic {topic!r} gives no usable camera name; use a topic '
                          'such as camera/image_raw.')
    if name[0].isdigit():
        name = f'cam_{name}'
    return name


@dataclass(frozen=True)
class OutputTopics:
    """The node's output topics for one camera, or the aggregate (camera '')."""

    alert: str
    score: str
    kl: str
    debug_image: str


def output_topics(camera: str = AGGREGATE) -> OutputTopics:
    """Output topics of one camera (``ood/<camera>/...``) or of the aggregate (``ood/...``)."""
    base = 'ood' if camera == AGGREGATE else f'ood/{camera}'
    return OutputTopics(f'{base}/alert', f'{base}/score', f'{base}/kl', f'{base}/debug_image')
