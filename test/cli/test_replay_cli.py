"""Tests of ``vae-ood bag`` and ``vae-ood replay``: outputs, messages and exit codes.

Exit codes: 0 success (also for a damaged bag, with a warning), 1 a baseline difference, 2 bad
input (one line on stderr).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vae_ood_monitor.cli.main import main
from vae_ood_monitor.core.bundle import save_bundle
from vae_ood_monitor.core.manifest import CusumParams, Partition
from vood_testing import make_bundle, run_cli as run


@pytest.fixture(scope='module')
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tuned bundle and a labelled 64x48 bag with fog on its middle half (built once)."""
    root = tmp_path_factory.mktemp('replay_cli')
    cusum = CusumParams(window=10, delta=0.5, tau=3.0)
    partition = Partition('all', (0, 1, 2, 3), calibration_scores=np.linspace(0.85, 1.05, 200),
                          threshold=1.1, cusum=cusum)  # fog alarms, clean frames do not
    save_bundle(make_bundle(cusum=cusum).with_manifest(partitions=(partition,)),
                root / 'model.vood')
    assert main(['bag', 'synth:fog:m3:40:3', '--out', str(root / 'bag'), '--topic',
                 '/cam/image_raw', '--size', '64x48']) == 0
    return root


def test_bag_then_replay(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, 'bag', 'synth:none:id:12:1', '--out', tmp_path / 'b',
                         '--topic', '/cam/image_raw/compressed', '--compressed', 'jpeg',
                         '--rate', 5, '--storage', 'sqlite3', '--size', '64x48')
    assert code == 0 and 'wrote' in out and '12 frames on /cam/image_raw/compressed' in out
    code, out, err = run(capsys, 'replay', work / 'model.vood', tmp_path / 'b',
                         '--out', tmp_path / 'o', '--report', tmp_path / 'r', '--json')
    assert code == 0, err
    summary = json.loads(out)
    assert summary['cameras']['cam_image_raw']['processed'] == 12
    assert summary['output_bag'] == str(tmp_path / 'o')
    assert (tmp_path / 'o' / 'metadata.yaml').is_file()
    assert (tmp_path / 'r' / 'cam_image_raw' / 'timeline.png').is_file()
    assert 'using ground truth' in err  # the bag's own labels.csv


def test_replay_prints_a_summary(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, 'replay', work / 'model.vood', work / 'bag',
                         '--decision', 'threshold', '--start', 0.5)
    assert code == 0, err
    assert 'replayed 30 of 30 frame(s)' in out
    assert 'cam_image_raw (/cam/image_raw): 30 frames, 30 processed' in out
    assert 'ground truth: AUROC' in out and '0 of 1 OOD segment(s) missed' in out


def test_baseline_regression(work: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    model, bag = work / 'model.vood', work / 'bag'
    assert run(capsys, 'replay', model, bag, '--report', tmp_path / 'base')[0] == 0
    baseline = tmp_path / 'base' / 'summary.json'
    code, out, _ = run(capsys, 'replay', model, bag, '--baseline', baseline)
    assert code == 0 and 'baseline: all 1 alarm span(s) match within 0.5 s' in out
    data = json.loads(baseline.read_text())
    span = data['cameras']['cam_image_raw']['alarm_spans'][0]
    span['start_s'] -= 0.3
    (tmp_path / 'near.json').write_text(json.dumps(data))
    code, out, _ = run(capsys, 'replay', model, bag, '--baseline',
                       tmp_path / 'near.json')
    assert code == 0
    span['start_s'] -= 0.5
    (tmp_path / 'far.json').write_text(json.dumps(data))
    code, out, _ = run(capsys, 'replay', model, bag, '--baseline',
                       tmp_path / 'far.json')
    assert code == 1
    assert 'cam_image_raw: shifted alarm span: baseline' in out
    assert '(start +0.800 s, end +0.000 s; tolerance 0.5 s)' in out
    code, out, _ = run(capsys, 'replay', model, bag, '--baseline',
                       tmp_path / 'far.json', '--tolerance', 1.0)
    assert code == 0


def test_damaged_bag_exits_zero_with_a_warning(work: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, 'bag', 'synth:fog:m2:30:2', '--out', tmp_path / 'b', '--topic',
               '/cam/image_raw', '--size', '64x48')[0] == 0
    storage = tmp_path / 'b' / 'b.mcap'
    with open(storage, 'r+b') as stream:
        stream.truncate(storage.stat().st_size // 2)
    code, out, err = run(capsys, 'replay', work / 'model.vood', tmp_path / 'b',
                         '--out', tmp_path / 'o', '--report', tmp_path / 'r')
    assert code == 0
    assert 'warning: the bag is damaged: reading stopped after' in err
    summary = json.loads((tmp_path / 'r' / 'summary.json').read_text())
    stopped = summary['stopped_early']
    assert stopped['index'] == summary['cameras']['cam_image_raw']['processed'] > 0
    assert (tmp_path / 'o' / 'metadata.yaml').is_file()


def odd_bag(path: Path) -> Path:
    """A bag with a std_msgs/String topic and an image topic whose frame size changes."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from vae_ood_monitor.replay.bagio import typestore

    ts = typestore()
    types = ts.types
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        chatter = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=ts)
        writer.write(chatter, 1, ts.serialize_cdr(types['std_msgs/msg/String'](data='hi'),
                                                  'std_msgs/msg/String'))
        images = writer.add_connection('/cam', 'sensor_msgs/msg/Image', typestore=ts)
        for i, (h, w) in enumerate([(24, 32), (24, 32), (12, 16)]):
            header = types['std_msgs/msg/Header'](
                stamp=types['builtin_interfaces/msg/Time'](sec=1, nanosec=i), frame_id='c')
            msg = types['sensor_msgs/msg/Image'](
                header=header, height=h, width=w, encoding='mono8', is_bigendian=0, step=w,
                data=np.zeros(h * w, np.uint8))
            writer.write(images, 2 + i, ts.serialize_cdr(msg, 'sensor_msgs/msg/Image'))
    return path


def bad_inputs(work: Path, tmp_path: Path) -> dict[str, tuple[list[object], str]]:
    (tmp_path / 'notes.txt').write_text('hello')
    odd = odd_bag(tmp_path / 'odd')
    (tmp_path / 'cut.mcap').write_bytes((work / 'bag' / 'bag.mcap').read_bytes()[:100])
    (tmp_path / 'taken').mkdir()
    (tmp_path / 'empty').mkdir()
    model = work / 'model.vood'
    return {
        'missing bag': ([model, tmp_path / 'nope'], 'does not exist'),
        'text file': ([model, tmp_path / 'notes.txt'], 'is not a ROS 2 bag'),
        'empty folder': ([model, tmp_path / 'empty'], 'neither metadata.yaml nor'),
        'missing topic': ([model, work / 'bag', '--topic', '/rear'],
                          "Topic '/rear' is not in bag .*; its image topics are: "
                          '/cam/image_raw'),
        'output exists': ([model, work / 'bag', '--out', tmp_path / 'taken'],
                          "Output '.*taken' exists; choose another path or pass --force"),
        'report exists': ([model, work / 'bag', '--report', tmp_path / 'taken'],
                          "Report folder '.*taken' exists"),
        'missing model': ([tmp_path / 'nope.vood', work / 'bag'], 'nope.vood'),
        'bad labels': ([model, work / 'bag', '--labels', tmp_path / 'notes.txt'],
                       'missing column'),
        'bad window': ([model, work / 'bag', '--start', 3, '--end', 1],
                       '--end 1.0 must be after --start 3.0'),
        'not an image topic': ([model, odd, '--topic', '/chatter'],
                               "Topic '/chatter' has type 'std_msgs/msg/String', not "
                               'sensor_msgs/msg/Image'),
        'mixed sizes': ([model, odd, '--topic', '/cam', '--out', tmp_path / 'o'],
                        "Topic '/cam' changes frame format at message 2: 32x24 mono8 -> "
                        '16x12 mono8'),
        'truncated': ([model, tmp_path / 'cut.mcap'], 'truncated or corrupt before its first '
                      'message'),
    }


@pytest.mark.parametrize('case', ['missing bag', 'text file', 'empty folder', 'missing topic',
                                  'output exists', 'report exists', 'missing model',
                                  'bad labels', 'bad window', 'not an image topic',
                                  'mixed sizes', 'truncated'])
def test_bad_input_exits_two(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             case: str) -> None:
    import re

    argv, match = bad_inputs(work, tmp_path)[case]
    code, out, err = run(capsys, 'replay', *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith('vae-ood replay: error: ')
    assert re.search(match, lines[-1]), lines[-1]
    assert not list(tmp_path.glob('.*.partial-*')) and not (tmp_path / 'o').exists()


def test_bag_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, 'bag', 'synth:hail:m2', '--out', tmp_path / 'b', '--topic', '/c')
    assert code == 2 and "Unknown shift 'hail'" in err
    code, _, err = run(capsys, 'bag', tmp_path / 'nothing', '--out', tmp_path / 'b', '--topic',
                       '/c')
    assert code == 2 and 'does not exist' in err
    code, _, err = run(capsys, 'bag', 'synth:none:id:2', '--out', tmp_path / 'b', '--topic',
                       '/c', '--compressed', 'png', '--size', '32x24')
    assert code == 0 and 'warning: topic' in err and '/c/compressed' in err


def test_replay_catches_a_frozen_camera_with_frozen_frames(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    never = Partition('all', (0, 1, 2, 3), calibration_scores=np.linspace(0.0, 1.0, 100),
                      threshold=1e12)  # a detector that never fires: only the check can
    model = save_bundle(make_bundle().with_manifest(partitions=(never,)), tmp_path / 'm.vood')
    # a drive whose camera freezes halfway: the same frame again with fresh stamps
    assert main(['synth', str(tmp_path / 'frozen'), '--sequences', '1', '--frames', '20',
                 '--shift', 'frozen', '--mode', 'm2', '--size', '64x48', '--workers', '1']) == 0
    assert main(['bag', str(tmp_path / 'frozen'), '--out', str(tmp_path / 'bag'), '--topic',
                 '/cam/image_raw']) == 0
    capsys.readouterr()
    code, out, err = run(capsys, 'replay', model, tmp_path / 'bag', '--decision', 'threshold',
                         '--frozen-frames', 3, '--json')
    assert code == 0, err
    camera = json.loads(out)['cameras']['cam_image_raw']
    (span,) = camera['alarm_spans']
    assert span['fired'] == ['frozen'] and span['start_index'] == 10 + 2  # third repeat
    assert camera['ground_truth']['false_alarm_onsets'] == 0
    code, out, err = run(capsys, 'replay', model, tmp_path / 'bag', '--frozen-frames', 1)
    assert code == 2 and 'frozen_frames 1 must be 0 (off) or an integer >= 2' in err
