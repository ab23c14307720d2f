"""ATLA (robustrl.algos.atla): an SA-RL adversary trained against the agent in alternating phases,
perturbing the observations of a fraction of the agent's rollout envs. Checked: the config (errors,
old configs, run names), the rollouts it perturbs (inside the ball, only the attacked envs), that
the adversary learns to lower the victim's return, and that its state rides in the checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from robustrl import TrainConfig, ppo_defaults_for
from robustrl.algos.ppo import PPO, hooks_for
from robustrl.config import AtlaConfig, RobustConfig, learned_adversary_on
from robustrl.errors import InvalidArgumentError
from robustrl.experiments.run import train
from robustrl.experiments.spec import config_hash, parse_spec

PENDULUM = "Pendulum-v1"
TINY = {"steps_per_iteration": 256, "num_minibatches": 4, "policy_epochs": 2, "value_epochs": 2}


def _config(iterations: int = 6, algo: str = "ppo", eps: float = 0.3, **atla) -> TrainConfig:
    # PPO reads no robust knob, but ATLA reads the run's eps and warm-up from them (the CLI and
    # specs give PPO the env's default eps; robust methods take --eps)
    return TrainConfig(
        env_id=PENDULUM, algo=algo, total_steps=iterations * 256, seed=0, num_envs=2, ppo=ppo_defaults_for(PENDULUM, **TINY),
        robust=RobustConfig(eps=eps, eps_warmup_fraction=0.0),
        atla=AtlaConfig(**{"adversary": "sa-rl", "agent_iterations": 2, "adversary_iterations": 2, **atla}),
    )  # fmt: skip


def test_config_errors_name_the_knob_and_off_keeps_old_configs_and_run_names():
    for bad, match in [({"adversary": "mad"}, "atla.adversary"), ({"fraction": 0.0}, "atla.fraction"),
                       ({"agent_iterations": 0}, "atla.agent_iterations")]:  # fmt: skip
        with pytest.raises(InvalidArgumentError, match=match):
            _config(**bad).validate()
    on = _config()
    off = TrainConfig(**{**{f: getattr(on, f) for f in ("env_id", "algo", "total_steps", "seed", "num_envs", "ppo", "robust")}})
    legacy = off.to_dict()
    legacy.pop("atla")  # a config.json written before ATLA
    assert TrainConfig.from_dict(legacy) == off
    assert TrainConfig.from_dict(on.to_dict()) == on
    # off hashes as a config from before ATLA (every study keeps its run names); on is another run

    class Legacy:
        def to_dict(self):
            return json.loads(json.dumps(legacy))

    assert config_hash(off) == config_hash(Legacy()) != config_hash(on)
    with pytest.raises(InvalidArgumentError, match="unknown atla config keys"):
        TrainConfig.from_dict({**on.to_dict(), "atla": {"adversary": "sa-rl", "ratio": 2}})
    # one reading of "off" for configs, saved config dicts, spec sections and absent sections
    assert learned_adversary_on(on.atla) and learned_adversary_on(on.to_dict()["atla"])
    assert not any(learned_adversary_on(a) for a in (off.atla, legacy.get("atla"), {}, {"adversary": "none"}, {"fraction": 0.5}))


def test_a_study_method_takes_an_atla_entry_and_refuses_unknown_knobs():
    base = {"name": "s", "envs": [PENDULUM], "seeds": [0], "steps": 512, "num_envs": 2}
    spec = parse_spec({**base, "methods": {"ppo": {"algo": "ppo"}, "ppo-atla": {"algo": "ppo", "atla": {"adversary": "sa-rl"}}}})
    configs = {run.label: run.config for run in spec.runs}
    assert configs["ppo"].atla.adversary == "none" and configs["ppo-atla"].atla == AtlaConfig(adversary="sa-rl")
    assert len({run.name for run in spec.runs}) == 2
    from robustrl.experiments.spec import StudySpecError

    # with ATLA, plain PPO takes the radius and its warm-up (ATLA-PPO); without, it still refuses them
    spec = parse_spec({**base, "set_robust": {"eps": 0.2, "eps_warmup_fraction": 0.1},
                       "methods": {"ppo": {"algo": "ppo"}, "ppo-atla": {"algo": "ppo", "eps": 0.3, "atla": {"adversary": "sa-rl"}}}})  # fmt: skip
    robust = {run.label: run.config.robust for run in spec.runs}
    assert (robust["ppo-atla"].eps, robust["ppo-atla"].eps_warmup_fraction) == (0.3, 0.1)
    assert (robust["ppo"].eps, robust["ppo"].eps_warmup_fraction) == (None, 0.75)
    with pytest.raises(StudySpecError, match="ppo does not use eps"):
        parse_spec({**base, "methods": {"ppo": {"algo": "ppo", "eps": 0.3}}})
    with pytest.raises(StudySpecError, match="unknown ATLA knob"):
        parse_spec({**base, "methods": {"x": {"algo": "ppo", "atla": {"adversary": "sa-rl", "every": 3}}}})


def test_rollouts_show_the_attacked_envs_the_adversarys_perturbation_inside_the_ball():
    torch.manual_seed(0)
    config = _config()
    trainer = PPO(config, hooks_for(config))
    (atla,) = [c for c in trainer.hooks.callbacks if c.name == "atla"]
    collector = trainer.collector
    assert collector.attacked_envs.tolist() == [True, False]  # half of 2 envs
    one = PPO(_config(fraction=0.2), hooks_for(_config(fraction=0.2)))  # rounded up: at least one env
    assert one.collector.attacked_envs.tolist() == [True, False]
    one.close()
    with torch.no_grad():  # an adversary whose actions reach the ball's corners
        atla.adversary.policy.actor[-1].weight.normal_(0.0, 10.0)
    obs = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    assert np.array_equal(collector._attacked(obs), obs)  # eps 0 before the first phase: clean
    atla.eps = 0.3
    for shown in (collector._attacked(obs), collector._attacked(torch.as_tensor(obs)).numpy()):  # fast and reference paths
        assert np.array_equal(shown[1], obs[1])  # the clean env
        change = np.abs(shown[0] - obs[0])
        assert change.max() <= 0.3 + 1e-6 and change.max() > 0.29  # in the l_inf ball, at its edge
    trainer.close()


def test_the_adversary_learns_to_lower_the_victims_return_and_the_agent_trains_on_what_it_saw():
    """SignGuess (tests/toy_envs.py: guess the sign of x, 5 steps; an adversary with eps > |x|
    flips the guess): phase by phase the adversary drives the agent's return down, from ~3.5 of 5
    to ~1.85 after 3 phases of 2 iterations (seeds 0-2 measured), and the agent's rollouts show
    perturbed observations."""
    from toy_envs import SIGN_GUESS

    torch.manual_seed(0)
    config = TrainConfig(
        env_id=SIGN_GUESS, algo="ppo", total_steps=8 * 256, seed=0, num_envs=2, robust=RobustConfig(eps=1.5, eps_warmup_fraction=0.0),
        ppo=ppo_defaults_for(SIGN_GUESS, steps_per_iteration=256, num_minibatches=4, policy_lr=3e-3),
        atla=AtlaConfig(adversary="sa-rl", agent_iterations=2, adversary_iterations=2, curriculum_scale=1.0),
    )  # fmt: skip
    trainer = PPO(config, hooks_for(config))
    (atla,) = [c for c in trainer.hooks.callbacks if c.name == "atla"]
    victim_returns, seen = [], []
    original = trainer.collector.observation_attack

    def recording(obs):
        shown = original(obs)
        seen.append(np.abs(np.asarray(shown) - np.asarray(obs)).max())
        return shown

    trainer.collector.observation_attack = recording
    x = np.array([[0.7], [-0.2]], dtype=np.float32)
    while not trainer.done:
        stats = trainer.train_iteration()
        assert stats.metrics["atla_eps"] == 1.5
        if "atla_victim_return" in stats.metrics:
            victim_returns.append(stats.metrics["atla_victim_return"])
            at_phase = trainer.policy.normalize(x)  # the agent the adversary just trained against
    trainer.close()
    assert len(victim_returns) == 4  # phases after iterations 1 (eps > 0, never trained), 2, 4, 6 (none after the last)
    assert atla.adversary.iteration == 8
    # the adversary attacked the agent as it was: its weights and its observation normaliser
    torch.testing.assert_close(atla.victim.normalize(x), at_phase)
    assert trainer.policy.normalizer.stats.count > 100  # (a normaliser that saw data)
    # the adversary takes > 1 of 5 off the agent (3.56 -> 1.88 by the third phase); the agent then
    # adapts (2.77 at the fourth): ATLA's point
    assert min(victim_returns[1:]) < victim_returns[0] - 1.0, victim_returns
    assert max(seen) > 0.5  # the agent's rollouts were perturbed


def test_the_adversary_rides_in_the_checkpoints_and_a_resumed_run_continues_with_it(tmp_path):
    torch.manual_seed(0)
    config = _config(iterations=6)
    iterations = iter(range(1, 100))
    train(config, out=tmp_path / "run", should_stop=lambda: next(iterations) >= 4, handle_signals=False, progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["atla"]["adversary"] == "sa-rl"
    from robustrl.policies.checkpoint import latest_checkpoint

    tensors, meta, _ = latest_checkpoint(tmp_path / "run")
    assert any(key.startswith("callback/atla/") for key in tensors)
    stopped_at = meta["iteration"]
    assert 2 <= stopped_at < 6
    # a phase of 2 adversary iterations after iteration 1 (eps 0.3 from the start) and after every 2
    phases = 1 + len([i for i in range(2, stopped_at + 1, 2)])
    assert meta["trainer"]["callbacks"]["atla"]["adversary"]["iteration"] == 2 * phases
    # the state a resume loads is the adversary that was saved
    trainer = PPO(config, hooks_for(config))
    trainer.load_state(tensors, meta, "test")
    (atla,) = [c for c in trainer.hooks.callbacks if c.name == "atla"]
    prefix = "callback/atla/policy/"  # the adversary's PPO state, under the callback's name
    actor = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix + "actor.")}
    assert actor, sorted(tensors)[:8]
    for name, value in actor.items():
        torch.testing.assert_close(atla.adversary.policy.state_dict()[name], value)
    assert atla.eps == 0.3
    x = np.array([[0.5, -0.5, 2.0]], dtype=np.float32)
    torch.testing.assert_close(atla.victim.normalize(x), trainer.policy.normalize(x))  # the restored agent's
    trainer.close()
    result = train(resume=tmp_path / "run", handle_signals=False, progress=False)
    assert result.iterations == 6 and not result.interrupted
    assert result.learner.hooks.callbacks[-1].adversary.iteration == 6  # phases after iterations 1, 2 and 4


def test_eps_follows_the_runs_warm_up_and_the_adversary_trains_at_the_curriculums_radius():
    """The rollouts' eps is the robust methods' schedule for the iteration about to run; the first
    phase comes as soon as it is above 0; the adversary trains at 4x down to 1x eps over the first
    half of the run (SA-RL's radius curriculum); closing the trainer closes the adversary's envs."""
    from robustrl.algos.objectives.common import linear_eps_schedule

    torch.manual_seed(0)
    config = TrainConfig(
        env_id=PENDULUM, algo="ppo", total_steps=8 * 256, seed=0, num_envs=2, ppo=ppo_defaults_for(PENDULUM, **TINY),
        robust=RobustConfig(eps=0.2, eps_warmup_fraction=0.5), atla=AtlaConfig(adversary="sa-rl", agent_iterations=3, adversary_iterations=1),
    )  # fmt: skip
    trainer = PPO(config, hooks_for(config))
    (atla,) = [c for c in trainer.hooks.callbacks if c.name == "atla"]
    schedule = linear_eps_schedule(0.2, 0.5)
    radii = []
    original = atla._perturbation

    def spying(eps):
        radii.append(eps)
        return original(eps)

    atla._perturbation = spying
    phases = []
    while not trainer.done:
        stats = trainer.train_iteration()
        assert stats.metrics["atla_eps"] == pytest.approx(schedule(trainer.iteration, 8))  # the next iteration's
        assert atla.eps == stats.metrics["atla_eps"]
        if "atla_victim_return" in stats.metrics:
            phases.append(trainer.iteration)
    assert phases == [1, 3, 6]  # eps > 0 from iteration 1 on; then every 3; none after the last
    # the radii the adversary trained at (rollout perturbations call it with eps itself)
    trained = [atla.training_radius(schedule(i, 8), i / 8) for i in phases]
    assert trained == pytest.approx([0.05 * (4 - 3 * 0.25), 0.15 * (4 - 3 * 0.75), 0.2])  # eps 0.05, 0.15, 0.2
    assert all(any(r == pytest.approx(t) for r in radii) for t in trained)
    env = atla.adversary.env.env
    trainer.close()
    assert env.closed
