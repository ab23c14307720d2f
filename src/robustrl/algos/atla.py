"""Alternating training with a learned adversary (ATLA; Zhang et al. 2021, "Robust RL on state
observations with learned optimal adversary", Sec. 4), as a callback any PPO-based method takes.

Why here (issue 17, item 5): BAR-PPO's robust term makes the policy smooth in the ball around the
states it visits, yet a learned adversary (SA-RL, PA-AD) breaks about one seed in five; the broken
seeds are no less smooth than the others (benchmarks/results/brittle_states.md). What SA-RL
exploits is a *sequence* of small perturbations that steers the agent into states it never learnt
to recover from. ATLA puts that adversary into training: an SA-RL adversary (the optimal-adversary
MDP of ``robustrl.attacks.adversary``) trains against the current agent, and the agent trains on
rollouts in which the adversary perturbs what it observes.

The loop, per phase of ``atla.agent_iterations`` agent iterations:

  1. the adversary's victim becomes a frozen copy of the agent (weights and normaliser);
  2. the adversary trains ``atla.adversary_iterations`` PPO iterations on the adversary MDP at the
     run's current eps (the robust methods' warm-up; phases wait while eps is 0; the first comes
     as soon as eps is above 0), times SA-RL's radius curriculum (``curriculum_scale`` x down to
     1x over the first ``curriculum_fraction`` of the run: see ``training_radius``);
  3. the agent collects its next rollouts with the adversary's mean action perturbing the
     normalised observations of the first ``ceil(atla.fraction * num_envs)`` envs (the rest stay
     clean, so natural return keeps a signal: our choice; ATLA's paper attacks every rollout).

The agent's batch holds what it observed (perturbed where attacked): its policy and value are fitted
on those observations, as ATLA's agent, which cannot see the true state. The robust objective of
the method (e.g. BAR-PPO's KL term) applies on top, unchanged. The adversary's whole PPO state is
saved in the run's checkpoints (``callback/atla/...``), so a run resumes with it; its envs cannot be
snapshotted, so a resumed ATLA run is not bit-identical to an uninterrupted one.

Cost: each phase adds ``adversary_iterations`` rollouts of the victim plus their updates, about as
much as the agent's own iterations at the defaults (1:1, ATLA's ratio). The adversary runs the env's
reference PPO settings (2048-step iterations): ``num_envs`` must divide 2048.

With ATLA every method, plain PPO included, takes ``eps``, ``norm`` and ``eps_warmup_fraction``
(``robustrl.algos.ATLA_KNOBS``): ``robustrl train --algo ppo --atla sa-rl --eps 0.075`` is ATLA-PPO.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch

from robustrl.algos.hooks import Callback, Clock
from robustrl.algos.objectives.common import linear_eps_schedule
from robustrl.config import learned_adversary_on
from robustrl.threat import Ball


class LearnedAdversaryTraining(Callback):
    name = "atla"

    def __init__(self, config: Any):
        self.config = config
        self.atla = config.atla
        robust = config.robust
        self.eps_schedule = linear_eps_schedule(robust.target_eps(config.env_id), robust.eps_warmup_fraction)
        self.norm = robust.norm
        self.eps = 0.0  # the radius of the rollouts about to be collected
        self.trainer: Any = None
        self.adversary: Any = None  # the adversary's PPO trainer (its policy: .policy)
        self.victim: Any = None
        self._pending_tensors: dict[str, torch.Tensor] = {}
        self._state_for_json: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None

    # ---- building -------------------------------------------------------------------------------
    def bind(self, trainer: Any) -> None:
        from robustrl.algos.ppo import PPO
        from robustrl.attacks.adversary import AdversaryVectorEnv
        from robustrl.config import TrainConfig, ppo_defaults_for

        config = self.config
        self.trainer = trainer
        self.victim = copy.deepcopy(trainer.policy).eval()
        num_iterations = trainer.num_iterations
        phases = math.ceil(num_iterations / self.atla.agent_iterations)
        adversary_ppo = ppo_defaults_for(config.env_id, compile=config.ppo.compile, fast_rollout=config.ppo.fast_rollout)
        env = AdversaryVectorEnv(
            self.victim, config.env_id, config.num_envs, config.seed + 7_919, trainer.policy.obs_dim,
            self._perturbation(0.0), config.backend,
        )  # fmt: skip
        adversary_config = TrainConfig(
            env_id=config.env_id, algo="adversary", seed=config.seed + 7_919, num_envs=config.num_envs, ppo=adversary_ppo,
            total_steps=max(1, phases * self.atla.adversary_iterations) * adversary_ppo.steps_per_iteration,
        )  # fmt: skip
        self.adversary = PPO(adversary_config, env=env)
        self.adversary.policy.env_id = config.env_id
        attacked = np.zeros(config.num_envs, dtype=bool)
        attacked[: math.ceil(self.atla.fraction * config.num_envs - 1e-9)] = True  # at least one env
        trainer.collector.observation_attack = self.perturb_rollout
        trainer.collector.attacked_envs = attacked

    def _perturbation(self, eps: float):
        """SA-RL's perturbation (robustrl.attacks.sa_rl) at radius ``eps``."""
        from robustrl.attacks.sa_rl import sa_rl_perturbation

        ball = Ball(eps, self.norm)
        return lambda obs, action: sa_rl_perturbation(obs, action, ball)

    # ---- the rollouts ---------------------------------------------------------------------------
    @torch.no_grad()
    def perturb_rollout(self, obs: Any) -> Any:
        """The attacked envs' normalised observations as the adversary shows them (numpy in, numpy
        out on the fast rollout path; torch on the reference path)."""
        if self.eps == 0.0:
            return obs
        clean = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        adversary = self.adversary.policy
        action = adversary.mean_action(adversary.normalize(clean.numpy()))
        perturbed = self._perturbation(self.eps)(clean, action)
        return perturbed.numpy() if isinstance(obs, np.ndarray) else perturbed

    # ---- the phases -----------------------------------------------------------------------------
    def on_iteration(self, stats: Any, clock: Clock) -> None:
        next_eps = self.eps_schedule(clock.iteration, clock.num_iterations)
        # a phase every agent_iterations, and the first as soon as eps is above 0 (the rollouts
        # are not attacked by an adversary that never trained)
        due = clock.iteration % self.atla.agent_iterations == 0 or self.adversary.iteration == 0
        if due and next_eps > 0 and clock.iteration < clock.num_iterations:
            victim_returns = self._train_adversary(next_eps, clock.fraction)
            stats.metrics["atla_victim_return"] = float(np.mean(victim_returns)) if victim_returns else math.nan
        self.eps = next_eps
        stats.metrics["atla_eps"] = next_eps

    def _refresh_victim(self) -> None:
        """The adversary's victim becomes a frozen copy of the agent: weights and observation
        normaliser (not in the state_dict), and the numpy actor the adversary env keeps."""
        self.victim = copy.deepcopy(self.trainer.policy).eval()
        self.adversary.env.set_victim(self.victim)

    def training_radius(self, eps: float, fraction: float) -> float:
        """The radius the adversary trains at: SA-RL's radius curriculum (robustrl.attacks.
        adversary), from curriculum_scale * eps down to eps over the first curriculum_fraction of
        the run. At Hopper's eps 0.075 an SA-RL adversary trained at eps alone learns nothing in 1M
        steps, while directions learnt at a larger radius transfer (benchmarks/results/attacks.md);
        the rollouts are attacked at eps, the threat model."""
        a = self.atla
        progress = min(1.0, fraction / a.curriculum_fraction) if a.curriculum_fraction > 0 else 1.0
        return eps * (a.curriculum_scale + (1.0 - a.curriculum_scale) * progress)

    def _train_adversary(self, eps: float, fraction: float) -> list[float]:
        """Steps 1-2: refresh the frozen victim, then train the adversary at the curriculum's
        radius for ``eps``; returns the victim's returns in the episodes that ended (the
        adversary's learning signal)."""
        self._refresh_victim()
        env = self.adversary.env
        env.perturbation = self._perturbation(self.training_radius(eps, fraction))
        returns: list[float] = []
        for _ in range(self.atla.adversary_iterations):
            if self.adversary.done:
                break
            stats = self.adversary.train_iteration()
            returns += [-r for r in stats.episode_returns]  # the adversary's return is minus the victim's
        self.adversary.policy.eval()
        return returns

    def close(self) -> None:
        if self.adversary is not None:
            self.adversary.close()

    # ---- checkpoints ----------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        # PPO.state asks for the tensors, then the JSON half: one adversary.state() serves both
        # (it snapshots the adversary's envs); state_json takes it and drops it, so a later
        # checkpoint never reads a stale one.
        self._state_for_json = self.adversary.state()
        return self._state_for_json[0]

    def state_json(self) -> dict[str, Any]:
        state, self._state_for_json = self._state_for_json or self.adversary.state(), None
        return {"eps": self.eps, "adversary": state[1]}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self._pending_tensors = dict(tensors)  # used with the JSON half (PPO loads tensors first)

    def load_state_json(self, state: dict[str, Any]) -> None:
        if not state:
            raise ValueError("the checkpoint has no ATLA adversary state (trained without atla?)")
        self.adversary.load_state(self._pending_tensors, state["adversary"], source="the checkpoint's ATLA adversary")
        self._pending_tensors = {}
        self.eps = float(state["eps"])
        self._refresh_victim()  # the next phase sets the adversary env's radius


def atla_callback_for(config: Any) -> LearnedAdversaryTraining | None:
    """The run's ATLA callback (None when ``config.atla.adversary`` is none)."""
    return LearnedAdversaryTraining(config) if learned_adversary_on(config.atla) else None
