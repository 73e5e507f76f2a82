"""The model bundle's manifest: a versioned, validated description of one detector.

Everything the runtime needs besides the ONNX graph lives here: the input specification, the
latent size, the partitions (which latent dimensions score which kind of shift, with their sorted
calibration scores, per-frame threshold and CUSUM parameters), provenance and metrics. The
manifest is plain JSON; loading it never unpickles anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
import math
from typing import Any, TYPE_CHECKING, TypeVar

import numpy as np

from vae_ood_monitor.core.baseline import BaselineParams, relative_scores
from vae_ood_monitor.core.density import DensityModel
from vae_ood_monitor.core.encoding import Layout
from vae_ood_monitor.core.errors import BundleError, ConfigError
from vae_ood_monitor.core.flow import FlowSpec
from vae_ood_monitor.core.preprocess import InputSpec
from vae_ood_monitor.core.typedefs import DimSelection, Precision, Tail

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ['KINDS', 'SCHEMA_VERSION', 'CusumParams', 'Manifest', 'ModelInfo', 'Partition']

#: Newest manifest schema this runtime reads and writes. Version 2 added change partitions
#: (``baseline``), version 3 the model's activation statistics output (``stats_dim``) and
#: generic partitions (``density``), version 4 the ``flow`` kind (optical-flow stacks as
#: input). A manifest is written with the oldest version that describes it, so older runtimes
#: still read what they can, and refuse what they would misread.
SCHEMA_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
#: Detector kinds: one colour frame per decision, or a stack of optical-flow fields.
KINDS = ('frame', 'flow')
E = TypeVar('E', bound=Enum)
BUNDLE_FORMAT = 'vae-ood-bundle'


def _choice(enum: type[E], value: object, name: str) -> E:
    try:
        return enum(value)  # type: ignore[call-arg]
    except ValueError:
        choices = ', '.join(m.value for m in enum)  # type: ignore[attr-defined]
        raise ConfigError(
            f'{name} {value!r} is not supported; choose one of: {choices}.') from None


def _log_ratio(value: float, median: float, threshold: float, lower: bool = False) -> float:
    """log(value / median) / log(threshold / median), robust at 0, inf and NaN.

    ``lower``: the same on the other side, log(median / value) / log(median / threshold), where
    smaller values are further out. A non-finite value (broken encoder output) is always
    infinitely far out, as the detector treats it; a degenerate calibration (threshold on the
    wrong side of the median, or a zero median or threshold) leaves only the comparison with the
    threshold.
    """
    if not math.isfinite(value):
        return math.inf
    far = value < threshold if lower else value > threshold
    usable = 0 < threshold < math.inf and 0 < median < math.inf
    scale = math.log(threshold / median) if usable else 0.0
    if lower:
        scale = -scale
    if scale <= 0.0 or value <= 0.0:
        return math.inf if far else -math.inf
    return (math.log(median / value) if lower else math.log(value / median)) / scale


@dataclass(frozen=True)
class CusumParams:
    """Sequential-test settings of one partition: martingale window, CUSUM drift and threshold.

    ``cap``: the bound of the CUSUM statistic, in units of ``tau``, that calibration counted
    false alarms with (a lower cap clears alarms sooner and can raise more of them); the
    runtime uses it unless the Monitor config overrides it.
    """

    window: int
    delta: float
    tau: float
    cap: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.window, int) or self.window < 1:
            raise ConfigError(f'CUSUM window {self.window!r} must be a positive integer.')
        if not np.isfinite(self.delta) or not np.isfinite(self.tau) or self.tau <= 0:
            raise ConfigError(f'CUSUM delta {self.delta!r} and tau {self.tau!r} must be finite, '
                              'tau positive.')
        if not (math.isfinite(self.cap) and self.cap >= 1.0):
            raise ConfigError(f'CUSUM cap {self.cap!r} must be finite and >= 1 (a multiple of '
                              'tau).')

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest representation."""
        return {'window': self.window, 'delta': float(self.delta), 'tau': float(self.tau),
                'cap': float(self.cap)}


@dataclass(frozen=True, eq=False)
class Partition:
    """A group of latent dimensions whose summed KL is tested for one kind of shift.

    ``calibration_scores`` are in-distribution scores of held-out frames, sorted ascending, so a
    conformal p-value is one binary search. ``tail`` says which deviation is out of
    distribution; the per-frame rule triggers above ``threshold`` (upper, two-sided) and below
    ``threshold_low`` (lower, two-sided). With ``baseline`` it is a *change* partition: its
    score is the KL sum relative to the camera's own recent frames (see
    :mod:`~vae_ood_monitor.core.baseline`), and so are its calibration scores and thresholds.
    """

    name: str
    dims: tuple[int, ...]
    selection: DimSelection = DimSelection.ALL
    calibration_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    threshold: float | None = None
    cusum: CusumParams | None = None
    tail: Tail = Tail.UPPER
    threshold_low: float | None = None
    baseline: BaselineParams | None = None
    density: DensityModel | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigError(f'Partition name {self.name!r} must be a non-empty string.')
        if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                   for d in self.dims):
            raise ConfigError(f'Partition {self.name!r}: dims {self.dims!r} must be integers.')
        dims = tuple(int(d) for d in self.dims)
        if ((not dims and self.density is None) or len(set(dims)) != len(dims)
                or min(dims, default=0) < 0):
            raise ConfigError(f'Partition {self.name!r}: dims {dims!r} must be distinct '
                              'non-negative latent indices, at least one (a generic partition '
                              'may have none).')
        object.__setattr__(self, 'dims', dims)
        object.__setattr__(self, 'selection', _choice(DimSelection, self.selection, 'selection'))
        scores = np.sort(np.asarray(self.calibration_scores, dtype=np.float64).ravel())
        if not np.all(np.isfinite(scores)):
            raise ConfigError(f'Partition {self.name!r}: calibration scores must be finite.')
        scores.setflags(write=False)
        object.__setattr__(self, 'calibration_scores', scores)
        object.__setattr__(self, 'tail', _choice(Tail, self.tail, 'tail'))
        for name in ('threshold', 'threshold_low'):
            value = getattr(self, name)
            if value is not None and not np.isfinite(value):
                raise ConfigError(f'Partition {self.name!r}: {name} {value!r} is not finite.')

    @property
    def calibrated(self) -> bool:
        """Whether calibration scores and the thresholds its tail needs are present."""
        needs_upper = self.tail is not Tail.LOWER
        needs_lower = self.tail is not Tail.UPPER
        return (self.calibration_scores.size > 0
                and (self.threshold is not None or not needs_upper)
                and (self.threshold_low is not None or not needs_lower))

    @property
    def median(self) -> float:
        """Median in-distribution calibration score (the zero of the evidence scale).

        The scores are sorted, so this is the middle one (or the mean of the middle two): the
        value np.median gives, without its O(N) pass on every frame of the per-frame rule.
        """
        scores = self.calibration_scores
        n = scores.size
        if not n:
            return math.nan
        middle = n // 2
        if n % 2:
            return float(scores[middle])
        return float((scores[middle - 1] + scores[middle]) / 2.0)

    def evidence_of(self, score: float) -> float:
        """Per-frame evidence of one score: 0 at the ID median, 1 at a threshold, log scale.

        upper: log(score / median) / log(threshold / median); lower: log(median / score) /
        log(median / threshold_low); two-sided: the larger. Above 1 the per-frame rule
        triggers, so evidences of different partitions and tails compare directly.
        """
        median = self.median
        result = -math.inf
        if self.tail is not Tail.LOWER:
            result = _log_ratio(score, median, self.threshold)  # type: ignore[arg-type]
        if self.tail is not Tail.UPPER:  # smaller is further out
            low = _log_ratio(score, median, self.threshold_low,  # type: ignore[arg-type]
                             lower=True)
            result = max(result, low)
        return result

    def raw_scores(self, rows: NDArray[np.float64], layout: Layout | None = None
                   ) -> NDArray[np.float64]:
        """Per-frame scores of encoding rows (T, width) before any change ratio.

        The generic score of a partition with a density model, else the KL sum over its dims.
        Without ``layout`` the rows are per-dim KL (T, D) (enough for a KL partition).
        """
        rows = np.asarray(rows, np.float64)
        if self.density is not None:
            if layout is None:
                raise ValueError(f'partition {self.name!r} scores encoding rows: pass a layout')
            return self.density.scores(rows)
        kl = rows if layout is None else layout.kl(rows)
        return kl[:, list(self.dims)].sum(axis=1)

    def scores_of(self, rows: NDArray[np.float64], layout: Layout | None = None
                  ) -> NDArray[np.float64]:
        """Scores of one stream's encoding rows (T, width) in order, as the runtime computes.

        :meth:`raw_scores`; for a change partition their ratio to the stream's own lagged
        reference (never frozen here: offline there is no trigger to freeze on).
        """
        return self.from_raw(self.raw_scores(rows, layout))

    def from_raw(self, raw: NDArray[np.float64]) -> NDArray[np.float64]:
        """Scores of one stream from its :meth:`raw_scores` (a change partition's ratios)."""
        raw = np.asarray(raw, np.float64)
        return raw if self.baseline is None else relative_scores(raw, self.baseline)

    def evidence(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        """Vectorised :meth:`evidence_of`."""
        return np.array([self.evidence_of(float(s)) for s in np.ravel(scores)]).reshape(
            np.shape(scores))

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest representation."""
        return {
            'name': self.name,
            'dims': list(self.dims),
            'selection': self.selection.value,
            'tail': self.tail.value,
            'threshold': None if self.threshold is None else float(self.threshold),
            'threshold_low': None if self.threshold_low is None else float(self.threshold_low),
            'cusum': None if self.cusum is None else self.cusum.to_dict(),
            **({} if self.baseline is None else {'baseline': self.baseline.to_dict()}),
            **({} if self.density is None else {'density': self.density.to_dict()}),
            'calibration_scores': [float(s) for s in self.calibration_scores],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Partition:
        """Build from the manifest representation."""
        cusum = data.get('cusum')
        baseline = data.get('baseline')
        density = data.get('density')
        return cls(name=data['name'], dims=tuple(data['dims']),
                   selection=data.get('selection', 'all'),
                   calibration_scores=np.asarray(data.get('calibration_scores', []), float),
                   threshold=data.get('threshold'),
                   cusum=None if cusum is None else CusumParams(**cusum),
                   tail=data.get('tail', 'upper'), threshold_low=data.get('threshold_low'),
                   baseline=None if baseline is None else BaselineParams(**baseline),
                   density=None if density is None else DensityModel.from_dict(density))


@dataclass(frozen=True)
class ModelInfo:
    """Facts about the ONNX encoder inside the bundle.

    ``stats_dim``: width of the optional third output (the activation statistics that the
    generic score measures, :mod:`~vae_ood_monitor.core.encoding`); 0 when the model has only
    mu and logvar.
    """

    sha256: str
    latent_dim: int
    precision: Precision = Precision.FP32
    input_name: str = 'image'
    output_names: tuple[str, ...] = ('mu', 'logvar')
    parameters: int = 0
    macs: int = 0
    stats_dim: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, 'precision', _choice(Precision, self.precision, 'precision'))
        object.__setattr__(self, 'output_names', tuple(self.output_names))
        if len(self.sha256) != 64:
            raise ConfigError(f'Model sha256 {self.sha256!r} is not a 64-digit hex digest.')
        if (isinstance(self.stats_dim, bool) or not isinstance(self.stats_dim, int)
                or self.stats_dim < 0):
            raise ConfigError(f'stats_dim {self.stats_dim!r} must be an integer >= 0.')
        outputs = 3 if self.stats_dim else 2
        if self.latent_dim < 1 or len(self.output_names) != outputs:
            raise ConfigError(f'latent_dim {self.latent_dim!r} must be positive and there must '
                              f'be {outputs} outputs (mu, logvar'
                              f'{", stats" if self.stats_dim else ""}), got '
                              f'{self.output_names!r}.')

    @property
    def layout(self) -> Layout:
        """Column layout of this model's encoding rows."""
        return Layout(self.latent_dim, self.stats_dim)

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest representation."""
        return {'sha256': self.sha256, 'latent_dim': self.latent_dim,
                'precision': self.precision.value, 'input_name': self.input_name,
                'output_names': list(self.output_names), 'parameters': self.parameters,
                'macs': self.macs, **({'stats_dim': self.stats_dim} if self.stats_dim else {})}


@dataclass(frozen=True)
class Manifest:
    """The validated manifest of a model bundle (schema versions 1 to 4).

    ``flow`` set makes it a ``flow`` bundle: the encoder reads stacks of optical-flow fields
    of the camera's last frames at the input size (:mod:`~vae_ood_monitor.core.flow`), not
    one colour frame.
    """

    name: str
    input: InputSpec  # noqa: A003 (the manifest key)
    model: ModelInfo
    partitions: tuple[Partition, ...] = ()
    target_far: float = 0.01
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = ''
    flow: FlowSpec | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, 'partitions', tuple(self.partitions))
        if self.flow is not None and not isinstance(self.flow, FlowSpec):
            raise ConfigError(f'flow {self.flow!r} must be a FlowSpec.')
        names = [p.name for p in self.partitions]
        if len(set(names)) != len(names):
            raise ConfigError(f'Partition names must be unique, got {names!r}.')
        layout = self.model.layout
        for part in self.partitions:
            if max(part.dims, default=-1) >= self.model.latent_dim:
                raise ConfigError(
                    f'Partition {part.name!r} uses latent dim {max(part.dims)} but the model has '
                    f'only {self.model.latent_dim} latent dimensions.')
            if part.density is not None and part.density.width > layout.width:
                raise ConfigError(
                    f'Partition {part.name!r} scores encoding column {part.density.width - 1} '
                    f'but the model gives {layout.width} columns; calibrate the bundle again.')
        if not 0.0 < self.target_far < 1.0:
            raise ConfigError(f'target_far {self.target_far!r} must be in (0, 1).')

    @property
    def calibrated(self) -> bool:
        """Tell whether there are partitions and every one is calibrated."""
        return bool(self.partitions) and all(p.calibrated for p in self.partitions)

    @property
    def kind(self) -> str:
        """``frame`` or ``flow``: what one input of the encoder is."""
        return 'flow' if self.flow is not None else 'frame'

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """The encoder's input tensor for one decision: (1, planes, height, width)."""
        planes = self.flow.channels if self.flow is not None else 3
        return (1, planes, self.input.height, self.input.width)

    @property
    def frame_partitions(self) -> tuple[Partition, ...]:
        """The partitions a single frame can be judged by (all but change partitions)."""
        return tuple(p for p in self.partitions if p.baseline is None)

    @property
    def schema_version(self) -> int:
        """The oldest schema version that describes this manifest.

        4 for a flow bundle, 3 with activation statistics or a generic (density) partition, 2
        with change partitions, else 1.
        """
        if self.flow is not None:
            return 4
        if self.model.stats_dim or any(p.density is not None for p in self.partitions):
            return 3
        return 2 if any(p.baseline is not None for p in self.partitions) else 1

    def replace(self, **changes: Any) -> Manifest:
        """Return a copy with some fields replaced (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready representation."""
        return {
            'format': BUNDLE_FORMAT,
            'schema_version': self.schema_version,
            'name': self.name,
            'created': self.created,
            'input': self.input.to_dict(),
            **({'kind': 'flow', 'flow': self.flow.to_dict()} if self.flow is not None else {}),
            'model': self.model.to_dict(),
            'target_far': self.target_far,
            'partitions': [p.to_dict() for p in self.partitions],
            'provenance': self.provenance,
            'metrics': self.metrics,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = 'manifest') -> Manifest:
        """Validate and build from the JSON representation; errors name ``source``."""
        if not isinstance(data, dict) or data.get('format') != BUNDLE_FORMAT:
            raise BundleError(f'{source} is not a vae-ood bundle manifest (format field '
                              f'{data.get("format") if isinstance(data, dict) else None!r}, '
                              f'expected {BUNDLE_FORMAT!r}); export the model with '
                              '`vae-ood export`.')
        version = data.get('schema_version')
        if type(version) is not int or version not in READABLE_VERSIONS:
            hint = ('upgrade vae_ood_monitor to read it' if isinstance(version, int)
                    and version > SCHEMA_VERSION else 're-export the model with this version')
            raise BundleError(f'{source} has schema version {version!r}; this vae_ood_monitor '
                              f'reads versions {", ".join(map(str, READABLE_VERSIONS))}: '
                              f'{hint}.')
        try:
            manifest = cls(
                name=str(data['name']),
                input=InputSpec.from_dict(data['input']),
                model=ModelInfo(**{**data['model'],
                                   'output_names': tuple(data['model']['output_names'])}),
                partitions=tuple(Partition.from_dict(p) for p in data.get('partitions', [])),
                target_far=float(data.get('target_far', 0.01)),
                provenance=dict(data.get('provenance', {})),
                metrics=dict(data.get('metrics', {})),
                created=str(data.get('created', '')),
                flow=_flow_of(data),
            )
        except (AttributeError, KeyError, TypeError, ValueError, ConfigError) as err:
            raise BundleError(f'{source} is malformed ({type(err).__name__}: {err}); re-export '
                              'the model with `vae-ood export`.') from err
        if manifest.schema_version > version:
            raise BundleError(f'{source} declares schema version {version} but uses features of '
                              f'version {manifest.schema_version} (change partitions need 2, '
                              'activation statistics and generic partitions 3, flow 4); the '
                              'file was edited by hand or is damaged: re-export and calibrate '
                              'the model.')
        return manifest


def _flow_of(data: dict[str, Any]) -> FlowSpec | None:
    kind = data.get('kind', 'frame')
    if kind not in KINDS:
        raise ConfigError(f'kind {kind!r} must be one of: {", ".join(KINDS)}')
    if (kind == 'flow') != ('flow' in data):
        raise ConfigError("kind 'flow' and the 'flow' settings come together")
    return FlowSpec.from_dict(data['flow']) if kind == 'flow' else None
