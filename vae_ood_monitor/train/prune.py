"""Structured pruning that physically removes convolution channels and dense units.

Masks leave a model exactly as slow as before; this module builds a *smaller* encoder and
copies the surviving weights into it, so ONNX Runtime runs fewer MACs. Channels are ranked by
importance (L1 norm of the filter times |BatchNorm gamma|, so BatchNorm rescaling is taken into
account), and kept counts are rounded to multiples of 8 so the pruned convolutions stay
SIMD-friendly. Works for both encoder families: the strided chain (the default preset and all
students) and the paper's conv + max-pool + dense stack.

For a plain chain like these, a dependency-graph library (e.g. torch-pruning) would add a
dependency without adding capability: every layer has exactly one consumer.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.train.distill import round_channels
from vae_ood_monitor.train.models import Encoder, EnsembleEncoder

__all__ = ['channel_importance', 'conv_blocks', 'prune_encoder']


def conv_blocks(encoder: Encoder) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """List the (convolution, batch norm) pairs of an encoder, input to output."""
    modules = list(encoder.features)
    return [(m, modules[i + 1]) for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)]


def _dense(encoder: Encoder) -> list[nn.Linear]:
    return [m for m in encoder.dense if isinstance(m, nn.Linear)]


def channel_importance(conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None) -> np.ndarray:
    """Rank output channels: L1 norm of each filter times the |gamma| of its BatchNorm."""
    weight = conv.weight.detach().abs().flatten(1).sum(1)
    if bn is not None:
        weight = weight * bn.weight.detach().abs()
    return weight.cpu().numpy()


def _keep(importance: np.ndarray, ratio: float, multiple: int) -> np.ndarray:
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f'pruning ratio {ratio!r} must be in [0, 1).')
    count = len(importance)
    target = min(count, round_channels(count * (1.0 - ratio), multiple)) if ratio else count
    return np.sort(np.argsort(-importance, kind='stable')[:target])


@torch.no_grad()
def prune_encoder(encoder: Encoder | EnsembleEncoder, conv_ratios: Sequence[float],
                  dense_ratios: Sequence[float] = (), multiple: int = 8
                  ) -> Encoder | EnsembleEncoder:
    """Return a new, physically smaller encoder with the least important channels removed.

    ``conv_ratios`` gives the fraction of output channels to remove per convolution (input to
    output); ``dense_ratios`` likewise for the hidden dense layers (paper architecture).
    Latent heads are never pruned. An ensemble's members are pruned one by one.
    """
    if isinstance(encoder, EnsembleEncoder):
        return EnsembleEncoder([prune_encoder(member, conv_ratios, dense_ratios, multiple)
                                for member in encoder.members]).train(encoder.training)
    blocks = conv_blocks(encoder)
    dense = _dense(encoder)
    if len(conv_ratios) != len(blocks) or len(dense_ratios) not in (0, len(dense)):
        raise ConfigError(f'Give one ratio per convolution ({len(blocks)}) and none or one per '
                          f'hidden dense layer ({len(dense)}).')
    keeps = [_keep(channel_importance(conv, bn), r, multiple)
             for (conv, bn), r in zip(blocks, conv_ratios)]
    dense_keeps = [_keep(layer.weight.detach().abs().sum(1).cpu().numpy(), r, multiple)
                   for layer, r in zip(dense, dense_ratios or [0.0] * len(dense))]
    spec = replace(encoder.spec, channels=tuple(len(k) for k in keeps),
                   hidden=tuple(len(k) for k in dense_keeps))
    pruned = Encoder(spec)
    previous = np.arange(3)
    for ((conv, bn), (new_conv, new_bn)), keep in zip(zip(blocks, conv_blocks(pruned)), keeps):
        new_conv.weight.copy_(conv.weight[keep][:, previous])
        if conv.bias is not None:
            new_conv.bias.copy_(conv.bias[keep])
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            getattr(new_bn, name).copy_(getattr(bn, name)[keep])
        new_bn.num_batches_tracked.copy_(bn.num_batches_tracked)
        previous = keep
    fh, fw = spec.feature_hw
    columns = (previous[:, None] * (fh * fw) + np.arange(fh * fw)[None, :]).ravel()
    for layer, new_layer, keep in zip(dense, _dense(pruned), dense_keeps):
        new_layer.weight.copy_(layer.weight[keep][:, columns])
        new_layer.bias.copy_(layer.bias[keep])
        columns = keep
    heads = ([encoder.head], [pruned.head]) if encoder.head is not None else (
        [encoder.mu, encoder.logvar], [pruned.mu, pruned.logvar])
    for head, new_head in zip(*heads):
        new_head.weight.copy_(head.weight[:, columns])
        new_head.bias.copy_(head.bias)
    return pruned.train(encoder.training)
