"""Quantisation-aware fine-tuning of a strided encoder before static int8 quantisation.

BatchNorm is folded into the convolutions, then the encoder is fine-tuned with simulated
quantisation: weights rounded to int8 per output channel (symmetric), activations to uint8
with ranges tracked by an exponential moving average, exactly the scheme ONNX Runtime's static
QDQ quantisation applies afterwards (which keeps the stem convolution, the one reading the
image, in float: so does the simulation unless ``float_stem`` is False). Gradients pass through
the rounding (straight-through estimator). The loss is distillation against the unquantised
teacher, so the encoder learns weights whose rounded version still reproduces the teacher's
latent posterior. The result is
an ordinary float encoder, exported and quantised like any other; whether QAT beats plain
post-training quantisation is measured, not assumed (``vae-ood compress`` reports both).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.train.models import Encoder

__all__ = ['FusedEncoder', 'QatEncoder', 'fuse']


class FusedEncoder(nn.Module):
    """An encoder whose BatchNorms are folded into its convolutions (same outputs, eval)."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        if encoder.spec.arch != 'strided':
            raise ConfigError('Quantisation-aware training supports the strided encoder family '
                              '(default preset and students), not the paper architecture.')
        self.spec = encoder.spec
        encoder = copy.deepcopy(encoder).eval()
        layers: list[nn.Module] = []
        modules = list(encoder.features)
        for index, module in enumerate(modules):
            if isinstance(module, nn.Conv2d):
                layers.append(fuse_conv_bn_eval(module, modules[index + 1]))
            elif isinstance(module, nn.ReLU):
                layers.append(nn.ReLU())
        self.features = nn.Sequential(*layers)
        self.dense = encoder.dense
        self.head = encoder.head

    def convs(self) -> list[nn.Conv2d]:
        """Return the fused convolutions, input to output."""
        return [m for m in self.features if isinstance(m, nn.Conv2d)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mu, logvar) like :class:`Encoder`."""
        return _heads(self, self.features(x))

    def latent(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) from the output of ``self.features``, like :meth:`Encoder.latent`."""
        return _heads(self, features)


def _heads(model: Any, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = model.head(model.dense(torch.flatten(features, 1)))
    d = model.spec.latent_dim
    mu, logvar = out[:, :d], out[:, d:]
    if model.spec.logvar_range is not None:
        logvar = logvar.clamp(*model.spec.logvar_range)
    return mu, logvar


def fuse(encoder: Encoder) -> FusedEncoder:
    """Fold BatchNorm into the convolutions of a strided encoder."""
    return FusedEncoder(encoder)


class _Range(nn.Module):
    """EMA of an activation tensor's min and max; fake-quantises to uint8 with them."""

    def __init__(self, momentum: float = 0.05) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer('low', torch.tensor(0.0))
        self.register_buffer('high', torch.tensor(0.0))
        self.register_buffer('seen', torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            low, high = x.detach().min().float(), x.detach().max().float()
            if not bool(self.seen):
                self.low.copy_(low)
                self.high.copy_(high)
                self.seen.fill_(True)
            else:
                self.low.lerp_(low, self.momentum)
                self.high.lerp_(high, self.momentum)
        low = torch.minimum(self.low, torch.zeros(()))
        high = torch.maximum(self.high, low + 1e-6)
        scale = float((high - low) / 255.0)
        zero_point = int(torch.clamp(torch.round(-low / scale), 0, 255))
        return torch.fake_quantize_per_tensor_affine(x.float(), scale, zero_point, 0, 255)


def _fake_weight(weight: torch.Tensor) -> torch.Tensor:
    scale = (weight.detach().abs().flatten(1).amax(1) / 127.0).clamp(min=1e-8)
    zero = torch.zeros(weight.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale.float(), zero, 0, -127, 127)


class QatEncoder(nn.Module):
    """A fused encoder that simulates int8 weights and uint8 activations while training."""

    def __init__(self, fused: FusedEncoder, float_stem: bool = True) -> None:
        super().__init__()
        self.fused = fused
        self.spec = fused.spec
        self.float_stem = float_stem
        self.ranges = nn.ModuleList(_Range() for _ in range(len(fused.convs()) + 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mu, logvar) as the quantised model would compute them."""
        h = x if self.float_stem else self.ranges[0](x)
        for number, conv in enumerate(self.fused.convs()):
            float_conv = number == 0 and self.float_stem
            weight = conv.weight if float_conv else _fake_weight(conv.weight)
            h = torch.nn.functional.conv2d(h, weight, conv.bias, conv.stride, conv.padding)
            h = self.ranges[number + 1](torch.relu(h))
        return _heads(self.fused, h)

    def export_module(self) -> FusedEncoder:
        """Return the float encoder with the fine-tuned weights (for ONNX export)."""
        return self.fused.eval()
