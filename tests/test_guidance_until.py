"""``robust.guidance_until``: AR-PPO / BAR-PPO minimise PPO loss + kappa * term for the first
fraction of the iterations, then the robust term alone (issue 17: guided BAR-PPO seeds break under
learned attacks, unguided ones did not but lose natural return). Checked: the switch happens at
the stated iteration, eager and compiled (the compiled step is traced again with the new value,
not left with the old constant), a resumed run keeps it, bad values are refused, and configs
without it keep their study run names."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from robustrl.algos import robust_config_for
from robustrl.algos.objectives import OBJECTIVES
from robustrl.algos.ppo import PPO, PPOHooks
from robustrl.config import RobustConfig, TrainConfig
from robustrl.errors import InvalidArgumentError
from robustrl.experiments.spec import config_hash
from test_ppo import small_config


def _trainer(iterations: int, guidance_until: float, compile_step: bool = False, algo: str = "bar-ppo") -> PPO:
    base = small_config("Pendulum-v1", iterations=iterations, compile=compile_step)
    robust = robust_config_for(algo, {"eps": 0.2, "kappa": 1.0, "guidance_until": guidance_until})
    config = TrainConfig(base.env_id, algo=algo, total_steps=base.total_steps, ppo=base.ppo, robust=robust)
    return PPO(config, hooks=PPOHooks(objective=OBJECTIVES[algo](config), eps_schedule=lambda i, n: 0.2))


def _record_guidance(monkeypatch) -> list[tuple[int, bool]]:
    """(iteration, guidance) of every minibatch loss built: each eager step, each compiled trace."""
    seen: list[tuple[int, bool]] = []
    original = PPO.minibatch_loss

    def recording(self, minibatch, train_policy, train_value, eps):
        if train_policy:
            seen.append((self.iteration, self.hooks.objective.guidance))
        return original(self, minibatch, train_policy, train_value, eps)

    monkeypatch.setattr(PPO, "minibatch_loss", recording)
    return seen


def _guidance_over_a_run(monkeypatch, **options) -> tuple[list[tuple[int, bool]], PPO]:
    """Four iterations with guidance until 0.5: what the losses saw, and the finished trainer."""
    torch.set_num_threads(1)
    seen = _record_guidance(monkeypatch)
    trainer = _trainer(4, 0.5, **options)
    trainer.learn()
    trainer.close()
    return seen, trainer


@pytest.mark.parametrize("algo", ["bar-ppo", "ar-ppo"])
def test_guidance_ends_after_its_fraction_of_the_iterations(algo, monkeypatch):
    seen, trainer = _guidance_over_a_run(monkeypatch, algo=algo)
    by_iteration = {i: {g for it, g in seen if it == i} for i in range(4)}
    assert by_iteration == {0: {True}, 1: {True}, 2: {False}, 3: {False}}
    assert not trainer.hooks.objective.guidance


def test_after_the_switch_the_update_is_the_unguided_update(monkeypatch):
    """Iteration 2 of a run whose guidance ends at 0.5 of 4 iterations takes the same step as an
    unguided run restored from the same checkpoint: the switch changes the loss, nothing else."""
    torch.set_num_threads(1)
    trainer = _trainer(4, 0.5)
    for _ in range(2):
        trainer.train_iteration()
    tensors, meta = trainer.state()
    trainer.train_iteration()
    switched = torch.cat([p.detach().flatten() for p in trainer.policy.parameters()])
    trainer.close()
    unguided_config = dataclasses.replace(trainer.config, robust=dataclasses.replace(trainer.config.robust, guidance=False, guidance_until=1.0))
    unguided = PPO(unguided_config, hooks=PPOHooks(objective=OBJECTIVES["bar-ppo"](unguided_config), eps_schedule=lambda i, n: 0.2))
    meta = {**meta, "config": unguided_config.to_dict()}
    unguided.load_state(tensors, meta, source="test")
    unguided.train_iteration()
    expected = torch.cat([p.detach().flatten() for p in unguided.policy.parameters()])
    unguided.close()
    torch.testing.assert_close(switched, expected, rtol=0, atol=0)
    # and differs from the step a guided run takes there
    guided = _trainer(4, 1.0)
    guided.load_state(tensors, {**meta, "config": guided.config.to_dict()}, source="test")
    guided.train_iteration()
    assert (torch.cat([p.detach().flatten() for p in guided.policy.parameters()]) - switched).abs().max() > 1e-6
    guided.close()


@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile needs a C++ compiler")
def test_the_compiled_step_is_traced_again_when_guidance_ends(monkeypatch, aot_eager_compile):
    seen, _ = _guidance_over_a_run(monkeypatch, compile_step=True)
    # traced (not run step by step) under compile: a trace while guided and one after the switch
    assert any(g for _, g in seen) and any(i >= 2 and not g for i, g in seen)
    assert not any(i >= 2 and g for i, g in seen)  # never the stale guided graph after the switch


def test_a_method_without_the_knob_keeps_its_guidance_whatever_the_config_says(monkeypatch):
    """A hand-built config (TrainConfig.from_dict checks no knobs per method) with guidance_until
    on SA-PPO: SA-PPO does not read it, so its regulariser stays beside PPO's loss all run."""
    torch.set_num_threads(1)
    seen = _record_guidance(monkeypatch)
    base = small_config("Pendulum-v1", iterations=2, compile=False)
    config = TrainConfig(base.env_id, algo="sa-ppo", total_steps=base.total_steps, ppo=base.ppo,
                         robust=RobustConfig(eps=0.2, guidance_until=0.5, inner_steps=2))  # fmt: skip
    trainer = PPO(config, hooks=PPOHooks(objective=OBJECTIVES["sa-ppo"](config), eps_schedule=lambda i, n: 0.2))
    trainer.learn()
    trainer.close()
    assert {i for i, _ in seen} == {0, 1} and all(g for _, g in seen)


def test_bad_values_are_refused_and_other_methods_do_not_take_it():
    for value in (0.0, -0.1, 1.5):
        with pytest.raises(InvalidArgumentError, match="guidance_until"):
            robust_config_for("bar-ppo", {"guidance_until": value})
    with pytest.raises(InvalidArgumentError, match="guidance is off"):
        robust_config_for("bar-ppo", {"guidance_until": 0.5, "guidance": False})
    with pytest.raises(InvalidArgumentError, match="sa-ppo does not use guidance_until"):
        robust_config_for("sa-ppo", {"guidance_until": 0.5})


def test_configs_without_it_keep_their_run_names():
    config = TrainConfig("Hopper-v5", algo="bar-ppo", robust=RobustConfig(kappa=1.0))
    legacy = config.to_dict()
    legacy["robust"].pop("guidance_until")  # a config.json written before the knob

    class Legacy:  # hashed as it was written then
        def to_dict(self):
            return json.loads(json.dumps(legacy))

    assert TrainConfig.from_dict(legacy) == config
    assert config_hash(Legacy()) == config_hash(config)
    assert config_hash(dataclasses.replace(config, robust=RobustConfig(kappa=1.0, guidance_until=0.75))) != config_hash(config)
