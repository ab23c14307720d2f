"""Evaluation of policies: natural return now; attacks join the table through ``perturb``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from robustrl.evaluate.rollout import EpisodeResults, run_episodes
from robustrl.policies.actor_critic import ActorCritic
from robustrl.policies.checkpoint import atomic_write_text


def evaluate(
    policy_or_path: ActorCritic | Path | str,
    env_id: str | None = None,
    *,
    episodes: int = 50,
    seed: int = 10_000,
    modes: tuple[str, ...] = ("deterministic", "stochastic"),
    backend: str = "gymnasium",
    json_path: Path | str | None = None,
    on_episode: Callable[[str, float], None] | None = None,
) -> dict[str, Any]:
    """Natural return of a policy: mean and std over ``episodes`` episodes per mode.

    ``policy_or_path`` is a policy, a run directory or a checkpoint. Evaluation seeds default to
    10000+ so they never coincide with the training envs' seeds. Returns (and optionally writes as
    JSON) ``{"env_id", "episodes", "seed", "results": {mode: summary}}``.
    """
    from robustrl.experiments.run import load_policy

    if isinstance(policy_or_path, ActorCritic):
        policy = policy_or_path
        env_id = env_id or policy.env_id
        if env_id is None:
            raise ValueError("evaluate(policy) needs env_id")
        source = "<policy object>"
    else:
        source = str(policy_or_path)
        policy = load_policy(policy_or_path, env_id)
        env_id = env_id or policy.env_id
    unknown = set(modes) - {"deterministic", "stochastic"}
    if unknown:
        from robustrl.errors import InvalidArgumentError

        raise InvalidArgumentError(f"unknown evaluation mode(s) {sorted(unknown)}")
    results: dict[str, dict[str, float]] = {}
    raw: dict[str, EpisodeResults] = {}
    for mode in modes:
        callback = (lambda ret, mode=mode: on_episode(mode, ret)) if on_episode else None
        raw[mode] = run_episodes(
            policy, env_id, episodes, deterministic=(mode == "deterministic"), seed=seed, backend=backend,
            on_episode=callback,
        )
        results[mode] = raw[mode].summary()
    report = {"source": source, "env_id": env_id, "episodes": episodes, "seed": seed, "results": results}
    if json_path is not None:
        report_with_returns = {**report, "returns": {m: r.returns.tolist() for m, r in raw.items()}}
        atomic_write_text(Path(json_path), json.dumps(report_with_returns, indent=2))
    return report


__all__ = ["evaluate", "run_episodes", "EpisodeResults"]
