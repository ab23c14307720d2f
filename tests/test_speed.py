"""Issue 16 (speed II): the fast paths equal their reference paths, thread settings are deliberate,
and progress.csv carries each iteration's own rate."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from robustrl import TrainConfig, ppo_defaults_for, train
from robustrl.algos.ppo import PPO
from robustrl.algos.rollout import require_finite
from robustrl.config import PPOConfig
from robustrl.errors import InvalidArgumentError, NonFiniteObservationError
from robustrl.threads import ENV_VAR, default_threads, torch_threads


def _config(env_id: str, num_envs: int, fast: bool, iterations: int = 2, steps: int = 256, **ppo) -> TrainConfig:
    base = ppo_defaults_for(env_id)
    settings = dict(steps_per_iteration=steps, num_minibatches=4, policy_epochs=2, value_epochs=2, fast_rollout=fast)
    return TrainConfig(env_id, total_steps=steps * iterations, num_envs=num_envs, seed=3,
                       ppo=replace(base, **settings, **ppo))  # fmt: skip


@pytest.mark.parametrize(("env_id", "num_envs"), [("Hopper-v5", 4), ("CartPole-v1", 2), ("Pendulum-v1", 1)])
def test_fast_rollout_equals_reference(env_id, num_envs):
    """The numpy actor draws the same actions as the torch modules up to float rounding, from the
    same random stream, so two short iterations end with the same parameters (to float tolerance)."""
    runs = {}
    for fast in (False, True):
        trainer = PPO(_config(env_id, num_envs, fast))
        batch, _ = trainer.collect_rollout()
        runs[fast] = (batch, trainer)
    reference, fast = runs[False][0], runs[True][0]
    for name in ("obs", "actions", "log_probs", "values", "advantages", "returns", "rewards", "dones"):
        torch.testing.assert_close(getattr(fast, name), getattr(reference, name), rtol=1e-5, atol=1e-5, msg=name)
    for trainer in (runs[False][1], runs[True][1]):
        trainer.learn()
        trainer.close()
    for (name, a), b in zip(runs[False][1].policy.state_dict().items(), runs[True][1].policy.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
    assert runs[False][1].rng.bit_generator.state == runs[True][1].rng.bit_generator.state  # same draws


def test_numpy_actor_matches_torch_actor():
    trainer = PPO(_config("Hopper-v5", 2, True))
    policy = trainer.policy
    obs = torch.randn(16, policy.obs_dim)
    with torch.no_grad():
        torch.testing.assert_close(
            torch.from_numpy(policy.numpy_actor()(obs.numpy())), policy.actor(obs), rtol=1e-5, atol=1e-6
        )
    policy.actor[1] = torch.nn.GELU()  # not a plain Linear/Tanh/ReLU stack: no numpy actor, reference path
    assert policy.numpy_actor() is None
    trainer.collect_rollout()  # still collects (through policy.sample)
    trainer.close()


def test_old_config_json_keeps_the_reference_rollout():
    data = TrainConfig("Hopper-v5").to_dict()
    assert data["ppo"]["fast_rollout"] is True  # new configs: the fast path
    del data["ppo"]["fast_rollout"]  # a config.json written before the knob
    assert TrainConfig.from_dict(data).ppo.fast_rollout is False
    assert PPOConfig(fast_rollout=False) == TrainConfig.from_dict(data).ppo


def test_study_names_ignore_the_speed_switch():
    from robustrl.experiments.spec import config_hash

    config = TrainConfig("Hopper-v5")
    assert config_hash(config) == config_hash(replace(config, ppo=replace(config.ppo, fast_rollout=False)))
    assert config_hash(config) != config_hash(replace(config, seed=1))


def test_require_finite_checks_without_copies():
    require_finite(np.ones(3, dtype=np.float32), "x")
    require_finite(np.arange(3), "x")
    require_finite([1.0, 2.0], "x")
    for bad in (np.array([1.0, np.nan], dtype=np.float32), [np.inf], np.array([1, np.nan], dtype=object)):
        with pytest.raises(NonFiniteObservationError, match="non-finite x"):
            require_finite(bad, "x")


def test_fast_rollout_resume_equals_uninterrupted(tmp_path):
    config = replace(_config("Pendulum-v1", 2, True, iterations=4), checkpoint_every=1)
    full = train(config, tmp_path / "full")
    part_config = config
    part = PPO(part_config)
    part.add_iteration_callback(lambda stats: part.request_stop() if stats.iteration == 2 else None)
    train(learner=part, out=tmp_path / "part")
    resumed = train(resume=tmp_path / "part")
    for (name, a), b in zip(full.policy.state_dict().items(), resumed.policy.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)


# ---- threads ---------------------------------------------------------------------------------------
def test_entry_points_run_with_one_thread_and_restore_the_callers(monkeypatch):
    from robustrl.policies.episodes import run_episodes

    seen = []
    trainer = PPO(_config("Pendulum-v1", 1, True))
    policy = trainer.policy
    trainer.close()
    original = policy.sample

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(policy, "sample", spy)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_episodes(policy, "Pendulum-v1", episodes=1)
        assert set(seen) == {1} and torch.get_num_threads() == 2
        monkeypatch.setenv(ENV_VAR, "2")
        seen.clear()
        torch.set_num_threads(1)
        run_episodes(policy, "Pendulum-v1", episodes=1)
        assert set(seen) == {2} and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)


def test_thread_setting_is_checked(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "zero")
    with pytest.raises(InvalidArgumentError, match=ENV_VAR):
        default_threads()
    monkeypatch.delenv(ENV_VAR)
    with torch_threads(1) as threads:
        assert threads == 1 and torch.get_num_threads() == 1


def test_attacks_fit_under_the_deliberate_setting(monkeypatch):
    from robustrl.attacks import make_attack

    trainer = PPO(_config("Pendulum-v1", 1, True))
    seen = []
    attack = make_attack("sa-rl", 0.1)
    monkeypatch.setattr(type(attack), "_fit", lambda self, budget, progress: seen.append(torch.get_num_threads()))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        attack.fit(trainer.policy, "Pendulum-v1", budget=10)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
        trainer.close()


# ---- progress.csv ----------------------------------------------------------------------------------
def test_progress_csv_logs_the_iterations_own_rate(tmp_path):
    train(_config("Pendulum-v1", 1, True, iterations=3), tmp_path / "run")
    with open(tmp_path / "run" / "progress.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    for row in rows:
        assert float(row["iteration_steps_per_second"]) > 0 and float(row["steps_per_second"]) > 0
    # the average since the start includes the first iteration; the last iteration's own rate is
    # its steps over its own time
    last = rows[-1]
    own_seconds = float(last["wall_seconds"]) - float(rows[-2]["wall_seconds"])
    assert float(last["iteration_steps_per_second"]) == pytest.approx(256 / own_seconds, rel=0.05)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["ppo"]["fast_rollout"] is True


# ---- attacks ---------------------------------------------------------------------------------------
def _hopper_policy(seed: int = 0):
    torch.manual_seed(seed)
    trainer = PPO(_config("Hopper-v5", 1, True))
    trainer.close()
    with torch.no_grad():  # a policy with some structure (not the near-zero initial output layer)
        for parameter in trainer.policy.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return trainer.policy


def _assert_value_and_grad(fast, reference, obs_hat, rtol=1e-3, atol=1e-5):
    """``fast.value_and_grad`` (written out) equals the values and input gradients of autograd
    through ``reference``."""
    values, grad = fast.value_and_grad(obs_hat)
    x = obs_hat.clone().requires_grad_(True)
    expected = reference(x)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(values, expected.detach(), rtol=min(rtol, 1e-4), atol=atol)
    torch.testing.assert_close(grad, expected_grad, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", ["mad", "critic"])
def test_hand_written_attack_gradients_equal_autograd(name):
    from robustrl.attacks.gradient import action_divergence, divergence_objective, value_objective

    policy = _hopper_policy()
    obs = torch.randn(32, policy.obs_dim)
    obs_hat = obs + 0.05 * torch.randn_like(obs)
    if name == "mad":
        fast, reference = divergence_objective(policy, obs), (lambda x: action_divergence(policy, obs, x))
    else:
        fast, reference = value_objective(policy), policy.value
    _assert_value_and_grad(fast, reference, obs_hat, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fast(obs_hat), reference(obs_hat).detach(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["mad", "critic"])
def test_fast_attacks_perturb_as_the_autograd_reference(name, monkeypatch):
    """The whole attack (10 solver steps) lands on the same perturbation as with autograd, up to
    sign steps flipped by rounding on near-zero gradient coordinates (at most a few entries)."""
    import robustrl.threat.objectives as objectives
    from robustrl.attacks import make_attack

    policy = _hopper_policy(1)
    obs = torch.randn(64, policy.obs_dim)
    fast = make_attack(name, 0.1, seed=5).fit(policy, "Hopper-v5").perturb(obs)
    monkeypatch.setattr(objectives, "plain_mlp", lambda policy, network: None)  # autograd everywhere
    reference = make_attack(name, 0.1, seed=5).fit(policy, "Hopper-v5").perturb(obs)
    close = torch.isclose(fast, reference, rtol=1e-5, atol=1e-6)
    assert close.float().mean() >= 0.99, close.float().mean()


def test_hand_written_defence_gradients_equal_autograd():
    """The robust objectives' inner problems (issue 16, goal 4): SA-PPO/BARPO's 2 KL and ARPO's
    clipped surrogate, values and input gradients by hand equal autograd's, with ratios inside
    and outside the clip range and advantages of both signs."""
    from robustrl.algos.objectives.common import clipped_surrogate, gaussian_mean_divergence
    from robustrl.threat.objectives import clipped_surrogate_objective, divergence_objective

    policy = _hopper_policy(2)
    obs = torch.randn(256, policy.obs_dim)
    obs_hat = obs + 0.3 * torch.randn_like(obs)
    with torch.no_grad():
        actions = policy.actor(obs) + policy.log_std.exp() * torch.randn(256, policy.action_dim)
        log_probs = policy.log_prob_and_entropy(obs, actions)[0] + 0.3 * torch.randn(256)  # an older policy
    advantages = torch.randn(256)

    def surrogate(x):
        ratio = (policy.log_prob_and_entropy(x, actions)[0] - log_probs).exp()
        return clipped_surrogate(ratio, advantages, 0.2)

    cases = [
        (divergence_objective(policy, obs, scale=2.0), lambda x: gaussian_mean_divergence(policy, obs, x)),
        (clipped_surrogate_objective(policy, actions, log_probs, advantages, 0.2, surrogate), surrogate),
    ]
    with torch.no_grad():
        ratio = (policy.log_prob_and_entropy(obs_hat, actions)[0] - log_probs).exp()
    assert ((ratio < 0.8) | (ratio > 1.2)).any() and ((ratio > 0.8) & (ratio < 1.2)).any()
    for fast, reference in cases:
        _assert_value_and_grad(fast, reference, obs_hat)


@pytest.mark.parametrize("algo", ["bar-ppo", "ar-ppo", "sa-ppo"])
def test_fast_inner_solutions_equal_the_autograd_reference(algo):
    """ppo.fast_inner: the inner solution of a robust objective on a training batch lands where
    the autograd reference does, up to sign steps flipped by rounding on near-zero gradients."""
    from dataclasses import replace

    from robustrl.algos import ALGORITHMS
    from robustrl.algos.ppo import Batch

    policy = _hopper_policy(3)
    obs = torch.randn(512, policy.obs_dim)
    with torch.no_grad():
        actions = policy.actor(obs) + policy.log_std.exp() * torch.randn(512, policy.action_dim)
        log_probs = policy.log_prob_and_entropy(obs, actions)[0]
    batch = Batch(obs, actions, log_probs, torch.zeros(512), torch.randn(512), torch.zeros(512))
    solutions = []
    for fast_inner in (True, False):
        config = TrainConfig("Hopper-v5", algo=algo, total_steps=2048, ppo=ppo_defaults_for("Hopper-v5", fast_inner=fast_inner))
        objective = ALGORITHMS[algo](config).objective
        objective.generator.manual_seed(7)
        solutions.append(objective.solve_inner(replace(batch), policy, 0.1))
    close = torch.isclose(solutions[0], solutions[1], rtol=1e-5, atol=1e-6)
    assert close.float().mean() >= 0.99, close.float().mean()
    assert not torch.equal(solutions[0], obs)


def test_pa_ad_hand_written_gradient_equals_autograd():
    """PA-AD's actor objective (cosine to the director's direction + weighted action change):
    value and input gradient by hand equal autograd's (issue 16, goal 3)."""
    import torch.nn.functional as F

    from robustrl.threat.objectives import direction_objective

    policy = _hopper_policy(4)
    obs = torch.randn(16, policy.obs_dim)
    obs_hat = obs + 0.1 * torch.randn_like(obs)
    direction = torch.randn(16, policy.action_dim)
    with torch.no_grad():
        clean = policy.mean_action(obs)

    def reference(x):
        change = policy.mean_action(x) - clean
        return F.cosine_similarity(change, direction, dim=-1, eps=1e-8) + 0.7 * change.norm(dim=-1)

    _assert_value_and_grad(direction_objective(policy, obs, direction, 0.7, reference), reference, obs_hat)
