"""Issue 17, item 4 (the ARPO question), one piece of evidence: how wide each method's policy
ends, and what that does to its natural return when actions are sampled rather than taken at the
mean.

Our tables (like SA-PPO's code the paper builds on) evaluate deterministic episodes: the action is
the policy's mean. A policy whose Gaussian stays wide still scores well there while the policy it
trained as, sampled, does poorly; the paper does not say which mode its Table 4 reports. Per
finished run of a study: the final action std (exp of the state-independent log-std), the training
return of its last 20 iterations (sampled actions), and the natural return over ``--episodes``
deterministic episodes (from the study's report) and sampled ones (evaluated here, cached in
``<run>/eval-stochastic.json``). And, from the runs' progress.csv alone, how each method moved
through training (by fifths of its iterations: eps, training return, policy entropy, robust term)
with a figure of the same (``arpo_stochastic.png``): the deceptive-FOSP signature the issue asks
about is the natural return stalling while the policy widens to satisfy the robust term.

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
from robustrl.experiments.results import read_results, refresh_results
from robustrl.policies.checkpoint import load_policy
from robustrl.threads import torch_threads

ROOT = Path(__file__).resolve().parents[1]


def measure(study: Path, episodes: int) -> pd.DataFrame:
    refresh_results(study)  # a committed state (a snapshot) has no results store: rebuilt from its runs
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


FIFTHS = 5
DYNAMICS = {"eps": "eps", "mean_return": "training return", "entropy": "policy entropy", "robust_term": "robust term"}


def _progress(study: Path, table: pd.DataFrame) -> dict[tuple[str, str], list[pd.DataFrame]]:
    """(env, label) -> the progress.csv of each of its runs in ``table`` (the measured runs)."""
    found: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for _, row in table.iterrows():
        frame = pd.read_csv(study / "runs" / row["run"] / "progress.csv")
        if len(frame):
            found.setdefault((row["env"], row["label"]), []).append(frame)
    return found


def dynamics(progress: dict[tuple[str, str], list[pd.DataFrame]]) -> pd.DataFrame:
    """Per (env, label, fifth of training): the mean over seeds of each DYNAMICS column, each run's
    fifth averaged over its iterations first."""
    rows = []
    for (env, label), frames in progress.items():
        for frame in frames:
            fifth = (np.arange(len(frame)) * FIFTHS) // len(frame)
            for f, part in frame.groupby(fifth):
                rows.append({"env": env, "label": label, "fifth": int(f) + 1,
                             **{c: float(part[c].mean()) for c in DYNAMICS if c in part}})  # fmt: skip
    return pd.DataFrame(rows).groupby(["env", "label", "fifth"], sort=False).mean().reset_index()


def plot_dynamics(progress: dict[tuple[str, str], list[pd.DataFrame]], out: Path) -> None:
    """Training return and policy entropy against env steps, mean over seeds per method (one panel
    pair per task; the seeds of a method share their iteration count)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys(env for env, _ in progress))
    figure, axes = plt.subplots(len(envs), 2, figsize=(11, 4 * len(envs)), squeeze=False)
    for (env, label), frames in progress.items():
        n = min(len(f) for f in frames)
        steps = frames[0]["global_step"].to_numpy()[:n]
        for axis, column in zip(axes[envs.index(env)], ("mean_return", "entropy")):
            values = np.mean([f[column].to_numpy()[:n] for f in frames], axis=0)
            axis.plot(steps, pd.Series(values).rolling(20, min_periods=1).mean(), label=f"{label} ({len(frames)})")
    for row, env in zip(axes, envs):
        row[0].set(title=env, xlabel="env steps", ylabel="training return (sampled actions)")
        row[1].set(title=env, xlabel="env steps", ylabel="policy entropy (nats)")
        row[1].legend(fontsize=8)
    figure.suptitle("Mean over seeds, 20-iteration rolling mean; eps ramps from 0 to full over the first 75%")
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)


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
    progress = _progress(args.study, table)
    moves = dynamics(progress)
    plot_dynamics(progress, args.out.with_suffix(".png"))
    lines += ["", "## How each method moved through training (mean over seeds, by fifths of its iterations)", "",
              f"From progress.csv; figure: {args.out.with_suffix('.png').name}. Robust term: the objective's own "
              "(ARPO and BARPO: minus the clipped surrogate at the inner solution, the adversarial surrogate; SA-PPO: its KL "
              "regulariser).", ""]  # fmt: skip
    for column, title in DYNAMICS.items():
        if column not in moves:
            continue
        lines += [f"**{title}**", "", "| task | method | " + " | ".join(f"fifth {f}" for f in range(1, FIFTHS + 1)) + " |",
                  "|---|---" + "|---:" * FIFTHS + "|"]  # fmt: skip
        for (env, label), part in moves.groupby(["env", "label"], sort=False):
            cells = [part.loc[part["fifth"] == f, column] for f in range(1, FIFTHS + 1)]
            cells = [f"{c.iloc[0]:.3g}" if len(c) and not pd.isna(c.iloc[0]) else "-" for c in cells]
            lines.append(f"| {env} | {label} | " + " | ".join(cells) + " |")
        lines.append("")
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
