"""The seams every learner, env and hook plugs into: the rollout collector (one policy, several
policies, a frozen opponent), env factories, callbacks with a clock and state, the Learner
protocol of the run layer, and the finite checks on what the env and the policy produce."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from robustrl import TrainConfig, ppo_defaults_for, train
from robustrl.algos import PPO, PPOHooks
from robustrl.algos.hooks import Callback
from robustrl.algos.learner import IterationStats, register_learner
from robustrl.algos.rollout import MultiAgentCollector
from robustrl.envs.make import make_env
from robustrl.envs.matrix_game import MATCHING_PENNIES, ROCK_PAPER_SCISSORS, RepeatedMatrixGame
from robustrl.envs.multiagent import CallableOpponent, FrozenPolicy, OpponentView, opponent_view
from robustrl.errors import InvalidArgumentError, NonFiniteError
from robustrl.policies.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_ppo(**changes):
    return dataclasses.replace(
        ppo_defaults_for("Pendulum-v1"),
        steps_per_iteration=256,
        num_minibatches=4,
        policy_epochs=2,
        value_epochs=2,
        **changes,
    )


# ---- envs: the matrix game, the opponent view, factories -------------------------------------------------
def test_matrix_game_passes_pettingzoo_parallel_api_test():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(RepeatedMatrixGame(ROCK_PAPER_SCISSORS, horizon=7), num_cycles=30)


def test_opponent_view_is_zero_sum_and_ends_at_the_horizon():
    view = OpponentView(
        RepeatedMatrixGame(MATCHING_PENNIES, horizon=3), "player_0", {"player_1": CallableOpponent(lambda o, r: 1)}
    )
    obs, _ = view.reset(seed=0)
    assert obs[-1] == 1.0  # the first-step flag
    ends = []
    for _ in range(3):
        obs, reward, terminated, truncated, info = view.step(0)
        assert reward == -1.0 and info["opponent_rewards"] == {"player_1": 1.0}  # (heads, tails): matcher loses
        ends.append(terminated or truncated)
    assert ends == [False, False, True]
    assert obs[0 * 2 + 1] == 1.0  # last joint action (0, 1), one-hot


def test_make_env_rejects_a_pettingzoo_env_and_non_envs_clearly():
    with pytest.raises(InvalidArgumentError, match="opponent_view"):
        make_env(RepeatedMatrixGame, 1).reset(seed=0)
    with pytest.raises(InvalidArgumentError, match="Gymnasium id or a callable"):
        make_env(3.5, 1)


def test_env_factory_matches_the_registered_env_exactly():
    """A factory gets the same vectorisation and episode semantics as a Gymnasium id."""
    import gymnasium as gym

    by_id, by_factory = make_env("CartPole-v1", 2, 0), make_env(lambda: gym.make("CartPole-v1"), 2, 0)
    a, _ = by_id.reset(seed=[0, 1])
    b, _ = by_factory.reset(seed=[0, 1])
    np.testing.assert_array_equal(a, b)
    for t in range(60):
        actions = np.array([t % 2, (t // 3) % 2])
        ra, rb = by_id.step(actions), by_factory.step(actions)
        for x, y in zip(ra[:4], rb[:4]):
            np.testing.assert_array_equal(x, y)
        assert ("final_obs" in ra[4]) == ("final_obs" in rb[4])


# ---- the collector ----------------------------------------------------------------------------------
def test_batch_carries_rewards_and_episode_ends():
    view = opponent_view(
        lambda: RepeatedMatrixGame(MATCHING_PENNIES, horizon=5),
        "player_0",
        lambda: {"player_1": CallableOpponent(lambda o, r: 0)},
    )
    config = TrainConfig(
        "pennies", total_steps=256, seed=0, num_envs=2, ppo=dataclasses.replace(tiny_ppo(), scale_rewards=False)
    )
    trainer = PPO(config, env=view)
    batch, finished = trainer.collect_rollout()
    steps = config.steps_per_env
    dones = batch.dones.reshape(steps, 2)
    assert dones.sum(0).tolist() == [steps // 5] * 2 and torch.all(dones[4::5] == 1)
    # unscaled: reward = +1 exactly when the matcher (player_0) played heads (action 0)
    np.testing.assert_array_equal(batch.rewards.numpy(), np.where(batch.actions.numpy().reshape(-1) == 0, 1.0, -1.0))
    assert len(finished) == 2 * (steps // 5)
    trainer.close()


def test_training_against_a_frozen_opponent_finds_the_best_response():
    """Exact answer: against heads with probability 0.8 the best response is heads, worth 6."""
    result = _example("frozen_opponent").main(iterations=8)
    assert result["heads_probability"] > 0.9
    assert result["mean_return"] > 4.5  # averaged over the last 100 episodes, the early ones included


def test_multi_agent_collector_self_play_batches():
    policy = PPO(TrainConfig("CartPole-v1", total_steps=2048, ppo=ppo_defaults_for("CartPole-v1"))).policy
    game = RepeatedMatrixGame(ROCK_PAPER_SCISSORS, horizon=4)
    # the env's policies need RPS's spaces: build them for it
    from robustrl.policies.actor_critic import ActorCritic

    players = {
        a: ActorCritic(game.observation_space(a), game.action_space(a), (16,), "tanh", 1.0)
        for a in game.possible_agents
    }
    del policy
    collector = MultiAgentCollector(
        [lambda: RepeatedMatrixGame(ROCK_PAPER_SCISSORS, horizon=4)] * 3, players, steps_per_env=12,
        rng=np.random.default_rng(0), gamma=0.99, gae_lambda=0.95, scale_rewards=False, clip_rewards=None,
    )  # fmt: skip
    batches, finished = collector.collect()
    assert set(batches) == {"player_0", "player_1"}
    for batch in batches.values():
        assert len(batch) == 36 and batch.dones.sum() == 9  # 3 episodes of 4 steps in each of 3 envs
    a0, a1 = batches["player_0"].actions.long(), batches["player_1"].actions.long()
    expected = torch.as_tensor(ROCK_PAPER_SCISSORS, dtype=torch.float32)[a0, a1]
    torch.testing.assert_close(batches["player_0"].rewards, expected)
    torch.testing.assert_close(batches["player_1"].rewards, -expected)
    assert finished["player_0"] == [-r for r in finished["player_1"]] and len(finished["player_0"]) == 9
    collector.close()


def test_frozen_policy_opponent_is_reproducible():
    game = RepeatedMatrixGame(ROCK_PAPER_SCISSORS)
    from robustrl.policies.actor_critic import ActorCritic

    policy = ActorCritic(game.observation_space("player_1"), game.action_space("player_1"), (8,), "tanh", 1.0)

    def episode():
        view = OpponentView(RepeatedMatrixGame(ROCK_PAPER_SCISSORS), "player_0", {"player_1": FrozenPolicy(policy)})
        view.reset(seed=3)
        return [view.step(0)[1] for _ in range(10)]

    assert episode() == episode()


# ---- finite checks ----------------------------------------------------------------------------------
def _with_broken_step(trainer, *, reward=None, final=None):
    original = trainer.env.step

    def step(actions):
        obs, r, term, trunc, info = original(actions)
        if reward is not None:
            r = np.full_like(r, reward)
        if final is not None and "final_obs" in info:
            info["final_obs"] = np.array(
                [np.full_like(o, final) if o is not None else None for o in info["final_obs"]], dtype=object
            )
        return obs, r, term, trunc, info

    trainer.env.step = step


def test_nan_reward_and_nan_final_observation_are_refused():
    config = TrainConfig("Pendulum-v1", total_steps=256, ppo=tiny_ppo())
    trainer = PPO(config)
    _with_broken_step(trainer, reward=np.nan)
    with pytest.raises(NonFiniteError, match="non-finite reward from Pendulum-v1"):
        trainer.train_iteration()
    trainer = PPO(config)  # Pendulum truncates at 200 steps: the final observation is read then
    _with_broken_step(trainer, final=np.nan)
    with pytest.raises(NonFiniteError, match="non-finite final observation"):
        trainer.train_iteration()


def test_a_diverged_policy_is_blamed_not_the_env():
    trainer = PPO(TrainConfig("Pendulum-v1", total_steps=256, ppo=tiny_ppo()))
    with torch.no_grad():
        trainer.policy.actor[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="action from the policy"):
        trainer.train_iteration()


# ---- callbacks: clock, state, composition, masks in the compiled step ----------------------------------
class CountingCallback(Callback):
    name = "counter"
    step_interval = 2

    def __init__(self):
        self.clocks, self.iterations = [], []

    def on_step(self, clock):
        self.clocks.append(clock.optimizer_step)

    def on_iteration(self, stats, clock):
        self.iterations.append((clock.iteration, clock.global_step))


def test_callbacks_see_the_clock():
    counter = CountingCallback()
    trainer = PPO(TrainConfig("Pendulum-v1", total_steps=512, ppo=tiny_ppo()), PPOHooks(callbacks=[counter]))
    trainer.learn()
    per_iteration = 2 * 4  # epochs x minibatches
    assert counter.clocks == list(range(2, 2 * per_iteration + 1, 2))
    assert counter.iterations == [(1, 256), (2, 512)]


def test_callback_names_must_differ():
    with pytest.raises(ValueError, match="distinct names"):
        PPO(
            TrainConfig("Pendulum-v1", total_steps=256, ppo=tiny_ppo()),
            PPOHooks(callbacks=[CountingCallback(), CountingCallback()]),
        )


def test_two_stacked_callbacks_with_state_resume_exactly(tmp_path):
    example = _example("stacked_hooks")
    full, resumed = example.main(tmp_path)
    assert full.keys() == resumed.keys()
    assert {"callback/mask/actor_0_weight"} <= full.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    weight, mask = full["policy/actor.0.weight"], full["callback/mask/actor_0_weight"]
    assert torch.all(weight[mask == 0] == 0) and 0.4 < float(mask.mean()) < 0.6
    _, meta, _ = latest_checkpoint(tmp_path / "part")
    assert meta["trainer"]["callbacks"]["actor_l2"]["minibatches"] > 0


def test_resume_refuses_a_checkpoint_with_callback_state_this_run_lacks(tmp_path):
    example = _example("stacked_hooks")
    config = TrainConfig("Pendulum-v1", total_steps=256, ppo=tiny_ppo())
    train(config, tmp_path / "run", hooks=example.hooks())
    from robustrl.errors import CheckpointError

    with pytest.raises(CheckpointError, match="callback"):
        train(resume=tmp_path / "run")


@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile needs a C++ compiler")
def test_masks_apply_inside_the_compiled_step_with_several_steps_per_call(aot_eager_compile, users_steps_per_compiled_call):
    # aot_eager: the hooks' graph through dynamo and AOT autograd. The users' 4 steps per call:
    # with the mask's interval 4 every call is guarded (the counting wrapper below appends to a
    # list inside the compiled function, a side effect dynamo guards on)
    example = _example("stacked_hooks")
    results = {}
    for compiled in (False, True):
        mask = example.TopMagnitudeMask(interval=4)
        calls = []
        trainer = PPO(
            TrainConfig("Pendulum-v1", total_steps=512, seed=1, ppo=tiny_ppo(compile=compiled)),
            PPOHooks(callbacks=[mask]),
        )
        if compiled:
            original = trainer.functional_steps

            def counting(minibatches, *args, calls=calls, original=original):
                calls.append(len(minibatches))
                return original(minibatches, *args)

            trainer.functional_steps = counting
        trainer.learn()
        results[compiled] = {n: p.detach().clone() for n, p in trainer.policy.named_parameters()}
        assert torch.all(trainer.policy.actor[0].weight[mask.masks["actor.0.weight"] == 0] == 0)
        if compiled:
            assert set(calls) == {4}, calls  # masks do not force one step per call
    for name in results[False]:
        torch.testing.assert_close(results[True][name], results[False][name], rtol=1e-4, atol=1e-5)


# ---- the Learner protocol in the run layer -------------------------------------------------------------
class BanditLearner:
    """A two-armed bandit learner (softmax over two preferences, exact gradient): not PPO, and
    reporting metrics PPO has never heard of."""

    learner_name = "test-bandit"
    label = "bandit"

    def __init__(self, config: dict):
        self.settings = dict(config)
        self.iteration, self.global_step = 0, 0
        self.num_iterations = int(config["iterations"])
        self.total_steps = self.num_iterations
        self.preferences = torch.zeros(2)
        self.callbacks, self._stop = [], False

    @property
    def done(self):
        return self.iteration >= self.num_iterations

    @property
    def stop_requested(self):
        return self._stop

    def config_dict(self):
        return self.settings

    def train_iteration(self):
        p = torch.softmax(self.preferences, 0)
        means = torch.tensor([0.2, 0.8])
        value = float(p @ means)
        self.preferences += self.settings["lr"] * p * (means - value)  # exact policy gradient
        self.iteration += 1
        self.global_step += 1
        stats = IterationStats(self.iteration, self.global_step, {"regret": 0.8 - value, "p_best": float(p[1])}, [])
        for callback in self.callbacks:
            callback(stats)
        return stats

    def state(self):
        return {"preferences": self.preferences.clone()}, {"iteration": self.iteration, "global_step": self.global_step}

    def load_state(self, tensors, meta, source):
        self.preferences = tensors["preferences"].clone()
        self.iteration, self.global_step = meta["iteration"], meta["global_step"]
        return True

    def request_stop(self):
        self._stop = True

    def clear_stop_request(self):
        self._stop = False

    def add_iteration_callback(self, callback):
        self.callbacks.append(callback)

    def close(self):
        pass


register_learner("test-bandit", lambda config, hooks: BanditLearner(config))


def test_any_learner_gets_a_run_directory_its_own_columns_and_resume(tmp_path):
    settings = {"iterations": 6, "lr": 5.0, "checkpoint_every": 2}
    full = train(learner=BanditLearner(settings), out=tmp_path / "full")
    assert json.loads((tmp_path / "full" / "config.json").read_text())["learner"] == "test-bandit"
    header = (tmp_path / "full" / "progress.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["iteration", "global_step", "wall_seconds", "steps_per_second"] and {
        "regret",
        "p_best",
    } <= set(header)

    part = BanditLearner({**settings, "iterations": 6})
    part.add_iteration_callback(lambda stats: part.request_stop() if stats.iteration == 3 else None)
    result = train(learner=part, out=tmp_path / "part")
    assert result.interrupted and result.iterations == 3
    resumed = train(resume=tmp_path / "part")  # rebuilt from config.json through the registry
    assert resumed.iterations == 6 and not resumed.interrupted
    torch.testing.assert_close(resumed.learner.preferences, full.learner.preferences, rtol=0, atol=0)
    rows = (tmp_path / "part" / "progress.csv").read_text().strip().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["1", "2", "3", "4", "5", "6"]


def test_a_metric_first_reported_late_gets_its_column(tmp_path):
    class Late(Callback):
        name = "late"

        def on_iteration(self, stats, clock):
            if stats.iteration == 2:
                stats.metrics["appears_late"] = 1.5

    train(
        TrainConfig("Pendulum-v1", total_steps=768, ppo=tiny_ppo()),
        tmp_path / "run",
        hooks=PPOHooks(callbacks=[Late()]),
    )
    import csv

    rows = list(csv.DictReader(open(tmp_path / "run" / "progress.csv")))
    assert [row["appears_late"] for row in rows] == ["", "1.5", ""]


def test_sigterm_saves_like_ctrl_c_and_the_cli_exit_code_says_interrupted(tmp_path):
    """SIGTERM (timeout, schedulers, docker stop): the iteration finishes and a checkpoint is saved."""
    script = f"""
import os, signal
from robustrl import TrainConfig, train
from robustrl.algos import PPOHooks
import dataclasses
from robustrl import ppo_defaults_for
ppo = dataclasses.replace(ppo_defaults_for('Pendulum-v1'), steps_per_iteration=256, num_minibatches=4, policy_epochs=1, value_epochs=1)
hooks = PPOHooks(on_iteration=[lambda s: os.kill(os.getpid(), signal.SIGTERM) if s.iteration == 2 else None])
r = train(TrainConfig('Pendulum-v1', total_steps=256 * 10, ppo=ppo, checkpoint_every=100), {str(tmp_path / "run")!r}, hooks=hooks)
print('interrupted', r.interrupted, r.iterations)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "interrupted True 2" in done.stdout and "SIGTERM" in done.stderr
    _, meta = load_checkpoint(list_checkpoints(tmp_path / "run")[-1])
    assert meta["iteration"] == 2


# ---- action-side attacks --------------------------------------------------------------------------
def _biased_victim(heads_probability: float):
    """player_0 of matching pennies playing heads with a fixed probability, whatever it sees."""
    from robustrl.policies.actor_critic import ActorCritic

    game = RepeatedMatrixGame(MATCHING_PENNIES)
    policy = ActorCritic(game.observation_space("player_0"), game.action_space("player_0"), (8,), "tanh", 1.0)
    with torch.no_grad():
        last = policy.actor[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([np.log(heads_probability), np.log(1 - heads_probability)]))
    policy.eval()
    return policy


def test_partial_control_gives_the_attacker_eps_pi_of_the_steps():
    from robustrl.attacks.action import PartialControl

    mixture = PartialControl(CallableOpponent(lambda o, r: 0), CallableOpponent(lambda o, r: 1), eps_pi=0.3, seed=1)
    actions = [mixture.act(None) for _ in range(20_000)]
    assert mixture.controlled_steps == sum(actions)
    assert abs(np.mean(actions) - 0.3) < 0.015
    with pytest.raises(InvalidArgumentError, match="eps_pi"):
        PartialControl(mixture.benign, mixture.adversarial, eps_pi=1.5)


def test_adversarial_policy_with_partial_control_reaches_the_exact_value(tmp_path):
    """Victim: heads w.p. 0.8. Benign opponent: uniform (worth 0 to the victim). The attacker in
    control half the time should play tails: the victim's value is then
    10 * 0.5 * (0.8 * -1 + 0.2 * +1) = -3 per episode (and 0 without the attack)."""
    from robustrl.attacks import ATTACKS
    from robustrl.attacks.action import AdversarialPolicyAttack, TwoPlayerGame, evaluate_against

    assert ATTACKS["adv-policy"].side == "action"
    victim = _biased_victim(0.8)
    game = TwoPlayerGame(
        lambda: RepeatedMatrixGame(MATCHING_PENNIES, horizon=10), "player_0", "player_1",
        benign=lambda: CallableOpponent(lambda o, r: int(r.integers(2))), label="matching-pennies",
    )  # fmt: skip
    attack = AdversarialPolicyAttack(0.5, seed=0).fit(victim, game, budget=2048 * 6)
    clean = evaluate_against(victim, game, game.benign(), episodes=300)
    attacked = evaluate_against(victim, game, attack.opponent(seed=1), episodes=300)
    assert abs(clean["mean"]) < 0.6
    assert attacked["mean"] == pytest.approx(-3.0, abs=0.6)
    attack.save(tmp_path)
    loaded = AdversarialPolicyAttack.load(tmp_path, victim, game)
    again = evaluate_against(victim, game, loaded.opponent(seed=1), episodes=300)
    assert again["returns"] == attacked["returns"]  # the same fitted adversary, the same seeds
    from robustrl.errors import CheckpointError

    with pytest.raises(CheckpointError, match="different victim"):
        AdversarialPolicyAttack.load(tmp_path, _biased_victim(0.6), game)


def test_observation_tools_refuse_action_side_attacks_by_name():
    from robustrl.attacks import make_attack, parse_attacks

    with pytest.raises(InvalidArgumentError, match="opponent agent"):
        parse_attacks("mad,adv-policy")
    with pytest.raises(InvalidArgumentError, match="opponent agent"):
        make_attack("adv-policy", 0.1)


def test_an_mjcf_model_built_in_code_trains_and_resumes_exactly(tmp_path):
    """An env factory whose MuJoCo model is edited in code (a heavier Hopper torso, via
    mujoco.MjSpec) trains like a registered env, and its mid-episode state resumes bit for bit."""
    import gymnasium as gym
    import mujoco

    base = gym.make("Hopper-v5").unwrapped.fullpath
    spec = mujoco.MjSpec.from_file(base)
    torso = next(body for body in spec.bodies if body.name == "torso")
    for geom in torso.geoms:
        geom.mass = 5.0
    xml = tmp_path / "heavy_hopper.xml"
    xml.write_text(spec.to_xml())

    def heavy_hopper():
        return gym.make("Hopper-v5", xml_file=str(xml))

    config = TrainConfig("heavy-hopper", total_steps=256 * 3, ppo=tiny_ppo())
    full = PPO(config, env=heavy_hopper)
    full.learn()
    assert full.env.envs[0].unwrapped.model.body("torso").mass[0] == pytest.approx(5.0)
    part = PPO(config, env=heavy_hopper)
    part.train_iteration()
    tensors, meta = part.state()
    resumed = PPO(config, env=heavy_hopper)
    assert resumed.load_state(tensors, meta, "in memory")  # the simulator's state came back too
    resumed.learn()
    for key, value in full.state()[0].items():
        assert torch.equal(value, resumed.state()[0][key]), key
