"""Kuhn Poker (and any small two-player zero-sum OpenSpiel game) with a partly controlled
opponent, with exact answers (Rethinking adversarial policies, Section 7, Figure 2).

The game tree comes from OpenSpiel (``pip install open_spiel``; ``robustrl[games]``) and is compiled
once into its terminal histories: each with its chance probability, the victim's payoff and the
(information state, action) pairs of each player along it. Policies are tables over information
states (direct parameterisation, Definition 5.1). From that:

- ``value``: J_eps(nu, alpha) = V(nu, (1 - eps_pi) benign + eps_pi alpha), the victim's expected payoff;
- ``gradients``: exact, dJ/dnu(a|I) = sum over histories through (I, a) of chance * payoff * the
  other factors (the sequence-form derivative);
- ``best_response``: the attacker's exact min oracle by game-tree search, deepest information
  state first (perfect recall makes the choice at each information state independent);
- ``exploitability``: Expl(nu) = -min_alpha J_eps(nu, alpha) (Definition 4.1, *one-sided*: the
  attacker's best-response gain against the victim's seat). OpenSpiel's ``nash_conv`` of a joint
  policy is Expl(seat 0) + Expl(seat 1) at eps_pi = 1 and its ``exploitability`` half of that
  (uniform Kuhn policy: 11/12 and 11/24); the minimum of our Expl at eps_pi = 1 is minus the seat's
  game value (1/18 for seat 0, -1/18 for seat 1), not 0.
- ``robust_value``: max_nu min_alpha J_eps exactly, by the sequence-form linear program in which
  the attacker's realisation plans are those of the mixture: y(sigma a) >= (1 - eps_pi) benign(a|I)
  y(sigma) (a polytope), dualised (scipy's linprog).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robustrl.errors import InvalidArgumentError
from robustrl.games.simplex import check_eps_pi, check_policy, mixture


def require_open_spiel() -> Any:
    try:
        import pyspiel
    except ImportError:
        raise InvalidArgumentError(
            "Kuhn Poker needs OpenSpiel: pip install 'robustrl[games]' (or pip install open_spiel)"
        ) from None
    return pyspiel


@dataclass
class CompiledGame:
    """A two-player zero-sum extensive-form game as its terminal histories."""

    name: str
    victim_seat: int
    infostates: list[list[str]]  # per player
    legal: list[np.ndarray]  # per player [n_infostates, n_actions] bool
    num_actions: int
    weight: np.ndarray  # [Z] chance probability * victim payoff
    chance: np.ndarray  # [Z]
    payoff: np.ndarray  # [Z] victim payoff
    paths: list[list[list[tuple[int, int]]]] = field(default_factory=list)  # [player][z] -> [(infostate, action)]


def compile_game(name: str = "kuhn_poker", victim_seat: int = 0) -> CompiledGame:
    pyspiel = require_open_spiel()
    try:
        game = pyspiel.load_game(name)
    except pyspiel.SpielError as error:
        raise InvalidArgumentError(f"OpenSpiel cannot load game {name!r}: {error}") from None
    if game.num_players() != 2 or game.get_type().utility != pyspiel.GameType.Utility.ZERO_SUM:
        raise InvalidArgumentError(f"{name!r} is not a two-player zero-sum game")
    if victim_seat not in (0, 1):
        raise InvalidArgumentError(f"victim_seat must be 0 or 1, got {victim_seat!r}")
    index: list[dict[str, int]] = [{}, {}]
    legal_lists: list[list[list[int]]] = [[], []]
    terminals: list[tuple[float, float, list[list[tuple[int, int]]]]] = []

    def walk(state: Any, probability: float, path: list[list[tuple[int, int]]]) -> None:
        if state.is_terminal():
            terminals.append((probability, state.returns()[victim_seat], [list(p) for p in path]))
            return
        if state.is_chance_node():
            for action, p in state.chance_outcomes():
                walk(state.child(action), probability * p, path)
            return
        player = state.current_player()
        key = state.information_state_string(player)
        if key not in index[player]:
            index[player][key] = len(index[player])
            legal_lists[player].append(list(state.legal_actions()))
        for action in state.legal_actions():
            path[player].append((index[player][key], action))
            walk(state.child(action), probability, path)
            path[player].pop()

    walk(game.new_initial_state(), 1.0, [[], []])
    num_actions = game.num_distinct_actions()
    legal = []
    for player in (0, 1):
        mask = np.zeros((len(legal_lists[player]), num_actions), dtype=bool)
        for i, actions in enumerate(legal_lists[player]):
            mask[i, actions] = True
        legal.append(mask)
    chance = np.array([t[0] for t in terminals])
    payoff = np.array([t[1] for t in terminals])
    paths = [[t[2][player] for t in terminals] for player in (0, 1)]
    keys = [sorted(index[p], key=index[p].get) for p in (0, 1)]
    return CompiledGame(name, victim_seat, keys, legal, num_actions, chance * payoff, chance, payoff, paths)


class _PathProducts:
    """Vectorised products of policy entries along each terminal history for one player."""

    def __init__(self, paths: list[list[tuple[int, int]]], num_actions: int):
        length = max((len(p) for p in paths), default=0)
        self.length = length
        # flat index into policy.ravel() appended with a trailing 1.0 (padding)
        self.flat = np.zeros((len(paths), max(length, 1)), dtype=np.int64)
        self.infostate = np.full((len(paths), max(length, 1)), -1, dtype=np.int64)
        self.pad = -1
        for z, path in enumerate(paths):
            for k in range(max(length, 1)):
                if k < len(path):
                    self.flat[z, k] = path[k][0] * num_actions + path[k][1]
                    self.infostate[z, k] = path[k][0]
                else:
                    self.flat[z, k] = self.pad

    def factors(self, policy: np.ndarray) -> np.ndarray:
        padded = np.append(policy.ravel(), 1.0)
        return padded[self.flat]  # [Z, L]

    def reach(self, policy: np.ndarray) -> np.ndarray:
        return self.factors(policy).prod(axis=1)

    def gradient(self, policy: np.ndarray, other: np.ndarray) -> np.ndarray:
        """d/d policy of sum_z other[z] * prod of this player's factors on z."""
        factors = self.factors(policy)
        grad = np.zeros(policy.size + 1)
        for k in range(factors.shape[1]):
            rest = np.prod(np.delete(factors, k, axis=1), axis=1) * other
            np.add.at(grad, self.flat[:, k], rest)
        return grad[:-1].reshape(policy.shape)


class KuhnGame:
    """Kuhn Poker (default) with the victim in ``victim_seat`` and the other seat deployed as
    ``(1 - eps_pi) * benign + eps_pi * alpha``; ``benign`` is the uniform policy unless given
    (a table over the opponent's information states). The exact-game interface of
    :mod:`robustrl.games.training`."""

    def __init__(
        self,
        eps_pi: float = 1.0,
        *,
        victim_seat: int = 0,
        benign: Any = None,
        game: str = "kuhn_poker",
        compiled: CompiledGame | None = None,
    ):
        self.eps_pi = check_eps_pi(eps_pi)
        self.compiled = compiled if compiled is not None else compile_game(game, victim_seat)
        c = self.compiled
        self.victim_seat, self.attacker_seat = c.victim_seat, 1 - c.victim_seat
        self.victim_mask, self.attacker_mask = c.legal[self.victim_seat], c.legal[self.attacker_seat]
        self._victim = _PathProducts(c.paths[self.victim_seat], c.num_actions)
        self._attacker = _PathProducts(c.paths[self.attacker_seat], c.num_actions)
        uniform = self.attacker_mask / self.attacker_mask.sum(axis=1, keepdims=True)
        self.benign = (
            uniform if benign is None else check_policy(benign, self.attacker_mask.shape, "benign", self.attacker_mask)
        )
        self._order = self._attacker_infostates_deepest_first()

    @property
    def victim_shape(self) -> tuple[int, int]:
        return self.victim_mask.shape

    @property
    def attacker_shape(self) -> tuple[int, int]:
        return self.attacker_mask.shape

    def with_eps_pi(self, eps_pi: float) -> KuhnGame:
        return KuhnGame(eps_pi, benign=self.benign, compiled=self.compiled)

    def deployed(self, alpha: Any) -> np.ndarray:
        return mixture(self.benign, alpha, self.eps_pi)

    def value(self, nu: Any, alpha: Any) -> float:
        nu, m = np.asarray(nu, float), self.deployed(alpha)
        return float(np.sum(self.compiled.weight * self._victim.reach(nu) * self._attacker.reach(m)))

    def gradients(self, nu: Any, alpha: Any) -> tuple[np.ndarray, np.ndarray]:
        nu, m = np.asarray(nu, float), self.deployed(alpha)
        w = self.compiled.weight
        g_nu = self._victim.gradient(nu, w * self._attacker.reach(m))
        g_m = self._attacker.gradient(m, w * self._victim.reach(nu))
        return g_nu, self.eps_pi * g_m

    def _attacker_infostates_deepest_first(self) -> list[tuple[int, int]]:
        depth: dict[int, int] = {}
        for path in self.compiled.paths[self.attacker_seat]:
            for k, (infostate, _) in enumerate(path):
                depth[infostate] = k
        return sorted(depth.items(), key=lambda item: -item[1])

    def best_response(self, nu: Any) -> np.ndarray:
        """The attacker's exact min oracle: at each of its information states, deepest first, the
        action minimising the victim's counterfactual value given the (already chosen) deployed
        policy below it. Returns a pure adversarial part."""
        nu = np.asarray(nu, float)
        alpha = self.benign.copy()  # placeholder rows, all overwritten
        m = self.deployed(alpha)
        weights = self.compiled.weight * self._victim.reach(nu)
        factors_index, infostates = self._attacker.flat, self._attacker.infostate
        num_actions = self.compiled.num_actions
        for infostate, k in self._order:
            through = infostates[:, k] == infostate
            padded = np.append(m.ravel(), 1.0)
            below = padded[factors_index[through, k + 1 :]].prod(axis=1) if k + 1 < factors_index.shape[1] else 1.0
            actions = factors_index[through, k] - infostate * num_actions
            cfv = np.zeros(num_actions)
            np.add.at(cfv, actions, weights[through] * below)
            cfv = np.where(self.attacker_mask[infostate], cfv, np.inf)
            alpha[infostate] = 0.0
            alpha[infostate, int(np.argmin(cfv))] = 1.0
            m[infostate] = mixture(self.benign[infostate], alpha[infostate], self.eps_pi)
        return alpha

    def exploitability(self, nu: Any) -> float:
        """Expl(nu) = -min_alpha J_eps(nu, alpha), one-sided (see the module docstring)."""
        return -self.value(nu, self.best_response(nu))

    def attacker_reach(self, alpha: Any) -> np.ndarray:
        """The attacker's own reach probability of each of its information states under ``alpha``
        (the weights of a mixed-strategy average, for fictitious play)."""
        alpha = np.asarray(alpha, float)
        reach = np.zeros(self.attacker_shape[0])
        padded = np.append(alpha.ravel(), 1.0)
        for k in range(self._attacker.flat.shape[1]):
            rows = self._attacker.infostate[:, k] >= 0
            prefix = padded[self._attacker.flat[rows, :k]].prod(axis=1) if k else np.ones(rows.sum())
            reach[self._attacker.infostate[rows, k]] = prefix
        return reach

    def robust_value(self) -> tuple[float, np.ndarray]:
        """max_nu min_alpha J_eps(nu, alpha) and a maximising victim (behavioural table), by the
        sequence-form LP described in the module docstring; min_nu Expl(nu) is its negative."""
        from scipy.optimize import linprog

        c = self.compiled
        victim_seq, victim_parent = _sequences(c.paths[self.victim_seat])
        attacker_seq, attacker_parent = _sequences(c.paths[self.attacker_seat])
        nx, ny = len(victim_seq) + 1, len(attacker_seq) + 1  # sequence 0: the empty one
        payoff = np.zeros((nx, ny))
        for z in range(len(c.weight)):
            payoff[
                _last(c.paths[self.victim_seat][z], victim_seq), _last(c.paths[self.attacker_seat][z], attacker_seq)
            ] += c.weight[z]
        e = _sequence_constraints(victim_seq, victim_parent, nx)
        f_matrix = _sequence_constraints(attacker_seq, attacker_parent, ny)
        # G y >= 0: y(I, a) - (1 - eps) benign(a|I) y(parent(I)) >= 0
        g = np.zeros((ny - 1, ny))
        for (infostate, action), j in attacker_seq.items():
            g[j - 1, j] = 1.0
            g[j - 1, attacker_parent[infostate]] -= (1.0 - self.eps_pi) * self.benign[infostate, action]
        nf, ng = f_matrix.shape[0], g.shape[0]
        # variables [x (nx), u (nf, free), w (ng, >= 0)]; maximise u_0
        objective = np.zeros(nx + nf + ng)
        objective[nx] = -1.0
        equality = np.block(
            [
                [payoff.T, -f_matrix.T, -g.T],
                [e, np.zeros((e.shape[0], nf + ng))],
            ]
        )
        rhs = np.concatenate([np.zeros(ny), np.eye(e.shape[0])[0]])
        bounds = [(0, None)] * nx + [(None, None)] * nf + [(0, None)] * ng
        result = linprog(objective, A_eq=equality, b_eq=rhs, bounds=bounds, method="highs")
        if not result.success:  # pragma: no cover
            raise RuntimeError(f"linprog failed: {result.message}")
        x = result.x[:nx]
        nu = self.victim_mask / self.victim_mask.sum(axis=1, keepdims=True)
        for (infostate, action), j in victim_seq.items():
            parent = x[victim_parent[infostate]]
            if parent > 1e-12:
                nu[infostate, action] = max(x[j], 0.0) / parent
        nu = np.where(self.victim_mask, nu, 0.0)
        nu /= nu.sum(axis=1, keepdims=True)
        return float(-result.fun), nu

    def to_open_spiel_policy(self, nu: Any, other: Any = None) -> Any:
        """An OpenSpiel TabularPolicy holding ``nu`` for the victim's information states and
        ``other`` (default: uniform) for the other seat's: OpenSpiel's exploitability routines need
        both players' information states covered."""
        pyspiel = require_open_spiel()
        from open_spiel.python import policy as policy_lib

        game = pyspiel.load_game(self.compiled.name)
        table = policy_lib.TabularPolicy(game)
        tables = {self.victim_seat: np.asarray(nu, float)}
        if other is not None:
            tables[self.attacker_seat] = np.asarray(other, float)
        for seat, rows in tables.items():
            for i, key in enumerate(self.compiled.infostates[seat]):
                table.policy_for_key(key)[:] = rows[i][: self.compiled.num_actions]
        return table


def _sequences(paths: list[list[tuple[int, int]]]) -> tuple[dict[tuple[int, int], int], dict[int, int]]:
    """A player's sequences (infostate, action) -> index (1-based; 0 is the empty sequence) and
    each information state's parent sequence index."""
    sequences: dict[tuple[int, int], int] = {}
    parent: dict[int, int] = {}
    for path in paths:
        previous = 0
        for pair in path:
            parent.setdefault(pair[0], previous)
            if pair not in sequences:
                sequences[pair] = len(sequences) + 1
            previous = sequences[pair]
    return sequences, parent


def _last(path: list[tuple[int, int]], sequences: dict[tuple[int, int], int]) -> int:
    return sequences[path[-1]] if path else 0


def _sequence_constraints(sequences: dict[tuple[int, int], int], parent: dict[int, int], size: int) -> np.ndarray:
    """Rows: x_empty = 1, then sum_a x(I, a) - x(parent(I)) = 0 for each information state."""
    infostates = sorted(parent)
    matrix = np.zeros((1 + len(infostates), size))
    matrix[0, 0] = 1.0
    for row, infostate in enumerate(infostates, start=1):
        matrix[row, parent[infostate]] = -1.0
    for (infostate, _), j in sequences.items():
        matrix[1 + infostates.index(infostate), j] += 1.0
    return matrix
