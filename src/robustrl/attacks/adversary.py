"""The adversary MDP and the PPO training shared by the learned attacks (SA-RL, PA-AD).

SA-RL (Zhang et al. 2021, "Robust RL on state observations with learned optimal adversary",
Sec. 3) shows that for a fixed victim pi, the strongest observation adversary is the optimal
policy of an MDP whose state is the true state, whose action chooses the perturbed observation
and whose reward is minus the victim's reward. PA-AD (Sun et al. 2022) keeps that MDP but lets the
adversary (the *director*) choose a direction in the victim's action space, which an *actor*
turns into an observation perturbation. Both differ only in ``perturbation(obs, adversary_action)``,
so one vector env serves both, and our one PPO loop trains the adversary.

The adversary observes the victim's normalised observation (the victim's normaliser is frozen, so
this is a fixed transform of the state) and keeps its own running normaliser on top, as any policy.
The victim acts deterministically (mean action), as in the evaluation it is attacked in.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector.utils import batch_space

from robustrl.attacks.base import Attack, policy_fingerprint
from robustrl.config import TrainConfig, fast_settings, ppo_defaults_for
from robustrl.envs.make import make_env, require_finite
from robustrl.errors import CheckpointError, InvalidArgumentError
from robustrl.policies.actor_critic import ActorCritic
from robustrl.policies.checkpoint import (
    load_checkpoint,
    policy_from_checkpoint,
    policy_meta,
    policy_tensors,
    save_checkpoint,
)
from robustrl.policies.episodes import run_episodes
from robustrl.progress import Progress
from robustrl.threat import Ball

# perturbation(normalised obs, adversary actions in [-1, 1]) -> perturbed normalised obs
PerturbationFromAction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class AdversaryVectorEnv(gym.vector.VectorEnv):
    """Vector env of the adversary MDP around ``num_envs`` copies of the victim's env.

    Same episode semantics as :func:`robustrl.envs.make_env` (same-step autoreset, final
    observations in ``info["final_obs"]``), so PPO runs on it unchanged.
    """

    def __init__(
        self,
        victim: Any,
        env_id: str,
        num_envs: int,
        seed: int,
        action_dim: int,
        perturbation: PerturbationFromAction,
        backend: str = "gymnasium",
    ):
        self.env = make_env(env_id, num_envs, seed, backend)
        self.env_id = env_id
        self.victim = victim
        self.perturbation = perturbation
        self.num_envs = num_envs
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (victim.obs_dim,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        self._obs: torch.Tensor | None = None
        # the victim is frozen: its actor runs in numpy on one copy of its weights (same actions
        # up to float rounding; ~4x cheaper than torch modules on a few rows: issue 16)
        self.set_victim(victim)

    def set_victim(self, victim: Any) -> None:
        """Attack ``victim`` from the next step (ATLA refreshes the agent it trains against). Its
        numpy actor is a copy of the weights now: call again after changing them."""
        from robustrl.threat.objectives import plain_mlp

        self.victim = victim
        self._victim_actor = plain_mlp(victim, "actor")

    def reset(self, *, seed: Any = None, options: Any = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = self.victim.normalize(obs)
        return self._obs.numpy().astype(np.float32), info

    def step(self, actions: np.ndarray):
        adversary_actions = torch.as_tensor(np.asarray(actions), dtype=torch.float32).clamp(-1.0, 1.0)  # hardtanh
        with torch.no_grad():
            obs_hat = self.perturbation(self._obs, adversary_actions)
            if self._victim_actor is not None:
                victim_actions = self.victim.sample_from_output(self._victim_actor(obs_hat.numpy()), None, None, True)
            else:
                victim_actions = self.victim.sample(obs_hat, None, deterministic=True)  # deterministic: draws nothing
        obs, reward, terminated, truncated, info = self.env.step(self.victim.to_env_action(victim_actions))
        require_finite(obs, self.env_id)
        if "final_obs" in info:
            final = np.array(info["final_obs"], dtype=object)
            for i in np.flatnonzero(terminated | truncated):
                final[i] = self.victim.normalize(np.asarray(info["final_obs"][i])[None])[0].numpy()
            info = {**info, "final_obs": final}
        self._obs = self.victim.normalize(obs)
        return self._obs.numpy().astype(np.float32), -np.asarray(reward, dtype=np.float64), terminated, truncated, info

    def close(self, **kwargs: Any) -> None:
        self.env.close()


@dataclasses.dataclass
class FitCheckpoint:
    """Where one adversary's training keeps its state while it trains, so a fit cut short (Ctrl-C,
    SIGTERM, a lost worker) resumes from its last save instead of starting over: a learned attack's
    1M-step fit takes 5-15 min, and a study runner stopped between its saves loses at most
    ``every`` iterations. ``identity`` (victim weights, attack, ball, seed, PPO overrides, budget)
    must match for a saved state to be resumed; anything else starts afresh. A finished adversary
    is kept (``finished``) until the caller has cached the whole fit and removed the folder.
    Resumed training is not bit-identical to an uninterrupted one: the adversary MDP's envs cannot
    be snapshotted, so they start fresh episodes (PPO.load_state)."""

    path: Path  # the state's stem (<path>.safetensors + <path>.json)
    identity: dict[str, Any]
    every: int = 20  # iterations between saves (~40k env steps, ~10 s of a Hopper fit)
    seconds_before: float = 0.0  # training seconds spent before this process resumed it
    resumed_at: int | None = None  # the env step it resumed from (None: started afresh)
    curve: list[list[float]] = dataclasses.field(default_factory=list)  # (env steps, victim return) so far

    def load(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        if not self.path.with_suffix(".json").is_file():
            return None
        try:
            tensors, meta = load_checkpoint(self.path)
        except CheckpointError as error:  # damaged (e.g. a disk full mid-write): start afresh
            warnings.warn(f"{error}; the adversary trains from the start", stacklevel=3)
            return None
        if meta.get("fit_identity") != _as_json(self.identity):
            return None  # another victim, budget or setting: not this fit's state
        return tensors, meta

    def save(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], seconds: float, finished: bool) -> None:
        meta = {**meta, "fit_identity": _as_json(self.identity), "fit_seconds_so_far": seconds,
                "victim_curve": self.curve, "finished": finished}  # fmt: skip
        save_checkpoint(self.path, tensors, meta)


def _as_json(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples -> lists), so a saved identity compares equal."""
    return json.loads(json.dumps(value, default=str))


def _training_identity(config: Any) -> Any:
    """What of a TrainConfig dict decides how an adversary trains: read back through
    TrainConfig.from_dict (a key newer than the save takes the value its absence meant), without
    the speed switches, the monitoring and ``compile`` (it follows whether the machine has a C++
    compiler; results equal up to float rounding). None for a config that does not read back."""
    from robustrl.config import MONITORING, SPEED_SWITCHES, robust_identity

    try:
        data = _as_json(TrainConfig.from_dict(dict(config)).to_dict())
    except (InvalidArgumentError, TypeError, ValueError, KeyError):
        return None
    data["ppo"] = {k: v for k, v in data.get("ppo", {}).items() if k not in (*SPEED_SWITCHES, *MONITORING, "compile")}
    data["robust"] = robust_identity(data)  # e.g. radial_bound, saved "exact" before its default changed
    return data


def train_adversary(
    victim: Any,
    env_id: str,
    *,
    action_dim: int,
    perturbation: PerturbationFromAction,
    total_steps: int,
    seed: int,
    num_envs: int,
    ppo_overrides: dict[str, Any],
    on_iteration: Callable[[int, float | None], None] | None = None,
    curriculum: Callable[[float], PerturbationFromAction] | None = None,
    backend: str | None = None,
    checkpoint: FitCheckpoint | None = None,
) -> ActorCritic:
    """Train an adversary policy with our PPO on the adversary MDP; returns it (in eval mode).

    ``total_steps`` is rounded to whole PPO iterations (:func:`adversary_steps`).
    ``on_iteration(env_steps, victim_return)``, if given, is called after every PPO iteration with
    the env steps so far and the victim's mean episodic return under the training adversary over
    the episodes that iteration ended (None if none ended): the adversary's learning curve.
    ``curriculum``, if given, maps the fraction of the budget spent to the perturbation to train
    with next (the radius curriculum of :class:`LearnedAdversaryAttack`). ``checkpoint``, if
    given, saves the training state every ``checkpoint.every`` iterations and at the end, and
    resumes from a matching saved state (its curve points are replayed through ``on_iteration``
    first; a finished one is returned without training)."""
    from robustrl.algos.ppo import PPO, PPOHooks

    start = time.perf_counter()
    total_steps = adversary_steps(env_id, ppo_overrides, total_steps)
    # the fast configuration's compiled update and EnvPool envs, for budgets that earn them back
    fast = fast_settings(env_id, total_steps)[0]
    ppo_overrides = {"compile": fast["compile"], **ppo_overrides}
    backend = backend or fast["backend"]
    ppo = ppo_defaults_for(env_id, **ppo_overrides)
    config = TrainConfig(
        env_id=env_id, algo="adversary", total_steps=total_steps, seed=seed, num_envs=num_envs, ppo=ppo
    )
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None and _training_identity(saved[1].get("config")) != _training_identity(config.to_dict()):
        # the identity holds the caller's overrides; the defaults they fill in may have changed
        # since the save (another robustrl): that state belongs to another training, start afresh
        warnings.warn(f"{checkpoint.path}: saved with another adversary configuration; the adversary trains from the start",
                      stacklevel=2)  # fmt: skip
        saved = None
    if checkpoint is not None and saved is not None:
        checkpoint.seconds_before = float(saved[1].get("fit_seconds_so_far", 0.0))
        checkpoint.curve = [list(point) for point in saved[1].get("victim_curve", [])]
        checkpoint.resumed_at = int(saved[1].get("global_step", 0))
        for steps, victim_return in checkpoint.curve if on_iteration is not None else []:
            on_iteration(int(steps), victim_return)
        if saved[1].get("finished"):  # trained to the end before the cut: no PPO (nor compile) needed
            adversary = policy_from_checkpoint(saved[0], saved[1], checkpoint.path, expected_env_id=env_id)
            adversary.env_id = env_id
            return adversary.eval()

    env = AdversaryVectorEnv(
        victim, env_id, num_envs, seed, action_dim, curriculum(0.0) if curriculum else perturbation, backend
    )
    hooks = PPOHooks()
    if curriculum is not None:

        def advance(stats: Any) -> None:
            env.perturbation = curriculum(stats.global_step / total_steps)

        hooks.on_iteration.append(advance)
    def report(stats: Any) -> None:
        # the adversary's reward is minus the victim's: its episodic return, negated, is the victim's
        victim_return = -float(np.mean(stats.episode_returns)) if stats.episode_returns else None
        if checkpoint is not None and victim_return is not None:
            checkpoint.curve.append([stats.global_step, victim_return])
        if on_iteration is not None:
            on_iteration(stats.global_step, victim_return)

    hooks.on_iteration.append(report)
    trainer = PPO(config, hooks, env=env)
    trainer.policy.env_id = env_id

    def seconds() -> float:
        return checkpoint.seconds_before + time.perf_counter() - start

    if checkpoint is not None:
        if saved is not None:
            trainer.load_state(*saved, source=str(checkpoint.path))
            if curriculum is not None:  # where the radius curriculum was at the save
                env.perturbation = curriculum(trainer.global_step / total_steps)

        def save(stats: Any) -> None:
            if trainer.iteration % checkpoint.every == 0 and not trainer.done:
                checkpoint.save(*trainer.state(), seconds=seconds(), finished=False)

        hooks.on_iteration.append(save)
    try:
        trainer.learn()
    finally:
        trainer.close()
    trainer.policy.eval()
    if checkpoint is not None:  # kept until the whole fit is cached (a grid's later candidate may be cut)
        checkpoint.save(*trainer.state(), seconds=seconds(), finished=True)
    return trainer.policy


def adversary_steps(env_id: str, ppo_overrides: dict[str, Any], total_steps: int) -> int:
    """The env steps :func:`train_adversary` actually trains for: ``total_steps`` rounded down to
    whole PPO iterations, at least one."""
    steps_per_iteration = ppo_defaults_for(env_id, **ppo_overrides).steps_per_iteration
    return max(steps_per_iteration, int(total_steps) // steps_per_iteration * steps_per_iteration)


class LearnedAdversaryAttack(Attack):
    """An attack driven by an adversary policy trained on the adversary MDP (SA-RL, PA-AD).

    ``fit`` trains one adversary per entry of ``options.grid`` (PPO overrides; ``None`` = the
    victim env's reference PPO settings), each for ``budget`` env steps, then keeps the one that
    lowers the victim's return the most over ``selection_episodes`` episodes.

    **Radius curriculum** (our addition; ``curriculum_scale = 1`` is the reference). The adversary
    trains at radius ``curriculum_scale * eps``, shrinking linearly to ``eps`` over the first
    ``curriculum_fraction`` of the budget, then at ``eps``; it is selected and used at ``eps`` only,
    so the threat model is unchanged. Why: at Hopper's eps 0.075 a random perturbation barely
    hurts the victim, the adversary's return carries no signal and PPO does not improve it in 1M
    steps (victim 3218-3442 under SA-RL, 3337-3341 under PA-AD, several learning rates and
    initial stds; benchmarks/results/attacks.md). At 0.3 the victim falls often, SA-RL learns in
    200k steps, and the same adversary used at 0.075 brings the victim from 3453 to 423: the
    perturbation *directions* learnt at a large radius transfer to the small one."""

    expensive = True
    checkpoint_every = 20  # PPO iterations between saves of a fit's state when fit() gets a resume_dir

    learned = True
    legacy_options = {"curriculum_scale": 1.0}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        o = self.options
        if not (np.isfinite(o.curriculum_scale) and o.curriculum_scale >= 1.0):
            raise InvalidArgumentError(
                f"{self.name}: curriculum_scale must be a number >= 1 (1 = no curriculum), got {o.curriculum_scale!r}"
            )
        if not 0.0 <= o.curriculum_fraction <= 1.0:
            raise InvalidArgumentError(
                f"{self.name}: curriculum_fraction must be in [0, 1], got {o.curriculum_fraction!r}"
            )
        self.adversary: ActorCritic | None = None
        self.selection: dict[str, Any] = {}

    # subclasses: the adversary's action space and how an action becomes a perturbation
    @abstractmethod
    def adversary_action_dim(self) -> int:
        """Size of the adversary's action (SA-RL: the observation; PA-AD: the victim's action)."""

    @abstractmethod
    def perturbation_from_action(
        self, obs: torch.Tensor, action: torch.Tensor, ball: Ball | None = None
    ) -> torch.Tensor:
        """The perturbed observations (in ``ball``, default the attack's) an adversary action in
        [-1, 1] selects."""

    def _curriculum(self) -> Callable[[float], PerturbationFromAction] | None:
        o = self.options
        if o.curriculum_scale == 1.0 or self.eps == 0:
            return None

        def perturbation_at(fraction: float) -> PerturbationFromAction:
            progress = min(1.0, fraction / o.curriculum_fraction) if o.curriculum_fraction > 0 else 1.0
            ball = Ball(self.eps * (o.curriculum_scale + (1.0 - o.curriculum_scale) * progress), self.ball.norm)
            return lambda obs, action: self.perturbation_from_action(obs, action, ball)

        return perturbation_at

    def _adversary_actions(self, adversary: ActorCritic, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return adversary.mean_action(adversary.normalize(obs.numpy())).clamp(-1.0, 1.0)

    def _perturb_with(self, adversary: ActorCritic) -> Callable[[torch.Tensor], torch.Tensor]:
        # perturbation_from_action already returns points of the ball (SA-RL projects, PA-AD's FGSM projects)
        return lambda obs: self.perturbation_from_action(obs, self._adversary_actions(adversary, obs))

    def _perturb(self, obs: torch.Tensor) -> torch.Tensor:
        return self._perturb_with(self.adversary)(obs)

    def _fit(self, budget: int | None, progress: Progress | None) -> None:
        o = self.options
        steps = int(budget if budget is not None else o.budget)
        grid = grid_configs(o.grid)
        totals = [adversary_steps(self.env_id, overrides, steps) for overrides in grid]
        candidates, curves = [], []
        for index, overrides in enumerate(grid):
            curve: list[tuple[int, float]] = []
            curves.append(curve)

            def on_iteration(
                env_steps: int, victim_return: float | None, index: int = index, curve: list = curve
            ) -> None:
                if victim_return is not None:
                    curve.append((env_steps, victim_return))
                if progress is not None:
                    fields = {"candidate": index + 1, "candidates": len(grid)}
                    if victim_return is not None:
                        fields["mean_return"] = victim_return
                    progress(f"fit {self.name}", sum(totals[:index]) + env_steps, sum(totals), **fields)

            checkpoint = None
            if self.resume_dir is not None:
                identity = {"attack": self.name, "env_id": self.env_id, "eps": self.eps, "norm": self.ball.norm,
                            "victim": policy_fingerprint(self.policy), "seed": self.seed + index, "candidate": index,
                            "overrides": overrides, "steps": steps, "options": dataclasses.asdict(o)}  # fmt: skip
                checkpoint = FitCheckpoint(Path(self.resume_dir) / f"candidate{index}", identity, self.checkpoint_every)
            adversary = train_adversary(
                self.policy,
                self.env_id,
                action_dim=self.adversary_action_dim(),
                perturbation=self.perturbation_from_action,
                total_steps=steps,
                seed=self.seed + index,
                num_envs=o.num_envs,
                ppo_overrides=overrides,
                on_iteration=on_iteration,
                curriculum=self._curriculum(),
                checkpoint=checkpoint,
            )
            if checkpoint is not None:
                self.resumed_seconds += checkpoint.seconds_before
            candidates.append((overrides, adversary))
        best, means = select_strongest(
            candidates, self.policy, self.env_id, self._perturb_with, o.selection_episodes, seed=20_000 + self.seed
        )
        self.adversary = candidates[best][1]
        self.selection = {
            "chosen": candidates[best][0],
            "grid": grid,
            "selection_returns": means,
            # victim return under each adversary during its training, thinned to <= 100 points
            "training_curves": [curve[:: max(1, len(curve) // 100)] for curve in curves],
        }

    def _tensors(self) -> dict[str, torch.Tensor]:
        return policy_tensors(self.adversary) if self.adversary is not None else {}

    def _extra_meta(self) -> dict[str, Any]:
        if self.adversary is None:
            return {}
        meta = policy_meta(self.adversary, self.env_id)
        return {key: meta[key] for key in ("observation_space", "action_space", "architecture")} | {
            "selection": self.selection
        }

    def _load_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.adversary = policy_from_checkpoint(tensors, meta, f"{self.name} attack")
        self.selection = meta.get("selection", {})


def select_strongest(
    candidates: list[tuple[dict[str, Any], Any]],
    victim: Any,
    env_id: str,
    perturb_with: Callable[[Any], Callable[[torch.Tensor], torch.Tensor]],
    episodes: int,
    seed: int,
) -> tuple[int, list[float]]:
    """Index of the candidate under which the victim's mean return is lowest (the papers keep the
    strongest adversary of a grid), and every candidate's mean return. Selection episodes use
    their own seeds, distinct from the final evaluation's. A single candidate is kept without
    evaluating it."""
    if len(candidates) == 1:
        return 0, []
    means = []
    for _, candidate in candidates:
        result = run_episodes(victim, env_id, episodes, deterministic=True, seed=seed, perturb=perturb_with(candidate))
        means.append(result.mean)
    return int(np.argmin(means)), means


def grid_configs(grid: tuple[dict[str, Any], ...] | None) -> list[dict[str, Any]]:
    return [dict(item) for item in grid] if grid else [{}]
