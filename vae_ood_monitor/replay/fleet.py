"""Replay a fleet's bag archive: many bags, in parallel processes or on a Ray cluster.

Each bag is the same work as ``vae-ood replay`` (:func:`~.replay.replay_bag`, then
:func:`~.report.summarize`), run by :func:`replay_one` wherever it is scheduled, so the
per-bag results do not depend on where or how many at a time they ran. A bag's results go to
``OUT/bags/<key>/`` (``result.json``, and ``summary.json`` when the bag could be read; the
output bag under ``bag/`` when asked for), written under a temporary name and renamed when
complete: an interrupted run leaves no half-written result, and ``resume`` skips the bags
whose results are complete. ``OUT/fleet.json`` and ``OUT/fleet.md`` hold a row per bag and the
totals; :func:`compare_fleets` compares two fleet reports bag by bag.

Faults stay with their bag: a corrupt bag is a failed row that says why (a damaged one is
replayed up to the damage and says where reading stopped); a worker process that dies is
retried once on its own, then reported.
"""

from __future__ import annotations

from concurrent.futures import as_completed, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
import hashlib
import json
import multiprocessing
import os
from pathlib import Path
import shutil
import time
from typing import Any, Callable, Mapping, Sequence

from vae_ood_monitor.core.errors import ConfigError, VaeOodError
from vae_ood_monitor.replay.bagtypes import bags_below, is_bag

__all__ = ['FleetComparison', 'FleetJob', 'FleetReport', 'bag_keys', 'bundle_digest',
           'compare_fleets', 'find_bags', 'format_fleet', 'load_fleet',
           'replay_one', 'run_fleet']

FLEET_SCHEMA = 1
#: What a row of the fleet report says about a bag; all of it reproducible run to run
#: (timings are kept apart, in ``timing``).
ROW_FIELDS = ('key', 'bag', 'status', 'frames', 'processed', 'alert_frames', 'alarm_spans',
              'false_alarms', 'missed', 'ood_segments', 'mean_delay_frames', 'stopped',
              'error')


@dataclass(frozen=True)
class FleetJob:
    """One bag to replay: where it is, its key (its folder under OUT/bags) and the settings."""

    bag: str
    key: str
    model: str
    out: str
    topics: tuple[str, ...] = ()
    decision: str | None = None
    write_bag: bool = False
    #: :func:`bundle_digest` of ``model``, recorded with the result (what --resume matches)
    bundle_sha256: str = ''
    frozen_frames: int = 0


def find_bags(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand bags, folders of bags and .txt lists of bags into a list of bags (in order).

    Folders are searched recursively (an archive sorted by robot and day); a .txt list names
    one bag (or folder of bags) per line, relative to the list's folder; empty lines and lines
    starting with # are skipped. A bag named twice is replayed once.
    """
    found: list[Path] = []

    def add(path: Path, where: str) -> None:
        if is_bag(path):
            found.append(path)
        elif path.is_dir():
            bags = list(bags_below(path))
            if not bags:
                raise ConfigError(f'{path}{where} holds no bag (a .mcap or .db3 file, or a '
                                  'folder with one); give bags, folders of bags or a .txt list.')
            found.extend(bags)
        elif path.suffix == '.txt' and path.is_file():
            lines = path.read_text(encoding='utf-8').splitlines()
            for number, line in enumerate(lines, 1):
                line = line.strip()
                if line and not line.startswith('#'):
                    add(path.parent / line, f' (line {number} of {path})')
        else:
            raise ConfigError(f'{path}{where} is not a bag, a folder of bags or a .txt list '
                              'of bags (does it exist?).')

    for item in inputs:
        add(Path(item), '')
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def bag_keys(bags: Sequence[Path]) -> list[str]:
    """Name a folder per bag: its path below the bags' common folder, '/' as '__'.

    Stable when the archive moves, so two fleet reports of the same archive compare bag by bag.
    """
    paths = [p.resolve() for p in bags]
    if not paths:
        return []
    root = Path(os.path.commonpath([p.parent for p in paths]))
    keys = ['__'.join(p.relative_to(root).parts) for p in paths]
    return [key.replace(' ', '_') for key in keys]


def replay_one(job: FleetJob) -> dict[str, Any]:
    """Replay one bag and write its results; return its row (never raises for a bad bag).

    Runs in whatever process the scheduler chose; imports are local so that a Ray or
    process-pool worker needs only this package.
    """
    from vae_ood_monitor.core.monitor import MonitorConfig
    from vae_ood_monitor.core.session import SessionConfig
    from vae_ood_monitor.replay.replay import replay_bag, ReplayConfig
    from vae_ood_monitor.replay.report import find_labels, read_labels, summarize

    final = Path(job.out) / 'bags' / job.key
    work = final.with_name(f'.{job.key}.partial')
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    row = _blank_row(job)
    started = time.perf_counter()
    summary = None
    try:
        labels_path = find_labels(job.bag)
        labels = read_labels(labels_path) if labels_path else None
        config = ReplayConfig(
            topics=job.topics, out=work / 'bag' if job.write_bag else None,
            monitor=MonitorConfig(decision=job.decision, frozen_frames=job.frozen_frames,
                                  session=SessionConfig(threads=1, warmup=2)))
        result = replay_bag(job.bag, job.model, config)
        summary = summarize(result, labels)
    except VaeOodError as err:
        row.update(status='failed', error=str(err))
    if summary is not None:
        if job.write_bag:  # the output bag's final place, as the summary will say
            summary['output_bag'] = str(final / 'bag')
        row.update(_row_from_summary(summary))
        (work / 'summary.json').write_text(json.dumps(summary, indent=1), encoding='utf-8')
    record = {'row': row, 'timing': {'wall_s': round(time.perf_counter() - started, 3),
                                     'pid': os.getpid()},
              'bundle_sha256': job.bundle_sha256}
    (work / 'result.json').write_text(json.dumps(record, indent=1), encoding='utf-8')
    if final.exists():
        shutil.rmtree(final)
    os.replace(work, final)  # complete or absent: never half-written
    return record


def bundle_digest(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 of a bundle file: its encoder *and* its calibration.

    Two calibrations of one encoder decide differently: a result made with one is not finished
    for the other.
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _row_from_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    cameras = summary['cameras'].values()
    truths = [c['ground_truth'] for c in cameras if c.get('ground_truth')]
    delays = [t['mean_delay_frames'] for t in truths if t.get('mean_delay_frames') is not None]
    stopped = summary.get('stopped_early')
    return {
        'status': 'damaged' if stopped else 'ok',
        'frames': summary['frames'], 'processed': summary['processed'],
        'alert_frames': sum(c['alerts'] for c in cameras),
        'alarm_spans': sum(len(c['alarm_spans']) for c in cameras),
        'false_alarms': sum(t['false_alarm_onsets'] for t in truths) if truths else None,
        'missed': sum(t['missed_segments'] for t in truths) if truths else None,
        'ood_segments': sum(t['ood_segments'] for t in truths) if truths else None,
        'mean_delay_frames': round(sum(delays) / len(delays), 3) if delays else None,
        'stopped': stopped,
    }


@dataclass
class FleetReport:
    """Rows per bag (in the order given), totals and how the run went."""

    model: dict[str, Any]
    rows: list[dict[str, Any]]
    executor: str
    workers: int
    wall_s: float
    reused: int = 0
    retried: list[str] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, Any]:
        """Sums over the bags that could be read."""
        read = [r for r in self.rows if r['status'] in ('ok', 'damaged')]

        def total(name: str) -> int | None:
            values = [r[name] for r in read if r[name] is not None]
            return sum(values) if values else None

        return {'bags': len(self.rows), 'ok': sum(r['status'] == 'ok' for r in self.rows),
                'damaged': sum(r['status'] == 'damaged' for r in self.rows),
                'failed': sum(r['status'] == 'failed' for r in self.rows),
                **{name: total(name) for name in (
                    'frames', 'processed', 'alert_frames', 'alarm_spans', 'false_alarms',
                    'missed', 'ood_segments')}}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (fleet.json)."""
        return {'schema': FLEET_SCHEMA, 'model': self.model, 'executor': self.executor,
                'workers': self.workers, 'wall_s': round(self.wall_s, 3),
                'reused': self.reused, 'retried': self.retried, 'totals': self.totals,
                'bags': self.rows}


Log = Callable[[str], None]


def run_fleet(model: str | os.PathLike[str], bags: Sequence[Path], out: str | os.PathLike[str],
              *, workers: int = 1, ray_address: str | None = None,
              topics: Sequence[str] = (), decision: str | None = None,
              frozen_frames: int = 0, write_bags: bool = False, resume: bool = False,
              log: Log = lambda text: None,
              task: Callable[[FleetJob], dict[str, Any]] | None = None) -> FleetReport:
    """Replay ``bags`` with ``model`` into ``out``; return (and write) the fleet report.

    ``workers`` > 1 runs that many processes on this machine; ``ray_address`` ('auto', an
    address, or 'local' for a Ray instance started here) schedules every bag as a Ray task
    instead (Ray's own retry covers a dying worker). ``resume`` keeps the complete results of
    an earlier run with the same model; without it an existing ``out`` must hold none.
    ``task`` replaces :func:`replay_one` (a module-level function, so that worker processes
    can import it).
    """
    from vae_ood_monitor.core.bundle import load_bundle
    from vae_ood_monitor.core.monitor import MonitorConfig

    if workers < 1:
        raise ConfigError(f'--workers {workers!r} must be >= 1.')
    MonitorConfig(decision=decision, frozen_frames=frozen_frames)  # refuse bad settings now
    bundle = load_bundle(model)
    sha = bundle.manifest.model.sha256
    digest = bundle_digest(model)
    out = Path(out)
    bags_dir = out / 'bags'
    if bags_dir.exists() and not resume and any(bags_dir.iterdir()):
        raise ConfigError(f'{out} already holds bag results; pass --resume to continue that run '
                          'or choose another --report folder.')
    bags_dir.mkdir(parents=True, exist_ok=True)
    jobs = [FleetJob(str(bag), key, str(Path(model).resolve()), str(out.resolve()),
                     tuple(topics), decision, write_bags, digest, frozen_frames)
            for bag, key in zip(bags, bag_keys(bags))]
    started = time.perf_counter()
    records: dict[str, dict[str, Any]] = {}
    if resume:
        for job in jobs:
            done = _completed(bags_dir / job.key, digest)
            if done is not None:
                records[job.key] = done
        if records:
            log(f'resuming: {len(records)} of {len(jobs)} bag(s) already done')
    todo = [job for job in jobs if job.key not in records]
    retried: list[str] = []
    task = task or replay_one
    if ray_address is not None:
        executor = 'ray'
        records.update(_run_ray(todo, ray_address, log, task))
    elif workers > 1 and len(todo) > 1:
        executor = 'processes'
        records.update(_run_pool(todo, workers, retried, log, task))
    else:
        executor = 'serial'
        for job in todo:
            records[job.key] = task(job)
            log(_describe(records[job.key]['row']))
    report = FleetReport(model={'name': bundle.name, 'sha256': sha, 'bundle_sha256': digest,
                                'path': str(model)},
                         rows=[records[job.key]['row'] for job in jobs], executor=executor,
                         workers=workers, wall_s=time.perf_counter() - started,
                         reused=len(jobs) - len(todo), retried=retried)
    _write_atomic(out / 'fleet.json', json.dumps(report.as_dict(), indent=1))
    _write_atomic(out / 'fleet.md', format_fleet(report.as_dict()) + '\n')
    return report


def _completed(folder: Path, digest: str) -> dict[str, Any] | None:
    """Return an earlier run's complete record of a bag, if made with the same model."""
    try:
        record = json.loads((folder / 'result.json').read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None
    return record if record.get('bundle_sha256') == digest else None


def _describe(row: Mapping[str, Any]) -> str:
    if row['status'] == 'failed':
        return f"{row['key']}: failed: {row['error']}"
    text = (f"{row['key']}: {row['processed']} frame(s), {row['alarm_spans']} alarm span(s)"
            + (f", {row['false_alarms']} false alarm(s), {row['missed']} of "
               f"{row['ood_segments']} OOD segment(s) missed" if row['missed'] is not None
               else ''))
    if row['status'] == 'damaged':
        text += f" (damaged: reading stopped after message {row['stopped']['index']})"
    return text


def _run_pool(jobs: list[FleetJob], workers: int, retried: list[str], log: Log,
              task: Callable[[FleetJob], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Run ``jobs`` in ``workers`` processes; a job whose pool broke runs again on its own."""
    context = multiprocessing.get_context('spawn')
    records: dict[str, dict[str, Any]] = {}
    broken: list[FleetJob] = []
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {pool.submit(task, job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                records[job.key] = future.result()
                log(_describe(records[job.key]['row']))
            except BrokenProcessPool:  # a worker died: every job it took down runs again
                broken.append(job)
    for job in broken:  # alone in a fresh process each: the culprit is the one that dies again
        retried.append(job.key)
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            try:
                records[job.key] = pool.submit(task, job).result()
                log(_describe(records[job.key]['row']) + ' (retried)')
            except BrokenProcessPool:
                records[job.key] = _died(job, 'its worker process died twice')
                log(_describe(records[job.key]['row']))
    return records


def _died(job: FleetJob, why: str) -> dict[str, Any]:
    row = _blank_row(job)
    row.update(status='failed', error=why)
    return {'row': row, 'timing': {}, 'bundle_sha256': None}  # not complete: resume redoes it


def _blank_row(job: FleetJob) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
    row.update(key=job.key, bag=job.bag)
    return row


def _run_ray(jobs: list[FleetJob], address: str, log: Log,
             task: Callable[[FleetJob], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise ConfigError('--ray needs Ray: pip install "vae_ood_monitor[fleet]" (or `ray`), '
                          'on every machine of the cluster.') from None
    if not ray.is_initialized():
        ray.init(address=None if address == 'local' else address, include_dashboard=False,
                 log_to_driver=False)
    remote = ray.remote(max_retries=1)(task)  # Ray reschedules a task whose worker died
    pending = {remote.remote(job): job for job in jobs}
    records: dict[str, dict[str, Any]] = {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(ready[0])
        try:
            records[job.key] = ray.get(ready[0])
        except Exception as err:  # Ray's own errors (a worker that died twice, a lost node)
            records[job.key] = _died(job, f'Ray could not run it: {type(err).__name__}: {err}')
        log(_describe(records[job.key]['row']))
    return records


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f'.{path.name}.partial')
    partial.write_text(text, encoding='utf-8')
    os.replace(partial, path)


def load_fleet(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read fleet.json (or the folder holding it) and the bags' summaries beside it."""
    path = Path(path)
    if path.is_dir():
        path = path / 'fleet.json'
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as err:
        raise ConfigError(f'Cannot read the fleet report {path}: {err}') from None
    if not isinstance(data, dict) or data.get('schema') != FLEET_SCHEMA or 'bags' not in data:
        raise ConfigError(f'{path} is not a fleet report (fleet.json of `vae-ood replay` with '
                          'several bags).')
    data['summaries'] = {}
    for row in data['bags']:
        summary = path.parent / 'bags' / row['key'] / 'summary.json'
        if summary.is_file():
            data['summaries'][row['key']] = json.loads(summary.read_text(encoding='utf-8'))
    return data


@dataclass
class FleetComparison:
    """What changed between two fleet reports, bag by bag."""

    changed: dict[str, list[str]] = field(default_factory=dict)
    new_alarms: int = 0
    lost_detections: int = 0
    newly_failed: list[str] = field(default_factory=list)
    only_old: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    same: int = 0

    @property
    def ok(self) -> bool:
        """True when no bag changed its alarms or detections and none newly failed."""
        return not (self.changed or self.newly_failed)

    def lines(self) -> list[str]:
        """Describe every difference in one line."""
        out = [f'{key}: {line}' for key, lines in self.changed.items() for line in lines]
        out += [f'{key}: failed now, read in the baseline' for key in self.newly_failed]
        out += [f'{key}: only in the baseline' for key in self.only_old]
        out += [f'{key}: not in the baseline' for key in self.only_new]
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {'ok': self.ok, **asdict(self)}


def compare_fleets(old: Mapping[str, Any], new: Mapping[str, Any],
                   tolerance_s: float = 0.5) -> FleetComparison:
    """Compare two :func:`load_fleet` reports: changed alarm spans, detections, failures."""
    from vae_ood_monitor.replay.compare import compare_summaries

    result = FleetComparison()
    old_rows = {r['key']: r for r in old['bags']}
    new_rows = {r['key']: r for r in new['bags']}
    result.only_old = [k for k in old_rows if k not in new_rows]
    result.only_new = [k for k in new_rows if k not in old_rows]
    for key, row in new_rows.items():
        before = old_rows.get(key)
        if before is None:
            continue
        if row['status'] == 'failed':
            if before['status'] != 'failed':
                result.newly_failed.append(key)
            continue
        if key not in old['summaries'] or key not in new['summaries']:
            continue
        comparison = compare_summaries(old['summaries'][key], new['summaries'][key],
                                       tolerance_s)
        lines = comparison.lines()
        result.new_alarms += sum(d.kind == 'new' for d in comparison.differences)
        if before.get('missed') is not None and row.get('missed') is not None \
                and row['missed'] > before['missed']:
            lost = row['missed'] - before['missed']
            result.lost_detections += lost
            lines.append(f'{lost} more OOD segment(s) missed ({before["missed"]} -> '
                         f'{row["missed"]} of {row["ood_segments"]})')
        if lines:
            result.changed[key] = lines
        else:
            result.same += 1
    return result


def format_fleet(report: Mapping[str, Any]) -> str:
    """Format the fleet report as a Markdown table with totals."""
    def cell(value: Any) -> str:
        return '-' if value is None else str(value)

    lines = [f"Model {report['model']['name']} ({report['model']['sha256'][:12]}), "
             f"{len(report['bags'])} bag(s), {report['executor']} "
             f"({report['workers']} worker(s)), {report['wall_s']:.1f} s"
             + (f", {report['reused']} reused" if report.get('reused') else ''), '',
             '| bag | status | frames | processed | alarm spans | alert frames | false alarms '
             '| missed / OOD segments | mean delay (frames) | note |',
             '|' + '---|' * 10]
    for row in report['bags']:
        note = row.get('error') or ''
        if row.get('stopped'):
            note = f"reading stopped after message {row['stopped'].get('index')}"
        missed = ('-' if row.get('missed') is None
                  else f"{row['missed']} / {row['ood_segments']}")
        lines.append(f"| {row['key']} | {row['status']} | {cell(row['frames'])} | "
                     f"{cell(row['processed'])} | {cell(row['alarm_spans'])} | "
                     f"{cell(row['alert_frames'])} | {cell(row['false_alarms'])} | {missed} | "
                     f"{cell(row['mean_delay_frames'])} | {note} |")
    t = report['totals']
    missed = '-' if t.get('missed') is None else f"{t['missed']} / {t['ood_segments']}"
    lines.append(f"| **total** ({t['ok']} ok, {t['damaged']} damaged, {t['failed']} failed) | "
                 f"| {cell(t['frames'])} | {cell(t['processed'])} | {cell(t['alarm_spans'])} | "
                 f"{cell(t['alert_frames'])} | {cell(t['false_alarms'])} | {missed} | | |")
    return '\n'.join(lines)
