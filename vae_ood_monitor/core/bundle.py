"""Model bundles: the one file a robot loads.

A bundle is a zip archive (extension ``.vood``) with exactly two members:

``manifest.json``
    the :class:`~vae_ood_monitor.core.manifest.Manifest` (JSON, schema-versioned);
``encoder.onnx``
    the encoder as a single self-contained ONNX file (no external data).

The manifest records the sha256 of ``encoder.onnx``; loading recomputes it, so a model swapped or
edited after export is refused. One file keeps deployment to ``scp model.vood robot:`` while
``unzip -l`` still shows what is inside. Loading needs only the standard library and numpy;
nothing is ever unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import io
import json
import os
from pathlib import Path
import tempfile
from typing import Any
import zipfile

from vae_ood_monitor.core.errors import BundleError
from vae_ood_monitor.core.manifest import Manifest

__all__ = ['BUNDLE_SUFFIX', 'Bundle', 'load_bundle', 'save_bundle', 'sha256_hex']

BUNDLE_SUFFIX = '.vood'
MANIFEST_MEMBER = 'manifest.json'
MODEL_MEMBER = 'encoder.onnx'
_MAX_MANIFEST_BYTES = 64 * 1024 * 1024


def sha256_hex(data: bytes) -> str:
    """Return the hex sha256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, eq=False)
class Bundle:
    """A loaded (or freshly built) model bundle: manifest plus ONNX bytes."""

    manifest: Manifest
    model_bytes: bytes
    path: Path | None = None

    def __post_init__(self) -> None:
        digest = sha256_hex(self.model_bytes)
        if digest != self.manifest.model.sha256:
            where = f'{self.path}' if self.path else 'bundle'
            raise BundleError(
                f'{where}: {MODEL_MEMBER} has sha256 {digest[:12]}... but the manifest records '
                f'{self.manifest.model.sha256[:12]}...: the model was modified after export or '
                'the manifest belongs to another model. Restore the original file or re-export '
                'it with `vae-ood export`.')

    @property
    def name(self) -> str:
        """The bundle's human-readable name."""
        return self.manifest.name

    @property
    def short_hash(self) -> str:
        """The first 12 hex digits of the model's sha256 (for logs and diagnostics)."""
        return self.manifest.model.sha256[:12]

    def with_manifest(self, **changes: Any) -> Bundle:
        """Return a copy whose manifest has some fields replaced."""
        return Bundle(self.manifest.replace(**changes), self.model_bytes, self.path)


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Load and verify a bundle; raise :class:`BundleError` saying what is wrong and what to do."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f'Model bundle {str(path)!r} does not exist; pass the {BUNDLE_SUFFIX} '
                          'file written by `vae-ood export`.')
    if path.is_dir():
        raise BundleError(f'{str(path)!r} is a directory, not a model bundle; pass the '
                          f'{BUNDLE_SUFFIX} file written by `vae-ood export`.')
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = {MANIFEST_MEMBER, MODEL_MEMBER} - names
            if missing:
                raise BundleError(
                    f'{str(path)!r} is a zip archive but not a model bundle: it lacks '
                    f'{", ".join(sorted(missing))}. Export a bundle with `vae-ood export`.')
            if archive.getinfo(MANIFEST_MEMBER).file_size > _MAX_MANIFEST_BYTES:
                raise BundleError(f'{str(path)!r}: {MANIFEST_MEMBER} is implausibly large; the '
                                  'file is damaged. Re-export the model.')
            manifest_bytes = archive.read(MANIFEST_MEMBER)
            model_bytes = archive.read(MODEL_MEMBER)
    except zipfile.BadZipFile as err:
        hint = (' It looks like a bare ONNX file: build a bundle from a training run with '
                '`vae-ood export RUN --out MODEL.vood`.' if path.suffix == '.onnx' else '')
        raise BundleError(f'{str(path)!r} is not a model bundle (not a valid zip archive: '
                          f'{err}).{hint}') from err
    except OSError as err:
        raise BundleError(f'Cannot read model bundle {str(path)!r}: {err}.') from err
    try:
        data = json.loads(manifest_bytes.decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f'{str(path)!r}: {MANIFEST_MEMBER} is not valid JSON ({err}); the '
                          'bundle is damaged. Re-export the model.') from err
    manifest = Manifest.from_dict(data, source=repr(str(path)))
    return Bundle(manifest, model_bytes, path)


def save_bundle(bundle: Bundle, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``bundle`` to ``path`` atomically (temp file + rename); refuse to overwrite.

    A crash or error never leaves a partial file that looks like a bundle.
    """
    path = Path(path)
    if path.exists() and not force:
        raise BundleError(f'{str(path)!r} already exists; choose another path or pass --force '
                          'to overwrite it.')
    if path.is_dir():
        raise BundleError(f'{str(path)!r} is a directory; give a file path ending in '
                          f'{BUNDLE_SUFFIX}.')
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        manifest_json = json.dumps(bundle.manifest.to_dict(), indent=1, allow_nan=False)
    except (TypeError, ValueError) as err:  # NaN/inf or a non-JSON type in provenance/metrics
        raise BundleError(f'Cannot write {str(path)!r}: the manifest is not plain JSON ({err}); '
                          'provenance and metrics must hold finite numbers, strings, lists '
                          'and dicts only.') from err
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST_MEMBER, manifest_json)
        archive.writestr(MODEL_MEMBER, bundle.model_bytes)
    fd, tmp = tempfile.mkstemp(prefix=path.name + '.', suffix='.partial', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(buffer.getvalue())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
