"""Perturbation sets: l_inf and l_2 balls of radius eps around a batch of points.

Nothing here knows about RL. For observation attacks the points are the policy's *normalised*
observations (see :mod:`robustrl.policies.protocol`): eps is measured in that space, as SA-PPO
(Zhang et al. 2020, Sec. 3) and its descendants define it, and every report says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from robustrl.errors import InvalidArgumentError
from robustrl.threat.norms import NORMS, parse_norm

__all__ = ["NORMS", "Ball", "parse_norm"]


@dataclass(frozen=True)
class Ball:
    """B_eps(x) = {x_hat : ||x_hat - x||_norm <= eps}, optionally intersected with a box
    [low, high] (e.g. the normaliser's clipping range), so perturbed points stay valid inputs.

    A :class:`~robustrl.threat.protocol.PerturbationSet` over batches of torch tensors."""

    eps: float
    norm: str = "inf"
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.eps, (int, float)) or not math.isfinite(self.eps) or self.eps < 0:
            raise InvalidArgumentError(f"eps must be a finite number >= 0, got {self.eps!r}")
        object.__setattr__(self, "eps", float(self.eps))
        object.__setattr__(self, "norm", parse_norm(self.norm))
        if self.low is not None and self.high is not None and self.low > self.high:
            raise InvalidArgumentError(f"box low {self.low} > high {self.high}")

    def describe(self) -> str:
        return f"l_{self.norm} ball, eps={self.eps:g}"

    def clip(self, x_hat: torch.Tensor) -> torch.Tensor:
        """Clip to the box [low, high] (no-op without one)."""
        if self.low is None and self.high is None:
            return x_hat
        return x_hat.clamp(self.low, self.high)

    def project(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The closest point of B_eps(x) to x_hat (per sample; the leading dimension is the batch),
        then clipped to the box. For l_inf the box-clipped point is still the exact projection
        onto the intersection (both are coordinate-wise); for l_2 it stays inside the ball."""
        delta = x_hat - x
        if self.norm == "inf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            norms = _per_sample_norm(delta)
            delta = delta * torch.clamp(self.eps / norms.clamp_min(1e-12), max=1.0)
        return self.clip(x + delta)

    def sample(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A point drawn uniformly from B_eps(x) (then box-clipped)."""
        if self.norm == "inf":
            u = torch.rand(x.shape, generator=generator, dtype=x.dtype)
            return self.clip(x + self.eps * (2.0 * u - 1.0))
        # uniform in the l_2 ball: Gaussian direction, radius eps * U^(1/d)
        direction = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        direction = direction / _per_sample_norm(direction).clamp_min(1e-12)
        dim = x[0].numel() if x.ndim > 1 else x.numel()
        radius_shape = (x.shape[0],) + (1,) * (x.ndim - 1) if x.ndim > 1 else ()
        radius = self.eps * torch.rand(radius_shape, generator=generator, dtype=x.dtype) ** (1.0 / dim)
        return self.clip(x + radius * direction)

    def contains(self, x_hat: torch.Tensor, x: torch.Tensor, tol: float = 1e-5) -> torch.Tensor:
        """Per-sample bool: is x_hat inside the ball (up to ``tol``)?"""
        delta = (x_hat - x).reshape(x.shape[0], -1) if x.ndim > 1 else (x_hat - x).reshape(1, -1)
        size = delta.abs().amax(-1) if self.norm == "inf" else delta.norm(dim=-1)
        return size <= self.eps + tol

    def bounds(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinate-wise lower/upper bounds of the ball (the l_inf box; for l_2 the bounding
        box), for interval bound propagation."""
        low, high = x - self.eps, x + self.eps
        return self.clip(low), self.clip(high)


def _per_sample_norm(delta: torch.Tensor) -> torch.Tensor:
    """l_2 norm over all but the batch dimension, shaped to broadcast against ``delta``."""
    if delta.ndim <= 1:
        return delta.norm()
    return delta.reshape(delta.shape[0], -1).norm(dim=-1).reshape(-1, *([1] * (delta.ndim - 1)))
