"""PyTorch eager encoders behind the core ``Encoder`` protocol (parity tests, baselines)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vae_ood_monitor.train.export import bundle_from_encoder
from vae_ood_monitor.train.models import StatsEncoder
from vae_ood_monitor.train.runs import load_run

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from torch import nn

    from vae_ood_monitor.core.bundle import Bundle

__all__ = ['TorchEncoder', 'eager_bundle']


class TorchEncoder:
    """Run a torch encoder module in eager mode, fp32, on CPU: ``encode(batch) -> mu, logvar``."""

    runtime = 'pytorch-eager'

    def __init__(self, module: nn.Module, size_bytes: int = 0) -> None:
        self.module = module.eval().cpu()
        self._with_stats = StatsEncoder(self.module).eval()
        self.size_bytes = size_bytes

    @torch.inference_mode()
    def encode(self, batch: NDArray[np.float32]) -> tuple[NDArray[np.float32],
                                                          NDArray[np.float32]]:
        """Return (mu, logvar) as float32 numpy arrays."""
        mu, logvar = self.module(torch.from_numpy(np.ascontiguousarray(batch)))
        return mu.numpy(), logvar.numpy()

    @torch.inference_mode()
    def encode_with_stats(self, batch: NDArray[np.float32]) -> tuple[NDArray[np.float32], ...]:
        """Return (mu, logvar, stats) as the exported bundle computes them."""
        outputs = self._with_stats(torch.from_numpy(np.ascontiguousarray(batch)))
        return tuple(t.numpy() for t in outputs)


def eager_bundle(run: str | os.PathLike[str], threads: int = 1) -> tuple[Bundle, TorchEncoder]:
    """Return a bundle for a run plus its encoder in PyTorch eager mode (the paper's way)."""
    torch.set_num_threads(max(1, threads))
    info, model = load_run(run)
    bundle = bundle_from_encoder(model.encoder, info.spec, name=f'{Path(run).name} (eager)',
                                 provenance={'preset': info.preset, 'run': str(run)})
    size = sum(t.numel() * t.element_size() for t in model.encoder.state_dict().values())
    return bundle, TorchEncoder(model.encoder, size)
