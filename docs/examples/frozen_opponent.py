"""Train a policy against a frozen opponent through the rollout collector.

The two-player env is a PettingZoo parallel env (repeated matching pennies, 10 rounds). The
opponent is frozen: it plays "heads" with probability 0.8. `opponent_view` turns the game into a
single-agent Gymnasium env for player_0, `make_env` vectorises it like any other task, and the one
PPO loop trains on it. The exact answer is known: the best response always plays heads and earns
10 * (0.8 - 0.2) = 6 per episode; a uniformly random player earns 0.

    python docs/examples/frozen_opponent.py
"""

from __future__ import annotations

import numpy as np
import torch

from robustrl import TrainConfig, ppo_defaults_for
from robustrl.algos import PPO
from robustrl.envs.matrix_game import MATCHING_PENNIES, RepeatedMatrixGame
from robustrl.envs.multiagent import CallableOpponent, opponent_view

HEADS_PROBABILITY = 0.8


def biased_opponent() -> dict[str, CallableOpponent]:
    return {"player_1": CallableOpponent(lambda obs, rng: int(rng.random() >= HEADS_PROBABILITY))}


def main(iterations: int = 8, seed: int = 0) -> dict[str, float]:
    env_factory = opponent_view(lambda: RepeatedMatrixGame(MATCHING_PENNIES, horizon=10), "player_0", biased_opponent)
    config = TrainConfig(
        env_id="matching-pennies-vs-biased",  # a label: the env comes from the factory
        total_steps=2048 * iterations,
        seed=seed,
        num_envs=4,
        ppo=ppo_defaults_for("CartPole-v1", entropy_coef=0.0),
    )
    trainer = PPO(config, env=env_factory)
    trainer.learn()
    trainer.close()
    start = np.zeros((1, trainer.policy.obs_dim), dtype=np.float32)
    start[0, -1] = 1.0  # the first round's observation
    with torch.no_grad():
        heads = float(trainer.policy.distribution(trainer.policy.normalize(start)).probs[0, 0])
    return {"mean_return": float(np.mean(trainer.recent_returns)), "heads_probability": heads}


if __name__ == "__main__":
    result = main()
    print(f"mean return {result['mean_return']:.2f} (best response: 6.00); P(heads) {result['heads_probability']:.3f}")
