"""Bridge: the BARPO toy ISA-MDP as a Gymnasium env (robustrl.envs.tabular). Trains PPO, AR-PPO and
BAR-PPO at tiny budgets, reads each network back as a tabular policy pi[s, a], and compares with
the exact answers: V^pi(mu0), V^(pi o nu*)(mu0), whether pi is in the robust region; then runs the
attacks MAD, critic, RS and SA-RL on each trained policy and compares what they do with nu*.

    OMP_NUM_THREADS=1 python benchmarks/theory_bridge.py [--steps 30000] [--seeds 0 1 2]

Writes benchmarks/results/theory_bridge.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from robustrl import TrainConfig, ppo_defaults_for
from robustrl.algos import ALGORITHMS, PPO
from robustrl.attacks import make_attack
from robustrl.config import RobustConfig
from robustrl.envs.tabular import TOY_CONTINUOUS_ENV_ID as TOY_ENV_ID
from robustrl.envs.tabular import TOY_EPS, TOY_POINTS, attack_as_adversary, tabular_policy
from robustrl.theory import toy_isa_mdp

RESULTS = Path(__file__).parent / "results"
ATTACK_OPTIONS = {
    "mad": {},
    "critic": {},
    "rs": {"iterations": 5, "steps_per_iteration": 1024, "num_envs": 4, "gamma": 0.9},
    "sa-rl": {
        "num_envs": 4,
        "curriculum_scale": 1.0,
        "grid": ({"steps_per_iteration": 512, "num_minibatches": 4, "policy_lr": 3e-3, "gamma": 0.9},),
    },
}
ATTACK_BUDGET = 20_000  # env steps for the learned attacks (RS's own iterations x steps are in its options)


def train(algo: str, steps: int, seed: int):
    ppo = ppo_defaults_for(
        "CartPole-v1",
        gamma=0.9,
        normalize_observations=False,
        steps_per_iteration=512,
        num_minibatches=4,
        entropy_coef=0.0,
    )
    robust = RobustConfig(eps=TOY_EPS, kappa=1.0, eps_warmup_fraction=0.3)
    config = TrainConfig(env_id=TOY_ENV_ID, algo=algo, total_steps=steps, seed=seed, num_envs=4, ppo=ppo, robust=robust)
    trainer = PPO(config, ALGORITHMS[algo](config))
    start = time.perf_counter()
    trainer.learn()
    seconds = time.perf_counter() - start
    trainer.close()
    return trainer.policy, seconds, config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--markdown-only", action="store_true", help="Rewrite the .md from the stored .json.")
    args = parser.parse_args()
    if args.markdown_only:
        write_markdown(json.loads((RESULTS / "theory_bridge.json").read_text()))
        return
    torch.set_num_threads(1)
    mdp = toy_isa_mdp()
    rows = []
    for algo in ("ppo", "ar-ppo", "bar-ppo"):
        for seed in args.seeds:
            policy, seconds, config = train(algo, args.steps, seed)
            pi = tabular_policy(policy, TOY_POINTS)
            nu = mdp.strongest_adversary(pi)
            natural, adversarial = mdp.expected(mdp.value(pi)), mdp.expected(mdp.adversarial_value(pi))
            row = {
                "algo": algo,
                "seed": seed,
                "train_seconds": round(seconds, 1),
                "alpha": float(pi[0, 0]),
                "beta": float(pi[1, 0]),
                "value": natural,
                "adversarial_value": adversarial,
                "gap": natural - adversarial,
                "robust_1e-3": bool(natural - adversarial <= 1e-3 * (1 + abs(natural))),
                "robust_region_exact": mdp.is_robust(pi),
                "nu_star": nu.tolist(),
                "attacks": {},
            }
            for name, options in ATTACK_OPTIONS.items():
                attack = make_attack(name, TOY_EPS, seed=seed, **options)
                attack.fit(policy, TOY_ENV_ID, budget=ATTACK_BUDGET if attack.learned else None)
                result = attack_as_adversary(attack, policy, mdp, TOY_POINTS)
                snapped = result["snapped"]
                row["attacks"][name] = {
                    "perturbed_obs": result["perturbed"][:, 0].tolist(),
                    "snapped_adversary": snapped.tolist(),
                    "equals_nu_star": bool(np.array_equal(snapped, nu)),
                    "value_snapped": mdp.expected(mdp.value(pi[snapped])),
                    "value_applied": mdp.expected(mdp.value(result["applied"])),
                }
            rows.append(row)
            print(
                json.dumps({k: v for k, v in row.items() if k != "attacks"}),
                {
                    k: (v["snapped_adversary"], round(v["value_snapped"], 3), round(v["value_applied"], 3))
                    for k, v in row["attacks"].items()
                },
                flush=True,
            )
    settings = {
        "env": "BARPO toy (Appendix D) as TabularISAEnv: s1 -> x=0, s2 -> x=1, eps 1 (l_inf), horizon 60, no observation normalisation",
        "train_steps": args.steps,
        "seeds": args.seeds,
        "ppo": dataclasses.asdict(config.ppo),
        "robust": dataclasses.asdict(config.robust),
        "attack_options": ATTACK_OPTIONS,
        "learned_attack_budget": ATTACK_BUDGET,
    }
    (RESULTS / "theory_bridge.json").write_text(
        json.dumps({"settings": settings, "runs": rows}, indent=1, default=str) + "\n"
    )
    print("wrote", RESULTS / "theory_bridge.json")
    write_markdown({"settings": settings, "runs": rows})


def write_markdown(data: dict) -> None:
    settings, runs = data["settings"], data["runs"]
    lines = [
        "# Bridge: attacks and robust trainers on the BARPO toy ISA-MDP, against the exact answers",
        "",
        f"Env: {settings['env']}; continuous-action variant (a Gaussian policy's action is binned: a <= 0 -> a1), "
        "so every attack, robust Sarsa included, runs. Exact: the network read back as pi[s, a] = pi(a | x_s) "
        "(Gaussian mass of each bin), then V^pi(mu0), nu*(pi) and V^(pi o nu*)(mu0) by robustrl.theory.",
        "",
        f"Budget: each trainer {settings['train_steps']} env steps (4 envs x 512 steps per iteration, CartPole PPO "
        f"defaults, gamma 0.9, no observation normalisation), seeds {settings['seeds']}; robust eps 1.0 (warm-up over "
        "30% of the run), kappa 1.0; attacks at eps 1.0 (l_inf): MAD and critic with their default solvers, RS "
        f"{settings['attack_options']['rs']}, SA-RL budget {settings['learned_attack_budget']} env steps.",
        "",
        "## Trainers: where they end",
        "",
        "| trainer | seed | alpha = pi(a1|s1) | beta = pi(a1|s2) | V^pi(mu0) | V^(pi o nu*)(mu0) | gap | robust (gap <= 1e-3) | nu* |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in runs:
        lines.append(
            f"| {row['algo']} | {row['seed']} | {row['alpha']:.4f} | {row['beta']:.4f} | {row['value']:.4f} | "
            f"{row['adversarial_value']:.4f} | {row['gap']:.4f} | {'yes' if row['robust_1e-3'] else 'no'} | {row['nu_star']} |"
        )
    lines += [
        "",
        "Optimum (and optimal robust policy) pi_11: V = 1.0273, robust. Deceptive FOSP pi_00: V = -0.6460.",
        "",
        "## Attacks against nu*",
        "",
        "Per trained policy: the adversary each attack induces once snapped to the nearest state of B(s), the "
        "exact value under it, and the exact value of the policy at the observations the attack actually "
        "produced (one draw per state; off-grid points can be worse than any state of B(s)).",
        "",
        "| trainer | seed | V^(pi o nu*) | attack | snapped nu | = nu* | V snapped | V as applied |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in runs:
        for name, attack in row["attacks"].items():
            lines.append(
                f"| {row['algo']} | {row['seed']} | {row['adversarial_value']:.4f} | {name} | {attack['snapped_adversary']} | "
                f"{'yes' if attack['equals_nu_star'] else 'no'} | {attack['value_snapped']:.4f} | {attack['value_applied']:.4f} |"
            )
    summary = {}
    for row in runs:
        for name, attack in row["attacks"].items():
            entry = summary.setdefault(name, {"equal": 0, "n": 0, "shortfall": []})
            entry["n"] += 1
            entry["equal"] += attack["equals_nu_star"]
            gap = row["value"] - row["adversarial_value"]
            if gap > 0.01:
                entry["shortfall"].append((row["value"] - attack["value_snapped"]) / gap)
    lines += [
        "",
        "| attack | snapped adversary = nu* | share of the exact damage V^pi - V^(pi o nu*) reached (snapped), mean over the policies with a gap > 0.01 (the PPO ones) |",
        "|---|---|---|",
    ]
    for name, entry in summary.items():
        share = np.mean(entry["shortfall"]) if entry["shortfall"] else float("nan")
        lines.append(f"| {name} | {entry['equal']} / {entry['n']} | {share:.2f} |")
    lines.append("")
    (RESULTS / "theory_bridge.md").write_text("\n".join(lines))
    print("wrote", RESULTS / "theory_bridge.md")


if __name__ == "__main__":
    main()
