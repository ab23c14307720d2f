"""Tables of evaluation results, for the terminal (rich) and for files (markdown)."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _cell(summary: dict[str, float]) -> str:
    return f"{summary['mean']:.1f} ± {summary['std']:.1f}"


def natural_return_table(report: dict[str, Any]) -> Table:
    """One row per evaluation mode: mean ± std of the natural (unattacked) return."""
    table = Table(title=f"{report['env_id']}: natural return over {report['episodes']} episodes ({report['source']})")
    for column in ("mode", "return (mean ± std)", "min", "max", "mean length"):
        table.add_column(column, justify="right" if column != "mode" else "left")
    for mode, summary in report["results"].items():
        table.add_row(mode, _cell(summary), f"{summary['min']:.1f}", f"{summary['max']:.1f}", f"{summary['mean_length']:.0f}")
    return table


def natural_return_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"**{report['env_id']}**, {report['episodes']} episodes, seed {report['seed']}",
        "",
        "| mode | return (mean ± std) | min | max | mean length |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode, s in report["results"].items():
        lines.append(f"| {mode} | {_cell(s)} | {s['min']:.1f} | {s['max']:.1f} | {s['mean_length']:.0f} |")
    return "\n".join(lines) + "\n"
