"""PPO quality against published figures: Hopper-v5 and HalfCheetah-v5, 1M steps, 2 seeds each.

    python benchmarks/ppo_reference.py [--steps 1e6] [--seeds 0 1] [--envs Hopper-v5 HalfCheetah-v5]

Runs go to benchmarks/runs/ (resumed if interrupted: re-run the same command); the table goes to
benchmarks/results/ppo_reference.md. Each policy is evaluated for 20 deterministic episodes
(mean action, as the papers) on evaluation seeds disjoint from training.
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import date
from pathlib import Path

import numpy as np

from robustrl import TrainConfig, evaluate, ppo_defaults_for, train
from robustrl.experiments.run import is_run_dir

ROOT = Path(__file__).resolve().parent
REFERENCE = ROOT.parent.parent / "shared" / "reference" / "barpo_tables.json"

# Published PPO returns. BARPO Table 2 (PPO = "SPO"): MuJoCo v2-era tasks, 2M steps, median agent
# of 17 seeds -- read from shared/reference/barpo_tables.json when it is there.
PUBLISHED_FALLBACK = {"Hopper": 3081.0, "HalfCheetah": 5048.0}


def published_ppo(env_family: str) -> float | None:
    if REFERENCE.is_file():
        tables = json.loads(REFERENCE.read_text())["table2_baselines_vs_bar_ppo"]
        entry = tables.get(env_family.lower())
        if entry:
            return entry["methods"]["PPO"]["natural"]["mean"]
    return PUBLISHED_FALLBACK.get(env_family)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=float, default=1e6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--envs", nargs="+", default=["Hopper-v5", "HalfCheetah-v5"])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--num-envs", type=int, default=1, help="split each 2048-step batch over N envs")
    parser.add_argument("--backend", default="gymnasium")
    parser.add_argument("--compile", action="store_true", help="ppo.compile (same algorithm, faster update)")
    args = parser.parse_args()
    rows = []
    for env_id in args.envs:
        for seed in args.seeds:
            suffix = ("" if args.num_envs == 1 else f"-n{args.num_envs}") + ("-compile" if args.compile else "")
            run_dir = ROOT / "runs" / f"ppo-{env_id}-s{seed}-{int(args.steps)}{suffix}"
            if is_run_dir(run_dir):
                result = train(resume=run_dir)
            else:
                config = TrainConfig(
                    env_id, total_steps=int(args.steps), seed=seed, num_envs=args.num_envs, backend=args.backend,
                    ppo=ppo_defaults_for(env_id, compile=args.compile),
                )
                result = train(config, run_dir)
            if result.interrupted:  # Ctrl-C: checkpoint saved; do not evaluate a half-trained agent
                raise SystemExit(f"interrupted: {run_dir} saved; re-run the same command to resume")
            progress = np.genfromtxt(run_dir / "progress.csv", delimiter=",", names=True)
            report = evaluate(run_dir, episodes=args.episodes, modes=("deterministic",))
            summary = report["results"]["deterministic"]
            rows.append(
                {
                    "env": env_id,
                    "seed": seed,
                    "steps": result.global_step,
                    "train_return_last100": float(progress["mean_return"][-1]),
                    "eval_mean": summary["mean"],
                    "eval_std": summary["std"],
                    "wall_minutes": float(progress["wall_seconds"][-1]) / 60,
                }
            )
            print(rows[-1], flush=True)
    write_results(rows, args)


def write_results(rows: list[dict], args: argparse.Namespace) -> None:
    lines = [
        "# PPO reference benchmark",
        "",
        f"Machine: {platform.machine()}, 2 cores, {platform.platform()}; date {date.today()}.",
        f"Budget: {int(args.steps)} env steps per run, seeds {args.seeds}, {args.num_envs} env(s) "
        f"({args.backend}) per 2048-step batch, reference hyperparameters{' with ppo.compile' if args.compile else ''} "
        "(robustrl.config.PPOConfig); evaluation: "
        f"{args.episodes} deterministic episodes per run.",
        "",
        "| env | seed | steps | train return (last 100 ep.) | eval return (mean ± std) | wall min |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env']} | {r['seed']} | {r['steps']} | {r['train_return_last100']:.0f} | "
            f"{r['eval_mean']:.0f} ± {r['eval_std']:.0f} | {r['wall_minutes']:.1f} |"
        )
    lines += ["", "| env | our mean over seeds (eval) | published PPO | source |", "|---|---:|---:|---|"]
    for env_id in args.envs:
        ours = [r["eval_mean"] for r in rows if r["env"] == env_id]
        family = env_id.split("-v")[0]
        published = published_ppo(family)
        lines.append(
            f"| {env_id} | {np.mean(ours):.0f} | {published:.0f} | BARPO paper Table 2, PPO natural return "
            "(v2 tasks, **2M** steps, median of 17 seeds) |"
        )
    suffix = ("" if args.num_envs == 1 else f"_{args.num_envs}envs") + ("_compile" if args.compile else "")
    out = ROOT / "results" / f"ppo_reference{suffix}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
