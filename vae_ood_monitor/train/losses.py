"""β-VAE loss terms (torch); the per-dim KL matches :func:`vae_ood_monitor.core.kl_per_dim`."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

__all__ = ['gaussian_kl', 'guide_loss', 'kl_per_dim', 'vae_loss']


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent dim: 0.5 * (mu^2 + exp(lv) - lv - 1)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)


def gaussian_kl(mu_p: torch.Tensor, logvar_p: torch.Tensor, mu_q: torch.Tensor,
                logvar_q: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_p, var_p) || N(mu_q, var_q)) per dim, for diagonal Gaussians."""
    return 0.5 * (logvar_q - logvar_p
                  + (logvar_p.exp() + (mu_p - mu_q).pow(2)) / logvar_q.exp() - 1.0)


def vae_loss(recon: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (loss, reconstruction BCE, KL), each summed per image and averaged over the batch."""
    n = target.shape[0]
    bce = F.binary_cross_entropy(recon.float(), target, reduction='sum') / n
    kl = kl_per_dim(mu.float(), logvar.float()).sum() / n
    return bce + beta * kl, bce, kl


def guide_loss(mu: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of the first ``target.shape[1]`` latent dims against their targets.

    Their means learn ``target``, their log-variances 0 (the prior's unit variance), so that a
    guided dim's KL is ``0.5 * mu ** 2`` and says only how far the level is from 0: a posterior
    that narrows or widens with the scene would blur it (a free log-variance moved the KL the
    other way as the level rose). Summed over those dims, averaged over the batch (the guided
    dims of :class:`~vae_ood_monitor.train.trainer.TrainConfig`).
    """
    k = target.shape[1]
    return ((mu[:, :k].float() - target).pow(2) + logvar[:, :k].float().pow(2)).sum(dim=1).mean()
