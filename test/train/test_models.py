"""Presets and architectures: shapes, parameter and MAC counts against the paper's figures."""

from __future__ import annotations

import pytest
import torch

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.train.export import count_macs, count_parameters
from vae_ood_monitor.train.models import EncoderSpec, get_preset, PRESETS, VAE


@pytest.mark.parametrize('name', sorted(PRESETS))
def test_presets_reconstruct_input_shape(name: str) -> None:
    preset = get_preset(name)
    model = VAE(preset.encoder, preset.decoder_width)
    x = torch.rand(2, preset.encoder.in_channels, *preset.encoder.input_hw)
    with torch.no_grad():
        recon, mu, logvar = model(x)
    assert recon.shape == x.shape
    assert mu.shape == logvar.shape == (2, preset.encoder.latent_dim)
    assert float(recon.min()) >= 0.0 and float(recon.max()) <= 1.0


def test_paper_preset_matches_the_paper() -> None:
    spec = get_preset('paper').encoder
    encoder = VAE(spec).encoder
    # the reference paper's encoder: about 8.8 M parameters and 1.2 GMAC per 3x224x224 frame
    assert 8.7e6 < count_parameters(encoder) < 8.95e6
    assert 1.1e9 < count_macs(encoder, spec.input_hw) < 1.25e9
    assert spec.feature_hw == (14, 14)
    assert isinstance(encoder.features[2], torch.nn.LeakyReLU)
    assert encoder.features[2].negative_slope == pytest.approx(0.1)


def test_default_preset_is_lean_and_4_3() -> None:
    spec = get_preset('default').encoder
    assert spec.input_hw[1] * 3 == spec.input_hw[0] * 4
    macs = count_macs(VAE(spec).encoder, spec.input_hw)
    assert 110e6 < macs < 135e6  # the preset's documented ~124 MMAC


def test_unknown_preset_and_bad_spec() -> None:
    with pytest.raises(ConfigError, match="Unknown preset 'huge'.*tiny"):
        get_preset('huge')
    with pytest.raises(ConfigError, match='too small'):
        EncoderSpec(input_hw=(8, 8), channels=(8, 8, 8, 8))
    with pytest.raises(ConfigError, match='arch'):
        EncoderSpec(arch='resnet')


def test_spec_round_trip() -> None:
    spec = get_preset('paper').encoder
    assert EncoderSpec.from_dict(spec.to_dict()) == spec
