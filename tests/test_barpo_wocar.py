"""``bar-ppo-wocar`` (robustrl.algos.objectives.barpo_wocar): BAR-PPO whose advantage is mixed with
WocaR's worst-attack value. Checked: the advantage it trains on against the formula, BAR-PPO
bit for bit at eps 0, the critic fitted and saved in checkpoints (a resumed run is exact), the
compiled update equal to the eager one, and its knobs and env requirement."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from robustrl.algos import check_env_support, robust_config_for
from robustrl.algos.objectives import OBJECTIVES
from robustrl.algos.ppo import PPO, PPOHooks
from robustrl.config import TrainConfig
from robustrl.errors import InvalidArgumentError
from test_objectives import make_batch, make_policy
from test_ppo import small_config


def _config(algo: str = "bar-ppo-wocar", iterations: int = 3, compile_step: bool = False, **robust) -> TrainConfig:
    base = small_config("Pendulum-v1", iterations=iterations, compile=compile_step)
    options = {"eps": 0.2, "kappa": 1.0, **({"q_weight": 0.5} if algo == "bar-ppo-wocar" else {}), **robust}
    return TrainConfig(base.env_id, algo=algo, total_steps=base.total_steps, ppo=base.ppo, robust=robust_config_for(algo, options))


def _trainer(config: TrainConfig, eps: float = 0.2) -> PPO:
    return PPO(config, hooks=PPOHooks(objective=OBJECTIVES[config.algo](config), eps_schedule=lambda i, n: eps))


def _parameters(trainer: PPO) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in trainer.policy.parameters()])


def test_the_advantage_is_mixed_with_the_normalised_worst_case_value():
    """A_w = A + w std(A) (Q' - mean Q') / std(Q'), w = q_weight min(1, eps / eps_target), with Q'
    the critic's target network on the batch's (s, a), fitted on that batch first."""
    config = _config(eps=0.2, q_weight=0.5)
    policy, objective = make_policy(), OBJECTIVES["bar-ppo-wocar"](config)
    assert objective.guidance and objective.kappa == 1.0  # BAR-PPO's update: PPO loss + kappa L_bar
    batch = make_batch(policy)
    advantages = batch.advantages.clone()
    objective.num_envs = 1  # make_batch's rows are one env's consecutive steps
    objective.prepare(batch, policy, 0.1)  # half the target radius: w = 0.25
    assert objective.q_network is not None and torch.isfinite(torch.tensor(objective.last_q_loss))
    with torch.no_grad():
        q = objective.target_network(batch.obs, batch.actions)
    expected = advantages + 0.25 * advantages.std() * (q - q.mean()) / (q.std() + 1e-8)
    torch.testing.assert_close(batch.advantages, expected)
    assert "obs_hat" in batch.extras  # BAR-PPO's inner solution, once per iteration, as before


def test_at_eps_zero_it_is_bar_ppo_bit_for_bit():
    torch.set_num_threads(1)
    runs = []
    for algo in ("bar-ppo", "bar-ppo-wocar"):
        trainer = _trainer(_config(algo, iterations=2), eps=0.0)
        trainer.learn()
        runs.append(_parameters(trainer))
        trainer.close()
    assert torch.equal(runs[0], runs[1])


def test_the_worst_case_value_changes_the_update_and_a_resumed_run_is_exact():
    torch.set_num_threads(1)
    config = _config(iterations=3)
    whole = _trainer(config)
    whole.learn()
    plain = _trainer(_config(iterations=3, q_weight=0.0))
    plain.learn()
    assert (_parameters(whole) - _parameters(plain)).abs().max() > 1e-4  # w > 0 moved the policy
    part = _trainer(config)
    for _ in range(2):
        part.train_iteration()
    tensors, meta = part.state()
    assert {"objective/q/net.0.weight", "objective/target/net.0.weight"} <= set(tensors)
    resumed = _trainer(config)
    assert resumed.load_state(tensors, meta, "in memory")
    resumed.train_iteration()
    assert torch.equal(_parameters(resumed), _parameters(whole))
    for trainer in (whole, plain, part, resumed):
        trainer.close()


@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile needs a C++ compiler")
@pytest.mark.parametrize("inner_solve", ["iteration", "minibatch"])
def test_the_compiled_update_equals_the_eager_one(inner_solve, aot_eager_compile):
    """One iteration (from the second on, sign steps turn float rounding into other inner
    solutions, as for every objective: test_ppo.test_compiled_robust_update_equals_eager); with
    the inner problem solved per minibatch too (BAR-PPO's presolve before each compiled step)."""
    torch.set_num_threads(1)
    runs = []
    for compile_step in (False, True):
        trainer = _trainer(_config(iterations=1, compile_step=compile_step, inner_solve=inner_solve))
        assert trainer.hooks.objective.compilable
        trainer.learn()
        runs.append(_parameters(trainer))
        trainer.close()
    torch.testing.assert_close(runs[1], runs[0], rtol=1e-4, atol=1e-5)


def test_its_knobs_and_its_env_requirement():
    robust_config_for("bar-ppo-wocar", {"q_weight": 0.3, "q_epochs": 2, "guidance_until": 0.75, "temperature": 1e-5})
    with pytest.raises(InvalidArgumentError, match="bar-ppo does not use q_weight"):
        robust_config_for("bar-ppo", {"q_weight": 0.3})
    with pytest.raises(InvalidArgumentError, match="bar-ppo-wocar .*continuous"):
        check_env_support(dataclasses.replace(_config(), env_id="CartPole-v1"))
