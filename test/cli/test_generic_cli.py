"""The default alert from the command line: one small recording, the generic partition and
the built-in colour baseline (cli/cmd_eval.py on a tiny trained model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vae_ood_monitor.cli.main import main
from vae_ood_monitor.core.bundle import load_bundle, save_bundle
from vae_ood_monitor.core.manifest import Partition
from vae_ood_monitor.core.typedefs import Tail
from vood_testing import run_cli as run, TINY_TRAIN


@pytest.fixture(scope='module')
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny exported model, one held-out recording of 250 frames and a short one of 30."""
    root = tmp_path_factory.mktemp('generic_cli')
    size = ('--size', '40x30')
    assert main(['synth', str(root / 'train'), '--sequences', '4', '--frames', '24', *size]) == 0
    assert main(['synth', str(root / 'recording'), '--sequences', '1', '--frames', '250',
                 '--seed', '300', *size]) == 0
    assert main(['synth', str(root / 'short'), '--sequences', '1', '--frames', '30',
                 '--seed', '400', *size]) == 0
    assert main(['train', str(root / 'train'), '--out', str(root / 'run'), *TINY_TRAIN]) == 0
    assert main(['export', str(root / 'run'), '--out', str(root / 'model.vood')]) == 0
    return root


def test_one_small_recording_calibrates_with_defaults(work: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    out = tmp_path / 'small.vood'
    code, text, err = run(capsys, 'calibrate', work / 'model.vood', '--calib', work / 'recording',
                          '--out', out)
    assert code == 0, err
    # 250 frames: 125 give the conformal scores, which certify 1 / 126 at best
    assert 'per-frame false-alarm rate 0.01 (125 calibration scores can certify down to ' \
        '0.00794)' in text
    manifest = load_bundle(out).manifest
    (generic,) = manifest.partitions
    assert generic.name == 'generic' and generic.density is not None
    assert generic.density.groups == ('stats',) and generic.cusum is not None
    assert manifest.schema_version == 3 and manifest.target_far == 0.01
    assert 'colour_baseline' in manifest.metrics['calibration']


def test_a_rate_the_frames_cannot_certify_is_raised_to_the_lowest_they_can(
        work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'strict.vood'
    code, text, err = run(capsys, 'calibrate', work / 'model.vood', '--calib', work / 'recording',
                          '--out', out, '--target-far', 0.001)
    assert code == 0, err
    assert ('note: 125 calibration scores certify a per-frame false-alarm rate of 0.00794 at '
            'best, not the 0.001 asked for') in text
    assert '0.001 needs about 1998 calibration frames' in text
    manifest = load_bundle(out).manifest
    assert manifest.target_far == pytest.approx(1 / 126)
    assert manifest.metrics['calibration']['target_far_requested'] == 0.001


def test_too_few_frames_are_refused_with_the_floor(work: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, 'calibrate', work / 'model.vood', '--calib', work / 'short',
                       '--limit', 30, '--out', tmp_path / 'x.vood')
    assert code != 0
    assert '30 calibration frames are too few: calibration needs at least 40' in err


def test_evaluate_reports_the_baseline_and_the_named_shifts(work: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    model = tmp_path / 'm.vood'
    assert run(capsys, 'calibrate', work / 'model.vood', '--calib', work / 'recording',
               '--out', model)[0] == 0
    code, text, err = run(capsys, 'evaluate', model, '--id', work / 'recording', '--shifts',
                          'rain', 'fog')
    assert code == 0, err
    assert '| colour baseline AUROC |' in text
    # rain is augmented in training (and tunes the generic CUSUM): named; fog is not
    assert '| rain (named) |' in text and '| fog |' in text
    assert text.index('rain (named)') < text.index('| fog |')


def test_evaluate_warns_when_the_detector_is_worse_than_the_baseline(
        work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / 'm.vood'
    assert run(capsys, 'calibrate', work / 'model.vood', '--calib', work / 'recording',
               '--out', model)[0] == 0
    bundle = load_bundle(model)
    (generic,) = bundle.manifest.partitions
    # the same score read the wrong way round: far-out frames look the most normal
    backwards = Partition('generic', (), calibration_scores=generic.calibration_scores,
                          threshold_low=float(np.quantile(generic.calibration_scores, 0.01)),
                          tail=Tail.LOWER, density=generic.density)
    worse = save_bundle(bundle.with_manifest(partitions=(backwards,)), tmp_path / 'worse.vood')
    code, text, err = run(capsys, 'evaluate', worse, '--id', work / 'recording', '--shifts',
                          'brightness', 'fog')
    assert code == 0, err
    assert "warning: on 'fog' the detector (AUROC " in err
    assert 'is worse than the six-number colour baseline' in err
    code, _, err = run(capsys, 'evaluate', model, '--id', work / 'recording', '--shifts', 'fog')
    assert code == 0 and 'warning' not in err
