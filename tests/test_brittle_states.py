"""benchmarks/brittle_states.py (issue 17, item 5): the states an agent visits, clean and under an
attack, and the ball's worst action divergence at each."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from _benchmarks import load_benchmark
from robustrl.attacks import make_attack
from robustrl.policies.actor_critic import ActorCritic


def _module():
    return load_benchmark("brittle_states")


def test_visited_states_and_their_worst_divergence_in_the_ball():
    brittle = _module()
    env = gym.make("Pendulum-v1")
    torch.manual_seed(0)
    policy = ActorCritic(env.observation_space, env.action_space)
    with torch.no_grad():  # an untrained actor's output is ~1e-3 wide: its KLs round to 0 in float32
        for layer in policy.actor.modules():
            if isinstance(layer, torch.nn.Linear):
                layer.weight.normal_(0.0, 1.0)
    # Pendulum's episodes are 200 steps: 2 episodes on 2 envs visit 400 clean states
    states, caused, _ = brittle.visited_states(policy, "Pendulum-v1", 2, seed=0)
    assert states.shape == (400, 3) and not caused.any()  # no attack, no divergence caused
    mad = make_attack("mad", 0.1, seed=0)
    mad.bind(policy, "Pendulum-v1")
    attacked, caused, _ = brittle.visited_states(policy, "Pendulum-v1", 2, seed=0, attack=mad)
    assert attacked.shape == (400, 3) and (caused >= 0).all() and caused.mean() > 0
    # a wider ball holds more divergence: ten times the radius, far more at the median
    worst = brittle.worst_divergence(policy, "Pendulum-v1", attacked, 0.1, "inf", seed=0)
    narrow = brittle.worst_divergence(policy, "Pendulum-v1", attacked, 0.01, "inf", seed=0)
    assert worst.shape == (400,) and np.median(worst) > 10 * np.median(narrow) > 0
    assert np.allclose(brittle.worst_divergence(policy, "Pendulum-v1", attacked, 0.0, "inf", seed=0), 0.0)  # an empty ball


def test_summary_per_task_and_float_noise_ratios():
    """The medians are per task (KL scales differ by task), PPO apart from the robust agents; a
    p90 ratio of two float-noise KLs reads "-" (no division by zero)."""
    import pandas as pd

    brittle = _module()
    rows = [{"env": env, "label": label, "family": family, "broken": broken, "ratio": ratio, "kl_natural_p90": kl,
             "kl_attacked_p90": kl, "kl_caused_p90": kl / 2, "action_std": std}
            for env, label, family, broken, ratio, kl, std in [
                ("Hopper-v5", "bar-ppo", "bar-ppo", True, 0.3, 0.2, 0.25), ("Hopper-v5", "bar-ppo", "bar-ppo", False, 0.9, 0.1, 0.30),
                ("Hopper-v5", "bar-ppo-k1", "bar-ppo", False, 0.7, 0.1, 0.45), ("Hopper-v5", "bar-ppo-k1", "bar-ppo", True, 0.2, 0.1, 0.21),
                ("Hopper-v5", "ppo", "ppo", True, 0.1, 10.0, 0.15), ("Walker2d-v5", "sa-ppo", "sa-ppo", False, 0.9, 0.05, 0.9)]]  # fmt: skip
    lines = brittle.summary_lines(pd.DataFrame(rows))
    assert "| Hopper-v5 | robust, broken | 2 | 0.150 | 0.150 | 0.075 | 0.23 |" in lines  # medians of 2
    assert "| Hopper-v5 | ppo | 1 | 10.000 | 10.000 | 5.000 | 0.15 |" in lines
    assert any(line.startswith("| Walker2d-v5 | robust, not broken | 1 |") for line in lines)
    assert "Robust agents (5, every task)" in lines[-2]
    # the four Hopper BAR-PPO agents only (SA-PPO's wide Walker2d agent is another method and task):
    # std ranks 2 3 4 1 against ratio ranks 2 4 3 1: Spearman 1 - 6 * 2 / 60 = +0.80
    assert lines[-1].startswith("BAR-PPO agents, per task: Spearman rank correlation of the action std with learned "
                                "worst / natural: Hopper-v5 +0.80 (4 agents) (positive if")  # fmt: skip
    # labels that begin like BAR-PPO's but name another method (a learned adversary in training,
    # WocaR's critic) stay out of the BAR-PPO correlation: their widths would reverse its sign
    others = [{**rows[0], "label": "bar-ppo-k1-atla", "family": "bar-ppo+atla", "broken": False, "ratio": 0.95, "action_std": 0.1},
              {**rows[0], "label": "bar-ppo-wocar", "family": "bar-ppo-wocar", "broken": True, "ratio": 0.1, "action_std": 0.9}]  # fmt: skip
    assert brittle.summary_lines(pd.DataFrame(rows + others))[-1] == lines[-1]
    # a table from before the column: the std reads nan, and no width line
    old = brittle.summary_lines(pd.DataFrame(rows).drop(columns="action_std"))
    assert "| Hopper-v5 | robust, broken | 2 | 0.150 | 0.150 | 0.075 | nan |" in old and "Robust agents" in old[-1]
    assert brittle._ratio(0.0, 0.0) == "-" and brittle._ratio(0.4, 0.2) == "2.0"


def test_family_comes_from_the_saved_config_not_the_label(tmp_path):
    """A label is a study's name for a setting: the family is the run's algorithm, with a learned
    adversary in its training loop (ATLA) as a family of its own."""
    import json

    brittle = _module()
    for name, config in [("bar-ppo-k3", {"algo": "bar-ppo", "atla": {"adversary": "none"}}),
                         ("bar-ppo-k1-atla", {"algo": "bar-ppo", "atla": {"adversary": "sa-rl"}}),
                         ("bar-ppo-k1-wocar", {"algo": "bar-ppo-wocar"}), ("sa-ppo", {"algo": "sa-ppo"})]:  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    assert [brittle.family(tmp_path / n) for n in ("bar-ppo-k3", "bar-ppo-k1-atla", "bar-ppo-k1-wocar", "sa-ppo")] == [
        "bar-ppo", "bar-ppo+atla", "bar-ppo-wocar", "sa-ppo"]
