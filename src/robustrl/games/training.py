"""Adversarial training of the victim against a partly controlled opponent, with exact gradients
under direct parameterisation (Rethinking adversarial policies, Sections 4-5), and its baselines.

Every learner here works on any *exact game*: an object with ``victim_shape``, ``attacker_shape``,
``victim_mask`` / ``attacker_mask`` (legal actions, or None), ``value(nu, alpha)`` (the victim's
J_eps(nu, alpha) = V_rho(nu, (1 - eps_pi) benign + eps_pi alpha)), ``gradients(nu, alpha)`` (of J
w.r.t. both tables), ``best_response(nu)`` (the attacker's exact min oracle), ``exploitability(nu)``
and ``with_eps_pi(eps)``; optionally ``attacker_reach(alpha)`` (own-reach weights for averaging
policies of an extensive-form game). :class:`~robustrl.games.markov.PartialControlMarkovGame` and
:class:`~robustrl.games.kuhn.KuhnGame` are two.

Methods (``nu`` the victim, ascending J; ``alpha`` the attacker, descending J; P the projection
onto the simplex of each state):

- ``min-oracle`` (Algorithm 1): alpha_t = argmin_alpha J(nu_t, alpha); nu_{t+1} = P(nu_t + eta_nu grad_nu J(nu_t, alpha_t)).
- ``two-timescale`` (Algorithm 2): alpha_{t+1} = P(alpha_t - eta_alpha grad_alpha J(nu_t, alpha_t)),
  nu_{t+1} = P(nu_t + eta_nu grad_nu J(nu_t, alpha_t)) with eta_alpha = ratio * eta_nu, ratio >> 1.
- ``single``: the same with eta_alpha = eta_nu (single-timescale adversarial training, simultaneous GDA).
- ``self-play``: both seats trained together at one rate against each other's *current* policy at
  full control, in the game without the attack (eps_pi = 1 during training; Bansal et al. 2018);
  the victim is then judged at the requested eps_pi.
- ``fictitious``: the attacker best-responds to the victim's current policy and plays the average of
  its past best responses (fictitious play, Brown 1951; Heinrich et al. 2015: reach-weighted
  averages in extensive-form games); the victim takes a gradient step against that average.

Output rule of Algorithms 1 and 2: sample nu_t with probability proportional to eta_nu^t (constant
steps here: uniformly); its expected exploitability is the curve's mean, which Theorem 5.3 bounds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustrl.errors import InvalidArgumentError
from robustrl.games.simplex import project_simplex, random_policy

METHODS = ("min-oracle", "two-timescale", "single", "self-play", "fictitious")


class AdversarialTraining:
    """One method on one exact game, one iteration per :meth:`step`.

    Args:
        game: an exact game (see the module docstring), carrying eps_pi and the benign opponent.
        method: one of :data:`METHODS`.
        eta_nu: the victim's step size.
        ratio: eta_alpha / eta_nu for ``two-timescale`` (``single`` and ``self-play`` use 1).
        seed: draws the random initial policies pi_nu^0, pi_alpha^0 and the output iterate.
    """

    def __init__(self, game: Any, method: str, *, eta_nu: float = 0.1, ratio: float = 50.0, seed: int = 0):
        if method not in METHODS:
            raise InvalidArgumentError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
        for name, number in (("eta_nu", eta_nu), ("ratio", ratio)):
            if (
                isinstance(number, bool)
                or not isinstance(number, (int, float))
                or not np.isfinite(number)
                or number <= 0
            ):
                raise InvalidArgumentError(f"{name} must be a positive number, got {number!r}")
        self.game, self.method, self.seed = game, method, int(seed)
        self.eta_nu = float(eta_nu)
        self.eta_alpha = self.eta_nu * (float(ratio) if method == "two-timescale" else 1.0)
        self.ratio = float(ratio)
        # self-play trains in the unattacked game: the opponent fully in control of its seat
        self.train_game = game.with_eps_pi(1.0) if method == "self-play" else game
        rng = np.random.default_rng(self.seed)
        self.nu = random_policy(rng, game.victim_shape, game.victim_mask)
        self.alpha = random_policy(rng, game.attacker_shape, game.attacker_mask)
        self.average_alpha = self.alpha.copy()
        self.average_weight = np.zeros(game.attacker_shape[0])
        self.iteration = 0

    def step(self) -> dict[str, float]:
        """One iteration; returns the victim's J against the training opponent and its gradient norm
        (Figure 4a/4b's quantities)."""
        game, nu = self.train_game, self.nu
        if self.method == "min-oracle":
            self.alpha = game.best_response(nu)
            opponent = self.alpha
        elif self.method == "fictitious":
            best = game.best_response(nu)
            reach = game.attacker_reach(best) if hasattr(game, "attacker_reach") else np.ones(len(best))
            self.average_weight = self.average_weight + reach
            share = np.divide(reach, self.average_weight, out=np.zeros_like(reach), where=self.average_weight > 0)
            self.average_alpha = self.average_alpha + share[:, None] * (best - self.average_alpha)
            self.alpha, opponent = best, self.average_alpha
        else:
            opponent = self.alpha
        g_nu, g_alpha = game.gradients(nu, opponent)
        score = game.value(nu, opponent)
        if self.method in ("two-timescale", "single", "self-play"):
            self.alpha = project_simplex(self.alpha - self.eta_alpha * g_alpha, game.attacker_mask)
        self.nu = project_simplex(nu + self.eta_nu * g_nu, game.victim_mask)
        self.iteration += 1
        return {"score": float(score), "gradient_norm": float(np.linalg.norm(g_nu))}

    def exploitability(self) -> float:
        """Expl(nu_t) at the requested eps_pi, exactly (best response)."""
        return float(self.game.exploitability(self.nu))

    def state(self) -> dict[str, np.ndarray]:
        return {
            "nu": self.nu,
            "alpha": self.alpha,
            "average_alpha": self.average_alpha,
            "average_weight": self.average_weight,
        }

    def load_state(self, arrays: dict[str, np.ndarray], iteration: int) -> None:
        for key in ("nu", "alpha", "average_alpha", "average_weight"):
            setattr(self, key, np.asarray(arrays[key], dtype=np.float64).copy())
        self.iteration = int(iteration)


def train_curve(
    game: Any,
    method: str,
    iterations: int,
    *,
    eta_nu: float = 0.1,
    ratio: float = 50.0,
    seed: int = 0,
    eval_every: int = 1,
) -> dict[str, Any]:
    """Run ``method`` for ``iterations`` and record Expl(nu_t) every ``eval_every`` iterations
    (t = 0 included), the score and gradient norm of every iteration, and the output rule's
    draw (an iterate sampled uniformly, seeded)."""
    if not isinstance(iterations, int) or iterations < 1:
        raise InvalidArgumentError(f"iterations must be a positive integer, got {iterations!r}")
    if not isinstance(eval_every, int) or eval_every < 1:
        raise InvalidArgumentError(f"eval_every must be a positive integer, got {eval_every!r}")
    trainer = AdversarialTraining(game, method, eta_nu=eta_nu, ratio=ratio, seed=seed)
    steps, curve, scores, norms = [0], [trainer.exploitability()], [], []
    for t in range(1, iterations + 1):
        metrics = trainer.step()
        scores.append(metrics["score"])
        norms.append(metrics["gradient_norm"])
        if t % eval_every == 0 or t == iterations:
            steps.append(t)
            curve.append(trainer.exploitability())
    rng = np.random.default_rng(seed + 1_000_003)
    drawn = int(rng.integers(1, len(curve)))  # the output rule, over the evaluated iterates
    return {
        "method": method,
        "seed": seed,
        "eta_nu": trainer.eta_nu,
        "eta_alpha": trainer.eta_alpha,
        "iterations": iterations,
        "steps": steps,
        "exploitability": curve,
        "final_exploitability": curve[-1],
        "mean_exploitability": float(np.mean(curve[1:])),
        "output_iteration": steps[drawn],
        "output_exploitability": curve[drawn],
        "score": scores,
        "gradient_norm": norms,
        "final_victim": trainer.nu.tolist(),
    }
