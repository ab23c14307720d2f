"""BAR-PPO: Bilevel Adversarially Robust PPO (BARPO paper, Algorithm 3; Sec. 4-5).

Per iteration t, with the batch collected by pi_theta_t:

  inner (step 8):  s_nu = argmax_{s' in B_eps_t(s)} KL(pi_theta(.|s) || pi_theta(.|s'))     by SGLD
  outer (step 9):  L_bar = mean[ -(1/beta) H(pi_theta(.|s)) - g(pi_theta(a|s_nu) / pi_theta_t(a|s), A) ]
  update (step 10): minimise  PPO loss + kappa * L_bar      (guidance; ``--no-guidance``: L_bar alone)

The KL is the paper's tractable surrogate for the strongest adversary (Sec. 4): the inner problem
no longer depends on the advantage, and the outer step treats s_nu as fixed (no second-order
terms). 1/beta multiplies the entropy: it cannot be the SGLD temperature beta = 1e-5 (a weight of
1e5 would swamp the loss), so we use PPO's entropy coefficient (0 in the reference setup).

Where the inner problem is solved: Algorithm 3 solves it at step 8, before the update, with the
parameters theta_t that collected the batch, so the default is once per iteration for the whole
batch (``inner_solve="iteration"``); ``"minibatch"`` re-solves it for every minibatch with the
current parameters, as SA-PPO's code does for its regulariser (about 10x the inner cost).
"""

from __future__ import annotations

from typing import Any

import torch

from robustrl.algos.objectives.common import RobustObjective, surrogate_at
from robustrl.algos.ppo import Batch
from robustrl.threat import sgld


class BARPPO(RobustObjective):
    knobs = (*RobustObjective.knobs, "guidance", "guidance_until", "temperature")
    pure_iteration_loss = True  # L(theta; s_hat) with s_hat fixed: ppo.compile can trace it
    pure_minibatch_loss = True  # the inner KL reads no advantage: solved before each compiled step

    def solve_inner(self, batch: Batch, policy: Any, eps: float) -> torch.Tensor:
        """Step 8: SGLD maximisation of KL(pi(.|s) || pi(.|s')) over the ball."""
        clean = batch.obs
        divergence = self.divergence_objective(policy, clean)  # KL(pi(s) || pi(s')), up to the factor 2
        return sgld(divergence, clean, self.ball(eps), temperature=self.robust.temperature, **self.solver_options(eps))

    def loss(self, minibatch: Batch, policy: Any, eps: float) -> tuple[torch.Tensor, dict[str, float]]:
        """Step 9: L_bar at the inner solution s_nu (held fixed: no second-order terms)."""
        s_nu = self.obs_hat(minibatch, policy, eps)
        return surrogate_at(policy, minibatch, s_nu, self.clip_eps, self.entropy_coef)
