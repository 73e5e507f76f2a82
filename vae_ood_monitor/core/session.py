"""The ONNX Runtime encoder session: providers, threads, warm-up and model/manifest checks."""

from __future__ import annotations

from dataclasses import dataclass, field
import logging
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from vae_ood_monitor.core.errors import BundleError, ConfigError
from vae_ood_monitor.core.typedefs import ProviderFallback

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from vae_ood_monitor.core.bundle import Bundle

__all__ = ['PROVIDER_NAMES', 'EncoderSession', 'SessionConfig', 'available_providers']

_LOG = logging.getLogger(__name__)

#: Short provider names accepted in configs, YAML and CLI flags.
PROVIDER_NAMES = {
    'cpu': 'CPUExecutionProvider',
    'cuda': 'CUDAExecutionProvider',
    'tensorrt': 'TensorrtExecutionProvider',
}


def available_providers() -> list[str]:
    """Short names of the execution providers this onnxruntime build offers."""
    offered = set(ort.get_available_providers())
    return [short for short, full in PROVIDER_NAMES.items() if full in offered]


@dataclass(frozen=True)
class SessionConfig:
    """How to run the encoder.

    ``providers`` are tried in order. When one is unavailable, ``fallback='next'`` moves on to
    the next (and records why in :attr:`EncoderSession.notes`); ``fallback='fail'`` raises.
    """

    providers: tuple[str, ...] = ('cpu',)
    threads: int = 1
    fallback: ProviderFallback = ProviderFallback.NEXT
    spinning: bool = False
    warmup: int = 5
    cache_dir: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        providers = (self.providers,) if isinstance(self.providers, str) else self.providers
        providers = tuple(str(p).strip().lower() for p in providers)
        unknown = [p for p in providers if p not in PROVIDER_NAMES]
        if not providers or unknown:
            raise ConfigError(f'Execution provider(s) {unknown or list(providers)!r} not '
                              f'supported; choose from: {", ".join(PROVIDER_NAMES)}.')
        object.__setattr__(self, 'providers', providers)
        if not isinstance(self.threads, int) or not 0 <= self.threads <= 256:
            raise ConfigError(f'threads {self.threads!r} must be an integer in [0, 256] '
                              '(0 lets onnxruntime decide).')
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f'warmup {self.warmup!r} must be a non-negative integer.')
        try:
            object.__setattr__(self, 'fallback', ProviderFallback(self.fallback))
        except ValueError:
            raise ConfigError(f'fallback {self.fallback!r} must be one of: '
                              f'{", ".join(f.value for f in ProviderFallback)}.') from None


class EncoderSession:
    """Run a bundle's encoder with ONNX Runtime; implements the ``Encoder`` protocol."""

    def __init__(self, bundle: Bundle, config: SessionConfig | None = None) -> None:
        self.config = config or SessionConfig()
        self.bundle = bundle
        self.notes: list[str] = []
        self._session = self._create()
        self.provider = self._session.get_providers()[0]
        self._check_signature()
        info = bundle.manifest.model
        self._input_name = info.input_name
        self._output_names = list(info.output_names)
        if self.config.warmup:
            dummy = np.zeros(bundle.manifest.input_shape, np.float32)
            for _ in range(self.config.warmup):
                self.encode(dummy)

    @property
    def provider_short(self) -> str:
        """The execution provider in use, short name (cpu, cuda, tensorrt)."""
        return {v: k for k, v in PROVIDER_NAMES.items()}.get(self.provider, self.provider)

    def encode(self, batch: NDArray[np.float32]) -> tuple[NDArray[np.float32],
                                                          NDArray[np.float32]]:
        """Return (mu, logvar) for a float32 batch of shape (N, 3, H, W)."""
        outputs = self._session.run(self._output_names[:2], {self._input_name: batch})
        return outputs[0], outputs[1]

    def encode_with_stats(self, batch: NDArray[np.float32]
                          ) -> tuple[NDArray[np.float32], ...]:
        """Return every output of the model: (mu, logvar) and, if it has them, its stats."""
        return tuple(self._session.run(self._output_names, {self._input_name: batch}))

    def _options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        spin = '1' if self.config.spinning else '0'
        options.add_session_config_entry('session.intra_op.allow_spinning', spin)
        options.add_session_config_entry('session.inter_op.allow_spinning', spin)
        for key, value in self.config.extra.items():
            options.add_session_config_entry(key, value)
        return options

    def _provider_entry(self, short: str) -> tuple[str, dict[str, object]]:
        full = PROVIDER_NAMES[short]
        if short == 'tensorrt' and self.config.cache_dir:
            return full, {'trt_engine_cache_enable': True,
                          'trt_engine_cache_path': self.config.cache_dir}
        return full, {}

    def _create(self) -> ort.InferenceSession:
        offered = set(ort.get_available_providers())
        for position, short in enumerate(self.config.providers):
            full, options = self._provider_entry(short)
            problem = None
            if full not in offered:
                problem = (f'execution provider {short!r} is not in this onnxruntime build '
                           f'(offered: {", ".join(available_providers()) or "none"})')
            else:
                chain = [(full, options)] + ([] if full == PROVIDER_NAMES['cpu']
                                             else [(PROVIDER_NAMES['cpu'], {})])
                try:
                    session = ort.InferenceSession(
                        self.bundle.model_bytes, sess_options=self._options(),
                        providers=[c[0] for c in chain], provider_options=[c[1] for c in chain])
                except Exception as err:  # onnxruntime raises its own exception types
                    if short == 'cpu' or 'INVALID_PROTOBUF' in str(err):
                        # the CPU provider always exists: a failure there is the model's fault
                        raise BundleError(f'{self._where()}: encoder.onnx is not a valid ONNX '
                                          f'model ({err}); re-export the model.') from err
                    problem = f'execution provider {short!r} failed to start: {err}'
                else:
                    if session.get_providers()[0] == full:
                        return session
                    problem = (f'execution provider {short!r} could not be initialised (missing '
                               'GPU libraries or device?)')
            last = position == len(self.config.providers) - 1
            if self.config.fallback is ProviderFallback.FAIL or last:
                raise ConfigError(
                    f'Cannot run the encoder: {problem}. Install the matching onnxruntime '
                    'package (onnxruntime-gpu for cuda/tensorrt), list another provider, or set '
                    "fallback to 'next' with a working provider later in the list.")
            note = f'{problem}; falling back to {self.config.providers[position + 1]!r}'
            _LOG.warning(note)
            self.notes.append(note)
        raise AssertionError('unreachable')  # pragma: no cover

    def _where(self) -> str:
        return str(self.bundle.path) if self.bundle.path else self.bundle.name

    def _check_signature(self) -> None:
        manifest = self.bundle.manifest
        inputs = self._session.get_inputs()
        outputs = {o.name: o for o in self._session.get_outputs()}
        expected = manifest.input_shape[1:]
        problems = []
        if len(inputs) != 1 or inputs[0].name != manifest.model.input_name:
            problems.append(f'inputs {[i.name for i in inputs]!r} != '
                            f'[{manifest.model.input_name!r}]')
        elif tuple(inputs[0].shape[1:]) != expected:
            problems.append(f'input shape {inputs[0].shape!r} does not end in {expected!r}')
        model = manifest.model
        widths = (('latent_dim', model.latent_dim), ('latent_dim', model.latent_dim),
                  ('stats_dim', model.stats_dim))
        for name, (what, width) in zip(model.output_names, widths):
            if name not in outputs:
                problems.append(f'output {name!r} missing (has {sorted(outputs)!r})')
            elif outputs[name].shape[-1] != width:
                problems.append(f'output {name!r} has shape {outputs[name].shape!r}, manifest '
                                f'says {what} {width}')
        if problems:
            raise BundleError(f'{self._where()}: the ONNX model does not match its manifest ('
                              + '; '.join(problems) + '). Re-export the bundle with '
                              '`vae-ood export`.')
