"""Seed ensembles: N models trained with seeds seed, seed + 1, ... into one run folder.

``vae-ood train --members N``: each member keeps its own epoch; exported they are one encoder
whose latent concatenates the members' (see :mod:`~vae_ood_monitor.train.runs`).
"""

from __future__ import annotations

from dataclasses import replace
import os
from pathlib import Path
from typing import Callable, TYPE_CHECKING

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.train.runs import (ENSEMBLE_FILE, load_run, member_folders, prepare_out,
                                        run_state, RunInfo, versions, write_json)
from vae_ood_monitor.train.runtime import choose_device, init_distributed
from vae_ood_monitor.train.trainer import train, TrainConfig

if TYPE_CHECKING:
    from vae_ood_monitor.data.dataset import FrameArray

__all__ = ['train_ensemble']


def train_ensemble(data: FrameArray, out: str | os.PathLike[str],
                   config: TrainConfig | None = None, members: int = 3, *,
                   resume: bool = False, force: bool = False, progress: bool = True,
                   log: Callable[[str], None] = print) -> RunInfo:
    """Train ``members`` β-VAEs with seeds ``config.seed + k`` on ``data`` into ``out``.

    One member trains exactly like :func:`train` (no ensemble folder). With ``resume``, members
    that finished are kept, an interrupted one continues from its checkpoint and the rest are
    trained.
    """
    config = config or TrainConfig()
    if not isinstance(members, int) or isinstance(members, bool) or members < 1:
        raise ConfigError(f'members {members!r} must be a positive integer.')
    if members == 1:
        return train(data, out, config, resume=resume, force=force, progress=progress)
    out = Path(out)
    dist_info = init_distributed(choose_device(config.device))
    main = dist_info.main
    names = [f'member-{k}' for k in range(members)]
    prepare_out(out, resume, force, dist_info, resume_file=ENSEMBLE_FILE)
    if resume and (found := member_folders(out)) != names:
        raise ConfigError(f'{str(out)!r} holds an ensemble of {len(found)} members, not '
                          f'{members}; resume it with the same --members.')
    meta = {'members': names, 'seeds': [config.seed + k for k in range(members)],
            'preset': config.preset, 'config': config.resolved(), 'versions': versions(),
            'complete': False}
    if main:
        write_json(meta, out / ENSEMBLE_FILE)
    for number, name in enumerate(names):
        folder = out / name
        member = replace(config, seed=config.seed + number)
        state = run_state(folder)
        if state == 'complete':
            if main:
                log(f'member {number + 1}/{members} (seed {member.seed}): already trained')
            continue
        if main:  # under torchrun only rank 0 reports
            log(f'member {number + 1}/{members} (seed {member.seed})')
        train(data, folder, member, resume=state == 'partial', force=True, progress=progress)
    if main:
        write_json({**meta, 'complete': True}, out / ENSEMBLE_FILE)
    return load_run(out)[0]
