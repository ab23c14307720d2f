"""Reports of a study, read only from its results store (:mod:`robustrl.experiments.results`).

The BARPO paper's Table 2 layout per task: natural return, the return under each attack, the
worst attack and the worst-case robustness (worst - natural) / |natural|, one row per method,
best and second best of each column marked. Three aggregations over seeds:

- ``median``: the median agent (BARPO App. F.3; :func:`robustrl.evaluate.robustness.median_agent`),
  as the paper reports;
- ``mean``: the mean over seeds with a 95% stratified-bootstrap interval;
- ``iqm``: the interquartile mean with its interval (Agarwal et al. 2021, "Deep RL at the edge of
  the statistical precipice", recommend IQM + stratified bootstrap).

rliable implements the two estimators, but rliable 1.2 does not import under pandas 3 (its pinned
``arch`` fails), so they are written here, once, and tested against hand computations.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustrl.report.paper import load_reference, paper_method

AGGREGATIONS = ("median", "mean", "iqm")


# ---- estimators -------------------------------------------------------------------------------------
def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the values left after cutting ``int(0.25 n)`` from each end
    of the sorted values (``scipy.stats.trim_mean(values, 0.25)``, which rliable uses)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0:
        return math.nan
    cut = int(0.25 * x.size)
    return float(x[cut : x.size - cut].mean())


def stratified_bootstrap_ci(
    scores: Mapping[str, Sequence[float]],
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point estimate, low, high) of ``statistic`` over all scores, with a percentile interval
    from the stratified bootstrap: each replicate resamples the runs of every task (stratum)
    with replacement, keeping each task's run count (rliable's ``StratifiedBootstrap``)."""
    strata = [np.asarray(v, dtype=np.float64) for v in scores.values() if len(v)]
    if not strata:
        return math.nan, math.nan, math.nan
    point = float(statistic(np.concatenate(strata)))
    rng = np.random.default_rng(seed)
    replicates = np.empty(reps)
    for k in range(reps):
        sample = [s[rng.integers(0, s.size, s.size)] for s in strata]
        replicates[k] = statistic(np.concatenate(sample))
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return point, float(low), float(high)


# ---- the table ---------------------------------------------------------------------------------------
def per_run_table(evaluations: pd.DataFrame, eps: float | None = None) -> pd.DataFrame:
    """One row per run: natural, each attack, worst (min over attacks) and worst-case robustness."""
    frame = evaluations if eps is None else evaluations[np.isclose(evaluations["eps"].astype(float), eps)]
    wide = frame.pivot_table(index=["run", "label", "env", "seed"], columns="attack", values="mean", aggfunc="first")
    attacks = [c for c in wide.columns if c != "natural"]
    wide["worst"] = wide[attacks].min(axis=1) if attacks else wide["natural"]
    wide["worst_case_robustness"] = (wide["worst"] - wide["natural"]) / wide["natural"].abs()
    return wide.reset_index()


def attack_columns(evaluations: pd.DataFrame) -> list[str]:
    from robustrl.attacks import ALL

    present = set(evaluations["attack"]) - {"natural"}
    return ["natural", *[a for a in ALL if a in present], *sorted(present - set(ALL)), "worst", "worst_case_robustness"]


def aggregate(per_run: pd.DataFrame, runs: pd.DataFrame, how: str, cheap: Sequence[str] = ()) -> pd.DataFrame:
    """One row per (env, label): each column aggregated over seeds ``how``; for mean and IQM also
    ``<column>_low`` / ``<column>_high`` (95% bootstrap interval) and ``seeds``."""
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}; choose from {AGGREGATIONS}")
    columns = [c for c in per_run.columns if c not in ("run", "label", "env", "seed")]
    rows = []
    for (env, label), group in per_run.groupby(["env", "label"], sort=False):
        row: dict[str, Any] = {"env": env, "label": label, "seeds": len(group)}
        if how == "median":
            index = _median_index(group, runs, cheap)
            row.update({c: group.iloc[index][c] for c in columns})
            row["run"] = group.iloc[index]["run"]
        else:
            statistic = np.mean if how == "mean" else iqm
            for column in columns:
                values = group[column].dropna().to_numpy()
                point, low, high = stratified_bootstrap_ci(
                    {env: values}, statistic, seed=_stable_seed(env, label, column)
                )
                row.update({column: point, f"{column}_low": low, f"{column}_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


PAPER_KAPPAS = (0.1, 0.3, 1.0)  # BARPO App. F.3: the grid the paper picks kappa from, per task
PAPER_PICKS = {"ar-ppo": PAPER_KAPPAS, "bar-ppo": PAPER_KAPPAS}  # the methods it picks kappa for


def kappa_grid(
    median_table: pd.DataFrame,
    runs: pd.DataFrame,
    attacks: Sequence[str] = (),
    pick_from: Mapping[str, Sequence[float]] | None = None,
) -> pd.DataFrame:
    """The kappa grid (BARPO App. F.3: kappa picked per task from {0.1, 0.3, 1.0}; issue 17): one
    row per (env, algorithm with guidance, kappa) that the study ran at more than one kappa, from
    the median-agent table, and ``best`` marking each group's pick. The paper does not state its
    rule; ours: the highest worst-case return of the median agent (ties: the higher natural).
    A grid's labels differ in kappa only (the runs table's ``grid_key``): a label that also
    changes the inner solve, the warm-up or the budget is a method of its own, not a grid point.
    ``pick_from``: algorithm -> the kappas it may be picked at (:data:`PAPER_PICKS`: the paper's
    grid for AR-PPO and BAR-PPO); the others stay rows of the grid (``eligible`` False) but are not
    picked, and a grid with fewer than two eligible kappas picks none (nothing to choose between).
    Algorithms it does not name, and None: every kappa. ``grid_key`` tells grids of one algorithm apart.
    Methods without guidance (or with it for part of the run only) are left out: their loss is
    the robust term alone, kappa does not enter it. Only kappas whose median agent ran every one of ``attacks`` compete (``complete``):
    a group not yet whole has no learned attack on its median agent, and its worst case over the
    cheap ones alone is an upper bound that would win unfairly (it did: one bar-ppo seed at kappa
    0.1, 1714 over the cheap attacks, beat kappa 1's 1492 under SA-RL)."""
    columns = ["env", "algo", "kappa", "label", "seeds", "natural", "worst", "best", "complete", "eligible", "grid_key"]
    if not len(runs) or not {"algo", "kappa", "guidance"} <= set(runs.columns):
        return pd.DataFrame(columns=columns)
    runs = runs if "guidance_until" in runs.columns else runs.assign(guidance_until=1.0)  # tables written before it
    runs = runs if "grid_key" in runs.columns else runs.assign(grid_key="")  # before it: one grid per algorithm
    methods = runs.drop_duplicates("label").set_index("label")[["algo", "kappa", "guidance", "guidance_until", "grid_key"]]
    table = median_table.join(methods, on="label").reset_index(drop=True)  # unique index: rows are told apart by it
    # guided for the whole run only (robust.guidance_until 1): a run guided for part of it is
    # another method, not a point of the grid
    whole = table["guidance_until"].astype(float).fillna(1.0) >= 1.0
    table = table[table["guidance"].astype("boolean").fillna(False) & whole & table["kappa"].notna()]
    rows = []
    for (env, algo, key), group in table.groupby(["env", "algo", "grid_key"], sort=False, dropna=False):
        if group["kappa"].nunique() < 2:
            continue
        group = group.sort_values("kappa")
        allowed = (pick_from or {}).get(algo)
        kappas = group["kappa"].astype(float).to_numpy()[:, None]
        eligible = group if allowed is None else group[np.isclose(kappas, list(allowed)).any(axis=1)]
        complete = group.dropna(subset=[a for a in attacks if a in group.columns])
        candidates = eligible[eligible.index.isin(complete.index)]
        candidates = candidates if len(candidates) else eligible
        pick = None
        if eligible["kappa"].nunique() >= 2:
            pick = candidates.sort_values(["worst", "natural"], ascending=False).index[0]
        for index, row in group.iterrows():
            rows.append({"env": env, "algo": algo, "kappa": float(row["kappa"]), "label": row["label"],
                         "seeds": int(row["seeds"]), "natural": row["natural"], "worst": row["worst"],
                         "best": index == pick, "complete": index in complete.index,
                         "eligible": index in eligible.index, "grid_key": key})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


BROKEN_FRACTION = 0.5  # an agent is broken when an attack leaves it < 50% of its natural return
# issue 17, item 6: a held-out attack (one the agent was not tuned against) is flagged when it
# lowers the agent's worst case by more than this fraction (benchmarks/held_out.py, the BARPO page)
HELD_OUT_DROP = 0.2


def reliability(per_run: pd.DataFrame, attacks: Sequence[str], evaluations: pd.DataFrame | None = None) -> pd.DataFrame:
    """Issue 17's reliability across seeds: per (env, method), how many of the agents that
    ``attacks`` (the learned ones, SA-RL and PA-AD) were run on are broken by one of them (worst
    of those attacks < 50% of the agent's natural return), and their worst-to-natural ratios. A
    median tells nothing of the agent a seed gives you; this does (needs ``median: false``, so
    the learned attacks run on every agent). With the store's ``evaluations``, each row also says
    how many fits each learned attack's cell is the worst of (``fits``: an unbroken verdict from
    one fit is an upper bound on robustness; see benchmarks/results/sa_rl_refit.md)."""
    attacks = [a for a in attacks if a in per_run.columns]
    columns = ["env", "label", "agents", "broken", "broken_fraction", "broken_low", "broken_high",
               "ratio_mean", "ratio_low", "ratio_high", "ratios", "fits"]  # fmt: skip
    if not attacks:
        return pd.DataFrame(columns=columns)
    rows = []
    for (env, label), group in per_run.groupby(["env", "label"], sort=False):
        attacked = group.dropna(subset=attacks, how="all")
        if not len(attacked):
            continue
        ratios = attacked[attacks].min(axis=1) / attacked["natural"].abs()
        broken = int((ratios < BROKEN_FRACTION).sum())
        low, high = broken_interval(broken, len(attacked))
        # the mean worst/natural ratio separates settings that break the same number of 5 seeds
        # (one at 0.45 and one at 0.95 are both "1 broken"); bootstrap interval over the seeds
        ratio, ratio_low, ratio_high = stratified_bootstrap_ci({env: ratios.to_numpy()}, seed=_stable_seed(env, label))
        rows.append({"env": env, "label": label, "agents": len(attacked), "broken": broken,
                     "broken_fraction": broken / len(attacked), "broken_low": low, "broken_high": high,
                     "ratio_mean": ratio, "ratio_low": ratio_low, "ratio_high": ratio_high,
                     # unrounded: the table prints 2 decimals, and rounding twice (0.5349 -> 0.535 ->
                     # "0.54") would misstate a ratio next to the 50% line
                     "ratios": [float(r) for r in ratios],
                     "fits": _fits_cell(evaluations, env, label, attacks, set(attacked["run"]))})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def screening(per_run: pd.DataFrame, cheap: Sequence[str], learned: Sequence[str]) -> pd.DataFrame:
    """Can the cheap attacks (random, critic, MAD, RS: seconds per agent) tell which agents a
    learned one (SA-RL, PA-AD: 1M-step fits) breaks, so that a user could skip the learned
    attacks on most seeds? Per task, over the agents the learned attacks ran on (as
    :func:`reliability` counts them: any of them; all methods pooled, so a correlation partly
    reflects differences between methods), for each cheap attack (on the agents it ran on) and
    for the cheap attacks' worst: Spearman's rank correlation of its worst / natural with the
    learned attacks'; how many broken agents it alone would call unbroken (ratio >= 50%,
    "missed"); and the loosest threshold that flags every broken agent ("threshold", chosen on
    these same agents) with the unbroken ones it flags too ("false_alarms")."""
    from scipy.stats import spearmanr  # scipy: the rank correlation with its tie handling

    learned = [a for a in learned if a in per_run.columns]
    cheap = [a for a in cheap if a in per_run.columns]
    columns = ["env", "attack", "agents", "broken", "spearman", "missed", "threshold", "false_alarms", "unbroken"]
    rows = []
    for env, group in per_run.groupby("env", sort=False) if learned and cheap else []:
        attacked = group.dropna(subset=learned, how="all")
        natural = attacked["natural"].abs()
        truth = attacked[learned].min(axis=1) / natural  # the worst learned attack that ran
        for attack in [*cheap, "cheap worst"]:
            values = attacked[cheap].min(axis=1) if attack == "cheap worst" else attacked[attack]
            ran = values.notna()
            if ran.sum() < 5:  # fewer ranks than five: a correlation of them says nothing
                continue
            ratio, target = values[ran] / natural[ran], truth[ran]
            broken = target < BROKEN_FRACTION
            rho = spearmanr(ratio, target).statistic if ratio.nunique() > 1 and target.nunique() > 1 else math.nan
            threshold = float(ratio[broken].max()) if broken.any() else math.nan
            rows.append({"env": env, "attack": attack, "agents": int(ran.sum()), "broken": int(broken.sum()),
                         "spearman": float(rho), "missed": int((broken & (ratio >= BROKEN_FRACTION)).sum()),
                         "threshold": threshold, "false_alarms": int((~broken & (ratio <= threshold)).sum()),
                         "unbroken": int((~broken).sum())})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def format_screening(table: pd.DataFrame, learned: Sequence[str]) -> str:
    """:func:`screening`'s table as Markdown; "-" where no agent was broken (nothing to miss or catch)."""
    lines = [f"| task | cheap attack | agents (broken by {', '.join(learned)}) | Spearman rho with the learned worst / natural "
             "| broken agents it alone calls unbroken (>= 50%) | unbroken agents flagged at the loosest threshold "
             "that flags every broken one (chosen on these agents) |", "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for _, row in table.iterrows():
        rho = "-" if math.isnan(row["spearman"]) else f"{row['spearman']:+.2f}"
        alarms = f"{row['false_alarms']} of {row['unbroken']} (worst / natural <= {row['threshold']:.2f})" if row["broken"] else "-"
        missed = f"{row['missed']} of {row['broken']}" if row["broken"] else "-"  # none broken: nothing to miss
        lines.append(f"| {row['env']} | {row['attack']} | {row['agents']} ({row['broken']}) | {rho} | {missed} | {alarms} |")
    return "\n".join(lines) + "\n"


def _fits_cell(evaluations: pd.DataFrame | None, env: str, label: str, attacks: Sequence[str], runs: set[str]) -> str:
    """``sa-rl 3, pa-ad 1``: the fits per agent of each learned attack (a range where agents differ)."""
    if evaluations is None or "fits" not in evaluations:
        return ""
    mine = evaluations[(evaluations["env"] == env) & (evaluations["label"] == label) & evaluations["run"].isin(runs)]
    cells = []
    for attack in attacks:
        counts = mine.loc[mine["attack"] == attack, "fits"].dropna().astype(int)
        if len(counts):
            low, high = counts.min(), counts.max()
            cells.append(f"{attack} {low}" if low == high else f"{attack} {low}-{high}")
    return ", ".join(cells)


def broken_interval(broken: int, agents: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of the fraction of seeds broken, from ``broken`` of
    ``agents``: with 5 seeds, 1 broken reads 20% [1%, 72%] and 0 broken [0%, 52%], so two
    settings' counts on 5 seeds rarely differ beyond noise, and the table says so."""
    from scipy.stats import binomtest  # scipy: the exact binomial interval, not a hand-rolled one

    interval = binomtest(broken, agents).proportion_ci(confidence, method="exact")
    return float(interval.low), float(interval.high)


def broken_interval_cell(broken: int, agents: int) -> str:
    """``[low%, high%]``: :func:`broken_interval` of ``broken`` of ``agents``, as a table cell."""
    low, high = broken_interval(broken, agents)
    return format_broken_interval({"broken_low": low, "broken_high": high})


def format_ratio_cell(row: Mapping[str, Any]) -> str:
    """A reliability row's mean worst / natural with its interval; one agent has no interval."""
    if row["agents"] < 2:
        return f"{row['ratio_mean']:.2f}"
    return f"{row['ratio_mean']:.2f} [{row['ratio_low']:.2f}, {row['ratio_high']:.2f}]"


def format_broken_interval(row: Mapping[str, Any]) -> str:
    """A reliability row's exact (Clopper-Pearson) 95% interval on the fraction of agents broken."""
    return f"[{row['broken_low']:.0%}, {row['broken_high']:.0%}]"


def format_reliability(table: pd.DataFrame, attacks: Sequence[str]) -> str:
    lines = [f"| task | method | agents attacked by {', '.join(attacks)} | fits per agent (worst kept) | broken (worst < 50% of natural) [exact 95% interval] "
             "| mean worst / natural [95% bootstrap interval] | worst / natural per agent |", "|---|---|---:|---|---:|---:|---|"]  # fmt: skip
    for _, row in table.iterrows():
        ratios = ", ".join(f"{r:.2f}" for r in row["ratios"])
        fits = row.get("fits") if isinstance(row.get("fits"), str) and row.get("fits") else "1 each"
        lines.append(f"| {row['env']} | {row['label']} | {row['agents']} | {fits} | {row['broken']} ({row['broken_fraction']:.0%}) "
                     f"{format_broken_interval(row)} | {format_ratio_cell(row)} | {ratios} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def format_kappa_grid(grid: pd.DataFrame) -> str:
    lines = ["| task | method | kappa | natural | worst | |", "|---|---|---:|---:|---:|---|"]
    for _, row in grid.iterrows():
        lines.append(f"| {row['env']} | {row['algo']} ({row['seeds']}) | {row['kappa']:g} | {row['natural']:.0f} | "
                     f"{row['worst']:.0f} | {kappa_grid_mark(row)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def kappa_grid_mark(row: Mapping[str, Any]) -> str:
    if row["best"]:
        return "**picked**"
    eligible = row.get("eligible", True)
    if not (pd.isna(eligible) or bool(eligible)):  # a grid written before the column reads as eligible
        return "outside the kappas picked from: not picked"  # kappa_grid's pick_from; the caption names them
    complete = row.get("complete", True)
    # a grid written before the column existed (or concatenated with one) reads as complete
    return "" if pd.isna(complete) or bool(complete) else "not every attack ran on its median agent yet: not compared"


def _stable_seed(*parts: str) -> int:
    import zlib

    return zlib.crc32("|".join(parts).encode())


def _median_index(group: pd.DataFrame, runs: pd.DataFrame, cheap: Sequence[str]) -> int:
    """The median agent of a (method, env) group: the run the study marked (it ran the expensive
    attacks on it), else BARPO App. F.3's rule on the reports in the store."""
    from robustrl.evaluate.robustness import median_agent

    if "median_agent" in runs:
        marked = set(runs.loc[runs["median_agent"].astype(bool), "run"])
        hits = [i for i, run in enumerate(group["run"]) if run in marked]
        if hits:
            return hits[0]
    attacks = [
        c
        for c in group.columns
        if c not in ("run", "label", "env", "seed", "natural", "worst", "worst_case_robustness")
    ]
    reports = [
        {"results": {a: {"mean": row[a]} for a in ["natural", *attacks] if not pd.isna(row[a])}}
        for _, row in group.iterrows()
    ]
    return median_agent(reports, list(cheap) or attacks)


def _marks(values: pd.Series) -> dict[int, str]:
    """Best and second best of a column (higher is better for every column of Table 2)."""
    order = values.dropna().sort_values(ascending=False).index.tolist()
    return {**({order[0]: "best"} if order else {}), **({order[1]: "second"} if len(order) > 1 else {})}


def _cell(value: Any, mark: str | None, style: str, low: Any = None, high: Any = None, robustness: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:+.3f}" if robustness else f"{value:.0f}"
    if low is not None and not (isinstance(low, float) and math.isnan(low)):
        text += f" [{low:+.3f}, {high:+.3f}]" if robustness else f" [{low:.0f}, {high:.0f}]"
    if mark == "best":
        return {"md": f"**{text}**", "tex": f"\\textbf{{{text}}}"}.get(style, text)
    if mark == "second":
        return {"md": f"_{text}_", "tex": f"\\underline{{{text}}}"}.get(style, text)
    return text


def format_table(table: pd.DataFrame, columns: list[str], style: str, paper: pd.DataFrame | None = None) -> str:
    """Markdown (``md``) or LaTeX (``tex``) of an aggregated table, one block per env."""
    headers = ["method", *[c.replace("_", " ") for c in columns]]
    lines: list[str] = []
    for env, group in table.groupby("env", sort=False):
        marks = {c: _marks(group[c].astype(float)) for c in columns}
        body = []
        for index, row in group.iterrows():
            cells = [str(row["label"]) + f" ({int(row['seeds'])})"]
            for column in columns:
                mark = marks[column].get(index)
                cells.append(
                    _cell(
                        row.get(column),
                        mark,
                        style,
                        row.get(f"{column}_low"),
                        row.get(f"{column}_high"),
                        column == "worst_case_robustness",
                    )
                )
            body.append(cells)
        if paper is not None:
            for _, row in paper[paper["env"] == env].iterrows():
                body.append(
                    [
                        f"paper: {row['label']}",
                        *[_cell(row.get(c), None, style, robustness=c == "worst_case_robustness") for c in columns],
                    ]
                )
        if style == "tex":
            lines += [
                f"% {env}",
                "\\begin{tabular}{l" + "r" * len(columns) + "}",
                " & ".join(headers) + " \\\\ \\hline",
            ]
            lines += [" & ".join(c.replace("%", "\\%") for c in cells) + " \\\\" for cells in body]
            lines += ["\\end{tabular}", ""]
        else:
            lines += [f"### {env}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(cells) + " |" for cells in body]
            lines.append("")
    return "\n".join(lines)


def paper_rows(spec_methods: Mapping[str, Any], envs: Sequence[str], tables: Mapping[str, Any]) -> pd.DataFrame | None:
    """The paper's numbers (``tables``: robustrl.report.paper.load_reference) for the methods whose
    spec names a ``paper`` entry (e.g. ``paper: BAR``)."""
    rows = []
    for label, settings in spec_methods.items():
        name = (settings or {}).get("paper")
        for env in envs if name else ():
            cells = paper_method(tables, env, name)
            if cells is not None:
                rows.append({"env": env, "label": f"{name} ({label})", **cells})
    return pd.DataFrame(rows) if rows else None


# ---- the whole report ----------------------------------------------------------------------------------
def write_study_report(
    directory: Path | str, out: Path | str | None = None, reference: Path | str | None = None
) -> dict[str, Path]:
    """Tables (Markdown, LaTeX, CSV per aggregation) and figures (PNG + SVG) of a study.

    The results store is rebuilt first from what the runs hold now, so no caller has to remember
    to: a committed snapshot has no store, a copied-in run is not in it yet, and a running study
    reports its finished rows."""
    from robustrl.evaluate.reports import split_attacks
    from robustrl.experiments.results import read_results, refresh_results

    directory = Path(directory)
    out = Path(out) if out is not None else directory / "report"
    refresh_results(directory)
    out.mkdir(parents=True, exist_ok=True)
    runs, evaluations, metrics = (read_results(directory, t) for t in ("runs", "evaluations", "metrics"))
    study = json.loads((directory / "study.json").read_text())
    spec = study["spec"]
    main_eps = _main_eps(spec)
    written: dict[str, Path] = {}
    if len(evaluations):
        frame = evaluations if main_eps is None else evaluations[np.isclose(evaluations["eps"].astype(float), main_eps)]
        per_run = per_run_table(frame)
        columns = [c for c in attack_columns(frame) if c in per_run.columns]
        cheap = split_attacks([c for c in columns if c not in ("natural", "worst", "worst_case_robustness")])[0]
        tables = load_reference(reference)  # read once: the paper rows and the claims
        paper = paper_rows(spec.get("methods", {}), sorted(set(frame["env"])), tables)
        per_run.to_csv(out / "per_run.csv", index=False)
        for how in AGGREGATIONS:
            table = aggregate(per_run, runs, how, cheap)
            table.to_csv(out / f"table2_{how}.csv", index=False)
            caption = {"median": "median agent (BARPO App. F.3)", "mean": "mean over seeds [95% stratified-bootstrap interval]",
                       "iqm": "interquartile mean [95% stratified-bootstrap interval]"}[how]  # fmt: skip
            eps_text = f"eps {main_eps:g}" if main_eps is not None else "eps: the papers' value per task"
            mode = "deterministic" if (spec.get("evaluation") or {}).get("deterministic", True) else "sampled-action"
            header = f"# {study['name']}: {caption}\n\nReturns, {mode} episodes, {eps_text}; (n) = seeds; **best**, _second best_ per column.\n\n"
            (out / f"table2_{how}.md").write_text(
                header + format_table(table, columns, "md", paper if how == "median" else None)
            )
            (out / f"table2_{how}.tex").write_text(
                f"% {study['name']}: {caption}\n"
                + format_table(table, columns, "tex", paper if how == "median" else None)
            )
            written[f"table2_{how}"] = out / f"table2_{how}.md"
        attacks = [c for c in columns if c not in ("natural", "worst", "worst_case_robustness")]
        grid = kappa_grid(aggregate(per_run, runs, "median", cheap), runs, attacks, pick_from=PAPER_PICKS)
        if len(grid):
            grid.to_csv(out / "kappa_grid.csv", index=False)
            (out / "kappa_grid.md").write_text(
                f"# {study['name']}: the kappa grid (median agents)\n\nEach method with guidance at every kappa "
                "the study ran; **picked**: the highest worst-case return of the median agent (ties: the higher "
                "natural; the paper does not state its rule), from the paper's grid {0.1, 0.3, 1} (App. F.3). "
                "A grid's labels differ in kappa only. Without guidance kappa does not enter the loss.\n\n"
                + format_kappa_grid(grid)
            )
            written["kappa_grid"] = out / "kappa_grid.md"
        expensive = [c for c in columns if c not in cheap and c not in ("natural", "worst", "worst_case_robustness")]
        table = reliability(per_run, expensive, frame)
        (out / "screening.csv").unlink(missing_ok=True)  # a table from an earlier report must not outlive it
        if len(table):
            table.to_csv(out / "reliability.csv", index=False)
            (out / "reliability.md").write_text(
                f"# {study['name']}: reliability across seeds\n\nPer method, the agents the learned attacks "
                f"({', '.join(expensive)}) ran on and how many of them one of those attacks broke (worst < 50% of "
                "the agent's natural return). With `median: true` only each method's median agent is attacked.\n\n"
                + format_reliability(table, expensive)
            )
            screen = screening(per_run, cheap, expensive)
            if len(screen):
                screen.to_csv(out / "screening.csv", index=False)
                with (out / "reliability.md").open("a") as file:
                    file.write("\n## Do the cheap attacks tell which agents the learned ones break?\n\nEvery agent the "
                               "learned attacks ran on, methods pooled per task: a cheap attack that ranks agents as "
                               "the learned attacks do would let a study fit those on fewer seeds.\n\n"
                               + format_screening(screen, expensive))  # fmt: skip
            written["reliability"] = out / "reliability.md"
            written |= _plot_reliability(table, out)
        written |= _write_claims(study, per_run, tables, out, grid)
        written |= _plot_scatter(per_run, out)
        from robustrl.report.sweet_spot import is_pruning_study, write_sweet_spot_report

        if is_pruning_study(runs):
            attacks = [c for c in columns if c not in ("natural", "worst", "worst_case_robustness")]
            written |= write_sweet_spot_report(runs, per_run, attacks, out)
        if evaluations["eps"].nunique() > 1:
            written |= _plot_eps(evaluations, out)
    if len(metrics) and "mean_return" in metrics:
        written |= _plot_curves(metrics, out)
    if len(metrics) and "eval_return" in metrics and metrics["eval_return"].notna().any():
        # ppo.eval_every: the mean action's return over training, the mode the tables report (the
        # training curve is of sampled actions and can be far above it)
        evaluated = metrics[metrics["eval_return"].notna()]
        written |= _plot_curves(evaluated, out, value="eval_return", ylabel="mean-action return (ppo.eval_episodes)",
                                stem="eval_curves", what="deterministic evaluation during training")  # fmt: skip
    if len(metrics) and "robust_term" in metrics and metrics["robust_term"].notna().any():
        # the robust methods' own objective over training: beside the return curves it shows a
        # natural return that stalls while the robust term is already small (issue 17's ARPO
        # question; the deceptive-FOSP signature the theory lab shows on the toy MDP)
        written |= _plot_robust_terms(metrics[metrics["robust_term"].notna()], out)
    return written


def _write_claims(
    study: Mapping[str, Any], per_run: pd.DataFrame, tables: Mapping[str, Any], out: Path,
    grid: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """claims.md: the BARPO paper's claims per task, checked on the study's seeds
    (:mod:`robustrl.report.claims`); only for studies whose methods name the paper's. With a kappa
    ``grid`` whose pick is not the method the spec names, a second table checks them at the picks
    (claims_at_pick.csv): the paper's protocol picks kappa per task."""
    from robustrl.evaluate.reports import split_attacks
    from robustrl.experiments.spec import parse_evaluation
    from robustrl.report.claims import MIN_SEEDS, check_claims, check_claims_at_pick, format_claims, roles_of

    spec = study["spec"]
    roles = roles_of(spec.get("methods", {}))
    table = check_claims(per_run, roles, tables)
    if not len(table):
        return {}
    table.to_csv(out / "claims.csv", index=False)
    # the spec's own defaults (median: false; no learned attack unless listed), not guesses
    evaluation = parse_evaluation(spec.get("evaluation") or {})
    learned = split_attacks(evaluation.attacks)[1]
    if not learned:
        protocol = "no learned attack (SA-RL, PA-AD) was in the study, so every worst case is over the cheap attacks"
    elif evaluation.median:
        protocol = (f"the learned attacks ({', '.join(learned)}) ran on each method's median agent only, so the "
                    "other seeds' worst cases are over the cheap attacks (an upper bound)")  # fmt: skip
    else:
        protocol = "every attack ran on every agent"
    picked_text = ""
    at_pick = check_claims_at_pick(per_run, roles, grid, tables) if grid is not None and len(grid) else pd.DataFrame()
    (out / "claims_at_pick.csv").unlink(missing_ok=True)  # a table from a grid that has changed since
    if len(at_pick):
        at_pick.to_csv(out / "claims_at_pick.csv", index=False)
        picks = ", ".join(sorted(set(at_pick["method"]) - set(table["method"])))
        picked_text = ("\n## At the kappa grid's pick (the paper's protocol)\n\nThe same claims with each method "
                       f"at the kappa its grid picked (kappa_grid.md; here {picks}) instead of the kappa the spec "
                       "names for the paper's method.\n\n" + format_claims(at_pick))  # fmt: skip
    (out / "claims.md").write_text(
        f"# {study['name']}: the BARPO paper's claims\n\nOur verdict: the 95% bootstrap interval of the difference "
        "of means over seeds (each method's seeds resampled independently) above 0 **holds**, below 0 **does not "
        "hold**, across 0 **within noise**; **too few seeds** when a method has fewer than "
        f"{MIN_SEEDS} (one seed gives an interval of width 0). The paper's own verdict: the sign of the same "
        "difference in its tables (point values of median agents of 17 seeds; no interval). Worst case: the "
        f"minimum over the attacks a run ran; {protocol}. See robustrl.report.claims.\n\n" + format_claims(table)
        + picked_text
    )
    return {"claims": out / "claims.md"}


def _main_eps(spec: Mapping[str, Any]) -> float | None:
    eps = (spec.get("evaluation") or {}).get("eps")
    if isinstance(eps, (list, tuple)):
        return float(eps[0]) if eps else None
    return None if eps is None else float(eps)


def save_figure(figure: Any, out: Path, stem: str) -> dict[str, Path]:
    """Write `figure` as `<out>/<stem>.png` and `.svg` (the one figure writer of every report) and close it."""
    out.mkdir(parents=True, exist_ok=True)
    figure.savefig(out / f"{stem}.png", dpi=130, bbox_inches="tight")
    figure.savefig(out / f"{stem}.svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return {stem: out / f"{stem}.png"}


def _plot_curves(
    metrics: pd.DataFrame, out: Path, value: str = "mean_return", ylabel: str = "mean return (last 100 episodes)",
    stem: str = "training_curves", what: str = "training curves",
) -> dict[str, Path]:
    """Training curves: ``value`` (the mean return: BARPO Figure 6) vs env steps per method, the
    band spanning the seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted(metrics["env"].unique())
    figure, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 4), squeeze=False)
    for axis, env in zip(axes[0], envs):
        for label, group in metrics[metrics["env"] == env].groupby("label", sort=False):
            curve = (
                group.pivot_table(index="global_step", columns="seed", values=value)
                .sort_index()
                .interpolate(limit_area="inside")
            )
            steps = curve.index.to_numpy()
            axis.plot(steps, curve.mean(axis=1), label=f"{label} ({curve.shape[1]})")
            axis.fill_between(steps, curve.min(axis=1), curve.max(axis=1), alpha=0.2)
        axis.set(title=env, xlabel="env steps", ylabel=ylabel)
        axis.legend(fontsize=8)
    figure.suptitle(f"{what}: mean over seeds, band = range of seeds")
    return save_figure(figure, out, stem)


def _plot_robust_terms(metrics: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Each robust method's own term over training (mean over seeds, band = range), one panel per
    (env, method) with its own y-axis: the terms are different quantities (BAR/AR-PPO's surrogate
    at the worst observation, SA-PPO's KL regulariser ~1e-3, WocaR's whole loss) and would flatten
    each other on a shared axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(env, label) for env in sorted(metrics["env"].unique())
              for label in metrics[metrics["env"] == env]["label"].unique()]  # fmt: skip
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows), squeeze=False)
    for axis, (env, label) in zip(axes.flat, panels):
        group = metrics[(metrics["env"] == env) & (metrics["label"] == label)]
        curve = group.pivot_table(index="global_step", columns="seed", values="robust_term").sort_index()
        curve = curve.apply(pd.to_numeric, errors="coerce").interpolate(limit_area="inside")
        steps = curve.index.to_numpy()
        axis.plot(steps, curve.mean(axis=1))
        axis.fill_between(steps, curve.min(axis=1), curve.max(axis=1), alpha=0.2)
        axis.set(title=f"{env}: {label} ({curve.shape[1]})", xlabel="env steps", ylabel="robust term")
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    figure.suptitle("the robust methods' own term over training: mean over seeds, band = range of seeds")
    figure.tight_layout()
    return save_figure(figure, out, "robust_term_curves")


def _plot_scatter(per_run: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Natural vs worst-case return, one point per run (BARPO Figure 5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted(per_run["env"].unique())
    figure, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 4.2), squeeze=False)
    for axis, env in zip(axes[0], envs):
        for label, group in per_run[per_run["env"] == env].groupby("label", sort=False):
            axis.scatter(group["natural"], group["worst"], label=label, alpha=0.8)
        low = min(per_run["worst"].min(), per_run["natural"].min())
        high = max(per_run["worst"].max(), per_run["natural"].max())
        axis.plot([low, high], [low, high], color="grey", lw=0.8, ls="--")
        axis.set(title=env, xlabel="natural return", ylabel="worst-case return")
        axis.legend(fontsize=8)
    return save_figure(figure, out, "natural_vs_worst")


def _plot_reliability(table: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Every attacked agent's learned-attack worst / natural, one row of dots per (task, method),
    beside the 50% line below which an agent counts as broken: which settings break, and how far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 0.55 * len(table) + 1.4))
    names = [f"{row['label']} ({row['env'].removesuffix('-v5')})" for _, row in table.iterrows()]
    for y, (_, row) in enumerate(table.iterrows()):
        ratios = np.asarray(row["ratios"], dtype=float)
        axis.scatter(ratios, np.full(ratios.size, y), color=np.where(ratios < BROKEN_FRACTION, "tab:red", "tab:blue"), zorder=3)
        axis.plot([row["ratio_low"], row["ratio_high"]], [y - 0.2, y - 0.2], color="grey", lw=2)
        axis.plot([row["ratio_mean"]], [y - 0.2], marker="|", color="black", ms=9)
    axis.axvline(BROKEN_FRACTION, color="tab:red", ls="--", lw=0.8)
    axis.set(yticks=range(len(names)), yticklabels=names, ylim=(len(names) - 0.5, -0.5),
             xlabel="learned-attack worst / natural return per agent (grey: mean, 95% bootstrap interval)")  # fmt: skip
    return save_figure(figure, out, "reliability_per_agent")


def _plot_eps(evaluations: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Return vs eps per attack (mean over seeds), one panel per (env, method)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(evaluations.groupby(["env", "label"], sort=False))
    figure, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.8), squeeze=False)
    for axis, ((env, label), group) in zip(axes[0], groups):
        natural = group[group["attack"] == "natural"]["mean"].mean()
        for attack, rows in group[group["attack"] != "natural"].groupby("attack"):
            curve = rows.groupby("eps")["mean"].mean().sort_index()
            axis.plot(curve.index, curve.values, marker="o", label=attack)
        axis.axhline(natural, color="grey", lw=0.8, ls="--", label="natural")
        axis.set(title=f"{label} on {env}", xlabel="eps", ylabel="return")
        axis.legend(fontsize=8)
    return save_figure(figure, out, "return_vs_eps")
