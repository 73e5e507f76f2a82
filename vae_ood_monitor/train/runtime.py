"""Torch runtime set-up shared by training and distillation: threads, device, DDP, precision."""

from __future__ import annotations

from dataclasses import dataclass
import os
import random

import numpy as np
import torch
import torch.distributed as dist

from vae_ood_monitor.core.errors import ConfigError

__all__ = ['DistInfo', 'amp_dtype', 'autocast', 'choose_device', 'images_tensor',
           'init_distributed', 'seed_everything', 'set_threads']


@dataclass(frozen=True)
class DistInfo:
    """Rank and world size (1 process when not started by torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes files and shows progress."""
        return self.rank == 0


def choose_device(name: str = 'auto') -> torch.device:
    """'auto' picks CUDA when available, else CPU; 'cuda' without a GPU is an error."""
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise ConfigError(f'device {name!r} requested but torch sees no CUDA GPU; use --device '
                          'cpu (this torch build may be the CPU wheel).')
    if name != 'cpu' and not name.startswith('cuda'):
        raise ConfigError(f"device {name!r} must be 'auto', 'cpu' or 'cuda[:N]'.")
    return torch.device(name)


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when started by torchrun (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return DistInfo()
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if not dist.is_initialized():
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    if device.type == 'cuda':
        torch.cuda.set_device(local_rank)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def set_threads(threads: int | None, world: int) -> None:
    """Use ``threads`` intra-op threads, or split the machine's cores between ranks."""
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // world)
    torch.set_num_threads(threads)


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: 'auto' = bf16 where the CPU/GPU supports it fast, 'bf16', or 'off'."""
    if mode not in ('auto', 'bf16', 'off'):
        raise ConfigError(f"amp {mode!r} must be 'auto', 'bf16' or 'off'.")
    if mode == 'off':
        return None
    if device.type == 'cuda':
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if mode == 'bf16' or supported:
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Return an autocast context (disabled when ``dtype`` is None)."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def images_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """Turn (N, H, W, 3) uint8 frames into the encoder's (N, 3, H, W) input in [0, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return tensor.permute(0, 3, 1, 2).float().div_(255.0).contiguous(
        memory_format=torch.channels_last)
