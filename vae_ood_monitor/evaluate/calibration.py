"""The whole calibration of a bundle from held-out in-distribution frames.

1. Split the frames into two halves of whole sequences: **A** gives the conformal calibration
   scores and per-frame thresholds; **B** chooses each partition's latent dims and tail and
   calibrates the sequential test. Keeping them apart keeps the p-values honest.
2. Partitions: ``all`` (every latent dim, two-sided: a generic detector for shifts nobody
   anticipated) and/or one per named shift (e.g. ``rain``, ``brightness``), whose dims and tail
   are chosen by the labelled rule (validation AUROC on B frames with that shift applied at a
   test-range severity), the paper's rule (calibration videos at graded training-range
   severities) or all dims.
3. Per-frame thresholds at the target false-alarm rate, split evenly between the absolute
   partitions.
4. Change partitions (``change``, on by default): a twin of every partition that scores each
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
from vae_ood_monitor.core.dims import labelled_dims, paper_dims
from vae_ood_monitor.core.errors import CalibrationError, ConfigError
from vae_ood_monitor.core.typedefs import DimSelection, Tail
from vae_ood_monitor.data.shifts import (sample_severity, SEVERITY_RANGES, shift_frames,
                                         ShiftKind, ShiftProcess)
from vae_ood_monitor.evaluate.calibrate import (calibrate_partitions,
                                                MIN_CALIBRATION_FRAMES, PartitionPlan)
from vae_ood_monitor.evaluate.scores import kl_of_images
from vae_ood_monitor.evaluate.sequential import candidate_windows, DriveResolution, fit_cusum

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from vae_ood_monitor.core.bundle import Bundle
    from vae_ood_monitor.core.typedefs import Encoder
    from vae_ood_monitor.data.dataset import FrameArray

__all__ = ['CalibrationOptions', 'calibrate', 'calibrate_and_score', 'split_for_calibration']

GENERIC = 'all'
#: Suffix of a change partition's name (``rain`` -> ``rain_change``).
CHANGE_SUFFIX = '_change'
#: Offset of the seeds of validation shifts (evaluation uses the plain seed).
VALIDATION_SEED = 7919
#: At most this many of B's frames (evenly spaced) get a shift for the labelled dim selection.
LABELLED_FRAMES = 10_000


@dataclass(frozen=True)
class CalibrationOptions:
    """Calibration settings (validated here for the CLI and the demo alike)."""

    target_far: float = 0.01
    partitions: tuple[str, ...] = (GENERIC,)
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
    change: bool = True
    baseline_frames: int = 30
    baseline_gap: int = 5
    change_offset: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        partitions = tuple(self.partitions)
        kinds = {k.value for k in ShiftKind}
        unknown = [p for p in partitions if p != GENERIC and p not in kinds]
        if not partitions or unknown or len(set(partitions)) != len(partitions):
            raise ConfigError(f'Partitions {list(partitions)!r} must be distinct names from: '
                              f'{GENERIC}, {", ".join(sorted(kinds))}.')
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
        named = tuple(p for p in self.partitions if p != GENERIC)
        return self.validation_shifts or named or ('rain', 'brightness')


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


def _sequences(frames: FrameArray) -> list[NDArray[np.intp]]:
    return [np.flatnonzero(frames.groups == g) for g in np.unique(frames.groups)]


def calibrate(bundle: Bundle, frames: FrameArray, options: CalibrationOptions | None = None, *,
              encoder: Encoder | None = None,
              log: Callable[[str], None] | None = None) -> tuple[Bundle, dict[str, Any]]:
    """Calibrate ``bundle`` on held-out in-distribution ``frames``; return it and a report."""
    options = options or CalibrationOptions()
    say = log or (lambda _text: None)
    part_a, part_b = split_for_calibration(frames, options.sequence_share)
    if len(part_a) < 100 or len(part_b) < 2 * options.window:
        raise CalibrationError(f'{len(frames)} calibration frames are too few; give at least a '
                               'few hundred held-out in-distribution frames (several sequences).')

    def kl(images: NDArray[np.uint8]) -> NDArray[np.float64]:
        return kl_of_images(bundle, images, encoder=encoder)

    kl_a, kl_b = kl(part_a.images), kl(part_b.images)
    latent = bundle.manifest.model.latent_dim
    report: dict[str, Any] = {'frames': len(frames), 'split': [len(part_a), len(part_b)],
                              'options': _jsonable(asdict(options)), 'partitions': {}}
    plans = []
    for name in options.partitions:
        plan, details = _plan(name, options, kl_b, part_b, kl)
        plans.append(plan)
        report['partitions'][name] = details
        say(f'partition {name}: {len(plan.dims)}/{latent} dims, {plan.tail.value} tail'
            + (f', validation AUROC {details["validation_auroc"]:.3f}'
               if 'validation_auroc' in details else ''))
    sequences_b = [kl_b[idx] for idx in _sequences(part_b) if len(idx) >= 2 * options.window]
    baseline = options.baseline
    sequences_a = _sequences(part_a)
    warm_a = sum(max(0, len(idx) - baseline.warmup) for idx in sequences_a)
    if options.change and options.sequential and sequences_b and warm_a < MIN_CALIBRATION_FRAMES:
        report['change'] = 'skipped: sequences too short'
        say(f'change partitions skipped: they need sequences of at least {2 * options.window} '
            f'frames and {MIN_CALIBRATION_FRAMES} frames past a {baseline.warmup}-frame '
            'warm-up')
    elif options.change and options.sequential and sequences_b:
        for plan in list(plans):
            offset = (float(np.quantile(kl_a[:, list(plan.dims)].sum(axis=1),
                                        options.change_offset))
                      if options.change_offset > 0 else 0.0)
            twin = replace(baseline, offset=offset)
            plans.append(replace(plan, name=plan.name + CHANGE_SUFFIX, baseline=twin))
            report['partitions'][plan.name + CHANGE_SUFFIX] = {
                **report['partitions'][plan.name], 'baseline': twin.to_dict()}
        say(f'change partitions: {", ".join(p.name for p in plans if p.baseline)} (reference '
            f'{baseline.frames} frames, {baseline.gap} frames back)')
    calibrated = calibrate_partitions(bundle, kl_a, target_far=options.target_far, plans=plans,
                                      sequences=sequences_a)
    partitions = list(calibrated.manifest.partitions)
    if options.sequential and sequences_b:
        shifted = _validation_sequences(part_b, kl_b, options, kl)
        share = options.alarm_rate / len(partitions)  # the alert ORs them: split the budget
        report['alarm_rate_per_partition'] = share
        for number, part in enumerate(partitions):
            # a shift's own partitions are tuned to that shift, the generic ones to all of them
            base = part.name.removesuffix(CHANGE_SUFFIX) if part.baseline else part.name
            mine = shifted.get(base) or [s for group in shifted.values() for s in group]
            fit = fit_cusum(part, sequences_b, mine, window=options.windows,
                            target_rate=share, margin=options.margin,
                            cusum_cap=options.cusum_cap)
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
    metrics = {**bundle.manifest.metrics, 'calibration': report}
    return calibrated.with_manifest(partitions=tuple(partitions), metrics=metrics), report


def calibrate_and_score(bundle: Bundle, calib: FrameArray, val: FrameArray,
                        ood: Mapping[str, FrameArray], options: CalibrationOptions | None = None
                        ) -> tuple[Bundle, dict[str, float]]:
    """Calibrate ``bundle`` on ``calib``; return it and its AUROC per ``ood`` set against ``val``.

    Every frame set is resized to the bundle's input first, so candidates with different input
    sizes are judged on the same frames.
    """
    from vae_ood_monitor.evaluate.report import evaluate_kl

    size = (bundle.manifest.input.height, bundle.manifest.input.width)
    bundle, _ = calibrate(bundle, calib.resized(*size), options)
    id_kl = kl_of_images(bundle, val.resized(*size).images)
    ood_kl = {name: kl_of_images(bundle, frames.resized(*size).images)
              for name, frames in ood.items()}
    evaluation = evaluate_kl(bundle, id_kl, ood_kl)
    return bundle, {name: evaluation.auroc(name) for name in ood_kl}


def _plan(name: str, options: CalibrationOptions, kl_b: NDArray[np.float64],
          part_b: FrameArray, kl: Callable[[NDArray[np.uint8]], NDArray[np.float64]]
          ) -> tuple[PartitionPlan, dict[str, Any]]:
    latent = kl_b.shape[1]
    every = tuple(range(latent))
    if name == GENERIC:
        return (PartitionPlan(name, every, DimSelection.ALL, Tail.TWO_SIDED),
                {'dims': list(every), 'selection': 'all', 'tail': 'two_sided'})
    if options.selection is DimSelection.ALL:
        return (PartitionPlan(name, every, DimSelection.ALL, Tail.TWO_SIDED),
                {'dims': list(every), 'selection': 'all', 'tail': 'two_sided'})
    if options.selection is DimSelection.PAPER:
        videos = []
        lo, hi = SEVERITY_RANGES[ShiftKind(name)]['train']
        sequences = _sequences(part_b)
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


def _validation_sequences(part_b: FrameArray, kl_b: NDArray[np.float64],
                          options: CalibrationOptions,
                          kl: Callable[[NDArray[np.uint8]], NDArray[np.float64]]
                          ) -> dict[str, list[tuple[NDArray[np.float64], int]]]:
    """B's sequences with each validation shift applied from the middle on (mode m2).

    Before the onset a sequence is its drive's frames unchanged, so it takes their KL from
    ``kl_b``; only the shifted half is encoded.
    """
    out: dict[str, list[tuple[NDArray[np.float64], int]]] = {}
    rng = np.random.default_rng([options.seed, 104729])
    kinds = dict.fromkeys(options.shifts_for_delta + tuple(
        p for p in options.partitions if p != GENERIC))
    for kind in kinds:
        for number, idx in enumerate(_sequences(part_b)):
            if len(idx) < 2 * options.window:
                continue
            onset = len(idx) // 2
            process = ShiftProcess(kind, sample_severity(kind, 'test', rng),
                                   options.seed + 1000 + number)
            shifted = np.stack([process(image, i) for i, image in
                                enumerate(part_b.images[idx[onset:]])])
            rows = kl_b[idx].copy()
            rows[onset:] = kl(shifted)
            out.setdefault(kind, []).append((rows, onset))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return getattr(value, 'value', value)
