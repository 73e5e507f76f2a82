"""Batch scoring of frame arrays with a bundle's ONNX encoder (no torch needed)."""

from __future__ import annotations

from typing import Callable, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.preprocess import Preprocessor
from vae_ood_monitor.core.scoring import kl_per_dim
from vae_ood_monitor.core.session import EncoderSession, SessionConfig

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from vae_ood_monitor.core.bundle import Bundle
    from vae_ood_monitor.core.typedefs import Encoder

__all__ = ['batch_session', 'encode_images', 'kl_of_images']


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


def kl_of_images(bundle: Bundle, images: NDArray[np.uint8], *, encoder: Encoder | None = None,
                 batch: int = 64, progress: Callable[[int], None] | None = None
                 ) -> NDArray[np.float64]:
    """Per-dim KL (N, latent_dim) of RGB images under ``bundle``'s encoder."""
    encoder = encoder or batch_session(bundle)
    mu, logvar = encode_images(encoder, Preprocessor(bundle.manifest.input), images,
                               batch=batch, progress=progress)
    return kl_per_dim(mu, logvar)
