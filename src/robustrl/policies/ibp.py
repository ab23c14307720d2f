"""Interval bound propagation (IBP; Gowal et al. 2018) through our MLPs.

Used by robust Sarsa (bounds of Q over a state ball) and by the IBP-based defences (SA-PPO's
convex relaxation, WocaR, RADIAL). Written here rather than taken from auto_LiRPA: the only
auto-LiRPA on PyPI (0.3, 2022) pins torch < 1.13 and does not install next to our torch 2.13, and
plain IBP through Linear + monotone activations is a dozen lines.
"""

from __future__ import annotations

import torch
from torch import nn

_MONOTONE = (nn.Tanh, nn.ReLU, nn.Sigmoid, nn.Identity, nn.ELU, nn.LeakyReLU, nn.Softplus)


def interval_bounds(network: nn.Module, lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Elementwise bounds of ``network(x)`` over the box lower <= x <= upper.

    Linear layers map the box's centre exactly and its radius through |W| (the tightest box
    containing the image); monotone activations map the bounds directly. Differentiable, so the
    bound width can be used as a training loss.
    """
    layers = list(network) if isinstance(network, nn.Sequential) else [network]
    for layer in layers:
        if isinstance(layer, nn.Linear):
            center, radius = (upper + lower) / 2, (upper - lower) / 2
            center = layer(center)
            radius = radius @ layer.weight.abs().T
            lower, upper = center - radius, center + radius
        elif isinstance(layer, _MONOTONE):
            lower, upper = layer(lower), layer(upper)
        elif isinstance(layer, nn.Sequential):
            lower, upper = interval_bounds(layer, lower, upper)
        else:
            raise TypeError(f"interval bounds: unsupported layer {type(layer).__name__} (Linear and monotone activations only)")
    return lower, upper
