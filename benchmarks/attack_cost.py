"""Evaluation cost of the random, critic and MAD attacks relative to clean evaluation, one process.

    python benchmarks/attack_cost.py RUN_DIR [--episodes 10] [--eps 0.075] [--repeats 2]

Clean evaluation, then each attack with its hand-written gradients (the default for our
ActorCritic victims, issue 16) and with autograd (the reference: ``_plain_mlp`` disabled), all
interleaved ``--repeats`` times; the best rate of each is reported as env-steps/s and as a
fraction of clean. 10 inner steps (the default) for critic (PGD) and MAD (SGLD). Prints a markdown
table (benchmarks/results/attacks.md keeps it beside the older figures).
"""

from __future__ import annotations

import argparse
import time

import torch

import robustrl.attacks.gradient as gradient
from robustrl.attacks import make_attack
from robustrl.experiments.run import load_policy
from robustrl.policies.episodes import run_episodes


def rate(policy, env_id: str, episodes: int, attack: str | None, eps: float, reference: bool) -> float:
    original = gradient._plain_mlp
    if reference:
        gradient._plain_mlp = lambda policy, network: None
    try:
        perturb = None if attack is None else make_attack(attack, eps, seed=0).fit(policy, env_id).perturb
        start = time.perf_counter()
        result = run_episodes(policy, env_id, episodes, seed=10_000, perturb=perturb)
        return float(result.lengths.sum()) / (time.perf_counter() - start)
    finally:
        gradient._plain_mlp = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--eps", type=float, default=0.075)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy = load_policy(args.run)
    env_id = policy.env_id
    contenders = {
        "natural": (None, False),
        "random": ("random", False),
        "critic": ("critic", False),
        "critic (autograd reference)": ("critic", True),
        "mad": ("mad", False),
        "mad (autograd reference)": ("mad", True),
    }
    best: dict[str, float] = {}
    for repeat in range(args.repeats):
        for name, (attack, reference) in contenders.items():
            value = rate(policy, env_id, args.episodes, attack, args.eps, reference)
            best[name] = max(best.get(name, 0.0), value)
            print(f"[{repeat}] {name}: {value:.0f} env-steps/s", flush=True)
    clean = best["natural"]
    print("\n| attack | eval env-steps/s | relative to clean |\n|---|---:|---:|")
    for name, value in best.items():
        print(f"| {name} | {value:.0f} | {value / clean:.2f}x |")


if __name__ == "__main__":
    main()
