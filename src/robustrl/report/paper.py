"""The BARPO paper's Tables 2 and 4 as data (``../shared/reference/barpo_tables.json``) and Table 3's
ARPO (w g) row (typed here from the paper), read in one place for every report that sets our numbers beside the paper's: the study report's paper rows,
the claims, and the benchmark pages (barpo_table2.py, robust_reproduction.py).

The file: ``{table key: {task family: {"eps": ..., "methods": {name: {column: {"mean", "std"} or
number}}}}}``; its columns are spelled ``sa_rl`` / ``pa_ad``, ours ``sa-rl`` / ``pa-ad``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from robustrl.errors import InvalidArgumentError

# table key -> its name in the paper, in the order the reports list them
TABLES = {"table2_baselines_vs_bar_ppo": "Table 2", "table4_spo_arpo_barpo": "Table 4"}
# Table 3's ARPO with SPO guidance (its BARPO rows are Table 4's), which barpo_tables.json does not
# hold: typed from ../shared/papers/barpo-tension-optimality-robustness.txt, means of the median
# agents in our column order. The row our `ar-ppo` (guidance on) sits beside.
TABLE3_COLUMNS = ("natural", "random", "critic", "mad", "rs", "sa-rl", "pa-ad", "worst", "worst_case_robustness")
TABLE3_ARPO_WITH_GUIDANCE = {
    "hopper": (3699, 3652, 3693, 3132, 1130, 1278, 1756, 1130, -0.694),
    "walker2d": (4206, 4231, 4283, 4226, 3139, 3565, 2496, 2496, -0.406),
    "halfcheetah": (4997, 4934, 5040, 2570, 3605, 1356, 1086, 1086, -0.783),
    "ant": (5390, 5227, 4768, 4059, 2670, 1185, 1757, 1185, -0.773),
}


def default_reference() -> Path:
    """``../shared/reference/barpo_tables.json`` beside a source checkout."""
    return Path(__file__).resolve().parents[4] / "shared" / "reference" / "barpo_tables.json"


def load_reference(path: Path | str | None = None) -> dict[str, Any]:
    """The tables, or ``{}`` when the file is absent (a report then has no paper rows). A file that
    is there but not the tables' JSON is an error naming it, not a silent empty table."""
    path = Path(path) if path is not None else default_reference()
    if not path.is_file():
        return {}
    try:
        tables = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidArgumentError(f"{path}: not the paper's tables as JSON ({error})") from error
    if not isinstance(tables, dict):
        raise InvalidArgumentError(f"{path}: expected a JSON object of tables, got {type(tables).__name__}")
    return tables


def _column(name: str) -> str:
    return name.replace("sa_rl", "sa-rl").replace("pa_ad", "pa-ad")


def paper_entries(reference: Mapping[str, Any], env: str) -> Iterator[tuple[str, str, dict[str, float]]]:
    """(table name, method name, column -> value) for every row of Tables 2 and 4 on ``env``'s task
    (``env``: an id or a family, "Hopper-v5" or "Hopper"), in table order, then Table 3's ARPO (w g);
    our column names; a cell's value is the paper's mean (median agent)."""
    from robustrl.config import env_family

    family = env_family(env).lower()
    for key, table in TABLES.items():
        for name, entry in reference.get(key, {}).get(family, {}).get("methods", {}).items():
            yield table, name, {_column(c): float(v["mean"] if isinstance(v, dict) else v) for c, v in entry.items()}
    if reference and family in TABLE3_ARPO_WITH_GUIDANCE:
        yield "Table 3", "ARPO (w g)", dict(zip(TABLE3_COLUMNS, map(float, TABLE3_ARPO_WITH_GUIDANCE[family])))


def paper_method(reference: Mapping[str, Any], env: str, name: str) -> dict[str, float] | None:
    """The row of method ``name`` (the paper's spelling: "BAR", "BARPO (w/o g)") on ``env``'s task,
    from the first table that has it; None when neither does."""
    return next((cells for _, method, cells in paper_entries(reference, env) if method == name), None)
