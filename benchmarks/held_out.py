"""Issue 17, item 6: attacks the agents were not tuned against, on a finished study.

Two held-out attacks per agent of each (task, method) group:

- ``transfer``: the SA-RL and PA-AD adversaries fitted on the group's median agent (the study's
  median-agent protocol fits them there only), replayed unchanged on each other seed's agent: a
  black-box attacker who trained against a surrogate of the same recipe;
- ``critic`` with 50 PGD steps of eps/50 (the table's critic attack takes 10 of eps/10): a
  longer-horizon solve of the same inner problem.

Per agent, the worst case the study measured (for non-median agents: over the cheap attacks only)
beside the held-out returns; an agent is flagged when a held-out attack lowers its worst case by
more than 20% (issue 17's criterion). Reports are cached per run (``<run>/held-out-eps<e>.json``):
a second invocation reruns nothing.

    python benchmarks/held_out.py runs/studies/barpo_hopper [--episodes 20]
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from rich.progress import track

from robustrl.evaluate.robustness import robustness_report
from robustrl.experiments.results import read_results, refresh_results
from robustrl.experiments.spec import parse_evaluation
from robustrl.experiments.study import report_eps
from robustrl.policies.checkpoint import load_policy
from robustrl.report.study import BROKEN_FRACTION, HELD_OUT_DROP, per_run_table
from robustrl.threads import torch_threads

ROOT = Path(__file__).resolve().parents[1]
LONG_CRITIC_STEPS = 50
DROP = HELD_OUT_DROP  # issue 17: flag a held-out attack that lowers an agent's worst case by more than 20% (one definition)
BROKEN = BROKEN_FRACTION  # issue 17, item 5: one definition of broken, the reports' (robustrl.report.study)
LEARNED = ("sa-rl", "pa-ad")
COLUMNS = ["env", "label", "run", "median_agent", "natural", "worst_measured", "held_out_worst", "drop"]


def transfer_peers(group: list[str], median: str | None, name: str, every_seed: bool) -> list[str]:
    """The runs whose fitted adversaries agent ``name`` meets as transferred attacks: the group's
    median agent (the median protocol fits there only; none for the median agent itself), or
    with ``every_seed`` every other run of its group, in order."""
    if every_seed:
        return [run for run in group if run != name]
    return [median] if median is not None and median != name else []


def peer_fits(run_dir: Path, eps: float, norm: str, learned: str, all_fits: bool) -> list[tuple[Path, int | None]]:
    """The adversaries of ``learned`` that run ``run_dir`` holds, as (transfer source, fit):
    the run directory itself (the transfer attack then replays the fit its report kept as the
    cell, the strongest on that run; fit None), or with ``all_fits`` every fit's files (fit 0 at
    the cache's top, fit j in ``fit<j>/``): an adversary that is not the strongest on its own
    victim may still be the strongest on another (session 25: Hopper kappa-1 s2's first SA-RL fit
    takes s0 to 0.47 of its natural return; its kept fit, to 0.92)."""
    cache = run_dir / "attacks" / f"eps{eps:g}-l{norm}"
    if not (cache / f"{learned}.json").is_file() and not any(cache.glob(f"fit*/{learned}.json")):
        return []
    if not all_fits:
        return [(run_dir, None)]
    later = sorted((int(d.name[3:]), d / learned) for d in cache.glob("fit*") if d.name[3:].isdigit())
    stems = [(cache / learned, 0), *((stem, j) for j, stem in later)]
    return [(stem, j) for stem, j in stems if stem.with_name(stem.name + ".json").is_file()]


def held_out_reports(study: Path, episodes: int, methods: list[str] | None = None, long_critic: bool = True,
                     every_seed: bool = False, all_fits: bool = False) -> pd.DataFrame:  # fmt: skip
    """Per agent, its held-out returns. The transferred adversaries come from the group's median
    agent, or with ``every_seed`` from every other seed of its group that holds a fit (a study
    with ``median: false`` fits on every seed: each agent meets its peers' adversaries, the
    weakest return kept)."""
    refresh_results(study)  # a committed state (a snapshot) has no results store: rebuilt from its runs
    runs = read_results(study, "runs")
    # trained agents only: a pending run's checkpoint is a half-trained agent (or there is none yet)
    runs = runs[runs["train_status"] == "done"]
    if methods:
        runs = runs[runs["label"].isin(methods)]
    evaluations = read_results(study, "evaluations")
    spec = json.loads((study / "study.json").read_text())["spec"]
    # the study's own evaluation settings (eps may be a list: the table's first, then a sweep; the
    # norm and seed the study's reports used), so the held-out returns compare with its worst case
    evaluation = parse_evaluation(spec.get("evaluation") or {})
    per_run = per_run_table(evaluations, evaluation.eps) if len(evaluations) else pd.DataFrame(columns=["run"])
    rows = []
    jobs = []
    for (env, label), group in runs.groupby(["env", "label"], sort=False):
        medians = group[group["median_agent"].astype(bool)] if "median_agent" in group else group.iloc[:0]
        median = medians.iloc[0]["run"] if len(medians) else None
        for _, run in group.iterrows():
            jobs.append((env, label, run["run"], median, transfer_peers(list(group["run"]), median, run["run"], every_seed)))
    for env, label, name, median, peers in track(jobs, description="held-out attacks"):
        run_dir = study / "runs" / name
        eps = evaluation.eps if evaluation.eps is not None else report_eps(env)
        attacks: dict[str, dict] = {"critic": {"steps": LONG_CRITIC_STEPS}}
        names = ["critic"] if long_critic else []  # natural only: the transfers below are the held-out attacks
        # (learned attack, the run it was fitted on, the transfer's source, which fit) for every peer that holds one
        sources = [(learned, peer, source, fit) for learned in LEARNED for peer in peers
                   for source, fit in peer_fits(study / "runs" / peer, eps, evaluation.norm, learned, all_fits)]  # fmt: skip
        policy = load_policy(run_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = robustness_report(policy, env, attacks=names, eps=eps, norm=evaluation.norm, episodes=episodes,
                                       seed=evaluation.seed, attack_options=attacks,
                                       json_path=run_dir / f"held-out-eps{eps:g}.json")  # fmt: skip
            results = {f"critic-{LONG_CRITIC_STEPS}": report["results"]["critic"]["mean"]} if long_critic else {}
            for learned, peer, source, fit in sources:
                options = {"transfer": {"source": str(source), "attack": learned}}
                # the median agent's transfer keeps its cache name from before every_seed existed
                cached = (f"held-out-{learned}-eps{eps:g}.json" if peer == median and not every_seed and fit is None
                          else f"held-out-{learned}-from-{peer}{'' if fit is None else f'-fit{fit}'}-eps{eps:g}.json")  # fmt: skip
                transfer = robustness_report(policy, env, attacks=["transfer"], eps=eps, norm=evaluation.norm,
                                             episodes=episodes, seed=evaluation.seed, attack_options=options,
                                             json_path=run_dir / cached)  # fmt: skip
                key = f"transfer {learned}"  # the weakest return over the peers' adversaries
                results[key] = min(results.get(key, math.inf), transfer["results"]["transfer"]["mean"])
        measured = per_run[per_run["run"] == name]
        worst = float(measured.iloc[0]["worst"]) if len(measured) else math.nan
        natural = float(measured.iloc[0]["natural"]) if len(measured) else math.nan
        held = min(results.values(), default=math.nan)
        # the learned attacks' worst on this agent: fitted on it (the study's table: the median
        # agent, or every agent without the median protocol) and transferred from the median agent
        learned = [results[f"transfer {c}"] for c in LEARNED if f"transfer {c}" in results]
        if len(measured):
            learned += [float(measured.iloc[0][c]) for c in LEARNED if c in measured and not pd.isna(measured.iloc[0][c])]
        transfers = ("every fit of every other seed" if all_fits else "every other seed's kept fit") if every_seed else "the median agent's kept fit"
        rows.append({"env": env, "label": label, "run": name, "median_agent": name == median, "natural": natural, "transfers": transfers,
                     "worst_measured": worst, **results, "held_out_worst": held,
                     "learned_worst": min(learned) if learned else math.nan,
                     "drop": (worst - held) / abs(worst) if worst and not math.isnan(worst) else math.nan})  # fmt: skip
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=COLUMNS)


def return_columns(table: pd.DataFrame) -> list[str]:
    """The held-out returns a page shows (critic-50, transfer sa-rl, transfer pa-ad), not the
    text columns beside them (``transfers``: which adversaries were replayed)."""
    return [c for c in table.columns if c.startswith(("critic-", "transfer ")) and pd.api.types.is_numeric_dtype(table[c])]


def reliability_lines(table: pd.DataFrame, every_seed: bool = False) -> list[str]:
    """Issue 17, item 5: per (task, method), how many of its seeds a learned attack breaks (worst
    below BROKEN x natural), counting the attacks fitted on an agent (the median agent's, with the
    median protocol) and those transferred from the median agent: every seed attacked, at the cost
    of fitting on one."""
    if not len(table) or "learned_worst" not in table:
        return []
    lines = [f"## Reliability: seeds broken (an attack below {BROKEN:.0%} of the agent's natural return)", "",
             ("Learned: SA-RL / PA-AD fitted on each agent (the study's table) and those fitted on every other seed of its "
              "method, transferred. " if every_seed else
              "Learned: SA-RL / PA-AD fitted on the median agent (the study's table) or transferred from it (the other "
              "seeds), so every seed meets a learned attack; a transferred adversary is weaker than one fitted on the "
              "agent, so these counts are lower bounds. ")
             + "Any: the learned ones, the held-out critic and the study's cheap attacks.", "",
             "| task | method | seeds | broken by a learned attack | broken by any attack | lowest worst / natural |",
             "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for (env, label), group in table.groupby(["env", "label"], sort=False):
        natural = group["natural"]
        any_worst = group[["worst_measured", "held_out_worst", "learned_worst"]].min(axis=1)
        learned = group["learned_worst"] < BROKEN * natural
        broken = any_worst < BROKEN * natural
        attacked = int(group["learned_worst"].notna().sum())
        # a ratio to the natural return reads only for agents that earn a positive one
        ratio = (any_worst / natural)[natural > 0]
        lines.append(f"| {env} | {label} | {len(group)} | {int(learned.sum())} of {attacked} | {int(broken.sum())} of "
                     f"{len(group)} | {f'{ratio.min():.2f}' if len(ratio) else '-'} |")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--methods", nargs="*", default=None, help="only these method labels (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/held_out_<study>.md")
    parser.add_argument("--every-seed", action="store_true",
                        help="transfer the SA-RL / PA-AD fits of every other seed of the group, not only the median agent's "
                        "(a study with `median: false` holds a fit on every seed)")
    parser.add_argument("--all-fits", action="store_true",
                        help="transfer every fit a peer holds (SA-RL fitted 3 times: all three), not only the one its report "
                        "kept (the strongest on the peer itself)")
    parser.add_argument("--no-long-critic", action="store_true",
                        help=f"only the transferred attacks (the critic-{LONG_CRITIC_STEPS} solve costs ~{LONG_CRITIC_STEPS // 10}x a table cell)")
    args = parser.parse_args()
    name = json.loads((args.study / "study.json").read_text())["name"]
    out = args.out or ROOT / "benchmarks" / "results" / f"held_out_{name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch_threads():
        table = held_out_reports(args.study, args.episodes, args.methods, long_critic=not args.no_long_critic,
                                 every_seed=args.every_seed, all_fits=args.all_fits)  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(table.to_dict("records"), indent=1))
    columns = return_columns(table)
    lines = [
        f"# Held-out attacks on `{name}` (issue 17, item 6)",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python benchmarks/held_out.py {args.study} "
        f"--episodes {args.episodes}{' --methods ' + ' '.join(args.methods) if args.methods else ''}"
        f"{' --no-long-critic' if args.no_long_critic else ''}{' --every-seed' if args.every_seed else ''}{' --all-fits' if args.all_fits else ''}`. "
        f"critic-{LONG_CRITIC_STEPS}: the critic attack with {LONG_CRITIC_STEPS} PGD "
        f"steps of eps/{LONG_CRITIC_STEPS} (the table's: 10 of eps/10); transfer: the SA-RL / PA-AD adversary fitted "
        + ("on each other seed of the method, replayed unchanged on this one (the weakest return kept)"
           if args.every_seed else "on the method's median agent, replayed on the other seeds")
        + (" (every fit each peer holds, not only the one its report kept)" if args.all_fits else "")
        + ". Worst measured: the study's worst case (non-median "
        f"agents: cheap attacks only). Held-out vs worst: the held-out attacks' worst against the worst measured "
        f"(negative: lower). **Flagged**: a held-out attack lowers the worst case by more than {DROP:.0%}.",
        "",
        # the change, signed as it reads: -22% = the held-out attack is 22% below the worst measured
        # (the JSON's "drop" is its opposite, +0.22); +300% = it is far weaker than the table's worst
        "| " + " | ".join(["task", "method", "run", "natural", "worst measured", *columns, "held-out vs worst", ""]) + " |",
        "|---|---|---|---:|---:|" + "---:|" * len(columns) + "---:|---|",
    ]
    for _, row in table.iterrows():
        cells = " | ".join("-" if pd.isna(row.get(c)) else f"{row[c]:.0f}" for c in columns)
        flag = "**flagged**" if row["drop"] > DROP else ""
        median = " (median)" if row["median_agent"] else ""
        drop = "-" if pd.isna(row["drop"]) else f"{-row['drop']:+.0%}"
        lines.append(f"| {row['env']} | {row['label']} | {row['run'][-10:]}{median} | {row['natural']:.0f} | "
                     f"{row['worst_measured']:.0f} | {cells} | {drop} | {flag} |")  # fmt: skip
    flagged = table[table["drop"] > DROP]
    lines += ["", f"{len(flagged)} of {len(table)} agents flagged: "
              + (", ".join(f"{r.label} {r.run[-10:]}" for r in flagged.itertuples()) or "none") + "."]  # fmt: skip
    lines += ["", *reliability_lines(table, every_seed=args.every_seed)]
    out.write_text("\n".join(lines) + "\n")
    print(out)


if __name__ == "__main__":
    main()
