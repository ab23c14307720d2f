"""Wall-clock per training iteration of each robust method relative to plain PPO, same process.

    python benchmarks/robust_cost.py [--env Hopper-v5] [--iterations 6] [--num-envs 1]
        [--methods ppo bar-ppo ...] [--fast]

``--fast``: the fast configuration (8 EnvPool envs, ``ppo.compile`` for every method; methods whose
minibatch term is not pure run their update eager, as in training) into robust_cost_fast.md.

All trainers are built first, then iterations are interleaved round-robin (PPO, BAR-PPO, ...,
PPO, BAR-PPO, ...) so machine noise hits every method alike; the median iteration time of each
method is divided by PPO's. eps is at its target from the first iteration (no warm-up), so the
inner problems run at full cost. Writes benchmarks/results/robust_cost.md. The BARPO paper
reports BAR-PPO at about 2x PPO (App. F.4); the target here is at most 1.3x.
"""

from __future__ import annotations

import argparse
import platform
import statistics
from dataclasses import replace
from datetime import date
from pathlib import Path

import torch

from robustrl.algos import ALGORITHMS
from robustrl.algos.ppo import PPO
from robustrl.config import RobustConfig, TrainConfig, ppo_defaults_for

ROOT = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--num-envs", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=[m for m in ALGORITHMS])
    parser.add_argument("--fast", action="store_true", help="8 EnvPool envs and ppo.compile (issue 16's fast configuration)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    args.out = args.out or str(ROOT / "results" / ("robust_cost_fast.md" if args.fast else "robust_cost.md"))
    torch.set_num_threads(1)
    backend = "gymnasium"
    if args.fast:
        args.num_envs, backend = 8, "envpool"
        # one compiled step per trainer, all in this process: lift dynamo's per-function cache limit
        for knob in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit", "accumulated_recompile_limit"):
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, 256)
    variants: dict[str, TrainConfig] = {}
    for method in args.methods:
        robust = RobustConfig(eps_warmup_fraction=0.0)
        variants[method] = TrainConfig(
            env_id=args.env, algo=method, total_steps=2048 * (args.iterations + 1), seed=0, num_envs=args.num_envs,
            backend=backend, ppo=ppo_defaults_for(args.env, compile=args.fast), robust=robust,
        )
        if method == "sa-ppo":  # also the convex-relaxation variant
            variants["sa-ppo (ibp)"] = replace(variants[method], robust=RobustConfig(eps_warmup_fraction=0.0, solver="ibp"))
        if method == "bar-ppo":  # and the per-minibatch inner solve
            variants["bar-ppo (minibatch)"] = replace(
                variants[method], robust=RobustConfig(eps_warmup_fraction=0.0, inner_solve="minibatch")
            )
    trainers = {name: PPO(config, ALGORITHMS[config.algo](config)) for name, config in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in trainers}
    updates: dict[str, list[float]] = {name: [] for name in trainers}
    for trainer in trainers.values():  # warm-up iteration (first-call overheads), not timed
        trainer.train_iteration()
    for _ in range(args.iterations):
        for name, trainer in trainers.items():
            stats = trainer.train_iteration()
            times[name].append(stats.metrics["rollout_seconds"] + stats.metrics["update_seconds"])
            updates[name].append(stats.metrics["update_seconds"])
    base = statistics.median(times["ppo"])
    lines = [
        f"# Robust training cost per iteration ({date.today()}, {platform.machine()}, 1 torch thread)",
        "",
        f"{args.env}, 2048 steps per iteration, {args.num_envs} {backend} env(s){', ppo.compile' if args.fast else ''}, eps at target from the start, "
        f"median of {args.iterations} interleaved iterations per method (after one warm-up).",
        "",
        "| method | update compiled | seconds / iteration | of which update | relative to PPO |",
        "|---|---|---:|---:|---:|",
    ]
    for name, trainer in trainers.items():
        median = statistics.median(times[name])
        objective = trainer.hooks.objective
        compiled = args.fast and (objective is None or getattr(objective, "compilable", False))
        lines.append(
            f"| {name} | {'yes' if compiled else 'no'} | {median:.3f} | {statistics.median(updates[name]):.3f} | {median / base:.2f}x |"
        )
    import os

    lines += ["", f"Load average at the end: {os.getloadavg()[0]:.1f} (other jobs paused with SIGSTOP where stated in the reading)."]
    for trainer in trainers.values():
        trainer.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
