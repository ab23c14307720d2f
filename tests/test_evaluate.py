import json

import numpy as np
import pytest
import torch

from robustrl import TrainConfig, evaluate, ppo_defaults_for, train
from robustrl.errors import InvalidArgumentError
from robustrl.evaluate import run_episodes
from toy_envs import SIGN_GUESS_UNEVEN, sign_victim


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    torch.set_num_threads(1)
    cfg = ppo_defaults_for("Pendulum-v1", steps_per_iteration=512, num_minibatches=8, policy_epochs=2, value_epochs=2)
    return train(TrainConfig("Pendulum-v1", total_steps=1024, ppo=cfg), tmp_path_factory.mktemp("runs") / "p", progress=False)


def test_evaluate_reports_both_modes_and_writes_json(pendulum_run, tmp_path):
    report = evaluate(pendulum_run.run_dir, episodes=7, json_path=tmp_path / "eval.json")
    assert set(report["results"]) == {"deterministic", "stochastic"}
    for summary in report["results"].values():
        assert summary["episodes"] == 7
        assert summary["mean_length"] == 200  # Pendulum always runs to its time limit
        assert summary["min"] <= summary["mean"] <= summary["max"]
    written = json.loads((tmp_path / "eval.json").read_text())
    assert len(written["returns"]["deterministic"]) == 7
    assert written["env_id"] == "Pendulum-v1"


def test_deterministic_evaluation_is_reproducible(pendulum_run):
    a = run_episodes(pendulum_run.policy, "Pendulum-v1", episodes=4, seed=3)
    b = run_episodes(pendulum_run.policy, "Pendulum-v1", episodes=4, seed=3)
    np.testing.assert_array_equal(a.returns, b.returns)


def test_episode_quota_is_exact_with_uneven_split_and_uneven_lengths():
    """13 episodes on 4 envs: quotas 4, 3, 3, 3. The copy seeded k runs episodes of 1 + k % 4
    steps (tests/toy_envs.py), and the victim earns 1 per step, so the returns name the env each
    came from. Stopping at the first 13 completions would over-count the short episodes
    (1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4)."""
    victim = sign_victim(SIGN_GUESS_UNEVEN)
    result = run_episodes(victim, SIGN_GUESS_UNEVEN, episodes=13, seed=0, num_envs=4)
    expected = [1.0] * 4 + [2.0] * 3 + [3.0] * 3 + [4.0] * 3
    np.testing.assert_array_equal(np.sort(result.lengths), expected)
    np.testing.assert_array_equal(np.sort(result.returns), expected)
    shifted = run_episodes(victim, SIGN_GUESS_UNEVEN, episodes=6, seed=1, num_envs=4)  # quotas 2, 2, 1, 1
    np.testing.assert_array_equal(np.sort(shifted.lengths), [1, 2, 2, 3, 3, 4])


def test_perturbation_is_applied_to_what_the_policy_sees(pendulum_run):
    seen = []

    def perturb(obs):
        seen.append(obs.clone())
        return obs + 5.0

    clean = run_episodes(pendulum_run.policy, "Pendulum-v1", episodes=2, seed=1)
    attacked = run_episodes(pendulum_run.policy, "Pendulum-v1", episodes=2, seed=1, perturb=perturb)
    assert len(seen) >= 200
    assert not np.allclose(clean.returns, attacked.returns)


def test_bad_episode_count_and_mismatched_env(pendulum_run):
    with pytest.raises(InvalidArgumentError, match="episodes"):
        run_episodes(pendulum_run.policy, "Pendulum-v1", episodes=0)
    with pytest.raises(InvalidArgumentError, match="shape"):
        run_episodes(pendulum_run.policy, "MountainCarContinuous-v0", episodes=1)
