"""Tests of vae_ood_monitor.core.bundle: save/load round trip, verification and atomic writes.

Damaged bundles are written by hand with zipfile so that every failure mode load_bundle must
recognise (tampering, wrong schema, not a zip, missing members, bad JSON) is exercised for real.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
import zipfile

import numpy as np
import pytest

from vae_ood_monitor.core import bundle as bundle_module
from vae_ood_monitor.core.bundle import (Bundle, load_bundle, MANIFEST_MEMBER, MODEL_MEMBER,
                                         save_bundle, sha256_hex)
from vae_ood_monitor.core.errors import BundleError
from vae_ood_monitor.core.manifest import CusumParams, SCHEMA_VERSION
from vood_testing import linear_encoder_onnx, make_bundle


def write_zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, 'w') as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def members(bundle: Bundle) -> dict[str, bytes | str]:
    return {MANIFEST_MEMBER: json.dumps(bundle.manifest.to_dict()),
            MODEL_MEMBER: bundle.model_bytes}


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_sha256_hex() -> None:
    assert sha256_hex(b'abc') == ('ba7816bf8f01cfea414140de5dae2223'
                                  'b00361a396177a9cb410ff61f20015ad')


def test_round_trip(tmp_path: Path) -> None:
    original = make_bundle(cusum=CusumParams(20, 0.5, 5.0)).with_manifest(
        provenance={'run': 'r1', 'nested': {'lr': 1e-3}}, metrics={'auroc': 0.93},
        created='2024-01-01T00:00:00+00:00')
    path = save_bundle(original, tmp_path / 'sub' / 'model.vood')
    assert path == tmp_path / 'sub' / 'model.vood'
    loaded = load_bundle(str(path))
    assert loaded.path == path
    assert loaded.model_bytes == original.model_bytes
    assert loaded.name == 'tiny-linear'
    assert loaded.short_hash == sha256_hex(original.model_bytes)[:12]
    a, b = original.manifest, loaded.manifest
    for name in ('name', 'input', 'model', 'target_far', 'provenance', 'metrics', 'created',
                 'schema_version'):
        assert getattr(a, name) == getattr(b, name), name
    assert len(b.partitions) == 1
    pa, pb = a.partitions[0], b.partitions[0]
    assert (pa.name, pa.dims, pa.selection, pa.threshold, pa.cusum) == (
        pb.name, pb.dims, pb.selection, pb.threshold, pb.cusum)
    np.testing.assert_array_equal(pb.calibration_scores, pa.calibration_scores)
    assert np.all(np.diff(pb.calibration_scores) >= 0)
    assert not pb.calibration_scores.flags.writeable
    assert b.to_dict() == a.to_dict()


def test_saved_archive_has_exactly_two_members(bundle_path: Path) -> None:
    with zipfile.ZipFile(bundle_path) as archive:
        assert sorted(archive.namelist()) == sorted([MANIFEST_MEMBER, MODEL_MEMBER])
        text = archive.read(MANIFEST_MEMBER).decode()
    assert 'NaN' not in text and 'Infinity' not in text
    # no change partitions: written as version 1, which older runtimes still read
    assert json.loads(text)['schema_version'] == 1 < SCHEMA_VERSION


def test_bundle_rejects_model_bytes_not_matching_manifest() -> None:
    good = make_bundle()
    with pytest.raises(BundleError, match=r'has sha256 .* but the manifest records .*'
                                          r're-export'):
        Bundle(good.manifest, linear_encoder_onnx(seed=1))


def test_load_rejects_tampered_model(tmp_path: Path) -> None:
    good = make_bundle()
    content = members(good)
    tampered = bytearray(good.model_bytes)
    tampered[-1] ^= 0xFF
    content[MODEL_MEMBER] = bytes(tampered)
    path = write_zip(tmp_path / 'tampered.vood', content)
    with pytest.raises(BundleError, match='tampered.vood: encoder.onnx has sha256'):
        load_bundle(path)


@pytest.mark.parametrize('version, hint', [(SCHEMA_VERSION + 1, 'upgrade vae_ood_monitor'),
                                           (0, 're-export the model'),
                                           ('1', 're-export the model')])
def test_load_rejects_unknown_schema_version(tmp_path: Path, version: object,
                                             hint: str) -> None:
    good = make_bundle()
    data = good.manifest.to_dict()
    data['schema_version'] = version
    path = write_zip(tmp_path / 'v.vood', {MANIFEST_MEMBER: json.dumps(data),
                                           MODEL_MEMBER: good.model_bytes})
    with pytest.raises(BundleError, match=f"'.*v.vood' has schema version .*{hint}"):
        load_bundle(path)


def test_load_rejects_file_that_is_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / 'model.vood'
    path.write_bytes(b'definitely not a zip archive')
    with pytest.raises(BundleError, match='is not a model bundle \\(not a valid zip') as info:
        load_bundle(path)
    assert 'bare ONNX' not in str(info.value)


def test_load_bare_onnx_hints_at_export(tmp_path: Path) -> None:
    path = tmp_path / 'encoder.onnx'
    path.write_bytes(linear_encoder_onnx())
    with pytest.raises(BundleError, match='bare ONNX file.*vae-ood export RUN --out'):
        load_bundle(path)


@pytest.mark.parametrize('present, missing', [
    ((MANIFEST_MEMBER,), MODEL_MEMBER),
    ((MODEL_MEMBER,), MANIFEST_MEMBER),
    ((), 'encoder.onnx, manifest.json'),
])
def test_load_rejects_zip_missing_members(tmp_path: Path, present: tuple[str, ...],
                                          missing: str) -> None:
    content = {k: v for k, v in members(make_bundle()).items() if k in present}
    content['README'] = 'hello'
    path = write_zip(tmp_path / 'partial.vood', content)
    with pytest.raises(BundleError, match=f'is a zip archive but not a model bundle: it lacks '
                                          f'{missing}'):
        load_bundle(path)


@pytest.mark.parametrize('manifest', [b'{"format": ', b'\xff\xfe not utf-8', b''])
def test_load_rejects_invalid_json(tmp_path: Path, manifest: bytes) -> None:
    path = write_zip(tmp_path / 'bad.vood', {MANIFEST_MEMBER: manifest,
                                             MODEL_MEMBER: make_bundle().model_bytes})
    with pytest.raises(BundleError, match='manifest.json is not valid JSON.*damaged'):
        load_bundle(path)


def test_load_rejects_json_that_is_not_a_manifest(tmp_path: Path) -> None:
    path = write_zip(tmp_path / 'other.vood', {MANIFEST_MEMBER: '{"hello": 1}',
                                               MODEL_MEMBER: make_bundle().model_bytes})
    with pytest.raises(BundleError, match='is not a vae-ood bundle manifest'):
        load_bundle(path)


def test_load_rejects_invalid_manifest_content(tmp_path: Path) -> None:
    good = make_bundle()
    data = good.manifest.to_dict()
    data['partitions'][0]['dims'] = [0, 9]
    path = write_zip(tmp_path / 'dims.vood', {MANIFEST_MEMBER: json.dumps(data),
                                              MODEL_MEMBER: good.model_bytes})
    with pytest.raises(BundleError, match="dims.vood' is malformed.*latent dim 9"):
        load_bundle(path)


def test_load_rejects_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match='is a directory, not a model bundle'):
        load_bundle(tmp_path)


def test_load_rejects_missing_path(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="'.*nothing.vood' does not exist"):
        load_bundle(tmp_path / 'nothing.vood')


def test_save_refuses_existing_path_without_force(tmp_path: Path) -> None:
    path = tmp_path / 'model.vood'
    path.write_bytes(b'precious')
    with pytest.raises(BundleError, match='already exists.*--force'):
        save_bundle(make_bundle(), path)
    assert path.read_bytes() == b'precious'
    save_bundle(make_bundle(seed=3), path, force=True)
    assert load_bundle(path).model_bytes == linear_encoder_onnx(seed=3)
    assert leftovers(tmp_path) == ['model.vood']


def test_save_refuses_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match='is a directory; give a file path'):
        save_bundle(make_bundle(), tmp_path, force=True)


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(src: str, dst: str) -> None:
        raise OSError('disk full')

    monkeypatch.setattr(bundle_module.os, 'replace', fail)
    with pytest.raises(OSError, match='disk full'):
        save_bundle(make_bundle(), tmp_path / 'model.vood')
    assert leftovers(tmp_path) == []


def test_failed_overwrite_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_bundle(make_bundle(), tmp_path / 'model.vood')
    before = path.read_bytes()

    def fail(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'replace', fail)  # the module calls os.replace through `os`
    with pytest.raises(KeyboardInterrupt):
        save_bundle(make_bundle(seed=2), path, force=True)
    assert path.read_bytes() == before
    assert not [n for n in leftovers(tmp_path) if n.endswith('.partial')]


@pytest.mark.parametrize('field', ['metrics', 'provenance'])
@pytest.mark.parametrize('value', [math.nan, math.inf, object()])
def test_save_refuses_manifest_that_is_not_plain_json(tmp_path: Path, field: str,
                                                      value: object) -> None:
    bad = make_bundle().with_manifest(**{field: {'x': value}})
    with pytest.raises(BundleError, match='the manifest is not plain JSON'):
        save_bundle(bad, tmp_path / 'model.vood')
    assert not (tmp_path / 'model.vood').exists()
    assert leftovers(tmp_path) == []
