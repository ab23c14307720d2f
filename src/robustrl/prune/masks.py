"""Which weights are pruned, and how a target sparsity is spread over layers.

Masks are plain 0/1 float tensors of the weights' shapes, owned by the pruning callback and
multiplied into the weights by PPO after every optimiser step (``robustrl.algos.hooks``). We do not
use ``torch.nn.utils.prune``: it reparametrises each weight as ``weight_orig * weight_mask``,
which changes the state-dict keys (checkpoints would no longer load into a plain
:class:`~robustrl.policies.actor_critic.ActorCritic`), breaks ``copy.deepcopy`` of a pruned module
and runs a forward pre-hook on every call, which ``torch.func.functional_call`` in the compiled
step does not see.

Only weight matrices are pruned: biases and the Gaussian log-std never are (the paper prunes
weights; Theorem 1 concerns the weight matrices alone).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from robustrl.errors import InvalidArgumentError


def prunable_weights(policy: nn.Module, scope: str = "both") -> dict[str, nn.Parameter]:
    """Weight matrices of the actor and/or critic MLP (``scope``: both, actor or critic), by
    parameter name, in network order."""
    networks = {"both": ("actor.", "critic."), "actor": ("actor.",), "critic": ("critic.",)}
    if scope not in networks:
        raise InvalidArgumentError(f"prune scope must be both, actor or critic, got {scope!r}")
    return {name: p for name, p in policy.named_parameters() if p.ndim == 2 and name.startswith(networks[scope])}


def erk_densities(shapes: list[tuple[int, ...]], density: float) -> list[float]:
    """Erdos-Renyi-Kernel allocation (Evci et al. 2020, RigL, Sec. 3; Mocanu et al. 2018): layer l
    keeps a fraction proportional to (n_in + n_out) / (n_in * n_out) of its weights, scaled so that
    the kept weights total ``density`` of all of them. Layers whose share would exceed 1 stay dense
    and the scale is solved again for the others (RigL's ``get_mask_random`` loop)."""
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density}")
    sizes = [math.prod(shape) for shape in shapes]
    raw = [sum(shape) / math.prod(shape) for shape in shapes]
    total = sum(sizes)
    dense: set[int] = set()
    while True:
        budget = density * total - sum(sizes[i] for i in dense)
        weight = sum(raw[i] * sizes[i] for i in range(len(shapes)) if i not in dense)
        scale = budget / weight if weight > 0 else 0.0
        over = {i for i in range(len(shapes)) if i not in dense and raw[i] * scale > 1.0}
        if not over:
            return [1.0 if i in dense else raw[i] * scale for i in range(len(shapes))]
        dense |= over


def kept_counts(shapes: list[tuple[int, ...]], sparsity: float, allocation: str) -> list[int] | None:
    """Weights to keep per layer for a target ``sparsity`` of all of them together: ``layer``
    keeps round((1 - s) n_l) in each, ``erk`` follows :func:`erk_densities`; ``global`` returns
    None (one threshold over all layers, see :func:`masks_from_scores`)."""
    if allocation == "global":
        return None
    sizes = [math.prod(shape) for shape in shapes]
    if allocation == "layer":
        ideal = [(1.0 - sparsity) * n for n in sizes]
    elif allocation == "erk":
        ideal = [d * n for d, n in zip(erk_densities(shapes, 1.0 - sparsity), sizes)]
    else:
        raise InvalidArgumentError(f"allocation must be layer, global or erk, got {allocation!r}")
    return _apportion(ideal, sizes, round((1.0 - sparsity) * sum(sizes)))


def _apportion(ideal: list[float], sizes: list[int], total: int) -> list[int]:
    """Whole counts near ``ideal`` (each at most its layer's size) summing to exactly ``total``
    (largest remainders first), so the network's sparsity is the target up to one weight."""
    counts = [min(n, math.floor(x + 1e-9)) for x, n in zip(ideal, sizes)]
    order = sorted(range(len(sizes)), key=lambda i: (-(ideal[i] - counts[i]), i))
    missing = total - sum(counts)
    while missing > 0:
        progressed = False
        for i in order:
            if missing and counts[i] < sizes[i]:
                counts[i] += 1
                missing -= 1
                progressed = True
        if not progressed:
            break
    return counts


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """1 at the ``k`` largest scores, 0 elsewhere; among equal scores at the threshold the first in
    memory order win (what a stable descending sort would keep). O(n): a k-th value, no sort (a
    sort of each layer at every mask update cost 10-15% of a compiled update)."""
    flat = scores.flatten()
    n = flat.numel()
    if k <= 0:
        return torch.zeros_like(scores)
    if k >= n:
        return torch.ones_like(scores)
    threshold = torch.kthvalue(flat, n - k + 1).values  # the k-th largest
    above = flat > threshold
    ties = flat == threshold
    take = ties & (torch.cumsum(ties, 0) <= k - int(above.sum()))
    return (above | take).to(scores.dtype).view_as(scores)


def masks_from_scores(scores: dict[str, torch.Tensor], sparsity: float, allocation: str) -> dict[str, torch.Tensor]:
    """Keep the highest-scoring weights: per layer (``layer``, ``erk``) or over all layers at once
    (``global``), so that a fraction ``sparsity`` of all the weights is zero."""
    names = list(scores)
    counts = kept_counts([tuple(scores[n].shape) for n in names], sparsity, allocation)
    if counts is not None:
        return {n: top_k_mask(scores[n], k) for n, k in zip(names, counts)}
    flat = torch.cat([scores[n].flatten() for n in names])
    keep = top_k_mask(flat, round((1.0 - sparsity) * flat.numel()))
    masks, start = {}, 0
    for n in names:
        size = scores[n].numel()
        masks[n] = keep[start : start + size].view_as(scores[n]).clone()
        start += size
    return masks


def sparsity_of(masks: dict[str, torch.Tensor]) -> float:
    """Fraction of zeros over all the masks together."""
    total = sum(m.numel() for m in masks.values())
    return float(sum(float((m == 0).sum()) for m in masks.values()) / max(total, 1))


def layer_sparsity(masks: dict[str, torch.Tensor]) -> dict[str, float]:
    """Fraction of zeros in each mask."""
    return {name: float((m == 0).float().mean()) for name, m in masks.items()}
