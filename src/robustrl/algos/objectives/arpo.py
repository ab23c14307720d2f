"""AR-PPO: Adversarially Robust PPO, the maximin baseline (BARPO paper, Algorithm 2).

  inner (step 8):  s_nu = argmin_{s' in B_eps_t(s)} g(pi_theta(a|s') / pi_theta_t(a|s), A)      by PGD
  outer (step 9):  L_ar = mean[ -(1/beta) H(pi_theta(.|s)) - g(pi_theta(a|s_nu) / pi_theta_t(a|s), A) ]
  update (step 10): minimise  PPO loss + kappa * L_ar   (``--no-guidance``: L_ar alone, the paper's "ARPO")

The inner problem attacks the surrogate itself (the strongest adversary for this update), which
is what BARPO replaces by the KL surrogate. 1/beta on the entropy is PPO's entropy coefficient (see
barpo.py). Inner problem solved once per iteration by default (step 8 precedes the update), with
the batch-normalised advantages; ``inner_solve="minibatch"`` uses each minibatch's.
"""

from __future__ import annotations

from typing import Any

import torch

from robustrl.algos.objectives.common import RobustObjective, clipped_surrogate, ratio_at, surrogate_at
from robustrl.algos.ppo import Batch
from robustrl.algos.rollout import normalized_advantages
from robustrl.threat import pgd


class ARPPO(RobustObjective):
    knobs = (*RobustObjective.knobs, "guidance", "guidance_until")
    pure_iteration_loss = True  # L(theta; s_hat) with s_hat fixed: ppo.compile can trace it
    pure_minibatch_loss = True  # solved before each compiled step (presolve), as BAR-PPO's

    def __init__(self, config: Any):
        super().__init__(config)
        self.normalize_advantages = config.ppo.normalize_advantages

    def presolve(self, minibatch: Batch, policy: Any, eps: float) -> None:
        """The per-minibatch solve outside the compiled step, on the advantages the eager path's
        solve sees inside the loss: normalised per minibatch as PPO does (the surrogate's sign
        steps depend on them, unlike BAR-PPO's KL)."""
        view = minibatch
        if self.normalize_advantages:
            view = Batch(minibatch.obs, minibatch.actions, minibatch.log_probs, minibatch.values,
                         normalized_advantages(minibatch.advantages), minibatch.returns)  # fmt: skip
        minibatch.extras["obs_hat"] = self.solve_inner(view, policy, eps).detach()

    def solve_inner(self, batch: Batch, policy: Any, eps: float) -> torch.Tensor:
        """Step 8: PGD minimisation of the clipped surrogate over the ball."""

        def surrogate(obs_hat: torch.Tensor) -> torch.Tensor:
            return clipped_surrogate(ratio_at(policy, obs_hat, batch), batch.advantages, self.clip_eps)

        if self.fast_inner:  # the same function, its gradient written out (robustrl.threat.objectives)
            from robustrl.threat.objectives import clipped_surrogate_objective

            surrogate = clipped_surrogate_objective(
                policy, batch.actions, batch.log_probs, batch.advantages, self.clip_eps, surrogate
            )

        return pgd(surrogate, batch.obs, self.ball(eps), maximize=False, **self.solver_options(eps))

    def loss(self, minibatch: Batch, policy: Any, eps: float) -> tuple[torch.Tensor, dict[str, float]]:
        """Step 9: L_ar at the inner solution s_nu (held fixed)."""
        s_nu = self.obs_hat(minibatch, policy, eps)
        return surrogate_at(policy, minibatch, s_nu, self.clip_eps, self.entropy_coef)
