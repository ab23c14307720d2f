"""The face every perturbation set shows: continuous balls and finite sets alike.

A perturbation set maps a point x (a batch of points, batch first) to the set B(x) of points an
adversary may substitute for it. :class:`~robustrl.threat.ball.Ball` (l_inf / l_2 balls over
torch tensors) and :class:`~robustrl.threat.finite.FiniteSet` (the admissible states B(s) of a
tabular ISA-MDP, over numpy integer indices) both meet it; solvers and analyses that only need
these four methods accept either. Nothing here knows about RL, and this module imports neither
torch nor numpy.

Parameters are positional-only, so each implementation names them as its domain does
(``x_hat, x`` for a ball; ``s_hat, s`` for a finite set) and still meets the protocol.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class PerturbationSet(Protocol):
    def project(self, x_hat: Any, x: Any, /) -> Any:
        """The point of B(x) closest to x_hat, per sample (x_hat itself when it is admissible)."""

    def sample(self, x: Any, generator: Any = None, /) -> Any:
        """A point of B(x) per sample, drawn uniformly with ``generator`` (torch or numpy,
        as the set's arrays are)."""

    def contains(self, x_hat: Any, x: Any, /) -> Any:
        """Per-sample bool: is x_hat in B(x)?"""

    def describe(self) -> str:
        """One line for reports, e.g. ``l_inf ball, eps=0.1``."""
