"""Finite perturbation sets: for each point s of {0, ..., n-1} a non-empty list B(s) of points the
adversary may substitute for it, and the exact solver over them.

This is the threat model of a tabular state-adversarial MDP (SA-MDP, Zhang et al. 2020, Sec. 3;
the ISA-MDP of the BARPO paper): the adversary sees the true state s and shows the agent some
s_hat in B(s). Points are integer indices; optional coordinates (``points``, one row per index)
give them a geometry, used by :meth:`FiniteSet.project` and :meth:`FiniteSet.within`.

Nothing here knows about RL, and this module needs numpy only (no torch), so a numpy-only
analysis can import it without the deep-learning stack.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from robustrl.errors import InvalidArgumentError
from robustrl.threat.norms import parse_norm

__all__ = ["FiniteInnerObjective", "FiniteSet", "exhaustive"]

# objective(s_hat) -> one value per sample, shape (batch,); row i of s_hat is a candidate for s[i]
FiniteInnerObjective = Callable[[np.ndarray], Any]


class FiniteSet:
    """B(s) for every point s in {0, ..., n-1}: a non-empty list of admissible indices.

    Args:
        admissible: ``admissible[s]`` lists the indices of B(s), each in 0..n-1 (n =
            ``len(admissible)``), none twice. The order is kept: it breaks ties (first wins).
            B(s) need not contain s.
        points: optional coordinates, shape (n, d), one row per index. With them
            :meth:`project` returns the l_2-nearest admissible point; without them every two
            distinct points are equally far apart.

    A :class:`~robustrl.threat.protocol.PerturbationSet` over numpy integer arrays: ``s`` may be
    an int or an integer array of any shape, and the methods work element-wise.
    """

    def __init__(self, admissible: Sequence[Sequence[int]], points: Any = None):
        if (
            not isinstance(admissible, (Sequence, np.ndarray))
            or isinstance(admissible, (str, bytes))
            or len(admissible) == 0
        ):
            raise InvalidArgumentError(
                f"a finite set needs a non-empty list with one list of admissible indices per point, got {admissible!r}"
            )
        n = len(admissible)
        rows: list[tuple[int, ...]] = []
        for s, row in enumerate(admissible):
            if isinstance(row, (str, bytes)) or not isinstance(row, (Sequence, np.ndarray)):
                raise InvalidArgumentError(f"B({s}) must be a list of point indices, got {row!r}")
            if len(row) == 0:
                raise InvalidArgumentError(
                    f"B({s}) is empty: every point needs at least one admissible point (usually itself)"
                )
            indices = []
            for index in row:
                if isinstance(index, (bool, np.bool_)) or not isinstance(index, numbers.Integral):
                    raise InvalidArgumentError(f"B({s}) holds {index!r}: admissible points are integer indices")
                if not 0 <= int(index) < n:
                    raise InvalidArgumentError(f"B({s}) holds index {int(index)}, outside the points 0..{n - 1}")
                if int(index) in indices:
                    raise InvalidArgumentError(f"B({s}) lists index {int(index)} twice")
                indices.append(int(index))
            rows.append(tuple(indices))
        self.admissible: tuple[tuple[int, ...], ...] = tuple(rows)
        self.points: np.ndarray | None = None
        if points is not None:
            try:
                coordinates = np.array(points, dtype=np.float64)
            except (TypeError, ValueError):
                raise InvalidArgumentError("points must be an (n, d) array of numbers") from None
            if coordinates.ndim != 2 or coordinates.shape[0] != n:
                raise InvalidArgumentError(
                    f"points must have shape ({n}, d), one row per point; got {coordinates.shape}"
                )
            if not np.isfinite(coordinates).all():
                raise InvalidArgumentError("points must be finite (no NaN or inf coordinates)")
            coordinates.flags.writeable = False
            self.points = coordinates
        self.sizes = np.array([len(row) for row in rows], dtype=np.int64)
        # candidates padded to one width by repeating each row's last entry: rectangular lookups
        width = int(self.sizes.max())
        self._padded = np.array([row + (row[-1],) * (width - len(row)) for row in rows], dtype=np.int64)
        self._mask = np.zeros((n, n), dtype=bool)
        for s, row in enumerate(rows):
            self._mask[s, list(row)] = True
        for array in (self.sizes, self._padded, self._mask):
            array.flags.writeable = False

    @classmethod
    def within(cls, points: Any, eps: float, norm: str | float = "inf") -> FiniteSet:
        """B(s) = {s' : ||points[s'] - points[s]||_norm <= eps}: the finite analogue of a ball
        (each point admits itself first, then the others in index order)."""
        if not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps < 0:
            raise InvalidArgumentError(f"eps must be a finite number >= 0, got {eps!r}")
        norm = parse_norm(norm)
        coordinates = np.asarray(points, dtype=np.float64)
        if coordinates.ndim != 2 or coordinates.shape[0] == 0:
            raise InvalidArgumentError(f"points must be an (n, d) array with n >= 1, got shape {coordinates.shape}")
        delta = coordinates[:, None, :] - coordinates[None, :, :]
        distance = np.abs(delta).max(-1) if norm == "inf" else np.linalg.norm(delta, axis=-1)
        admissible = [
            [s] + [int(t) for t in np.flatnonzero(distance[s] <= eps + 1e-12) if t != s]
            for s in range(len(coordinates))
        ]
        return cls(admissible, coordinates)

    # ---- the PerturbationSet face ----------------------------------------------------------------
    @property
    def num_points(self) -> int:
        return len(self.admissible)

    def describe(self) -> str:
        return f"finite set over {self.num_points} points, |B(s)| from {self.sizes.min()} to {self.sizes.max()}"

    def candidates(self, s: int) -> np.ndarray:
        """The indices of B(s), in their given order."""
        index = self._indices(s, "s")
        if index.ndim != 0:
            raise InvalidArgumentError(f"candidates(s) takes one point index, got an array of shape {index.shape}")
        return np.array(self.admissible[int(index)], dtype=np.int64)

    def contains(self, s_hat: Any, s: Any, /) -> np.ndarray:
        """Element-wise bool (broadcast): is s_hat in B(s)?"""
        return self._mask[self._indices(s, "s"), self._indices(s_hat, "s_hat")]

    def sample(self, s: Any, generator: np.random.Generator | None = None, /) -> np.ndarray:
        """A point of B(s) drawn uniformly, element-wise (``generator``: a numpy Generator; a fresh
        unseeded one if None)."""
        s = self._indices(s, "s")
        rng = generator if generator is not None else np.random.default_rng()
        if not isinstance(rng, np.random.Generator):
            raise InvalidArgumentError(
                f"a finite set samples with a numpy.random.Generator, got {type(generator).__name__}"
            )
        draws = np.minimum((rng.random(s.shape) * self.sizes[s]).astype(np.int64), self.sizes[s] - 1)
        return self._padded[s, draws]

    def project(self, s_hat: Any, s: Any, /) -> np.ndarray:
        """The point of B(s) closest to s_hat, element-wise: s_hat itself when admissible; else the
        l_2-nearest candidate by ``points`` (ties: first in B(s)), or, without points (all
        distinct points equally far), s itself if admissible, else the first of B(s)."""
        s, s_hat = np.broadcast_arrays(self._indices(s, "s"), self._indices(s_hat, "s_hat"))
        candidates = self._padded[s]  # (..., width)
        if self.points is not None:
            distance = np.linalg.norm(self.points[candidates] - self.points[s_hat][..., None, :], axis=-1)
        else:
            distance = np.where(candidates == s_hat[..., None], 0.0, np.where(candidates == s[..., None], 1.0, 2.0))
        nearest = np.take_along_axis(candidates, distance.argmin(-1)[..., None], -1)[..., 0]
        return np.where(self._mask[s, s_hat], s_hat, nearest)

    # ---- JSON ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; :meth:`from_dict` rebuilds an equal set."""
        return {
            "kind": "finite",
            "admissible": [list(row) for row in self.admissible],
            "points": None if self.points is None else self.points.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> FiniteSet:
        if not isinstance(data, dict) or data.get("kind", "finite") != "finite" or "admissible" not in data:
            raise InvalidArgumentError(
                'a finite set is stored as {"kind": "finite", "admissible": [[...], ...], "points": ...}, '
                f"got {str(data)[:200]}"
            )
        unknown = set(data) - {"kind", "admissible", "points"}
        if unknown:
            raise InvalidArgumentError(f"a stored finite set has unknown keys {sorted(unknown)}")
        return cls(data["admissible"], data.get("points"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FiniteSet):
            return NotImplemented
        same_points = (self.points is None and other.points is None) or (
            self.points is not None and other.points is not None and np.array_equal(self.points, other.points)
        )
        return self.admissible == other.admissible and same_points

    __hash__ = None  # equal by value, like a list: not hashable

    def __repr__(self) -> str:
        return f"FiniteSet({[list(row) for row in self.admissible]!r}{'' if self.points is None else ', points=...'})"

    # ---- helpers ---------------------------------------------------------------------------------
    def _indices(self, value: Any, name: str) -> np.ndarray:
        array = np.asarray(value)
        if array.size == 0:
            return array.astype(np.int64)
        if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
            raise InvalidArgumentError(f"{name} must be point indices (integers), got {value!r}")
        if array.min() < 0 or array.max() >= self.num_points:
            bad = array[(array < 0) | (array >= self.num_points)].flat[0]
            raise InvalidArgumentError(f"{name} holds index {int(bad)}, outside the points 0..{self.num_points - 1}")
        return array.astype(np.int64, copy=False)


def exhaustive(
    objective: FiniteInnerObjective, s: Any, finite_set: FiniteSet, *, maximize: bool = True
) -> np.ndarray | int:
    """The exact inner solver over a finite set: argmax (or argmin) of ``objective`` over B(s).

    ``objective(s_hat) -> values`` takes a batch of indices (shape (batch,)) and returns one number
    per sample, where row i of s_hat is a candidate for s[i]: the same convention as the gradient
    solvers' objectives (:func:`robustrl.threat.pgd`). It is called max |B(s)| times, each call on a
    full batch (rows whose B(s) is shorter repeat their last candidate). Ties go to the candidate
    listed first in B(s). Returns an int for an int ``s``, else an index array of ``s``'s shape.
    """
    if not isinstance(finite_set, FiniteSet):
        raise InvalidArgumentError(f"exhaustive() searches a FiniteSet, got {type(finite_set).__name__}")
    states = finite_set._indices(s, "s")
    flat = states.reshape(-1)
    sign = 1.0 if maximize else -1.0
    best = finite_set._padded[flat, 0].copy()
    best_values = np.full(flat.shape, -np.inf)
    for k in range(finite_set._padded.shape[1]):
        candidate = finite_set._padded[flat, k]
        values = np.asarray(objective(candidate.copy()), dtype=np.float64)
        if values.shape != flat.shape:
            raise InvalidArgumentError(
                f"exhaustive objective must return one value per sample, shape {flat.shape}, got {values.shape}"
            )
        if np.isnan(values).any():
            raise InvalidArgumentError(
                f"exhaustive objective returned NaN for s_hat={candidate[np.isnan(values)].tolist()}"
            )
        better = (k < finite_set.sizes[flat]) & ((sign * values > best_values) | (k == 0))
        best[better] = candidate[better]
        best_values[better] = sign * values[better]
    return int(best[0]) if states.ndim == 0 else best.reshape(states.shape)
