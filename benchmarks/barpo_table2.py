"""Issue 17's deliverable: benchmarks/results/barpo_table2.md (+ .json, + each study's report).

Reads finished (or partly finished) study directories, writes each one's full report
(`robustrl report`: Table 2 as median agent / mean / IQM, claims, kappa grid, reliability,
figures) under ``--out``/<study>/, and assembles one page: per task, the median agents beside the
paper's rows, the mean over seeds with 95% intervals, the paper's claims marked holds / does not
hold / within noise, the quality goal of issue 17 (BAR-PPO natural and worst case >= the paper's,
no seed broken by a learned attack), and what was not run with what it would cost. The goal's
worst case is the stricter of the median agent's (one SA-RL fit, the paper's protocol, as every
table and claim here) and the same agent's in a reliability study that fitted SA-RL several times.

    python benchmarks/barpo_table2.py runs/studies/barpo_hopper [runs/studies/barpo_table2 ...]

Nothing is trained here: the studies are run with `robustrl study run studies/<spec>.yaml`.
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from robustrl.config import learned_adversary_on
from robustrl.report.claims import paper_values, roles_at_pick
from robustrl.report.paper import default_reference, load_reference, paper_entries, paper_method
from robustrl.report.study import (
    BROKEN_FRACTION,
    HELD_OUT_DROP,
    PAPER_KAPPAS,
    broken_interval_cell,
    format_broken_interval,
    format_ratio_cell,
    format_screening,
    kappa_grid_mark,
    save_figure,
    write_study_report,
)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = default_reference()
TASKS = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5")
# issue 17's seeds for the quality goal: >= 5 on Hopper, >= 3 elsewhere
GOAL_SEEDS = {"Hopper-v5": 5}
# roles of BAR-PPO at the study's fixed kappa (the kappa grid's other kappas are separate labels)
BAR_LABELS = ("bar-ppo",)
LEARNED = ("sa-rl", "pa-ad")  # the paper's worst case includes them (on its median agents)

PROTOCOL = """## Protocol: ours against the paper's

| | paper (App. F.3) | ours |
|---|---|---|
| tasks | MuJoCo v2-era (mujoco-py) | Gymnasium v5 (modern `mujoco`): same bodies, different contact solver and reset noise |
| seeds | 17 per method | 3 per method in the Table 2 studies; BAR-PPO, the quality goal's method, 5 on Hopper, Walker2d and HalfCheetah (issue 17 asks >= 5 on Hopper), 3 on Ant; the count is beside every row. Mean with 95% stratified-bootstrap intervals (over 3 seeds such an interval is close to the seeds' range) |
| median agent | "the median agent by considering the natural and robust returns", then SA-RL and PA-AD on it | the same, read as: agents ranked by natural return and by their worst cheap attack (random, critic, MAD, RS), the agent of median mean rank kept (ties: the lower worst case). So it is not the seed of median natural return: it may be a seed with a high natural return and a low worst case. Every seed's own learned attacks are in "Learned attacks per agent" |
| episodes per cell | 50 | 20 deterministic episodes |
| steps | 2M (Ant 10M); RADIAL-PPO 4M (Ant 10M) | 2M (Ant 10M) for every method, RADIAL-PPO included; 8 Gymnasium envs per 2048-step batch (one core per study worker), compiled update (same PPO hyperparameters as SA-PPO's MuJoCo configs) |
| eps curriculum | 0 -> eps over the first 732 of 976 iterations (Ant 3662 of 4882) | the same: over the first 75% of iterations |
| kappa | BAR-PPO's from {0.1, 0.3, 1.0} per task; the baselines' from {0.01, 0.03, 0.1, 0.3, 1.0} on Ant | a grid on Hopper only: its kappas are rows of their own, its pick (by the median agent's worst case) marked in "kappa grid", and the quality goal reads the pick. Walker2d and HalfCheetah run BAR-PPO and ARPO w/ g at kappa 1, Ant BAR-PPO: BAR-PPO's Hopper pick (fixed before the grid was complete; ARPO w/ g's own Hopper pick turned out 0.1, within noise of its kappa 1); the baselines at their reference coefficients |
| learned attacks | SA-RL, PA-AD on the median agent (fits per agent not stated; SA-RL's authors search the adversary's hyperparameters and keep the strongest adversary: huanzhang12/ATLA_robust_RL's README) | the same, 1M steps each with a radius curriculum (benchmarks/results/attacks.md); SA-RL the worst of 3 fits (`evaluation.fits`) on every median agent and on every seed of the reliability studies, PA-AD one fit; each cell's count is in the store's `fits` column |
| RS | robust Sarsa critic + MAD-style attack | the same (`robustrl.attacks.robust_sarsa`) |
"""


def _cell(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0f}"


def _text(value: object) -> str:
    """A text cell read back from CSV: an empty string there comes back as NaN."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) or value == "" else str(value)


def _who(row: pd.Series, rows: pd.DataFrame, key: str = "label") -> str:
    """A method's label, with its study when several studies hold the task (e.g. barpo_hopper and
    barpo_table2 both run Hopper): their rows would otherwise read as one method twice."""
    several = "study" in rows and rows["study"].nunique() > 1
    return f"{row[key]} [{row['study']}]" if several else str(row[key])


def _mean_cell(row: pd.Series, column: str) -> str:
    value, low, high = row.get(column), row.get(f"{column}_low"), row.get(f"{column}_high")
    if value is None or pd.isna(value):
        return "-"
    return f"{value:.0f} [{low:.0f}, {high:.0f}]"


def quality_goal(env: str, per_run: pd.DataFrame, median: pd.DataFrame, reliability: pd.DataFrame | None,
                 reference: dict, grid: pd.DataFrame | None = None) -> list[str]:  # fmt: skip
    """Issue 17's quality goal for one task, as lines of Markdown (:func:`goal_status`)."""
    goal = goal_status(env, per_run, median, reliability, reference, grid)
    if goal is None:
        return [f"- {env}: BAR-PPO not run."]
    return [
        f"- {env}: BAR-PPO ({goal['who']}) median agent natural {_cell(goal['natural'])} vs the paper's {goal['paper_natural']:.0f} "
        f"(**{goal['natural_ok']}**), worst case {_cell(goal['worst'])} vs {goal['paper_worst']:.0f} "
        f"(**{goal['worst_ok']}**{'; ' + goal['worst_note'] if goal.get('worst_note') else ''}); {goal['broken_text']}; {goal['seeds']} seeds (goal: >= {goal['need']}"
        f"{': short' if goal['seeds'] < goal['need'] else ''})."
    ]


def goal_status(env: str, per_run: pd.DataFrame, median: pd.DataFrame, reliability: pd.DataFrame | None,
                reference: dict, grid: pd.DataFrame | None = None) -> dict | None:  # fmt: skip
    """Issue 17's quality goal for one task: BAR-PPO at the kappa the grid picks when the task has
    a kappa grid (the paper picks kappa per task), else at the fixed one; its median agent against
    the paper's, and the seeds a learned attack breaks (read from the study that fitted one on the
    most of the same agents). None where BAR-PPO has not run on ``env``."""
    paper = paper_values(reference, env).get("barpo")
    labels = BAR_LABELS
    if grid is not None and len(grid):
        # every grid's pick (a grid picks only among two kappas or more of the paper's {0.1, 0.3,
        # 1}: a reliability study's {1, 3} picks none); two picked labels: the one with more seeds
        picked = grid[(grid["env"] == env) & (grid["algo"] == "bar-ppo") & grid["best"].astype(bool)]
        if len(picked):
            labels = tuple(picked["label"])
    rows = median[(median["env"] == env) & median["label"].isin(labels)]
    if paper is None or not len(rows):
        return None
    row = rows.sort_values("seeds", ascending=False, kind="stable").iloc[0]  # two studies ran it: the larger
    seeds = int(row["seeds"])
    need = GOAL_SEEDS.get(env, 3)

    def goal(ours: float, theirs: float) -> str:
        return "not measured" if pd.isna(ours) else "met" if ours >= theirs else "not met"

    natural_ok = goal(row["natural"], paper["natural"])
    # the paper's worst case includes SA-RL and PA-AD: a worst case without them is only an upper
    # bound (a partly run study, or one without the learned attacks), so it cannot meet the goal
    missing = [a for a in LEARNED if pd.isna(row.get(a, math.nan))]
    worst, worst_note = row["worst"], ""
    broken = "not measured (no learned attack ran on BAR-PPO)"
    broken_count = attacked = None
    if reliability is not None and len(reliability):
        hit = reliability[(reliability["env"] == env) & (reliability["label"] == row["label"])]
        if "study" in row and "study" in hit:
            # the same agents may be attacked in another study too (studies/barpo_reliability.yaml
            # copies the Hopper study's bar-ppo-k1 runs: same config, same run names) with a
            # learned attack fitted on every seed, not only the median one: read the study that
            # attacked the most of them
            def runs_of(study: str) -> set[str]:
                mine = per_run[(per_run["study"] == study) & (per_run["env"] == env) & (per_run["label"] == row["label"])]
                return set(mine["run"])

            same = runs_of(row["study"])
            # a list, not an empty object Series: pandas reads that as a column selection
            hit = hit[[study == row["study"] or runs_of(study) == same for study in hit["study"]]]
            hit = hit.sort_values("agents", ascending=False, kind="stable")
        if len(hit):
            h = hit.iloc[0]
            if "study" in h and h["study"] != row["study"]:
                broken_where = f" (learned attacks fitted on each seed: study {h['study']})"
            else:
                broken_where = ""
            broken_count, attacked = int(h["broken"]), int(h["agents"])
            broken = f"{broken_count} of {attacked} attacked agents broken"
            if pd.notna(h.get("broken_low")) and pd.notna(h.get("broken_high")):
                broken += f" (the fraction's exact 95% interval: {h['broken_low']:.0%}-{h['broken_high']:.0%})"
            if int(h["agents"]) < seeds:
                broken += f" (the other {seeds - int(h['agents'])} seeds were not attacked by {', '.join(LEARNED)})"
            broken += broken_where
            fits = _fits_text(h)
            broken += f"; fits per agent: {fits}" if fits else ""
            stricter = _stricter_worst(per_run, row, h)
            if stricter is not None:
                worst, worst_note = stricter
    worst_ok = goal(worst, paper["worst"])
    if missing and worst_ok == "met":
        worst_ok = f"not measured: {', '.join(missing)} not run on it"
    return {"who": _who(row, rows), "label": row["label"], "natural": row["natural"], "worst": worst, "worst_note": worst_note, "paper_natural": paper["natural"],
            "paper_worst": paper["worst"], "natural_ok": natural_ok, "worst_ok": worst_ok, "broken_text": broken,
            "broken": broken_count, "attacked": attacked, "fits": _fits_text(h) if broken_count is not None else "", "seeds": seeds, "need": need, "study": row.get("study")}  # fmt: skip


def _stricter_worst(per_run: pd.DataFrame, row: pd.Series, hit: pd.Series) -> tuple[float, str] | None:
    """The median agent's worst case from the reliability study ``hit`` when that study attacked
    the same agent harder (a learned attack fitted several times, the worst kept) and found a
    lower return: (its worst, a note saying where it comes from and the one-fit value). The paper
    reports SA-RL as its learned adversary's return; SA-RL's authors (Zhang et al., 2021) keep the
    lowest of several adversaries per agent, so the stricter number is the fairer goal. None
    where nothing stricter is known."""
    if "study" not in per_run or "study" not in row or "study" not in hit or hit["study"] == row["study"]:
        return None
    mine = per_run[(per_run["study"] == row["study"]) & (per_run["env"] == row["env"]) & (per_run["label"] == row["label"])]
    learned = [a for a in LEARNED if a in mine]
    median_runs = set(mine.dropna(subset=learned, how="all")["run"]) if learned else set()  # the median protocol attacked only it
    if len(median_runs) != 1:
        return None
    there = per_run[(per_run["study"] == hit["study"]) & per_run["run"].isin(median_runs)]
    if not len(there) or pd.isna(there.iloc[0].get("worst")) or there.iloc[0]["worst"] >= row["worst"]:
        return None
    fits = _fits_text(hit)
    note = (f"{there.iloc[0]['worst']:.0f} is the same agent in study {hit['study']}"
            f"{f' ({fits} fits, the worst kept)' if fits else ''}; {row['worst']:.0f} in {row['study']}")  # fmt: skip
    return float(there.iloc[0]["worst"]), note


def _fits_text(row: Any) -> str:
    """A reliability row's fits per agent (``sa-rl 3, pa-ad 1``); "" where the study predates them."""
    fits = row.get("fits") if hasattr(row, "get") else None
    return fits if isinstance(fits, str) else ""


def where_we_stand(goals: dict[str, dict | None], claims: pd.DataFrame, claims_at_pick: pd.DataFrame,
                   pending: dict[str, list[str]]) -> list[str]:  # fmt: skip
    """One row per task, the page's (and the README's) summary: BAR-PPO's median agent against the
    paper's, the seeds a learned attack breaks, how many of the paper's claims hold (at the kappa
    grid's pick where the task has a grid), and the runs still to come."""
    lines = ["| task | BAR-PPO (seeds), setting | natural: ours / paper | worst: ours / paper | seeds broken by a learned attack "
             "| quality goal | the paper's claims: hold / within noise / do not hold | runs not yet evaluated |", "|---" * 8 + "|"]  # fmt: skip
    for env in TASKS:
        goal = goals.get(env)
        waiting = ", ".join(pending.get(env, [])) or ("none" if goal is not None else "no study of it read here")
        if goal is None:
            lines.append(f"| {env} | not run | | | | | | {waiting} |")
            continue
        source = claims_at_pick if len(claims_at_pick) and (claims_at_pick["env"] == env).any() else claims
        mine = source[source["env"] == env] if len(source) else source
        if len(mine) and "study" in mine and goal.get("study") is not None:
            mine = mine[mine["study"] == goal["study"]]  # one study's claims: a task in two studies is not counted twice
        verdicts = mine["verdict"].value_counts() if len(mine) else pd.Series(dtype=int)
        counts = " / ".join(str(int(verdicts.get(v, 0))) for v in ("holds", "within noise", "does not hold"))
        undecided = int(len(mine) - sum(int(verdicts.get(v, 0)) for v in ("holds", "within noise", "does not hold")))
        counts += f" ({undecided} not decided: too few seeds or not run)" if undecided else ""
        broken = "not measured" if goal["broken"] is None else f"{goal['broken']} of {goal['attacked']}"
        broken += f" (fits per agent: {goal['fits']})" if goal.get("fits") else ""
        if goal.get("broken_transfers") is not None:
            broken += f"; {goal['broken_transfers']} of {goal['seeds']} counting the peers' adversaries transferred (held-out)"
        who = f"{goal['who']} ({goal['seeds']})" + (f", {goal['setting']}" if goal.get("setting") else "")
        lines.append(f"| {env} | {who} | {_cell(goal['natural'])} / {goal['paper_natural']:.0f} "
                     f"({goal['natural_ok']}) | {_cell(goal['worst'])} / {goal['paper_worst']:.0f} ({goal['worst_ok']}) "
                     f"| {broken} | {whole_goal(goal)} | {counts} | {waiting} |")  # fmt: skip
    return lines


def whole_goal(goal: dict) -> str:
    """Issue 17's quality goal on one task, all of it: the median agent's natural return and worst
    case at the paper's or above, on enough seeds, and no seed broken by a learned attack."""
    short = [name for name, ok in (("natural", goal["natural_ok"]), ("worst", goal["worst_ok"])) if ok != "met"]
    broken = max((b for b in (goal["broken"], goal.get("broken_transfers")) if b is not None), default=None)
    if broken is None:
        short.append("seeds broken not measured")
    elif broken:
        short.append(f"{broken} seed{'s' if broken > 1 else ''} broken")
    if goal["seeds"] < goal["need"]:
        short.append(f"{goal['seeds']} of {goal['need']} seeds")
    return "**met**" if not short else "not met: " + ", ".join(short)


def _pending_runs(study: Path) -> dict[str, list[str]]:
    """Per task, the methods with runs not yet trained and evaluated (how many seeds): every run of
    the study's spec, those its runner has not booked yet too."""
    from robustrl.experiments.spec import parse_spec
    from robustrl.experiments.study import Study

    spec = parse_spec(json.loads((study / "study.json").read_text())["spec"], where=str(study / "study.json"))
    status = Study.inspect(study, spec).status["runs"]
    left: dict[str, dict[str, int]] = {}
    for run in spec.runs:
        entry = status[run.name]
        if not (entry["train"] == "done" and entry["evaluate"] == "done"):
            by_label = left.setdefault(run.env_id, {})
            by_label[run.label] = by_label.get(run.label, 0) + 1
    return {env: [f"{label} x{n}" for label, n in labels.items()] for env, labels in left.items()}


def tried_settings(env: str, median: pd.DataFrame, reliability: pd.DataFrame) -> pd.DataFrame:
    """The settings tried for "no seed broken" on ``env``: the reliability rows of labels a learned
    attack was fitted on for every seed (>= 2 agents; a label in two studies: the one that attacked
    the most of its agents), fewest broken first, each with its median agent's natural return from
    the same study (NaN where that study has no median row)."""
    if not len(reliability):
        return pd.DataFrame(columns=["label", "agents", "broken", "broken_fraction", "broken_low", "broken_high", "natural"])
    tried = reliability[(reliability["env"] == env) & (reliability["agents"] >= 2)]
    tried = tried.sort_values("agents", ascending=False, kind="stable").drop_duplicates("label")
    tried = tried.sort_values(["broken_fraction", "agents"], ascending=[True, False], kind="stable")
    here = median[median["env"] == env] if len(median) else median
    if len(tried) and len(here) and "study" in here and "study" in tried:  # the same study's median agent
        here = here.merge(tried[["label", "study"]], on=["label", "study"])
    natural = here.drop_duplicates("label").set_index("label")["natural"] if len(here) else pd.Series(dtype=float)
    return tried.assign(natural=[natural.get(label, math.nan) for label in tried["label"]]).reset_index(drop=True)


def settings_tried(env: str, median: pd.DataFrame, reliability: pd.DataFrame) -> list[str]:
    """:func:`tried_settings` as a line of Markdown, each with its median agent's natural return (a
    knob that buys reliability by giving up return is no fix), and what their seed counts can tell
    apart: with none broken of n seeds the exact 95% interval on the fraction still reaches
    1 - 0.025^(1/n) (52% at 5 seeds, 31% at 10)."""
    tried = tried_settings(env, median, reliability)
    if not len(tried):
        return []
    cells = [f"{r['label']} {int(r['broken'])} of {int(r['agents'])} broken {format_broken_interval(r)}"
             + (f", median agent's natural {r['natural']:.0f}" if pd.notna(r["natural"]) else "") for _, r in tried.iterrows()]  # fmt: skip
    n = int(tried["agents"].max())
    return [f"  - settings tried for no seed broken (a learned attack fitted on every seed): {'; '.join(cells)}. "
            f"None broken of {n} seeds would still leave the fraction's 95% interval reaching {1 - 0.025 ** (1 / n):.0%}: "
            "settings whose counts differ by one seed are not told apart."]  # fmt: skip


def plot_settings(median: pd.DataFrame, reliability: pd.DataFrame, reference: dict, out: Path) -> Path | None:
    """One panel per task with two settings tried or more: each setting's fraction of seeds broken
    by a learned attack (exact 95% interval) against its median agent's natural return, beside the
    paper's BAR-PPO natural return. The quality goal asks for the lower right (no seed broken, the
    paper's return or more): the figure shows which settings buy reliability with return."""
    panels = [(env, tried) for env in TASKS if len(tried := tried_settings(env, median, reliability).dropna(subset=["natural"])) >= 2]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.4), squeeze=False)
    for axis, (env, tried) in zip(axes[0], panels):
        fraction = tried["broken"] / tried["agents"]
        below, above = (fraction - tried["broken_low"]).clip(lower=0), (tried["broken_high"] - fraction).clip(lower=0)
        axis.errorbar(tried["natural"], fraction, yerr=[below, above], fmt="o", capsize=3, alpha=0.8)
        # labels above and below in turn along the x axis: settings with the same count sit close
        for i, (_, row) in enumerate(tried.sort_values("natural").iterrows()):
            axis.annotate(f"{row['label']} ({int(row['broken'])}/{int(row['agents'])})", (row["natural"], row["broken"] / row["agents"]),
                          fontsize=7, xytext=(4, 4 if i % 2 == 0 else -11), textcoords="offset points")  # fmt: skip
        paper = paper_values(reference, env).get("barpo")
        if paper is not None:
            axis.axvline(paper["natural"], color="grey", ls="--", lw=0.8, label=f"paper's BAR-PPO natural ({paper['natural']:.0f})")
            axis.legend(fontsize=7, loc="upper left")
        axis.set(title=f"{env}: settings tried for no seed broken", xlabel="median agent's natural return",
                 ylabel="seeds broken by a learned attack [exact 95%]", ylim=(-0.05, 1.05))  # fmt: skip
        axis.margins(x=0.2)  # room for the rightmost label
    figure.tight_layout()
    return save_figure(figure, out, "settings_reliability")["settings_reliability"]


GUIDED_ALGOS = ("ar-ppo", "bar-ppo")  # the methods with SPO guidance to drop (``--no-guidance``)


def run_methods(study: Path, saved: dict | None = None) -> dict[str, tuple[str, bool | None]]:
    """Each run of ``study`` -> (algo, guidance) from the config it trained with (study.json), not
    from its spec label: grid axes extend labels, and a study-wide knob sets guidance too. Guidance
    None: guided for the first part of the run only (``robust.guidance_until`` < 1)."""
    saved = saved if saved is not None else json.loads((study / "study.json").read_text())
    methods = {}
    for name, run in saved.get("runs", {}).items():
        config = run.get("config", {})
        robust = config.get("robust") or {}
        guided: bool | None = bool(robust.get("guidance", True))
        if guided and float(robust.get("guidance_until", 1.0)) < 1.0:
            guided = None  # guided for part of the run only: neither group of the pooled comparison
        methods[name] = (str(config.get("algo")), guided)
    return methods


def training_setting(config: dict) -> str:
    """A run's training setting as one name that holds across tasks: the algorithm, then every
    robust knob it reads (``robustrl.algos.robust_knobs``) that differs from RobustConfig's
    default, kappa always where it enters the loss, and a learned adversary in the loop. eps is
    left out: each task has its own radius, and a setting is pooled over tasks at theirs. Not the
    spec's label: a label names a setting within one study (barpo_walker_cheetah's ``bar-ppo``
    is barpo_reliability's ``bar-ppo-k1``)."""
    from robustrl.algos import robust_knobs
    from robustrl.config import RobustConfig

    default = RobustConfig()
    robust = config.get("robust") or {}
    algo = str(config.get("algo"))
    knobs = [k for k in robust_knobs(algo) if k != "eps"]
    guided = bool(robust.get("guidance", default.guidance))
    parts = [algo] + (["no guidance"] if "guidance" in knobs and not guided else [])
    for knob in knobs:
        value = robust.get(knob, getattr(default, knob))
        if knob == "guidance" or (knob == "kappa" and "guidance" in knobs and not guided):
            continue  # said above; without guidance kappa does not enter the loss
        if knob == "kappa" or value != getattr(default, knob):
            parts.append(f"{knob} {value:g}" if isinstance(value, float) else f"{knob} {value}")
    if learned_adversary_on(config.get("atla")):
        parts.append(f"ATLA {config['atla']['adversary']}")
    return ", ".join(parts)


def label_settings(saved: dict) -> dict[tuple[str, str], str]:
    """(env, label) -> :func:`training_setting` of that label's runs in one study (study.json);
    one label with two settings on one task (a spec edited between runs) reads as both."""
    found: dict[tuple[str, str], set[str]] = {}
    for run in saved.get("runs", {}).values():
        config = run.get("config", {})
        found.setdefault((str(config.get("env_id")), str(run.get("label"))), set()).add(training_setting(config))
    return {key: " / ".join(sorted(names)) for key, names in found.items()}


def settings_pooled(reliability: pd.DataFrame, settings_of: dict[str, dict[tuple[str, str], str]],
                    per_run: pd.DataFrame | None = None, held_out: pd.DataFrame | None = None) -> list[str]:  # fmt: skip
    """The seeds a learned attack breaks per training setting, pooled over tasks: one setting tried
    on several tasks has more seeds than any one task (5 unbroken seeds leave the exact interval
    reaching 52%; 11 leave 28%). Reads the learned attacks fitted on every seed (reliability rows
    with >= 2 agents; per task and label, the study that attacked the most), and lists only the
    settings tried on two tasks or more. The tasks differ in eps, budget (Ant: 10M steps) and
    PPO's hyperparameters, so a pooled fraction says how often the setting breaks, not why. Given
    ``per_run`` and the held-out pages (:func:`held_out_table`), each cell also counts the seeds
    broken once the peers' transferred adversaries count (:func:`broken_with_transfers`), where
    every seed of the cell met them; the pooled column counts them where every cell has."""
    if not len(reliability) or "study" not in reliability:
        return []
    tried = reliability[reliability["agents"] >= 2].sort_values("agents", ascending=False, kind="stable").copy()
    tried["setting"] = [settings_of.get(study, {}).get((env, label)) for study, env, label in zip(tried["study"], tried["env"], tried["label"])]
    # one setting's agents on one task once (two studies may hold the same runs, copied in):
    # the study that attacked the most of them. By setting, not label: one label may name two
    # settings in two studies
    tried = tried.dropna(subset=["setting"]).drop_duplicates(["env", "setting"])
    pooled = tried.groupby("setting").filter(lambda group: group["env"].nunique() >= 2)
    if not len(pooled):
        return []
    envs = [env for env in TASKS if env in set(pooled["env"])]
    lines = ["", "### Pooled over tasks: the seeds a learned attack breaks per training setting", "",
             "Settings tried with a learned attack fitted on every seed on two tasks or more (per task: broken of attacked, "
             "from the study that attacked the most), under each seed's own fits, and in brackets where more break once every "
             "adversary fitted on the seed's peers is replayed on it (each task's \"Held-out attacks\"). The tasks differ in eps, budget and PPO's "
             "hyperparameters: a pooled fraction says how often a setting breaks, not why.", "",
             "| setting | " + " | ".join(envs) + " | pooled: broken of agents [exact 95% interval] |",
             "|---|" + "---:|" * len(envs) + "---|"]  # fmt: skip
    pooled = pooled.assign(transfers=[transfer_count(row, per_run, held_out) for _, row in pooled.iterrows()])
    order = pooled.groupby("setting").apply(lambda g: g["broken"].sum() / g["agents"].sum(), include_groups=False).sort_values(kind="stable")
    for setting in order.index:
        group = pooled[pooled["setting"] == setting].set_index("env")

        def cell(env: str) -> str:
            own, transferred = int(group.at[env, "broken"]), group.at[env, "transfers"]
            more = f" ({int(transferred)} with transfers)" if transferred is not None and not pd.isna(transferred) and transferred != own else ""
            return f"{own} of {int(group.at[env, 'agents'])}{more}"

        cells = [cell(env) if env in group.index else "" for env in envs]
        broken, agents = int(group["broken"].sum()), int(group["agents"].sum())
        transfers = "" if group["transfers"].isna().any() else f"; {int(group['transfers'].sum())} of {agents} with transfers"
        lines.append(f"| {setting} | " + " | ".join(cells) + f" | {broken} of {agents} {broken_interval_cell(broken, agents)}{transfers} |")
    return lines


def transfer_count(row: pd.Series, per_run: pd.DataFrame | None, held_out: pd.DataFrame | None) -> float:
    """One reliability row's seeds broken counting the peers' transferred adversaries
    (:func:`broken_with_transfers` on the row's runs); NaN where they were not all replayed."""
    if per_run is None or held_out is None or not len(per_run) or "run" not in per_run:
        return math.nan
    mine = per_run[(per_run["env"] == row["env"]) & (per_run["label"] == row["label"])]
    if "study" in mine:
        mine = mine[mine["study"] == row["study"]]
    count = broken_with_transfers(set(mine["run"]), held_out)
    return math.nan if count is None else float(count)


def guidance_pooled(env: str, per_run: pd.DataFrame, methods: dict[str, tuple[str, bool | None]]) -> list[str]:
    """Does SPO guidance (the PPO loss beside kappa * L_bar, BARPO paper Sec. 5) go with the seeds a
    learned attack breaks? Every AR-PPO and BAR-PPO agent of ``env`` that SA-RL or PA-AD ran on,
    pooled over studies and settings by algorithm and guidance (``methods``: run name -> (algo,
    guidance), from :func:`run_methods`), each agent once (a run in two studies keeps its lowest
    learned worst / natural: the worst of every fit seen), broken as the reliability table says
    (learned worst < 50% of natural), with a two-sided Fisher exact test per algorithm. Pooling
    mixes settings (kappa, inner solve, budget) and fit counts (a median-protocol study may have
    fitted SA-RL once), so a difference here is a lead for a controlled run, not a finding."""
    from scipy.stats import fisher_exact  # a dependency already (pyproject: exact intervals)

    learned = [a for a in LEARNED if a in per_run.columns]
    if not learned or not len(per_run):
        return []
    rows = per_run[(per_run["env"] == env)].dropna(subset=learned, how="all").copy()
    if not len(rows):
        return []
    unknown = sorted(set(rows["run"]) - set(methods))
    if unknown:  # a run no study.json names would drop out of the counts unseen
        raise ValueError(f"guidance_pooled: no training config for run(s) {', '.join(unknown)}")
    rows["algo"] = [methods[run][0] for run in rows["run"]]
    rows["guided"] = [methods[run][1] for run in rows["run"]]
    rows = rows[rows["algo"].isin(GUIDED_ALGOS) & rows["guided"].notna()]  # partial guidance: in neither group
    if not (rows.groupby("algo")["guided"].nunique() == 2).any():
        return []  # nothing to set side by side
    rows["ratio"] = rows[learned].min(axis=1) / rows["natural"].abs()
    rows = rows.sort_values("ratio", kind="stable").drop_duplicates("run")
    rows["broken"] = rows["ratio"] < BROKEN_FRACTION
    lines = ["", "### Guidance and the seeds a learned attack breaks (every AR-PPO / BAR-PPO agent attacked, pooled over studies)", "",
             "Broken: a learned attack (SA-RL or PA-AD) leaves it below 50% of its natural return. Each agent once (its "
             "lowest ratio where two studies attacked it); settings (kappa, inner solve, budget) and SA-RL fit counts "
             "differ between agents, so this is a lead for a controlled comparison (same settings, same fits), not a finding.", "",
             "| algorithm | guidance | agents | broken | fraction broken [exact 95% interval] | median natural | "
             "Fisher exact p (guided vs not) |", "|---|---|---:|---:|---|---:|---|"]  # fmt: skip
    for algo, group in rows.groupby("algo", sort=True):
        counts = {g: (int(part["broken"].sum()), len(part)) for g, part in group.groupby("guided")}
        p = ""
        if len(counts) == 2:
            (b1, n1), (b0, n0) = counts[True], counts[False]
            p = f"{fisher_exact([[b1, n1 - b1], [b0, n0 - b0]])[1]:.2f}"
        for guided in (True, False):
            if guided not in counts:
                continue
            broken, agents = counts[guided]
            part = group[group["guided"] == guided]
            lines.append(f"| {algo} | {'with' if guided else 'without'} | {agents} | {broken} | {broken / agents:.0%} {broken_interval_cell(broken, agents)} | "
                         f"{part['natural'].median():.0f} | {p if guided else ''} |")  # fmt: skip
    return lines


# The paper's BAR-PPO ablations, natural / worst per task, transcribed from
# shared/papers/barpo-tension-optimality-robustness.txt (the shared reference JSON holds Tables 2
# and 4 only): App. G.4 Table 8 (kappa), G.5 Table 9 (inner steps, presumably at step size
# eps/steps) and Table 10 (step size k * eps/steps, presumably at 10 steps: its first column equals
# Table 9's 10-step one). Table 8's worst case includes the learned attacks (its Ant kappa-1 row is
# Table 2's, worst 2825 under PA-AD); Tables 9 and 10's appear not to: their Ant 10-step worst,
# 4171, is Table 2's RS return, and their Walker2d 10-step row (4401 / 4140) has Table 8's kappa-1
# natural return with a worst case far above its 3254. So ours beside Tables 9-10 is the cheap
# attacks' worst. The paper does not say at which kappa Tables 9-10 ran (their 10-step natural
# returns equal Table 8's kappa-1 ones on Walker2d and Ant, 4401 and 5024: perhaps kappa 1).
# Table 8's Walker2d kappa 0.3 worst, 2669, is 2699 in Tables 2 and 4 (the goal reads those).
PAPER_KAPPA = {  # Table 8
    "Hopper-v5": {1.0: (3636, 1083), 0.3: (3684, 1340), 0.1: (2151, 959)},
    "Walker2d-v5": {1.0: (4401, 3254), 0.3: (4732, 2669), 0.1: (4672, 1615)},
    "HalfCheetah-v5": {1.0: (3843, 3436), 0.3: (4837, 3181), 0.1: (5133, 749)},
    "Ant-v5": {1.0: (5024, 2825), 0.3: (5557, 1413), 0.1: (5596, 439)},
}
PAPER_INNER_STEPS = {  # Table 9: inner steps at step size eps/steps
    "Hopper-v5": {10: (3677, 1240), 15: (3742, 1049), 20: (3652, 1194)},
    "Walker2d-v5": {10: (4401, 4140), 15: (4733, 3536), 20: (4519, 3913)},
    "HalfCheetah-v5": {10: (4623, 3453), 15: (4408, 3845), 20: (4455, 3972)},
    "Ant-v5": {10: (5024, 4171), 15: (4917, 4333), 20: (4852, 4303)},
}
PAPER_STEP_SIZE = {  # Table 10: step size k * eps/steps at 10 steps, k = 1, 2, 3
    "Hopper-v5": {1: (3677, 1240), 2: (3573, 1242), 3: (3673, 1250)},
    "Walker2d-v5": {1: (4401, 4140), 2: (4424, 4284), 3: (4219, 3159)},
    "HalfCheetah-v5": {1: (4623, 3453), 2: (4307, 3754), 3: (4549, 3988)},
    "Ant-v5": {1: (5024, 4171), 2: (4772, 4124), 3: (4853, 4226)},
}


def held_out_table(results: Path = ROOT / "benchmarks" / "results") -> pd.DataFrame:
    """Every held-out page's agents (``benchmarks/held_out.py``'s ``held_out_<name>.json``), one row
    per (page, agent), with the page's name in ``page``; empty where there is none."""
    frames = []
    for path in sorted(results.glob("held_out_*.json")):
        try:
            table = pd.DataFrame(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # a page being written: read at the next generation
        if len(table) and {"env", "run", "drop", "held_out_worst"} <= set(table.columns):
            frames.append(table.assign(page=path.stem))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["page", "env", "label", "run"])


def broken_with_transfers(runs: set[str], held_out: pd.DataFrame) -> int | None:
    """How many of ``runs`` a learned attack breaks (below BROKEN_FRACTION of natural) counting the
    adversaries of their peers transferred (held-out pages: each run's lowest learned worst over
    every page it is in); None unless every run met a transferred adversary."""
    if not runs or not len(held_out) or "learned_worst" not in held_out:
        return None
    rows = held_out[held_out["run"].isin(runs) & held_out["held_out_worst"].notna()]
    if set(rows["run"]) != runs:
        return None
    lowest = rows.groupby("run").agg(learned=("learned_worst", "min"), natural=("natural", "first"))
    return int((lowest["learned"] < BROKEN_FRACTION * lowest["natural"].abs()).sum())


def held_out_lines(env: str, held_out: pd.DataFrame) -> list[str]:
    """Issue 17, item 6 on one task: per held-out page with agents of ``env``, how many agents met
    a held-out attack, which lost more than 20% of the worst case their study measured (where the
    study ran only the cheap attacks on an agent that worst case is an upper bound, so a flag there
    says the learned attacks were missing), and how many a learned attack breaks once the
    transferred adversaries count."""
    mine_all = held_out[(held_out["env"] == env) & held_out["held_out_worst"].notna()] if len(held_out) else held_out
    rows = []
    for page, mine in mine_all.groupby("page", sort=True):
        flagged = mine[mine["drop"] > HELD_OUT_DROP]
        largest = mine.loc[mine["drop"].idxmax()]
        flags = ", ".join(f"{r['label']} {str(r['run']).rsplit('-', 1)[-1]} ({-r['drop']:+.0%})" for _, r in flagged.iterrows())
        # pages written before the column: the median protocol's transfers, or a reliability study's every seed
        transfers = ", ".join(sorted(set(mine["transfers"].dropna()))) if "transfers" in mine else ""
        transfers = transfers or "not recorded (page written before session 25)"
        learned = mine["learned_worst"] if "learned_worst" in mine else pd.Series(math.nan, index=mine.index)
        attacked = mine[learned.notna()]  # pages written before the column: not counted
        broken = f"{int((attacked['learned_worst'] < BROKEN_FRACTION * attacked['natural'].abs()).sum())} of {len(attacked)}" if len(attacked) else "-"
        rows.append(f"| [{page}]({page}.md) | {', '.join(sorted(mine['label'].unique()))} | {transfers} "
                    f"| {len(mine)} | {len(flagged)}{': ' + flags if flags else ''} | {-largest['drop']:+.0%} ({largest['label']}) | {broken} |")  # fmt: skip
    if not rows:
        return []
    return ["", "### Held-out attacks (item 6)", "",
            "SA-RL / PA-AD adversaries fitted on another seed of the same method, replayed unchanged (`benchmarks/held_out.py`). "
            f"Flagged: the held-out worst case is more than {HELD_OUT_DROP:.0%} below the worst case the study measured on that "
            "agent (over the cheap attacks only where the study fitted the learned ones on its median agent alone). Broken: the "
            "lowest learned return, the agent's own fits and the transferred ones, below 50% of its natural return.", "",
            "| page | methods | adversaries transferred | agents | flagged (held-out vs measured worst) | "
            "held-out vs measured worst, lowest | broken, transfers counted |",
            "|---|---|---|---:|---|---:|---:|", *rows]  # fmt: skip


def _steps(value: Any) -> str:
    """A method's own budget as the page writes it, as run labels do: 4000000 -> 4M (a list: each)."""
    from robustrl.experiments.spec import budget_label

    values = value if isinstance(value, list) else [value]
    return ", ".join("the paper's" if v is None else budget_label(int(v)) for v in values)


def _knob_value(value: Any) -> str:
    """A spec knob for a table cell: a section such as ``atla: {adversary: sa-rl, fraction: 0.25}``
    reads "sa-rl, fraction 0.25" (its first key is the choice, the rest its options)."""
    if isinstance(value, dict):
        items = list(value.items())
        return ", ".join(str(v) if i == 0 else f"{k} {v}" for i, (k, v) in enumerate(items))
    return str(value)


def paper_ablations(env: str, median: pd.DataFrame, settings: dict[str, dict[str, dict]]) -> list[str]:
    """Our guided BAR-PPO median agents beside the paper's ablations at the same setting: Table 8
    where only kappa differs from our defaults; Table 9 where the inner steps do (at step size
    eps/steps), Table 10 where the step size does (at 10 steps), both against our cheap attacks'
    worst (see PAPER_INNER_STEPS' comment); other knobs (per-minibatch solve, warm-up, a step size
    at other steps) have no paper counterpart and read "-". ``settings``: study -> label -> the
    spec's method entry."""
    from robustrl.attacks import ATTACKS
    from robustrl.config import RobustConfig, default_eps
    from robustrl.evaluate.reports import split_attacks

    default = RobustConfig()
    rows, seen = [], set()
    here = median[median["env"] == env]
    cheap = split_attacks(c for c in here.columns if c in ATTACKS)[0]  # the median protocol's cheap attacks
    for _, row in here.iterrows():
        method = settings.get(row["study"], {}).get(row["label"], {})
        # the same median agent in two studies with the same cells (a reliability study that
        # shares the runs): one row
        same = (row.get("run"), _cell(row["natural"]), _cell(row["worst"]))
        if method.get("algo") != "bar-ppo" or method.get("guidance", True) is False or same in seen:
            continue
        seen.add(same)
        kappa = float(method.get("kappa", default.kappa))
        steps = int(method.get("inner_steps", default.inner_steps))
        step_size = method.get("inner_step_size")
        # the step size as a multiple of eps/steps (ours defaults to 1)
        multiple = 1.0 if step_size is None else float(step_size) * steps / float(method.get("eps") or default_eps(env))
        knobs = sorted(k for k in method if k not in ("algo", "kappa", "paper", "seeds", "inner_steps", "inner_step_size")
                       and not (k == "guidance" and method[k] is True))  # fmt: skip
        setting = f"kappa {kappa:g}" + (f", {steps} inner steps" if steps != default.inner_steps else "")
        setting += f", step size {multiple:g} eps/steps" if not math.isclose(multiple, 1.0) else ""
        setting += "".join(f", {_steps(method[k])} steps" if k == "steps" else f", {k} {_knob_value(method[k])}" for k in knobs)
        cheap_worst = min((row[c] for c in cheap if not pd.isna(row[c])), default=math.nan)
        paper, source, ours = None, "", f"{_cell(row['natural'])} / {_cell(row['worst'])}"
        if not knobs and math.isclose(multiple, 1.0) and steps == default.inner_steps:
            paper, source = PAPER_KAPPA.get(env, {}).get(kappa), "Table 8"
        elif not knobs and math.isclose(multiple, 1.0):
            paper, source = PAPER_INNER_STEPS.get(env, {}).get(steps), f"Table 9, {steps} steps (kappa not stated)"
        elif not knobs and steps == 10 and math.isclose(multiple, round(multiple)):
            paper, source = PAPER_STEP_SIZE.get(env, {}).get(round(multiple)), f"Table 10, {round(multiple)} eps/steps (kappa not stated)"
        if paper and source != "Table 8":  # the paper's worst there: the cheap attacks only
            ours = f"{_cell(row['natural'])} / {_cell(cheap_worst)} (cheap attacks; all: {_cell(row['worst'])})"
        theirs = f"{paper[0]} / {paper[1]}" if paper else "-"
        rows.append(f"| {setting} | {_who(row, here)} ({int(row['seeds'])}) | {ours} | {theirs} | {source if paper else ''} |")
    if not rows:
        return []
    return ["", "### BAR-PPO beside the paper's ablations (App. G.4 Table 8: kappa; G.5 Tables 9-10: inner steps, step size)", "",
            "Median agents, natural / worst. The quality goal reads Tables 2-4 (the paper's pick per task, "
            "kappa 0.3 except Ant's 1); Table 8 gives the paper's own return at the kappa we ran. Tables 9-10's worst "
            "case appears to leave out SA-RL and PA-AD (their Ant 10-step worst is Table 2's RS return), so ours "
            "beside them is the cheap attacks' worst.", "",
            "| setting | ours (seeds) | ours: natural / worst | paper: natural / worst | paper's table |",
            "|---|---|---|---|---|", *rows]  # fmt: skip


FINGERPRINT = "inputs.sha256"
README_BEGIN, README_END = "<!-- barpo_table2: where we stand -->", "<!-- /barpo_table2 -->"


def replace_between_markers(path: Path, body: list[str]) -> None:
    """Put ``body`` between the marker lines of ``path`` (the README's status per task), so its
    numbers are the page's, never copied by hand; a file without both markers is an error."""
    from robustrl.errors import InvalidArgumentError

    lines = path.read_text().split("\n")
    if README_BEGIN not in lines or README_END not in lines or lines.index(README_END) < lines.index(README_BEGIN):
        raise InvalidArgumentError(f"{path} has no {README_BEGIN!r} ... {README_END!r} block to fill")
    begin, end = lines.index(README_BEGIN), lines.index(README_END)
    path.write_text("\n".join([*lines[: begin + 1], *body, *lines[end:]]))


def inputs_fingerprint(study: Path) -> str:
    """A digest of everything a study's report is computed from: the study's own records (its
    status, spec, and every run's config, progress, evaluation reports and checkpoint metadata:
    its .json/.csv files; not the weights, which the reports do not read, nor the results store,
    which they rebuild), the paper's tables and robustrl's code. The study reports (bootstrap intervals,
    figures) take most of this script's minutes; one whose digest is unchanged is not rewritten."""
    import hashlib

    import robustrl

    digest = hashlib.sha256()
    code = Path(robustrl.__file__).parent
    files = [(f"study/{p.relative_to(study)}", p) for p in study.rglob("*") if p.suffix in (".json", ".csv")
             and p.is_file() and "results" not in p.relative_to(study).parts[:1] and "set_aside" not in p.relative_to(study).parts[:1]]
    files += [(f"code/{p.relative_to(code)}", p) for p in code.rglob("*.py")]
    files += [("reference", REFERENCE)] if REFERENCE.is_file() else []  # ../shared beside the checkout, or no paper columns
    for key, path in sorted(files):
        digest.update(key.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("studies", nargs="+", type=Path, help="study directories (robustrl study run ... --out DIR)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "barpo_table2")
    parser.add_argument("--note", action="append", default=[], help="a line for the page's notes (budget, pauses)")
    parser.add_argument("--force", action="store_true", help="rewrite every study's report, changed or not")
    parser.add_argument("--readme", type=Path, help="also put 'Where we stand per task' into this file, between "
                        f"its lines {README_BEGIN!r} and {README_END!r} (the repository's README.md has them)")  # fmt: skip
    args = parser.parse_args()
    if args.readme and not {README_BEGIN, README_END} <= set(args.readme.read_text().split("\n")):
        parser.error(f"--readme {args.readme}: no {README_BEGIN!r} ... {README_END!r} block to fill")  # before minutes of work
    reference = load_reference(REFERENCE)
    args.out.mkdir(parents=True, exist_ok=True)
    medians, means, claims, per_runs, reliabilities, grids, screens, sources, progress = [], [], [], [], [], [], [], {}, []
    claims_at_pick: list[pd.DataFrame] = []
    pending: dict[str, list[str]] = {}
    paper_names: dict[str, dict[str, str]] = {}  # study -> label -> the paper's name of the method
    settings: dict[str, dict[str, dict]] = {}  # study -> label -> the spec's method entry
    trained_as: dict[str, tuple[str, bool | None]] = {}  # run -> (algo, guidance; None: partly) it trained with
    settings_of: dict[str, dict[tuple[str, str], str]] = {}  # study -> (env, label) -> training setting
    for study in args.studies:
        saved = json.loads((study / "study.json").read_text())  # read once: its name and its spec's methods
        name = saved["name"]
        out = args.out / name
        fingerprint = inputs_fingerprint(study)
        if args.force or not (out / FINGERPRINT).is_file() or (out / FINGERPRINT).read_text() != fingerprint:
            write_study_report(study, out, REFERENCE)
            (out / FINGERPRINT).write_text(fingerprint)  # written last: a report cut short is redone
        else:
            print(f"{name}: unchanged since its report was written ({out}); --force rewrites it")
        for path, frames in [("table2_median.csv", medians), ("table2_mean.csv", means), ("claims.csv", claims),
                             ("per_run.csv", per_runs), ("reliability.csv", reliabilities), ("kappa_grid.csv", grids),
                             ("claims_at_pick.csv", claims_at_pick), ("screening.csv", screens)]:  # fmt: skip
            if (out / path).is_file():
                frame = pd.read_csv(out / path)
                frame["study"] = name
                frames.append(frame)
        sources[name] = str(study)
        progress.append(_study_progress(name, study))
        for env, waiting in _pending_runs(study).items():
            pending.setdefault(env, []).extend(waiting)
        methods = saved["spec"].get("methods", {})
        paper_names[name] = {label: str(m["paper"]) for label, m in methods.items() if (m or {}).get("paper")}
        settings[name] = {label: dict(m or {}) for label, m in methods.items()}
        trained_as.update(run_methods(study, saved))
        settings_of[name] = label_settings(saved)
    cat = lambda frames: pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()  # noqa: E731
    median, mean, claim, per_run = cat(medians), cat(means), cat(claims), cat(per_runs)
    reliability, grid, claim_at_pick, screen = cat(reliabilities), cat(grids), cat(claims_at_pick), cat(screens)
    columns = [c for c in ["natural", "random", "critic", "mad", "rs", "sa-rl", "pa-ad", "worst"] if c in median]

    goals = {env: goal_status(env, per_run, median, reliability, reference, grid) if len(median) else None for env in TASKS}
    held_out = held_out_table()
    for env, goal in goals.items():  # the training setting beside the label: "bar-ppo" is kappa 0.3 in one study, 1 in another
        if goal is not None:
            goal["setting"] = settings_of.get(goal.get("study"), {}).get((env, goal["label"]), "")
            mine = per_run[(per_run["env"] == env) & (per_run["label"] == goal["label"])]
            if "study" in mine and goal.get("study") is not None:
                mine = mine[mine["study"] == goal["study"]]
            goal["broken_transfers"] = broken_with_transfers(set(mine["run"]), held_out)
    standing = where_we_stand(goals, claim, claim_at_pick, pending)
    lines = [
        "# BARPO's Tables 2 and 4 beyond Hopper (issue 17)",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python benchmarks/barpo_table2.py "
        + " ".join(f"runs/studies/{s.name}" for s in args.studies) + "` (the study directories, `robustrl study run`'s "
        "default place). Each study's full report (Markdown, LaTeX, CSV tables, "
        "claims, figures) is in `barpo_table2/<study>/`. Returns of deterministic episodes at the paper's eps per "
        "task (Hopper 0.075, Walker2d 0.05, HalfCheetah 0.15, Ant 0.15).",
        "",
        *[f"- {note}" for note in args.note],
        *[f"- {line}" for line in progress],
        "",
        "## Where we stand per task",
        "",
        *standing,
        "",
        PROTOCOL,
    ]
    for env in TASKS:
        lines += [f"## {env}", ""]
        rows = median[median["env"] == env] if len(median) else median
        if not len(rows):
            lines += [_not_run(env), ""]
            continue
        lines += ["### Median agent (the paper's protocol) beside the paper", "",
                  "| method (seeds) | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]  # fmt: skip
        for _, row in rows.iterrows():
            lines.append(f"| {_who(row, rows)} ({int(row['seeds'])}) | " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
        for table, name, cells in paper_entries(reference, env):
            lines.append(f"| paper {table}: {name} | " + " | ".join(_cell(cells.get(c)) for c in columns) + " |")
        lines += ["", "### Mean over seeds [95% stratified-bootstrap interval]", ""]
        means = mean[mean["env"] == env]
        twice = sorted(label for label, studies in means.groupby("label")["study"] if studies.nunique() > 1)
        if twice:
            lines += [f"{', '.join(twice)}: the same agents in two studies; the worst case differs where one ran the "
                      "learned attacks on every seed (`median: false`) and the other on its median agent only (the "
                      "other seeds' worst case is then over the cheap attacks, an upper bound).", ""]  # fmt: skip
        lines += ["| method (seeds) | natural | worst |", "|---|---|---|"]
        for _, row in means.iterrows():
            lines.append(f"| {_who(row, means)} ({int(row['seeds'])}) | {_mean_cell(row, 'natural')} | {_mean_cell(row, 'worst')} |")
        picked = claim_at_pick[claim_at_pick["env"] == env] if len(claim_at_pick) else claim_at_pick
        if len(picked):
            # per study: the methods its grid moved (another study's claims may name the same label)
            pairs = lambda frame: set(zip(frame["study"], frame["method"])) if "study" in frame else set(zip([""] * len(frame), frame["method"]))  # noqa: E731
            fixed = pairs(claim[claim["env"] == env]) if len(claim) else set()
            moved = ", ".join(sorted({method for _, method in pairs(picked) - fixed}))
            lines += ["", "### The paper's claims at the kappa grid's pick (the paper's protocol)", "",
                      f"Each method at the kappa its grid picked (below; here {moved}): "
                      "the paper picks kappa per task from the grid and reports that run.", ""]  # fmt: skip
            lines += _claims_table(picked)
        if len(claim) and (claim["env"] == env).any():
            title = "at the kappa the spec names for the paper's method" if len(picked) else ""
            lines += ["", f"### The paper's claims {title}".rstrip(), ""]
            lines += _claims_table(claim[claim["env"] == env])
        if len(grid) and (grid["env"] == env).any():
            picked_from = ", ".join(f"{k:g}" for k in PAPER_KAPPAS)
            lines += ["", "### kappa grid (median agents)", "",
                      f"Each method's kappa is picked by BARPO App. F.3's rule from the paper's grid {{{picked_from}}}, among labels that "
                      "differ in kappa alone and only where two of its kappas or more ran; other kappas are shown, not picked.", "",
                      "| method | kappa | natural | worst | |", "|---|---:|---:|---:|---|"]  # fmt: skip
            grids = grid[grid["env"] == env]
            for _, row in grids.iterrows():
                lines.append(f"| {_who(row, grids, 'algo')} ({row['seeds']}) | {row['kappa']:g} | {row['natural']:.0f} | {row['worst']:.0f} | "
                             f"{kappa_grid_mark(row)} |")  # fmt: skip
        lines += paper_ablations(env, median, settings)
        if len(reliability) and (reliability["env"] == env).any():
            lines += ["", "### Learned attacks per agent", "",
                      "| method | agents attacked | fits per agent (worst kept) | broken (worst < 50% natural) "
                      "| fraction broken [exact 95% interval] | mean worst / natural [95% bootstrap interval] |",
                      "|---|---:|---|---:|---|---|"]  # fmt: skip
            attacked = reliability[reliability["env"] == env]
            for _, row in attacked.iterrows():
                lines.append(f"| {_who(row, attacked)} | {row['agents']} | {_fits_text(row) or '1 each'} | {row['broken']} | "
                             f"{row['broken_fraction']:.0%} {format_broken_interval(row)} | {format_ratio_cell(row)} |")  # fmt: skip
        lines += guidance_pooled(env, per_run, trained_as)
        lines += held_out_lines(env, held_out)
        if len(screen) and (screen["env"] == env).any():
            lines += ["", "### Do the cheap attacks tell which agents the learned ones break?", "",
                      "Per study, every agent SA-RL and PA-AD ran on, methods pooled (so a correlation partly reflects "
                      "differences between methods): a cheap attack (seconds per agent) "
                      "that ranked agents as the learned ones do (1M-step fits, minutes each) would let a study fit those on fewer seeds.", ""]  # fmt: skip
            rows = screen[screen["env"] == env]
            lines += format_screening(rows.assign(env=rows["env"] + " [" + rows["study"] + "]"), LEARNED).rstrip("\n").split("\n")
        lines.append("")
    lines += ["## Quality goal (issue 17): BAR-PPO natural and worst case >= the paper's, no seed broken", ""]
    for env in TASKS:
        lines += quality_goal(env, per_run, median, reliability, reference, grid) if len(median) else [f"- {env}: not run."]
        lines += settings_tried(env, median, reliability)
    lines += settings_pooled(reliability, settings_of, per_run, held_out)
    tradeoff = plot_settings(median, reliability, reference, args.out)
    if tradeoff:
        lines += ["", f"![settings tried](barpo_table2/{tradeoff.name}) Per task, each setting tried for no seed broken: "
                  "the fraction of its seeds a learned attack breaks (exact 95% interval) against its median agent's natural "
                  f"return; the goal is the lower right of the dashed line (`barpo_table2/{tradeoff.name}`, and .svg)."]  # fmt: skip
    lines.append("")
    figure = plot_against_paper(median, grid, paper_names, reference, args.out)
    if figure:
        at = lines.index(PROTOCOL)
        lines[at:at] = [f"![ours against the paper](barpo_table2/{figure.name}) Median agents, ours (filled) against the "
                        "paper's (hollow, arrow to ours), each method at its kappa grid's pick where the task has a grid: "
                        f"`barpo_table2/{figure.name}` (and .svg).", ""]  # fmt: skip
    (args.out.parent / "barpo_table2.md").write_text("\n".join(lines))
    payload = {"studies": sources, "median": median.to_dict("records"), "mean": mean.to_dict("records"),
               "claims": claim.to_dict("records"), "reliability": reliability.to_dict("records"),
               "claims_at_pick": claim_at_pick.to_dict("records"), "kappa_grid": grid.to_dict("records"),
               "screening": screen.to_dict("records")}  # fmt: skip
    (args.out.parent / "barpo_table2.json").write_text(json.dumps(payload, indent=1, default=str))
    page = args.out.parent / "barpo_table2.md"
    if args.readme:  # after the page: the README never names a page that was not written
        shown = page.resolve().relative_to(ROOT) if page.resolve().is_relative_to(ROOT) else page
        replace_between_markers(args.readme, [f"Generated {datetime.now(UTC):%Y-%m-%d} by benchmarks/barpo_table2.py ({shown}):",
                                              "", *standing])  # fmt: skip
    print(page)


def plot_against_paper(median: pd.DataFrame, grid: pd.DataFrame, paper_names: dict[str, dict[str, str]],
                       reference: dict, out: Path) -> Path | None:  # fmt: skip
    """One panel per task: natural vs worst-case return of each median agent whose method the
    paper reports, ours filled and the paper's hollow with an arrow to ours; where the task has a
    kappa grid the method is read at the grid's pick, as the paper's protocol does. A table of 60
    numbers says less at a glance than where each method sits against the paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # per study, per task: label -> the paper's name, moved to the grid's picks (once, not per row)
    at_pick = {study: roles_at_pick(names, grid[grid["study"] == study]) if len(grid) else {}
               for study, names in paper_names.items()}  # fmt: skip
    panels = []
    for env in TASKS:
        rows = median[median["env"] == env] if len(median) else median
        points, seen = [], set()
        for _, row in rows.iterrows():
            names = paper_names.get(row["study"], {})
            name = at_pick.get(row["study"], {}).get(env, names).get(row["label"])
            cells = paper_method(reference, env, name) if name else None
            if cells is None or (row["label"], name) in seen or pd.isna(row.get("worst")):
                continue
            seen.add((row["label"], name))
            points.append((f"{row['label']} ({name})", row["natural"], row["worst"], cells["natural"], cells["worst"]))
        if points:
            panels.append((env, points))
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for axis, (env, points) in zip(axes[0], panels):
        for i, (name, natural, worst, paper_natural, paper_worst) in enumerate(points):
            color = f"C{i % 10}"
            axis.scatter([natural], [worst], color=color, label=name, zorder=3)
            axis.scatter([paper_natural], [paper_worst], facecolors="none", edgecolors=color, zorder=3)
            axis.annotate("", (natural, worst), (paper_natural, paper_worst),
                          arrowprops={"arrowstyle": "->", "color": color, "lw": 0.8, "alpha": 0.6})  # fmt: skip
        values = [v for p in points for v in p[1:]]
        axis.plot([min(values), max(values)], [min(values), max(values)], color="grey", lw=0.8, ls="--")
        axis.set(title=f"{env}: ours (filled) vs paper (hollow)", xlabel="natural return", ylabel="worst-case return")
        axis.legend(fontsize=7)
    figure.tight_layout()
    return save_figure(figure, out, "against_paper")["against_paper"]


def _claims_table(claims: pd.DataFrame) -> list[str]:
    lines = ["| claim | ours: method (seeds) mean | against: method (seeds) mean: difference [95% interval] | verdict | paper's table |",
             "|---|---|---|---|---|"]  # fmt: skip
    for _, row in claims.iterrows():
        lines.append(f"| {row['claim']}. {row['text']} ({row['source']}) | {_who(row, claims, 'method')} ({row['seeds']}) "
                     f"{_cell(row['mean'])} | {_text(row['against'])} | **{row['verdict']}** | "
                     f"{_text(row['paper'])}: {row['paper_verdict']} |")  # fmt: skip
    return lines


def _study_progress(name: str, study: Path) -> str:
    """How much of a study the tables read: runs evaluated of the spec's, and the ones still to
    train or evaluate, by method and seed (a partly run study's tables have fewer seeds)."""
    runs = json.loads((study / "status.json").read_text()).get("runs", {}) if (study / "status.json").is_file() else {}
    done = [e for e in runs.values() if e.get("train") == "done" and e.get("evaluate") == "done"]
    pending: dict[str, list[str]] = {}
    for entry in runs.values():
        if entry not in done:
            key = f"{entry.get('label')} {entry.get('env', '')}".strip()
            pending.setdefault(key, []).append(f"s{entry.get('seed')}" + (" (trained)" if entry.get("train") == "done" else ""))
    text = f"{name}: {len(done)} of {len(runs)} runs trained and evaluated"
    if pending:
        text += "; not yet: " + "; ".join(f"{key} {', '.join(seeds)}" for key, seeds in pending.items())
    return text + "."


COST = {  # measured per-run costs (2026-12-03: study runs of BAR-PPO ~11 min per 2M steps on Hopper, ~16 on Walker2d; robust_cost_ant.md), 2 cores
    "Walker2d-v5": "6 methods x 3 seeds x 2M steps ~ 18 x ~16 min training + 6 x 2 learned attacks x ~5 min: ~3 h on 2 workers",
    "HalfCheetah-v5": "the same as Walker2d: ~3 h",
    "Ant-v5": "10M steps per run: PPO and BAR-PPO x 3 seeds ~ 3 x 42 + 3 x 49 min + learned attacks: ~2.5 h on 2 workers (studies/barpo_ant.yaml)",
}


def _not_run(env: str) -> str:
    extra = ""
    if env == "Walker2d-v5":
        extra = (" An earlier hand-run reproduction (2 seeds, cheap attacks only, benchmarks/results/"
                 "robust_reproduction_walker2d_2M.md) gave BAR-PPO natural 5731 / 5699 (paper 4732) and worst of "
                 "random/critic/MAD/RS 4486 / 5104; PPO 3836 / 3506, worst 1783 / 2625.")  # fmt: skip
    cost = f": {COST[env]} on this machine" if env in COST else ""
    return f"Not run in a study yet{cost}.{extra}"


if __name__ == "__main__":
    main()
