"""Loss terms of training: hand-computed values."""

from __future__ import annotations

import torch

from vae_ood_monitor.train.losses import guide_loss, kl_per_dim


def test_kl_per_dim_is_zero_at_the_prior_and_grows_with_mu() -> None:
    kl = kl_per_dim(torch.tensor([[0.0, 2.0]]), torch.tensor([[0.0, 0.0]]))
    assert kl.tolist() == [[0.0, 2.0]]


def test_guide_loss_counts_only_the_guided_dims() -> None:
    mu = torch.tensor([[1.0, 2.0, 5.0], [0.0, 1.0, -7.0]])
    logvar = torch.tensor([[0.5, 0.0, 9.0], [0.0, -1.0, 3.0]])
    target = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    # image 1: (1 - 0)^2 + 0.5^2 + (2 - 1)^2 + 0^2 = 2.25; image 2: 0 + 0 + 0 + 1 = 1
    assert guide_loss(mu, logvar, target).item() == 1.625
    # one guided dim: the third column never counts
    assert guide_loss(mu, logvar, target[:, :1]).item() == (1.25 + 0.0) / 2
