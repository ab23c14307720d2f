"""How long the learned attacks (SA-RL, PA-AD) take to fit on one core, with the hand-written
victim gradients (``robustrl.threat.objectives``) and with autograd, interleaved in one process.

    python benchmarks/learned_attack_cost.py RUN_DIR [--budget 1e5] [--attacks sa-rl pa-ad] [--fast-only]

Each fit trains the adversary for ``--budget`` env steps (SA-RL and PA-AD default options: one
PPO config, the radius curriculum; from 100k steps the adversary's PPO update is compiled, a
one-off 10-40 s); the 1M-step time is reported as measured seconds x 1e6 / budget, marked as
extrapolated unless ``--budget 1e6`` (the compile is then counted ``1e6 / budget`` times: an
over-estimate). Writes benchmarks/results/learned_attack_cost.md.
Issue 16, goal 3: SA-RL and PA-AD at 1M steps within 5 minutes on Hopper with 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

import torch

import robustrl.threat.objectives as objectives
from robustrl.attacks import make_attack
from robustrl.cli import parse_count
from robustrl.config import default_eps
from robustrl.policies.checkpoint import load_policy
from robustrl.prune.tools import run_config

ROOT = Path(__file__).resolve().parent


def fit_seconds(run: Path, name: str, budget: int, fast: bool) -> float:
    policy = load_policy(run)
    env_id = run_config(run).env_id
    real = objectives.plain_mlp
    if not fast:  # every hand-written gradient off: the attacks fall back to autograd
        objectives.plain_mlp = lambda policy, network: None
        import robustrl.attacks.pa_ad as pa_ad

        pa_ad.plain_mlp = objectives.plain_mlp
    try:
        attack = make_attack(name, default_eps(env_id), seed=0, budget=budget)
        start = time.perf_counter()
        attack.fit(policy, env_id)
        return time.perf_counter() - start
    finally:
        objectives.plain_mlp = real
        import robustrl.attacks.pa_ad as pa_ad

        pa_ad.plain_mlp = real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--budget", type=lambda t: parse_count(t, "--budget"), default=100_000)
    parser.add_argument("--attacks", nargs="+", default=["sa-rl", "pa-ad"])
    parser.add_argument("--fast-only", action="store_true", help="skip the autograd reference fits")
    parser.add_argument("--out", default=str(ROOT / "results" / "learned_attack_cost.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.attacks:
        for fast in (True,) if args.fast_only else (True, False):
            seconds = fit_seconds(args.run, name, args.budget, fast)
            rows.append((name, fast, seconds))
            print(f"{name} {'hand-written' if fast else 'autograd'}: {seconds:.1f} s for {args.budget} steps", flush=True)
    scale = 1_000_000 / args.budget
    lines = [
        f"# Learned attacks: fit time ({date.today()}, {platform.machine()}, 1 torch thread)",
        "",
        f"Victim: {args.run}. Budget {args.budget} env steps per fit (default options), interleaved; "
        f"load average at the end {os.getloadavg()[0]:.1f}.",
        "",
        "| attack | victim gradients | seconds | env steps / s | 1M steps (minutes"
        + (")" if scale == 1 else ", extrapolated)")
        + " |",
        "|---|---|---:|---:|---:|",
    ]
    for name, fast, seconds in rows:
        lines.append(
            f"| {name} | {'hand-written' if fast else 'autograd'} | {seconds:.1f} | {args.budget / seconds:.0f} | {seconds * scale / 60:.1f} |"
        )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
