"""The whole calibration of a bundle from held-out in-distribution frames.

1. Split the frames into two halves of whole sequences: **A** gives the conformal calibration
   scores and per-frame thresholds; **B** chooses each partition's latent dims and tail and
   calibrates the sequential test. Keeping them apart keeps the p-values honest.
2. Partitions: ``generic`` (how far the frame's encoder features lie from in-distribution
   frames, :mod:`vae_ood_monitor.core.density`, fitted on A and B together, every frame scored
   by a fit without its own sequence: the detector for shifts nobody anticipated), ``all``
   (the KL of every latent dim summed, two-sided: the paper's generic score) and/or one per
   named shift (e.g. ``rain``, ``brightness``), whose dims and tail are chosen by the labelled
   rule (validation AUROC on B frames with that shift applied at a test-range severity), the
   paper's rule (calibration videos at graded training-range severities) or all dims.
3. Per-frame thresholds at the target false-alarm rate, split evenly between the absolute
   partitions. Where the frames cannot certify that rate, the lowest rate they can certify is
   used instead, and the report says so and how many frames the target needs.
4. Change partitions (``change``, off by default): a twin of every partition that scores each
   frame relative to the same camera's recent frames (:mod:`vae_ood_monitor.core.baseline`),
   calibrated on A's sequences. In-distribution KL varies far more between scenes than within
   one drive, so a shift that moves a drive's KL by a third is often invisible against the
   pooled calibration scores and plain against the drive's own past.
5. Sequential test: the martingale window, CUSUM drift and threshold of every partition from
   B's sequences (clean, and with validation shifts starting half-way), see
   :mod:`.sequential`. The alert is the OR of the partitions, so each of the k partitions gets
   ``alarm_rate / k`` false alarms per frame (Bonferroni): together they meet ``alarm_rate``.

The report (what was chosen and why, with validation figures) goes into the manifest's metrics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
import math
from typing import Any, Callable, Mapping, TYPE_CHECKING

import numpy as np

from vae_ood_monitor.core.baseline import BaselineParams
from vae_ood_monitor.core.density import DensityMethod
from vae_ood_monitor.core.errors import CalibrationError, ConfigError
from vae_ood_monitor.core.typedefs import DimSelection, Tail
from vae_ood_monitor.data.shifts import (sample_severity, SEVERITY_RANGES, shift_frames, ShiftKind,
                                         ShiftProcess)
from vae_ood_monitor.evaluate.colour import fit_colour_baseline
from vae_ood_monitor.evaluate.cusum_fit import candidate_windows, DriveResolution, fit_cusum
from vae_ood_monitor.evaluate.density_fit import (fit_density_scored, MIN_DENSITY_FRAMES,
                                                  pseudo_groups)
from vae_ood_monitor.evaluate.dims import labelled_dims, paper_dims
from vae_ood_monitor.evaluate.partitions import (calibrate_partitions, MIN_CALIBRATION_FRAMES,
                                                 PartitionPlan)
from vae_ood_monitor.evaluate.scores import encodings_of_images

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from vae_ood_monitor.core.bundle import Bundle
    from vae_ood_monitor.core.encoding import Layout
    from vae_ood_monitor.core.typedefs import Encoder
    from vae_ood_monitor.data.dataset import FrameArray

__all__ = ['DEFAULT_PARTITIONS', 'GENERIC', 'KL_ALL', 'MIN_FRAMES', 'CalibrationOptions',
           'calibrate', 'calibrate_and_score', 'certifiable_far', 'split_for_calibration']

#: The generic partition: distance of the encoder features from in-distribution frames.
GENERIC = 'generic'
#: The paper's generic score: the KL of every latent dim, summed (two-sided).
KL_ALL = 'all'
#: The default alert (calibrate, export --calibrate, compress and the demo alike).
DEFAULT_PARTITIONS = (GENERIC,)
#: Below this many calibration frames calibration refuses: no rate can be certified.
MIN_FRAMES = 2 * MIN_DENSITY_FRAMES
#: Suffix of a change partition's name (``rain`` -> ``rain_change``).
CHANGE_SUFFIX = '_change'
#: A flow bundle's validation shift for the CUSUM drift and its noise (uint8 flow levels).
FLOW_NOISE = 'flow_noise'
FLOW_NOISE_LEVELS = 32.0
#: Offset of the seeds of validation shifts (evaluation uses the plain seed).
VALIDATION_SEED = 7919
#: At most this many of B's frames (evenly spaced) get a shift for the labelled dim selection.
LABELLED_FRAMES = 10_000


@dataclass(frozen=True)
class CalibrationOptions:
    """Calibration settings (validated here for the CLI and the demo alike)."""

    target_far: float = 0.01
    partitions: tuple[str, ...] = DEFAULT_PARTITIONS
    selection: DimSelection = DimSelection.LABELLED
    sequential: bool = True
    #: candidate martingale windows (frames); calibration picks one per partition
    windows: tuple[int, ...] = (20,)
    #: CUSUM false alarms per in-distribution frame of the whole alert (split between partitions)
    alarm_rate: float = 1e-4
    margin: float = 0.25
    #: share of the calibration sequences that fit the CUSUM (half B); the rest (half A) give
    #: the conformal scores. The thresholds need many drives, the scores far fewer.
    sequence_share: float = 0.5
    validation_shifts: tuple[str, ...] = ()
    cusum_cap: float = 2.0
    paper_dims: int = 3
    #: change twins of every partition; off by default: on the demo's model the generic
    #: partition's twin raised 4 false alarms in 5,260 in-distribution frames (none without it)
    change: bool = False
    baseline_frames: int = 30
    baseline_gap: int = 5
    change_offset: float = 0.5
    #: how the generic partition measures distance (a DensityMethod value)
    generic_method: str = 'mahalanobis'
    seed: int = 0

    def __post_init__(self) -> None:
        partitions = tuple(self.partitions)
        kinds = {k.value for k in ShiftKind}
        unknown = [p for p in partitions if p not in (GENERIC, KL_ALL) and p not in kinds]
        if not partitions or unknown or len(set(partitions)) != len(partitions):
            raise ConfigError(f'Partitions {list(partitions)!r} must be distinct names from: '
                              f'{GENERIC}, {KL_ALL}, {", ".join(sorted(kinds))}.')
        object.__setattr__(self, 'partitions', partitions)
        try:
            object.__setattr__(self, 'selection', DimSelection(self.selection))
        except ValueError:
            raise ConfigError(f'selection {self.selection!r} is not supported; choose one of: '
                              f'{", ".join(s.value for s in DimSelection)}.') from None
        shifts = tuple(self.validation_shifts)
        if any(s not in kinds for s in shifts):
            raise ConfigError(f'Validation shifts {list(shifts)!r} must be among: '
                              f'{", ".join(sorted(kinds))}.')
        object.__setattr__(self, 'validation_shifts', shifts)
        if not 0 < self.sequence_share < 1:
            raise ConfigError(f'sequence_share {self.sequence_share!r} must be in (0, 1): the '
                              'share of calibration sequences that fit the CUSUM.')
        if not 0 < self.target_far < 0.5 or not 0 < self.alarm_rate < 1:
            raise ConfigError(f'target_far {self.target_far!r} must be in (0, 0.5) and '
                              f'alarm_rate {self.alarm_rate!r} in (0, 1).')
        windows = candidate_windows(self.windows)
        if not windows or windows[0] < 1 or self.margin < 0 or self.paper_dims < 1:
            raise ConfigError(f'windows {list(windows)!r} and paper_dims {self.paper_dims!r} '
                              f'must be >= 1 and margin {self.margin!r} >= 0.')
        object.__setattr__(self, 'windows', windows)
        if not (math.isfinite(self.cusum_cap) and self.cusum_cap >= 1.0):
            raise ConfigError(f'cusum_cap {self.cusum_cap!r} must be finite and >= 1 (a '
                              'multiple of tau).')
        if not 0 <= self.change_offset < 1:
            raise ConfigError(f'change_offset {self.change_offset!r} must be a quantile level '
                              'in [0, 1) (0: no offset).')
        try:
            object.__setattr__(self, 'generic_method', DensityMethod(self.generic_method).value)
        except ValueError:
            raise ConfigError(f'generic_method {self.generic_method!r} is not supported; choose '
                              f'one of: {", ".join(m.value for m in DensityMethod)}.') from None
        if self.baseline_frames < 2 or self.baseline_gap < 0:
            raise ConfigError(f'baseline_frames {self.baseline_frames!r} must be >= 2 and '
                              f'baseline_gap {self.baseline_gap!r} >= 0.')

    @property
    def window(self) -> int:
        """The longest candidate window: sequences need twice as many frames."""
        return self.windows[-1]

    @property
    def baseline(self) -> BaselineParams:
        """Reference window of the change partitions."""
        return BaselineParams(frames=self.baseline_frames, gap=self.baseline_gap,
                              min_frames=max(1, self.baseline_frames // 3))

    @property
    def shifts_for_delta(self) -> tuple[str, ...]:
        """Shifts whose validation sequences tune the generic partition's CUSUM drift.

        Each named partition is tuned on its own shift.
        """
        return self.validation_shifts or self.named or ('rain', 'brightness')

    @property
    def named(self) -> tuple[str, ...]:
        """The partitions named after a shift."""
        return tuple(p for p in self.partitions if p not in (GENERIC, KL_ALL))


def split_for_calibration(frames: FrameArray, share_b: float = 0.5
                          ) -> tuple[FrameArray, FrameArray]:
    """Split into (A, B) by whole sequences, ``share_b`` of them to B, spread evenly.

    At 0.5 the sequences alternate (A, B, A, B, ...). A single sequence is split in time
    instead, its last ``share_b`` of frames to B.
    """
    groups = np.unique(frames.groups)
    if len(groups) >= 2:
        # sequence i goes to B when the running count of B's share passes a whole number
        steps = np.floor(np.arange(1, len(groups) + 1) * share_b)
        to_b = np.diff(steps, prepend=0.0) > 0
        to_b[0], to_b[-1] = False, to_b[-1] or not to_b.any()  # both halves get a sequence
        in_b = np.isin(frames.groups, groups[to_b])
        return frames.subset(~in_b), frames.subset(in_b)
    first, second = frames.split_groups(share_b)
    return first, second


def certifiable_far(frames: int, partitions: int) -> float:
    """Return the lowest per-frame false-alarm rate ``frames`` calibration scores certify.

    A conformal threshold at level a needs (n + 1) a >= 1; the rate is split between
    ``partitions`` absolute partitions.
    """
    return partitions / (frames + 1)


def calibrate(bundle: Bundle, frames: FrameArray, options: CalibrationOptions | None = None, *,
              encoder: Encoder | None = None,
              log: Callable[[str], None] | None = None) -> tuple[Bundle, dict[str, Any]]:
    """Calibrate ``bundle`` on held-out in-distribution ``frames``; return it and a report."""
    options = options or CalibrationOptions()
    say = log or (lambda _text: None)
    flow = bundle.manifest.flow is not None
    if flow and options.named:
        raise ConfigError(f'{bundle.name!r} is a flow bundle: partitions named after frame '
                          f'shifts ({", ".join(options.named)}) do not apply; use '
                          f'{GENERIC} or {KL_ALL}.')
    if len(frames) < MIN_FRAMES:
        raise CalibrationError(f'{len(frames)} calibration frames are too few: calibration '
                               f'needs at least {MIN_FRAMES} held-out in-distribution frames '
                               '(a few hundred from several recordings are better).')
    part_a, part_b = split_for_calibration(frames, options.sequence_share)
    layout = bundle.manifest.model.layout

    def encode(images: NDArray[np.uint8]) -> NDArray[np.float64]:
        return encodings_of_images(bundle, images, encoder=encoder)

    def kl(images: NDArray[np.uint8]) -> NDArray[np.float64]:
        return layout.kl(encode(images))

    rows_a, rows_b = encode(part_a.images), encode(part_b.images)
    kl_b = layout.kl(rows_b)
    latent = layout.latent_dim
    report: dict[str, Any] = {'frames': len(frames), 'split': [len(part_a), len(part_b)],
                              'options': _jsonable(asdict(options)), 'partitions': {}}
    plans = []
    honest_b = None  # the generic partition's cross-fitted scores of B's frames
    for name in options.partitions:
        if name == GENERIC:
            plan, details, honest_b = _generic_plan(rows_a, rows_b, part_a, part_b, layout,
                                                    options, flow)
            say(f'partition {name}: {details["method"]} distance over {details["features"]} '
                f'encoder features ({", ".join(details["groups"])})'
                + (f', {details["reference"]} reference frames' if details['reference']
                   else ''))
        else:
            plan, details = _plan(name, options, kl_b, part_b, kl)
            say(f'partition {name}: {len(plan.dims)}/{latent} dims, {plan.tail.value} tail'
                + (f', validation AUROC {details["validation_auroc"]:.3f}'
                   if 'validation_auroc' in details else ''))
        plans.append(plan)
        report['partitions'][name] = details
    far = _certified(options.target_far, len(part_a), plans, report, say)
    sequences_b = [rows_b[idx] for idx in part_b.sequences() if len(idx) >= 2 * options.window]
    baseline = options.baseline
    sequences_a = part_a.sequences()
    warm_a = sum(max(0, len(idx) - baseline.warmup) for idx in sequences_a)
    if options.change and options.sequential and sequences_b and warm_a < MIN_CALIBRATION_FRAMES:
        report['change'] = 'skipped: sequences too short'
        say(f'change partitions skipped: they need sequences of at least {2 * options.window} '
            f'frames and {MIN_CALIBRATION_FRAMES} frames past a {baseline.warmup}-frame '
            'warm-up')
    elif options.change and options.sequential and sequences_b:
        kl_a = layout.kl(rows_a)
        for plan in list(plans):
            raw = plan.scores if plan.density is not None else kl_a[:, list(plan.dims)].sum(1)
            offset = (float(np.quantile(raw, options.change_offset))
                      if options.change_offset > 0 else 0.0)
            twin = replace(baseline, offset=offset)
            plans.append(replace(plan, name=plan.name + CHANGE_SUFFIX, baseline=twin))
            report['partitions'][plan.name + CHANGE_SUFFIX] = {
                **report['partitions'][plan.name], 'baseline': twin.to_dict()}
        say(f'change partitions: {", ".join(p.name for p in plans if p.baseline)} (reference '
            f'{baseline.frames} frames, {baseline.gap} frames back)')
    calibrated = calibrate_partitions(bundle, rows_a, target_far=far, plans=plans,
                                      sequences=sequences_a)
    partitions = list(calibrated.manifest.partitions)
    if options.sequential and sequences_b:
        shifted = _validation_sequences(part_b, rows_b, options, encode, flow)
        share = options.alarm_rate / len(partitions)  # the alert ORs them: split the budget
        report['alarm_rate_per_partition'] = share
        long_b = [idx for idx in part_b.sequences() if len(idx) >= 2 * options.window]
        for number, part in enumerate(partitions):
            # a shift's own partitions are tuned to that shift, the generic ones to all of them
            base = part.name.removesuffix(CHANGE_SUFFIX) if part.baseline else part.name
            mine = shifted.get(base) or [s for group in shifted.values() for s in group]
            # raw scores: B's frames scored honestly (the generic partition: by models fitted
            # without them), the shifted halves by the partition as the robot will
            raw_b = (honest_b if part.density is not None and honest_b is not None
                     else part.raw_scores(rows_b, layout))
            fit = fit_cusum(part, [raw_b[idx] for idx in long_b],
                            [(np.r_[raw_b[idx[:onset]], part.raw_scores(rows[onset:], layout)],
                              onset) for rows, onset, idx in mine],
                            window=options.windows, target_rate=share, margin=options.margin,
                            cusum_cap=options.cusum_cap, raw=True)
            partitions[number] = replace(part, cusum=fit.params)
            report['partitions'][part.name]['cusum'] = fit.as_dict()
            say(fit.describe())
        resolution = DriveResolution(len(sequences_b), len(partitions),
                                     float(np.mean([len(s) for s in sequences_b])),
                                     options.alarm_rate)
        report['drive_resolution'] = resolution.as_dict()
        say(('' if resolution.sufficient else 'note: ') + resolution.describe())
    elif options.sequential:
        report['sequential'] = (f'skipped: no calibration sequence has {2 * options.window} '
                                'frames or more')
        say('sequential calibration skipped: the frames form no sequences long enough')
    if not flow:  # a flow stack has no colours
        report['colour_baseline'] = fit_colour_baseline(part_a.images)
    metrics = {**bundle.manifest.metrics, 'calibration': report}
    return calibrated.with_manifest(partitions=tuple(partitions), metrics=metrics), report


def _certified(target: float, frames: int, plans: list[PartitionPlan], report: dict[str, Any],
               say: Callable[[str], None]) -> float:
    """Return the per-frame rate to calibrate at: ``target``, or the lowest certifiable."""
    absolute = sum(plan.baseline is None for plan in plans)
    sides = max((2 if plan.tail is Tail.TWO_SIDED else 1) for plan in plans)
    lowest = certifiable_far(frames, absolute * sides)
    far = max(target, lowest)
    report['target_far'] = far
    if far > target:
        needed = math.ceil(absolute * sides / target) - 1
        report['target_far_requested'] = target
        say(f'note: {frames} calibration scores certify a per-frame false-alarm rate of '
            f'{far:.3g} at best, not the {target:g} asked for; the thresholds use {far:.3g}. '
            f'{target:g} needs about {2 * needed} calibration frames ({needed} for the scores, '
            'as many again for the sequential test).')
    else:
        say(f'per-frame false-alarm rate {far:g} ({frames} calibration scores can certify down '
            f'to {lowest:.3g})')
    return far


def _generic_plan(rows_a: NDArray[np.float64], rows_b: NDArray[np.float64],
                  part_a: FrameArray, part_b: FrameArray, layout: Layout,
                  options: CalibrationOptions, flow: bool = False
                  ) -> tuple[PartitionPlan, dict[str, Any], NDArray[np.float64]]:
    """Plan the generic partition: a density model fitted on every calibration frame.

    Each frame's score comes from a model fitted without its sequence (cross-fitting): A's are
    the conformal calibration scores, B's (returned too) feed the sequential calibration.
    """
    ids = np.r_[pseudo_groups(part_a.groups), pseudo_groups(part_b.groups) + len(part_a) + 1]
    density, scores = fit_density_scored(np.concatenate([rows_a, rows_b]), ids, layout,
                                         method=options.generic_method)
    honest_a, honest_b = scores[:len(rows_a)], scores[len(rows_a):]
    dims = tuple(sorted({c % layout.latent_dim for c in density.columns
                         if c < 2 * layout.latent_dim}))
    # a flow bundle's generic score is two-sided: motion that stops altogether (a frozen
    # stream) can sit nearer the middle of the in-distribution features than any real drive
    tail = Tail.TWO_SIDED if flow else Tail.UPPER
    details = {'selection': 'all', 'tail': tail.value, 'method': density.method.value,
               'groups': list(density.groups), 'features': len(density.columns),
               'reference': 0 if density.reference is None else len(density.reference),
               'dims': list(dims)}
    return (PartitionPlan(GENERIC, dims, DimSelection.ALL, tail, density=density,
                          scores=honest_a), details, honest_b)


def calibrate_and_score(bundle: Bundle, calib: FrameArray, val: FrameArray,
                        ood: Mapping[str, FrameArray], options: CalibrationOptions | None = None
                        ) -> tuple[Bundle, dict[str, float]]:
    """Calibrate ``bundle`` on ``calib``; return it and its AUROC per ``ood`` set against ``val``.

    Every frame set is resized to the bundle's input first, so candidates with different input
    sizes are judged on the same frames.
    """
    from vae_ood_monitor.evaluate.report import evaluate_encodings

    size = (bundle.manifest.input.height, bundle.manifest.input.width)
    bundle, _ = calibrate(bundle, calib.resized(*size), options)
    id_rows = encodings_of_images(bundle, val.resized(*size).images)
    ood_rows = {name: encodings_of_images(bundle, frames.resized(*size).images)
                for name, frames in ood.items()}
    evaluation = evaluate_encodings(bundle, id_rows, ood_rows)
    return bundle, {name: evaluation.auroc(name) for name in ood_rows}


def _plan(name: str, options: CalibrationOptions, kl_b: NDArray[np.float64],
          part_b: FrameArray, kl: Callable[[NDArray[np.uint8]], NDArray[np.float64]]
          ) -> tuple[PartitionPlan, dict[str, Any]]:
    latent = kl_b.shape[1]
    every = tuple(range(latent))
    if name == KL_ALL:
        return (PartitionPlan(name, every, DimSelection.ALL, Tail.TWO_SIDED),
                {'dims': list(every), 'selection': 'all', 'tail': 'two_sided'})
    if options.selection is DimSelection.ALL:
        return (PartitionPlan(name, every, DimSelection.ALL, Tail.TWO_SIDED),
                {'dims': list(every), 'selection': 'all', 'tail': 'two_sided'})
    if options.selection is DimSelection.PAPER:
        videos = []
        lo, hi = SEVERITY_RANGES[ShiftKind(name)]['train']
        sequences = part_b.sequences()
        for number, idx in enumerate(sequences):
            level = lo + (hi - lo) * number / max(1, len(sequences) - 1)
            process = ShiftProcess(name, level, options.seed + number)
            videos.append(kl(np.stack([process(img, i) for i, img in
                                       enumerate(part_b.images[idx])])))
        dims = paper_dims(videos, options.paper_dims)
        return (PartitionPlan(name, dims, DimSelection.PAPER, Tail.UPPER),
                {'dims': list(dims), 'selection': 'paper', 'tail': 'upper',
                 'videos': len(videos)})
    # every k-th frame of B beyond LABELLED_FRAMES: per-dim AUROC needs no more, and
    # encoding a shifted copy of every frame of many held-out drives would cost minutes
    step = max(1, math.ceil(len(part_b) / LABELLED_FRAMES))
    shifted = kl(shift_frames(part_b.images[::step], name, 'test',
                              options.seed + VALIDATION_SEED))
    dims, tail, auroc = labelled_dims(kl_b[::step], shifted)
    return (PartitionPlan(name, dims, DimSelection.LABELLED, tail),
            {'dims': list(dims), 'selection': 'labelled', 'tail': tail.value,
             'validation_auroc': auroc, 'validation_frames': len(shifted)})


def _validation_sequences(part_b: FrameArray, rows_b: NDArray[np.float64],
                          options: CalibrationOptions,
                          encode: Callable[[NDArray[np.uint8]], NDArray[np.float64]],
                          flow: bool = False
                          ) -> dict[str, list[tuple[NDArray[np.float64], int,
                                                    NDArray[np.intp]]]]:
    """B's sequences with each validation shift applied from the middle on (mode m2).

    Per shift kind, (rows, onset, indices of the drive's frames in B) triples.

    Before the onset a sequence is its drive's frames unchanged, so it takes their encodings
    from ``rows_b``; only the shifted half is encoded.
    """
    out: dict[str, list[tuple[NDArray[np.float64], int, NDArray[np.intp]]]] = {}
    rng = np.random.default_rng([options.seed, 104729])
    kinds = (FLOW_NOISE,) if flow else dict.fromkeys(options.shifts_for_delta + options.named)
    for kind in kinds:
        for number, idx in enumerate(part_b.sequences()):
            if len(idx) < 2 * options.window:
                continue
            onset = len(idx) // 2
            process: Callable[[NDArray[np.uint8], int], NDArray[np.uint8]] = (
                _FlowNoise(options.seed + 1000 + number) if flow else
                ShiftProcess(kind, sample_severity(kind, 'test', rng),
                             options.seed + 1000 + number))
            shifted = np.stack([process(image, i) for i, image in
                                enumerate(part_b.images[idx[onset:]])])
            rows = rows_b[idx].copy()
            rows[onset:] = encode(shifted)
            out.setdefault(kind, []).append((rows, onset, idx))
    return out


class _FlowNoise:
    """A flow bundle's stand-in validation shift for the CUSUM drift: noisy flow fields.

    Motion anomalies need the frames, calibration has the stacks; Gaussian noise of about a
    pixel on every field is none of the anomalies evaluated (shake, frozen, speed, reverse,
    drop), so those stay unnamed.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, stack: NDArray[np.uint8], index: int) -> NDArray[np.uint8]:
        noise = np.random.default_rng([self.seed, index]).normal(0, FLOW_NOISE_LEVELS,
                                                                 stack.shape)
        return np.clip(stack + noise, 0, 255).astype(np.uint8)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return getattr(value, 'value', value)
