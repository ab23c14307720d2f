"""Tune the learned attacks (SA-RL, PA-AD): train one adversary per PPO configuration against a
fixed victim, record its learning curve (the victim's return under the training adversary) and
the victim's deterministic return under the trained adversary.

    python benchmarks/learned_attack_tuning.py [--run benchmarks/runs/ppo-Hopper-v5-s0-1000000]
        [--attack sa-rl] [--eps 0.075] [--budget 3e5] [--episodes 10]
        [--config '{"policy_lr": 3e-3, "value_lr": 1e-2}' ...]

Each configuration is a JSON object of PPO overrides (robustrl.config.PPOConfig fields) for the
adversary. Results are appended to benchmarks/results/learned_attack_tuning.jsonl (one line per
configuration: attack, victim, budget, overrides, curve, final return, seconds), so a long scan
can be interrupted and resumed: configurations already recorded are skipped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from robustrl.attacks import make_attack
from robustrl.evaluate.rollout import run_episodes
from robustrl.experiments.run import load_policy

ROOT = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=str(ROOT / "runs" / "ppo-Hopper-v5-s0-1000000"))
    parser.add_argument("--attack", default="sa-rl", choices=["sa-rl", "pa-ad"])
    parser.add_argument("--eps", type=float, default=0.075)
    parser.add_argument("--budget", type=lambda text: int(float(text)), default=300_000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--config", action="append", default=None, help="JSON PPO overrides (repeatable)")
    parser.add_argument("--out", default=str(ROOT / "results" / "learned_attack_tuning.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    configs = [json.loads(text) for text in (args.config or ["{}"])]
    out = Path(args.out)
    done = set()
    if out.is_file():
        for line in out.read_text().splitlines():
            row = json.loads(line)
            done.add((row["attack"], row["run"], row["eps"], row["budget"], row["seed"], json.dumps(row["overrides"], sort_keys=True)))

    victim = load_policy(args.run)
    env_id = victim.env_id
    for overrides in configs:
        key = (args.attack, Path(args.run).name, args.eps, args.budget, args.seed, json.dumps(overrides, sort_keys=True))
        if key in done:
            print(f"skip (recorded): {overrides}")
            continue
        start = time.perf_counter()
        attack = make_attack(args.attack, args.eps, seed=args.seed, grid=(overrides,), num_envs=args.num_envs)
        attack.fit(victim, env_id, budget=args.budget)
        fit_seconds = time.perf_counter() - start
        result = run_episodes(victim, env_id, args.episodes, deterministic=True, seed=1000 + args.seed, perturb=attack.perturb)
        curve = attack.selection["training_curves"][0]
        row = {
            "attack": args.attack, "run": Path(args.run).name, "env_id": env_id, "eps": args.eps,
            "budget": args.budget, "seed": args.seed, "overrides": overrides,
            "victim_return_mean": result.mean, "victim_return_std": result.std, "episodes": args.episodes,
            "fit_seconds": round(fit_seconds, 1), "curve": curve,
        }
        with out.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        head = " ".join(f"{ret:.0f}" for _, ret in curve[:: max(1, len(curve) // 8)])
        print(f"{args.attack} {overrides}: victim {result.mean:.0f} ± {result.std:.0f} (fit {fit_seconds:.0f} s); curve {head}", flush=True)


if __name__ == "__main__":
    main()
