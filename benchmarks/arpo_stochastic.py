"""Issue 17, item 4 (the ARPO question), one piece of evidence: how wide each method's policy
ends, and what that does to its natural return when actions are sampled rather than taken at the
mean.

Our tables (like SA-PPO's code the paper builds on) evaluate deterministic episodes: the action is
the policy's mean. A policy whose Gaussian stays wide still scores well there while the policy it
trained as, sampled, does poorly; the paper does not say which mode its Table 4 reports. Per
finished run of a study: the final action std (exp of the state-independent log-std), the training
return of its last 20 iterations (sampled actions), and the natural return over ``--episodes``
deterministic episodes (from the study's report) and sampled ones (evaluated here, cached in
``<run>/eval-stochastic.json``).

    python benchmarks/arpo_stochastic.py runs/studies/barpo_hopper [--episodes 20]
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import track

from robustrl.evaluate.robustness import robustness_report
from robustrl.experiments.results import read_results
from robustrl.policies.checkpoint import load_policy
from robustrl.threads import torch_threads

ROOT = Path(__file__).resolve().parents[1]


def measure(study: Path, episodes: int) -> pd.DataFrame:
    runs = read_results(study, "runs")
    runs = runs[runs["train_status"] == "done"]
    evaluations = read_results(study, "evaluations")
    natural = evaluations[evaluations["attack"] == "natural"].groupby("run")["mean"].first()
    rows = []
    for _, run in track(list(runs.iterrows()), description="sampled-action episodes"):
        run_dir = study / "runs" / run["run"]
        policy = load_policy(run_dir)
        std = policy.log_std.detach().exp().numpy() if hasattr(policy, "log_std") else np.array([math.nan])
        progress = pd.read_csv(run_dir / "progress.csv")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = robustness_report(policy, run["env"], attacks=[], episodes=episodes, deterministic=False,
                                       json_path=run_dir / "eval-stochastic.json")  # fmt: skip
        rows.append({
            "env": run["env"], "label": run["label"], "seed": int(run["seed"]), "run": run["run"],
            "action_std": float(std.mean()), "entropy": float(progress["entropy"].tail(20).mean()),
            "training_return": float(progress["mean_return"].tail(20).mean()),
            "natural_deterministic": float(natural.get(run["run"], math.nan)),
            "natural_sampled": float(report["results"]["natural"]["mean"]),
        })  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "arpo_stochastic.md")
    args = parser.parse_args()
    with torch_threads():
        table = measure(args.study, args.episodes)
    args.out.with_suffix(".json").write_text(json.dumps(table.to_dict("records"), indent=1))
    by_method = table.groupby(["env", "label"], sort=False).agg(
        seeds=("seed", "size"), action_std=("action_std", "mean"), training_return=("training_return", "mean"),
        deterministic=("natural_deterministic", "mean"), sampled=("natural_sampled", "mean"),
    )  # fmt: skip
    lines = [
        "# Policy width and sampled-action returns (issue 17, the ARPO question)",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python benchmarks/arpo_stochastic.py "
        f"{args.study} --episodes {args.episodes}`. Action std: exp(log-std) of the final policy, mean over the "
        "action dimensions (every method starts at 1.0). Training return: the last 20 iterations' episodes "
        "(sampled actions, clean observations). Natural: deterministic episodes (the study's table: the mean "
        f"action) and {args.episodes} sampled-action episodes (seed 10000, as the table's).",
        "",
        "## Mean over seeds",
        "",
        "| task | method (seeds) | action std | training return | natural, deterministic | natural, sampled | sampled / deterministic |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (env, label), row in by_method.iterrows():
        lines.append(f"| {env} | {label} ({int(row['seeds'])}) | {row['action_std']:.2f} | {row['training_return']:.0f} | "
                     f"{row['deterministic']:.0f} | {row['sampled']:.0f} | {row['sampled'] / row['deterministic']:.2f} |")  # fmt: skip
    lines += ["", "## Every run", "", "| method | seed | action std | training return | deterministic | sampled |",
              "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for _, row in table.iterrows():
        lines.append(f"| {row['label']} | {row['seed']} | {row['action_std']:.2f} | {row['training_return']:.0f} | "
                     f"{row['natural_deterministic']:.0f} | {row['natural_sampled']:.0f} |")  # fmt: skip
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
