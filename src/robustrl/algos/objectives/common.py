"""Pieces shared by the robust objectives: the eps schedule, the clipped surrogate g, the
policy divergences, and the base class that decides where the inner problem is solved."""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from typing import Any

import torch

from robustrl.algos.ppo import Batch
from robustrl.algos.rollout import normalized_advantages
from robustrl.config import TrainConfig
from robustrl.threat import Ball


def linear_eps_schedule(target: float, warmup_fraction: float):
    """eps_t = target * min(1, t / T_w) with T_w = round(warmup_fraction * T): 0 -> target over the
    first 75% of iterations (732 of 976 in the papers, App. F.3), then constant."""

    def schedule(iteration: int, num_iterations: int) -> float:
        warmup = round(warmup_fraction * num_iterations)
        if warmup <= 0:
            return target
        return target * min(1.0, iteration / warmup)

    return schedule


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip_eps: float) -> torch.Tensor:
    """g(x, y) = min(x * y, clip(x, 1 - eta, 1 + eta) * y), per sample (PPO eq. 7; BARPO Alg. 2)."""
    return torch.min(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages)


def ratio_at(policy: Any, obs: torch.Tensor, minibatch: Batch) -> torch.Tensor:
    """pi_theta(a | obs) / pi_theta_t(a | s): the new policy evaluated at (possibly perturbed)
    observations, over the old policy at the clean ones."""
    return (policy.log_prob_and_entropy(obs, minibatch.actions)[0] - minibatch.log_probs).exp()


def surrogate_at(policy: Any, minibatch: Batch, obs_hat: torch.Tensor, clip_eps: float, entropy_coef: float):
    """L = mean[ -c H(pi(.|s)) - g(pi_theta(a|s_hat) / pi_theta_t(a|s), A) ]: the outer loss of
    both ARPO (Alg. 2 step 9, L_ar) and BARPO (Alg. 3 step 9, L_bar); they differ only in s_hat."""
    surrogate = clipped_surrogate(ratio_at(policy, obs_hat, minibatch), minibatch.advantages, clip_eps)
    entropy = policy.log_prob_and_entropy(minibatch.obs, minibatch.actions)[1] if entropy_coef else torch.zeros(())
    term = -entropy_coef * entropy - surrogate.mean()
    return term, {"adversarial_surrogate": surrogate.mean().detach()}


def gaussian_mean_divergence(policy: Any, obs: torch.Tensor, obs_hat: torch.Tensor, detach_clean: bool = False) -> torch.Tensor:
    """sum_i ((mu_i(s_hat) - mu_i(s)) / sigma_i)^2 per sample: 2 KL(pi(s) || pi(s_hat)) for a
    Gaussian policy with state-independent std, the exact form SA-PPO's code regularises (its
    kappa values are calibrated on it). For categorical policies: 2 KL. ``detach_clean``: no
    gradient through pi(s) (SA-PPO's code regularises only pi(s_hat) towards a fixed pi(s))."""
    if policy.continuous:
        std = policy.log_std.exp()
        clean_mean = policy.actor(obs)
        if detach_clean:
            clean_mean = clean_mean.detach()
        return (((policy.actor(obs_hat) - clean_mean) / std) ** 2).sum(-1)
    clean, perturbed = policy.distribution(obs), policy.distribution(obs_hat)
    if detach_clean:
        clean = torch.distributions.Categorical(logits=clean.logits.detach())
    return 2.0 * torch.distributions.kl_divergence(clean, perturbed)


class RobustObjective(ABC):
    """Base of the objectives: holds kappa/guidance, the solver settings and the ball, and calls
    :meth:`solve_inner` either once per iteration (``prepare``) or per minibatch (``loss``)."""

    default_inner_solve = "iteration"
    # The RobustConfig fields this objective reads (robustrl.algos.check_robust_options rejects the
    # others, so a knob the method ignores is never set silently).
    knobs: tuple[str, ...] = (
        *("eps", "norm", "eps_warmup_fraction", "kappa"),
        *("inner_steps", "inner_step_size", "inner_solve"),
    )
    # True for objectives that only exist for Gaussian policies (checked before a run starts).
    continuous_actions_only: bool = False
    # True when, with the inner problem solved once per iteration (in ``prepare``), the minibatch
    # term is a pure function of the parameters and the minibatch (no autograd calls, no random
    # draws, no eps): ``ppo.compile`` may then trace it into PPO's compiled functional step.
    pure_iteration_loss = False
    # True when, with the inner problem solved for each minibatch just before its step (with the
    # parameters of that step, outside the compiled graph: :meth:`presolve`), the minibatch term
    # is pure as above: ``ppo.compile`` then traces it too (one step per compiled call).
    pure_minibatch_loss = False

    def __init__(self, config: TrainConfig):
        robust = config.robust
        self.kappa = robust.kappa
        self.guidance = robust.guidance
        self.robust = robust
        self.clip_eps = config.ppo.clip_eps
        self.entropy_coef = config.ppo.entropy_coef
        self.inner_solve = robust.inner_solve or self.default_inner_solve
        self.seed = config.seed
        self.generator = torch.Generator().manual_seed(config.seed)
        self.fast_inner = config.ppo.fast_inner

    @classmethod
    def unsupported(cls, robust: Any, continuous_actions: bool) -> str | None:
        """Why this objective cannot train with ``robust`` (a RobustConfig) on an env with
        (``continuous_actions``) or without continuous actions; None when it can."""
        if cls.continuous_actions_only and not continuous_actions:
            return "needs continuous actions (a Gaussian policy)"
        return None

    @property
    def compilable(self) -> bool:
        if self.inner_solve == "iteration":
            return self.pure_iteration_loss
        return self.solves_per_minibatch

    @property
    def solves_per_minibatch(self) -> bool:
        """The compiled update calls :meth:`presolve` before every minibatch step."""
        return self.inner_solve == "minibatch" and self.pure_minibatch_loss

    def presolve(self, minibatch: Batch, policy: Any, eps: float) -> None:
        """The inner solution of this minibatch at the current parameters, into its extras (what
        the eager path computes inside the loss; the same solver draws in the same order)."""
        minibatch.extras["obs_hat"] = self.solve_inner(minibatch, policy, eps).detach()

    def guidance_at(self, iteration: int, num_iterations: int) -> bool:
        """Whether iteration ``iteration`` of ``num_iterations`` minimises PPO loss + kappa * term
        (guidance) or the term alone: guidance as configured, ended after the first
        ``guidance_until`` of the iterations (1.0: never ended). Only objectives that take the
        knob (AR-PPO, BAR-PPO) read it: for the others guidance stays as they set it."""
        if "guidance_until" not in self.knobs:
            return self.guidance
        return self.guidance and iteration < round(self.robust.guidance_until * num_iterations)

    def ball(self, eps: float) -> Ball:
        return Ball(eps, self.robust.norm)

    @staticmethod
    def store_eps(batch: Batch, eps: float) -> None:
        """eps as a column of the batch (``extras["eps"]``), sliced with every minibatch: a term
        that reads it from there is a pure function of its inputs, so ``ppo.compile`` traces it
        without baking eps into the graph (it moves every iteration of the warm-up). Not stored
        at eps 0: the term then takes its exact eps-0 form (PPO's own loss, bit for bit)."""
        if eps > 0:
            batch.extras["eps"] = torch.full((len(batch),), float(eps))

    def divergence_objective(self, policy: Any, clean: torch.Tensor) -> Any:
        """``obs_hat -> gaussian_mean_divergence(policy, clean, obs_hat)`` (2 KL) for the inner
        solvers; with ``ppo.fast_inner`` its gradient is written out
        (:func:`robustrl.threat.objectives.divergence_objective`): the same iterates up to float
        rounding without an autograd graph per solver step."""
        if self.fast_inner:
            from robustrl.threat.objectives import divergence_objective

            return divergence_objective(policy, clean, scale=2.0)
        return lambda obs_hat: gaussian_mean_divergence(policy, clean, obs_hat)

    def solver_options(self, eps: float) -> dict[str, Any]:
        return {"steps": self.robust.inner_steps, "step_size": self.robust.inner_step_size, "generator": self.generator}

    # ---- the Objective protocol of algos/ppo.py ---------------------------------------------------
    def prepare(self, batch: Batch, policy: Any, eps: float) -> None:
        # Reseeded every iteration from the run seed and the batch itself, so a resumed run (which
        # reproduces the batch exactly) draws the same solver noise without saving generator state.
        digest = zlib.crc32(batch.obs[:8].numpy().tobytes())
        self.generator.manual_seed(self.seed * 1_000_003 + digest)
        if self.inner_solve == "iteration":
            with torch.no_grad():
                advantages = normalized_advantages(batch.advantages)
            view = Batch(batch.obs, batch.actions, batch.log_probs, batch.values, advantages, batch.returns)
            batch.extras["obs_hat"] = self.solve_inner(view, policy, eps).detach()

    def obs_hat(self, minibatch: Batch, policy: Any, eps: float) -> torch.Tensor:
        if self.inner_solve == "iteration" or "obs_hat" in minibatch.extras:  # solved before the step
            return minibatch.extras["obs_hat"]
        return self.solve_inner(minibatch, policy, eps).detach()

    def solve_inner(self, batch: Batch, policy: Any, eps: float) -> torch.Tensor:
        """The inner problem's solution s_nu for every sample of ``batch`` (objectives that bound
        the ball instead, like RADIAL's IBP, have none)."""
        raise TypeError(f"{type(self).__name__} bounds the ball with IBP; it has no point-wise inner solution")

    @abstractmethod
    def loss(self, minibatch: Batch, policy: Any, eps: float) -> tuple[torch.Tensor, dict[str, float]]:
        """The objective's term for this minibatch and its metrics."""

    # ---- learned state, saved in the PPO checkpoint so a resumed run is exact ---------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors of whatever the objective learns besides the policy (WocaR's critic); most
        objectives learn nothing of their own."""
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], policy: Any) -> None:
        if tensors:
            raise ValueError(f"{type(self).__name__} keeps no state, but the checkpoint has {sorted(tensors)[:3]}")
