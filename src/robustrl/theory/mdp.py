"""Exact tabular ISA-MDPs: values, the strongest adversary, optimal (robust) policies.

An *intrinsic state-adversarial MDP* (ISA-MDP; BARPO paper, Section 2) is an MDP
(S, A, r, P, gamma, mu0) with a finite perturbation set B(s) of states the adversary may show the
agent in each true state s. An adversary is a map nu: S -> S with nu(s) in B(s); the agent then
acts by (pi o nu)(a | s) = pi(a | nu(s)) (Zhang et al. 2020, SA-MDP, Sec. 3).

Everything here is exact linear algebra on small arrays (numpy only, no torch):

- ``value(pi)``: V^pi = (I - gamma P_pi)^{-1} r_pi (Section 2, "MDP and SPO");
- ``strongest_adversary(pi)``: nu*(pi) = argmin_nu V^{pi o nu}(s) for every s at once. Fixing pi
  turns the adversary's problem into an MDP over the same states whose "actions" are the shown
  states s_hat in B(s) (reward sum_a pi(a|s_hat) r(s, a), transitions sum_a pi(a|s_hat)
  P(.|s, a)); a deterministic stationary minimiser of every state exists (Zhang et al. 2020,
  Theorem 1) and policy iteration finds it exactly in finitely many steps;
- ``optimal_policy()``: the Bellman optimality policy, by policy iteration (exact, unlike value
  iteration, which only approaches it);
- ``optimal_robust_policy()``: the optimal robust policy (ORP) of the ISA condition: a policy
  whose value against its own strongest adversary is V*, when one exists.

Policies are arrays pi[s, a] (rows on the probability simplex).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.errors import InvalidArgumentError
from robustrl.threat.finite import FiniteSet, exhaustive

__all__ = ["TabularISAMDP", "check_policy"]

PROBABILITY_TOLERANCE = 1e-8  # how far a probability row may sum from 1 (JSON written with 3 decimals fails)
_KEYS = ("rewards", "transitions", "gamma", "perturbation_sets", "initial_distribution")
_MAX_POLICY_ITERATIONS = 10_000


def _array(value: Any, name: str, ndim: int) -> np.ndarray:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"{name} must be a {ndim}-d array of numbers (nested lists of equal length)"
        ) from None
    if array.ndim != ndim:
        raise InvalidArgumentError(f"{name} must be {ndim}-d, got shape {array.shape}")
    if array.size == 0:
        raise InvalidArgumentError(f"{name} is empty: an ISA-MDP needs at least one state and one action")
    if not np.isfinite(array).all():
        raise InvalidArgumentError(f"{name} holds NaN or infinite entries")
    return array


def _check_distribution_rows(array: np.ndarray, name: str, index_names: Sequence[str]) -> None:
    """Every last-axis row non-negative and summing to 1, or one clear error naming the row."""
    if (array < 0).any():
        where = tuple(int(i) for i in np.argwhere(array < 0)[0])
        raise InvalidArgumentError(
            f"{name}[{', '.join(f'{n}={i}' for n, i in zip(index_names, where))}] = {array[where]:g} is negative: "
            "probabilities must be >= 0"
        )
    sums = array.sum(-1)
    bad = np.abs(sums - 1.0) > PROBABILITY_TOLERANCE
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0]) if sums.ndim else ()
        label = f"{name}[{', '.join(f'{n}={i}' for n, i in zip(index_names[: sums.ndim], where))}]" if where else name
        raise InvalidArgumentError(
            f"{label} sums to {float(sums[where]):.10g}, not 1: each probability row must sum to 1 "
            f"(within {PROBABILITY_TOLERANCE:g})"
        )


def check_policy(pi: Any, num_states: int, num_actions: int, name: str = "policy") -> np.ndarray:
    """``pi`` as a float array of shape (num_states, num_actions) whose rows are distributions,
    or an :class:`InvalidArgumentError` saying what is wrong."""
    array = _array(pi, name, 2)
    if array.shape != (num_states, num_actions):
        raise InvalidArgumentError(
            f"{name} must have shape ({num_states}, {num_actions}) = (states, actions), got {array.shape}"
        )
    _check_distribution_rows(array, name, ("s", "a"))
    return array


class TabularISAMDP:
    """A finite ISA-MDP (BARPO paper, Section 2).

    Args:
        rewards: r[s, a], shape (S, A).
        transitions: P[s, a, s'], shape (S, A, S); each row P[s, a, :] a distribution.
        gamma: discount factor in [0, 1).
        perturbation_sets: B(s) for every s: a list of S non-empty lists of state indices (or a
            :class:`~robustrl.threat.finite.FiniteSet` over S points). B(s) need not contain s.
        initial_distribution: mu0[s], shape (S,), a distribution.

    Raises :class:`InvalidArgumentError` with one line naming the first thing that is wrong.
    """

    def __init__(
        self,
        *,
        rewards: Any,
        transitions: Any,
        gamma: Any,
        perturbation_sets: Any,
        initial_distribution: Any,
    ):
        self.rewards = _array(rewards, "rewards", 2)
        num_states, num_actions = self.rewards.shape
        self.transitions = _array(transitions, "transitions", 3)
        if self.transitions.shape != (num_states, num_actions, num_states):
            raise InvalidArgumentError(
                f"transitions must have shape (S, A, S) = ({num_states}, {num_actions}, {num_states}) "
                f"to match rewards {self.rewards.shape}, got {self.transitions.shape}"
            )
        _check_distribution_rows(self.transitions, "transitions", ("s", "a", "next"))
        if isinstance(gamma, (bool, np.bool_)) or not isinstance(gamma, numbers.Real) or not math.isfinite(gamma):
            raise InvalidArgumentError(f"gamma must be a number in [0, 1), got {gamma!r}")
        if not 0.0 <= float(gamma) < 1.0:
            raise InvalidArgumentError(f"gamma must be in [0, 1) (the values must be finite), got {gamma!r}")
        self.gamma = float(gamma)
        if isinstance(perturbation_sets, FiniteSet):
            finite = perturbation_sets
        else:
            if (
                isinstance(perturbation_sets, (str, bytes))
                or not isinstance(perturbation_sets, (Sequence, np.ndarray))
                or len(perturbation_sets) != num_states
            ):
                size = len(perturbation_sets) if isinstance(perturbation_sets, (Sequence, np.ndarray)) else None
                raise InvalidArgumentError(
                    f"perturbation_sets must be a list of {num_states} lists (one B(s) per state), got "
                    f"{'length ' + str(size) if size is not None else type(perturbation_sets).__name__}"
                )
            finite = FiniteSet(perturbation_sets)
        if finite.num_points != num_states:
            raise InvalidArgumentError(f"perturbation_sets covers {finite.num_points} states, the MDP has {num_states}")
        self.perturbation_sets = finite
        self.initial_distribution = _array(initial_distribution, "initial_distribution", 1)
        if self.initial_distribution.shape != (num_states,):
            raise InvalidArgumentError(
                f"initial_distribution must have shape ({num_states},), got {self.initial_distribution.shape}"
            )
        _check_distribution_rows(self.initial_distribution, "initial_distribution", ("s",))
        for array in (self.rewards, self.transitions, self.initial_distribution):
            array.flags.writeable = False
        # the adversary shows s itself when that is admissible and nothing better exists
        self._identity = np.array(
            [s if s in row else row[0] for s, row in enumerate(finite.admissible)], dtype=np.int64
        )
        self._self_first = FiniteSet(
            [(s, *(t for t in row if t != s)) if s in row else row for s, row in enumerate(finite.admissible)]
        )

    # ---- shape -----------------------------------------------------------------------------------
    @property
    def num_states(self) -> int:
        return self.rewards.shape[0]

    @property
    def num_actions(self) -> int:
        return self.rewards.shape[1]

    def __repr__(self) -> str:
        return (
            f"TabularISAMDP({self.num_states} states, {self.num_actions} actions, gamma={self.gamma:g}, "
            f"{self.perturbation_sets.describe()})"
        )

    # ---- JSON ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, exactly the constructor's keyword names (plus ``kind``)."""
        return {
            "kind": "tabular_isa_mdp",
            "rewards": self.rewards.tolist(),
            "transitions": self.transitions.tolist(),
            "gamma": self.gamma,
            "perturbation_sets": [list(row) for row in self.perturbation_sets.admissible],
            "initial_distribution": self.initial_distribution.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> TabularISAMDP:
        if not isinstance(data, dict):
            raise InvalidArgumentError(
                f"an ISA-MDP is a JSON object with keys {', '.join(_KEYS)}; got {type(data).__name__}"
            )
        if data.get("kind", "tabular_isa_mdp") != "tabular_isa_mdp":
            raise InvalidArgumentError(f'an ISA-MDP has "kind": "tabular_isa_mdp", got {data.get("kind")!r}')
        missing = [key for key in _KEYS if key not in data]
        if missing:
            raise InvalidArgumentError(f"the ISA-MDP is missing {', '.join(missing)} (needs {', '.join(_KEYS)})")
        unknown = sorted(set(data) - set(_KEYS) - {"kind"})
        if unknown:
            raise InvalidArgumentError(f"the ISA-MDP has unknown keys {unknown} (allowed: kind, {', '.join(_KEYS)})")
        return cls(**{key: data[key] for key in _KEYS})

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TabularISAMDP:
        """Read an ISA-MDP from JSON; a malformed file raises :class:`InvalidArgumentError`
        naming the file."""
        path = Path(path)
        text = path.read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidArgumentError(f"{path} is not valid JSON: {error}") from None
        try:
            return cls.from_dict(data)
        except InvalidArgumentError as error:
            raise InvalidArgumentError(f"{path}: {error}") from None

    # ---- values ----------------------------------------------------------------------------------
    def check_policy(self, pi: Any, name: str = "policy") -> np.ndarray:
        return check_policy(pi, self.num_states, self.num_actions, name)

    def check_adversary(self, nu: Any, name: str = "adversary") -> np.ndarray:
        """``nu`` as an int array of shape (S,) with nu[s] in B(s)."""
        array = np.asarray(nu)
        if array.shape != (self.num_states,) or not np.issubdtype(array.dtype, np.integer):
            raise InvalidArgumentError(f"{name} must be {self.num_states} state indices, one per state; got {nu!r}")
        inside = self.perturbation_sets.contains(array, np.arange(self.num_states))
        if not inside.all():
            s = int(np.flatnonzero(~inside)[0])
            raise InvalidArgumentError(
                f"{name}[{s}] = {int(array[s])} is not in B({s}) = {list(self.perturbation_sets.admissible[s])}"
            )
        return array.astype(np.int64)

    def compose(self, pi: Any, nu: Any) -> np.ndarray:
        """(pi o nu)[s, a] = pi[nu(s), a]: the policy the agent effectively plays under nu."""
        return self.check_policy(pi)[self.check_adversary(nu)]

    def _evaluate(self, pi: np.ndarray) -> np.ndarray:
        reward = np.einsum("sa,sa->s", pi, self.rewards)
        dynamics = np.einsum("sa,sak->sk", pi, self.transitions)
        return np.linalg.solve(np.eye(self.num_states) - self.gamma * dynamics, reward)

    def value(self, pi: Any) -> np.ndarray:
        """V^pi[s] = E[sum_t gamma^t r(s_t, a_t) | s_0 = s], by one linear solve."""
        return self._evaluate(self.check_policy(pi))

    def q_value(self, pi: Any) -> np.ndarray:
        """Q^pi[s, a] = r(s, a) + gamma sum_s' P(s'|s, a) V^pi(s')."""
        return self._q(self.check_policy(pi))

    def _q(self, pi: np.ndarray) -> np.ndarray:
        return self.rewards + self.gamma * self.transitions @ self._evaluate(pi)

    def occupancy(self, pi: Any) -> np.ndarray:
        """The discounted state visitation d^pi[s] = sum_t gamma^t Pr(s_t = s | s_0 ~ mu0) (not
        normalised: it sums to 1 / (1 - gamma))."""
        pi = self.check_policy(pi)
        dynamics = np.einsum("sa,sak->sk", pi, self.transitions)
        return np.linalg.solve((np.eye(self.num_states) - self.gamma * dynamics).T, self.initial_distribution)

    def expected(self, values: np.ndarray) -> float:
        """V(mu0) = sum_s mu0(s) V(s)."""
        return float(self.initial_distribution @ values)

    # ---- the adversary ---------------------------------------------------------------------------
    def strongest_adversary(self, pi: Any) -> np.ndarray:
        """nu*(pi)[s]: the deterministic adversary minimising V^{pi o nu}(s) in every state at once.

        Exact: policy iteration on the adversary's MDP (states S, actions B(s); reward
        sum_a pi(a|s_hat) r(s, a), transitions sum_a pi(a|s_hat) P(.|s, a)), started from
        showing the true state where that is admissible; a state's choice changes only on a
        strict improvement (relative 1e-12), so ties keep the unperturbed state, then the one
        listed first in B(s).
        """
        pi = self.check_policy(pi)
        adversary_reward = self.rewards @ pi.T  # [s, s_hat] = sum_a pi(a|s_hat) r(s, a)
        adversary_dynamics = np.einsum("ta,sak->stk", pi, self.transitions)  # [s, s_hat, s']
        states = np.arange(self.num_states)
        nu = self._identity.copy()
        for _ in range(_MAX_POLICY_ITERATIONS):
            values = self._evaluate(pi[nu])
            q = adversary_reward + self.gamma * adversary_dynamics @ values  # [s, s_hat]
            best = exhaustive(lambda s_hat, q=q: q[states, s_hat], states, self.perturbation_sets, maximize=False)
            slack = 1e-12 * (1.0 + np.abs(q).max())
            improve = q[states, best] < q[states, nu] - slack
            if not improve.any():
                return nu
            nu = np.where(improve, best, nu)
        raise RuntimeError("policy iteration for the strongest adversary did not terminate")  # pragma: no cover

    def adversarial_value(self, pi: Any) -> np.ndarray:
        """V^{pi o nu*(pi)}[s]: the value under the strongest adversary."""
        pi = self.check_policy(pi)
        return self._evaluate(pi[self.strongest_adversary(pi)])

    def kl_adversary(self, pi: Any) -> np.ndarray:
        """nu_KL(pi)[s] = argmax_{s_hat in B(s)} KL(pi(.|s) || pi(.|s_hat)): the BARPO paper's inner
        adversary (equation BARPO, Section 4.2). Ties (e.g. KL = 0 everywhere) keep the true state
        when it is admissible, then the one listed first in B(s)."""
        pi = self.check_policy(pi)
        states = np.arange(self.num_states)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_pi = np.log(pi)

        def divergence(s_hat: np.ndarray) -> np.ndarray:
            p, q = pi[states], pi[s_hat]
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = np.where(p > 0, p * (log_pi[states] - np.log(q)), 0.0)
            return terms.sum(-1)

        return exhaustive(divergence, states, self._self_first, maximize=True)

    def is_robust(self, pi: Any, tol: float = 1e-9) -> bool:
        """True when V^pi(s) = V^{pi o nu*(pi)}(s) in every state (within ``tol`` times the value
        scale 1 + max |V^pi|; Appendix D's Pi_Robust): no admissible perturbation changes the
        value. (When some B(s) lacks s the adversary must move, and may even help.)"""
        pi = self.check_policy(pi)
        natural = self._evaluate(pi)
        adversarial = self._evaluate(pi[self.strongest_adversary(pi)])
        return bool(np.max(np.abs(natural - adversarial)) <= tol * (1.0 + np.abs(natural).max()))

    # ---- optimal policies ------------------------------------------------------------------------
    def optimal_policy(self) -> np.ndarray:
        """The Bellman optimality policy pi* (deterministic, one-hot rows), by policy iteration:
        exact after finitely many steps. Ties keep the lowest action index."""
        states = np.arange(self.num_states)
        action = np.zeros(self.num_states, dtype=np.int64)
        eye = np.eye(self.num_actions)
        for _ in range(_MAX_POLICY_ITERATIONS):
            q = self._q(eye[action])
            best = q.argmax(1)
            slack = 1e-12 * (1.0 + np.abs(q).max())
            improve = q[states, best] > q[states, action] + slack
            if not improve.any():
                return eye[action]
            action = np.where(improve, best, action)
        raise RuntimeError("policy iteration did not terminate")  # pragma: no cover

    def optimal_value(self) -> np.ndarray:
        """V*[s] = max_pi V^pi(s)."""
        return self._evaluate(self.optimal_policy())

    def optimal_robust_policy(self, tol: float = 1e-9) -> np.ndarray | None:
        """A deterministic policy pi with V^{pi o nu*(pi)} = V* (the optimal robust policy of the
        ISA condition: B(s) never changes the optimal action; BARPO paper, Section 2), or None when
        no such policy exists.

        pi(s') must be an optimal action of every state s that may show s' (s' in B(s)); states
        that no B(s) contains take an optimal action of their own. When these sets of actions
        are empty for some shown state, the ISA condition fails: no policy reaches V* against its
        strongest adversary, and a policy maximising V^{pi o nu*(pi)} in every state at once need
        not exist (it is not searched for here)."""
        q = self._q(self.optimal_policy())
        scale = 1.0 + np.abs(q).max()
        optimal = q >= q.max(1, keepdims=True) - tol * scale  # [s, a]: a is optimal in s
        allowed = np.ones((self.num_states, self.num_actions), dtype=bool)
        shown = np.zeros(self.num_states, dtype=bool)
        for s, row in enumerate(self.perturbation_sets.admissible):
            for s_hat in row:
                allowed[s_hat] &= optimal[s]
                shown[s_hat] = True
        allowed[~shown] = optimal[~shown]
        if not allowed.any(1).all():
            return None
        pi = np.eye(self.num_actions)[allowed.argmax(1)]
        natural = self._evaluate(pi)
        adversarial = self._evaluate(pi[self.strongest_adversary(pi)])
        target = q.max(1)
        assert np.max(np.abs(adversarial - target)) <= 1e-6 * scale and np.max(np.abs(natural - target)) <= 1e-6 * scale
        return pi
