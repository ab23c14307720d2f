"""Tables of evaluation results, for the terminal (rich) and for files (markdown)."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _cell(summary: dict[str, float]) -> str:
    return f"{summary['mean']:.1f} ± {summary['std']:.1f}"


def _checkpoints(reports: list[dict[str, Any]]) -> str:
    """"; checkpoint X" (or "checkpoints X, Y"): the files the policies were actually loaded from."""
    used = list(dict.fromkeys(str(r.get("checkpoint") or "-") for r in reports))
    if used == ["-"]:
        return ""
    return f"; checkpoint{'s' if len(used) > 1 else ''} {', '.join(used)}"


def natural_return_table(report: dict[str, Any]) -> Table:
    """One row per evaluation mode: mean ± std of the natural (unattacked) return."""
    where = f"{report['source']}{_checkpoints([report])}"
    table = Table(title=f"{report['env_id']}: natural return over {report['episodes']} episodes ({where})")
    for column in ("mode", "return (mean ± std)", "min", "max", "mean length"):
        table.add_column(column, justify="right" if column != "mode" else "left")
    for mode, summary in report["results"].items():
        table.add_row(mode, _cell(summary), f"{summary['min']:.1f}", f"{summary['max']:.1f}", f"{summary['mean_length']:.0f}")
    return table


def natural_return_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"**{report['env_id']}**, {report['episodes']} episodes, seed {report['seed']}{_checkpoints([report])}",
        "",
        "| mode | return (mean ± std) | min | max | mean length |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode, s in report["results"].items():
        lines.append(f"| {mode} | {_cell(s)} | {s['min']:.1f} | {s['max']:.1f} | {s['mean_length']:.0f} |")
    return "\n".join(lines) + "\n"


# ---- the robustness table (BARPO paper, Table 2) ------------------------------------------------
ATTACK_COLUMNS = ("random", "critic", "mad", "rs", "sa-rl", "pa-ad")
_TITLES = {"natural": "Natural", "random": "Random", "critic": "Critic", "mad": "MAD", "rs": "RS", "sa-rl": "SA-RL", "pa-ad": "PA-AD", "transfer": "Transfer"}


def _columns(reports: list[dict[str, Any]]) -> list[str]:
    present = {name for report in reports for name in report["results"]}
    known = [name for name in ("natural", *ATTACK_COLUMNS) if name in present]
    return known + sorted(present - set(known))


def _robust_cells(report: dict[str, Any], columns: list[str]) -> list[str]:
    cells = []
    for name in columns:
        summary = report["results"].get(name)
        cells.append(_cell(summary) if summary and "mean" in summary else "-")
    worst = report.get("worst")
    cells.append(f"{worst['mean']:.1f} ({_TITLES.get(worst['attack'], worst['attack'])})" if worst else "-")
    robustness = report.get("worst_case_robustness")
    cells.append(f"{robustness:+.1%}" if robustness is not None else "-")
    return cells


def robustness_caption(report: dict[str, Any]) -> str:
    return (
        f"{report['env_id']}: return under attack, eps={report['eps']:g} (l_{report['norm']} ball in "
        f"{report['perturbation_space']}), {report['episodes']} {report['mode']} episodes per column"
    )


def robustness_table(reports: list[dict[str, Any]], labels: list[str] | None = None) -> Table:
    """One row per policy: natural, each attack, worst attack, worst-case robustness
    (worst - natural) / |natural|."""
    labels = labels or [r["source"] for r in reports]
    columns = _columns(reports)
    table = Table(title=robustness_caption(reports[0]) + _checkpoints(reports))
    table.add_column("policy")
    for name in columns:
        table.add_column(_TITLES.get(name, name), justify="right")
    table.add_column("Worst", justify="right")
    table.add_column("Worst-case robustness", justify="right")
    for label, report in zip(labels, reports):
        table.add_row(label, *_robust_cells(report, columns))
    return table


def robustness_markdown(reports: list[dict[str, Any]], labels: list[str] | None = None) -> str:
    labels = labels or [r["source"] for r in reports]
    columns = _columns(reports)
    header = ["policy", *(_TITLES.get(n, n) for n in columns), "Worst", "Worst-case robustness"]
    lines = [f"**{robustness_caption(reports[0])}{_checkpoints(reports)}**", "", "| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for label, report in zip(labels, reports):
        lines.append("| " + " | ".join([label, *_robust_cells(report, columns)]) + " |")
    return "\n".join(lines) + "\n"
