"""The BARPO paper's claims, checked on a study's runs: holds / does not hold / within noise
(or too few seeds, or not run).

The paper states, per task (Sec. 5 "BAR-PPO exhibits superior natural and robust performance"
on Table 2; App. F.4 on Table 4):

1. BAR-PPO's natural return is at least PPO's (SPO's): "outperforms vanilla PPO ... on Hopper and
   Walker2d, and achieves comparable performance on Halfcheetah and Ant";
2. BAR-PPO has the highest worst-case return of Table 2's methods ("significantly surpasses all
   baselines");
3. BARPO without guidance beats ARPO in natural return, and 4. in worst-case return (Table 4:
   "consistently and significantly outperforms ARPO in natural and robust returns");
5. the SPO guidance improves BARPO's natural return, and 6. its worst case ("further improves the
   overall performance").

Each is a comparison "A > B" of a column between two methods of one task. Our verdict compares
the means over seeds: the 95% percentile interval of mean(A) - mean(B) under a bootstrap that
resamples each method's seeds independently (the two-sample form of the stratified bootstrap of
:func:`robustrl.report.study.stratified_bootstrap_ci`): above 0 **holds**, below 0 **does not
hold**, across 0 **within noise** (with 3 seeds a bootstrap interval is narrow for what it knows:
read "holds" as "every resample agrees", not as a test at 95%). A method with fewer than
``MIN_SEEDS`` seeds gives **too few seeds**: one seed against one resamples to a single value,
an interval of width 0 that would turn any difference into "holds" or "does not hold". Claim 2
compares BAR-PPO with every Table 2 baseline the study ran (PPO, SA, RADIAL, WocaR; not Table 4's
ablations, which claims 3-6 cover: BARPO w/o g has the higher worst case on Walker2d and
HalfCheetah in the paper's own Table 4): it does not hold when one comparison does not, holds
when every one holds, else takes the weakest verdict of the others; the baselines the study did
not run are named beside it ("not run here"), as a verdict over fewer baselines claims less. Beside it, the paper's own
verdict: the sign of the same difference in its tables (point values: it gives no seeds).

A run's worst case is the minimum over the attacks it ran. With the median-agent protocol the
learned attacks (SA-RL, PA-AD) ran only on each method's median agent, so the other seeds' worst
cases are over the cheap attacks (an upper bound): the claims table says which protocol it read.

Methods are matched to the paper's by the ``paper:`` name of the study spec (``PPO`` / ``SPO``,
``ARPO``, ``BARPO (w/o g)``, ``BARPO`` / ``BAR``, ``SA``, ``RADIAL``, ``WocaR``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# the spec's `paper:` names (Table 2 and Table 4 name the same methods differently) -> one role
ROLES = {"PPO": "spo", "SPO": "spo", "ARPO": "arpo", "BARPO (w/o g)": "barpo_nog", "BARPO": "barpo", "BAR": "barpo",
         "SA": "sa", "RADIAL": "radial", "WocaR": "wocar"}  # fmt: skip
# the name each role has in the reference JSON's two tables
PAPER_NAMES = {"spo": ("PPO", "SPO"), "arpo": ("ARPO",), "barpo_nog": ("BARPO (w/o g)",), "barpo": ("BAR", "BARPO"),
               "sa": ("SA",), "radial": ("RADIAL",), "wocar": ("WocaR",)}  # fmt: skip


@dataclass(frozen=True)
class Claim:
    number: int
    text: str
    column: str  # natural or worst
    better: str  # role
    than: str  # role, or "*" for every Table 2 baseline (TABLE2_BASELINES) the study ran
    source: str


CLAIMS = (
    Claim(1, "BAR-PPO's natural return is at least PPO's", "natural", "barpo", "spo", "Sec. 5, Table 2"),
    Claim(2, "BAR-PPO's worst-case return beats every Table 2 baseline", "worst", "barpo", "*", "Sec. 5, Table 2"),
    Claim(3, "BARPO w/o g beats ARPO in natural return", "natural", "barpo_nog", "arpo", "App. F.4, Table 4"),
    Claim(4, "BARPO w/o g beats ARPO in worst-case return", "worst", "barpo_nog", "arpo", "App. F.4, Table 4"),
    Claim(5, "the SPO guidance raises BARPO's natural return", "natural", "barpo", "barpo_nog", "App. F.4, Table 4"),
    Claim(6, "the SPO guidance raises BARPO's worst-case return", "worst", "barpo", "barpo_nog", "App. F.4, Table 4"),
)
# Table 2's baselines: what claim 2 ("significantly surpasses all baselines") compares BAR-PPO with
TABLE2_BASELINES = ("spo", "sa", "radial", "wocar")
VERDICTS = ("holds", "does not hold", "within noise", "too few seeds", "not run")
MIN_SEEDS = 2  # per method: with one seed the bootstrap has no spread to resample


def difference_ci(
    a: Sequence[float], b: Sequence[float], *, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high): percentile interval of the difference of means when each
    sample's values are resampled with replacement independently (two strata)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    replicates = x[rng.integers(0, x.size, (reps, x.size))].mean(1) - y[rng.integers(0, y.size, (reps, y.size))].mean(1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return float(x.mean() - y.mean()), float(low), float(high)


def verdict(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "not run"
    return "holds" if low > 0 else "does not hold" if high < 0 else "within noise"


def _combine(verdicts: Sequence[str]) -> str:
    """One verdict for several comparisons (claim 2): one that does not hold refutes the claim
    whatever the others say; otherwise the weakest of them."""
    if not verdicts:
        return "not run"
    for weakest in ("does not hold", "not run", "too few seeds", "within noise"):
        if weakest in verdicts:
            return weakest
    return "holds"


def roles_of(methods: Mapping[str, Any]) -> dict[str, str]:
    """label -> role, from the study spec's methods (their ``paper:`` entries)."""
    found = {}
    for label, settings in methods.items():
        role = ROLES.get(str((settings or {}).get("paper", "")))
        if role:
            found[label] = role
    return found


def paper_values(reference: Mapping[str, Any], env: str) -> dict[str, dict[str, float]]:
    """role -> {natural, worst} from the paper's Tables 2 and 4 for this task: the first of the
    role's PAPER_NAMES the tables hold, from the first table that holds it."""
    from robustrl.report.paper import paper_method

    values: dict[str, dict[str, float]] = {}
    for role, names in PAPER_NAMES.items():
        cells = next((c for c in (paper_method(reference, env, name) for name in names) if c), None)
        if cells is not None:
            values[role] = {c: cells[c] for c in ("natural", "worst")}
    return values


def check_claims(
    per_run: pd.DataFrame, roles: Mapping[str, str], reference: Mapping[str, Any] | None = None, *, seed: int = 0
) -> pd.DataFrame:
    """One row per (task, claim): our means, the interval of the difference, our verdict, the
    paper's values and the paper's own verdict. ``per_run``: :func:`robustrl.report.study.per_run_table`."""
    rows = []
    for env, group in per_run.groupby("env", sort=False):
        # one label per role (the first, if the spec names two methods alike), the same in both
        labels: dict[str, str] = {}
        for label in group["label"].unique():
            if label in roles:
                labels.setdefault(roles[label], label)
        by_role = {role: group[group["label"] == label] for role, label in labels.items()}
        paper = paper_values(reference or {}, env)
        for claim in CLAIMS:
            if claim.better not in by_role or (claim.than != "*" and claim.than not in by_role):
                continue  # the study did not run the methods this claim compares
            others = [r for r in by_role if r in TABLE2_BASELINES] if claim.than == "*" else [claim.than]
            if not others:
                continue  # claim 2 without a Table 2 baseline in the study
            ours, theirs, details = [], [], []
            for other in others:
                a = by_role[claim.better][claim.column].dropna().to_numpy()
                b = by_role[other][claim.column].dropna().to_numpy()
                if a.size and b.size:
                    diff, low, high = difference_ci(a, b, seed=seed)
                    ours.append(verdict(low, high) if min(a.size, b.size) >= MIN_SEEDS else "too few seeds")
                    details.append(f"{labels[other]} ({b.size}) {b.mean():.0f}: {diff:+.0f} [{low:+.0f}, {high:+.0f}]")
                else:  # evaluated, but no value in this column yet (a report without its attacks)
                    ours.append("not run")
                if claim.better in paper and other in paper:
                    p = paper[claim.better][claim.column] - paper[other][claim.column]
                    theirs.append("holds" if p > 0 else "does not hold")
            missing = [PAPER_NAMES[r][0] for r in TABLE2_BASELINES if r not in by_role] if claim.than == "*" else []
            if missing:  # the verdict reads the baselines run; the paper's "all baselines" has more
                details.append(f"not run here: {', '.join(missing)}")
            a = by_role[claim.better][claim.column].dropna()
            rows.append({
                "env": env, "claim": claim.number, "text": claim.text, "source": claim.source, "column": claim.column,
                "method": labels[claim.better], "seeds": len(a), "mean": float(a.mean()) if len(a) else math.nan,
                "against": "; ".join(details), "verdict": _combine(ours),
                "paper_verdict": _combine(theirs) if theirs else "-",
                "paper": "; ".join(f"{PAPER_NAMES[r][0]} {paper[r][claim.column]:.0f}"
                                   for r in [claim.better, *others] if r in paper),
            })  # fmt: skip
    return pd.DataFrame(rows)


def roles_at_pick(roles: Mapping[str, str], grid: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per task, ``roles`` with each method the paper names moved to its kappa grid's pick
    (:func:`robustrl.report.study.kappa_grid`): the paper picks kappa per task from a grid (App.
    F.3) and reports that run, so its claims compare the picks, not a fixed kappa. Only tasks where
    a pick differs from the spec's ``paper:`` method are returned (elsewhere the claims are the same)."""
    moved: dict[str, dict[str, str]] = {}
    for env, rows in grid.groupby("env", sort=False):
        env_roles = dict(roles)
        # one grid per algorithm and grid_key (labels differing in kappa only); older grids: per algorithm
        for _, group in rows.groupby([c for c in ("algo", "grid_key") if c in rows], sort=False, dropna=False):
            named = [label for label in group["label"] if label in roles]
            picked = group.loc[group["best"].astype(bool), "label"]
            if named and len(picked) and picked.iloc[0] != named[0]:
                env_roles[picked.iloc[0]] = env_roles.pop(named[0])
        if env_roles != dict(roles):
            moved[str(env)] = env_roles
    return moved


def check_claims_at_pick(
    per_run: pd.DataFrame, roles: Mapping[str, str], grid: pd.DataFrame, reference: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """:func:`check_claims` with every method at its kappa grid's pick (:func:`roles_at_pick`), for
    the tasks where that changes a method; empty when none does."""
    tables = [check_claims(per_run[per_run["env"] == env], env_roles, reference)
              for env, env_roles in roles_at_pick(roles, grid).items()]  # fmt: skip
    tables = [t for t in tables if len(t)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def format_claims(table: pd.DataFrame) -> str:
    lines = ["| task | claim | ours: mean over seeds | against: method (seeds) mean: difference [95% interval] | verdict | paper | paper's own table |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for _, row in table.iterrows():
        mean = "-" if pd.isna(row["mean"]) else f"{row['mean']:.0f}"
        lines.append(f"| {row['env']} | {row['claim']}. {row['text']} ({row['source']}) | {row['method']} ({row['seeds']}) "
                     f"{mean} | {row['against'] or '-'} | **{row['verdict']}** | {row['paper'] or '-'} | "
                     f"{row['paper_verdict']} |")  # fmt: skip
    return "\n".join(lines) + "\n"
