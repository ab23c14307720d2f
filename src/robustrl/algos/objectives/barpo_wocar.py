"""BAR-PPO with WocaR's worst-case-aware advantage (``--algo bar-ppo-wocar``; not in the papers).

Issue 17: a learned attack breaks some guided BAR-PPO seeds although they are as smooth (small
KL over the ball) as the others, and a broken seed's weakness persists over its last iterates
(benchmarks/results/brittle_states.md, iterate_weakness.md). What SA-RL exploits is a sequence of
small perturbations whose effect on the *return* BAR-PPO's KL surrogate does not see. WocaR-PPO
(Liang et al. 2022) puts exactly that into the policy update: a critic Q_w of the return under the
worst attack in the ball (``wocar.WorstCaseCritic``, the same critic, fit and target as our
wocar-ppo) mixed into the advantage. Here that advantage replaces A in BAR-PPO's whole update
(Algorithm 3 unchanged otherwise):

  inner (step 8):   s_nu = argmax_{s' in B_eps(s)} KL(pi(.|s) || pi(.|s'))          (BAR-PPO)
  critic:           Q_w fitted to r + gamma Q_w'(s', a_w(s')), a_w the worst action of the
                    IBP box of the policy mean over B_eps(s')                        (WocaR)
  advantage:        A_w = A + w_t std(A) Q_hat_w(s, a),   w_t = q_weight min(1, eps_t / eps)
  update (step 10): minimise PPO loss(A_w) + kappa L_bar(s_nu; A_w)

Q_hat_w is Q_w normalised over the batch and scaled by the batch's advantage std, so that after
PPO's per-minibatch normalisation the mix is close to WocaR's (which normalises A and Q_w
separately per minibatch and adds them). At eps 0 (w_t = 0) this is BAR-PPO exactly. The critic
is fitted once per iteration in ``prepare`` and the advantage column is changed there, so the
minibatch term is BAR-PPO's own (``ppo.compile`` traces it the same way); the critic is saved in
the checkpoints (``objective/...``).
"""

from __future__ import annotations

from typing import Any

import torch

from robustrl.algos.objectives.barpo import BARPPO
from robustrl.algos.objectives.wocar import WorstCaseCritic
from robustrl.algos.ppo import Batch


class WorstCaseAwareBARPPO(WorstCaseCritic, BARPPO):
    knobs = (*BARPPO.knobs, *WorstCaseCritic.q_knobs)

    def __init__(self, config: Any):
        super().__init__(config)
        self.init_critic(config)

    def prepare(self, batch: Batch, policy: Any, eps: float) -> None:
        super().prepare(batch, policy, eps)  # reseed; step 8 once per iteration (the KL does not read A)
        worst_q = self.fit_and_value(batch, policy, eps)
        # the critic's loss as a batch column: the minibatch term stays a pure function of its
        # inputs (a float attribute would be baked into the compiled graph)
        batch.extras["worst_q_loss"] = torch.full((len(batch),), self.last_q_loss)
        if eps <= 0 or self.target_eps <= 0 or self.q_weight <= 0:
            return  # w_t = 0: BAR-PPO's advantages, bit for bit
        weight = self.worst_case_weight(torch.tensor(float(eps)))
        normalised = (worst_q - worst_q.mean()) / (worst_q.std() + 1e-8)
        with torch.no_grad():
            batch.advantages.add_(weight * batch.advantages.std() * normalised)

    def loss(self, minibatch: Batch, policy: Any, eps: float) -> tuple[torch.Tensor, dict[str, float]]:
        term, metrics = super().loss(minibatch, policy, eps)
        return term, {**metrics, "worst_q_loss": minibatch.extras["worst_q_loss"].mean()}
