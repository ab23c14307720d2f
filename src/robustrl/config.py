"""Every knob of a run, as frozen dataclasses that round-trip through JSON.

Defaults are the MuJoCo PPO setup of SA-PPO (Zhang et al. 2020, reference code
``huanzhang12/SA_PPO``, ``src/config_*_vanilla_ppo.json``), which WocaR, RADIAL, PA-AD, CAR and the
BARPO paper reuse for their PPO ("SPO") baseline. Where we depart from that code, the field's
comment says so and why.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from robustrl.errors import InvalidArgumentError

# A count of env steps above this is a typo (1e10 steps is ~100 years of a Hopper run at our speed).
MAX_STEPS = 10**10


def _describe(value: Any) -> str:
    """A value as the user typed it (JSON), for error messages: null, "1e-4", [1]."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _type_name(kind: Any) -> str:
    if kind is bool:
        return "true or false"
    if kind is int:
        return "a whole number"
    if kind is float:
        return "a finite number"
    if kind is str:
        return "a string"
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        return f"a list of {_type_name(args[0]).removeprefix('a ')}s, e.g. [64, 64]"
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    return str(kind)


def _matches(value: Any, kind: Any) -> bool:
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:  # an integer is a fine float (kappa=1); NaN and inf are not
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is str:
        return isinstance(value, str)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        item = args[0]
        return isinstance(value, (tuple, list)) and all(_matches(v, item) for v in value)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    return True  # a type this checker does not know: left to the field's own checks


def check_field_value(cls: type, name: str, value: Any, prefix: str = "") -> Any:
    """``value`` for field ``name`` of dataclass ``cls``, checked against the field's declared
    type (ints are accepted for floats and become floats; lists become tuples); raises
    :class:`InvalidArgumentError` naming the field, the expected type and the value given."""
    kind = typing.get_type_hints(cls)[name]
    if not _matches(value, kind):
        raise InvalidArgumentError(f"{prefix}{name} must be {_type_name(kind)}, got {_describe(value)}")
    if isinstance(value, list):
        value = tuple(value)
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and float in (kind, *typing.get_args(kind))
        and int not in (kind, *typing.get_args(kind))
    ):
        value = float(value)
    return value


def check_field_types(instance: Any, prefix: str = "") -> None:
    """Every field of a dataclass instance against its declared type (see :func:`check_field_value`)."""
    for f in fields(instance):
        check_field_value(type(instance), f.name, getattr(instance, f.name), prefix)


# PPO knobs added after run directories existed, with the value that reproduces what a config.json
# lacking them meant (TrainConfig.from_dict fills them in; a new config gets the field default).
# Speed switches among them stay out of study run names (robustrl.experiments.spec.config_hash).
LEGACY_PPO_VALUES: dict[str, Any] = {"fast_rollout": False, "fast_inner": False, "learn_std": True}
# Robust knobs newer than the studies, at the value that means what their absence meant.
# (radial_bound: RADIAL-PPO runs saved before the knob used the exact bound; no other method reads it)
LEGACY_ROBUST_VALUES: dict[str, Any] = {"guidance_until": 1.0, "radial_bound": "exact"}
# The speed switches among them (results equal up to float rounding): never part of a run's name.
SPEED_SWITCHES = ("fast_rollout", "fast_inner", "skip_guards")
RADIAL_BOUNDS = ("exact", "corners")  # RobustConfig.radial_bound

# What a run reports besides training, not how it trains (the same agent with or without): never
# part of a run's name either.
MONITORING = ("eval_every", "eval_episodes")


def reads_robust_knob(algo: str, name: str) -> bool:
    """Whether method ``algo`` reads robust knob ``name``, for the knobs only some methods read
    whose default changed (``radial_bound``: RADIAL-PPO's alone); True for every other knob."""
    return name != "radial_bound" or algo == "radial-ppo"


def robust_identity(data: dict[str, Any]) -> dict[str, Any]:
    """A config dict's robust section as run names (:func:`robustrl.experiments.spec.config_hash`)
    and fitted-adversary reuse compare it: without the knobs newer than the studies at the value
    their absence meant (LEGACY_ROBUST_VALUES), nor the ones its method does not read
    (:func:`reads_robust_knob`), so a change of their defaults renames and refits nothing."""
    algo = data.get("algo", "ppo")
    return {
        k: v for k, v in data.get("robust", {}).items()
        if reads_robust_knob(algo, k) and not (k in LEGACY_ROBUST_VALUES and v == LEGACY_ROBUST_VALUES[k])
    }  # fmt: skip


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters of the one PPO loop (``robustrl.algos.ppo``)."""

    # --- rollout -------------------------------------------------------------------------------
    steps_per_iteration: int = 2048  # SA-PPO "t": 1 actor x 2048 steps; split over num_envs
    gamma: float = 0.99  # SA-PPO "gamma"
    gae_lambda: float = 0.95  # SA-PPO "lambda"
    # --- networks ------------------------------------------------------------------------------
    hidden_sizes: tuple[int, ...] = (64, 64)  # SA-PPO CtsPolicy / ValueNet: 64-64
    activation: str = "tanh"  # SA-PPO "policy_activation"
    initial_std: float = 1.0  # SA-PPO: log-std initialised at 0 (HalfCheetah: 0.5, see ENV_DEFAULTS)
    # False: the std stays at initial_std for the whole run (the pruning paper's "fixed std 0.1",
    # App. F; its certificate's c = 1 / (sqrt(2 pi) sigma_min) is then constant). SA-PPO learns it.
    learn_std: bool = True
    # --- optimisation --------------------------------------------------------------------------
    policy_lr: float = 3e-4  # SA-PPO "ppo_lr_adam" (Hopper); per-env values in ENV_DEFAULTS
    value_lr: float = 2.5e-4  # SA-PPO "val_lr" (Hopper)
    adam_eps: float = 1e-5  # SA-PPO "adam_eps"
    anneal_lr: bool = True  # SA-PPO "anneal_lr": linear decay to 0 over the run
    policy_epochs: int = 10  # SA-PPO "ppo_epochs"
    value_epochs: int = 10  # SA-PPO "val_epochs"
    num_minibatches: int = 32  # SA-PPO "num_minibatches" (64 samples each at 2048 steps)
    clip_eps: float = 0.2  # SA-PPO "clip_eps"
    clip_value_eps: float | None = None  # SA-PPO "value_clipping": false; a float enables it
    entropy_coef: float = 0.0  # SA-PPO "entropy_coeff"
    # SA-PPO "clip_grad_norm": -1 (off). None keeps the reference; a float clips each network's
    # gradient norm separately (CleanRL uses 0.5).
    max_grad_norm: float | None = None
    normalize_advantages: bool = True  # per minibatch, as the reference code
    # --- observation / reward processing -------------------------------------------------------
    normalize_observations: bool = True  # SA-PPO "norm_states" (running mean/std, ZFilter)
    clip_observations: float = 10.0  # SA-PPO "clip_observations"
    scale_rewards: bool = True  # SA-PPO "norm_rewards": "returns" (divide by std of return)
    clip_rewards: float = 10.0  # SA-PPO "clip_rewards"
    # Departure: the reference treats a time-limit truncation as a terminal state. We bootstrap
    # from V(final observation) instead, which is the correct target for the discounted
    # infinite-horizon objective; set False to reproduce the reference exactly.
    bootstrap_on_truncation: bool = True
    # --- speed (not a hyperparameter: results equal up to float rounding) ----------------------
    # torch.compile the whole minibatch step (loss, gradients by torch.func, clipping, Adam:
    # PPO.functional_step) for PPO, and for AR-PPO / BAR-PPO with their per-iteration inner solve
    # (the other objectives stay eager): the ~100 small ops of a 64-sample step become one graph.
    # Costs a one-off compile (~10-40 s here, cached on disk by torch) and needs a C++ compiler;
    # worth it for runs of 1M+ steps.
    compile: bool = False
    # Rollouts run the actor MLP in numpy on a copy of its weights taken at the start of each
    # rollout (the policy does not change during one) instead of through torch modules: 3-4x
    # cheaper per env step at batches of 1-16 rows, where torch's per-op overhead dominates. The
    # same actions up to float rounding (~1e-9; tested); False is the step-by-step reference.
    # config.json files written before this knob existed load with False (their meaning).
    fast_rollout: bool = True
    # The robust objectives' inner problems (BARPO's and SA-PPO's KL maximisation, ARPO's surrogate
    # minimisation) take their input gradients by hand-written backprop through a numpy copy of
    # the actor instead of autograd (robustrl.threat.objectives): the same iterates up to float
    # rounding, several times cheaper. False is the autograd reference; older config.json: False.
    fast_inner: bool = True
    # With compile: the repeated calls of the compiled step within an update skip dynamo's guard
    # checks after a guarded first call of their shape (robustrl.algos.ppo.GuardSkipper; ~15% of
    # the update). Bit-identical results (tested); False checks every call's guards.
    skip_guards: bool = True
    # --- monitoring (not a hyperparameter: the agent trains the same with or without) ----------
    # Every eval_every iterations (and at the last), eval_episodes episodes of the policy's mean
    # action with the normaliser frozen, on envs of their own: progress.csv's eval_return. The
    # training curve (mean_return) is of sampled actions, and a policy can earn far less acting on
    # its mean (Walker2d BAR-PPO seed 3: ~4400 sampled in training, 1978 deterministic; the tables
    # report the mean action). 0: off.
    eval_every: int = 0
    eval_episodes: int = 5

    def validate(self) -> None:
        check_field_types(self, "ppo.")
        if self.eval_every < 0:
            raise InvalidArgumentError(f"ppo.eval_every must be >= 0 (0: off), got {self.eval_every}")
        if self.eval_episodes < 1:
            raise InvalidArgumentError(f"ppo.eval_episodes must be >= 1, got {self.eval_episodes}")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise InvalidArgumentError(
                f"ppo.hidden_sizes must be a non-empty list of layer widths >= 1, got {_describe(list(self.hidden_sizes))}"
            )
        positive_ints = ("steps_per_iteration", "policy_epochs", "value_epochs", "num_minibatches")
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"ppo.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("policy_lr", "value_lr", "adam_eps", "initial_std", "clip_eps"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise InvalidArgumentError(f"ppo.{name} must be a positive number, got {value}")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidArgumentError(f"ppo.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.entropy_coef < 0:
            raise InvalidArgumentError(f"ppo.entropy_coef must be >= 0, got {self.entropy_coef}")
        if self.activation not in ACTIVATIONS:
            raise InvalidArgumentError(f"ppo.activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.steps_per_iteration < self.num_minibatches:
            raise InvalidArgumentError(
                f"ppo.steps_per_iteration ({self.steps_per_iteration}) must be at least "
                f"ppo.num_minibatches ({self.num_minibatches})"
            )


ACTIVATIONS = ("tanh", "relu")

# Per-environment overrides of PPOConfig, from SA-PPO's config_{env}_vanilla_ppo.json.
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "Hopper": {"policy_lr": 3e-4, "value_lr": 2.5e-4},
    "Walker2d": {"policy_lr": 4e-4, "value_lr": 3e-4},
    "HalfCheetah": {"policy_lr": 3e-4, "value_lr": 1e-4, "initial_std": 0.5},
    "Ant": {"policy_lr": 5e-5, "value_lr": 1e-5},
    "Humanoid": {"policy_lr": 5e-5, "value_lr": 1e-5},
}

# Training budget of the papers: 976 iterations x 2048 = 2M steps (Ant and Humanoid: 10M).
DEFAULT_TOTAL_STEPS: dict[str, int] = {"Ant": 10_000_000, "Humanoid": 10_000_000}
DEFAULT_STEPS = 2_000_000


# Attack radius eps per task, l_inf in the policy's normalised observation space: the values of
# SA-PPO (Zhang et al. 2020, Table 1), reused by WocaR, RADIAL, PA-AD and BARPO (Table 2).
DEFAULT_EPS: dict[str, float] = {"Hopper": 0.075, "Walker2d": 0.05, "HalfCheetah": 0.15, "Ant": 0.15, "Humanoid": 0.075}
FALLBACK_EPS = 0.05


def default_eps(env_id: str) -> float:
    """The papers' eps for ``env_id`` (normalised-observation units); 0.05 for other tasks."""
    return DEFAULT_EPS.get(env_family(env_id), FALLBACK_EPS)


def env_family(env_id: str) -> str:
    """``"Hopper-v5"`` -> ``"Hopper"``; namespaced ids keep only the task name."""
    return env_id.split("/")[-1].split("-v")[0]


def ppo_defaults_for(env_id: str, **overrides: Any) -> PPOConfig:
    """The reference PPO hyperparameters for ``env_id``, with ``overrides`` applied on top."""
    values = dict(ENV_DEFAULTS.get(env_family(env_id), {}))
    values.update(overrides)
    return replace(PPOConfig(), **values)


def default_total_steps(env_id: str) -> int:
    return DEFAULT_TOTAL_STEPS.get(env_family(env_id), DEFAULT_STEPS)


# The fast configuration (issue 16): 8 EnvPool envs per 2048-step batch and the compiled update.
# Measured equivalent to the reference on Hopper-v5 (benchmarks/results/ppo_reference_8envs_compile.md;
# the BARPO reproductions use it) and ~2.5x its speed. Below FAST_MIN_STEPS the compile's one-off
# cost (10-40 s) outweighs what it saves, so short runs (tests, demos) keep the reference setting.
FAST_NUM_ENVS = 8
FAST_MIN_STEPS = 100_000


def fast_settings(env_id: str, total_steps: int, steps_per_iteration: int = 2048) -> tuple[dict[str, Any], list[str]]:
    """(settings, notices): the fastest configuration this machine offers for a run of
    ``total_steps`` on ``env_id``, as ``num_envs``, ``backend`` and ``compile``, with one line per
    fallback (EnvPool missing or not offering the env, no C++ compiler for torch.compile)."""
    import importlib.util
    import shutil

    if total_steps < FAST_MIN_STEPS:
        return {"num_envs": 1, "backend": "gymnasium", "compile": False}, []
    notices = []
    num_envs = next(n for n in (FAST_NUM_ENVS, 4, 2, 1) if steps_per_iteration % n == 0)
    backend = "gymnasium"
    if importlib.util.find_spec("envpool") is None:
        notices.append("EnvPool is not installed: Gymnasium's vector envs instead (pip install 'robustrl[envpool]')")
    else:
        from robustrl.envs.make import check_env_id

        try:
            check_env_id(env_id, "envpool")
            backend = "envpool"
        except InvalidArgumentError:
            notices.append(f"EnvPool does not offer {env_id}: Gymnasium's vector envs instead")
    compile_update = any(shutil.which(c) for c in ("c++", "g++", "clang++"))
    if not compile_update:
        notices.append("no C++ compiler found (torch.compile needs one): the eager update instead")
    return {"num_envs": num_envs, "backend": backend, "compile": compile_update}, notices


INNER_SOLVE = ("iteration", "minibatch")


@dataclass(frozen=True)
class RobustConfig:
    """Knobs shared by the robust training objectives (BARPO paper, App. F.3, and the reference
    configs of SA-PPO / WocaR / RADIAL). Unused fields are ignored by methods that do not need them."""

    eps: float | None = None  # target radius (normalised obs); None = the papers' per-env value (DEFAULT_EPS)
    norm: str = "inf"
    # eps grows linearly from 0 to the target over this fraction of the iterations (732 of 976 in
    # the papers), then stays at the target.
    eps_warmup_fraction: float = 0.75
    kappa: float = 0.3  # robustness weight; BAR-PPO grid {0.1, 0.3, 1.0}
    guidance: bool = True  # False: the robust term alone ("ARPO", "BARPO w/o g")
    # Guidance for the first fraction of the iterations only, then the robust term alone (1.0: the
    # whole run, the papers' setting). Not in the papers: issue 17's reliability question (guided
    # BAR-PPO seeds break under learned attacks, unguided ones did not, but lose natural return).
    guidance_until: float = 1.0
    inner_steps: int = 10  # solver iterations (BARPO App. F.3)
    inner_step_size: float | None = None  # None = eps / inner_steps
    temperature: float = 1e-5  # SGLD beta
    # Where the inner problem is solved: "iteration" = once per iteration on the whole batch with
    # the parameters that collected it (what Algorithms 2-3 state: step 8 precedes the update);
    # "minibatch" = for each minibatch with the current parameters (SA-PPO's reference code).
    # None = each method's own default.
    inner_solve: str | None = None
    solver: str | None = None  # sa-ppo: "sgld" (default), "pgd" or "ibp" (convex relaxation)
    q_weight: float = 0.5  # WocaR: weight of the worst-case value in the advantage (reference: 0.8, capped at 1)
    q_lr: float = 4e-4  # WocaR: Adam learning rate of the worst-attack critic Q_w (reference "q_lr")
    q_epochs: int = 10  # WocaR: epochs of Q_w regression per iteration (reference "q_epochs")
    q_tau: float = 0.001  # WocaR: soft update rate of Q_w's target copy per step (reference "tau")
    radial_mix: float = 0.5  # RADIAL: weight of the worst-case surrogate (clean gets 1 - mix)
    # RADIAL: as the reference code (and so the published numbers), the lowest of the surrogates
    # at the clean mean and the IBP box's two corners ("corners", the default since session 27), or
    # the exact worst case over the box per action dimension ("exact": a true bound, but at 2M
    # steps it did not learn Walker2d or HalfCheetah, where "corners" did; README, issue 17)
    radial_bound: str = "corners"

    def validate(self) -> None:
        check_field_types(self, "robust.")
        if self.norm not in ("inf", "2"):
            raise InvalidArgumentError(f"robust.norm must be 'inf' or '2', got {self.norm!r}")
        if self.eps is not None and (not math.isfinite(self.eps) or self.eps < 0):
            raise InvalidArgumentError(f"robust.eps must be a finite number >= 0, got {self.eps}")
        if not 0.0 < self.guidance_until <= 1.0:
            raise InvalidArgumentError(f"robust.guidance_until must be in (0, 1], got {self.guidance_until}")
        if self.guidance_until < 1.0 and not self.guidance:
            raise InvalidArgumentError("robust.guidance_until < 1 ends guidance early, but guidance is off (--no-guidance)")
        if not 0.0 <= self.eps_warmup_fraction <= 1.0:
            raise InvalidArgumentError(f"robust.eps_warmup_fraction must be in [0, 1], got {self.eps_warmup_fraction}")
        if not (math.isfinite(self.kappa) and self.kappa >= 0):
            raise InvalidArgumentError(f"robust.kappa must be >= 0, got {self.kappa}")
        if self.inner_steps < 1:
            raise InvalidArgumentError(f"robust.inner_steps must be >= 1, got {self.inner_steps}")
        if self.inner_step_size is not None and not self.inner_step_size >= 0:
            raise InvalidArgumentError(f"robust.inner_step_size must be >= 0, got {self.inner_step_size}")
        if not self.temperature >= 0:
            raise InvalidArgumentError(f"robust.temperature must be >= 0, got {self.temperature}")
        if self.inner_solve is not None and self.inner_solve not in INNER_SOLVE:
            raise InvalidArgumentError(f"robust.inner_solve must be one of {INNER_SOLVE}, got {self.inner_solve!r}")
        if self.solver is not None and self.solver not in ("sgld", "pgd", "ibp"):
            raise InvalidArgumentError(f"robust.solver must be sgld, pgd or ibp, got {self.solver!r}")
        if not 0.0 <= self.q_weight <= 1.0:
            raise InvalidArgumentError(f"robust.q_weight must be in [0, 1], got {self.q_weight}")
        if not (math.isfinite(self.q_lr) and self.q_lr > 0):
            raise InvalidArgumentError(f"robust.q_lr must be a positive number, got {self.q_lr}")
        if self.q_epochs < 1:
            raise InvalidArgumentError(f"robust.q_epochs must be >= 1, got {self.q_epochs}")
        if not 0.0 < self.q_tau <= 1.0:
            raise InvalidArgumentError(f"robust.q_tau must be in (0, 1], got {self.q_tau}")
        if not 0.0 <= self.radial_mix <= 1.0:
            raise InvalidArgumentError(f"robust.radial_mix must be in [0, 1], got {self.radial_mix}")
        if self.radial_bound not in RADIAL_BOUNDS:
            raise InvalidArgumentError(f"robust.radial_bound must be one of {list(RADIAL_BOUNDS)}, got {self.radial_bound!r}")

    def target_eps(self, env_id: str) -> float:
        return default_eps(env_id) if self.eps is None else float(self.eps)


PRUNE_STRATEGIES = ("none", "random", "magnitude", "magnitude-ste", "saliency")
PRUNE_SCOPES = ("both", "actor", "critic")
PRUNE_ALLOCATIONS = ("layer", "global", "erk")


@dataclass(frozen=True)
class PruneConfig:
    """Element-wise pruning during training (``robustrl.prune``; "Pruning cannot hurt robustness",
    Sections 4.4 and Appendix A). Sparsity follows the cubic schedule
    s_t = s_f (1 - (1 - (t - t0) / (T - t0))^3) over optimiser steps t, from t0 = burn_in * T to
    T = end * (the run's optimiser steps); masks are updated every ``prune_every`` steps."""

    strategy: str = "none"  # none, random (ERK allocation), magnitude, magnitude-ste, saliency
    sparsity: float = 0.0  # final fraction s_f of the pruned weights set to zero, in [0, 1)
    prune_every: int = 20  # optimiser steps between mask updates ("micro-pruning"; the paper: 10-20 best)
    burn_in: float = 0.25  # fraction of the run before pruning starts (the paper: 25%)
    end: float = 1.0  # fraction of the run at which the schedule reaches s_f (the paper: the end)
    scope: str = "both"  # which networks' weight matrices: both (the paper), actor or critic
    # How the sparsity is spread over layers; None: each strategy's default (random: erk;
    # magnitude, magnitude-ste, saliency: layer, i.e. s_f in every layer: a global threshold would
    # empty the actor's output layer first, initialised 100x smaller; docs/methods.md)
    allocation: str | None = None
    # Max |reward| per step for the certified bound alpha = 2 (1 + gamma / (1 - gamma)^2) R_max;
    # None: robustrl.prune.lipschitz.R_MAX (exact where the reward formula bounds it), else not logged
    r_max: float | None = None
    # One-shot pruning (robustrl prune): start from this checkpoint's policy and normaliser
    initial_checkpoint: str | None = None

    def validate(self) -> None:
        check_field_types(self, "prune.")
        if self.strategy not in PRUNE_STRATEGIES:
            raise InvalidArgumentError(
                f"unknown pruning strategy {self.strategy!r}; choose one of {', '.join(PRUNE_STRATEGIES)}"
            )
        if not 0.0 <= self.sparsity < 1.0:
            raise InvalidArgumentError(f"prune sparsity must be in [0, 1), got {self.sparsity:g}")
        if self.prune_every < 1:
            raise InvalidArgumentError(
                f"prune_every must be a whole number of optimiser steps >= 1, got {self.prune_every}"
            )
        if not 0.0 <= self.burn_in <= 1.0:
            raise InvalidArgumentError(f"prune burn_in must be a fraction in [0, 1], got {self.burn_in:g}")
        if not self.burn_in <= self.end <= 1.0:
            raise InvalidArgumentError(f"prune end must be in [burn_in, 1] = [{self.burn_in:g}, 1], got {self.end:g}")
        if self.scope not in PRUNE_SCOPES:
            raise InvalidArgumentError(f"prune scope must be one of {', '.join(PRUNE_SCOPES)}, got {self.scope!r}")
        if self.allocation is not None and self.allocation not in PRUNE_ALLOCATIONS:
            raise InvalidArgumentError(
                f"prune allocation must be one of {', '.join(PRUNE_ALLOCATIONS)}, got {self.allocation!r}"
            )
        if self.r_max is not None and not self.r_max > 0:
            raise InvalidArgumentError(f"prune r_max must be a positive number, got {self.r_max:g}")
        if self.strategy == "none" and self.sparsity > 0:
            raise InvalidArgumentError(f"sparsity {self.sparsity:g} needs a pruning strategy (prune.strategy is none)")


ATLA_ADVERSARIES = ("none", "sa-rl")


@dataclass(frozen=True)
class AtlaConfig:
    """Alternating training with a learned adversary (robustrl.algos.atla; Zhang et al. 2021):
    an SA-RL adversary trains against the agent, and perturbs the observations of a fraction of
    the agent's rollout envs. Composes with every PPO-based method (``--algo``)."""

    adversary: str = "none"  # "none" (off) or "sa-rl"
    fraction: float = 0.5  # of the rollout envs the adversary perturbs (rounded up to whole envs: one of one)
    agent_iterations: int = 10  # agent iterations per phase
    adversary_iterations: int = 10  # adversary PPO iterations per phase (ATLA's 1:1 ratio)
    # the adversary trains at curriculum_scale x eps, down to 1x over this fraction of the run
    # (SA-RL's radius curriculum, robustrl.attacks.adversary); the rollouts are attacked at eps
    curriculum_scale: float = 4.0
    curriculum_fraction: float = 0.5

    def validate(self) -> None:
        check_field_types(self, "atla.")
        if self.adversary not in ATLA_ADVERSARIES:
            raise InvalidArgumentError(f"atla.adversary must be one of {', '.join(ATLA_ADVERSARIES)}, got {self.adversary!r}")
        if not 0.0 < self.fraction <= 1.0:
            raise InvalidArgumentError(f"atla.fraction must be in (0, 1], got {self.fraction:g}")
        for name in ("agent_iterations", "adversary_iterations"):
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"atla.{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.curriculum_scale) and self.curriculum_scale >= 1.0):
            raise InvalidArgumentError(f"atla.curriculum_scale must be a number >= 1 (1 = none), got {self.curriculum_scale:g}")
        if not 0.0 <= self.curriculum_fraction <= 1.0:
            raise InvalidArgumentError(f"atla.curriculum_fraction must be in [0, 1], got {self.curriculum_fraction:g}")


def learned_adversary_on(atla: AtlaConfig | Mapping[str, Any] | None) -> bool:
    """Whether an ``atla`` section (an AtlaConfig, a saved config's or a study spec's dict, or
    absent) puts a learned adversary in the training loop: ``adversary: none`` and an absent
    section (runs written before ATLA existed) both mean off. The one place that reads it so."""
    adversary = atla.adversary if isinstance(atla, AtlaConfig) else (atla or {}).get("adversary", "none")
    return adversary not in (None, "none")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run: what to train, where, for how long, and with which PPO knobs."""

    env_id: str
    algo: str = "ppo"
    total_steps: int = DEFAULT_STEPS
    seed: int = 0
    num_envs: int = 1
    backend: str = "gymnasium"
    checkpoint_every: int = 50  # iterations between checkpoints (one is always written at the end)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    robust: RobustConfig = field(default_factory=RobustConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)  # absent from older config.json: no pruning
    atla: AtlaConfig = field(default_factory=AtlaConfig)  # absent from older config.json: off

    @property
    def steps_per_env(self) -> int:
        return self.ppo.steps_per_iteration // self.num_envs

    @property
    def num_iterations(self) -> int:
        """Iterations of ``steps_per_iteration`` env steps; the last partial one is dropped."""
        return max(1, self.total_steps // (self.steps_per_env * self.num_envs))

    def validate(self) -> None:
        self.ppo.validate()
        self.robust.validate()
        self.prune.validate()
        self.atla.validate()
        for f in fields(self):
            if f.name not in ("ppo", "robust", "prune", "atla"):
                check_field_value(type(self), f.name, getattr(self, f.name))
        if self.total_steps < 1:
            raise InvalidArgumentError(f"total steps must be >= 1, got {self.total_steps}")
        if self.total_steps > MAX_STEPS:
            raise InvalidArgumentError(f"total steps must be at most 1e10 ({MAX_STEPS}), got {self.total_steps:.3g}")
        if self.seed < 0:
            raise InvalidArgumentError(f"seed must be >= 0, got {self.seed}")
        if self.num_envs < 1:
            raise InvalidArgumentError(f"num_envs must be >= 1, got {self.num_envs}")
        if self.ppo.steps_per_iteration % self.num_envs:
            raise InvalidArgumentError(
                f"num_envs ({self.num_envs}) must divide the {self.ppo.steps_per_iteration}-step "
                "batch so every iteration collects the same number of steps"
            )
        if self.checkpoint_every < 1:
            raise InvalidArgumentError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.backend not in BACKENDS:
            raise InvalidArgumentError(f"backend must be one of {BACKENDS}, got {self.backend!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        ppo_data = dict(data.pop("ppo", {}))
        known_ppo = {f.name for f in fields(PPOConfig)}
        unknown = set(ppo_data) - known_ppo
        if unknown:
            raise InvalidArgumentError(f"unknown PPO config keys: {sorted(unknown)}")
        if "hidden_sizes" in ppo_data:
            ppo_data["hidden_sizes"] = tuple(ppo_data["hidden_sizes"])
        for name, value in LEGACY_PPO_VALUES.items():  # knobs newer than the file: its old meaning
            ppo_data.setdefault(name, value)
        robust_data = dict(data.pop("robust", {}))  # absent in runs written before robust training
        for name, value in LEGACY_ROBUST_VALUES.items():  # knobs newer than the file: its old meaning
            if name in robust_data or not reads_robust_knob(data.get("algo", "ppo"), name):
                continue  # a knob its method does not read takes today's default: saved and fresh configs agree
            robust_data[name] = value
        unknown = set(robust_data) - {f.name for f in fields(RobustConfig)}
        if unknown:
            raise InvalidArgumentError(f"unknown robust config keys: {sorted(unknown)}")
        prune_data = _section(data.pop("prune", None), "prune", PruneConfig)  # absent in runs written before pruning
        atla_data = _section(data.pop("atla", None), "atla", AtlaConfig)  # absent in runs written before ATLA
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidArgumentError(f"unknown training config keys: {sorted(unknown)}")
        return cls(
            ppo=PPOConfig(**ppo_data),
            robust=RobustConfig(**robust_data),
            prune=PruneConfig(**prune_data),
            atla=AtlaConfig(**atla_data),
            **data,
        )

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))


def _section(value: Any, name: str, cls: type) -> dict[str, Any]:
    """An optional config section of a saved config (``prune``, ``atla``): an object of ``cls``'s
    fields, or absent (None: the defaults, as in runs written before the section existed)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"{name} config must be an object, got {_describe(value)}")
    unknown = set(value) - {f.name for f in fields(cls)}
    if unknown:
        raise InvalidArgumentError(f"unknown {name} config keys: {sorted(unknown)}")
    return dict(value)


BACKENDS = ("gymnasium", "envpool")
