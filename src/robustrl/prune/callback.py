"""Pruning during training as one :class:`~robustrl.algos.hooks.Callback` ("Pruning cannot hurt
robustness", Algorithm 1 and Sec. 4.4).

- Masks (0/1 float tensors) on the weight matrices of actor and/or critic are the callback's
  ``parameter_masks()``: PPO multiplies them in after every optimiser step, inside the compiled
  step too. They are its ``state_tensors()``: a resumed run continues with the same masks.
- ``on_step`` runs every ``prune_every`` optimiser steps (micro-pruning): it reads the cubic
  schedule at the current step and, if the target sparsity rose, recomputes the masks *in place*
  (``mask.copy_``: the compiled step holds these tensors) from the strategy's scores.
- Strategies (scores; the highest are kept):
    random         fixed random scores drawn once from the run's seed (so successive masks nest),
                   spread over layers by ERK (Evci et al. 2020);
    magnitude      |w| (Han et al. 2015);
    magnitude-ste  |w_dense| of a dense shadow trained straight-through: the forward pass and the
                   rollouts use w_dense * mask, the gradient at the masked weights updates every
                   dense weight (``dense_parameters()``), and pruned weights come back when their
                   dense magnitude overtakes a kept one;
    saliency       |w * dL/dw|, first-order Taylor (Molchanov et al. 2017), with dL/dw Adam's first
                   moment: the exponential average (beta1 = 0.9, ~10 minibatches) of the update's
                   own gradients, the same in the eager and the compiled step and free to read.
- ``on_iteration`` logs the sparsity, L~ of the actor, the per-state TV bound c L~ eps and the
  certified bound alpha c L~ eps of Theorem 1 (``robustrl.prune.lipschitz``) to progress.csv.
"""

from __future__ import annotations

from typing import Any

import torch

from robustrl.algos.hooks import Callback, Clock
from robustrl.config import PruneConfig
from robustrl.errors import InvalidArgumentError
from robustrl.prune.lipschitz import certified_bound, r_max_for
from robustrl.prune.masks import layer_sparsity, masks_from_scores, prunable_weights, sparsity_of
from robustrl.prune.schedule import cubic_sparsity, schedule_steps

DEFAULT_ALLOCATION = {"random": "erk", "magnitude": "layer", "magnitude-ste": "layer", "saliency": "layer"}


def _key(name: str) -> str:
    return name.replace(".", "_")


class PruneCallback(Callback):
    """Masks, schedule and strategy of one run; built from :class:`~robustrl.config.PruneConfig`.

    Args:
        config: the pruning settings (strategy, final sparsity, prune_every, burn_in, end, scope,
            allocation, r_max).
        seed: seeds the random strategy's scores.
        eps, norm: the radius and ball of the logged certified bound (default: the run's
            ``robust`` eps and norm, i.e. the papers' eps for the env).
    """

    name = "prune"

    def __init__(self, config: PruneConfig, seed: int = 0, eps: float | None = None, norm: str = "inf"):
        config.validate()
        if config.strategy == "none":
            raise InvalidArgumentError("PruneCallback needs a pruning strategy, got 'none'")
        self.config = config
        self.step_interval = config.prune_every
        self.allocation = config.allocation or DEFAULT_ALLOCATION[config.strategy]
        self.seed, self.eps, self.norm = seed, eps, norm
        self.weights: dict[str, torch.nn.Parameter] = {}
        self.masks: dict[str, torch.Tensor] = {}
        self.dense: dict[str, torch.Tensor] = {}
        self.current = 0.0  # sparsity the masks were last set to (the schedule's target then)
        self.trainer: Any = None

    # ---- set-up -----------------------------------------------------------------------------------
    def bind(self, trainer: Any) -> None:
        self.trainer = trainer
        config = self.config
        if config.initial_checkpoint is not None:
            self._load_initial(trainer, config.initial_checkpoint)
        self.weights = prunable_weights(trainer.policy, config.scope)
        self.masks = {n: torch.ones_like(w, requires_grad=False) for n, w in self.weights.items()}
        if config.strategy == "magnitude-ste":
            self.dense = {n: w.detach().clone() for n, w in self.weights.items()}
        if config.strategy == "random":
            generator = torch.Generator().manual_seed(self.seed)
            self.random_scores = {n: torch.rand(w.shape, generator=generator) for n, w in self.weights.items()}
        run = trainer.config
        steps_per_iteration = max(run.ppo.policy_epochs, run.ppo.value_epochs) * run.ppo.num_minibatches
        self.total_steps = run.num_iterations * steps_per_iteration
        self.start, self.end = schedule_steps(self.total_steps, config.burn_in, config.end)
        if self.eps is None:
            self.eps, self.norm = run.robust.target_eps(run.env_id), run.robust.norm
        known = r_max_for(run.env_id)
        self.r_max = config.r_max if config.r_max is not None else (known[0] if known else None)
        self.gamma = run.ppo.gamma
        if self.start == self.end == 0 and config.strategy != "saliency":
            self.prune_to(config.sparsity)  # one-shot at step 0 (saliency waits for gradients)

    @staticmethod
    def _load_initial(trainer: Any, path: str) -> None:
        from robustrl.policies.checkpoint import load_policy

        source = load_policy(path, trainer.config.env_id)
        if source.architecture() != trainer.policy.architecture():
            raise InvalidArgumentError(
                f"{path}: its architecture {source.architecture()} differs from the run's {trainer.policy.architecture()}"
            )
        trainer.policy.load_state_dict(source.state_dict())
        trainer.policy.normalizer.load_state_dict(source.normalizer.state_dict())

    # ---- the schedule and the strategies ----------------------------------------------------------
    def target(self, optimizer_step: int) -> float:
        """The cubic schedule's sparsity at ``optimizer_step``."""
        return cubic_sparsity(optimizer_step, self.start, self.end, self.config.sparsity)

    def scores(self) -> dict[str, torch.Tensor]:
        strategy = self.config.strategy
        if strategy == "random":
            return self.random_scores
        if strategy == "magnitude":
            return {n: w.detach().abs() for n, w in self.weights.items()}
        if strategy == "magnitude-ste":
            return {n: d.abs() for n, d in self.dense.items()}
        # saliency: |w * g| with g Adam's first moment (an average of recent gradients)
        state = self.trainer.optimizer.state
        scores = {}
        for n, w in self.weights.items():
            moment = state.get(w, {}).get("exp_avg")
            if moment is None:
                raise InvalidArgumentError(
                    "saliency pruning needs gradients: it scores |w * dL/dw| with the update's gradients, so it "
                    "prunes after optimiser steps (one-shot saliency needs --finetune)"
                )
            scores[n] = (w.detach() * moment).abs()
        return scores

    @torch.no_grad()
    def prune_to(self, sparsity: float) -> None:
        """Recompute the masks for ``sparsity`` and apply them now, in place."""
        new = masks_from_scores(self.scores(), sparsity, self.allocation)
        for n, w in self.weights.items():
            self.masks[n].copy_(new[n])
            if self.dense:
                w.copy_(self.dense[n] * self.masks[n])  # the STE invariant: w = dense * mask
            else:
                w.mul_(self.masks[n])
        self.current = sparsity

    # ---- the Callback face ----------------------------------------------------------------------
    def on_step(self, clock: Clock) -> None:
        target = self.target(clock.optimizer_step)
        # magnitude-STE re-chooses at every update once pruning has begun (weights may come back);
        # the others only prune further when the schedule's target rises
        if target > self.current or (self.dense and target > 0):
            self.prune_to(target)

    def parameter_masks(self) -> dict[str, torch.Tensor]:
        return self.masks

    def dense_parameters(self) -> dict[str, torch.Tensor]:
        return self.dense

    def on_iteration(self, stats: Any, clock: Clock) -> None:
        if clock.iteration >= clock.num_iterations and self.current < self.target(self.total_steps):
            self.prune_to(self.target(self.total_steps))  # the last update may fall between prune steps
        stats.metrics.update(self.metrics())

    def metrics(self) -> dict[str, float]:
        """sparsity (of the pruned weights), target sparsity, L~ of the actor, the TV bound
        c L~ eps_2 and the certified bound alpha c L~ eps_2 (NaN if R_max is unknown)."""
        pieces = certified_bound(self.trainer.policy, self.eps, self.norm, self.gamma, self.r_max)
        return {
            "sparsity": sparsity_of(self.masks),
            "target_sparsity": self.target(self.trainer.optimizer_step),
            "lipschitz": pieces["lipschitz"],
            "tv_bound": pieces["tv_bound"],
            "certified_bound": pieces["bound"],
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"mask/{_key(n)}": m for n, m in self.masks.items()}
        tensors |= {f"dense/{_key(n)}": d for n, d in self.dense.items()}
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        expected = set(self.state_tensors())
        if set(tensors) != expected:
            raise ValueError(
                f"pruning state in the checkpoint {sorted(tensors)[:4]} does not match this run's {sorted(expected)[:4]}"
            )
        for key, value in tensors.items():
            kind, name = key.split("/", 1)
            target = (self.masks if kind == "mask" else self.dense)[next(n for n in self.weights if _key(n) == name)]
            target.copy_(value)

    def state_json(self) -> dict[str, Any]:
        """Saved in the checkpoint: the sparsity set last, per layer and overall."""
        return {
            "strategy": self.config.strategy,
            "allocation": self.allocation,
            "sparsity": self.current,
            "measured_sparsity": sparsity_of(self.masks),
            "layer_sparsity": layer_sparsity(self.masks),
        }

    def load_state_json(self, state: dict[str, Any]) -> None:
        self.current = float(state.get("sparsity", 0.0))


def prune_callback_for(config: Any) -> PruneCallback | None:
    """The run's pruning callback (None when ``config.prune.strategy`` is none)."""
    if config.prune.strategy == "none":
        return None
    return PruneCallback(config.prune, seed=config.seed)
