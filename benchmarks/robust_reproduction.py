"""Reproduce the BARPO paper's comparison (Tables 2 and 4) on Hopper-v5 at eps 0.075.

    python benchmarks/robust_reproduction.py [--env Hopper-v5] [--steps 1e6] [--seeds 0 1 2]
        [--methods ppo bar-ppo bar-ppo-nog ar-ppo ar-ppo-nog sa-ppo] [--kappa 0.3] [--num-envs 8]
        [--episodes 20] [--expensive | --expensive-every] [--attack-budget 1e6]

Trains every (method, seed) into benchmarks/runs/repro-<env>-<method>-s<seed>-<steps>/ (resumable:
re-run the same command), evaluates each with the cheap attacks (random, critic, MAD, RS), and,
with --expensive, runs SA-RL and PA-AD on each method's median agent (BARPO App. F.3), with
--expensive-every on every agent (after all the training). Runs go seed
by seed so a partial run still compares every method. Writes
benchmarks/results/robust_reproduction.md (+ .json) side by side with the paper's tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date
from pathlib import Path

import torch

from robustrl import TrainConfig, ppo_defaults_for, train
from robustrl.config import RobustConfig, default_eps
from robustrl.evaluate.robustness import median_agent, robustness_report
from robustrl.experiments.run import is_run_dir, latest_checkpoint, load_policy

ROOT = Path(__file__).resolve().parent
REFERENCE = ROOT.parent.parent / "shared" / "reference" / "barpo_tables.json"
CHEAP = ["random", "critic", "mad", "rs"]
EXPENSIVE = ["sa-rl", "pa-ad"]
# method label -> (algo, guidance); labels follow the paper (Table 4 names in brackets)
METHODS = {
    "ppo": ("ppo", True),  # SPO
    "ar-ppo-nog": ("ar-ppo", False),  # ARPO
    "ar-ppo": ("ar-ppo", True),  # ARPO w/ g
    "bar-ppo-nog": ("bar-ppo", False),  # BARPO w/o g
    "bar-ppo": ("bar-ppo", True),  # BARPO
    "sa-ppo": ("sa-ppo", True),  # SA-PPO baseline
}
PAPER_NAMES = {"ppo": "SPO / PPO", "ar-ppo-nog": "ARPO", "ar-ppo": "ARPO w/ g", "bar-ppo-nog": "BARPO w/o g", "bar-ppo": "BARPO", "sa-ppo": "SA-PPO"}


def run_dir(env: str, method: str, seed: int, steps: int) -> Path:
    return ROOT / "runs" / f"repro-{env}-{method}-s{seed}-{steps}"


def finished(directory: Path, config: TrainConfig) -> bool:
    if not is_run_dir(directory):
        return False
    _, meta, _ = latest_checkpoint(directory)
    return meta.get("iteration", 0) >= config.num_iterations


# the paper's keys (barpo_tables.json) for the table's columns, in order
COLUMNS = ("natural", "random", "critic", "mad", "rs", "sa_rl", "pa_ad")


def paper_rows(env_family: str) -> list[str]:
    if not REFERENCE.is_file():
        return []
    tables = json.loads(REFERENCE.read_text())
    rows = []
    table4 = tables.get("table4_spo_arpo_barpo", {}).get(env_family.lower())
    if table4:
        for name, entry in table4.get("methods", {}).items():
            cells = " | ".join(f"{entry[k]['mean']:.0f}" if isinstance(entry.get(k), dict) else "-" for k in COLUMNS)
            worst = entry.get("worst", {})
            rows.append(f"| paper Table 4: {name} | {cells} | {worst.get('mean', float('nan')):.0f} |")
    table2 = tables.get("table2_baselines_vs_bar_ppo", {}).get(env_family.lower())
    if table2:
        for name, entry in table2["methods"].items():
            cells = " | ".join(f"{entry[k]['mean']:.0f}" for k in COLUMNS)
            rows.append(f"| paper Table 2: {name} | {cells} | {entry['worst']['mean']:.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--steps", type=lambda t: int(float(t)), default=1_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--kappa", type=float, default=0.3)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--expensive", action="store_true", help="SA-RL and PA-AD on each method's median agent")
    parser.add_argument(
        "--expensive-every", action="store_true", help="SA-RL and PA-AD on every agent (after all training)"
    )
    parser.add_argument("--attack-budget", type=lambda t: int(float(t)), default=1_000_000)
    parser.add_argument(
        "--compile", action="store_true", help="ppo.compile for new runs (PPO, AR-PPO, BAR-PPO: ~2.5x faster update)"
    )
    parser.add_argument("--report-only", action="store_true", help="no training: tabulate the finished runs")
    parser.add_argument("--out", default=str(ROOT / "results" / "robust_reproduction"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    eps = default_eps(args.env)
    reports: dict[str, dict[int, dict]] = {m: {} for m in args.methods}
    train_seconds: dict[str, float] = {}
    for seed in args.seeds:
        for method in args.methods:
            algo, guidance = METHODS[method]
            robust = RobustConfig(kappa=args.kappa, guidance=guidance) if algo != "ppo" else RobustConfig()
            config = TrainConfig(
                env_id=args.env, algo=algo, total_steps=args.steps, seed=seed, num_envs=args.num_envs,
                ppo=ppo_defaults_for(args.env, compile=args.compile), robust=robust,
            )
            directory = run_dir(args.env, method, seed, args.steps)
            start = time.perf_counter()
            if args.report_only and not finished(directory, config):
                continue
            if not finished(directory, config):
                print(f"training {method} seed {seed} -> {directory}", flush=True)
                if is_run_dir(directory):
                    result = train(resume=directory, progress=False)
                else:
                    result = train(config, directory, progress=False)
                if result.interrupted:  # Ctrl-C / SIGINT: checkpoint saved; do not evaluate a half-trained agent
                    raise SystemExit(f"interrupted: {directory} saved; re-run the same command to resume")
                train_seconds[f"{method}-s{seed}"] = round(time.perf_counter() - start, 1)
            policy = load_policy(directory)
            reports[method][seed] = robustness_report(
                policy, args.env, attacks=CHEAP, eps=eps, episodes=args.episodes, source=directory,
                json_path=directory / f"eval-eps{eps:g}.json",
            )
            r = reports[method][seed]
            print(f"{method} s{seed}: natural {r['results']['natural']['mean']:.0f}, worst {r['worst']['mean']:.0f} ({r['worst']['attack']})", flush=True)

    if args.expensive_every:  # after the training loop, so a short session still trains every method first
        for method, by_seed in reports.items():
            for seed in sorted(by_seed):
                directory = run_dir(args.env, method, seed, args.steps)
                by_seed[seed] = robustness_report(
                    load_policy(directory), args.env, attacks=CHEAP + EXPENSIVE, eps=eps, episodes=args.episodes,
                    source=directory, json_path=directory / f"eval-eps{eps:g}.json",
                    budgets={"sa-rl": args.attack_budget, "pa-ad": args.attack_budget},
                )  # fmt: skip
                r = by_seed[seed]
                print(f"{method} s{seed} full table: worst {r['worst']['mean']:.0f} ({r['worst']['attack']})", flush=True)

    medians: dict[str, tuple[int, dict]] = {}
    for method, by_seed in reports.items():
        if not by_seed:
            continue
        seeds = sorted(by_seed)
        index = median_agent([by_seed[s] for s in seeds])
        seed = seeds[index]
        report = by_seed[seed]
        if args.expensive and not args.expensive_every:
            directory = run_dir(args.env, method, seed, args.steps)
            report = robustness_report(
                load_policy(directory), args.env, attacks=CHEAP + EXPENSIVE, eps=eps, episodes=args.episodes,
                source=directory, json_path=directory / f"eval-eps{eps:g}.json",
                budgets={"sa-rl": args.attack_budget, "pa-ad": args.attack_budget},
            )
        medians[method] = (seed, report)

    family = args.env.split("-v")[0]
    lines = [
        f"# Robust training reproduction, {args.env}, eps {eps} ({date.today()})",
        "",
        f"Budget (what this 2-core machine allowed): {args.steps:.0e} env steps per run (paper: 2M), "
        f"{args.num_envs} envs per 2048-step batch, seeds {args.seeds} (paper: 17, median agent), kappa {args.kappa} "
        f"for all robust methods (paper grid {{0.1, 0.3, 1.0}}), eps schedule 0 -> {eps} over the first 75% of "
        f"iterations, {args.episodes} deterministic episodes per attack. Worst = min over the attacks evaluated"
        + (" (random, critic, MAD, RS, SA-RL, PA-AD)." if args.expensive or args.expensive_every else " (random, critic, MAD, RS; no SA-RL/PA-AD in this run)."),
        "",
        "## Median agent per method (ours) next to the paper",
        "",
        "| method (seed) | natural | random | critic | MAD | RS | SA-RL | PA-AD | worst |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, (seed, report) in medians.items():
        res = report["results"]
        ours = [key.replace("_", "-") for key in COLUMNS]
        cells = " | ".join(f"{res[k]['mean']:.0f}" if k in res else "-" for k in ours)
        lines.append(f"| ours: {PAPER_NAMES[method]} (s{seed}) | {cells} | {report['worst']['mean']:.0f} |")
    lines += paper_rows(family)
    lines += ["", "## Every run", "", "| method | seed | natural | worst (attack) | worst-case robustness |", "|---|---:|---:|---:|---:|"]
    for method, by_seed in reports.items():
        for seed, report in sorted(by_seed.items()):
            lines.append(
                f"| {PAPER_NAMES[method]} | {seed} | {report['results']['natural']['mean']:.0f} | "
                f"{report['worst']['mean']:.0f} ({report['worst']['attack']}) | {report['worst_case_robustness']:+.1%} |"
            )
    lines += ["", "## Mean over seeds", "", "| method | natural | worst |", "|---|---:|---:|"]
    for method, by_seed in reports.items():
        if by_seed:
            natural = statistics.mean(r["results"]["natural"]["mean"] for r in by_seed.values())
            worst = statistics.mean(r["worst"]["mean"] for r in by_seed.values())
            lines.append(f"| {PAPER_NAMES[method]} | {natural:.0f} | {worst:.0f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"reports": {m: {str(s): r for s, r in v.items()} for m, v in reports.items()}, "train_seconds": train_seconds}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
