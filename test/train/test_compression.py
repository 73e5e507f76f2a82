"""Compression on tiny models: distillation, structured pruning, quantisation, QAT, search."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.session import EncoderSession
from vae_ood_monitor.core.typedefs import Precision
from vae_ood_monitor.data.dataset import FrameArray
from vae_ood_monitor.train import qat as qat_module
from vae_ood_monitor.train.distill import (adopt_stem, distill, DistillConfig, latent_gap,
                                           round_channels, student_spec)
from vae_ood_monitor.train.export import bundle_from_encoder, count_macs
from vae_ood_monitor.train.models import Encoder, get_preset, VAE
from vae_ood_monitor.train.prune import conv_blocks, prune_encoder
from vae_ood_monitor.train.qat import fuse, QatEncoder
from vae_ood_monitor.train.quantize import fp16_bundle, quantize_static_bundle
from vae_ood_monitor.train.runs import load_run
from vae_ood_monitor.train.search import (Candidate, CandidateSpec, default_grid, pareto_front,
                                          run_search)
from vood_testing import tiny_frames

CONFIG = DistillConfig(epochs=2, batch_size=16, lr=3e-3, threads=1, amp='off')


def _batch(frames: FrameArray, count: int = 8) -> np.ndarray:
    return (frames.images[:count].transpose(0, 3, 1, 2) / 255.0).astype(np.float32)


def test_round_channels_and_student_spec() -> None:
    assert [round_channels(c) for c in (3, 12, 13, 100)] == [8, 16, 16, 96]
    teacher = get_preset('default').encoder
    spec = student_spec(teacher, width=0.5, input_scale=0.5)
    assert spec.channels == (16, 32, 64, 128) and spec.input_hw == (60, 80)
    assert spec.latent_dim == teacher.latent_dim
    assert all(c % 8 == 0 for c in student_spec(teacher, width=0.3).channels)
    with pytest.raises(ConfigError, match='input_scale'):
        student_spec(teacher, input_scale=2.0)


def test_a_patch_stem_sees_every_pixel_at_the_cost_of_half_the_input() -> None:
    teacher = get_preset('default').encoder
    patch = student_spec(teacher, width=0.25, stem_stride=4)
    half = student_spec(teacher, width=0.25, input_scale=0.5)
    assert patch.input_hw == teacher.input_hw and half.input_hw == (60, 80)
    assert patch.feature_hw == half.feature_hw == (3, 5)
    encoder = Encoder(patch).eval()
    stem = encoder.features[0]
    assert stem.kernel_size == stem.stride == (4, 4) and stem.padding == (1, 1)
    assert count_macs(encoder, patch.input_hw) == count_macs(Encoder(half), half.input_hw)
    with torch.no_grad():
        mu, logvar = encoder(torch.rand(2, 3, *patch.input_hw))
    assert mu.shape == logvar.shape == (2, teacher.latent_dim)
    assert 'stem_stride' in patch.to_dict() and 'stem_stride' not in teacher.to_dict()
    assert type(patch).from_dict(patch.to_dict()) == patch
    with pytest.raises(ConfigError, match='decoder'):
        VAE(patch)
    with pytest.raises(ConfigError, match='stem_stride'):
        replace(get_preset('paper').encoder, stem_stride=4)


def _informative_teacher() -> VAE:
    """A random tiny VAE whose posterior varies clearly from frame to frame."""
    torch.manual_seed(1)
    teacher = VAE(get_preset('tiny').encoder).eval()
    with torch.no_grad():
        teacher.encoder.head.weight.mul_(8.0)
    return teacher


def test_distillation_reduces_the_latent_gap() -> None:
    teacher = _informative_teacher()
    frames = tiny_frames(n=192, seed=3)
    spec = student_spec(teacher.spec, width=0.5)
    torch.manual_seed(0)
    before = latent_gap(teacher, Encoder(spec).eval(), frames)
    config = DistillConfig(epochs=6, batch_size=16, lr=3e-3, threads=1, amp='off',
                           augment=())
    student, history = distill(teacher, spec, frames, config, progress=False)
    after = latent_gap(teacher, student, frames)
    assert len(history) == 6 and history[-1]['loss'] < 0.2 * history[0]['loss']
    assert after['mu'] + after['logvar'] < 0.5 * (before['mu'] + before['logvar'])
    assert after['kl'] < before['kl']
    assert sum(p.numel() for p in student.parameters()) < sum(
        p.numel() for p in teacher.encoder.parameters())


def test_a_student_with_the_teachers_stem_keeps_it_and_its_statistics() -> None:
    teacher = _informative_teacher()
    with torch.no_grad():  # a stem whose batch norm does something
        teacher.encoder.features[1].running_mean.uniform_(-0.2, 0.2)
        teacher.encoder.features[1].weight.uniform_(0.5, 2.0)
    spec = student_spec(teacher.spec, width=0.25, stem_stride=4, teacher_stem=True)
    assert spec.channels[0] == teacher.spec.channels[0]
    student = Encoder(spec)
    adopt_stem(student, teacher.encoder)
    stem_before = {k: v.clone() for k, v in student.features[:2].state_dict().items()}
    config = DistillConfig(epochs=2, batch_size=16, lr=3e-3, threads=1, amp='off', augment=())
    student, history = distill(teacher, spec, tiny_frames(n=96, seed=4), config,
                               student=student, progress=False)
    assert history[-1]['loss'] < history[0]['loss']  # the rest of it learnt
    for key, value in student.features[:2].state_dict().items():
        assert torch.equal(value, stem_before[key]), key  # the stem (and its norm) did not
    x = torch.rand(2, 3, *teacher.spec.input_hw)
    with torch.no_grad():
        # the first block is the teacher's at every other position: the same filters on
        # every pixel, the statistics the generic score measures
        np.testing.assert_allclose(student.features[:3](x),
                                   teacher.encoder.features[:3](x)[:, :, ::2, ::2], atol=1e-6)
    with pytest.raises(ConfigError, match='does not match'):
        adopt_stem(Encoder(student_spec(teacher.spec, width=2.0)), teacher.encoder)
    # (2, 4): every other column of the teacher's first block (twice the positions for the
    # statistics), and every other row of that for the next block
    spec = student_spec(teacher.spec, width=0.25, stem_stride=(2, 4), teacher_stem=True)
    columns = Encoder(spec).eval()
    adopt_stem(columns, teacher.encoder)
    with torch.no_grad():
        first = teacher.encoder.features[:3](x)
        np.testing.assert_allclose(columns.features[:3](x), first[:, :, :, ::2], atol=1e-6)
        np.testing.assert_allclose(columns.features[:4](x), first[:, :, ::2, ::2], atol=1e-6)
        assert columns(x)[0].shape == (2, teacher.spec.latent_dim)
    assert spec.feature_hw == Encoder(spec).spec.feature_hw
    with pytest.raises(ConfigError, match='multiple of rows'):
        student_spec(teacher.spec, stem_stride=(4, 6))
    with pytest.raises(ConfigError, match="teacher's input size"):
        student_spec(teacher.spec, input_scale=0.5, teacher_stem=True)


@pytest.mark.parametrize('loss', ['scores', 'latent_kl', 'paper'])
def test_other_distillation_losses_train(tiny_run: Path, loss: str) -> None:
    _, teacher = load_run(tiny_run)
    config = DistillConfig(epochs=1, batch_size=16, lr=3e-3, threads=1, amp='off', loss=loss,
                           augment=('noise', 'fog'), augment_split='full')
    student, history = distill(teacher, student_spec(teacher.spec, width=0.5), tiny_frames(),
                               config, progress=False)
    assert np.isfinite(history[0]['loss'])
    assert student(torch.zeros(1, 3, 30, 40))[0].shape == (1, 8)


def test_pruning_physically_removes_channels_and_still_exports() -> None:
    torch.manual_seed(0)
    encoder = Encoder(get_preset('default').encoder).eval()
    pruned = prune_encoder(encoder, [0.5, 0.5, 0.25, 0.75])
    assert pruned.spec.channels == (16, 32, 96, 64)
    assert [b[0].out_channels for b in conv_blocks(pruned)] == [16, 32, 96, 64]
    assert count_macs(pruned, (120, 160)) < 0.5 * count_macs(encoder, (120, 160))
    bundle = bundle_from_encoder(pruned, pruned.spec, name='pruned', provenance={})
    mu, logvar = EncoderSession(bundle).encode(np.zeros((1, 3, 120, 160), np.float32))
    assert mu.shape == logvar.shape == (1, 30)
    convs = [n for n in onnx.load_from_string(bundle.model_bytes).graph.initializer
             if len(n.dims) == 4]
    assert sorted(n.dims[0] for n in convs) == [16, 32, 64, 96]


def test_pruning_keeps_the_most_important_channels_and_is_exact_at_ratio_zero() -> None:
    torch.manual_seed(0)
    encoder = Encoder(get_preset('tiny').encoder).eval()
    first_conv = conv_blocks(encoder)[0][0]
    with torch.no_grad():
        first_conv.weight[3] *= 100.0  # make channel 3 by far the most important
    same = prune_encoder(encoder, [0.0, 0.0])
    x = torch.rand(2, 3, 30, 40)
    torch.testing.assert_close(same(x), encoder(x))
    pruned = prune_encoder(encoder, [0.9, 0.0])  # keeps one multiple of 8: all 8 channels
    assert pruned.spec.channels[0] == 8
    wide = Encoder(get_preset('default').encoder).eval()
    with torch.no_grad():
        conv_blocks(wide)[0][0].weight[5] *= 100.0
    kept = prune_encoder(wide, [0.75, 0.0, 0.0, 0.0])
    weight = conv_blocks(kept)[0][0].weight
    assert torch.isclose(weight.abs().sum((1, 2, 3)),
                         conv_blocks(wide)[0][0].weight[5].abs().sum()).any()
    with pytest.raises(ConfigError, match='one ratio per convolution'):
        prune_encoder(wide, [0.5])


@pytest.fixture(scope='module')
def tiny_bundle_and_frames(tiny_run: Path):  # type: ignore[no-untyped-def]
    info, model = load_run(tiny_run)
    bundle = bundle_from_encoder(model.encoder, info.spec, name='tiny', provenance={})
    return bundle, tiny_frames(n=64, seed=5)


def test_static_int8_has_int8_weights_and_agrees_with_fp32(tiny_bundle_and_frames) -> None:
    bundle, frames = tiny_bundle_and_frames
    quantised = quantize_static_bundle(bundle, frames.images[:32])
    assert quantised.manifest.model.precision is Precision.INT8
    assert quantised.manifest.model.sha256 != bundle.manifest.model.sha256
    assert not quantised.manifest.partitions  # must be calibrated again
    graph = onnx.load_from_string(quantised.model_bytes).graph
    int8 = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert int8 and {n.op_type for n in graph.node} >= {'QuantizeLinear', 'DequantizeLinear'}
    batch = _batch(frames, 16)
    mu_f, lv_f = EncoderSession(bundle).encode(batch)
    mu_q, lv_q = EncoderSession(quantised).encode(batch)
    # stated tolerance: int8 rounding moves mu and logvar by a small fraction of their spread
    assert np.abs(mu_q - mu_f).mean() < 0.1 * mu_f.std() + 0.02
    assert np.abs(lv_q - lv_f).mean() < 0.1 * lv_f.std() + 0.02
    with pytest.raises(ConfigError, match='too few'):
        quantize_static_bundle(bundle, frames.images[:4])


def _conv_weight_types(model_bytes: bytes) -> list[str]:
    """Per Conv node in graph order: 'int8' when its weight comes from int8 data, else 'float'."""
    graph = onnx.load_from_string(model_bytes).graph
    int8 = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT8}
    dequantised = {n.output[0] for n in graph.node
                   if n.op_type == 'DequantizeLinear' and n.input[0] in int8}
    return ['int8' if n.input[1] in dequantised else 'float'
            for n in graph.node if n.op_type == 'Conv']


def test_static_int8_keeps_the_stem_in_float_unless_asked(tiny_bundle_and_frames) -> None:
    bundle, frames = tiny_bundle_and_frames
    stem = quantize_static_bundle(bundle, frames.images[:32])
    every = quantize_static_bundle(bundle, frames.images[:32], float_stem=False)
    assert _conv_weight_types(stem.model_bytes)[0] == 'float'
    assert set(_conv_weight_types(stem.model_bytes)[1:]) == {'int8'}
    assert set(_conv_weight_types(every.model_bytes)) == {'int8'}
    graph = onnx.load_from_string(stem.model_bytes).graph
    first_conv = next(n for n in graph.node if n.op_type == 'Conv')
    assert first_conv.input[0] == graph.input[0].name  # reads the image itself, no QDQ pair
    assert first_conv.name in stem.manifest.provenance['precision']['float_nodes']
    batch = _batch(frames, 16)
    mu_f = EncoderSession(bundle).encode(batch)[0]
    assert np.abs(EncoderSession(stem).encode(batch)[0] - mu_f).mean() < 0.1 * mu_f.std() + 0.02


def test_fp16_variant(tiny_bundle_and_frames) -> None:
    bundle, frames = tiny_bundle_and_frames
    batch = _batch(frames)
    reference = EncoderSession(bundle).encode(batch)[0]
    half = fp16_bundle(bundle)
    assert half.manifest.model.precision is Precision.FP16
    assert any(t.data_type == onnx.TensorProto.FLOAT16
               for t in onnx.load_from_string(half.model_bytes).graph.initializer)
    np.testing.assert_allclose(EncoderSession(half).encode(batch)[0], reference, atol=0.05)


def test_qat_fuses_exactly_and_fine_tunes(tiny_run: Path) -> None:
    _, teacher = load_run(tiny_run)
    fused = fuse(teacher.encoder)
    x = torch.rand(4, 3, 30, 40)
    torch.testing.assert_close(fused(x), teacher.encoder(x), atol=1e-5, rtol=1e-5)
    qat = QatEncoder(fused)
    qat, history = distill(teacher, teacher.spec, tiny_frames(),
                           DistillConfig(epochs=1, batch_size=16, lr=1e-4, threads=1, amp='off'),
                           student=qat, progress=False)
    assert np.isfinite(history[0]['loss'])
    exported = qat.export_module()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in exported.modules())
    assert bundle_from_encoder(exported, exported.spec, name='qat', provenance={})


def test_qat_simulates_int8_everywhere_but_the_float_stem(tiny_run: Path, monkeypatch) -> None:
    """Like quantize_static_bundle: the stem's weights and input are not rounded unless asked."""
    _, teacher = load_run(tiny_run)
    rounded: list[tuple[int, ...]] = []
    real = qat_module._fake_weight
    monkeypatch.setattr(qat_module, '_fake_weight',
                        lambda w: rounded.append(tuple(w.shape)) or real(w))
    x = torch.rand(2, 3, 30, 40)
    for float_stem in (True, False):
        rounded.clear()
        qat = QatEncoder(fuse(teacher.encoder), float_stem=float_stem).train()
        qat(x)
        convs = qat.fused.convs()
        stem_shape = tuple(convs[0].weight.shape)
        assert len(rounded) == len(convs) - float_stem
        assert (stem_shape in rounded) is not float_stem
        assert bool(qat.ranges[0].seen) is not float_stem  # the image itself: rounded or not


def _candidate(name: str, ms: float, auroc: dict[str, float]) -> Candidate:
    return Candidate(CandidateSpec(name), name, auroc, median_ms=ms)


def test_pareto_front_and_budget_logic() -> None:
    teacher = _candidate('t', 10.0, {'rain': 0.95, 'fog': 0.90})
    fast_bad = _candidate('a', 1.0, {'rain': 0.80, 'fog': 0.90})
    fast_good = _candidate('b', 2.0, {'rain': 0.94, 'fog': 0.895})
    slow = _candidate('c', 5.0, {'rain': 0.93, 'fog': 0.89})
    assert fast_good.min_drop(teacher.auroc) == pytest.approx(0.01)
    assert fast_bad.min_drop(teacher.auroc) == pytest.approx(0.15)
    front = {c.spec.name for c in pareto_front([teacher, fast_bad, fast_good, slow])}
    assert front == {'t', 'a', 'b'}
    assert default_grid('gpu')[0].precision is Precision.FP16
    with pytest.raises(ConfigError, match='QAT only'):
        CandidateSpec('x', qat=True)


def test_search_builds_assesses_times_and_honours_the_budget(tiny_run: Path,
                                                             tmp_path: Path) -> None:
    info, teacher = load_run(tiny_run)
    teacher_bundle = bundle_from_encoder(teacher.encoder, info.spec, name='t', provenance={})
    frames = tiny_frames(n=64, seed=7)
    grid = [CandidateSpec('student', width=0.5),
            CandidateSpec('student-int8', width=0.5, precision='int8')]
    scores = {'t': 0.9, 'student': 0.85, 'student-int8': 0.89}

    def assess(bundle):  # type: ignore[no-untyped-def]
        return bundle, {'rain': scores[bundle.name]}

    def timer(paths):  # type: ignore[no-untyped-def]
        return {str(p): {'teacher-fp32': 3.0, 'student': 1.0, 'student-int8': 2.0}[p.stem]
                for p in paths}

    config = DistillConfig(epochs=1, batch_size=16, threads=1, amp='off')
    best_teacher, rows = run_search(teacher, teacher_bundle, frames, frames, grid, tmp_path,
                                    assess, timer, budget=0.02, config=config, progress=False,
                                    log=lambda _: None)
    assert [r.spec.name for r in rows] == ['teacher-fp32', 'student', 'student-int8']
    within = [r for r in rows[1:] if r.min_drop(best_teacher.auroc) <= 0.02]
    assert [r.spec.name for r in within] == ['student-int8']  # the faster one misses the budget
    assert (tmp_path / 'search.json').is_file()
    assert all(Path(r.path).is_file() for r in rows)
    assert rows[2].latent_gap and rows[2].macs < rows[0].macs


def test_resumed_search_reuses_built_candidates_and_refuses_foreign_ones(
        tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vae_ood_monitor.train.search as search

    info, teacher = load_run(tiny_run)
    teacher_bundle = bundle_from_encoder(teacher.encoder, info.spec, name='t', provenance={})
    frames = tiny_frames(n=48, seed=3)
    grid = [CandidateSpec('student', width=0.5)]
    config = DistillConfig(epochs=1, batch_size=16, threads=1, amp='off')

    def assess(bundle):  # type: ignore[no-untyped-def]
        return bundle, {'rain': 0.9}

    def timer(paths):  # type: ignore[no-untyped-def]
        return {str(p): 1.0 for p in paths}

    def search_once(specs: list[CandidateSpec], resume: bool,
                    settings: DistillConfig = config) -> list[Candidate]:
        return run_search(teacher, teacher_bundle, frames, frames, specs, tmp_path, assess,
                          timer, config=settings, progress=False, resume=resume,
                          log=lambda _: None)[1]

    first = search_once(grid, resume=False)
    built = Path(first[1].path).read_bytes()

    def no_build(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError('a finished candidate was rebuilt')

    monkeypatch.setattr(search, '_build', no_build)
    again = search_once(grid, resume=True)
    assert Path(again[1].path).read_bytes() == built
    assert again[1].build_seconds == pytest.approx(first[1].build_seconds)
    assert again[1].latent_gap == first[1].latent_gap
    with pytest.raises(AssertionError, match='rebuilt'):  # without resume it does rebuild
        search_once(grid, resume=False)
    with pytest.raises(ConfigError, match='built from'):  # same name, different recipe
        search_once([CandidateSpec('student', width=0.25)], resume=True)
    with pytest.raises(ConfigError, match='built from'):  # same spec, other distillation
        search_once(grid, resume=True, settings=replace(config, augment_p=0.3))
    # where it ran is not part of the recipe: reused (_build would raise), not rebuilt
    reused = search_once(grid, resume=True, settings=replace(config, threads=2))
    assert Path(reused[1].path).read_bytes() == built


def test_blend_frames_replaces_the_asked_fraction_with_blends_of_batch_frames() -> None:
    from vae_ood_monitor.train.distill import blend_frames

    rng = np.random.default_rng(5)
    batch = rng.integers(0, 256, (8, 12, 16, 3), dtype=np.uint8)
    out = blend_frames(batch, np.random.default_rng(1), 0.5)
    assert out.dtype == np.uint8 and out.shape == batch.shape
    changed = [i for i in range(8) if not np.array_equal(out[i], batch[i])]
    assert len(changed) == 4
    low, high = batch.min(axis=0), batch.max(axis=0)
    assert np.all(out >= low) and np.all(out <= high)  # every pixel a mix of batch pixels
    assert np.array_equal(blend_frames(batch, rng, 0.0), batch)
    with pytest.raises(ConfigError, match='mix_p'):
        DistillConfig(mix_p=1.5)
    with pytest.raises(ConfigError, match='augment_split'):
        DistillConfig(augment_split='test')
