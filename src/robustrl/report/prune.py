"""The ``certify`` table: Theorem 1's bound per checkpoint beside the per-state IBP certificate."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.4g}"


def certify_table(result: dict[str, Any]) -> Table:
    """One row per checkpoint (sparsity, L~, c, TV bound c L~ eps_2, bound alpha c L~ eps_2); the
    caption gives the IBP certificate of the newest checkpoint and where R_max came from."""
    ibp = result["ibp"]
    table = Table(
        title=(
            f"{result['env_id']}: certified robustness bound (Theorem 1), eps={result['eps']:g} "
            f"(l_{result['norm']}; l_2 radius {result['global']['eps_l2']:.4g}), gamma={result['gamma']:g}, "
            f"R_max={result['r_max']:.4g} ({result['r_max_source']})"
        ),
        title_justify="left",
    )
    for column in ("checkpoint", "step", "sparsity", "L~ (actor)", "c", "TV bound c L~ eps", "bound a c L~ eps"):
        table.add_column(column, justify="left" if column == "checkpoint" else "right")
    for row in result["checkpoints"]:
        table.add_row(
            row["checkpoint"], str(row["global_step"]), f"{row['sparsity']:.1%}", _number(row["lipschitz"]),
            _number(row["c"]), _number(row["tv_bound"]), _number(row["bound"]),
        )  # fmt: skip
    sampled = f"; largest sampled TV {ibp['sampled_max_tv']:.4g}" if "sampled_max_tv" in ibp else ""
    table.caption = (
        f"IBP certificate of {result['checkpoint']} over {ibp['states']} visited states: TV_max(s) <= "
        f"{ibp['mean_tv_bound']:.4g} on average (max {ibp['max_tv_bound']:.4g}){sampled}, so "
        f"alpha * F(theta) <= {_number(ibp['bound'])} against the global {_number(result['global']['bound'])} "
        f"(global TV bound per state {_number(result['global']['tv_bound'])}; a TV is at most 1)"
    )
    table.caption_justify = "left"
    return table
