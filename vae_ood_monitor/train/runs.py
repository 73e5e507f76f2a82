"""Training run folders: what they hold, reading them back, writing them safely.

A training run is a directory::

    RUN/run.json        preset, architecture, config, data summary, loss history, versions;
                        ``complete`` turns true only when training finished
    RUN/checkpoint.pt   latest epoch: model + optimizer state + RNG state (resume)
    RUN/best.pt         weights of the epoch kept so far (see :mod:`.selection`)
    RUN/model.pt        the kept epoch's weights (written last)

An ensemble run (:func:`~vae_ood_monitor.train.ensemble.train_ensemble`) holds one such run per
member::

    RUN/ensemble.json   member folders, seeds, settings; ``complete`` as above
    RUN/member-K/       a training run as above

:func:`load_run` reads both kinds; an ensemble comes back as one model whose encoder
concatenates the members' (mu, logvar) (:class:`~vae_ood_monitor.train.models.EnsembleVAE`).

``.pt`` files hold plain state dicts of tensors and numbers, written with ``torch.save`` and
read back with ``torch.load(weights_only=True)``: never pickled modules or classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import platform
import shutil
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from vae_ood_monitor import __version__
from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.flow import FlowSpec
from vae_ood_monitor.train.models import EncoderSpec, ensemble_spec, EnsembleVAE, VAE
from vae_ood_monitor.train.runtime import DistInfo

__all__ = ['BEST_FILE', 'CHECKPOINT_FILE', 'ENSEMBLE_FILE', 'MODEL_FILE', 'RUN_FILE', 'RunInfo',
           'load_run', 'member_folders', 'prepare_out', 'run_state', 'save_state', 'versions',
           'write_json']

RUN_FILE = 'run.json'
CHECKPOINT_FILE = 'checkpoint.pt'
MODEL_FILE = 'model.pt'
BEST_FILE = 'best.pt'
ENSEMBLE_FILE = 'ensemble.json'


@dataclass(frozen=True)
class RunInfo:
    """What ``run.json`` says about a training run."""

    path: Path
    preset: str
    spec: EncoderSpec
    decoder_width: float
    config: dict[str, Any]
    data: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    complete: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: Which epoch's weights model.pt holds and why (empty for runs of older versions).
    selection: dict[str, Any] = field(default_factory=dict)
    #: The flow input of a flow preset's run (None: colour frames).
    flow: FlowSpec | None = None


def versions() -> dict[str, str]:
    """Versions of the software that produced an artifact (provenance)."""
    import onnxruntime
    return {'vae_ood_monitor': __version__, 'torch': torch.__version__,
            'onnxruntime': onnxruntime.__version__, 'numpy': np.__version__,
            'python': platform.python_version()}


def save_state(state: dict[str, Any], path: Path) -> None:
    """torch.save to a temporary file, then rename (no half-written checkpoints)."""
    tmp = path.with_name(path.name + '.partial')
    torch.save(state, tmp)
    os.replace(tmp, path)


def write_json(data: dict[str, Any], path: Path) -> None:
    """Write JSON to a temporary file, then rename (never half-written)."""
    tmp = path.with_name(path.name + '.partial')
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def load_run(path: str | os.PathLike[str], *, require_complete: bool = True
             ) -> tuple[RunInfo, VAE | EnsembleVAE]:
    """Read a run directory (or an ensemble of them) and its weights.

    Weights are read with ``weights_only``: never unpickles objects.
    """
    path = Path(path)
    if (path / ENSEMBLE_FILE).is_file():
        return _load_ensemble(path, require_complete)
    meta_path = path / RUN_FILE
    if not meta_path.is_file():
        raise ConfigError(f'{str(path)!r} is not a training run (no {RUN_FILE} or '
                          f'{ENSEMBLE_FILE}); pass the directory given to `vae-ood train --out`.')
    try:
        meta = json.loads(meta_path.read_text())
        info = RunInfo(path, meta['preset'], EncoderSpec.from_dict(meta['encoder']),
                       float(meta['decoder_width']), meta['config'], meta.get('data', {}),
                       meta.get('history', []), bool(meta.get('complete')),
                       meta.get('extra', {}), dict(meta.get('selection') or {}),
                       FlowSpec.from_dict(meta['flow']) if meta.get('flow') else None)
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f'{str(meta_path)!r} is malformed ({err}); re-run training.') from err
    weights = path / (MODEL_FILE if info.complete else CHECKPOINT_FILE)
    if require_complete and not info.complete:
        raise ConfigError(f'Training in {str(path)!r} did not finish; resume it with '
                          f'`vae-ood train ... --out {path} --resume`.')
    if not weights.is_file():
        raise ConfigError(f'{str(weights)!r} is missing; re-run training.')
    state = torch.load(weights, map_location='cpu', weights_only=True)
    model = VAE(info.spec, info.decoder_width)
    model.load_state_dict(state['model'] if 'optimizer' in state else state)
    return info, model.eval()


def member_folders(path: Path) -> list[str]:
    """Return the member folders ensemble.json lists (plain names inside ``path`` only)."""
    meta_path = path / ENSEMBLE_FILE
    try:
        meta = json.loads(meta_path.read_text())
        names = meta['members']
        if not isinstance(names, list) or not names or not all(
                isinstance(n, str) and n and Path(n).name == n and n not in ('.', '..')
                for n in names):
            raise ValueError(f'members {names!r} must be a non-empty list of folder names')
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f'{str(meta_path)!r} is malformed ({err}); re-run training.') from err
    return names


def _load_ensemble(path: Path, require_complete: bool) -> tuple[RunInfo, EnsembleVAE]:
    loaded = [load_run(path / name, require_complete=require_complete)
              for name in member_folders(path)]
    infos = [info for info, _ in loaded]
    first = infos[0]
    for info in infos[1:]:
        if info.preset != first.preset or info.spec != first.spec:
            raise ConfigError(f'Ensemble member {str(info.path)!r} is a {info.preset!r} run, '
                              f'{str(first.path)!r} a {first.preset!r} run with another '
                              'architecture; train every member with the same preset.')
    members = [{'run': info.path.name, 'seed': info.config.get('seed'),
                'epochs': len(info.history), 'selection': info.selection,
                'history_last': info.history[-1] if info.history else {}} for info in infos]
    selection = {'rule': first.selection.get('rule'), 'members': [
        {'seed': m['seed'], 'epochs': m['epochs'], **m['selection']} for m in members]}
    info = RunInfo(path, first.preset, ensemble_spec([i.spec for i in infos]),
                   first.decoder_width, {**first.config, 'members': len(infos),
                                         'seeds': [m['seed'] for m in members]},
                   first.data, [], all(i.complete for i in infos), {'members': members},
                   selection, first.flow)
    return info, EnsembleVAE([model for _, model in loaded]).eval()


def run_state(folder: Path) -> str:
    """Return 'complete', 'partial' (a checkpoint to resume from) or 'none'."""
    try:
        complete = json.loads((folder / RUN_FILE).read_text()).get('complete')
    except (OSError, ValueError, AttributeError):
        complete = False
    if complete and (folder / MODEL_FILE).is_file():
        return 'complete'
    return 'partial' if (folder / CHECKPOINT_FILE).is_file() else 'none'


def prepare_out(out: Path, resume: bool, force: bool, dist_info: DistInfo, *,
                resume_file: str = CHECKPOINT_FILE) -> None:
    """Make ``out`` ready: checked for a resume, emptied with ``force``, created."""
    if resume:
        if not (out / resume_file).is_file():
            raise ConfigError(f'Cannot resume: {str(out / resume_file)!r} does not exist.')
        return
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ConfigError(f'Output {str(out)!r} exists; choose a new --out, pass --resume '
                              'to continue it, or --force to overwrite.')
        if dist_info.main:
            shutil.rmtree(out)
    if dist_info.world > 1:
        dist.barrier()
    if dist_info.main:
        out.mkdir(parents=True, exist_ok=True)
