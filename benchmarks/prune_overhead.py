"""Overhead of pruning on training throughput: the same PPO run with and without a pruning callback
(magnitude, prune-every 20, sparsity 0.5 from the first step, compiled update), and with masks
whose update comes once per iteration (every 320 steps: the cost of multiplying the masks in inside
the compiled step alone), iterations interleaved in one process so all see the same machine load.

    python benchmarks/prune_overhead.py [--env Hopper-v5] [--iterations 12] [--num-envs 8] [--no-compile]

Writes benchmarks/results/prune_overhead.md and .json. The pruned trainer pays for: masks multiplied
in after every optimiser step (inside the compiled step), a mask update (sort of each weight
matrix) every 20 steps, and L~ / the certified bound computed once per iteration for progress.csv.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch

from robustrl import TrainConfig, ppo_defaults_for
from robustrl.algos.ppo import PPO, hooks_for
from robustrl.config import PruneConfig

ROOT = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--prune-every", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "results" / "prune_overhead"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    compiled = not args.no_compile
    total = (args.iterations + args.warmup) * 2048
    trainers = {}
    for label, prune in (
        ("unpruned", PruneConfig()),
        (
            f"magnitude 0.5, every {args.prune_every}",
            PruneConfig(strategy="magnitude", sparsity=0.5, prune_every=args.prune_every, burn_in=0.0),
        ),
        (  # the masks' cost inside the compiled step alone: one mask update per iteration
            "magnitude 0.5, every 320 (masks only)",
            PruneConfig(strategy="magnitude", sparsity=0.5, prune_every=320, burn_in=0.0),
        ),
    ):
        config = TrainConfig(
            args.env, total_steps=total, seed=0, num_envs=args.num_envs, ppo=ppo_defaults_for(args.env, compile=compiled),
            prune=prune,
        )  # fmt: skip
        trainers[label] = PPO(config, hooks_for(config))
    seconds: dict[str, dict[str, list[float]]] = {label: {"iteration": [], "update": []} for label in trainers}
    for index in range(args.warmup + args.iterations):
        for label, trainer in trainers.items():  # interleaved: the same load for both
            start = time.perf_counter()
            stats = trainer.train_iteration()
            if index >= args.warmup:
                seconds[label]["iteration"].append(time.perf_counter() - start)
                seconds[label]["update"].append(stats.metrics["update_seconds"])
        print(f"iteration {index + 1}/{args.warmup + args.iterations}", flush=True)
    sparsity = trainers[list(trainers)[1]].hooks.callbacks[-1].metrics()["sparsity"]  # the every-20 run
    for trainer in trainers.values():
        trainer.close()
    base = next(iter(trainers))
    rows = {
        label: {
            "iteration_median": statistics.median(values["iteration"]),
            "update_median": statistics.median(values["update"]),
            "iteration_seconds": values["iteration"],
            "update_seconds": values["update"],
        }
        for label, values in seconds.items()
    }
    for row in rows.values():
        row["iteration_ratio"] = row["iteration_median"] / rows[base]["iteration_median"]
        row["update_ratio"] = row["update_median"] / rows[base]["update_median"]
    machine = f"{platform.machine()}, {platform.platform()}, 1 torch thread"
    budget = (
        f"{args.env}, 2048 steps per iteration over {args.num_envs} envs, {'compiled' if compiled else 'eager'} update "
        f"(320 optimiser steps per iteration), {args.warmup} warm-up + {args.iterations} timed iterations each, interleaved"
    )
    lines = [
        f"# Pruning overhead on training throughput ({date.today()})",
        "",
        f"Machine: {machine} (shared with other jobs; both trainers see the same load). Budget: {budget}. "
        f"Measured sparsity of the pruned run at the end: {sparsity:.2f}.",
        "",
        "| run | median s / iteration | relative | median s / update | relative |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, row in rows.items():
        lines.append(
            f"| {label} | {row['iteration_median']:.3f} | {row['iteration_ratio']:.3f}x | "
            f"{row['update_median']:.3f} | {row['update_ratio']:.3f}x |"
        )
    lines += ["", "Goal (issue 12): < 5% at prune-every 20, compiled.", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines))
    out.with_suffix(".json").write_text(
        json.dumps({"machine": machine, "date": str(date.today()), "budget": budget, "rows": rows}, indent=1)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
