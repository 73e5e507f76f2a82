"""The lean-detector search: students x pruning x precision, scored for AUROC and latency.

Every candidate is built by distilling (or pruning and fine-tuning) from the teacher, exported
to a bundle, optionally quantised, then handed to two callables supplied by the caller (the
CLI wires in the evaluation layer): ``assess(bundle) -> (calibrated bundle, {shift: AUROC})``
and ``time(paths) -> {path: median ms}``. The fastest candidate whose AUROC on every validation
shift is within the budget of the teacher's wins. This module never imports the evaluation
layer: train and evaluate stay independent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import json
from pathlib import Path
import time
from typing import Any, Callable, Sequence, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.bundle import Bundle, load_bundle, save_bundle
from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.typedefs import Precision
from vae_ood_monitor.train.distill import (adopt_stem, distill, DistillConfig, latent_gap,
                                           student_spec)
from vae_ood_monitor.train.export import bundle_from_encoder
from vae_ood_monitor.train.models import Encoder
from vae_ood_monitor.train.prune import prune_encoder
from vae_ood_monitor.train.qat import fuse, QatEncoder
from vae_ood_monitor.train.quantize import fp16_bundle, quantize_static_bundle

if TYPE_CHECKING:
    from vae_ood_monitor.core.flow import FlowSpec
    from vae_ood_monitor.data.dataset import FrameArray
    from vae_ood_monitor.train.models import VAE

__all__ = ['Candidate', 'CandidateSpec', 'build_candidate', 'default_grid', 'pareto_front',
           'run_search', 'select_grid']

Assess = Callable[[Bundle], 'tuple[Bundle, dict[str, float]]']
Timer = Callable[[Sequence[Path]], 'dict[str, float]']


@dataclass(frozen=True)
class CandidateSpec:
    """One point of the search: how the encoder is made smaller and at which precision.

    ``width`` None and ``input_scale`` 1 keep the teacher's architecture (``prune`` then removes
    that fraction of every convolution's channels, followed by distillation fine-tuning);
    otherwise a strided student of that width and input scale is distilled, its stem at
    ``stem_stride`` (4: ``-p4`` in the grid's names; see
    :class:`~vae_ood_monitor.train.models.EncoderSpec`).
    """

    name: str
    width: float | None = None
    input_scale: float = 1.0
    prune: float = 0.0
    precision: Precision = Precision.FP32
    qat: bool = False
    stem_stride: int | tuple[int, int] = 2
    #: the student takes the teacher's stem, frozen (``-stem4`` in the grid's names: at stride
    #: 4; ``-stem24``: at stride 2 down the rows, 4 across)
    teacher_stem: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, 'precision', Precision(self.precision))
        if self.qat and self.precision is not Precision.INT8:
            raise ConfigError(f'{self.name}: QAT only makes sense for int8 candidates.')


@dataclass
class Candidate:
    """A built and measured candidate."""

    spec: CandidateSpec
    path: str
    auroc: dict[str, float]
    median_ms: float = float('nan')
    parameters: int = 0
    macs: int = 0
    size_bytes: int = 0
    latent_gap: dict[str, float] = field(default_factory=dict)
    build_seconds: float = 0.0

    def min_drop(self, teacher: dict[str, float]) -> float:
        """Largest AUROC drop against the teacher over the validation shifts."""
        return max(teacher[s] - self.auroc.get(s, 0.0) for s in teacher)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data['spec']['precision'] = self.spec.precision.value
        return data


def default_grid(target: str = 'cpu') -> list[CandidateSpec]:
    """Students x pruning x precision worth trying; int8 for CPUs, fp16 for GPUs."""
    if target not in ('cpu', 'gpu'):
        raise ConfigError(f"target {target!r} must be 'cpu' or 'gpu'.")
    low = Precision.INT8 if target == 'cpu' else Precision.FP16
    grid = [
        CandidateSpec('teacher-int8' if target == 'cpu' else 'teacher-fp16', precision=low),
        CandidateSpec('pruned50', prune=0.5),
        CandidateSpec('student-w0.5', width=0.5),
        CandidateSpec(f'pruned50-{low.value}', prune=0.5, precision=low),
        CandidateSpec(f'student-w0.5-{low.value}', width=0.5, precision=low),
        CandidateSpec(f'student-w0.375-{low.value}', width=0.375, precision=low),
        CandidateSpec(f'student-w0.25-{low.value}', width=0.25, precision=low),
        CandidateSpec(f'student-w0.5-s0.75-{low.value}', width=0.5, input_scale=0.75,
                      precision=low),
        CandidateSpec(f'student-w0.5-s0.5-{low.value}', width=0.5, input_scale=0.5,
                      precision=low),
        CandidateSpec(f'student-w0.25-s0.5-{low.value}', width=0.25, input_scale=0.5,
                      precision=low),
        CandidateSpec(f'student-w0.5-p4-{low.value}', width=0.5, stem_stride=4, precision=low),
        CandidateSpec(f'student-w0.25-p4-{low.value}', width=0.25, stem_stride=4,
                      precision=low),
        CandidateSpec(f'student-w0.25-stem4-{low.value}', width=0.25, stem_stride=4,
                      teacher_stem=True, precision=low),
        CandidateSpec(f'student-w0.25-stem24-{low.value}', width=0.25, stem_stride=(2, 4),
                      teacher_stem=True, precision=low),
    ]
    if target == 'cpu':
        grid.append(CandidateSpec('student-w0.5-s0.5-int8-qat', width=0.5, input_scale=0.5,
                                  precision=Precision.INT8, qat=True))
    return grid


def select_grid(target: str = 'cpu', names: Sequence[str] | None = None) -> list[CandidateSpec]:
    """Return the grid for ``target``, restricted to ``names`` (all when None or empty)."""
    grid = default_grid(target)
    if not names:
        return grid
    known = [spec.name for spec in grid]
    missing = [name for name in names if name not in known]
    if missing:
        raise ConfigError(f'Unknown candidate(s) {missing!r} for --target {target}; '
                          f'choose from {", ".join(known)}.')
    return [spec for spec in grid if spec.name in names]


#: What a student bundle keeps of its teacher's provenance: how the teacher was trained (its
#: augmented and guided shifts stay *named* for the student too).
INHERITED = ('preset', 'run', 'train', 'data', 'selection')


def build_candidate(spec: CandidateSpec, teacher: VAE, frames: FrameArray,
                    calibration: FrameArray, config: DistillConfig | None = None, *,
                    teacher_provenance: dict[str, Any] | None = None, progress: bool = True,
                    flow: FlowSpec | None = None) -> tuple[Bundle, dict[str, float]]:
    """Build one candidate from ``teacher``: distil/prune, export, quantise (uncalibrated).

    ``frames`` (the teacher's training frames, at its input size) teach the student;
    ``calibration`` frames measure the latent gap and calibrate int8 activation ranges.
    ``teacher_provenance`` (the teacher bundle's) passes on how the teacher was trained.
    ``flow``: the teacher is a flow encoder (its bundle's FlowSpec); ``frames`` and
    ``calibration`` are then flow stacks, and distillation must not augment them.
    Returns the bundle and the student's latent gap to the teacher.
    """
    config = config or DistillConfig()
    if flow is not None and config.augment:
        raise ConfigError(f'A flow teacher distils on flow stacks: frame augmentation '
                          f'{list(config.augment)!r} does not apply (augment=()).')
    bundle, gap = _build(spec, teacher, frames, calibration, config, progress, flow)
    inherited = {k: v for k, v in (teacher_provenance or {}).items() if k in INHERITED}
    if inherited:
        bundle = bundle.with_manifest(provenance={**inherited, **bundle.manifest.provenance})
    return bundle, gap


def _build(spec: CandidateSpec, teacher: VAE, frames: FrameArray, calibration: FrameArray,
           config: DistillConfig, progress: bool, flow: FlowSpec | None = None
           ) -> tuple[Bundle, dict[str, float]]:
    if (spec.width is None and spec.input_scale == 1.0 and spec.stem_stride == 2
            and not spec.teacher_stem):
        layers = len(teacher.spec.channels)
        encoder = prune_encoder(teacher.encoder, [spec.prune] * layers) if spec.prune else None
        if encoder is not None:
            encoder, _ = distill(teacher, encoder.spec, frames, config, student=encoder,
                                 progress=progress)
    else:
        sspec = student_spec(teacher.spec, width=spec.width or 1.0,
                             input_scale=spec.input_scale, stem_stride=spec.stem_stride,
                             teacher_stem=spec.teacher_stem)
        student = Encoder(sspec)
        if spec.teacher_stem:
            adopt_stem(student, teacher.encoder)
        encoder, _ = distill(teacher, sspec, frames, config, student=student,
                             progress=progress)
        if spec.prune:
            encoder = prune_encoder(encoder, [spec.prune] * len(sspec.channels))
            encoder, _ = distill(teacher, encoder.spec, frames, config, student=encoder,
                                 progress=progress)
    if encoder is None:
        encoder = teacher.encoder
    gap = latent_gap(teacher, encoder, calibration) if encoder is not teacher.encoder else {}
    if spec.qat:
        qat = QatEncoder(fuse(encoder))
        qat_config = DistillConfig(**{**asdict(config), 'epochs': max(2, config.epochs // 3),
                                      'lr': config.lr / 10})
        qat, _ = distill(teacher, encoder.spec, frames, qat_config, student=qat,
                         progress=progress)
        encoder = qat.export_module()
    bundle = bundle_from_encoder(encoder, encoder.spec, name=spec.name,
                                 provenance=_recipe(spec, config), flow=flow)
    if spec.precision is Precision.INT8:
        pick = np.linspace(0, len(calibration) - 1, min(300, len(calibration))).astype(int)
        images = np.stack([_resize(calibration.images[i], bundle) for i in pick])
        bundle = quantize_static_bundle(bundle, images, name=spec.name)
    elif spec.precision is Precision.FP16:
        bundle = fp16_bundle(bundle, name=spec.name)
    return bundle, gap


def _resize(image: np.ndarray, bundle: Bundle) -> np.ndarray:
    from vae_ood_monitor.core.preprocess import resize_image

    spec = bundle.manifest.input
    return resize_image(image, spec.width, spec.height, spec.interpolation)


def run_search(teacher: VAE, teacher_bundle: Bundle, frames: FrameArray,
               calibration: FrameArray, grid: Sequence[CandidateSpec], out: Path,
               assess: Assess, timer: Timer, *, budget: float = 0.02,
               config: DistillConfig | None = None, progress: bool = True,
               resume: bool = False,
               log: Callable[[str], None] = print) -> tuple[Candidate, list[Candidate]]:
    """Build, assess and time every candidate; return (teacher row, all rows sorted by speed).

    Bundles go to ``out/candidates/<name>.vood`` (calibrated); ``out/search.json`` records
    everything. The caller picks the winner with :func:`pareto_front` / the budget. With
    ``resume``, a candidate whose bundle is already in ``out/candidates`` and was built from the
    same recipe (spec and distillation settings) is re-assessed instead of rebuilt (an
    interrupted search loses one candidate at most); a bundle built from another recipe is an
    error rather than silently reused. A flow teacher (``teacher_bundle`` of kind flow) gets
    flow students: ``frames`` and ``calibration`` are then its flow stacks.
    """
    config = config or DistillConfig()
    folder = out / 'candidates'
    folder.mkdir(parents=True, exist_ok=True)
    calibrated, teacher_auroc = assess(teacher_bundle)
    teacher_path = save_bundle(calibrated, folder / 'teacher-fp32.vood', force=True)
    rows = [Candidate(CandidateSpec('teacher-fp32'), str(teacher_path), teacher_auroc,
                      parameters=calibrated.manifest.model.parameters,
                      macs=calibrated.manifest.model.macs,
                      size_bytes=teacher_path.stat().st_size)]
    log(f'teacher: AUROC {_fmt(teacher_auroc)}')
    for spec in grid:
        started = time.monotonic()
        path = folder / f'{spec.name}.vood'
        built = _reusable(spec, config, path) if resume else None
        if built is None:
            bundle, gap = build_candidate(spec, teacher, frames, calibration, config,
                                          teacher_provenance=teacher_bundle.manifest.provenance,
                                          progress=progress, flow=teacher_bundle.manifest.flow)
            build_seconds = time.monotonic() - started
        else:
            bundle, gap, build_seconds = built
        bundle, auroc = assess(bundle)
        save_bundle(bundle, path, force=True)
        _sidecar(path).write_text(json.dumps({'spec': _spec_dict(spec), 'latent_gap': gap,
                                              'build_seconds': build_seconds}))
        rows.append(Candidate(spec, str(path), auroc, parameters=bundle.manifest.model.parameters,
                              macs=bundle.manifest.model.macs, size_bytes=path.stat().st_size,
                              latent_gap=gap, build_seconds=build_seconds))
        how = 'reused' if built is not None else f'built in {build_seconds:.0f} s'
        log(f'{spec.name}: AUROC {_fmt(auroc)} (max drop '
            f'{rows[-1].min_drop(teacher_auroc):+.3f}), {bundle.manifest.model.macs / 1e6:.1f} '
            f'MMAC, {how}')
    timings = timer([Path(r.path) for r in rows])
    for row in rows:
        row.median_ms = timings[row.path]
    rows[1:] = sorted(rows[1:], key=lambda r: r.median_ms)
    (out / 'search.json').write_text(json.dumps(
        {'budget': budget, 'rows': [r.as_dict() for r in rows]}, indent=1))
    return rows[0], rows


def _spec_dict(spec: CandidateSpec) -> dict[str, Any]:
    return asdict(spec) | {'precision': spec.precision.value}


def _recipe(spec: CandidateSpec, config: DistillConfig) -> dict[str, Any]:
    """Return what a candidate is built from (its provenance): spec and distillation settings.

    Where the distillation runs (threads, device) is left out: it does not change the recipe.
    """
    settings = {k: v for k, v in asdict(config).items() if k not in ('threads', 'device')}
    return {'compression': _spec_dict(spec),
            'distillation': json.loads(json.dumps(settings))}  # as it reads back from a bundle


def _sidecar(path: Path) -> Path:
    return path.with_suffix('.json')


def _reusable(spec: CandidateSpec, config: DistillConfig, path: Path
              ) -> tuple[Bundle, dict[str, float], float] | None:
    """Return the bundle an interrupted search built for ``spec``, or None if there is none."""
    if not path.is_file():
        return None
    bundle = load_bundle(path)
    wanted = _recipe(spec, config)
    made_from = {key: bundle.manifest.provenance.get(key) for key in wanted}
    if made_from != wanted:
        raise ConfigError(f'{path} was built from {made_from!r}, not from this candidate '
                          f'recipe {wanted!r}; remove it or start the search afresh without '
                          '--resume.')
    gap: dict[str, float] = {}
    seconds = 0.0
    if _sidecar(path).is_file():
        record = json.loads(_sidecar(path).read_text())
        gap, seconds = dict(record.get('latent_gap', {})), float(record.get('build_seconds', 0))
    return bundle, gap, seconds


def pareto_front(rows: Sequence[Candidate]) -> list[Candidate]:
    """Candidates not beaten on both latency and worst-shift AUROC by any other."""
    def worst(row: Candidate) -> float:
        return min(row.auroc.values()) if row.auroc else 0.0
    return [r for r in rows if not any(
        o.median_ms <= r.median_ms and worst(o) >= worst(r)
        and (o.median_ms < r.median_ms or worst(o) > worst(r)) for o in rows)]


def _fmt(auroc: dict[str, float]) -> str:
    return ', '.join(f'{k} {v:.3f}' for k, v in auroc.items())
