"""β-VAE architectures and presets.

Two encoder families share one :class:`EncoderSpec`:

``strided``
    a plain chain of stride-2 k x k convolutions (BN + ReLU) and one linear layer producing mu
    and logvar. Lean, SIMD-friendly channel counts, int8-quantization friendly (ReLU fuses into
    QLinearConv). The ``default`` and ``tiny`` presets and all distillation students use it, so
    structured pruning only has to understand one shape.
``paper``
    the reference paper's encoder exactly: four blocks of conv 3x3 (pad 1, no bias) -> BN ->
    LeakyReLU(0.1) -> MaxPool 2 with 128, 64, 32, 16 channels, flatten, dense 2048 -> 1000 -> 250
    (LeakyReLU) and two 250 -> latent heads.

Decoders are only needed for training; they mirror the encoder and end in a sigmoid.

An ensemble (:class:`EnsembleVAE`, ``vae-ood train --members N``) runs several such encoders,
trained with different seeds on the same frames, side by side on the same input and
concatenates their (mu, logvar): to export, calibration and the runtime it is one encoder with
a wider latent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
import math
from typing import Any, Sequence

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.flow import FlowSpec

__all__ = ['PRESETS', 'STATS_BLOCKS', 'STATS_GRID', 'Decoder', 'Encoder', 'EncoderSpec',
           'EnsembleDecoder', 'EnsembleEncoder', 'EnsembleVAE', 'Preset', 'StatsEncoder', 'VAE',
           'ensemble_spec', 'get_preset']

ARCHS = ('strided', 'paper')


@dataclass(frozen=True)
class EncoderSpec:
    """Architecture of an encoder (and, mirrored, of its training decoder)."""

    arch: str = 'strided'
    input_hw: tuple[int, int] = (120, 160)
    channels: tuple[int, ...] = (32, 64, 128, 256)
    latent_dim: int = 30
    kernel: int = 4
    hidden: tuple[int, ...] = ()
    logvar_range: tuple[float, float] | None = None
    #: ``strided`` only: the stride of the first convolution (same kernel and padding as the
    #: other blocks), one number or (rows, columns). 4 evaluates a stride-2 stem at every other
    #: position: the first block still sees every input pixel (a 4x4 kernel at stride 4 tiles
    #: the image), at a quarter of the cost, where halving the input would blur fine detail
    #: (noise, rain streaks) away before any layer sees it. (2, 4) keeps every other column
    #: only, at half the cost: the first block's statistics then come from twice the positions,
    #: and the next block takes every other row of it. Encoder only (distilled students).
    stem_stride: int | tuple[int, int] = 2
    #: Input planes: 3 for colour frames, the flow stack's channels for a flow encoder.
    in_channels: int = 3

    def __post_init__(self) -> None:
        if (isinstance(self.in_channels, bool) or not isinstance(self.in_channels, int)
                or self.in_channels < 1):
            raise ConfigError(f'in_channels {self.in_channels!r} must be a positive integer.')
        if self.logvar_range is not None:
            low, high = (float(v) for v in self.logvar_range)
            if not low < high:
                raise ConfigError(f'logvar_range {self.logvar_range!r} must be (low, high), '
                                  'low < high.')
            object.__setattr__(self, 'logvar_range', (low, high))
        object.__setattr__(self, 'input_hw', tuple(int(v) for v in self.input_hw))
        object.__setattr__(self, 'channels', tuple(int(c) for c in self.channels))
        object.__setattr__(self, 'hidden', tuple(int(h) for h in self.hidden))
        if self.arch not in ARCHS:
            raise ConfigError(f'arch {self.arch!r} must be one of {ARCHS}.')
        if not self.channels or min(self.channels) < 1 or self.latent_dim < 1:
            raise ConfigError(f'channels {self.channels!r} and latent_dim {self.latent_dim!r} '
                              'must be positive.')
        stride = self.stem_stride
        pair = tuple(stride) if isinstance(stride, (list, tuple)) else (stride, stride)
        if (len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 2
                                  for v in pair) or pair[1] % pair[0]
                or (pair != (2, 2) and self.arch != 'strided')):
            raise ConfigError(f'stem_stride {stride!r} must be an integer >= 2 or (rows, columns) '
                              'with columns a multiple of rows (other than 2 only for the '
                              "'strided' arch).")
        object.__setattr__(self, 'stem_stride', pair[0] if pair[0] == pair[1] else pair)
        if min(self.input_hw) < 2 ** (len(self.channels) - 1) * max(pair):
            raise ConfigError(f'input {self.input_hw!r} is too small for {len(self.channels)} '
                              'strided stages.')

    @property
    def feature_hw(self) -> tuple[int, int]:
        """Spatial size of the last feature map."""
        h, w = self.input_hw
        for stage, _ in enumerate(self.channels):
            if self.arch == 'strided':
                pad = (self.kernel - 1) // 2
                rows, cols = self.stem_strides if stage == 0 else (2, 2)
                h = (h + 2 * pad - self.kernel) // rows + 1
                w = (w + 2 * pad - self.kernel) // cols + 1
                if rows != cols:  # every (cols / rows)-th row goes on
                    h = -(-h // (cols // rows))
            else:
                h, w = h // 2, w // 2
        return h, w

    @property
    def stem_strides(self) -> tuple[int, int]:
        """The stem's (rows, columns) stride."""
        stride = self.stem_stride
        return tuple(stride) if isinstance(stride, tuple) else (stride, stride)  # type: ignore

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form."""
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        for key, default in (('stem_stride', 2), ('in_channels', 3)):
            if data[key] == default:  # written only when used: older readers know every key
                del data[key]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderSpec:
        """Build from :meth:`to_dict` output."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class Preset:
    """A named architecture plus training defaults."""

    name: str
    encoder: EncoderSpec
    beta: float = 1.4
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    decoder_width: float = 1.0
    notes: str = ''
    extra: dict[str, Any] = field(default_factory=dict)
    #: A flow preset's input (:mod:`~vae_ood_monitor.core.flow`); None for frame presets.
    flow: FlowSpec | None = None

    def __post_init__(self) -> None:
        wanted = self.flow.channels if self.flow is not None else 3
        if self.encoder.in_channels != wanted:  # the stack decides the encoder's input planes
            object.__setattr__(self, 'encoder', replace(self.encoder, in_channels=wanted))


PRESETS: dict[str, Preset] = {
    'tiny': Preset('tiny', EncoderSpec('strided', (30, 40), (8, 16), latent_dim=8),
                   epochs=2, batch_size=16, lr=2e-3, notes='for tests: trains in seconds'),
    'default': Preset('default', EncoderSpec('strided', (120, 160), (32, 64, 128, 256), 30),
                      epochs=12, batch_size=32, lr=1e-3, decoder_width=0.5,
                      notes='lean 4:3 encoder, ~124 MMAC; trains on 2 CPU cores in minutes'),
    'paper': Preset('paper', EncoderSpec('paper', (224, 224), (128, 64, 32, 16), 30, kernel=3,
                                         hidden=(2048, 1000, 250)),
                    epochs=20, batch_size=32, lr=1e-4,
                    notes='the reference paper architecture: ~8.8 M encoder params, ~1.2 GMAC'),
    'flow': Preset('flow', EncoderSpec('strided', (60, 80), (32, 64, 128, 256), 30),
                   epochs=12, batch_size=32, lr=1e-3, decoder_width=0.5, flow=FlowSpec(),
                   notes='optical-flow VAE: 6 horizontal Farneback fields at 80x60'),
    'flow-tiny': Preset('flow-tiny', EncoderSpec('strided', (30, 40), (8, 16), latent_dim=8),
                        epochs=2, batch_size=16, lr=2e-3, flow=FlowSpec(stack=3),
                        notes='for tests: a 3-field flow VAE that trains in seconds'),
}


def get_preset(name: str, **overrides: Any) -> Preset:
    """Return a preset by name, optionally with some fields replaced.

    ``flow`` may replace a flow preset's :class:`FlowSpec`; the encoder's input planes follow.
    """
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ConfigError(f'Unknown preset {name!r}; choose one of: '
                          f'{", ".join(PRESETS)}.') from None
    return replace(preset, **overrides) if overrides else preset


class RowSubsample(nn.Module):
    """Keep every ``step``-th row of a (N, C, H, W) map.

    It follows a stem strided less down than across: the next blocks then see the same stride
    both ways.
    """

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x[:, :, ::step]``."""
        return x[:, :, ::self.step]


class Encoder(nn.Module):
    """Image (N, C, H, W) in [0, 1] -> (mu, logvar), each (N, latent_dim); C = spec.in_channels."""

    def __init__(self, spec: EncoderSpec) -> None:
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = []
        cin = spec.in_channels
        for stage, cout in enumerate(spec.channels):
            if spec.arch == 'strided':
                pad = (spec.kernel - 1) // 2
                stride = spec.stem_strides if stage == 0 else (2, 2)
                layers += [nn.Conv2d(cin, cout, spec.kernel, stride, pad, bias=False),
                           nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                if stride[0] != stride[1]:
                    layers.append(RowSubsample(stride[1] // stride[0]))
            else:
                layers += [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
                           nn.LeakyReLU(0.1, inplace=True), nn.MaxPool2d(2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        fh, fw = spec.feature_hw
        width = cin * fh * fw
        dense: list[nn.Module] = []
        for units in spec.hidden:
            dense += [nn.Linear(width, units), nn.LeakyReLU(0.1, inplace=True)]
            width = units
        self.dense = nn.Sequential(*dense)
        if spec.arch == 'paper':
            self.mu = nn.Linear(width, spec.latent_dim)
            self.logvar = nn.Linear(width, spec.latent_dim)
            self.head = None
        else:
            self.head = nn.Linear(width, 2 * spec.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mu, logvar); logvar clipped to ``spec.logvar_range`` when it is set."""
        return self.latent(self.features(x))

    def latent(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) from the output of ``self.features`` (the dense layers and heads)."""
        h = self.dense(torch.flatten(features, 1))
        if self.head is None:
            mu, logvar = self.mu(h), self.logvar(h)
        else:
            out = self.head(h)
            d = self.spec.latent_dim
            mu, logvar = out[:, :d], out[:, d:]
        if self.spec.logvar_range is not None:
            logvar = logvar.clamp(*self.spec.logvar_range)
        return mu, logvar


class Decoder(nn.Module):
    """Latent (N, latent_dim) -> image (N, C, H, W) in (0, 1), mirroring the encoder."""

    def __init__(self, spec: EncoderSpec, width: float = 1.0) -> None:
        super().__init__()
        if spec.stem_stride != 2:
            raise ConfigError(f'stem_stride {spec.stem_stride} is for distilled encoders; a '
                              'VAE decoder mirrors stride-2 stages only.')
        self.spec = spec
        channels = [max(4, int(round(c * width))) for c in reversed(spec.channels)]
        stages = len(channels)
        self.h0 = math.ceil(spec.input_hw[0] / 2 ** stages)
        self.w0 = math.ceil(spec.input_hw[1] / 2 ** stages)
        dense: list[nn.Module] = []
        width_in = spec.latent_dim
        for units in reversed(spec.hidden):
            dense += [nn.Linear(width_in, units), nn.LeakyReLU(0.1, inplace=True)]
            width_in = units
        dense += [nn.Linear(width_in, channels[0] * self.h0 * self.w0)]
        self.dense = nn.Sequential(*dense)
        self.c0 = channels[0]
        layers: list[nn.Module] = []
        if spec.arch == 'strided':
            for cin, cout in zip(channels, channels[1:] + [channels[-1]]):
                layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
                           nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            layers += [nn.Conv2d(channels[-1], spec.in_channels, 3, 1, 1)]
        else:  # the paper's encoder mirrored: its last block maps 128 channels back to RGB
            stages = list(zip(channels, channels[1:] + [spec.in_channels]))
            for number, (cin, cout) in enumerate(stages):
                last = number == len(stages) - 1
                layers += [nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 3, 1, 1, bias=last)]
                if not last:
                    layers += [nn.BatchNorm2d(cout), nn.LeakyReLU(0.1, inplace=True)]
        self.features = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Return logits-free reconstructions in (0, 1), cropped to the input size."""
        h = self.dense(z).view(-1, self.c0, self.h0, self.w0)
        if self.spec.arch == 'strided':
            h = F.relu(h)
        out = self.features(h)
        height, width = self.spec.input_hw
        top = (out.shape[2] - height) // 2
        left = (out.shape[3] - width) // 2
        return torch.sigmoid(out[:, :, top:top + height, left:left + width])


class VAE(nn.Module):
    """Encoder + decoder with the reparameterisation trick."""

    def __init__(self, spec: EncoderSpec, decoder_width: float = 1.0) -> None:
        super().__init__()
        self.spec = spec
        self.encoder = Encoder(spec)
        self.decoder = Decoder(spec, decoder_width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (reconstruction, mu, logvar)."""
        mu, logvar = self.encoder(x)
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        else:
            z = mu
        return self.decoder(z), mu, logvar


def ensemble_spec(specs: Sequence[EncoderSpec]) -> EncoderSpec:
    """Return the spec an ensemble of ``specs`` presents: the first member's, latents summed.

    Students distilled from an ensemble take their architecture from it (one member's shape,
    the ensemble's latent). Members must see the same input and clip logvar alike.
    """
    specs = list(specs)
    if not specs:
        raise ConfigError('An ensemble needs at least one member.')
    first = specs[0]
    for number, spec in enumerate(specs[1:], 1):
        if spec.input_hw != first.input_hw or spec.logvar_range != first.logvar_range:
            raise ConfigError(
                f'Ensemble member {number} takes input {spec.input_hw!r} with logvar range '
                f'{spec.logvar_range!r}, member 0 {first.input_hw!r} and '
                f'{first.logvar_range!r}; train every member with the same preset.')
    return replace(first, latent_dim=sum(spec.latent_dim for spec in specs))


class EnsembleEncoder(nn.Module):
    """Several encoders on the same image; (mu, logvar) concatenated in member order."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.spec = ensemble_spec([member.spec for member in members])
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mu, logvar), each (N, sum of the members' latent sizes)."""
        outputs = [member(x) for member in self.members]
        return (torch.cat([mu for mu, _ in outputs], 1),
                torch.cat([logvar for _, logvar in outputs], 1))


#: Activation modules that end a convolution block (where activation statistics are taken).
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU)
#: Convolution blocks whose activation statistics an exported encoder adds by default.
STATS_BLOCKS = 1
#: ... over a STATS_GRID x STATS_GRID grid of image regions.
STATS_GRID = 2


def _cells(size: int, parts: int) -> list[tuple[int, int]]:
    bounds = [round(i * size / parts) for i in range(parts + 1)]
    return [(bounds[i], max(bounds[i + 1], bounds[i] + 1)) for i in range(parts)]


class StatsEncoder(nn.Module):
    """An encoder that also returns its activation statistics: ``x -> (mu, logvar, stats)``.

    ``stats`` holds, for each of the first ``blocks`` convolution blocks and each cell of a
    ``grid`` x ``grid`` partition of the image, the mean and the standard deviation of every
    channel over the cell (cell by cell, each as ``[means, stds]``; an ensemble concatenates its
    members'). They are what the generic score of a bundle measures
    (:mod:`vae_ood_monitor.core.density`): the first block responds to colour, texture,
    sharpness and noise, region by region, which the latent code is trained to ignore. Works
    for any encoder with a ``features`` chain and a ``latent(features)`` method, and for
    ensembles of them.
    """

    def __init__(self, encoder: nn.Module, blocks: int = STATS_BLOCKS,
                 grid: int = STATS_GRID) -> None:
        super().__init__()
        for name, value in (('blocks', blocks), ('grid', grid)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f'stats {name} {value!r} must be a positive integer.')
        self.encoder = encoder
        self.spec = encoder.spec
        self.blocks, self.grid = blocks, grid
        members = encoder.members if isinstance(encoder, EnsembleEncoder) else [encoder]
        for member in members:
            count = sum(isinstance(m, _ACTIVATIONS) for m in member.features)
            if count < blocks:
                raise ConfigError(f'The encoder has {count} convolution blocks; activation '
                                  f'statistics of {blocks} were asked for.')
        self.members = list(members)

    def _member(self, member: nn.Module, x: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        stats: list[torch.Tensor] = []
        h, seen = x, 0
        for module in member.features:
            h = module(h)
            if isinstance(module, _ACTIVATIONS) and seen < self.blocks:
                seen += 1
                stats.append(self._cell_stats(h))
        mu, logvar = member.latent(h)
        return mu, logvar, stats

    def _cell_stats(self, h: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) activations -> (N, grid * grid * 2C): per cell, [means, stds]."""
        grid = self.grid
        if h.shape[2] % grid == 0 and h.shape[3] % grid == 0:
            # equal cells: one average pool over [h, h^2] exports as a handful of ONNX nodes
            # (a slice and two reductions per cell made the stats cost more than the convs of
            # a small student)
            channels = h.shape[1]
            pooled = F.avg_pool2d(torch.cat([h, h * h], 1),
                                  (h.shape[2] // grid, h.shape[3] // grid))
            mean, square = pooled[:, :channels], pooled[:, channels:]
            std = torch.sqrt(torch.clamp(square - mean * mean, min=0.0))
            return torch.stack([mean, std], 1).permute(0, 3, 4, 1, 2).flatten(1)
        parts = []
        for top, bottom in _cells(h.shape[2], grid):
            for left, right in _cells(h.shape[3], grid):
                cell = h[:, :, top:bottom, left:right]
                mean = cell.mean(dim=(2, 3))
                square = (cell * cell).mean(dim=(2, 3))
                parts += [mean, torch.sqrt(torch.clamp(square - mean * mean, min=0.0))]
        return torch.cat(parts, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (mu, logvar, stats) for a batch (N, 3, H, W)."""
        outputs = [self._member(member, x) for member in self.members]
        return (torch.cat([mu for mu, _, _ in outputs], 1),
                torch.cat([logvar for _, logvar, _ in outputs], 1),
                torch.cat([s for _, _, stats in outputs for s in stats], 1))

    def stats_dim(self) -> int:
        """Width of the stats output."""
        total = 0
        for member in self.members:
            channels = [m.out_channels for m in member.features if isinstance(m, nn.Conv2d)]
            total += 2 * self.grid * self.grid * sum(channels[:self.blocks])
        return total


class EnsembleDecoder(nn.Module):
    """Each member decodes its slice of the latent; the reconstruction is their mean."""

    def __init__(self, members: Sequence[Decoder]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.sizes = [member.spec.latent_dim for member in members]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Return the members' mean reconstruction."""
        parts = torch.split(z, self.sizes, dim=1)
        return torch.stack([m(part) for m, part in zip(self.members, parts)]).mean(0)


class EnsembleVAE(nn.Module):
    """Trained VAEs used together: ``encoder`` and ``decoder`` as :class:`VAE` has them."""

    def __init__(self, members: Sequence[VAE]) -> None:
        super().__init__()
        self.encoder = EnsembleEncoder([member.encoder for member in members])
        self.decoder = EnsembleDecoder([member.decoder for member in members])
        self.spec = self.encoder.spec

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (reconstruction, mu, logvar) with the posterior means decoded."""
        mu, logvar = self.encoder(x)
        return self.decoder(mu), mu, logvar
