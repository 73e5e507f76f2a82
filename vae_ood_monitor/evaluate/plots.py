"""Matplotlib figures for reports (headless Agg backend; PNG files)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use('Agg')

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from vae_ood_monitor.evaluate.spans import runs  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

__all__ = ['plot_histograms', 'plot_pareto', 'plot_roc', 'plot_timeline']


def plot_roc(id_scores: NDArray[np.float64], ood: Mapping[str, NDArray[np.float64]],
             aurocs: Mapping[str, float], path: Path, title: str = 'ROC per shift') -> Path:
    """One ROC curve per shift against the same in-distribution scores."""
    fig, ax = plt.subplots(figsize=(6, 5.5))
    for name, scores in ood.items():
        labels = np.r_[np.zeros(id_scores.size), np.ones(scores.size)]
        fpr, tpr, _ = roc_curve(labels, np.r_[id_scores, scores])
        ax.plot(fpr, tpr, label=f'{name} (AUROC {aurocs[name]:.3f})')
    ax.plot([0, 1], [0, 1], color='grey', linestyle=':', linewidth=1)
    ax.set(xlabel='false-positive rate (in-distribution frames)',
           ylabel='true-positive rate (OOD frames)', title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc='lower right', fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_histograms(id_scores: NDArray[np.float64], ood: Mapping[str, NDArray[np.float64]],
                    threshold: float, path: Path, xlabel: str = 'score',
                    log_x: bool = True) -> Path:
    """Score histograms, one panel per shift, in-distribution in grey, threshold dashed.

    ``log_x``: log-spaced bins on a log axis, for positive scores (others are drawn at its
    left edge); without it, even bins on a linear axis from the smallest to the largest finite
    value (for a value that is already a log, such as the per-frame evidence), infinities at
    the edges.
    """
    names = list(ood)
    cols = min(4, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    values = np.concatenate([id_scores] + [ood[n] for n in names])
    if log_x:
        positive = values[values > 0]
        lo = max(float(positive.min()) if positive.size else 1e-3, 1e-3)
        hi = max(float(positive.max()) if positive.size else 1.0, lo * 10)
        bins = np.geomspace(lo, hi, 50)
    else:
        finite = np.r_[values[np.isfinite(values)], threshold]
        lo, hi = float(finite.min()), float(finite.max())
        hi = max(hi, lo + 1.0)
        bins = np.linspace(lo, hi, 50)
    for ax, name in zip(axes.ravel(), names):
        ax.hist(np.clip(id_scores, lo, hi), bins=bins, color='grey', alpha=0.6, density=True,
                label='in-distribution')
        ax.hist(np.clip(ood[name], lo, hi), bins=bins, color='tab:red', alpha=0.5,
                density=True, label=name)
        ax.axvline(threshold, color='black', linestyle='--', linewidth=1, label='threshold')
        if log_x:
            ax.set_xscale('log')
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.axis('off')
    axes.ravel()[0].legend(fontsize=7)
    return _save(fig, path)


def plot_timeline(series: Mapping[str, NDArray[np.float64]], path: Path, *,
                  truth: NDArray[np.bool_] | None = None,
                  alarms: NDArray[np.bool_] | None = None,
                  thresholds: Mapping[str, float] | None = None, title: str = '',
                  log_panels: Sequence[str] = ()) -> Path:
    """Stacked panels sharing the frame axis; ground-truth OOD spans red, alarm spans orange."""
    names = list(series)
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 1.7 * len(names) + 0.6), sharex=True,
                             squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        values = np.asarray(series[name], np.float64)
        frames = np.arange(values.size)
        ax.plot(frames, values, linewidth=1)
        if thresholds and name in thresholds:
            ax.axhline(thresholds[name], color='black', linestyle='--', linewidth=0.8)
        for mask, colour in ((truth, 'tab:red'), (alarms, 'tab:orange')):
            if mask is not None:
                for start, stop in runs(mask):
                    ax.axvspan(start - 0.5, stop - 0.5, color=colour, alpha=0.15, linewidth=0)
        if name in log_panels:
            ax.set_yscale('log')
        ax.set_ylabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel('frame')
    if title:
        axes[0, 0].set_title(title + '  (red: OOD frames, orange: alarm)', fontsize=9)
    return _save(fig, path)


def plot_pareto(points: Sequence[dict[str, float | str]], path: Path,
                title: str = 'Latency vs detection') -> Path:
    """Scatter of median latency (x, log) against worst-shift AUROC; marker area ~ size.

    Each point: ``name``, ``latency_ms``, ``auroc``, ``size_mb`` and optional ``front`` (bool).
    """
    fig, ax = plt.subplots(figsize=(7, 5))
    sizes = np.array([float(p['size_mb']) for p in points])
    area = 30 + 400 * sizes / max(1e-9, sizes.max())
    for point, marker in zip(points, area):
        colour = 'tab:red' if point.get('front') else 'tab:blue'
        ax.scatter(float(point['latency_ms']), float(point['auroc']), s=marker, alpha=0.6,
                   color=colour, edgecolors='black', linewidths=0.5)
        ax.annotate(str(point['name']), (float(point['latency_ms']), float(point['auroc'])),
                    fontsize=7, xytext=(4, 4), textcoords='offset points')
    ax.set_xscale('log')
    ax.set(xlabel='median full-path latency per frame (ms, 1 thread, log scale)',
           ylabel='worst validation-shift AUROC', title=title + ' (red: Pareto front; area: '
           'model size)')
    ax.grid(alpha=0.3, which='both')
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
