"""SA-PPO (Zhang et al. 2020, "Robust deep RL against adversarial perturbations on state
observations", Sec. 3.4, Algorithm 2) and the minimax-KL ablation of the BARPO paper (Table 12).

  R(theta) = mean over the batch of  max_{s' in B_eps(s)} D(pi_theta(.|s), pi_theta(.|s'))
  update:    minimise  PPO loss + kappa * R(theta)

with D the std-normalised squared mean difference SA-PPO's code uses (= 2 KL for our Gaussian
policies; see ``gaussian_mean_divergence``). As in that code (``get_state_kl_bound_sgld`` detaches
the clean action means), the gradient flows through pi(s') only: the perturbed policy is pulled
towards a fixed pi(s). The minimax-KL ablation keeps the gradient through both.
The inner max is solved per minibatch with the current parameters, as the reference code does:
by SGLD (default, ``solver="sgld"``; with ``ppo.compile`` inside the compiled step, its random
draws made outside: :meth:`SAPPO.predraw`), PGD (``"pgd"``), or bounded from above by the convex
relaxation (``"ibp"``): interval bound propagation of the policy mean over the ball (our own IBP,
:mod:`robustrl.policies.ibp`; SA-PPO uses auto_LiRPA's CROWN-IBP, which does not install with our
torch), giving max_i |mu_i(s') - mu_i(s)| <= max(u_i - mu_i, mu_i - l_i).

``minimax-kl`` is the same regulariser with BAR-PPO's inner solver and its default of solving once
per iteration: the "KL surrogate inside a minimax formulation" whose Table-12 returns coincide with
SA-PPO's in the paper. The difference from BAR-PPO is only the outer loss: minimax-KL minimises
the divergence itself, BAR-PPO the clipped surrogate at the divergence-maximising state.
"""

from __future__ import annotations

from typing import Any

import torch

from robustrl.algos.objectives.common import RobustObjective, gaussian_mean_divergence
from robustrl.algos.ppo import Batch
from robustrl.policies.ibp import interval_bounds
from robustrl.threat import pgd, sgld
from robustrl.threat.objectives import divergence_input_grad, has_written_out_actor
from robustrl.threat.solvers import draw_sgld_noise, sgld_with_noise


class SAPPO(RobustObjective):
    default_inner_solve = "minibatch"
    detach_clean = True
    knobs = (*RobustObjective.knobs, "temperature", "solver")

    @classmethod
    def unsupported(cls, robust: Any, continuous_actions: bool) -> str | None:
        if robust.solver == "ibp" and not continuous_actions:
            return "with solver ibp needs continuous actions (IBP bounds a Gaussian mean; use solver sgld or pgd)"
        return super().unsupported(robust, continuous_actions)

    def __init__(self, config: Any):
        super().__init__(config)
        self.solver = config.robust.solver or "sgld"
        # given s_hat, kappa * divergence(pi(s), pi(s_hat)) is pure: ppo.compile traces it; the IBP
        # bound too, with eps read from the batch (store_eps)
        self.pure_minibatch_loss = self.pure_iteration_loss = True

    @property
    def compilable(self) -> bool:
        return self.solver == "ibp" or super().compilable

    @property
    def solves_per_minibatch(self) -> bool:
        return self.solver != "ibp" and super().solves_per_minibatch

    def solve_inner(self, batch: Batch, policy: Any, eps: float) -> torch.Tensor:
        clean = batch.obs
        divergence = self.divergence_objective(policy, clean)
        if self.solver == "pgd":
            return pgd(divergence, clean, self.ball(eps), **self.solver_options(eps))
        return sgld(divergence, clean, self.ball(eps), temperature=self.robust.temperature, **self.solver_options(eps))

    def solves_in_graph(self, policy: Any) -> bool:
        """SGLD per minibatch inside the compiled step (``ppo.compile``): its gradient written out
        in torch ops (:func:`~robustrl.threat.objectives.divergence_input_grad`), its draws made
        before the call (:meth:`predraw`). Several steps per compiled call instead of one step
        and one solve outside the graph per minibatch (320 per iteration: per-call overhead)."""
        return (
            self.solver == "sgld" and self.fast_inner and self.inner_solve == "minibatch" and has_written_out_actor(policy)
        )

    def predraw(self, minibatch: Batch, eps: float) -> None:
        """The SGLD draws of this minibatch's solve, from the objective's generator in the order
        the eager solve makes them (so compiled and eager runs draw the same numbers)."""
        if eps > 0:
            minibatch.extras["sgld_noise"] = draw_sgld_noise(
                minibatch.obs.shape, self.robust.inner_steps, self.generator, minibatch.obs.dtype
            )
        else:  # the eager solve at eps 0 returns the clean point and draws nothing
            minibatch.extras["obs_hat"] = minibatch.obs

    def prepare(self, batch: Batch, policy: Any, eps: float) -> None:
        if self.solver != "ibp":
            super().prepare(batch, policy, eps)
        if self.solver == "ibp" or self.solves_in_graph(policy):
            self.store_eps(batch, eps)

    def loss(self, minibatch: Batch, policy: Any, eps: float) -> tuple[torch.Tensor, dict[str, float]]:
        if self.solver == "ibp":
            rows = minibatch.extras.get("eps")
            # no rows: eps 0 (a point box, bound 0), or a caller without prepare; inside a
            # compiled step eps is nan and "nan > 0" is false: the eps-0 form
            radius = rows[:, None] if rows is not None else (eps if eps > 0 else 0.0)
            regulariser = self.ibp_bound(minibatch.obs, policy, radius)
        else:
            if "sgld_noise" in minibatch.extras:  # inside the compiled step (predraw)
                obs_hat = sgld_with_noise(
                    divergence_input_grad(policy, minibatch.obs), minibatch.obs, minibatch.extras["eps"],
                    minibatch.extras["sgld_noise"], norm=self.robust.norm, step_size=self.robust.inner_step_size,
                    temperature=self.robust.temperature,
                )  # fmt: skip
            else:
                obs_hat = self.obs_hat(minibatch, policy, eps)
            regulariser = gaussian_mean_divergence(policy, minibatch.obs, obs_hat, detach_clean=self.detach_clean)
        return regulariser.mean(), {"state_divergence": regulariser.mean().detach()}

    def ibp_bound(self, obs: torch.Tensor, policy: Any, eps: float | torch.Tensor) -> torch.Tensor:
        """Upper bound of the divergence over the l_inf box (IBP through the policy MLP)."""
        if not policy.continuous:
            raise ValueError("sa-ppo with solver=ibp needs a Gaussian policy")
        lower, upper = interval_bounds(policy.actor, obs - eps, obs + eps)
        mean = policy.actor(obs)
        deviation = torch.maximum(upper - mean, mean - lower)
        return ((deviation / policy.log_std.exp()) ** 2).sum(-1)


class MinimaxKL(SAPPO):
    """min_theta PPO + kappa max_{s'} KL(pi_theta(s) || pi_theta(s')): the gradient flows through
    both policies (a true minimax of the KL), inner problem once per iteration like BAR-PPO."""

    default_inner_solve = "iteration"
    detach_clean = False
