"""Batch scoring of frame arrays (evaluate/scores.py) against the core session and KL."""

from __future__ import annotations

import numpy as np
import pytest

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.preprocess import Preprocessor
from vae_ood_monitor.core.scoring import kl_per_dim
from vae_ood_monitor.core.session import EncoderSession
from vae_ood_monitor.evaluate.scores import batch_session, encode_images, encodings_of_images
from vood_testing import make_bundle, tiny_frames


def test_encodings_of_images_match_the_core_session_in_batches() -> None:
    bundle = make_bundle()
    images = tiny_frames(7).images  # 30x40 frames, resized to the bundle's 12x16
    mu, logvar = EncoderSession(bundle).encode(Preprocessor(bundle.manifest.input).batch(images))
    chunks: list[int] = []
    rows = encodings_of_images(bundle, images, batch=3, progress=chunks.append)
    assert rows.shape == (7, 8) and rows.dtype == np.float64
    np.testing.assert_allclose(bundle.manifest.model.layout.kl(rows), kl_per_dim(mu, logvar),
                               rtol=1e-6)
    assert chunks == [3, 3, 1]
    np.testing.assert_allclose(encodings_of_images(bundle, images), rows, rtol=1e-6)  # one batch
    assert encodings_of_images(bundle, images[:0]).shape == (0, 8)


def test_encode_images_with_another_encoder() -> None:
    class Doubling:
        """An encoder whose mu is twice the first pixel of each plane."""

        def encode(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mu = 2.0 * batch[:, :, 0, 0]
            return mu, np.zeros_like(mu)

    bundle = make_bundle(latent=3)  # the encoder's outputs must fit the bundle's latent size
    images = tiny_frames(5).images
    pre = Preprocessor(bundle.manifest.input)
    mu, logvar = encode_images(Doubling(), pre, images, batch=2)
    np.testing.assert_allclose(mu, 2.0 * pre.batch(images)[:, :, 0, 0])
    assert mu.dtype == np.float32 and not logvar.any()
    rows = encodings_of_images(bundle, images, encoder=Doubling(), batch=2)
    assert rows.shape == (5, 6) and rows.dtype == np.float64
    np.testing.assert_allclose(rows, np.hstack([mu, logvar]), rtol=1e-6)
    # KL of N(mu, 1) from N(0, 1) is mu^2 / 2
    np.testing.assert_allclose(bundle.manifest.model.layout.kl(rows), mu ** 2 / 2, rtol=1e-6)
    # an encoder whose outputs do not fit the bundle is refused, naming the widths
    with pytest.raises(ConfigError, match=r'encoder outputs have shape \(5, 6\); this model '
                       'gives rows of 8 columns'):
        encodings_of_images(make_bundle(latent=4), images, encoder=Doubling())


def test_batch_session_skips_warm_up() -> None:
    session = batch_session(make_bundle(), threads=1)
    assert session.config.warmup == 0 and session.config.threads == 1
