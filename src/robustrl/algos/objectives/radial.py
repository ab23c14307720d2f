"""RADIAL-PPO (Oikarinen et al. 2021, "Robust deep reinforcement learning through adversarial
loss", NeurIPS), as its official MuJoCo code (``tuomaso/radial_rl_v2``, ``radial_ppo_step``) does it.

Interval bound propagation of the policy mean over the observation ball gives a box
l <= mu(s') <= u for every s' in B_eps(s). Over that box the log-likelihood of the sampled action
is bounded per sample, and so is the ratio r(s') = pi_theta(a|s') / pi_theta_t(a|s):

  r_lo = exp(min_{mu in [l, u]} log N(a; mu, sigma) - log pi_theta_t(a|s))   (mean as far from a as the box allows)
  r_hi = exp(max_{mu in [l, u]} log N(a; mu, sigma) - log pi_theta_t(a|s))   (mean = clamp(a, l, u))

PPO's clipped surrogate g(x, A) = min(x A, clip(x, 1 - eta, 1 + eta) A) is non-decreasing in x
when A >= 0 and non-increasing when A < 0, so its worst case over the box is

  g_worst = g(r_lo, A) if A >= 0 else g(r_hi, A)        ("lowest likelihood when A >= 0, highest when A < 0")

and RADIAL's loss mixes it with the clean surrogate (the paper's kappa L_norm + (1 - kappa) L_adv):

  L_radial = -mean[(1 - m) g(r(s), A) + m g_worst] - c H(pi(.|s)),   m = ``radial_mix`` (0.5 as the code)

How it plugs into the loop: L_radial already contains the clean surrogate with weight 1 - m, which
plays the part of the SPO guidance, so this objective sets ``guidance = False`` (the PPO loop then
minimises L_radial alone, exactly like ``radial_ppo_step``) and ``kappa`` is not used; ``radial_mix``
is the weight. With eps = 0 (the start of the eps schedule) or m = 0 the loss is PPO's policy loss
exactly: like the reference's ``if current_eps > 0`` branch, the bounds are then not computed.

Where we follow the code and where we simplify:
- ``radial_bound: corners`` (the default since session 27) does what the reference does: the
  minimum of the surrogates at the clean mean and at the two box corners ``ub_mean`` /
  ``lb_mean``. ``radial_bound: exact`` takes the per-dimension worst means, the exact extremes of a
  Gaussian log-likelihood over the box; those bounds contain the corners, so its g_worst is never
  above the reference's (it is the exact worst case over the IBP box, and more pessimistic the
  more action dimensions there are). At our 2M steps the exact bound's RADIAL-PPO did not learn
  Walker2d or HalfCheetah and the reference's did (README, issue 17), hence the default. For
  categorical policies both read the exact logit-box bound below, as the reference's
  discrete-action variants do;
- plain IBP (:mod:`robustrl.policies.ibp`) instead of auto_LiRPA's CROWN-IBP mixture with its beta
  schedule (the reference anneals towards IBP as well); l_2 balls use their bounding box;
- the shared linear eps schedule (0 -> target over 75% of the iterations) instead of the
  reference's per-minibatch scheduler; the reference trains RADIAL-PPO for 4M steps (BARPO App. F);
- categorical policies: log-softmax is increasing in the taken action's logit and decreasing in
  the others, so the extremes over the logit box are z_a = l_a, z_j = u_j (lowest) and
  z_a = u_a, z_j = l_j (highest), as RADIAL's discrete-action variants bound the logits.
"""

from __future__ import annotations

from typing import Any

import torch

from robustrl.algos.objectives.common import RobustObjective, clipped_surrogate
from robustrl.algos.ppo import Batch
from robustrl.policies.ibp import interval_bounds


def gaussian_log_likelihood(means: torch.Tensor, std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Joint log-likelihood of ``actions`` under independent Gaussians at ``means`` (per sample)."""
    return torch.distributions.Normal(means, std, validate_args=False).log_prob(actions).sum(-1)


def log_likelihood_bounds(
    policy: Any, lower: torch.Tensor, upper: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(lowest, highest) joint log-likelihood of ``actions`` when the actor's output ranges over
    the box [lower, upper] (Gaussian means, or categorical logits), per sample."""
    if policy.continuous:
        std = policy.log_std.exp().expand_as(lower)
        far = torch.where((actions - lower).abs() >= (actions - upper).abs(), lower, upper)
        near = torch.minimum(torch.maximum(actions, lower), upper)
        return gaussian_log_likelihood(far, std, actions), gaussian_log_likelihood(near, std, actions)
    taken = torch.nn.functional.one_hot(actions.long(), lower.shape[-1]).bool()
    worst_logits = torch.where(taken, lower, upper)
    best_logits = torch.where(taken, upper, lower)
    lowest = torch.distributions.Categorical(logits=worst_logits, validate_args=False).log_prob(actions.long())
    highest = torch.distributions.Categorical(logits=best_logits, validate_args=False).log_prob(actions.long())
    return lowest, highest


class RADIALPPO(RobustObjective):
    """RADIAL-PPO's adversarial loss; see the module docstring."""

    knobs = ("eps", "norm", "eps_warmup_fraction", "radial_mix", "radial_bound")  # no kappa, no inner solver: IBP bounds
    pure_iteration_loss = True  # eps read from the batch (store_eps): ppo.compile traces the term

    def __init__(self, config: Any):
        super().__init__(config)
        self.guidance = False  # L_radial contains the clean surrogate itself (weight 1 - radial_mix)
        self.mix = config.robust.radial_mix
        self.corners = config.robust.radial_bound == "corners"

    def prepare(self, batch: Batch, policy: Any, eps: float) -> None:
        """Nothing to solve ahead: the bounds are computed per minibatch with the current
        parameters (they are differentiated through). eps goes into the batch (store_eps)."""
        self.store_eps(batch, eps)

    def worst_surrogate(self, minibatch: Batch, policy: Any, eps: float | torch.Tensor) -> torch.Tensor:
        """g_worst per sample: the clipped surrogate at the worst ratio the IBP box allows
        (``eps``: a number, or one radius per sample)."""
        radius = eps[:, None] if isinstance(eps, torch.Tensor) else eps
        lower, upper = interval_bounds(policy.actor, minibatch.obs - radius, minibatch.obs + radius)
        advantages = minibatch.advantages
        if self.corners and policy.continuous:  # categorical: the logit box's exact bound, as the reference's
            return self.corner_surrogate(minibatch, policy, lower, upper)
        lowest, highest = log_likelihood_bounds(policy, lower, upper, minibatch.actions)
        # Select before exponentiating, so the unused bound never enters the backward pass.
        worst_log_prob = torch.where(advantages >= 0, lowest, highest)
        return clipped_surrogate((worst_log_prob - minibatch.log_probs).exp(), advantages, self.clip_eps)

    def corner_surrogate(self, minibatch: Batch, policy: Any, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        """The reference's worst case (``radial_ppo_step``): per sample, the lowest clipped
        surrogate with the Gaussian mean at the clean output, at the box's lower corner and at its
        upper corner. Not a bound over the whole box (a mean between the corners, or one mixing
        them per dimension, can be worse): ``radial_bound: exact`` is. Gaussian policies only."""
        std = policy.log_std.exp().expand_as(lower)
        clean = policy.actor(minibatch.obs)
        surrogates = [
            clipped_surrogate((gaussian_log_likelihood(mean, std, minibatch.actions) - minibatch.log_probs).exp(), minibatch.advantages, self.clip_eps)
            for mean in (clean, lower, upper)
        ]
        return torch.stack(surrogates).amin(0)

    def loss(self, minibatch: Batch, policy: Any, eps: float) -> tuple[torch.Tensor, dict[str, float]]:
        log_prob, entropy = policy.log_prob_and_entropy(minibatch.obs, minibatch.actions)
        ratio = (log_prob - minibatch.log_probs).exp()
        clean = clipped_surrogate(ratio, minibatch.advantages, self.clip_eps)
        rows = minibatch.extras.get("eps")  # set by prepare: no branch on its value (compiled graphs)
        if self.mix > 0 and (rows is not None or eps > 0):
            worst = self.worst_surrogate(minibatch, policy, rows if rows is not None else eps)
            surrogate = (1 - self.mix) * clean + self.mix * worst
            metrics = {"worst_surrogate": worst.mean().detach(), "clean_surrogate": clean.mean().detach()}
        else:
            surrogate = clean
            metrics = {"worst_surrogate": clean.mean().detach(), "clean_surrogate": clean.mean().detach()}
        term = -surrogate.mean() - self.entropy_coef * entropy
        return term, metrics
