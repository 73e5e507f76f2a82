"""Shared value types: enums, protocols and small frozen records.

This is a leaf module: it imports nothing else from the package, so every layer (core, data,
train, evaluate, replay, ros, cli) can depend on it without creating cycles.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol, runtime_checkable, TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    'ChannelOrder',
    'CompressedImageMessage',
    'DecisionMode',
    'DimSelection',
    'Encoder',
    'ImageMessage',
    'Interpolation',
    'Precision',
    'ProviderFallback',
    'Tail',
]


class ChannelOrder(str, Enum):
    """Colour order of the model's input planes."""

    RGB = 'rgb'
    BGR = 'bgr'


class Interpolation(str, Enum):
    """Resize interpolation, spelled as in the manifest, YAML files and CLI flags."""

    AREA = 'area'
    LINEAR = 'linear'
    NEAREST = 'nearest'
    CUBIC = 'cubic'


class Precision(str, Enum):
    """Numeric precision of an exported encoder."""

    FP32 = 'fp32'
    FP16 = 'fp16'
    INT8 = 'int8'


class ProviderFallback(str, Enum):
    """What to do when a requested ONNX Runtime execution provider is unavailable."""

    FAIL = 'fail'
    NEXT = 'next'


class DecisionMode(str, Enum):
    """How per-frame scores become an alert."""

    THRESHOLD = 'threshold'
    CUSUM = 'cusum'


class DimSelection(str, Enum):
    """How the latent dimensions that score a partition are chosen."""

    ALL = 'all'
    PAPER = 'paper'
    LABELLED = 'labelled'


class Tail(str, Enum):
    """Which deviation of a partition's KL score counts as out of distribution.

    ``upper``: a larger KL than in-distribution frames (the paper's test: the posterior moves
    far from the prior). ``lower``: a smaller KL (the encoder grows uncertain and its posterior
    falls back towards the prior, as on heavy rain or blur). ``two_sided``: either.
    """

    UPPER = 'upper'
    LOWER = 'lower'
    TWO_SIDED = 'two_sided'


@runtime_checkable
class ImageMessage(Protocol):
    """The fields of sensor_msgs/Image that decoding needs (rclpy, rosbags or test objects)."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes | bytearray | memoryview | NDArray[np.uint8] | list[int]


@runtime_checkable
class CompressedImageMessage(Protocol):
    """The fields of sensor_msgs/CompressedImage that decoding needs."""

    format: str  # noqa: A003 (the ROS message field name)
    data: bytes | bytearray | memoryview | NDArray[np.uint8] | list[int]


class Encoder(Protocol):
    """Anything that maps a float32 batch (N, C, H, W) to the latent posterior (mu, logvar).

    Implemented by the ONNX Runtime session (the robot runtime) and by the torch encoder in
    training, so that parity tests can compare them.
    """

    def encode(self, batch: NDArray[np.float32]) -> tuple[NDArray[np.float32],
                                                          NDArray[np.float32]]:
        """Return mu and logvar, each of shape (N, latent_dim)."""
        ...
