"""Two-parameter slices of the policy space, their value landscapes, and where gradient ascent
ends from a grid of starts (BARPO paper, Figures 1, 3, 4 and Proposition 3.1).

A :class:`PolicySlice` fixes every row of a base policy except two states' rows, which mix two
actions each: pi(a1 | s_alpha) = alpha, pi(a2 | s_alpha) = 1 - alpha, and likewise beta for
s_beta. On a two-state, two-action ISA-MDP (the toy of Appendix D) this is the whole policy space
Theta = [0, 1]^2. Gradient ascent runs in (alpha, beta) with projection onto the box, and uses the
exact gradients of :mod:`robustrl.theory.gradients` through the chain rule
dJ/dalpha = dJ/dpi[s_alpha, a1] - dJ/dpi[s_alpha, a2].

Everything is batched over many policies at once (numpy only), so a 50 x 50 grid of starts with
a thousand steps each takes seconds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from robustrl.errors import InvalidArgumentError
from robustrl.theory.gradients import check_objective
from robustrl.theory.mdp import TabularISAMDP

__all__ = [
    "BasinResult",
    "PolicySlice",
    "basins",
    "batch_adversary",
    "batch_gradient",
    "batch_values",
    "landscape_grid",
]

STATIONARY_TOLERANCE = 1e-6  # largest one-sided slope (value per unit of alpha/beta) a FOSP may keep


# ---- batched exact quantities (B policies at once) -------------------------------------------------
def batch_values(mdp: TabularISAMDP, pis: np.ndarray) -> np.ndarray:
    """V^pi[b, s] for a stack of policies pis[b, s, a]."""
    reward = np.einsum("bsa,sa->bs", pis, mdp.rewards)
    dynamics = np.einsum("bsa,sak->bsk", pis, mdp.transitions)
    system = np.eye(mdp.num_states) - mdp.gamma * dynamics
    return np.linalg.solve(system, reward[..., None])[..., 0]


def _candidates(mdp: TabularISAMDP, ordered: Any) -> np.ndarray:
    rows = ordered.admissible
    width = max(len(row) for row in rows)
    return np.array([row + (row[-1],) * (width - len(row)) for row in rows], dtype=np.int64)


def _compose(pis: np.ndarray, nu: np.ndarray) -> np.ndarray:
    return np.take_along_axis(pis, nu[..., None], axis=1)


def batch_strongest_adversary(mdp: TabularISAMDP, pis: np.ndarray) -> np.ndarray:
    """nu*(pi)[b, s], the same rule as :meth:`TabularISAMDP.strongest_adversary` (policy
    iteration from the identity, strict improvements only, ties to the first listed)."""
    candidates = _candidates(mdp, mdp.perturbation_sets)  # [s, k]
    adversary_reward = np.einsum("sa,bta->bst", mdp.rewards, pis)  # [b, s, s_hat]
    states = np.arange(mdp.num_states)
    nu = np.broadcast_to(mdp._identity, pis.shape[:2]).copy()
    batch = np.arange(len(pis))[:, None]
    for _ in range(10_000):
        values = batch_values(mdp, _compose(pis, nu))
        # next-state values under the policy shown: [b, s, s_hat] = sum_a pi(a|s_hat) sum_k P(k|s,a) V(k)
        continuation = np.einsum("bta,sak,bk->bst", pis, mdp.transitions, values)
        q = adversary_reward + mdp.gamma * continuation
        q_candidates = q[batch[:, :, None], states[None, :, None], candidates[None]]  # [b, s, k]
        best = candidates[states, q_candidates.argmin(-1)]
        slack = 1e-12 * (1.0 + np.abs(q).max(axis=(1, 2), keepdims=True)[..., 0])
        improve = q[batch, states, best] < q[batch, states, nu] - slack
        if not improve.any():
            return nu
        nu = np.where(improve, best, nu)
    raise RuntimeError("policy iteration for the strongest adversary did not terminate")  # pragma: no cover


def batch_kl_adversary(mdp: TabularISAMDP, pis: np.ndarray) -> np.ndarray:
    """argmax_{s_hat in B(s)} KL(pi(.|s) || pi(.|s_hat)) for each policy (ties: the true state,
    then the first listed), as :meth:`TabularISAMDP.kl_adversary`."""
    candidates = _candidates(mdp, mdp._self_first)
    p = pis[:, :, None, :]  # [b, s, 1, a]
    q = pis[:, candidates]  # [b, s, k, a]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    divergence = terms.sum(-1)
    return candidates[np.arange(mdp.num_states), divergence.argmax(-1)]


def batch_adversary(mdp: TabularISAMDP, pis: np.ndarray, objective: str) -> np.ndarray:
    check_objective(objective)
    if objective == "spo":
        return np.broadcast_to(mdp._identity, pis.shape[:2]).copy()
    if objective == "arpo":
        return batch_strongest_adversary(mdp, pis)
    return batch_kl_adversary(mdp, pis)


def batch_gradient(mdp: TabularISAMDP, pis: np.ndarray, objective: str) -> tuple[np.ndarray, np.ndarray]:
    """(dJ/dpi[b, s, a], J[b]) for each policy, its adversary held fixed (see
    :func:`robustrl.theory.gradients.policy_gradient`)."""
    nu = batch_adversary(mdp, pis, objective)
    effective = _compose(pis, nu)
    values = batch_values(mdp, effective)
    dynamics = np.einsum("bsa,sak->bsk", effective, mdp.transitions)
    system = np.eye(mdp.num_states) - mdp.gamma * dynamics
    occupancy = np.linalg.solve(
        np.swapaxes(system, 1, 2), np.broadcast_to(mdp.initial_distribution, values.shape)[..., None]
    )[..., 0]
    q = mdp.rewards + mdp.gamma * np.einsum("sak,bk->bsa", mdp.transitions, values)
    weighted = occupancy[..., None] * q  # [b, s, a]
    shown = nu[..., None] == np.arange(mdp.num_states)  # [b, s, t]
    gradient = np.einsum("bst,bsa->bta", shown, weighted)
    return gradient, values @ mdp.initial_distribution


# ---- the slice ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicySlice:
    """pi(alpha, beta): ``base`` with row ``alpha_state`` = alpha on ``alpha_actions[0]`` and
    1 - alpha on ``alpha_actions[1]`` (likewise for beta). On the toy this is Theta = [0, 1]^2."""

    mdp: TabularISAMDP
    base: np.ndarray
    alpha_state: int = 0
    beta_state: int = 1
    alpha_actions: tuple[int, int] = (0, 1)
    beta_actions: tuple[int, int] = (0, 1)

    @classmethod
    def build(
        cls,
        mdp: TabularISAMDP,
        base: Any = None,
        alpha_state: int = 0,
        beta_state: int = 1,
        alpha_actions: Sequence[int] = (0, 1),
        beta_actions: Sequence[int] = (0, 1),
    ) -> PolicySlice:
        """Checked construction; ``base`` defaults to the uniform policy."""
        base = (
            np.full((mdp.num_states, mdp.num_actions), 1.0 / mdp.num_actions)
            if base is None
            else mdp.check_policy(base, "base policy")
        )
        for name, state in (("alpha_state", alpha_state), ("beta_state", beta_state)):
            if isinstance(state, bool) or not isinstance(state, (int, np.integer)) or not 0 <= state < mdp.num_states:
                raise InvalidArgumentError(f"{name} must be a state index in 0..{mdp.num_states - 1}, got {state!r}")
        if alpha_state == beta_state:
            raise InvalidArgumentError(f"alpha_state and beta_state must differ, both are {alpha_state}")
        pairs = []
        for name, actions in (("alpha_actions", alpha_actions), ("beta_actions", beta_actions)):
            if len(actions) != 2 or any(
                isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not 0 <= a < mdp.num_actions
                for a in actions
            ):
                raise InvalidArgumentError(
                    f"{name} must be two action indices in 0..{mdp.num_actions - 1}, got {actions!r}"
                )
            if actions[0] == actions[1]:
                raise InvalidArgumentError(f"{name} must be two different actions, got {tuple(actions)}")
            pairs.append((int(actions[0]), int(actions[1])))
        base = base.copy()
        base.flags.writeable = False
        return cls(mdp, base, int(alpha_state), int(beta_state), pairs[0], pairs[1])

    def policies(self, alpha: Any, beta: Any) -> np.ndarray:
        """pi[b, s, a] for arrays alpha[b], beta[b] (broadcast)."""
        alpha, beta = np.broadcast_arrays(np.asarray(alpha, dtype=np.float64), np.asarray(beta, dtype=np.float64))
        alpha, beta = alpha.reshape(-1), beta.reshape(-1)
        pis = np.repeat(self.base[None], len(alpha), axis=0)
        for state, (one, two), x in (
            (self.alpha_state, self.alpha_actions, alpha),
            (self.beta_state, self.beta_actions, beta),
        ):
            pis[:, state, :] = 0.0
            pis[:, state, one] = x
            pis[:, state, two] = 1.0 - x
        return pis

    def policy(self, alpha: float, beta: float) -> np.ndarray:
        return self.policies(alpha, beta)[0]

    def gradient(self, points: np.ndarray, objective: str) -> tuple[np.ndarray, np.ndarray]:
        """(dJ/d(alpha, beta) [b, 2], J[b]) at points[b] = (alpha, beta)."""
        pis = self.policies(points[:, 0], points[:, 1])
        g, value = batch_gradient(self.mdp, pis, objective)
        slope = np.stack(
            [
                g[:, self.alpha_state, self.alpha_actions[0]] - g[:, self.alpha_state, self.alpha_actions[1]],
                g[:, self.beta_state, self.beta_actions[0]] - g[:, self.beta_state, self.beta_actions[1]],
            ],
            -1,
        )
        return slope, value

    def evaluate(self, points: np.ndarray) -> dict[str, np.ndarray]:
        """At points[b] = (alpha, beta): natural value V^pi(mu0), adversarial value
        V^{pi o nu*}(mu0), the BARPO value V^{pi o nu_KL}(mu0), and the robust flag."""
        pis = self.policies(points[:, 0], points[:, 1])
        natural = batch_values(self.mdp, pis)
        adversarial = batch_values(self.mdp, _compose(pis, batch_strongest_adversary(self.mdp, pis)))
        kl = batch_values(self.mdp, _compose(pis, batch_kl_adversary(self.mdp, pis)))
        scale = 1.0 + np.abs(natural).max(-1)
        mu0 = self.mdp.initial_distribution
        return {
            "value": natural @ mu0,
            "adversarial_value": adversarial @ mu0,
            "barpo_value": kl @ mu0,
            "robust": np.abs(natural - adversarial).max(-1) <= 1e-9 * scale,
        }

    def objective(self, points: np.ndarray, objective: str) -> np.ndarray:
        check_objective(objective)
        values = self.evaluate(points)
        return {"spo": values["value"], "arpo": values["adversarial_value"], "barpo": values["barpo_value"]}[objective]

    def steepest_slope(
        self, points: np.ndarray, objective: str, step: float = 1e-7, directions: int = 64
    ) -> np.ndarray:
        """max over feasible unit directions d of the one-sided slope (J(x + h d) - J(x)) / h of
        the *true* objective (its adversary re-solved at x + h d), per point: <= 0 (up to
        rounding) at a first-order stationary point of the box-constrained problem, also where
        the objective has a kink (ARPO's min over adversaries)."""
        angles = np.linspace(0.0, 2 * math.pi, directions, endpoint=False)
        unit = np.stack([np.cos(angles), np.sin(angles)], -1)
        base = self.objective(points, objective)
        shifted = points[:, None, :] + step * unit[None]
        feasible = ((shifted >= 0.0) & (shifted <= 1.0)).all(-1)
        values = self.objective(np.clip(shifted, 0.0, 1.0).reshape(-1, 2), objective).reshape(len(points), directions)
        slopes = np.where(feasible, (values - base[:, None]) / step, -np.inf)
        return slopes.max(-1)


def landscape_grid(plane: PolicySlice, resolution: int) -> dict[str, np.ndarray]:
    """The slice's values on a resolution x resolution grid over [0, 1]^2 (``alpha`` along
    columns, ``beta`` along rows)."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 2:
        raise InvalidArgumentError(f"the landscape resolution must be an integer >= 2, got {resolution!r}")
    axis = np.linspace(0.0, 1.0, int(resolution))
    alpha, beta = np.meshgrid(axis, axis)
    values = plane.evaluate(np.stack([alpha.ravel(), beta.ravel()], -1))
    return {"alpha": alpha, "beta": beta, **{key: value.reshape(alpha.shape) for key, value in values.items()}}


# ---- gradient ascent from a grid of starts --------------------------------------------------------
def ascend(
    plane: PolicySlice, starts: np.ndarray, objective: str, lr: float, steps: int, keep_path: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Projected gradient ascent in (alpha, beta): x <- clip(x + lr * dJ/dx, 0, 1), ``steps``
    times, all starts at once. Returns the end points and (``keep_path``) the path [step, b, 2]."""
    check_objective(objective)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise InvalidArgumentError(f"lr must be a finite number > 0, got {lr!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise InvalidArgumentError(f"steps must be an integer >= 0, got {steps!r}")
    x = np.array(starts, dtype=np.float64)
    path = [x.copy()] if keep_path else None
    for _ in range(int(steps)):
        slope, _ = plane.gradient(x, objective)
        x = np.clip(x + lr * slope, 0.0, 1.0)
        if path is not None:
            path.append(x.copy())
    return x, (np.stack(path) if path is not None else None)


@dataclass
class BasinResult:
    settings: dict[str, Any]
    fractions: dict[str, float]
    starts: list[dict[str, Any]]
    classes: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "fractions": self.fractions, "classes": self.classes, "starts": self.starts}


def grid_starts(grid: int) -> np.ndarray:
    """The N x N cell centres ((i + 1/2) / N, (j + 1/2) / N) of [0, 1]^2."""
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1:
        raise InvalidArgumentError(f"grid must be an integer >= 1, got {grid!r}")
    axis = (np.arange(grid) + 0.5) / grid
    alpha, beta = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([alpha.ravel(), beta.ravel()], -1)


def basins(
    plane: PolicySlice,
    objective: str,
    grid: int,
    lr: float,
    steps: int,
    names: dict[tuple[float, float], str] | None = None,
    decimals: int = 2,
) -> BasinResult:
    """Run :func:`ascend` from the N x N grid of starts and class every end point.

    Stationary points are found among the end points rounded to ``decimals`` and the box's
    corners: a point is a FOSP of the box-constrained objective when no feasible direction
    rises faster than 1e-6 (:meth:`PolicySlice.steepest_slope`, which re-solves the adversary,
    so ARPO's kinks are handled). An end point's class is the nearest FOSP when it is at that
    point after rounding ("at_rest") or within one gradient step of it (2 lr |dJ/dx| at the end
    point: the iterate hovers there, e.g. ARPO's two-cycle across the diagonal near (0, 0));
    otherwise "not converged". Classes are named "FOSP (a, b)", or by ``names`` (the toy names
    (1, 1) "optimal" and (0, 0) "deceptive"). Fractions are over all N^2 starts.
    """
    starts = grid_starts(grid)
    ends, _ = ascend(plane, starts, objective, lr, steps)
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    candidates = np.unique(np.concatenate([np.round(ends, decimals), corners]), axis=0)
    fosps = candidates[plane.steepest_slope(candidates, objective) <= STATIONARY_TOLERANCE]
    fosp_values = plane.evaluate(fosps) if len(fosps) else None
    fosp_labels = []
    for point in fosps:
        key = f"({point[0]:.{decimals}f}, {point[1]:.{decimals}f})"
        name = (names or {}).get((float(point[0]), float(point[1])))
        fosp_labels.append(f"{name} {key}" if name else f"FOSP {key}")
    slope, _ = plane.gradient(ends, objective)
    reach = 2.0 * lr * np.linalg.norm(slope, axis=-1)
    labels_per_start, at_rest = [], []
    for i, end in enumerate(ends):
        if not len(fosps):
            labels_per_start.append("not converged")
            at_rest.append(False)
            continue
        distance = np.linalg.norm(fosps - end, axis=-1)
        nearest = int(distance.argmin())
        rests = bool(np.array_equal(np.round(end, decimals), fosps[nearest]))
        near = rests or distance[nearest] <= reach[i]
        labels_per_start.append(fosp_labels[nearest] if near else "not converged")
        at_rest.append(rests)
    classes: dict[str, dict[str, Any]] = {}
    for index, label in enumerate(fosp_labels):
        members = [i for i, other in enumerate(labels_per_start) if other == label]
        if not members:
            continue
        classes[label] = {
            "alpha": float(fosps[index, 0]),
            "beta": float(fosps[index, 1]),
            "value": float(fosp_values["value"][index]),
            "adversarial_value": float(fosp_values["adversarial_value"][index]),
            "robust": bool(fosp_values["robust"][index]),
            "starts": len(members),
            "hovering": sum(not at_rest[i] for i in members),
        }
    counts = Counter(labels_per_start)
    total = len(starts)
    fractions = {label: counts[label] / total for label in sorted(counts, key=lambda k: (-counts[k], k))}
    end_values = plane.evaluate(ends)
    records = [
        {
            "alpha0": float(starts[i, 0]),
            "beta0": float(starts[i, 1]),
            "alpha": float(ends[i, 0]),
            "beta": float(ends[i, 1]),
            "value": float(end_values["value"][i]),
            "adversarial_value": float(end_values["adversarial_value"][i]),
            "robust": bool(end_values["robust"][i]),
            "class": labels_per_start[i],
            "at_rest": at_rest[i],
        }
        for i in range(total)
    ]
    settings = {
        "objective": objective,
        "grid": int(grid),
        "lr": float(lr),
        "steps": int(steps),
        "round_decimals": decimals,
    }
    return BasinResult(settings, fractions, records, classes)
