"""Fleet replay (replay/fleet.py, ``vae-ood replay MODEL BAG...``): many bags, one report.

Eight generated bags, one of them corrupt: serial, two worker processes and a local Ray
instance give the same rows; the corrupt bag is reported and the others complete; an
interrupted run resumes without redoing finished bags; a second model's report is compared
bag by bag.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import signal

import numpy as np
import pytest

from vae_ood_monitor.core.bundle import save_bundle
from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.manifest import CusumParams, Partition
from vae_ood_monitor.replay import fleet as fleet_module
from vae_ood_monitor.replay.bagmaker import BagSpec, make_bag
from vae_ood_monitor.replay.fleet import (bag_keys, compare_fleets, find_bags, FleetJob,
                                          load_fleet, replay_one, run_fleet)
from vood_testing import make_bundle, run_cli as run

CUSUM = CusumParams(window=10, delta=0.5, tau=3.0)


def _model(path: Path, cusum: CusumParams) -> Path:
    partition = Partition('all', (0, 1, 2, 3), calibration_scores=np.linspace(0.85, 1.05, 200),
                          threshold=1.1, cusum=cusum)
    save_bundle(make_bundle(cusum=cusum).with_manifest(partitions=(partition,)), path)
    return path


@pytest.fixture(scope='module')
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bags/ with 7 labelled drives (site_a/, site_b/) and a corrupt one; two models."""
    root = tmp_path_factory.mktemp('fleet')
    sources = ['synth:fog:m3:24:1', 'synth:none:id:24:2', 'synth:fog:m2:24:3',
               'synth:none:id:24:4', 'synth:fog:m3:24:5', 'synth:none:id:24:6',
               'synth:fog:m1:24:7']
    for number, source in enumerate(sources):
        site = 'site_a' if number < 4 else 'site_b'
        make_bag(source, root / 'bags' / site / f'drive_{number}',
                 BagSpec(topic='/cam/image_raw', size=(64, 48)))
    good = next((root / 'bags' / 'site_a' / 'drive_0').glob('*.mcap')).read_bytes()
    (root / 'bags' / 'site_b' / 'broken.mcap').write_bytes(good[:120])  # cut before a message
    _model(root / 'model.vood', CUSUM)
    # a second calibration of the same encoder: a CUSUM that alarms far more readily
    _model(root / 'strict.vood', CusumParams(window=10, delta=0.0, tau=0.2))
    (root / 'list.txt').write_text('# the archive\nbags/site_a\n\nbags/site_b\n')
    return root


def _rows(report: dict) -> list[dict]:
    return report['bags']


def test_bags_are_found_in_folders_lists_and_named_once(archive: Path) -> None:
    bags = find_bags([archive / 'list.txt', archive / 'bags' / 'site_a' / 'drive_0'])
    assert len(bags) == 8  # drive_0 named twice, replayed once
    keys = bag_keys(bags)
    assert keys[0] == 'site_a__drive_0' and 'site_b__broken.mcap' in keys
    assert len(set(keys)) == 8
    with pytest.raises(ConfigError, match='is not a bag, a folder of bags or a .txt list'):
        find_bags([archive / 'nope'])
    (archive / 'nothing').mkdir(exist_ok=True)
    with pytest.raises(ConfigError, match='holds no bag'):
        find_bags([archive / 'nothing'])


@pytest.mark.slow
def test_serial_processes_and_ray_give_the_same_results(archive: Path, tmp_path: Path) -> None:
    bags = find_bags([archive / 'bags'])
    serial = run_fleet(archive / 'model.vood', bags, tmp_path / 'serial')
    pooled = run_fleet(archive / 'model.vood', bags, tmp_path / 'pooled', workers=2)
    assert serial.executor == 'serial' and pooled.executor == 'processes'
    assert serial.rows == pooled.rows
    rows = {r['key']: r for r in serial.rows}
    broken = rows.pop('site_b__broken.mcap')
    assert broken['status'] == 'failed' and 'truncated or corrupt' in broken['error']
    assert all(r['status'] == 'ok' and r['processed'] == 24 for r in rows.values())
    fog, clean = rows['site_a__drive_0'], rows['site_a__drive_1']
    assert fog['ood_segments'] == 1 and fog['missed'] in (0, 1)  # the labels were read
    assert clean['ood_segments'] == 0 and clean['false_alarms'] == clean['alarm_spans']
    totals = serial.totals
    assert (totals['bags'], totals['ok'], totals['failed'], totals['processed']) == (8, 7, 1, 168)
    # every bag's result folder is complete; the report files exist
    for key in rows:
        summary = json.loads((tmp_path / 'serial' / 'bags' / key / 'summary.json').read_text())
        assert summary['processed'] == 24 and summary['model']['name'] == 'tiny-linear'
    assert not list((tmp_path / 'serial' / 'bags').glob('.*partial'))
    text = (tmp_path / 'serial' / 'fleet.md').read_text()
    assert '| site_b__broken.mcap | failed |' in text and '(7 ok, 0 damaged, 1 failed)' in text

    ray = pytest.importorskip('ray')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_fleet(archive / 'model.vood', bags, tmp_path / 'ray', ray_address='local')
    finally:
        ray.shutdown()
    assert remote.executor == 'ray' and remote.rows == serial.rows


@pytest.mark.slow
def test_an_interrupted_run_resumes_without_redoing_finished_bags(
        archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bags = find_bags([archive / 'bags' / 'site_a'])
    out = tmp_path / 'run'
    real = fleet_module.replay_one
    calls: list[str] = []

    def interrupted(job):  # type: ignore[no-untyped-def]
        calls.append(job.key)
        if len(calls) == 3 and not resumed:
            raise KeyboardInterrupt  # Ctrl-C during the third bag
        return real(job)

    resumed = False

    monkeypatch.setattr(fleet_module, 'replay_one', interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_fleet(archive / 'model.vood', bags, out)
    done = sorted(p.name for p in (out / 'bags').iterdir() if not p.name.startswith('.'))
    assert done == ['drive_0', 'drive_1'] and not (out / 'fleet.json').exists()
    with pytest.raises(ConfigError, match='--resume'):
        run_fleet(archive / 'model.vood', bags, out)
    calls.clear()
    resumed = True
    report = run_fleet(archive / 'model.vood', bags, out, resume=True)
    assert calls == ['drive_2', 'drive_3'] and report.reused == 2
    assert [r['status'] for r in report.rows] == ['ok'] * 4
    # another model's results are not "finished" for this one
    calls.clear()
    run_fleet(archive / 'strict.vood', bags, out, resume=True)
    assert len(calls) == 4


@pytest.mark.slow
def test_a_worker_that_dies_is_retried_once_then_reported(archive: Path,
                                                          tmp_path: Path) -> None:
    bags = find_bags([archive / 'bags' / 'site_a'])
    report = run_fleet(archive / 'model.vood', bags, tmp_path / 'run', workers=2,
                       task=dies_on_drive_1)
    rows = {r['key']: r for r in report.rows}
    assert rows['drive_1']['status'] == 'failed'
    assert 'worker process died twice' in rows['drive_1']['error']
    assert 'drive_1' in report.retried
    assert all(rows[k]['status'] == 'ok' for k in rows if k != 'drive_1')
    assert not (tmp_path / 'run' / 'bags' / 'drive_1' / 'result.json').exists()  # not done


@pytest.mark.slow
def test_cli_fleet_report_and_comparison(archive: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, 'replay', archive / 'model.vood', archive / 'list.txt',
                         '--report', tmp_path / 'base', '--workers', 2)
    assert code == 0, err
    assert '| **total** (7 ok, 0 damaged, 1 failed)' in out
    assert 'site_b__broken.mcap could not be replayed' in err
    # the same model again: nothing changed, exit 0
    code, out, err = run(capsys, 'replay', archive / 'model.vood', archive / 'bags',
                         '--report', tmp_path / 'same', '--baseline', tmp_path / 'base')
    assert code == 0, err
    assert 'baseline: 7 bag(s) unchanged, 0 changed' in out
    # a stricter model alarms on clean drives: those bags changed, exit 1 for CI
    code, out, err = run(capsys, 'replay', archive / 'strict.vood', archive / 'bags',
                         '--report', tmp_path / 'strict', '--baseline',
                         tmp_path / 'base' / 'fleet.json', '--tolerance', 0.05)
    assert code == 1, err
    comparison = compare_fleets(load_fleet(tmp_path / 'base'), load_fleet(tmp_path / 'strict'),
                                0.05)
    assert not comparison.ok and comparison.changed and not comparison.newly_failed
    changed = next(iter(comparison.changed))
    assert any(line.startswith(f'{changed}: ') and 'alarm span' in line
               for line in out.splitlines()), out
    assert f'baseline: {comparison.same} bag(s) unchanged, {len(comparison.changed)} changed' \
        in out
    # bad uses of the fleet mode: one line, exit 2
    code, _, err = run(capsys, 'replay', archive / 'model.vood', archive / 'bags')
    assert code == 2 and 'Several bags need --report DIR' in err
    code, _, err = run(capsys, 'replay', archive / 'model.vood', archive / 'bags', '--report',
                       tmp_path / 'x', '--start', 1)
    assert code == 2 and '--start is for one bag' in err


def test_the_deprecated_model_option_still_replays_one_bag(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = archive / 'bags' / 'site_a' / 'drive_1'
    code, out, err = run(capsys, 'replay', bag, '--model', archive / 'model.vood')
    assert code == 0 and 'replayed 24 of 24 frame(s)' in out
    assert '--model is deprecated: give the model first' in err
    code, _, err = run(capsys, 'replay', bag)
    assert code == 2 and 'Give the model and at least one bag' in err


def dies_on_drive_1(job: FleetJob) -> dict:
    """Replay a bag, except that the process replaying drive_1 is killed (in a worker)."""
    if job.key.endswith('drive_1'):
        os.kill(os.getpid(), signal.SIGKILL)
    return replay_one(job)


def test_the_fleet_passes_frozen_frames_to_every_job_and_refuses_bad_ones_first(
        archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bags = find_bags([archive / 'bags' / 'site_a'])
    jobs: list[int] = []
    real = fleet_module.replay_one

    def spy(job):  # type: ignore[no-untyped-def]
        jobs.append(job.frozen_frames)
        return real(job)

    monkeypatch.setattr(fleet_module, 'replay_one', spy)
    with pytest.raises(ConfigError, match='frozen_frames 1 must be 0'):
        run_fleet(archive / 'model.vood', bags, tmp_path / 'bad', frozen_frames=1)
    assert jobs == [] and not (tmp_path / 'bad').exists()
    report = run_fleet(archive / 'model.vood', bags, tmp_path / 'run', frozen_frames=5)
    assert jobs == [5] * len(bags) and [r['status'] for r in report.rows] == ['ok'] * len(bags)
