"""Zero-sum matrix games with a partly controlled column player, and the five learners of
Appendix C of *Rethinking adversarial policies* (SGDA, AGDA, SIBR, AIBR, GAMin).

The row player x (the victim) maximises ``V(x, y) = x^T P y``; the column player is the deployed
mixture ``(1 - eps_pi) * benign + eps_pi * y`` with y chosen by the attacker. The victim's
exploitability (Definition 4.1) is ``Expl(x) = -min_y V(x, mix(y))
= -[(1 - eps_pi) x^T P benign + eps_pi min_j (P^T x)_j]``. With eps_pi = 1 (Appendix C) its minimum is
minus the game's value (0 in Rock-Paper-Scissors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robustrl.envs.matrix_game import MATCHING_PENNIES, ROCK_PAPER_SCISSORS
from robustrl.errors import InvalidArgumentError
from robustrl.games.simplex import check_eps_pi, check_policy, mixture, project_simplex

# The payoff of Appendix C as printed, P = [[0, 1, -1], [-1, 0, 1], [1, -1, 0]], is the transpose
# (= the negative) of robustrl.envs.ROCK_PAPER_SCISSORS: the same game with two actions' labels
# swapped, so every learner's exploitability curve is the same up to that relabelling. "rps" uses
# the paper's matrix so Figure 5 is reproduced as printed.
PAPER_RPS = np.array([[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]])
MATRIX_GAMES: dict[str, np.ndarray] = {
    "rps": PAPER_RPS,
    "rps-env": ROCK_PAPER_SCISSORS,
    "matching-pennies": MATCHING_PENNIES,
}
LEARNERS = ("sgda", "agda", "sibr", "aibr", "gamin")


@dataclass(frozen=True)
class MatrixGame:
    """``payoff[i, j]``: the row player's (victim's) reward; ``benign``: the column player's own
    policy (uniform by default); ``eps_pi``: the attacker's share of control of the column."""

    payoff: np.ndarray
    eps_pi: float = 1.0
    benign: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        payoff = np.asarray(self.payoff, dtype=np.float64)
        if payoff.ndim != 2 or min(payoff.shape) < 1 or not np.all(np.isfinite(payoff)):
            raise InvalidArgumentError(f"payoff must be a finite 2-d matrix, got shape {payoff.shape}")
        object.__setattr__(self, "payoff", payoff)
        object.__setattr__(self, "eps_pi", check_eps_pi(self.eps_pi))
        benign = np.full(payoff.shape[1], 1.0 / payoff.shape[1]) if self.benign is None else self.benign
        object.__setattr__(self, "benign", check_policy(benign, (payoff.shape[1],), "benign"))

    @classmethod
    def named(cls, name: str, **kwargs: Any) -> MatrixGame:
        if name not in MATRIX_GAMES:
            raise InvalidArgumentError(f"unknown matrix game {name!r}; known: {', '.join(MATRIX_GAMES)}")
        return cls(MATRIX_GAMES[name], **kwargs)

    def value(self, x: Any, y: Any) -> float:
        """V(x, mix(y)): the victim's expected payoff against the deployed mixture."""
        return float(np.asarray(x) @ self.payoff @ mixture(self.benign, y, self.eps_pi))

    def best_response(self, x: Any) -> np.ndarray:
        """The attacker's exact best response (a pure column) to the victim's x."""
        y = np.zeros(self.payoff.shape[1])
        y[int(np.argmin(np.asarray(x) @ self.payoff))] = 1.0
        return y

    def exploitability(self, x: Any) -> float:
        """Expl(x) = -min_y V(x, mix(y)) (Definition 4.1)."""
        return -self.value(x, self.best_response(x))

    def victim_best_response(self, y: Any) -> np.ndarray:
        x = np.zeros(self.payoff.shape[0])
        x[int(np.argmax(self.payoff @ mixture(self.benign, y, self.eps_pi)))] = 1.0
        return x

    def robust_value(self) -> tuple[float, np.ndarray]:
        """``max_x min_y V(x, mix(y))`` and a maximiser, by linear programming (scipy's linprog):
        maximise ``(1 - eps_pi) x^T P benign + eps_pi t`` s.t. ``t <= (P^T x)_j``, x in the simplex.
        ``min_x Expl(x)`` is its negative."""
        from scipy.optimize import linprog

        rows, columns = self.payoff.shape
        # variables: x (rows), t (free)
        c = -np.concatenate([(1.0 - self.eps_pi) * (self.payoff @ self.benign), [self.eps_pi]])
        a_ub = np.hstack([-self.payoff.T, np.ones((columns, 1))])
        a_eq = np.concatenate([np.ones(rows), [0.0]])[None]
        bounds = [(0, None)] * rows + [(None, None)]
        result = linprog(c, A_ub=a_ub, b_ub=np.zeros(columns), A_eq=a_eq, b_eq=[1.0], bounds=bounds, method="highs")
        if not result.success:  # pragma: no cover - a bounded feasible LP
            raise RuntimeError(f"linprog failed: {result.message}")
        x = np.clip(result.x[:rows], 0.0, None)
        return float(-result.fun), x / x.sum()


def run_learner(
    game: MatrixGame,
    learner: str,
    iterations: int = 1000,
    step_size: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """One of Appendix C's learners from a seeded random start (Dirichlet(1) for x and y).

    x is the victim (row, maximising), y the attacker's part of the column player. With
    ``g_x = P mix(y)`` and ``g_y = eps_pi P^T x`` (the gradients of V):

    - ``sgda``: y <- P(y - eta g_y(x_t)),  x <- P(x + eta g_x(y_t))          (simultaneous)
    - ``agda``: y <- P(y - eta g_y(x_t)),  x <- P(x + eta g_x(y_{t+1}))      (alternating)
    - ``sibr``: y <- BR(x_t),              x <- argmax_x V(x, y_t)           (simultaneous)
    - ``aibr``: y <- BR(x_t),              x <- argmax_x V(x, y_{t+1})       (alternating)
    - ``gamin``: y <- BR(x_t),             x <- P(x + eta g_x(y_{t+1}))      (Algorithm 1)

    (Appendix C writes argmin for the x player of SIBR/AIBR; x maximises, so argmax is meant.)
    Returns the exploitability of x_t for t = 0..iterations, the final x and y, and the
    exploitability of Algorithm 1's output rule (an iterate drawn uniformly: its expectation is the
    curve's mean, reported as ``mean_exploitability``).
    """
    if learner not in LEARNERS:
        raise InvalidArgumentError(f"unknown matrix-game learner {learner!r}; known: {', '.join(LEARNERS)}")
    if not isinstance(iterations, int) or iterations < 1:
        raise InvalidArgumentError(f"iterations must be a positive integer, got {iterations!r}")
    if not np.isfinite(step_size) or step_size <= 0:
        raise InvalidArgumentError(f"step_size must be > 0, got {step_size!r}")
    rng = np.random.default_rng(seed)
    rows, columns = game.payoff.shape
    x, y = rng.dirichlet(np.ones(rows)), rng.dirichlet(np.ones(columns))
    payoff, eps = game.payoff, game.eps_pi
    curve = [game.exploitability(x)]
    for _ in range(iterations):
        if learner == "sgda":
            x, y = (
                project_simplex(x + step_size * payoff @ mixture(game.benign, y, eps)),
                project_simplex(y - step_size * eps * payoff.T @ x),
            )
        elif learner == "agda":
            y = project_simplex(y - step_size * eps * payoff.T @ x)
            x = project_simplex(x + step_size * payoff @ mixture(game.benign, y, eps))
        elif learner == "sibr":
            x, y = game.victim_best_response(y), game.best_response(x)
        elif learner == "aibr":
            y = game.best_response(x)
            x = game.victim_best_response(y)
        else:  # gamin
            y = game.best_response(x)
            x = project_simplex(x + step_size * payoff @ mixture(game.benign, y, eps))
        curve.append(game.exploitability(x))
    curve_array = np.asarray(curve)
    return {
        "learner": learner,
        "iterations": iterations,
        "step_size": step_size,
        "seed": seed,
        "exploitability": curve_array.tolist(),
        "final_exploitability": float(curve_array[-1]),
        "mean_exploitability": float(curve_array[1:].mean()),
        "final_x": x.tolist(),
        "final_y": y.tolist(),
    }
