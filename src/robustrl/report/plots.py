"""Plots (matplotlib, written to files; the Agg backend so they work without a display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

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
