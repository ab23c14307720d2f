"""Inner objectives of the threat model with their gradients written out: the divergence
KL(pi(.|s) || pi(.|s_hat)) that MAD attacks and SA-PPO / BARPO defend, and the critic's value the
critic attack minimises. For our :class:`~robustrl.policies.actor_critic.ActorCritic` (tanh/ReLU
MLPs, Gaussian with state-independent std) each carries ``value_and_grad``, backprop through a
numpy snapshot of the network (no autograd graph, no distribution objects), which the solvers of
:mod:`robustrl.threat.solvers` use instead of autograd: the same values and gradients up to float
rounding (tests/test_speed.py), several times faster on the small batches of an attack and on a
training batch of 2048 rows (issue 16; benchmarks/results/robust_cost_fast.md)."""

from __future__ import annotations

import numpy as np
import torch

from robustrl.policies.actor_critic import ActorCritic, NumpyMLP


def action_divergence(policy, obs: torch.Tensor, obs_hat: torch.Tensor) -> torch.Tensor:
    """KL(pi(.|s) || pi(.|s_hat)) per sample. For our Gaussian policies (state-independent std)
    this is sum_i (mu_i(s) - mu_i(s_hat))^2 / (2 sigma_i^2): the std-normalised squared mean
    difference SA-PPO's code uses; for anything else, torch's closed-form KL."""
    with torch.no_grad():
        clean = policy.distribution(obs)
    perturbed = policy.distribution(obs_hat)
    kl = torch.distributions.kl_divergence(clean, perturbed)
    return kl.sum(-1) if kl.ndim > 1 else kl


class GradientObjective:
    """An inner objective with its gradient written out (see :mod:`robustrl.threat.solvers`)."""

    def __init__(self, function, value_and_grad):
        self.function, self.value_and_grad = function, value_and_grad

    def __call__(self, obs_hat: torch.Tensor) -> torch.Tensor:
        return self.function(obs_hat)


def plain_mlp(policy, network: str) -> NumpyMLP | None:
    """A numpy snapshot of our ActorCritic's ``actor`` / ``critic`` (not a subclass that changed
    its distribution or value), else None."""
    return NumpyMLP.of(getattr(policy, network)) if _plain_actor_critic(policy) else None


def _plain_actor_critic(policy) -> bool:
    """Our ActorCritic itself, or a subclass that kept its distribution, value and log-probs."""
    if not isinstance(policy, ActorCritic):
        return False
    return not any(
        getattr(type(policy), name) is not getattr(ActorCritic, name)
        for name in ("distribution", "value", "log_prob_and_entropy")
    )


def divergence_objective(policy, obs: torch.Tensor, scale: float = 1.0):
    """``obs_hat -> scale * KL(pi(.|obs) || pi(.|obs_hat))`` per sample, for the inner solver
    (``scale=2``: :func:`robustrl.algos.objectives.common.gaussian_mean_divergence`, the form
    SA-PPO and BARPO regularise).

    For our Gaussian :class:`ActorCritic` (state-independent std) this is the closed form
    sum_i (mu_i(s) - mu_i(s_hat))^2 / (2 sigma_i^2), with mu(s) computed once per batch and the
    gradient by hand-written backprop through a numpy snapshot of the actor (no distribution
    objects, no autograd graph): the same values and gradients as :func:`action_divergence` up to
    float rounding (tested), at a fraction of the per-step cost (issue 16: MAD ran at 0.18x clean
    evaluation). Anything else: :func:`action_divergence` with autograd.
    """
    mlp = plain_mlp(policy, "actor") if getattr(policy, "continuous", False) else None
    if mlp is None:
        return lambda obs_hat: scale * action_divergence(policy, obs, obs_hat)
    with torch.no_grad():
        clean_mean = policy.actor(obs)
        half_precision = 0.5 * scale * torch.exp(-2.0 * policy.log_std.detach())  # scale / (2 sigma^2)
    clean, weight = clean_mean.numpy(), half_precision.numpy()

    def loss(mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        difference = mean - clean
        return (difference * difference * weight).sum(-1), 2.0 * difference * weight

    def value_and_grad(obs_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, grad = mlp.value_and_input_grad(obs_hat.numpy(), loss)
        return torch.from_numpy(values), torch.from_numpy(grad)

    return GradientObjective(
        lambda obs_hat: ((policy.actor(obs_hat) - clean_mean).pow(2) * half_precision).sum(-1), value_and_grad
    )


def value_objective(policy):
    """``obs_hat -> V(obs_hat)``, with a hand-written gradient for our ActorCritic's critic."""
    mlp = plain_mlp(policy, "critic")
    if mlp is None:
        return policy.value

    def loss(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return value[:, 0], np.ones_like(value)

    def value_and_grad(obs_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, grad = mlp.value_and_input_grad(obs_hat.numpy(), loss)
        return torch.from_numpy(values), torch.from_numpy(grad)

    return GradientObjective(policy.value, value_and_grad)


def clipped_surrogate_objective(policy, actions: torch.Tensor, old_log_probs: torch.Tensor,
                                advantages: torch.Tensor, clip_eps: float, function):  # fmt: skip
    """``function`` (``obs_hat -> g(pi(a|obs_hat) / pi_old(a|s), A)`` per sample, PPO's clipped
    surrogate: the inner objective ARPO minimises) with its gradient written out for our Gaussian
    ActorCritic; ``function`` itself otherwise. With r = exp(log pi(a|s_hat) - log pi_old) and
    log pi(a|s_hat) = -1/2 ||(a - mu(s_hat)) / sigma||^2 + const:

        d g / d mu = A * [r A <= clip(r) A] * r * (a - mu) / sigma^2

    (the min's derivative goes to the unclipped branch where it is the smaller; where the clipped
    one is strictly smaller, r is outside the clip range and its derivative is 0)."""
    mlp = plain_mlp(policy, "actor") if getattr(policy, "continuous", False) else None
    if mlp is None:
        return function
    with torch.no_grad():
        log_std = policy.log_std.detach()
        constant = float(-(log_std.sum() + 0.5 * log_std.numel() * np.log(2.0 * np.pi)))
    precision = torch.exp(-2.0 * log_std).numpy()
    actions_, old, advantage = actions.numpy(), old_log_probs.numpy(), advantages.numpy()
    low, high = 1.0 - clip_eps, 1.0 + clip_eps

    def loss(mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        difference = actions_ - mean
        log_prob = -0.5 * (difference * difference * precision).sum(-1) + constant
        ratio = np.exp(log_prob - old)
        unclipped, clipped = ratio * advantage, np.clip(ratio, low, high) * advantage
        d_ratio = advantage * (unclipped <= clipped)
        grad = (d_ratio * ratio)[:, None] * difference * precision
        return np.minimum(unclipped, clipped), grad.astype(np.float32)

    def value_and_grad(obs_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, grad = mlp.value_and_input_grad(obs_hat.numpy(), loss)
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)), torch.from_numpy(grad)

    return GradientObjective(function, value_and_grad)


def direction_objective(policy, obs: torch.Tensor, direction: torch.Tensor, weight: float, function, mlp=None):
    """``function`` (``obs_hat -> cos(mu(obs_hat) - mu(obs), d) + weight * ||mu(obs_hat) - mu(obs)||``
    per sample: PA-AD's actor objective) with its gradient written out for our Gaussian
    ActorCritic (``mlp``: a :class:`NumpyMLP` of its actor, taken once for a frozen victim); with
    c = mu(obs_hat) - mu(obs):

        d/dc = d / (|c| |d|) - cos(c, d) c / |c|^2 + weight * c / |c|

    ``function`` itself for any other policy."""
    mlp = mlp if mlp is not None else (plain_mlp(policy, "actor") if getattr(policy, "continuous", False) else None)
    if mlp is None:
        return function
    clean = mlp(obs.detach().numpy())  # the numpy forward: ~4x cheaper than the modules on ~8 rows
    d = direction.detach().numpy().astype(np.float32)
    d_norm = np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-8)

    def loss(mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        change = mean - clean
        c_norm = np.maximum(np.linalg.norm(change, axis=-1, keepdims=True), 1e-8)
        cosine = (change * d).sum(-1, keepdims=True) / (c_norm * d_norm)
        grad = d / (c_norm * d_norm) - cosine * change / (c_norm * c_norm) + weight * change / c_norm
        return (cosine + weight * c_norm)[:, 0], grad.astype(np.float32)

    def value_and_grad(obs_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, grad = mlp.value_and_input_grad(obs_hat.numpy(), loss)
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)), torch.from_numpy(grad)

    return GradientObjective(function, value_and_grad)


def torch_mlp_input_grad(network: torch.nn.Module, x: torch.Tensor, output_grad) -> torch.Tensor | None:
    """d sum(loss) / d x for a Linear/Tanh/ReLU ``nn.Sequential``, by backprop written out in torch
    ops on its (detached) weights: :meth:`NumpyMLP.value_and_input_grad` for compiled graphs
    (inside torch.func's parameter gradient, a nested autograd call would cost a second graph).
    ``output_grad(output) -> d sum(loss) / d output``. None for any other module."""
    layers = _plain_layers(network)
    if layers is None:
        return None
    outputs = []
    for layer in layers:
        if type(layer) is torch.nn.Linear:
            bias = None if layer.bias is None else layer.bias.detach()
            x = torch.nn.functional.linear(x, layer.weight.detach(), bias)
        elif type(layer) is torch.nn.Tanh:
            x = torch.tanh(x)
        else:
            x = torch.relu(x)
        outputs.append(x)
    grad = output_grad(x)
    for layer, output in zip(reversed(layers), reversed(outputs)):
        if type(layer) is torch.nn.Linear:
            grad = grad @ layer.weight.detach()
        elif type(layer) is torch.nn.Tanh:
            grad = grad * (1.0 - output * output)
        else:
            grad = grad * (output > 0)
    return grad


def has_written_out_actor(policy) -> bool:
    """Our Gaussian ActorCritic with a Linear/Tanh/ReLU actor: :func:`divergence_input_grad` works."""
    return bool(getattr(policy, "continuous", False)) and _plain_actor_critic(policy) and _plain_layers(policy.actor) is not None


def _plain_layers(network: torch.nn.Module) -> list[torch.nn.Module] | None:
    """The layers of a Linear/Tanh/ReLU ``nn.Sequential`` (or one such layer), else None: the
    networks whose input gradient :func:`torch_mlp_input_grad` writes out (as NumpyMLP.of)."""
    layers = list(network.children()) if isinstance(network, torch.nn.Sequential) else [network]
    return layers if all(type(layer) in (torch.nn.Linear, torch.nn.Tanh, torch.nn.ReLU) for layer in layers) else None


def divergence_input_grad(policy, obs: torch.Tensor, scale: float = 2.0):
    """``obs_hat -> d sum(scale * KL(pi(.|obs) || pi(.|obs_hat))) / d obs_hat`` in torch ops for our
    Gaussian ActorCritic (the gradient :func:`divergence_objective` computes in numpy), for a
    solve inside a compiled graph; None for other policies."""
    if not has_written_out_actor(policy):
        return None
    clean_mean = policy.actor(obs).detach()
    weight = scale * torch.exp(-2.0 * policy.log_std.detach())  # 2 * scale / (2 sigma^2)

    def input_grad(obs_hat: torch.Tensor) -> torch.Tensor:
        return torch_mlp_input_grad(policy.actor, obs_hat, lambda mean: (mean - clean_mean) * weight)

    return input_grad
