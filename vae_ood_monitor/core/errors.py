"""One error hierarchy for the whole package.

Library code raises these; the CLI turns them into one-line messages and exit codes, and the ROS
nodes count them by kind (the class name) in their diagnostics. Every message says what was
wrong, shows the offending value and says what to do about it.
"""

from __future__ import annotations

__all__ = [
    'BundleError',
    'CalibrationError',
    'ConfigError',
    'DataError',
    'ImageEncodingError',
    'ReplayError',
    'VaeOodError',
]


class VaeOodError(Exception):
    """Base class of every error this package raises on bad input."""

    @property
    def kind(self) -> str:
        """Short, stable name of the error kind, used as a counter key in diagnostics."""
        return type(self).__name__


class ImageEncodingError(VaeOodError):
    """An image message cannot be decoded (unknown encoding, bad geometry, corrupt data)."""


class BundleError(VaeOodError):
    """A model bundle is missing, malformed, tampered with or inconsistent."""


class ConfigError(VaeOodError):
    """A configuration value (CLI flag, YAML key, ROS parameter) is invalid."""


class CalibrationError(VaeOodError):
    """Calibration is impossible with the data given (too few frames, degenerate scores)."""


class DataError(VaeOodError):
    """A frame source cannot be read (empty folder, unreadable video, broken tub catalog)."""


class ReplayError(VaeOodError):
    """A bag cannot be replayed (missing, corrupt, wrong topic or message type)."""
