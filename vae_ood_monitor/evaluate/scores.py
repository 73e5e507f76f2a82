"""Batch encoding of frame arrays with a bundle's ONNX encoder (no torch needed)."""

from __future__ import annotations

from typing import Callable, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.encoding import encode_rows
from vae_ood_monitor.core.flow import input_batcher
from vae_ood_monitor.core.preprocess import Preprocessor
from vae_ood_monitor.core.session import EncoderSession, SessionConfig

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from vae_ood_monitor.core.bundle import Bundle
    from vae_ood_monitor.core.typedefs import Encoder

__all__ = ['batch_session', 'encode_images', 'encodings_of_images']


def batch_session(bundle: Bundle, threads: int = 0) -> EncoderSession:
    """Open an encoder session tuned for throughput (all cores, no warm-up)."""
    return EncoderSession(bundle, SessionConfig(threads=threads, warmup=0))


def encode_images(encoder: Encoder, preprocessor: Preprocessor, images: NDArray[np.uint8], *,
                  batch: int = 64, progress: Callable[[int], None] | None = None
                  ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Run ``encoder`` over (N, h, w, 3) RGB images in batches; return mu and logvar (N, D)."""
    mus, logvars = [], []
    for start in range(0, len(images), batch):
        chunk = preprocessor.batch(images[start:start + batch])
        mu, logvar = encoder.encode(chunk)
        mus.append(np.asarray(mu, np.float32))
        logvars.append(np.asarray(logvar, np.float32))
        if progress is not None:
            progress(len(chunk))
    return np.concatenate(mus), np.concatenate(logvars)


def encodings_of_images(bundle: Bundle, images: NDArray[np.uint8], *,
                        encoder: Encoder | None = None, batch: int = 64,
                        progress: Callable[[int], None] | None = None) -> NDArray[np.float64]:
    """Return the encoding rows (N, width) of RGB images under ``bundle``'s encoder.

    For a flow bundle, ``images`` are its flow stacks (N, h, w, channels), see
    :func:`vae_ood_monitor.data.flowdata.flow_frames`.

    See :mod:`vae_ood_monitor.core.encoding`: mu, logvar and the activation statistics.
    """
    encoder = encoder or batch_session(bundle)
    layout = bundle.manifest.model.layout
    preprocessor = input_batcher(bundle.manifest)
    parts = []
    for start in range(0, len(images), batch):
        chunk = preprocessor.batch(images[start:start + batch])
        parts.append(encode_rows(encoder, chunk))
        if progress is not None:
            progress(len(chunk))
    if not parts:
        return np.zeros((0, layout.width))
    return layout.check(np.concatenate(parts), 'encoder outputs')
