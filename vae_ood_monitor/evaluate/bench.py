"""Benchmark the full Monitor path (decode, preprocess, inference, scoring) per model.

Each model runs in its own spawned child process, one after the other: peak resident memory is
then that model's alone (a process that never imported torch, for ONNX bundles), while timings
still come from one invocation on one machine, so ratios between models are side by side.
"""

from __future__ import annotations

import ctypes
from dataclasses import asdict, dataclass, field
import gc
import importlib
import multiprocessing
import os
from pathlib import Path
from queue import Empty
import resource
import time
from typing import Any

import numpy as np

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.stats import STAGES

__all__ = ['BenchConfig', 'BenchResult', 'bench_model', 'bench_models', 'make_messages',
           'median_total_ms', 'peak_rss_mb', 'reset_peak_rss']


@dataclass(frozen=True)
class BenchConfig:
    """What to feed the Monitor and how long to measure."""

    width: int = 640
    height: int = 480
    encoding: str = 'rgb8'
    frames: int = 500
    warmup: int = 50
    threads: int = 1
    providers: tuple[str, ...] = ('cpu',)

    def __post_init__(self) -> None:
        if self.frames < 10 or self.warmup < 0:
            raise ConfigError(f'frames {self.frames!r} must be >= 10 and warmup '
                              f'{self.warmup!r} >= 0.')


@dataclass
class BenchResult:
    """Per-stage latency (ms) and resource figures of one model."""

    name: str
    path: str
    runtime: str
    provider: str
    threads: int
    frames: int
    median_ms: dict[str, float]
    p99_ms: dict[str, float]
    fps: float
    size_bytes: int
    parameters: int
    macs: int
    peak_rss_mb: float
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def make_messages(config: BenchConfig, count: int = 16) -> list[Any]:
    """Distinct synthetic road frames of the configured size, encoded as camera messages."""
    from vae_ood_monitor.data.messages import compress_rgb, encode_rgb
    from vae_ood_monitor.data.scenes import RoadScene, SceneConfig

    scene = RoadScene(7, SceneConfig(width=config.width, height=config.height))
    frames = list(scene.frames(count))
    if config.encoding in ('jpeg', 'png'):
        return [compress_rgb(f, config.encoding) for f in frames]
    return [encode_rgb(f, config.encoding) for f in frames]


def _placeholder_calibration(bundle: Any, messages: list[Any], encoder: Any) -> Any:
    """Attach throw-away calibration so that an uncalibrated bundle can be timed.

    The default alert's partitions (the generic one when the model has activation statistics,
    else the KL of every dim), so that the scoring stage costs what it will on the robot.
    """
    from vae_ood_monitor.core.encoding import encode_rows
    from vae_ood_monitor.core.flow import FlowBatcher
    from vae_ood_monitor.core.image import to_rgb8
    from vae_ood_monitor.core.preprocess import Preprocessor
    from vae_ood_monitor.core.session import EncoderSession
    from vae_ood_monitor.core.typedefs import Tail
    from vae_ood_monitor.evaluate.partitions import calibrate_partitions, PartitionPlan
    from vae_ood_monitor.evaluate.density_fit import fit_density

    encoder = encoder or EncoderSession(bundle)
    manifest = bundle.manifest
    layout = manifest.model.layout
    if manifest.flow is not None:  # stacks of mild random flow
        _, planes, height, width = manifest.input_shape
        shape = (len(messages), height, width, planes)
        stacks = np.random.default_rng(1).integers(96, 160, shape, np.uint8)
        batcher = FlowBatcher(height, width, manifest.flow)
        inputs = [batcher.batch(stack[None]) for stack in stacks]
    else:
        pre = Preprocessor(manifest.input)
        inputs = [pre(to_rgb8(m)) for m in messages]
    rows = np.concatenate([encode_rows(encoder, batch) for batch in inputs])
    rows = np.tile(rows, (200 // len(rows) + 1, 1))
    rows += np.random.default_rng(0).random(rows.shape) * 1e-3
    plans = [PartitionPlan('all', tuple(range(layout.latent_dim)), tail=Tail.TWO_SIDED)]
    if layout.stats_dim:
        density = fit_density(rows, layout)
        plans = [PartitionPlan('generic', (), density=density, scores=density.scores(rows))]
    return calibrate_partitions(bundle, rows, target_far=0.01, plans=plans)


def bench_model(path: str, config: BenchConfig, loader: str | None = None,
                messages: list[Any] | None = None) -> BenchResult:
    """Time one model in this process.

    ``path`` is a bundle (``.vood``, run by ONNX Runtime) unless ``loader`` names a function
    ``'module:function'`` that turns ``path`` into ``(bundle, encoder)``, for example to time a
    training run in PyTorch eager mode (the CLI passes one; this layer never imports torch).
    """
    from vae_ood_monitor.core.bundle import load_bundle
    from vae_ood_monitor.core.monitor import Monitor, MonitorConfig
    from vae_ood_monitor.core.session import SessionConfig
    from vae_ood_monitor.core.typedefs import DecisionMode

    notes: list[str] = []
    if messages is None:
        messages = make_messages(config)
    # Rendering or receiving the test frames is not the monitor's work: measure from here on.
    # What remains is the runtime, the model and the 16 encoded frames (~15 MB at 640x480).
    exact_peak = reset_peak_rss()
    if not exact_peak:
        notes.append('peak RSS includes rendering the test frames (no /proc/self/clear_refs)')
    encoder = None
    runtime = 'onnxruntime'
    if loader is not None:
        module, function = loader.split(':')
        load = getattr(importlib.import_module(module), function)
        bundle, encoder = load(path, config.threads)
        runtime = getattr(encoder, 'runtime', 'custom')
        size = getattr(encoder, 'size_bytes', 0)
    else:
        bundle = load_bundle(path)
        size = Path(path).stat().st_size
    if not bundle.manifest.calibrated:
        bundle = _placeholder_calibration(bundle, messages, encoder)
        notes.append('uncalibrated bundle: placeholder thresholds (timing only)')
    session = SessionConfig(providers=config.providers, threads=config.threads, warmup=5)
    monitor = Monitor(bundle, MonitorConfig(decision=DecisionMode.THRESHOLD, session=session,
                                            stats_window=config.frames), encoder=encoder)
    for i in range(config.warmup):
        monitor.process(messages[i % len(messages)], i)
    monitor.latency('bench').reset()
    started = time.perf_counter()
    for i in range(config.frames):
        monitor.process(messages[i % len(messages)], i, camera='bench')
    elapsed = time.perf_counter() - started
    summary = monitor.latency('bench').summary()
    if runtime == 'onnxruntime':
        notes += getattr(monitor.encoder, 'notes', [])
    model = bundle.manifest.model
    return BenchResult(
        name=bundle.name, path=str(path), runtime=runtime, provider=monitor.provider,
        threads=config.threads, frames=config.frames,
        median_ms={s: summary[s].p50 / 1e6 for s in STAGES},
        p99_ms={s: summary[s].p99 / 1e6 for s in STAGES},
        fps=config.frames / elapsed, size_bytes=size, parameters=model.parameters,
        macs=model.macs, peak_rss_mb=peak_rss_mb(),
        notes=notes)


def reset_peak_rss() -> bool:
    """Reset this process's peak resident set size (Linux); tell whether that worked.

    Freed heap memory is first handed back to the system (glibc keeps it otherwise, and it
    would still count as resident).
    """
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass
    try:
        with open('/proc/self/clear_refs', 'w', encoding='ascii') as handle:
            handle.write('5')
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (since :func:`reset_peak_rss`)."""
    try:
        with open('/proc/self/status', encoding='ascii') as handle:
            for line in handle:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(path: str, config: BenchConfig, loader: str | None, messages: list[Any],
           queue: Any) -> None:
    import cv2
    cv2.setNumThreads(config.threads)
    try:
        queue.put(('ok', bench_model(path, config, loader, messages)))
    except Exception as err:  # reported to the parent, which raises it as a one-line error
        queue.put(('error', f'{type(err).__name__}: {err}'))


def bench_models(models: list[tuple[str, str | None]], config: BenchConfig, *,
                 isolate: bool = True) -> list[BenchResult]:
    """Benchmark (path, loader) pairs one after another, each in its own process by default.

    The test frames are rendered once, here, and every model is fed the same ones.
    """
    results = []
    saved = os.environ.get('OMP_NUM_THREADS')
    os.environ['OMP_NUM_THREADS'] = str(config.threads)  # inherited by the spawned children
    messages = make_messages(config)  # the same frames for every model
    try:
        for path, loader in models:
            if isolate:
                status, payload = _run_isolated(path, config, loader, messages)
            else:
                status, payload = 'ok', bench_model(path, config, loader, messages)
            if status != 'ok':
                raise ConfigError(f'Benchmark of {path!r} failed: {payload}')
            results.append(payload)
    finally:
        if saved is None:
            os.environ.pop('OMP_NUM_THREADS', None)
        else:
            os.environ['OMP_NUM_THREADS'] = saved
    return results


def median_total_ms(paths: list[Path], config: BenchConfig) -> dict[str, float]:
    """Median full-path latency (ms) of each bundle, keyed by its path as a string."""
    return {r.path: r.median_ms['total']
            for r in bench_models([(str(p), None) for p in paths], config)}


def _run_isolated(path: str, config: BenchConfig, loader: str | None,
                  messages: list[Any]) -> tuple[str, Any]:
    context = multiprocessing.get_context('spawn')
    queue = context.Queue()
    child = context.Process(target=_child, args=(path, config, loader, messages, queue))
    child.start()
    try:
        while True:  # poll, so that a child that dies without a word cannot hang the parent
            try:
                return queue.get(timeout=1.0)
            except Empty:
                if not child.is_alive():
                    try:
                        return queue.get(timeout=1.0)  # it may have answered just before
                    except Empty:
                        return 'error', f'the benchmark process died (exit code {child.exitcode})'
    finally:
        child.join()
