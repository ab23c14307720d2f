"""Batched first-order solvers for max (or min) over x_hat in B_eps(x) of f(x_hat).

Shared by the attacks (evaluation) and the robust training objectives (defence). Each solver takes
``objective(x_hat) -> per-sample values`` (shape (batch,)) and knows nothing about RL. Gradients
are taken with ``torch.autograd.grad`` with respect to x_hat only, so no parameter gradients are
accumulated in whatever network the objective calls: a defence can call a solver in the middle of
its loss computation safely. An objective that knows its gradient in closed form may carry it as
an attribute ``value_and_grad(x_hat) -> (values, d sum(values) / d x_hat)``; the solvers then use it
instead of autograd (same iterates up to float rounding).

- :func:`pgd`: projected gradient ascent/descent (Madry et al. 2018); sign steps for l_inf,
  normalised-gradient steps for l_2; optional uniform random start; returns the best iterate per
  sample (never worse than the last one).
- :func:`fgsm`: one step of size eps (Goodfellow et al. 2015).
- :func:`sgld`: stochastic gradient Langevin steps with temperature ``temperature`` (beta), as
  SA-PPO's ``get_state_kl_bound_sgld`` (Zhang et al. 2020, reference code): start at a random
  corner one step from x, then sign(grad + noise) steps with noise scale sqrt(2 * step * beta)
  decaying as 1/(k+2). The random start matters: objectives such as KL(pi(s) || pi(s_hat)) have
  zero gradient at s_hat = s.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from robustrl.errors import InvalidArgumentError
from robustrl.threat.ball import Ball
from robustrl.threat.norms import parse_norm

# objective(x_hat) -> one value per sample, shape (batch,): the inner problem's objective (not the
# robust-training objectives of robustrl.algos.objectives, which build PPO loss terms)
InnerObjective = Callable[[torch.Tensor], torch.Tensor]

DEFAULT_STEPS = 10
DEFAULT_TEMPERATURE = 1e-5  # SGLD beta of SA-PPO / BARPO


def _check(steps: int, step_size: float | None, ball: Ball) -> float:
    if not isinstance(steps, int) or steps < 1:
        raise InvalidArgumentError(f"solver steps must be a positive integer, got {steps!r}")
    step = ball.eps / steps if step_size is None else float(step_size)
    if not math.isfinite(step) or step < 0:
        raise InvalidArgumentError(f"step size must be a finite number >= 0, got {step_size!r}")
    return step


def _direction(grad: torch.Tensor, norm: str, rule: str) -> torch.Tensor:
    """Steepest-ascent direction of unit size in the ball's norm (sign for l_inf)."""
    if rule not in ("auto", "sign", "normalized"):
        raise InvalidArgumentError(f"step_rule must be auto, sign or normalized, got {rule!r}")
    if rule == "sign" or (rule == "auto" and norm == "inf"):
        return grad.sign()
    flat = grad.reshape(grad.shape[0], -1) if grad.ndim > 1 else grad.reshape(1, -1)
    scale = flat.norm(dim=-1).clamp_min(1e-12)
    return grad / (scale.reshape(-1, *([1] * (grad.ndim - 1))) if grad.ndim > 1 else scale)


def _values_and_grad(objective: InnerObjective, x_hat: torch.Tensor, sign: float) -> tuple[torch.Tensor, torch.Tensor]:
    # An objective may carry its own ``value_and_grad(x_hat) -> (values, d sum(values) / d x_hat)``
    # (the attacks' hand-written backprop through a small MLP); else autograd.
    value_and_grad = getattr(objective, "value_and_grad", None)
    if value_and_grad is not None:
        values, grad = value_and_grad(x_hat.detach())
        return sign * values, sign * grad
    x_hat = x_hat.detach().requires_grad_(True)
    with torch.enable_grad():
        values = sign * objective(x_hat)
        if values.shape != x_hat.shape[:1]:
            raise InvalidArgumentError(
                f"solver objective must return one value per sample, shape {tuple(x_hat.shape[:1])}, got {tuple(values.shape)}"
            )
        (grad,) = torch.autograd.grad(values.sum(), x_hat)
    return values.detach(), grad


def pgd(
    objective: InnerObjective,
    x: torch.Tensor,
    ball: Ball,
    *,
    steps: int = DEFAULT_STEPS,
    step_size: float | None = None,
    random_start: bool = True,
    maximize: bool = True,
    step_rule: str = "auto",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient steps on ``objective`` over B_eps(x); default ``steps`` of eps/steps.

    ``step_rule``: ``"sign"`` (l_inf steepest ascent), ``"normalized"`` (gradient / ||gradient||_2)
    or ``"auto"`` (sign for l_inf, normalised for l_2). Returns the best point found per sample.
    """
    step = _check(steps, step_size, ball)
    if step_rule not in ("auto", "sign", "normalized"):
        raise InvalidArgumentError(f"step_rule must be auto, sign or normalized, got {step_rule!r}")
    x = x.detach()
    if ball.eps == 0:
        return x.clone()
    sign = 1.0 if maximize else -1.0
    x_hat = ball.sample(x, generator) if random_start else ball.clip(x.clone())
    best, best_values = x_hat.clone(), torch.full(x.shape[:1], -math.inf, dtype=x.dtype)
    for _ in range(steps):
        values, grad = _values_and_grad(objective, x_hat, sign)
        _keep_better(best, best_values, x_hat, values)
        x_hat = ball.project(x_hat + step * _direction(grad, ball.norm, step_rule), x)
    with torch.no_grad():
        _keep_better(best, best_values, x_hat, sign * objective(x_hat))
    return best


def fgsm(
    objective: InnerObjective,
    x: torch.Tensor,
    ball: Ball,
    *,
    maximize: bool = True,
    step_rule: str = "auto",
    generator: torch.Generator | None = None,
    random_start: bool = False,
) -> torch.Tensor:
    """One gradient step of size eps from x (or from a random point of the ball), projected."""
    x = x.detach()
    if ball.eps == 0:
        return x.clone()
    start = ball.sample(x, generator) if random_start else x
    _, grad = _values_and_grad(objective, start, 1.0 if maximize else -1.0)
    return ball.project(start + ball.eps * _direction(grad, ball.norm, step_rule), x)


def sgld(
    objective: InnerObjective,
    x: torch.Tensor,
    ball: Ball,
    *,
    steps: int = DEFAULT_STEPS,
    step_size: float | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    maximize: bool = True,
    step_rule: str = "auto",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Langevin steps (SA-PPO reference, ``get_state_kl_bound_sgld``) over B_eps(x).

    x_0 = x + step * sign(noise); x_{k+1} = Proj(x_k + step * dir(grad + sigma_k * noise)) with
    sigma_k = sqrt(2 * step * temperature) / (k + 2). Returns the last iterate, as the reference.
    """
    step = _check(steps, step_size, ball)
    if not math.isfinite(temperature) or temperature < 0:
        raise InvalidArgumentError(f"SGLD temperature must be >= 0, got {temperature!r}")
    x = x.detach()
    if ball.eps == 0:
        return x.clone()
    sign = 1.0 if maximize else -1.0
    noise_scale = math.sqrt(2.0 * step * temperature)
    start_noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    x_hat = ball.project(x + step * _direction(start_noise, ball.norm, step_rule), x)
    for k in range(steps):
        _, grad = _values_and_grad(objective, x_hat, sign)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype) * (noise_scale / (k + 2))
        x_hat = ball.project(x_hat + step * _direction(grad + noise, ball.norm, step_rule), x)
    return x_hat.detach()


def _keep_better(best: torch.Tensor, best_values: torch.Tensor, candidate: torch.Tensor, values: torch.Tensor) -> None:
    better = values > best_values
    best[better] = candidate.detach()[better]
    best_values[better] = values[better]


def draw_sgld_noise(shape: torch.Size, steps: int, generator: torch.Generator | None, dtype: torch.dtype) -> torch.Tensor:
    """The Gaussian draws :func:`sgld` makes on a batch of ``shape``, in its order (start, then
    one per step), stacked: (steps + 1, *shape). With :func:`sgld_with_noise` they give the same
    iterates, so a solve can move inside a compiled graph while its random numbers stay outside."""
    return torch.stack([torch.randn(shape, generator=generator, dtype=dtype) for _ in range(steps + 1)])


def sgld_with_noise(
    input_grad: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    eps: torch.Tensor,
    noise: torch.Tensor,
    *,
    norm: str = "inf",
    step_size: float | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
) -> torch.Tensor:
    """:func:`sgld` (maximising, ``step_rule="auto"``, no box) as pure tensor operations, for
    compiled graphs (SA-PPO's per-minibatch solve inside ``ppo.compile``'s step): ``eps`` is a
    per-sample column (B,) instead of a float (the eps schedule moves every iteration; a float
    would be baked into the graph), ``noise`` comes from :func:`draw_sgld_noise`, and
    ``input_grad(x_hat) -> d sum(objective) / d x_hat`` is written out by the caller (no autograd
    inside a graph that torch.func differentiates). The same iterates as :func:`sgld` with those
    draws, up to float rounding (tests/test_threat.py)."""
    norm = parse_norm(norm)
    steps = noise.shape[0] - 1
    radius = eps.reshape(-1, *([1] * (x.ndim - 1)))
    step = radius / steps if step_size is None else torch.full_like(radius, float(step_size))
    noise_scale = torch.sqrt(2.0 * step * temperature)

    def direction(grad: torch.Tensor) -> torch.Tensor:
        if norm == "inf":
            return grad.sign()
        return grad / grad.reshape(grad.shape[0], -1).norm(dim=-1).clamp_min(1e-12).reshape(radius.shape)

    def project(x_hat: torch.Tensor) -> torch.Tensor:
        delta = x_hat - x
        if norm == "inf":
            return x + torch.maximum(torch.minimum(delta, radius), -radius)
        length = delta.reshape(delta.shape[0], -1).norm(dim=-1).reshape(radius.shape)
        return x + delta * torch.clamp(radius / length.clamp_min(1e-12), max=1.0)

    x = x.detach()
    x_hat = project(x + step * direction(noise[0]))
    for k in range(steps):
        grad = input_grad(x_hat)
        x_hat = project(x_hat + step * direction(grad + noise[k + 1] * (noise_scale / (k + 2))))
    return x_hat.detach()
