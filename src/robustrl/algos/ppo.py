"""The one PPO loop (Schulman et al. 2017), in the MuJoCo setup of SA-PPO (Zhang et al. 2020).

Read top to bottom: :meth:`PPO.collect_rollout` gathers ``steps_per_iteration`` transitions,
:func:`compute_gae` turns them into advantages (GAE, Schulman et al. 2016, eq. 16), and
:meth:`PPO.update` runs the clipped-surrogate policy update (PPO paper eq. 7) and the value
regression. Robust training methods never edit this file: they plug in through :class:`PPOHooks`.

- ``objective``: an extra loss term on each minibatch (ARPO, BARPO, SA-PPO, ... in
  ``robustrl.algos.objectives``). The policy loss becomes ``ppo_loss + kappa * term``, or ``term``
  alone when the objective's ``guidance`` is off.
- ``eps_schedule``: the perturbation radius for iteration ``i`` of ``n`` (passed to the objective).
- ``callbacks``: objects with a clock and state (pruning masks, regularisers; ``algos/hooks.py``).
- ``after_optimizer_step``: a plain function called after every optimiser step.
- ``on_iteration``: called with each iteration's statistics (logging, checkpoints, early stop).

Implementation notes, each a choice that does not change the algorithm:
- Policy and value networks have disjoint parameters and their epochs run side by side on the
  same shuffled minibatches, so one backward pass of ``policy_loss + value_loss`` yields exactly
  the gradients of the two separate passes of the reference code, at half the cost. One Adam with
  a parameter group per network is the same as two Adams (Adam is per parameter).
- Old log-probabilities and values are computed in one batched forward pass after the rollout
  instead of one per step.
- All sampling uses a ``numpy.random.Generator`` whose state is plain JSON, so a checkpoint can
  restore the exact random stream and resume bit for bit.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.optim.adam import adam as functional_adam

from robustrl.algos.hooks import Callback, Clock, StepFunction, check_unique_names
from robustrl.algos.learner import IterationStats, register_learner
from robustrl.algos.rollout import Batch, RolloutCollector, compute_gae, normalized_advantages
from robustrl.config import TrainConfig, learned_adversary_on
from robustrl.envs.make import make_env
from robustrl.envs.normalization import RewardScaler
from robustrl.envs.snapshot import (
    SnapshotUnsupportedError,
    restore_vector_env,
    snapshot_vector_env,
)
from robustrl.errors import CheckpointError, InvalidArgumentError, NonFiniteError, RobustRLError
from robustrl.policies.actor_critic import ActorCritic
from robustrl.policies.checkpoint import (
    policy_from_checkpoint,
    policy_meta,
    policy_tensors,
)

__all__ = ["PPO", "Batch", "IterationStats", "Objective", "PPOHooks", "compute_gae"]


class Objective(Protocol):
    """A robust-training term plugged into PPO (see ``robustrl.algos.objectives``)."""

    kappa: float
    guidance: bool  # True: ppo_loss + kappa * term; False: term alone

    def prepare(self, batch: Batch, policy: ActorCritic, eps: float) -> None:
        """Called once per iteration before the update (e.g. to solve an inner problem once)."""

    def loss(self, minibatch: Batch, policy: ActorCritic, eps: float) -> tuple[torch.Tensor, dict[str, float]]:
        """The term for this minibatch (with advantages already normalised) and its metrics."""


@dataclass
class PPOHooks:
    """What a training method plugs into the loop.

    - ``objective``: the method's loss term (BAR-PPO, SA-PPO, ...; its state is saved as
      ``objective/...``);
    - ``eps_schedule(iteration, num_iterations)``: the radius handed to the objective;
    - ``callbacks``: any number of :class:`~robustrl.algos.hooks.Callback` (masks, regularisers,
      schedules), each with the clock and state of its own;
    - ``after_optimizer_step(policy)``: a plain function after every optimiser step (kept for
      simple uses; a Callback with ``step_interval=1`` is the same);
    - ``on_iteration``: plain functions called with each iteration's :class:`IterationStats`.
    """

    objective: Objective | None = None
    eps_schedule: Callable[[int, int], float] | None = None
    after_optimizer_step: Callable[[ActorCritic], None] | None = None
    on_iteration: list[Callable[[IterationStats], None]] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)


def clip_grad_norm(parameters: list[nn.Parameter], max_norm: float) -> None:
    """Scale the gradients of ``parameters`` so their joint l2 norm is at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_`` (same scale factor max_norm / (norm + 1e-6), capped at 1),
    without its per-call argument handling, which costs as much as the maths for 64-64 MLPs."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if grads:
        torch._foreach_mul_(grads, clip_coefficient(grads, max_norm))


def clip_coefficient(grads: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """The factor ``min(1, max_norm / (||grads||_2 + 1e-6))`` that clips ``grads`` jointly."""
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    return (max_norm / (norm + 1e-6)).clamp(max=1.0)


# What the callbacks' parameter_masks() and dense_parameters() ask for: (positions of the masked
# parameters, their masks, positions of the shadowed ones, their dense shadows, their masks). A
# position is (parameter group, index) in the optimiser: the compiled step finds the parameter in
# its Adam-state arguments rather than receiving it twice (masks as positions: the masked compiled
# call measured as fast as the unmasked one, against 4-10% slower with the parameters passed twice;
# noisy, shared machine).
Position = tuple[int, int]
Masks = tuple[tuple[Position, ...], list[torch.Tensor], tuple[Position, ...], list[torch.Tensor], list[torch.Tensor]]
NO_MASKS: Masks = ((), [], (), [], [])


def apply_masks(masks: Masks, groups: list[list[torch.Tensor]]) -> None:
    """After an optimiser step: straight-through shadows first take the step on every coordinate
    (``shadow <- shadow * (1 - m) + p``, which adds the update since p was shadow * m before it),
    then every mask is multiplied into its parameter. ``groups``: the parameters of each optimiser
    group (positions index them). In place, under no_grad; eager and compiled."""
    positions, values, shadow_positions, shadows, shadow_masks = masks
    if shadow_positions:
        shadowed = [groups[g][i] for g, i in shadow_positions]
        torch._foreach_sub_(shadows, torch._foreach_mul(shadows, shadow_masks))
        torch._foreach_add_(shadows, shadowed)
    if positions:
        torch._foreach_mul_([groups[g][i] for g, i in positions], values)


def compile_own(function: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    """``torch.compile(function)`` with a cache of its own. Dynamo keeps one list of compiled
    graphs per *code object* and checks their guards in order on every call, so every trainer of
    a process (a notebook, a benchmark interleaving methods) compiling the same method shared one
    list: a trainer built later paid the failing guard checks of all earlier ones on each call
    (measured: +0.5 ms per compiled call with three trainers, 40% of a PPO update). A copy of the
    function with its own code object gets its own list. Bound methods stay bound."""
    import types

    bound = getattr(function, "__self__", None)
    plain = getattr(function, "__func__", function)
    code = plain.__code__.replace(co_name=f"{plain.__code__.co_name}_{next(_COMPILE_IDS)}")
    copy = types.FunctionType(code, plain.__globals__, code.co_name, plain.__defaults__, plain.__closure__)
    copy.__kwdefaults__ = plain.__kwdefaults__
    return torch.compile(types.MethodType(copy, bound) if bound is not None else copy, **options)


_COMPILE_IDS = itertools.count()  # unique names for compile_own's copies


# Minibatch steps per call of the compiled update (ppo.compile): more steps per call amortise the
# call's guard checks, fewer keep compile time down (timings: docs/architecture.md, "Speed").
STEPS_PER_COMPILED_CALL = 4
# The deterministic evaluation's env seeds (ppo.eval_every): the run's seed plus this, away from
# the training envs' seeds and from the evaluation tables' (robustrl.evaluate: 10_000 by default)
EVAL_SEED = 1_000_000


class GuardSkipper:
    """Skips dynamo's guard checks on repeated calls of the compiled update (issue 16).

    Each call of the compiled step passes ~60 tensors, and checking their guards costs about as much
    as the maths (measured: the update 0.105-0.121 s -> 0.092-0.096 s per Hopper iteration without
    them). Under ``torch.compiler.set_stance(skip_guard_eval_unsafe=True)`` dynamo checks only the
    shapes of non-parameter tensors and the guards that failed at an earlier recompile, taking the
    most recently used graph that passes: a Python value the step reads that changed without ever
    causing a recompile goes unnoticed. So the first call of each key in an update runs fully
    guarded (recompiling if anything it reads changed since the last update; the annealed rate and
    eps are tensor arguments, so they never do) and moves its graph to the front of the cache; the
    calls after it with the same key skip the guards. The key holds what may differ between calls
    of one update: the policy/value flags, steps per call, the minibatch's extra columns and the
    masks' positions (PPO; WocaR's critic: the minibatch size). A callback's ``on_step`` may change
    Python state the step reads (its masks, its coefficients): :meth:`reset` after it makes the
    next call guarded again. Anything else the step reads must not change within an update.
    Skipping happens only under the default stance: a caller's ``force_eager`` or
    ``fail_on_recompile`` stays in force. Tested: compiled runs with and without skipping are
    bit-identical."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.skipped = 0  # calls run without their guards (tests read it)
        self._checked: set[tuple[Any, ...]] = set()

    def reset(self) -> None:
        self._checked.clear()

    def call(self, key: tuple[Any, ...], function: Callable[..., Any], *args: Any) -> Any:
        # the caller's stance (no public getter; set_stance rebinds the module attribute). Imported
        # here: torch._dynamo loads only with torch.compile, and eager users should not pay for it
        from torch._dynamo import eval_frame

        stance = eval_frame._stance
        if not self.enabled or key not in self._checked or stance.stance != "default" or stance.backend is not None:
            result = function(*args)
            self._checked.add(key)
            return result
        self.skipped += 1
        with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
            return function(*args)


class _MinibatchLoss(nn.Module):
    """``PPO.minibatch_loss`` as a module over the policy's parameters, so that
    ``torch.func.functional_call`` can evaluate it at given parameter values (functional step)."""

    def __init__(self, trainer: PPO):
        super().__init__()
        self.policy = trainer.policy
        self.loss = trainer.minibatch_loss

    def forward(
        self, minibatch: Batch, train_policy: bool, train_value: bool
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.loss(minibatch, train_policy, train_value, math.nan)  # eps: unused by compilable terms


class PPO:
    """Owns the policy, the optimiser, a :class:`RolloutCollector` over the env, and every piece of
    state a resume needs. Meets the :class:`~robustrl.algos.learner.Learner` protocol."""

    learner_name = "ppo"

    def __init__(self, config: TrainConfig, hooks: PPOHooks | None = None, env: Any = None):
        """``env``: an already-built vector env with the Gymnasium same-step autoreset semantics
        of :func:`make_env` (e.g. the adversary MDP of the learned attacks), or an env factory
        (a callable returning a Gymnasium env, see :func:`make_env`); default
        ``make_env(config.env_id, ...)``. PPO closes it when done."""
        config.validate()
        self.config = config
        self.hooks = hooks or PPOHooks()
        cfg = config.ppo
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        # what ppo.eval_every evaluates on: envs of its own, made as the training's are
        self._eval_env = env if env is not None else config.env_id
        if env is None or (callable(env) and not hasattr(env, "step")):
            env = make_env(env if env is not None else config.env_id, config.num_envs, config.seed, config.backend)
        elif cfg.eval_every:
            raise InvalidArgumentError(
                "ppo.eval_every needs envs of its own to evaluate on: pass an env factory, not a built vector env"
            )
        elif env.num_envs != config.num_envs:
            raise ValueError(f"env has {env.num_envs} copies, config.num_envs is {config.num_envs}")
        self.env = env
        self.policy = ActorCritic(
            self.env.single_observation_space,
            self.env.single_action_space,
            cfg.hidden_sizes,
            cfg.activation,
            cfg.initial_std,
            cfg.normalize_observations,
            cfg.clip_observations,
        )
        self.policy.env_id = config.env_id
        if not cfg.learn_std and self.policy.continuous:
            self.policy.log_std.requires_grad_(False)  # ppo.learn_std: kept at initial_std, not optimised
        self.policy_parameters = [
            p for n, p in self.policy.named_parameters() if not n.startswith("critic.") and p.requires_grad
        ]
        self.value_parameters = list(self.policy.critic.parameters())
        self._loss_module = _MinibatchLoss(self)
        names = {id(p): name for name, p in self._loss_module.named_parameters()}
        self._group_names = [[names[id(p)] for p in group] for group in (self.policy_parameters, self.value_parameters)]
        self._compiled_steps: Callable[..., Any] | None = None  # torch.compile(functional_steps), on first use
        self._guards: GuardSkipper | None = None  # the last update's (tests read how many calls skipped guards)
        self.optimizer = torch.optim.Adam(
            [
                {"params": self.policy_parameters, "lr": cfg.policy_lr},
                {"params": self.value_parameters, "lr": cfg.value_lr},
            ],
            eps=cfg.adam_eps,
            fused=True,  # cheaper per step than foreach for these small nets (docs/architecture.md)
        )
        self.collector = RolloutCollector(
            self.env,
            self.policy,
            steps_per_env=config.steps_per_env,
            rng=self.rng,
            reward_scaler=RewardScaler(config.num_envs, cfg.gamma, cfg.clip_rewards, cfg.scale_rewards),
            gamma=cfg.gamma,
            gae_lambda=cfg.gae_lambda,
            bootstrap_on_truncation=cfg.bootstrap_on_truncation,
            label=config.env_id,
            fast=cfg.fast_rollout,
        )
        self.iteration = 0
        self.optimizer_step = 0
        self.collector.reset(config.seed)
        self._stop_requested = False
        # set per update (the callbacks and clock of that update); here so that minibatch_loss
        # also works outside update() (tests, notebooks)
        self._loss_callbacks = [c for c in self.hooks.callbacks if type(c).loss is not Callback.loss]
        self._clock_now = self.clock()
        check_unique_names(self.hooks.callbacks)
        for callback in self.hooks.callbacks:
            callback.bind(self)

    # ---- the Learner face -----------------------------------------------------------------------
    @property
    def num_iterations(self) -> int:
        return self.config.num_iterations

    @property
    def total_steps(self) -> int:
        return self.num_iterations * self.config.ppo.steps_per_iteration

    @property
    def label(self) -> str:
        return f"{self.config.algo} {self.config.env_id}"

    @property
    def global_step(self) -> int:
        return self.collector.global_step

    @property
    def reward_scaler(self) -> RewardScaler:
        return self.collector.reward_scaler

    @property
    def recent_returns(self):
        return self.collector.episodes.recent_returns

    @property
    def total_episodes(self) -> int:
        return self.collector.episodes.total_episodes

    @property
    def obs(self) -> np.ndarray:
        return self.collector.obs

    @property
    def done(self) -> bool:
        return self.iteration >= self.num_iterations

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    def add_iteration_callback(self, callback: Callable[[IterationStats], None]) -> None:
        self.hooks.on_iteration.append(callback)

    def clear_stop_request(self) -> None:
        self._stop_requested = False

    def request_stop(self) -> None:
        """Finish the current iteration, then return from :meth:`learn` (used for Ctrl-C)."""
        self._stop_requested = True

    def clock(self) -> Clock:
        return Clock(self.iteration, self.num_iterations, self.global_step, self.optimizer_step)

    def callbacks(self) -> list[Callback]:
        """The run's callbacks, with a plain ``after_optimizer_step`` function as one more."""
        extra = self.hooks.after_optimizer_step
        return [*self.hooks.callbacks, *([StepFunction(extra, lambda: self.policy)] if extra is not None else [])]

    # ---- rollout --------------------------------------------------------------------------------
    def collect_rollout(self) -> tuple[Batch, list[float]]:
        """``steps_per_iteration`` transitions of the current policy (see :class:`RolloutCollector`)."""
        return self.collector.collect()

    # ---- update ---------------------------------------------------------------------------------
    def policy_loss(self, minibatch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Negative clipped surrogate (PPO eq. 7) minus the entropy bonus."""
        cfg, policy = self.config.ppo, self.policy
        log_prob, entropy = policy.log_prob_and_entropy(minibatch.obs, minibatch.actions)
        log_ratio = log_prob - minibatch.log_probs
        ratio = log_ratio.exp()
        advantages = minibatch.advantages
        surrogate = torch.min(ratio * advantages, ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps) * advantages)
        loss = -surrogate.mean() - cfg.entropy_coef * entropy
        with torch.no_grad():
            diagnostics = {
                "entropy": entropy.detach(),
                "approx_kl": ((ratio - 1) - log_ratio).mean(),  # Schulman's k3 estimator
                "clip_fraction": ((ratio - 1).abs() > cfg.clip_eps).float().mean(),
            }
        return loss, diagnostics

    def value_loss(self, minibatch: Batch) -> torch.Tensor:
        """Mean squared error to the GAE returns (optionally clipped around the old values)."""
        cfg = self.config.ppo
        values = self.policy.value(minibatch.obs)
        loss = (values - minibatch.returns) ** 2
        if cfg.clip_value_eps is not None:
            clipped = minibatch.values + (values - minibatch.values).clamp(-cfg.clip_value_eps, cfg.clip_value_eps)
            loss = torch.max(loss, (clipped - minibatch.returns) ** 2)
        return loss.mean()

    def minibatch_loss(
        self, minibatch: Batch, train_policy: bool, train_value: bool, eps: float
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of one minibatch step (policy loss [+ kappa * objective term] + value loss) and
        its metrics. Advantages are normalised here, per minibatch, as the reference code."""
        cfg, objective = self.config.ppo, self.hooks.objective
        if cfg.normalize_advantages:
            # a new Batch, not an attribute write: the caller's minibatch stays as it was (which
            # the functional, compiled step needs: nothing created under torch.func may escape)
            minibatch = replace(minibatch, advantages=normalized_advantages(minibatch.advantages))
        loss = torch.zeros(())
        metrics: dict[str, torch.Tensor] = {}
        if train_policy:
            ppo_loss, diagnostics = self.policy_loss(minibatch)
            metrics["policy_loss"] = ppo_loss.detach()
            metrics.update(diagnostics)
            if objective is None:
                loss = loss + ppo_loss
            else:
                term, term_metrics = objective.loss(minibatch, self.policy, eps)
                metrics["robust_term"] = term.detach()
                metrics.update(term_metrics)
                loss = loss + (ppo_loss + objective.kappa * term if objective.guidance else term)
            for callback in self._loss_callbacks:  # regularisers: + kappa * term each
                extra = callback.loss(minibatch, self.policy, self._clock_now)
                if extra is not None:
                    term, term_metrics = extra
                    metrics[f"{callback.name}_term"] = term.detach()
                    metrics.update(term_metrics)
                    loss = loss + callback.kappa * term
        if train_value:
            value_loss = self.value_loss(minibatch)
            metrics["value_loss"] = value_loss.detach()
            loss = loss + value_loss
        return loss, metrics

    def functional_step(
        self,
        minibatch: Batch,
        train_policy: bool,
        train_value: bool,
        learning_rates: list[torch.Tensor],
        adam_state: list[tuple[list[torch.Tensor], ...]],
        masks: Masks = NO_MASKS,
    ) -> dict[str, torch.Tensor]:
        """One minibatch step written as a function of the parameters, for ``ppo.compile``: plain PPO,
        and objectives whose term is pure once their inner problem is solved per iteration
        (``objective.compilable``: AR-PPO, BAR-PPO; their term does not read eps, which is
        therefore not an argument: a float would be baked into the graph and recompiled as the
        eps schedule moves).

        The same step as the eager path of :meth:`update` (loss, backward, clip per network, Adam),
        but with gradients from ``torch.func.grad`` instead of the autograd tape and ``.grad``
        fields, and Adam from ``torch.optim.adam.adam`` (PyTorch's functional Adam) on
        ``self.optimizer``'s own state: torch.compile then traces loss, gradients, clipping and
        Adam into one graph with no break (timings in docs/architecture.md). Checkpoints are
        unchanged. Only the
        networks being trained this epoch take an Adam step, as in the eager path (where an
        unused network has no gradient and Adam skips it). ``masks``: the callbacks'
        :meth:`~robustrl.algos.hooks.Callback.parameter_masks` (and straight-through shadows,
        :meth:`~robustrl.algos.hooks.Callback.dense_parameters`), applied by :func:`apply_masks`
        after Adam inside the same graph (pruned weights stay zero without a Python hook per step).
        """
        cfg = self.config.ppo
        loss_module = self._loss_module

        def loss_of(values: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            return torch.func.functional_call(loss_module, values, (minibatch, train_policy, train_value))

        parameters = {name: p.detach() for name, p in loss_module.named_parameters()}
        gradients, metrics = torch.func.grad(loss_of, has_aux=True)(parameters)
        beta1, beta2 = self.optimizer.defaults["betas"]
        with torch.no_grad():
            for trained, names, lr, (params, exp_avgs, exp_avg_sqs, steps) in zip(
                (train_policy, train_value), self._group_names, learning_rates, adam_state
            ):
                if not trained:
                    continue
                grads = [gradients[name] for name in names]
                if cfg.max_grad_norm is not None:
                    grads = torch._foreach_mul(grads, clip_coefficient(grads, cfg.max_grad_norm))
                functional_adam(
                    params, grads, exp_avgs, exp_avg_sqs, [], steps, foreach=False, capturable=False,
                    differentiable=False, fused=None, grad_scale=None, found_inf=None, has_complex=False,
                    amsgrad=False, beta1=beta1, beta2=beta2, lr=lr, weight_decay=self.optimizer.defaults["weight_decay"],
                    eps=self.optimizer.defaults["eps"], maximize=False,
                )  # fmt: skip
            apply_masks(masks, [group[0] for group in adam_state])
        return metrics

    def functional_steps(
        self,
        minibatches: tuple[Batch, ...],
        train_policy: bool,
        train_value: bool,
        learning_rates: list[torch.Tensor],
        adam_state: list[tuple[list[torch.Tensor], ...]],
        masks: Masks = NO_MASKS,
    ) -> list[dict[str, torch.Tensor]]:
        """:meth:`functional_step` on each minibatch in turn: the unit ``ppo.compile`` compiles, so
        that one call (with its guard checks on ~60 tensor arguments) covers several steps."""
        return [
            self.functional_step(m, train_policy, train_value, learning_rates, adam_state, masks) for m in minibatches
        ]

    def _masks(self, callbacks: list[Callback]) -> Masks:
        """(parameters, masks) of every callback's ``parameter_masks`` (several on one parameter
        multiply), then the straight-through shadows of ``dense_parameters`` with their masks."""
        parameters = dict(self.policy.named_parameters())
        combined: dict[str, torch.Tensor] = {}
        shadows: dict[str, torch.Tensor] = {}
        for callback in callbacks:
            for name, mask in callback.parameter_masks().items():
                if name not in parameters or mask.shape != parameters[name].shape:
                    raise ValueError(f"callback {callback.name!r}: mask for {name!r} does not match a policy parameter")
                combined[name] = combined[name] * mask if name in combined else mask
            for name, shadow in callback.dense_parameters().items():
                if name in shadows or name not in parameters or shadow.shape != parameters[name].shape:
                    raise ValueError(
                        f"callback {callback.name!r}: dense shadow for {name!r} does not match a policy parameter "
                        "(or another callback already keeps one)"
                    )
                shadows[name] = shadow
        missing = sorted(set(shadows) - set(combined))
        if missing:
            raise ValueError(f"dense shadows for unmasked parameters {missing}: a shadow needs a mask")
        where = {
            id(p): (g, i) for g, group in enumerate(self.optimizer.param_groups) for i, p in enumerate(group["params"])
        }
        return (
            tuple(where[id(parameters[n])] for n in combined), list(combined.values()),
            tuple(where[id(parameters[n])] for n in shadows), list(shadows.values()), [combined[n] for n in shadows],
        )  # fmt: skip

    def _adam_state(self) -> list[tuple[list[torch.Tensor], ...]]:
        """Per parameter group: (parameters, exp_avgs, exp_avg_sqs, steps) of ``self.optimizer``,
        created as its first eager step would (the functional step updates them in place). Passed
        to the compiled step as arguments: a compiled function that read the optimiser's dicts
        itself would be guarded on (and recompiled for) every value in them, the annealed lr too."""
        state = []
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if not self.optimizer.state[p]:
                    self.optimizer.state[p] = {
                        "step": torch.tensor(0.0),
                        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                    }
            states = [self.optimizer.state[p] for p in group["params"]]
            state.append(
                (list(group["params"]), *([s[key] for s in states] for key in ("exp_avg", "exp_avg_sq", "step")))
            )
        return state

    def update(self, batch: Batch, eps: float) -> dict[str, float]:
        cfg, hooks = self.config.ppo, self.hooks
        objective = hooks.objective
        if objective is not None:
            objective.prepare(batch, self.policy, eps)
        callbacks = self.callbacks()
        self._loss_callbacks = [c for c in callbacks if type(c).loss is not Callback.loss]
        self._clock_now = self.clock()
        masks = self._masks(callbacks)
        stepped = [c for c in callbacks if c.step_interval]
        size = len(batch)
        minibatch_size = size // cfg.num_minibatches
        # Metrics stay tensors until the end of the update: one conversion per metric, not one
        # per minibatch (each float() is a dispatch + sync; 320 minibatches per iteration).
        history: dict[str, list[torch.Tensor]] = {}
        compiled = (
            cfg.compile
            and (objective is None or getattr(objective, "compilable", False))
            and all(getattr(c, "compilable", False) for c in self._loss_callbacks)
        )
        steps_per_call = 1
        # objectives that re-solve their inner problem for every minibatch (SA-PPO) do it before
        # each compiled step, with that step's parameters: one step per call
        # ... unless they solve it inside the compiled step (SA-PPO's SGLD), drawing its random
        # numbers before each call: then several steps per call, as PPO
        in_graph = compiled and getattr(objective, "solves_in_graph", lambda policy: False)(self.policy)
        presolve = compiled and not in_graph and getattr(objective, "solves_per_minibatch", False)
        guards = self._guards = GuardSkipper(cfg.skip_guards)
        if compiled:
            if self._compiled_steps is None:
                self._compiled_steps = compile_own(self.functional_steps, dynamic=False)
            adam_state = self._adam_state()
            # tensors, not floats: the annealed rate changes every iteration and a float would
            # be baked into the compiled graph (one recompilation per iteration)
            learning_rates = [torch.tensor(group["lr"]) for group in self.optimizer.param_groups]
            # a call never crosses a step at which a callback's on_step is due
            steps_per_call = 1 if presolve else next(
                k for k in (STEPS_PER_COMPILED_CALL, 2, 1)
                if cfg.num_minibatches % k == 0 and all(c.step_interval % k == 0 for c in stepped)
            )  # fmt: skip

        def record(name: str, value: Any) -> None:
            history.setdefault(name, []).append(torch.as_tensor(value, dtype=torch.float32).detach())

        for epoch in range(max(cfg.policy_epochs, cfg.value_epochs)):
            train_policy, train_value = epoch < cfg.policy_epochs, epoch < cfg.value_epochs
            # Shuffle once per epoch, then minibatches are contiguous views (one gather per
            # column per epoch instead of one per minibatch); same rows as indexing each minibatch.
            shuffled = batch.select(torch.as_tensor(self.rng.permutation(size)))
            starts = range(0, minibatch_size * cfg.num_minibatches, minibatch_size)
            for first in range(0, len(starts), steps_per_call):
                minibatches = tuple(
                    shuffled.select(slice(s, s + minibatch_size)) for s in starts[first : first + steps_per_call]
                )
                if presolve:
                    objective.presolve(minibatches[0], self.policy, eps)
                elif in_graph:
                    for minibatch in minibatches:
                        objective.predraw(minibatch, eps)
                if compiled:
                    step_metrics = guards.call(
                        (train_policy, train_value, len(minibatches), tuple(minibatches[0].extras), masks[0], masks[2]),
                        self._compiled_steps, minibatches, train_policy, train_value, learning_rates, adam_state, masks,
                    )  # fmt: skip
                else:
                    (minibatch,) = minibatches
                    loss, minibatch_metrics = self.minibatch_loss(minibatch, train_policy, train_value, eps)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.max_grad_norm is not None:
                        for parameters in (self.policy_parameters, self.value_parameters):
                            clip_grad_norm(parameters, cfg.max_grad_norm)
                    self.optimizer.step()
                    with torch.no_grad():
                        apply_masks(masks, [group["params"] for group in self.optimizer.param_groups])
                    step_metrics = [minibatch_metrics]
                for minibatch_metrics in step_metrics:
                    for name, value in minibatch_metrics.items():
                        record(name, value)
                self.optimizer_step += len(minibatches)
                due = [c for c in stepped if self.optimizer_step % c.step_interval == 0]
                if due:
                    clock = self.clock()
                    for callback in due:
                        callback.on_step(clock)
                    masks = self._masks(callbacks)  # a callback may have changed its masks
                    guards.reset()
        metrics = {name: float(torch.stack(values).mean()) for name, values in history.items()}
        with torch.no_grad():
            residual_var = (batch.returns - batch.values).var()
            metrics["explained_variance"] = float(1 - residual_var / batch.returns.var().clamp_min(1e-8))
        return metrics

    # ---- one iteration and the loop -------------------------------------------------------------
    def train_iteration(self) -> IterationStats:
        cfg = self.config.ppo
        if cfg.anneal_lr:
            fraction = 1.0 - self.iteration / self.num_iterations
            self.optimizer.param_groups[0]["lr"] = cfg.policy_lr * fraction
            self.optimizer.param_groups[1]["lr"] = cfg.value_lr * fraction
        eps = self.hooks.eps_schedule(self.iteration, self.num_iterations) if self.hooks.eps_schedule else 0.0
        objective = self.hooks.objective
        guidance_at = getattr(objective, "guidance_at", None)  # the robust objectives' (robust.guidance_until)
        if guidance_at is not None:
            guided = guidance_at(self.iteration, self.num_iterations)
            if guided != objective.guidance:  # robust.guidance_until: the term alone from here on
                objective.guidance = guided
                self._compiled_steps = None  # the compiled step read the old value as a constant
        start = time.perf_counter()
        batch, finished = self.collect_rollout()
        rollout_seconds = time.perf_counter() - start
        metrics = self.update(batch, eps)
        for name in ("policy_loss", "value_loss"):
            if not math.isfinite(metrics.get(name, 0.0)):
                # the env's data was finite (the collector checks it): the update diverged
                raise NonFiniteError(
                    f"the PPO update at iteration {self.iteration + 1} produced a non-finite {name}; "
                    "lower the learning rate or the robust weight kappa (no checkpoint of it is saved)"
                )
        self.iteration += 1
        metrics.update(
            eps=eps,
            policy_lr=self.optimizer.param_groups[0]["lr"],
            rollout_seconds=rollout_seconds,
            update_seconds=time.perf_counter() - start - rollout_seconds,
            mean_return=float(np.mean(self.recent_returns)) if self.recent_returns else math.nan,
            episodes=float(self.total_episodes),
        )
        if cfg.eval_every and (self.iteration % cfg.eval_every == 0 or self.iteration == self.num_iterations):
            metrics["eval_return"] = self.evaluate_mean_action()
        stats = IterationStats(self.iteration, self.global_step, metrics, finished)
        clock = self.clock()
        for hook in self.hooks.callbacks:
            hook.on_iteration(stats, clock)
        for callback in self.hooks.on_iteration:
            callback(stats)
        return stats

    def evaluate_mean_action(self) -> float:
        """Mean return of ``ppo.eval_episodes`` episodes of the policy's mean action (the tables'
        mode) on envs of their own, seeded the same at every evaluation so that the curve moves
        with the policy, not the starts. Draws nothing from the training's random streams and
        leaves the normaliser as it is: the run trains the same with or without it (tested)."""
        from robustrl.policies.episodes import run_episodes

        cfg = self.config
        try:
            return run_episodes(self.policy, self._eval_env, cfg.ppo.eval_episodes, deterministic=True,
                                seed=EVAL_SEED + cfg.seed, backend=cfg.backend).mean  # fmt: skip
        except RobustRLError as error:  # e.g. a NaN observation: the monitoring fails, not the run
            warnings.warn(f"{self.label}: the evaluation at iteration {self.iteration} failed ({error}); eval_return NaN",
                          stacklevel=2)  # fmt: skip
            return math.nan

    def learn(self) -> None:
        """Run iterations until the budget is spent or :meth:`request_stop` is called."""
        while not self.done and not self._stop_requested:
            self.train_iteration()

    def close(self) -> None:
        for callback in self.hooks.callbacks:
            callback.close()
        self.env.close()

    # ---- exact state, for checkpoints and resume ------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything a resume needs: tensors (policy, optimiser, scalers, objective and callback
        state) and JSON metadata (counters, random streams, the envs' mid-episode state). A
        snapshot: the tensors are copies, so training on after the call leaves them as they were
        (the optimiser's state is updated in place, and Adam.load_state_dict keeps the tensors it
        is given: a second trainer loaded from live tensors would share its moments)."""
        tensors = policy_tensors(self.policy)
        optimizer_state = self.optimizer.state_dict()
        for index, parameter_state in optimizer_state["state"].items():
            for key, value in parameter_state.items():
                tensors[f"optimizer/{index}/{key}"] = torch.as_tensor(value)
        for key, value in self.reward_scaler.state_dict().items():
            tensors[f"reward_scaler/{key}"] = torch.as_tensor(np.asarray(value, dtype=np.float64))
        objective_state = getattr(self.hooks.objective, "state_tensors", dict)()
        tensors |= {f"objective/{key}": value for key, value in objective_state.items()}
        for callback in self.hooks.callbacks:
            tensors |= {f"callback/{callback.name}/{key}": value for key, value in callback.state_tensors().items()}
        try:
            env_snapshot: list[dict[str, Any]] | None = snapshot_vector_env(self.env)
        except SnapshotUnsupportedError:
            env_snapshot = None
        trainer = {
            "iteration": self.iteration,
            "optimizer_step": self.optimizer_step,
            "rng": self.rng.bit_generator.state,
            "optimizer_param_groups": optimizer_state["param_groups"],
            **self.collector.state_dict(),  # obs, global_step, episode bookkeeping
            "env_snapshot": env_snapshot,
            "callbacks": {callback.name: callback.state_json() for callback in self.hooks.callbacks},
        }
        meta = {
            **policy_meta(self.policy, self.config.env_id),
            "config": self.config.to_dict(),
            "learner": self.learner_name,
            "iteration": self.iteration,
            "global_step": self.global_step,
            "trainer": trainer,
        }
        return {key: value.detach().clone() for key, value in tensors.items()}, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: str) -> bool:
        """Restore :meth:`state`. Returns False if the envs could not be restored exactly (they
        then start fresh episodes)."""
        fresh_obs = self.collector.obs  # from the reset in __init__, for envs that cannot be restored
        loaded = policy_from_checkpoint(tensors, meta, source, expected_env_id=self.config.env_id)
        self.policy.load_state_dict(loaded.state_dict())
        self.policy.normalizer.load_state_dict(loaded.normalizer.state_dict())
        self.policy.train()
        try:
            trainer = meta["trainer"]
            optimizer_state: dict[str, Any] = {"state": {}, "param_groups": trainer["optimizer_param_groups"]}
            for key, value in tensors.items():
                if key.startswith("optimizer/"):
                    _, index, name = key.split("/")
                    optimizer_state["state"].setdefault(int(index), {})[name] = value
            for group in optimizer_state["param_groups"]:
                group["betas"] = tuple(group["betas"])
            self.optimizer.load_state_dict(optimizer_state)
            self.reward_scaler.load_state_dict(
                {k.split("/", 1)[1]: v.numpy() for k, v in tensors.items() if k.startswith("reward_scaler/")}
            )
            objective_state = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("objective/")}
            if self.hooks.objective is not None and hasattr(self.hooks.objective, "load_state_tensors"):
                self.hooks.objective.load_state_tensors(objective_state, self.policy)
            elif objective_state:
                raise ValueError(
                    f"the checkpoint holds objective state {sorted(objective_state)[:3]} but this run has no such objective"
                )
            self._load_callbacks(tensors, trainer.get("callbacks", {}))
            self.iteration = int(trainer["iteration"])
            cfg = self.config.ppo  # checkpoints older than the clock: every iteration takes the same steps
            steps_per_iteration = max(cfg.policy_epochs, cfg.value_epochs) * cfg.num_minibatches
            self.optimizer_step = int(trainer.get("optimizer_step", self.iteration * steps_per_iteration))
            self.rng.bit_generator.state = trainer["rng"]
            self.collector.load_state_dict(trainer)
            obs = self.collector.obs
        except (KeyError, ValueError, TypeError) as error:
            raise CheckpointError(f"{source} lacks the training state needed to resume: {error}") from None
        try:
            if trainer["env_snapshot"] is None:
                raise SnapshotUnsupportedError("no snapshot")
            restore_vector_env(self.env, trainer["env_snapshot"])
        except SnapshotUnsupportedError:
            # Fresh episodes from the reset in __init__: the partial returns no longer apply.
            self.collector.episodes.forget_running()
            self.collector.obs = fresh_obs
            return False
        self.collector.obs = obs
        return True

    def _load_callbacks(self, tensors: dict[str, torch.Tensor], states: dict[str, Any]) -> None:
        names = {callback.name for callback in self.hooks.callbacks}
        saved = {key.split("/")[1] for key in tensors if key.startswith("callback/")} | set(states)
        if saved - names:
            raise ValueError(
                f"the checkpoint holds state of callback(s) {sorted(saved - names)} that this run does not have"
            )
        for callback in self.hooks.callbacks:
            prefix = f"callback/{callback.name}/"
            callback.load_state_tensors({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
            callback.load_state_json(states.get(callback.name, {}))


def hooks_for(config: TrainConfig, extra: PPOHooks | None = None) -> PPOHooks:
    """The hooks of ``config.algo`` (its objective and eps schedule), the pruning callback when
    ``config.prune.strategy`` is not none, plus the caller's: callbacks
    are added, and a field the caller sets replaces the algorithm's. (Replacing the whole object
    would silently train plain PPO whenever a caller only wanted a progress callback.)"""
    from robustrl.algos import ALGORITHMS
    from robustrl.errors import InvalidArgumentError

    if config.algo not in ALGORITHMS:
        raise InvalidArgumentError(f"unknown algorithm {config.algo!r}; available: {', '.join(ALGORITHMS)}")
    hooks = ALGORITHMS[config.algo](config)
    if config.prune.strategy != "none":  # pruning composes with every method (robustrl.prune)
        from robustrl.prune.callback import prune_callback_for

        hooks.callbacks.append(prune_callback_for(config))
    if learned_adversary_on(config.atla):  # a learned adversary in the loop composes too (robustrl.algos.atla)
        from robustrl.algos.atla import atla_callback_for

        hooks.callbacks.append(atla_callback_for(config))
    if extra is None:
        return hooks
    for name in ("objective", "eps_schedule", "after_optimizer_step"):
        if getattr(extra, name) is not None:
            setattr(hooks, name, getattr(extra, name))
    hooks.on_iteration.extend(extra.on_iteration)
    hooks.callbacks.extend(extra.callbacks)
    return hooks


def _ppo_from_config(config: dict[str, Any], hooks: PPOHooks | None) -> PPO:
    train_config = TrainConfig.from_dict(config)
    return PPO(train_config, hooks_for(train_config, hooks))


register_learner("ppo", _ppo_from_config)
