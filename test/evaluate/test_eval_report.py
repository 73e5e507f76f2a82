"""Frame-level evaluation and its report (evaluate/report.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vae_ood_monitor.core.bundle import Bundle
from vae_ood_monitor.core.errors import CalibrationError
from vae_ood_monitor.core.manifest import Partition
from vae_ood_monitor.core.typedefs import Tail
from vae_ood_monitor.evaluate.report import (combined_score, evaluate_encodings, Evaluation,
                                             format_table, named_shifts, write_report)
from vood_testing import make_bundle, rows_with_kl

PNG = b'\x89PNG\r\n\x1a\n'


@pytest.fixture
def bundle() -> Bundle:
    """Two partitions with median 1: 'up' (dim 0, threshold 2), 'down' (dim 1, low 0.5)."""
    scores = [0.5, 1.0, 1.5]
    up = Partition('up', (0,), calibration_scores=scores, threshold=2.0)
    down = Partition('down', (1,), calibration_scores=scores, threshold_low=0.5,
                     tail=Tail.LOWER)
    return make_bundle().with_manifest(partitions=(up, down))


def _kl(dim0: list[float], dim1: list[float]) -> np.ndarray:
    """Encoding rows of the 4-dim bundle whose dims 0 and 1 have these KL values."""
    return rows_with_kl(np.column_stack([dim0, dim1, np.ones(len(dim0)), np.ones(len(dim0))]))


def test_combined_score_is_the_largest_evidence(bundle: Bundle) -> None:
    # evidence: up log2(dim0), down -log2(dim1)
    kl = _kl([4.0, 1.0, 1.0, 0.5], [1.0, 0.125, 1.0, 2.0])
    # atol: the rows carry KL as mu = sqrt(2 KL), which rounds in the last bits
    np.testing.assert_allclose(combined_score(bundle, kl), [2.0, 3.0, 0.0, -1.0], atol=1e-12)


def test_combined_score_needs_calibration() -> None:
    with pytest.raises(CalibrationError, match="'tiny-linear' is not calibrated; run "
                       '`vae-ood calibrate`'):
        combined_score(make_bundle(calibrated=False), np.ones((3, 8)))


def _evaluation(bundle: Bundle) -> Evaluation:
    rng = np.random.default_rng(0)
    id_kl = _kl(rng.uniform(0.8, 1.6, 50), rng.uniform(0.8, 1.2, 50))
    return evaluate_encodings(bundle, id_kl, {
        'bright': _kl(rng.uniform(2.5, 5.0, 20), np.ones(20)),  # 'up' fires on every frame
        'dark': _kl(np.ones(10), rng.uniform(0.1, 0.4, 10)),  # 'down' fires on every frame
        'faint': _kl(rng.uniform(0.8, 1.6, 30), rng.uniform(0.8, 1.2, 30)),  # like ID
    })


def test_evaluate_encodings(bundle: Bundle) -> None:
    evaluation = _evaluation(bundle)
    assert evaluation.name == 'tiny-linear' and evaluation.id_scores.shape == (50,)
    assert set(evaluation.metrics) == {'bright', 'dark', 'faint'}
    assert set(evaluation.metrics['bright']) == {'combined', 'up', 'down'}
    bright, dark = evaluation.metrics['bright'], evaluation.metrics['dark']
    assert evaluation.auroc('bright') == 1.0 and bright['combined'].detection_rate == 1.0
    assert bright['up'].auroc == 1.0 and bright['down'].detection_rate == 0.0
    assert evaluation.auroc('dark') == 1.0 and dark['down'].auroc == 1.0
    assert dark['combined'].false_alarm_rate == 0.0 and dark['combined'].n_ood == 10
    assert 0.3 < evaluation.auroc('faint') < 0.7
    assert evaluation.auroc('faint', 'up') == evaluation.metrics['faint']['up'].auroc
    data = evaluation.to_dict()
    assert data['id_frames'] == 50 and data['id_false_alarm_rate'] == 0.0
    assert data['shifts']['dark']['down']['n_ood'] == 10


def test_single_partition_reports_combined_only() -> None:
    bundle = make_bundle()
    kl = np.random.default_rng(0).gamma(1.0, 1.0, (40, 4))
    evaluation = evaluate_encodings(bundle, rows_with_kl(kl), {'x': rows_with_kl(kl * 3)})
    assert list(evaluation.metrics['x']) == ['combined']


def test_evaluate_needs_ood_sets(bundle: Bundle) -> None:
    with pytest.raises(CalibrationError, match='No OOD sets to evaluate; pass --ood DATA or '
                       '--shifts NAME'):
        evaluate_encodings(bundle, _kl([1.0], [1.0]), {})


def test_format_table(bundle: Bundle) -> None:
    lines = format_table(_evaluation(bundle)).splitlines()
    assert lines[0] == ('| shift | AUROC | AUPR | FPR@95%TPR | detected @thr | false alarms '
                        '@thr | OOD frames |')
    assert lines[1] == '|---|---|---|---|---|---|---|'
    assert lines[2] == '| bright | 1.000 | 1.000 | 0.000 | 100.0% | 0.00% | 20 |'
    assert lines[3].startswith('| dark | 1.000 |') and lines[4].startswith('| faint | 0.')
    assert len(lines) == 5


def test_write_report(bundle: Bundle, tmp_path: Path) -> None:
    evaluation = _evaluation(bundle)
    evaluation.extra['sequences'] = {'note': 'kept'}
    paths = write_report(evaluation, tmp_path / 'report', title='Tiny', notes='## Extra notes')
    assert set(paths) == {'roc', 'histograms', 'metrics', 'report'}
    for name in ('roc.png', 'histograms.png'):
        assert (tmp_path / 'report' / name).read_bytes()[:8] == PNG
    metrics = json.loads((tmp_path / 'report' / 'metrics.json').read_text())
    assert metrics == json.loads(json.dumps(evaluation.to_dict()))
    assert metrics['sequences'] == {'note': 'kept'} and metrics['bundle'] == 'tiny-linear'
    report = (tmp_path / 'report' / 'report.md').read_text()
    assert report.startswith('# Tiny\n')
    assert 'In-distribution frames: 50; false-alarm rate at the calibrated threshold: 0.00%' \
        in report
    assert format_table(evaluation) in report
    assert '![ROC curves](roc.png)' in report and report.rstrip().endswith('## Extra notes')


def test_histograms_show_the_evidence_on_a_linear_axis(bundle: Bundle, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # the plotted value is the evidence, a log ratio: 0 at the ID median, negative below it
    from vae_ood_monitor.evaluate import plots

    saved = {}

    def keep(fig: object, path: Path) -> Path:
        saved[Path(path).name] = fig
        return Path(path)

    monkeypatch.setattr(plots, '_save', keep)
    evaluation = _evaluation(bundle)
    assert (evaluation.id_scores < 0).any()
    write_report(evaluation, tmp_path / 'report')
    axes = saved['histograms.png'].axes
    assert all(ax.get_xscale() == 'linear' for ax in axes[:3])
    assert axes[0].get_xlabel() == ('evidence: log(score / median) / log(threshold / median)  '
                                    '(>1: alert)')
    low, high = axes[0].get_xlim()
    assert low <= evaluation.id_scores.min() < 0 < 1.0 < high  # negative evidence is drawn
    report = (tmp_path / 'report' / 'report.md').read_text()
    assert 'log(score / median) / log(upper threshold / median)' in report
    assert 'score / upper threshold,' not in report


def test_a_students_named_shifts_are_its_teachers_and_its_distillations() -> None:
    teacher = make_bundle(calibrated=False).with_manifest(
        provenance={'train': {'augment': ['rain'], 'guide': ['rain'], 'select': 'last',
                              'select_shifts': ['fog']}})
    assert named_shifts(teacher) == ('rain',)  # 'last' epoch: fog chose nothing
    student = teacher.with_manifest(provenance={
        **teacher.manifest.provenance, 'distillation': {'augment': ['rain', 'noise']}})
    assert named_shifts(student) == ('rain', 'noise')
