"""Tests of vae_ood_monitor.core.session: SessionConfig, provider fallback, signature checks.

Expected encoder outputs come from onnx's reference evaluator and from a numpy re-computation of
the fixture's linear graph (same weights, rebuilt the way test/conftest.py builds them).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
import pytest

from vae_ood_monitor.core.bundle import Bundle, sha256_hex
from vae_ood_monitor.core.errors import BundleError, ConfigError
from vae_ood_monitor.core.manifest import Manifest, ModelInfo
from vae_ood_monitor.core.preprocess import InputSpec
from vae_ood_monitor.core.session import available_providers, EncoderSession, SessionConfig
from vae_ood_monitor.core.typedefs import ProviderFallback
from vood_testing import linear_encoder_onnx, linear_weights, make_bundle

needs_no_cuda = pytest.mark.skipif('cuda' in available_providers(),
                                   reason='this onnxruntime build offers CUDA')
needs_no_tensorrt = pytest.mark.skipif('tensorrt' in available_providers(),
                                       reason='this onnxruntime build offers TensorRT')


def images(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, 12, 16), dtype=np.float32)


@pytest.fixture(scope='module')
def session() -> EncoderSession:
    return EncoderSession(make_bundle(), SessionConfig(warmup=0))


@pytest.mark.parametrize('n', [1, 3])
def test_encode_matches_numpy(session: EncoderSession, n: int) -> None:
    batch = images(n)
    mu, logvar = session.encode(batch)
    assert mu.shape == logvar.shape == (n, 4)
    assert mu.dtype == logvar.dtype == np.float32
    weight, bias = linear_weights()
    out = batch.reshape(n, -1).astype(np.float64) @ weight + bias
    np.testing.assert_allclose(mu, out[:, :4], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logvar, out[:, 4:], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('n', [1, 3])
def test_encode_matches_onnx_reference_evaluator(session: EncoderSession, n: int) -> None:
    batch = images(n, seed=2)
    reference = ReferenceEvaluator(onnx.load_from_string(linear_encoder_onnx()))
    expected_mu, expected_logvar = reference.run(['mu', 'logvar'], {'image': batch})
    mu, logvar = session.encode(batch)
    np.testing.assert_allclose(mu, expected_mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logvar, expected_logvar, rtol=1e-5, atol=1e-6)


def test_zero_image_gives_the_bias(session: EncoderSession) -> None:
    mu, logvar = session.encode(np.zeros((1, 3, 12, 16), np.float32))
    assert mu.tolist() == [[0.0] * 4]
    assert logvar.tolist() == [[-1.0] * 4]


def test_session_properties(session: EncoderSession) -> None:
    assert session.provider == 'CPUExecutionProvider'
    assert session.provider_short == 'cpu'
    assert session.notes == []


def test_provider_short_passes_unknown_names_through(session: EncoderSession,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, 'provider', 'CUDAExecutionProvider')
    assert session.provider_short == 'cuda'
    monkeypatch.setattr(session, 'provider', 'OpenVINOExecutionProvider')
    assert session.provider_short == 'OpenVINOExecutionProvider'


def test_warmup_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    original = EncoderSession.encode

    def counting(self: EncoderSession, batch: np.ndarray):  # type: ignore[no-untyped-def]
        calls.append(batch.shape)
        return original(self, batch)

    monkeypatch.setattr(EncoderSession, 'encode', counting)
    EncoderSession(make_bundle(), SessionConfig(warmup=3))
    assert calls == [(1, 3, 12, 16)] * 3


# --- SessionConfig -------------------------------------------------------------------------------

def test_session_config_normalises() -> None:
    config = SessionConfig(providers=' CPU ', fallback='fail')  # type: ignore[arg-type]
    assert config.providers == ('cpu',)
    assert config.fallback is ProviderFallback.FAIL
    assert SessionConfig(providers=['Cuda', 'cpu']).providers == ('cuda', 'cpu')  # type: ignore


@pytest.mark.parametrize('providers', [('rocm',), ('cpu', 'openvino'), ()])
def test_session_config_rejects_unknown_provider_listing_choices(providers: tuple[str]) -> None:
    with pytest.raises(ConfigError, match='not supported; choose from: cpu, cuda, tensorrt'):
        SessionConfig(providers=providers)


@pytest.mark.parametrize('threads', [-1, 257, 1.5, '2'])
def test_session_config_rejects_threads_out_of_range(threads: object) -> None:
    with pytest.raises(ConfigError, match=r'threads .* must be an integer in \[0, 256\]'):
        SessionConfig(threads=threads)  # type: ignore[arg-type]


@pytest.mark.parametrize('threads', [0, 1, 256])
def test_session_config_accepts_threads_in_range(threads: int) -> None:
    assert SessionConfig(threads=threads).threads == threads


def test_session_config_rejects_bad_fallback() -> None:
    with pytest.raises(ConfigError, match="fallback 'retry' must be one of: fail, next"):
        SessionConfig(fallback='retry')  # type: ignore[arg-type]


@pytest.mark.parametrize('warmup', [-1, 1.0])
def test_session_config_rejects_bad_warmup(warmup: object) -> None:
    with pytest.raises(ConfigError, match='warmup .* must be a non-negative integer'):
        SessionConfig(warmup=warmup)  # type: ignore[arg-type]


# --- provider fallback ---------------------------------------------------------------------------

@needs_no_cuda
def test_fallback_next_moves_to_cpu_with_a_note() -> None:
    session = EncoderSession(make_bundle(), SessionConfig(providers=('cuda', 'cpu'), warmup=0))
    assert session.provider == 'CPUExecutionProvider'
    assert session.provider_short == 'cpu'
    assert len(session.notes) == 1
    assert "'cuda' is not in this onnxruntime build" in session.notes[0]
    assert "falling back to 'cpu'" in session.notes[0]
    mu, _ = session.encode(images(1))
    assert mu.shape == (1, 4)


@needs_no_cuda
def test_fallback_fail_raises() -> None:
    config = SessionConfig(providers=('cuda', 'cpu'), fallback='fail',  # type: ignore[arg-type]
                           warmup=0)
    with pytest.raises(ConfigError, match="Cannot run the encoder: execution provider 'cuda' "
                                          'is not in this onnxruntime build.*onnxruntime-gpu'):
        EncoderSession(make_bundle(), config)


@needs_no_tensorrt
def test_only_unavailable_provider_raises_even_with_fallback_next() -> None:
    with pytest.raises(ConfigError, match="provider 'tensorrt' is not in this onnxruntime"):
        EncoderSession(make_bundle(), SessionConfig(providers=('tensorrt',), warmup=0))


# --- model / manifest consistency ----------------------------------------------------------------

def hand_bundle(model: bytes, height: int = 12, width: int = 16, latent: int = 4,
                **model_info: object) -> Bundle:
    manifest = Manifest(name='hand', input=InputSpec(height, width),
                        model=ModelInfo(sha256=sha256_hex(model), latent_dim=latent,
                                        **model_info))  # type: ignore[arg-type]
    return Bundle(manifest, model)


@pytest.mark.parametrize('height, width, latent, detail', [
    (10, 16, 4, r'input shape .* does not end in \(3, 10, 16\)'),
    (12, 20, 4, r'input shape .* does not end in \(3, 12, 20\)'),
    (12, 16, 5, 'manifest says latent_dim 5'),
])
def test_manifest_mismatch_is_bundle_error(height: int, width: int, latent: int,
                                           detail: str) -> None:
    bundle = hand_bundle(linear_encoder_onnx(), height, width, latent)
    with pytest.raises(BundleError, match=f'the ONNX model does not match its manifest .*'
                                          f'{detail}'):
        EncoderSession(bundle, SessionConfig(warmup=0))


def test_wrong_input_name_is_bundle_error() -> None:
    bundle = hand_bundle(linear_encoder_onnx(), input_name='pixels')
    with pytest.raises(BundleError, match=r"does not match its manifest \(inputs \['image'\]"):
        EncoderSession(bundle, SessionConfig(warmup=0))


def test_missing_output_is_bundle_error() -> None:
    bundle = hand_bundle(linear_encoder_onnx(), output_names=('mu', 'sigma'))
    with pytest.raises(BundleError, match="does not match its manifest .*output 'sigma' missing"):
        EncoderSession(bundle, SessionConfig(warmup=0))


def test_garbage_model_is_bundle_error() -> None:
    bundle = hand_bundle(b'this is not a protobuf')
    with pytest.raises(BundleError, match='hand: encoder.onnx is not a valid ONNX model'):
        EncoderSession(bundle, SessionConfig(warmup=0))


def test_matching_hand_bundle_works() -> None:
    session = EncoderSession(hand_bundle(linear_encoder_onnx(latent=3), latent=3),
                             SessionConfig(warmup=0))
    assert session.encode(images(2))[0].shape == (2, 3)
