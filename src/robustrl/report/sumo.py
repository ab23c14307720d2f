"""Figures of the sumo experiments (Rethinking adversarial policies, Figures 1, 3, 4, 6, 7 in
spirit), as PNG or SVG by the file's suffix: stealth (feature distributions and distances),
attack curves (win and non-loss rate over training) and defence curves (score, gradient norm)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def read_progress(run_dir: Path | str) -> dict[str, np.ndarray]:
    """``progress.csv`` of a run as columns (empty cells -> NaN)."""
    with open(Path(run_dir) / "progress.csv") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, np.ndarray] = {}
    for name in rows[0] if rows else []:
        columns[name] = np.array([float(r[name]) if r.get(name) not in (None, "") else np.nan for r in rows])
    return columns


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Running mean over ``window`` iterations (NaNs skipped)."""
    out = np.full(len(values), np.nan)
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1) : i + 1]
        chunk = chunk[np.isfinite(chunk)]
        if len(chunk):
            out[i] = chunk.mean()
    return out


def plot_stealth(report: dict[str, Any], path: Path | str) -> Path:
    """Left: the mean of each compared (highest-variance) victim feature, no attack against each
    attack (Figure 1 in spirit). Right: W2, Gaussian KL and Hellinger per attack, W2's split-half
    baseline dashed (Figures 3, 7)."""
    path = Path(path)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    features = report["features"]
    x = np.arange(len(features))
    width = 0.8 / (1 + len(report["attacks"]))
    left.bar(x, report["reference"]["feature_means"], width, label="no attack", color="0.5")
    labels = []
    for i, entry in enumerate(report["attacks"].values(), start=1):
        label = f"eps_pi={entry['eps_pi']:g} (win {entry['win_rate']:.2f})"
        labels.append(label)
        left.bar(x + i * width, entry["feature_means"], width, label=label)
    left.set_xticks(x + width * len(report["attacks"]) / 2, [str(f) for f in features], fontsize=7)
    left.set_xlabel("victim observation feature (by variance)")
    left.set_ylabel("mean value")
    left.legend(fontsize=7)
    names = ("w2", "gaussian_kl", "gaussian_hellinger")
    entries = list(report["attacks"].values())
    xs = np.arange(len(entries))
    for j, name in enumerate(names):
        values = [e[name] for e in entries]
        right.bar(xs + j * 0.25, values, 0.25, label=name)
    right.plot(xs + 0.0, [e["w2_split_half"] for e in entries], "k_", ms=18, label="w2 split-half baseline")
    right.set_xticks(xs + 0.25, [f"eps_pi={e['eps_pi']:g}" for e in entries])
    right.set_yscale("log")
    right.set_title("shift of the victim's observations")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_attack_curves(runs: dict[str, Path | str], path: Path | str, window: int = 5) -> Path:
    """Figure 6 in spirit: the attacker's win rate and non-loss rate over its training steps, one
    line per run (label -> run directory), smoothed over ``window`` iterations."""
    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, run in runs.items():
        p = read_progress(run)
        for ax, column in zip(axes, ("win_rate", "non_loss_rate")):
            ax.plot(p["global_step"], smooth(p[column], window), label=label)
    for ax, title in zip(axes, ("attacker win rate", "attacker non-loss rate")):
        ax.set_xlabel("attacker training steps")
        ax.set_title(title)
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_defence_curves(runs: dict[str, Path | str], path: Path | str, window: int = 5) -> Path:
    """Figures 4a and 4b in spirit: the victim's score against the (partly controlled) training
    opponent and the norm of its policy gradient, per method."""
    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, run in runs.items():
        p = read_progress(run)
        axes[0].plot(p["global_step"], smooth(p["score"], window), label=label)
        axes[1].plot(p["global_step"], smooth(p["gradient_norm"], window), label=label)
    axes[0].set_title("victim score during defence (win 1, draw 1/2)")
    axes[1].set_title("victim policy-gradient norm")
    for ax in axes:
        ax.set_xlabel("joint env steps")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
