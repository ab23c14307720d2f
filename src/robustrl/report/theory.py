"""Value landscapes of a two-parameter policy slice (BARPO paper, Figures 1, 3 and 4 in spirit):
the objective over (alpha, beta) as a colour map with contour lines, the robust region hatched,
the first-order stationary points marked, and gradient-ascent paths drawn. PNG or SVG by suffix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from robustrl.theory.landscape import PolicySlice, ascend, landscape_grid

_TITLES = {
    "spo": "SPO: V^pi(mu0)",
    "arpo": "ARPO: V^(pi o nu*(pi))(mu0)",
    "barpo": "BARPO: V^(pi o nu_KL(pi))(mu0)",
}
_KEYS = {"spo": "value", "arpo": "adversarial_value", "barpo": "barpo_value"}


def landscape_figure(
    plane: PolicySlice,
    objectives: list[str],
    path: Path,
    *,
    resolution: int = 101,
    paths_from: np.ndarray | None = None,
    lr: float = 0.05,
    steps: int = 400,
    fosps: dict[str, np.ndarray] | None = None,
    labels: tuple[str, str] = ("alpha", "beta"),
) -> dict[str, Any]:
    """One panel per objective; returns what was drawn (grid values, FOSPs, paths) for a JSON
    record. ``paths_from``: starts of the drawn gradient-ascent paths (lr, steps); ``fosps``:
    per objective, points to mark."""
    grid = landscape_grid(plane, resolution)
    figure, axes = plt.subplots(
        1, len(objectives), figsize=(4.4 * len(objectives) + 1.2, 4.6), squeeze=False, layout="constrained"
    )
    drawn: dict[str, Any] = {"objectives": {}}
    low = min(float(grid[_KEYS[o]].min()) for o in objectives)
    high = max(float(grid[_KEYS[o]].max()) for o in objectives)
    for axis, objective in zip(axes[0], objectives):
        values = grid[_KEYS[objective]]
        image = axis.pcolormesh(
            grid["alpha"], grid["beta"], values, shading="auto", cmap="viridis", vmin=low, vmax=high, rasterized=True
        )
        axis.contour(grid["alpha"], grid["beta"], values, levels=12, colors="white", linewidths=0.5, alpha=0.6)
        axis.contourf(
            grid["alpha"],
            grid["beta"],
            grid["robust"].astype(float),
            levels=[0.5, 1.5],
            colors="none",
            hatches=["////"],
            rasterized=True,
        )
        # the diagonal alpha = beta of a two-state slice is robust but has no area: draw it
        if plane.alpha_state != plane.beta_state:
            diagonal = np.linspace(0, 1, resolution)
            robust_diagonal = plane.evaluate(np.stack([diagonal, diagonal], -1))["robust"]
            axis.plot(diagonal[robust_diagonal], diagonal[robust_diagonal], color="black", lw=0.8, ls=":")
        record: dict[str, Any] = {}
        if paths_from is not None and len(paths_from):
            _, path_points = ascend(plane, paths_from, objective, lr, steps, keep_path=True)
            for b in range(path_points.shape[1]):
                axis.plot(path_points[:, b, 0], path_points[:, b, 1], color="red", lw=1.0)
                axis.plot(path_points[0, b, 0], path_points[0, b, 1], "o", color="red", ms=3)
                axis.plot(path_points[-1, b, 0], path_points[-1, b, 1], "x", color="red", ms=6)
            record["paths"] = path_points[[0, -1]].tolist()
        if fosps and objective in fosps and len(fosps[objective]):
            points = np.asarray(fosps[objective])
            axis.plot(points[:, 0], points[:, 1], "*", color="orange", ms=16, mec="black", clip_on=False, zorder=5)
            record["fosps"] = points.tolist()
        axis.set_title(_TITLES[objective], fontsize=10)
        axis.set_xlabel(labels[0])
        axis.set_ylabel(labels[1])
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.set_aspect("equal")
        drawn["objectives"][objective] = record
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="objective at mu0")
    figure.suptitle(
        "hatched / dotted: robust region (V^pi = V^(pi o nu*)); stars: FOSPs; red: gradient ascent", fontsize=9
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=130)
    plt.close(figure)
    return drawn
