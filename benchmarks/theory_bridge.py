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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
