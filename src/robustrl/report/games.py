"""Figures of the games (Rethinking adversarial policies, Figures 2 and 5): exploitability curves,
drawn as PNG or SVG (by the file's suffix)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

_NAMES = {"sgda": "SGDA", "agda": "AGDA", "sibr": "SIBR", "aibr": "AIBR", "gamin": "GAMin"}


def plot_matrix_curves(result: dict[str, Any], path: Path | str) -> Path:
    """Figure 5: the victim's exploitability per iteration, one line per learner."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, entry in result["methods"].items():
        curve = np.asarray(entry["exploitability"])
        ax.plot(np.arange(len(curve)), curve, label=_NAMES.get(name, name), lw=1.2)
    ax.axhline(-result["robust_value"], color="k", ls=":", lw=0.8, label="min Expl")
    ax.set_xlabel("iteration")
    ax.set_ylabel("exploitability of x")
    ax.set_title(f"{result['game']} (eps_pi = {result['eps_pi']:g})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_training_curves(
    runs: dict[str, list[dict[str, Any]]], path: Path | str, *, minimum: float | None = None, title: str = ""
) -> Path:
    """Figure 2 in spirit: exploitability of the victim over iterations, mean over seeds with a
    min-max band, one line per method. ``runs[method]`` holds :func:`~robustrl.games.training.train_curve`
    results of several seeds."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, results in runs.items():
        steps = np.asarray(results[0]["steps"])
        curves = np.asarray([r["exploitability"] for r in results])
        line = ax.plot(steps, curves.mean(axis=0), label=method, lw=1.2)[0]
        ax.fill_between(steps, curves.min(axis=0), curves.max(axis=0), color=line.get_color(), alpha=0.2, lw=0)
    if minimum is not None:
        ax.axhline(minimum, color="k", ls=":", lw=0.8, label="min Expl (LP)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("exploitability of the victim")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
