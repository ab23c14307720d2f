"""Tabular two-player zero-sum Markov games with exact answers (Rethinking adversarial policies,
Sections 3-5 under direct parameterisation, Definition 5.1).

States S, victim actions A_nu, opponent actions A_alpha, ``rewards[s, a_nu, a_alpha]`` (the
victim's reward; the attacker receives its negative), ``transitions[s, a_nu, a_alpha, s']``, a
discount ``gamma`` and an initial distribution ``rho``. Both agents act at once in every state.
The opponent is the mixture ``(1 - eps_pi) * benign + eps_pi * alpha``; ``alpha`` is the attacker's
(adversarial) part. Everything here is exact linear algebra: values, the discounted state
occupancy ``d_rho``, policy gradients, the attacker's best response (its MDP once the victim is
fixed, solved by policy iteration) and the most robust value (Shapley's value iteration with one
linear program per state).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.errors import InvalidArgumentError
from robustrl.games.simplex import check_eps_pi, check_policy, mixture


@dataclass(frozen=True)
class TabularMarkovGame:
    rewards: np.ndarray  # [S, A_nu, A_alpha], the victim's reward
    transitions: np.ndarray  # [S, A_nu, A_alpha, S]
    gamma: float
    rho: np.ndarray  # [S]

    def __post_init__(self) -> None:
        rewards = np.asarray(self.rewards, dtype=np.float64)
        transitions = np.asarray(self.transitions, dtype=np.float64)
        rho = np.asarray(self.rho, dtype=np.float64)
        if rewards.ndim != 3 or min(rewards.shape) < 1:
            raise InvalidArgumentError(
                f"rewards must have shape [states, victim actions, opponent actions], got {rewards.shape}"
            )
        if transitions.shape != (*rewards.shape, rewards.shape[0]):
            raise InvalidArgumentError(
                f"transitions must have shape {(*rewards.shape, rewards.shape[0])} (s, a_nu, a_alpha, s'), got {transitions.shape}"
            )
        if not np.all(np.isfinite(rewards)):
            raise InvalidArgumentError("rewards must be finite")
        if (
            not np.all(np.isfinite(transitions))
            or np.any(transitions < 0)
            or not np.allclose(transitions.sum(-1), 1.0, atol=1e-8)
        ):
            raise InvalidArgumentError(
                "transitions[s, a_nu, a_alpha] must be probability distributions over next states"
            )
        if rho.shape != (rewards.shape[0],) or np.any(rho < 0) or not np.isclose(rho.sum(), 1.0, atol=1e-8):
            raise InvalidArgumentError(f"rho must be a distribution over the {rewards.shape[0]} states")
        if isinstance(self.gamma, bool) or not isinstance(self.gamma, (int, float)) or not 0.0 <= self.gamma < 1.0:
            raise InvalidArgumentError(f"gamma must be in [0, 1), got {self.gamma!r}")
        object.__setattr__(self, "rewards", rewards)
        object.__setattr__(self, "transitions", transitions)
        object.__setattr__(self, "rho", rho)
        object.__setattr__(self, "gamma", float(self.gamma))

    @property
    def num_states(self) -> int:
        return self.rewards.shape[0]

    @property
    def victim_shape(self) -> tuple[int, int]:
        return (self.rewards.shape[0], self.rewards.shape[1])

    @property
    def opponent_shape(self) -> tuple[int, int]:
        return (self.rewards.shape[0], self.rewards.shape[2])

    # ---- JSON -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "tabular_markov_game",
            "gamma": self.gamma,
            "rho": self.rho.tolist(),
            "rewards": self.rewards.tolist(),
            "transitions": self.transitions.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TabularMarkovGame:
        if not isinstance(data, dict) or data.get("kind") != "tabular_markov_game":
            raise InvalidArgumentError('a tabular Markov game is a JSON object with "kind": "tabular_markov_game"')
        missing = {"gamma", "rho", "rewards", "transitions"} - set(data)
        if missing:
            raise InvalidArgumentError(f"tabular Markov game JSON lacks {sorted(missing)}")
        try:
            return cls(
                np.asarray(data["rewards"], float),
                np.asarray(data["transitions"], float),
                data["gamma"],
                np.asarray(data["rho"], float),
            )
        except (TypeError, ValueError) as error:
            if isinstance(error, InvalidArgumentError):
                raise
            raise InvalidArgumentError(f"tabular Markov game JSON is malformed: {error}") from None

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict()))
        return path

    @classmethod
    def load(cls, path: Path | str) -> TabularMarkovGame:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as error:
            raise InvalidArgumentError(f"{path} is not JSON: {error}") from None
        return cls.from_dict(data)

    # ---- exact quantities for a pair (victim nu, deployed opponent m) -----------------------------
    def _joint(self, nu: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        weights = nu[:, :, None] * m[:, None, :]
        r = np.einsum("sab,sab->s", weights, self.rewards)
        p = np.einsum("sab,sabt->st", weights, self.transitions)
        return r, p

    def state_values(self, nu: Any, m: Any) -> np.ndarray:
        """V(s) of the victim when it plays ``nu`` and the opponent plays ``m`` (both [S, A])."""
        r, p = self._joint(np.asarray(nu, float), np.asarray(m, float))
        return np.linalg.solve(np.eye(self.num_states) - self.gamma * p, r)

    def value(self, nu: Any, m: Any) -> float:
        """V_rho(nu, m) = rho^T V."""
        return float(self.rho @ self.state_values(nu, m))

    def occupancy(self, nu: Any, m: Any) -> np.ndarray:
        """d_rho(s) = (1 - gamma) sum_t gamma^t Pr(s_t = s): the normalised discounted visitation."""
        _, p = self._joint(np.asarray(nu, float), np.asarray(m, float))
        return (1.0 - self.gamma) * np.linalg.solve((np.eye(self.num_states) - self.gamma * p).T, self.rho)

    def joint_q(self, nu: Any, m: Any) -> np.ndarray:
        """Q(s, a_nu, a_alpha) = r + gamma sum_s' P V(s')."""
        v = self.state_values(nu, m)
        return self.rewards + self.gamma * self.transitions @ v

    def gradients(self, nu: Any, m: Any) -> tuple[np.ndarray, np.ndarray]:
        """Exact gradients of V_rho under direct parameterisation (policy gradient theorem:
        dV/dpi(a|s) = d_rho(s) Q(s, a) / (1 - gamma)), w.r.t. the victim's table and the deployed
        opponent's table. Chain rule for the attacker's part: multiply the second by eps_pi."""
        nu, m = np.asarray(nu, float), np.asarray(m, float)
        q = self.joint_q(nu, m)
        d = self.occupancy(nu, m)[:, None] / (1.0 - self.gamma)
        return d * np.einsum("sab,sb->sa", q, m), d * np.einsum("sab,sa->sb", q, nu)


@dataclass(frozen=True)
class PartialControlMarkovGame:
    """A Markov game with the opponent's seat partly controlled: the interface every exact learner
    (:mod:`robustrl.games.training`) uses. ``alpha`` is always the attacker's adversarial part."""

    game: TabularMarkovGame
    benign: np.ndarray
    eps_pi: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps_pi", check_eps_pi(self.eps_pi))
        object.__setattr__(self, "benign", check_policy(self.benign, self.game.opponent_shape, "benign"))

    @property
    def victim_shape(self) -> tuple[int, int]:
        return self.game.victim_shape

    @property
    def attacker_shape(self) -> tuple[int, int]:
        return self.game.opponent_shape

    victim_mask = None
    attacker_mask = None

    def with_eps_pi(self, eps_pi: float) -> PartialControlMarkovGame:
        return PartialControlMarkovGame(self.game, self.benign, eps_pi)

    def deployed(self, alpha: Any) -> np.ndarray:
        return mixture(self.benign, alpha, self.eps_pi)

    def value(self, nu: Any, alpha: Any) -> float:
        """J_eps(nu, alpha) = V_rho(nu, (1 - eps_pi) benign + eps_pi alpha)."""
        return self.game.value(nu, self.deployed(alpha))

    def gradients(self, nu: Any, alpha: Any) -> tuple[np.ndarray, np.ndarray]:
        g_nu, g_m = self.game.gradients(nu, self.deployed(alpha))
        return g_nu, self.eps_pi * g_m

    def best_response(self, nu: Any) -> np.ndarray:
        """The attacker's exact best response: the adversarial part minimising V(s) in every state
        (so V_rho for any rho), by policy iteration on the attacker's MDP. Deterministic."""
        nu = np.asarray(nu, float)
        states, actions = self.attacker_shape
        alpha = np.zeros((states, actions))
        alpha[:, 0] = 1.0
        for _ in range(10_000):
            q = self.game.joint_q(nu, self.deployed(alpha))
            q_alpha = np.einsum("sab,sa->sb", q, nu)  # the opponent's action b in state s
            current = np.einsum("sb,sb->s", q_alpha, alpha)
            best = np.argmin(q_alpha, axis=1)
            improve = q_alpha[np.arange(states), best] < current - 1e-12 * (1.0 + np.abs(current))
            if not improve.any():
                return alpha
            alpha[improve] = np.eye(actions)[best[improve]]
        raise RuntimeError("policy iteration did not converge")  # pragma: no cover

    def exploitability(self, nu: Any) -> float:
        """Expl(nu) = -min_alpha V_rho(nu, (1 - eps_pi) benign + eps_pi alpha) (Definition 4.1)."""
        return -self.value(nu, self.best_response(nu))

    def victim_best_response(self, alpha: Any) -> np.ndarray:
        """The victim's exact best response to a fixed deployed opponent (value iteration's fixed
        point by policy iteration)."""
        m = self.deployed(alpha)
        states, actions = self.victim_shape
        nu = np.zeros((states, actions))
        nu[:, 0] = 1.0
        for _ in range(10_000):
            q_nu = np.einsum("sab,sb->sa", self.game.joint_q(nu, m), m)
            current = np.einsum("sa,sa->s", q_nu, nu)
            best = np.argmax(q_nu, axis=1)
            improve = q_nu[np.arange(states), best] > current + 1e-12 * (1.0 + np.abs(current))
            if not improve.any():
                return nu
            nu[improve] = np.eye(actions)[best[improve]]
        raise RuntimeError("policy iteration did not converge")  # pragma: no cover

    def robust_value(self, tolerance: float = 1e-10) -> tuple[float, np.ndarray]:
        """``max_nu min_alpha J_eps(nu, alpha)`` and a maximising victim, by Shapley's value
        iteration: in each state the stage game ``max_x min_alpha x^T Q(s) mix(alpha)`` is one
        linear program (scipy's linprog). By Proposition B.2 ``min_nu Expl(nu)`` is its negative."""
        from scipy.optimize import linprog

        game = self.game
        states, a_nu = self.victim_shape
        a_alpha = self.attacker_shape[1]
        v = np.zeros(states)
        policy = np.full((states, a_nu), 1.0 / a_nu)
        bounds = [(0, None)] * a_nu + [(None, None)]
        a_eq = np.concatenate([np.ones(a_nu), [0.0]])[None]
        for _ in range(100_000):
            q = game.rewards + game.gamma * game.transitions @ v
            new_v = np.empty(states)
            for s in range(states):
                c = -np.concatenate([(1.0 - self.eps_pi) * (q[s] @ self.benign[s]), [self.eps_pi]])
                a_ub = np.hstack([-q[s].T, np.ones((a_alpha, 1))])
                result = linprog(
                    c, A_ub=a_ub, b_ub=np.zeros(a_alpha), A_eq=a_eq, b_eq=[1.0], bounds=bounds, method="highs"
                )
                new_v[s] = -result.fun
                x = np.clip(result.x[:a_nu], 0.0, None)
                policy[s] = x / x.sum()
            done = np.max(np.abs(new_v - v)) < tolerance * (1.0 - game.gamma)
            v = new_v
            if done:
                break
        return float(game.rho @ v), policy


def random_game(
    seed: int,
    states: int = 3,
    victim_actions: int = 2,
    opponent_actions: int = 2,
    gamma: float = 0.9,
) -> TabularMarkovGame:
    """A seeded random game: rewards uniform in [-1, 1] (|r| <= 1, as Propositions 3.1/3.2
    assume), transition rows and rho drawn from Dirichlet(1)."""
    for name, number in (
        ("states", states),
        ("victim_actions", victim_actions),
        ("opponent_actions", opponent_actions),
    ):
        if not isinstance(number, int) or number < 1:
            raise InvalidArgumentError(f"{name} must be a positive integer, got {number!r}")
    rng = np.random.default_rng(seed)
    rewards = rng.uniform(-1.0, 1.0, (states, victim_actions, opponent_actions))
    transitions = rng.dirichlet(np.ones(states), size=(states, victim_actions, opponent_actions))
    return TabularMarkovGame(rewards, transitions, gamma, rng.dirichlet(np.ones(states)))
