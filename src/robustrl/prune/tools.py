"""Run-level pruning tools: ``certify`` a run's checkpoints (Theorem 1's bound and the per-state
IBP certificate) and prune a trained run one-shot (optionally fine-tuning with the masks held).
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustrl.config import PruneConfig, TrainConfig
from robustrl.errors import CheckpointError, InvalidArgumentError, RunDirectoryError
from robustrl.policies.checkpoint import (
    atomic_write_text,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    package_versions,
    policy_from_checkpoint,
    require_run_dir,
    save_checkpoint,
)
from robustrl.prune.lipschitz import certified_bound, exact_tv, ibp_tv_bound, r_max_for
from robustrl.prune.masks import prunable_weights


def run_config(run_dir: Path) -> TrainConfig:
    """The TrainConfig of a PPO-family run directory (refuses other learners and non-runs)."""
    run_dir = require_run_dir(run_dir)
    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (json.JSONDecodeError, OSError) as error:
        raise RunDirectoryError(f"{run_dir}/config.json is unreadable: {error}") from None
    if not isinstance(saved, dict) or saved.get("learner", "ppo") != "ppo":
        raise RunDirectoryError(f"{run_dir} is not a PPO-family run (pruning and certify need an actor-critic policy)")
    return TrainConfig.from_dict(saved)


def weight_sparsity(policy: Any, scope: str = "both") -> dict[str, float]:
    """Fraction of exactly-zero entries per weight matrix (and ``"all"``: over all of them)."""
    weights = prunable_weights(policy, scope)
    result = {name: float((w == 0).float().mean()) for name, w in weights.items()}
    total = sum(w.numel() for w in weights.values())
    result["all"] = float(sum(float((w == 0).sum()) for w in weights.values()) / max(total, 1))
    return result


def visited_states(policy: Any, env_id: str, episodes: int, seed: int) -> tuple[torch.Tensor, float, int]:
    """Normalised observations of ``episodes`` deterministic clean episodes of ``policy``, the
    largest |reward| seen and the number of steps."""
    import gymnasium as gym

    env = gym.make(env_id)
    states, max_reward, steps = [], 0.0, 0
    try:
        for episode in range(episodes):
            raw, _ = env.reset(seed=seed + episode)
            done = False
            while not done:
                obs = policy.normalize(np.asarray(raw, dtype=np.float32)[None])
                states.append(obs)
                with torch.no_grad():
                    action = policy.to_env_action(policy.sample(obs, np.random.default_rng(0), deterministic=True))[0]
                raw, reward, terminated, truncated, _ = env.step(action)
                max_reward, steps = max(max_reward, abs(float(reward))), steps + 1
                done = terminated or truncated
    finally:
        env.close()
    return torch.cat(states).float(), max_reward, steps


def certify_run(
    run_dir: Path | str,
    *,
    eps: float | None = None,
    norm: str | None = None,
    r_max: float | None = None,
    episodes: int = 5,
    seed: int = 10_000,
    samples: int = 0,
) -> dict[str, Any]:
    """Theorem 1's certified bound for every checkpoint of a run, and for the newest one the
    per-state IBP certificate over the states of ``episodes`` clean deterministic episodes.

    R_max: ``r_max``, else the run's ``prune.r_max``, else the exact value for envs whose reward
    formula bounds it (``lipschitz.R_MAX``), else the largest |reward| seen in those episodes
    (reported as empirical: not a certificate). ``samples`` > 0 also draws that many random
    corners of the ball per state and reports the largest TV found (a lower bound, for scale).
    """
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    stems = list_checkpoints(run_dir)
    if not stems:
        raise RunDirectoryError(f"{run_dir} has no checkpoints yet")
    eps = config.robust.target_eps(config.env_id) if eps is None else float(eps)
    norm = config.robust.norm if norm is None else str(norm)
    if not (math.isfinite(eps) and eps >= 0):
        raise InvalidArgumentError(f"--eps must be a finite number >= 0, got {eps}")
    if norm not in ("inf", "2"):
        raise InvalidArgumentError(f"--norm must be inf or 2, got {norm!r}")
    if r_max is not None and not r_max > 0:
        raise InvalidArgumentError(f"--r-max must be a positive number, got {r_max}")
    if episodes < 1:
        raise InvalidArgumentError(f"--episodes must be >= 1, got {episodes}")
    tensors, meta, newest = latest_checkpoint(run_dir)
    policy = policy_from_checkpoint(tensors, meta, newest, config.env_id)
    states, max_reward, steps = visited_states(policy, config.env_id, episodes, seed)
    if r_max is not None:
        r_source = "given (--r-max)"
    elif config.prune.r_max is not None:
        r_max, r_source = config.prune.r_max, "the run's prune.r_max"
    elif (known := r_max_for(config.env_id)) is not None:
        r_max, r_source = known
    else:
        r_max = max_reward
        r_source = f"empirical: largest |reward| in {steps} steps of {episodes} clean episodes (not a certificate)"
    gamma = config.ppo.gamma
    rows = []
    for stem in stems:
        try:
            tensors, meta = load_checkpoint(stem)
        except CheckpointError as error:
            warnings.warn(f"skipped unreadable checkpoint: {error}", stacklevel=2)
            continue
        checkpoint_policy = policy_from_checkpoint(tensors, meta, stem, config.env_id)
        pieces = certified_bound(checkpoint_policy, eps, norm, gamma, r_max)
        rows.append(
            {
                "checkpoint": stem.name,
                "iteration": int(meta.get("iteration", 0)),
                "global_step": int(meta.get("global_step", 0)),
                "sparsity": weight_sparsity(checkpoint_policy)["all"],
                "actor_sparsity": weight_sparsity(checkpoint_policy, "actor")["all"],
                **pieces,
            }
        )
    latest = rows[-1]
    per_state = ibp_tv_bound(policy, states, eps, norm)
    ibp = {
        "states": int(states.shape[0]),
        "mean_tv_bound": float(per_state.mean()),  # an estimate of F(theta) from above (Theorem 2)
        "max_tv_bound": float(per_state.max()),
        "bound": latest["alpha"] * float(per_state.mean()),  # alpha * F-hat: the estimate of B(theta)
    }
    if samples > 0:
        ibp["sampled_max_tv"] = float(sampled_tv(policy, states, eps, norm, samples, seed).max())
    return {
        "run": str(run_dir),
        "env_id": config.env_id,
        "checkpoint": str(newest),
        "eps": eps,
        "norm": norm,
        "gamma": gamma,
        "r_max": r_max,
        "r_max_source": r_source,
        "layer_sparsity": weight_sparsity(policy),
        "checkpoints": rows,
        "global": {
            "lipschitz": latest["lipschitz"],
            "c": latest["c"],
            "eps_l2": latest["eps_l2"],
            "tv_bound": latest["tv_bound"],
            "bound": latest["bound"],
        },
        "ibp": ibp,
    }


def sampled_tv(policy: Any, states: torch.Tensor, eps: float, norm: str, samples: int, seed: int) -> torch.Tensor:
    """Largest TV(pi(s), pi(s')) per state over ``samples`` random points s' of the ball (corners
    of the l_inf box, or the l_2 sphere): a lower bound on TV_max(s)."""
    generator = torch.Generator().manual_seed(seed)
    best = torch.zeros(states.shape[0])
    for _ in range(samples):
        if norm == "inf":
            step = eps * (torch.randint(0, 2, states.shape, generator=generator).float() * 2 - 1)
        else:
            direction = torch.randn(states.shape, generator=generator)
            step = eps * direction / torch.linalg.vector_norm(direction, dim=-1, keepdim=True)
        best = torch.maximum(best, exact_tv(policy, states, states + step))
    return best


def prune_run(
    run_dir: Path | str,
    *,
    sparsity: float,
    strategy: str = "magnitude",
    finetune: int | None = None,
    out: Path | str | None = None,
    prune_every: int = 20,
    allocation: str | None = None,
    scope: str = "both",
    progress: Any = None,
) -> Path:
    """One-shot pruning of a trained run's newest checkpoint into a new run directory ``out``.

    Without ``finetune`` the new run holds the pruned policy as its iteration-0 checkpoint (it
    evaluates, attacks and certifies like any run). With ``finetune`` env steps, PPO continues from
    the pruned policy (fresh optimiser and reward scaling) with the masks held, the same settings
    and seed as the source run otherwise. The source run is never written to.
    """
    run_dir = require_run_dir(run_dir)
    config = run_config(run_dir)
    _, _, stem = latest_checkpoint(run_dir)
    prune = PruneConfig(
        strategy=strategy, sparsity=sparsity, prune_every=prune_every, burn_in=0.0, end=0.0, scope=scope,
        allocation=allocation, r_max=config.prune.r_max, initial_checkpoint=str(stem),
    )  # fmt: skip
    prune.validate()
    if strategy == "none":
        raise InvalidArgumentError(
            "--strategy none prunes nothing; choose random, magnitude, magnitude-ste or saliency"
        )
    if strategy == "saliency" and not finetune:
        raise InvalidArgumentError(
            "saliency scores |w * dL/dw| with training gradients; one-shot saliency needs --finetune STEPS"
        )
    out = Path(out) if out is not None else run_dir.parent / f"{run_dir.name}-pruned-{strategy}-{sparsity:g}"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunDirectoryError(f"{out} already exists and is not empty; pick another --out")
    from robustrl.experiments.run import train

    if finetune:
        new = dataclasses.replace(config, total_steps=int(finetune), prune=prune)
        return train(new, out, progress=progress).run_dir
    from robustrl.algos.ppo import PPO, hooks_for

    new = dataclasses.replace(config, total_steps=config.ppo.steps_per_iteration, prune=prune)
    new.validate()
    learner = PPO(new, hooks_for(new))
    try:
        tensors, meta = learner.state()
    finally:
        learner.close()
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(new.to_dict(), indent=2))
    atomic_write_text(out / "versions.json", json.dumps(package_versions(), indent=2))
    save_checkpoint(out / "checkpoints" / "iter_000000", tensors, meta)
    return out
