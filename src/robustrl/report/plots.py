"""Plots (matplotlib, written to files; the Agg backend so they work without a display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from robustrl.report.table import _TITLES


def plot_eps_sweep(reports: list[dict[str, Any]], path: Path | str, title: str | None = None) -> Path:
    """Return versus eps, one line (mean, with a ±std band) per attack, from an eps sweep."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    eps = [r["eps"] for r in reports]
    names = [n for n in reports[0]["results"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in names:
        means = [r["results"].get(name, {}).get("mean", float("nan")) for r in reports]
        stds = [r["results"].get(name, {}).get("std", 0.0) for r in reports]
        label = _TITLES.get(name, name)
        line, = ax.plot(eps, means, marker="o", label=label, linestyle="--" if name == "natural" else "-")
        ax.fill_between(eps, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)], color=line.get_color(), alpha=0.15)
    first = reports[0]
    ax.set_xlabel(f"eps (l_{first['norm']}, {first['perturbation_space']})")
    ax.set_ylabel(f"return ({first['mode']}, {first['episodes']} episodes)")
    ax.set_title(title or f"{first['env_id']}: return versus attack radius")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_method_comparison(
    reports: dict[str, list[dict[str, Any]]],
    path: Path | str,
    paper: dict[str, tuple[float, float]] | None = None,
    title: str | None = None,
) -> Path:
    """Natural and worst-case return per method: bars at the mean over seeds, one dot per seed,
    and (if given) the paper's (natural, worst) as hollow diamonds: the BARPO paper's Tables 2-4
    in one picture. ``reports`` maps a method label to its per-seed robustness reports."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = [label for label, runs in reports.items() if runs]
    if not labels:
        raise ValueError("plot_method_comparison: no reports to plot")
    x = np.arange(len(labels))
    width = 0.38
    fig, ax = plt.subplots(figsize=(max(6.4, 1.3 * len(labels) + 2), 4.4))
    for offset, (key, name, color) in zip((-width / 2, width / 2), (("natural", "natural", "tab:blue"), ("worst", "worst case", "tab:red"))):
        # a report with no attack evaluated has no worst case: it adds a natural dot only
        per_seed = [
            [r["results"]["natural"]["mean"] if key == "natural" else r["worst"]["mean"] for r in reports[label] if key in r or key == "natural"]
            for label in labels
        ]
        means = [np.mean(v) if v else np.nan for v in per_seed]
        ax.bar(x + offset, means, width, color=color, alpha=0.55, label=f"{name} (mean over seeds)")
        for i, values in enumerate(per_seed):
            ax.scatter(np.full(len(values), x[i] + offset), values, color=color, s=14, zorder=3)
        if paper:
            known = [(i, paper[label][0 if key == "natural" else 1]) for i, label in enumerate(labels) if label in paper]
            if known:
                ax.scatter([x[i] + offset for i, _ in known], [v for _, v in known], marker="D", facecolors="none",
                           edgecolors="black", s=40, zorder=4, label="paper (median of 17)" if key == "natural" else None)
    first = reports[labels[0]][0]
    ax.set_xticks(x, labels)
    ax.set_ylabel(f"return ({first['mode']}, {first['episodes']} episodes)")
    ax.set_title(title or f"{first['env_id']}, eps {first['eps']:g}: natural and worst-case return")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_return_distributions(report: dict[str, Any], path: Path | str, title: str | None = None) -> Path:
    """Per-column return distributions of one robustness report: a box (quartiles, whiskers at
    1.5 IQR) and every episode as a dot, natural first, then each attack in the report's order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [n for n in report["returns"] if report["returns"][n]]
    if not names:
        raise ValueError("plot_return_distributions: the report holds no episode returns")
    data = [np.asarray(report["returns"][n], dtype=float) for n in names]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names) + 2), 4.2))
    ax.boxplot(data, showfliers=False, widths=0.55, medianprops={"color": "black"})
    jitter = np.random.default_rng(0)  # fixed: the same report always draws the same picture
    for i, values in enumerate(data, start=1):
        color = "tab:blue" if names[i - 1] == "natural" else "tab:red"
        ax.scatter(i + jitter.uniform(-0.15, 0.15, len(values)), values, s=12, alpha=0.6, color=color, zorder=3)
    ax.set_xticks(range(1, len(names) + 1), [_TITLES.get(n, n) for n in names])
    ax.set_ylabel(f"episode return ({report['mode']}, {len(data[0])} episodes)")
    ax.set_title(title or f"{report['env_id']}, eps {report['eps']:g} (l_{report['norm']}): return per episode", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_perturbation(trace: Any, path: Path | str, perturbation_space: str = "", title: str | None = None,
                      steps: int | None = 200) -> Path:
    """Benign versus perturbed observations over one episode, one panel per observation dimension
    (the pruning paper's Figures 12-13): which features an attack moves, and how far. ``trace`` is
    an :class:`~robustrl.evaluate.render.EpisodeTrace` recorded under the attack; both lines are
    in the policy's perturbation space, where eps is measured. ``steps``: show the first steps only
    (200 by default, so single steps stay visible; None: the whole episode); the panel titles give
    the largest change over the whole episode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean, perturbed = np.asarray(trace.observations), np.asarray(trace.perturbed)
    if clean.ndim != 2 or clean.shape != perturbed.shape or len(clean) == 0:
        raise ValueError("plot_perturbation: the trace holds no observations")
    largest = np.abs(perturbed - clean).max(0)
    if steps is not None:
        clean, perturbed = clean[:steps], perturbed[:steps]
    dims = clean.shape[1]
    columns = min(4, dims)
    rows = -(-dims // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 1.9 * rows + 0.6), sharex=True, squeeze=False)
    time = np.arange(len(clean))
    for d in range(rows * columns):
        ax = axes[d // columns][d % columns]
        if d >= dims:
            ax.axis("off")
            continue
        ax.plot(time, clean[:, d], color="tab:blue", lw=1.0, label="benign")
        ax.plot(time, perturbed[:, d], color="tab:red", lw=0.8, alpha=0.8, label="perturbed")
        ax.set_title(f"dim {d} (max |delta| {largest[d]:.2g})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    space = f" ({perturbation_space})" if perturbation_space else ""
    fig.suptitle(title or f"{trace.label}: observations over one episode{space}", fontsize=10)
    fig.supxlabel("step", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
