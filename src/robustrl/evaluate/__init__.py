"""Evaluation of policies: natural return, and the robustness table under attacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robustrl.errors import InvalidArgumentError
from robustrl.evaluate.rollout import EpisodeResults, run_episodes
from robustrl.policies.checkpoint import atomic_write_text
from robustrl.policies.protocol import AttackablePolicy
from robustrl.progress import Progress
from robustrl.threads import with_torch_threads


@with_torch_threads
def evaluate(
    policy_or_path: AttackablePolicy | Path | str,
    env_id: str | None = None,
    *,
    episodes: int = 50,
    seed: int = 10_000,
    modes: tuple[str, ...] = ("deterministic", "stochastic"),
    backend: str = "gymnasium",
    json_path: Path | str | None = None,
    progress: Progress | None = None,
    source: str | None = None,
    attacks: list[str] | str | None = None,
    eps: float | None = None,
    **attack_settings: Any,
) -> dict[str, Any]:
    """Natural return of a policy (mean and std over ``episodes`` episodes per mode), or, with
    ``attacks`` (names or ``"all"``), the robustness table of
    :func:`robustrl.evaluate.robustness.robustness_report` (deterministic, eps in the policy's
    perturbation space; ``attack_settings`` are passed on).

    ``policy_or_path`` is a policy, a run directory or a checkpoint. Evaluation seeds default to
    10000+ so they never coincide with the training envs' seeds. ``progress``
    (:mod:`robustrl.progress`) hears ``("episodes <mode>", done, episodes, episode_return=...)``.
    Returns (and optionally writes as JSON) ``{"source", "checkpoint", "env_id", "episodes",
    "seed", "results": {mode: summary}}``; ``checkpoint`` is the file the policy was loaded from
    (a run directory's newest *readable* checkpoint), when known.
    """
    if isinstance(policy_or_path, (str, Path)):
        from robustrl.policies.adapters import load_model

        source = source or str(policy_or_path)
        policy = load_model(policy_or_path, env_id)
    else:
        policy = policy_or_path
        source = source or "<policy object>"
    env_id = env_id or policy.env_id
    if env_id is None:
        raise InvalidArgumentError("evaluate(policy) needs env_id (the policy does not record its env)")
    if attacks is not None:
        from robustrl.attacks import parse_attacks
        from robustrl.evaluate.robustness import robustness_report

        names = parse_attacks(attacks) if isinstance(attacks, str) else list(attacks)
        return robustness_report(
            policy, env_id, attacks=names, eps=eps, episodes=episodes, seed=seed, json_path=json_path,
            source=None if source == "<policy object>" else source, progress=progress, **attack_settings,
        )
    unknown = set(modes) - {"deterministic", "stochastic"}
    if unknown:
        raise InvalidArgumentError(f"unknown evaluation mode(s) {sorted(unknown)}")
    results: dict[str, dict[str, float]] = {}
    raw: dict[str, EpisodeResults] = {}
    for mode in modes:
        callback = None
        if progress is not None:
            count = [0]

            def callback(episode_return: float, mode: str = mode, count: list[int] = count) -> None:
                count[0] += 1
                progress(f"episodes {mode}", count[0], episodes, episode_return=episode_return)

        raw[mode] = run_episodes(
            policy, env_id, episodes, deterministic=(mode == "deterministic"), seed=seed, backend=backend,
            on_episode=callback,
        )
        results[mode] = raw[mode].summary()
    checkpoint = getattr(policy, "checkpoint", None)
    report = {"source": source, "checkpoint": checkpoint, "env_id": env_id, "episodes": episodes, "seed": seed, "results": results}
    if json_path is not None:
        report_with_returns = {**report, "returns": {m: r.returns.tolist() for m, r in raw.items()}}
        atomic_write_text(Path(json_path), json.dumps(report_with_returns, indent=2))
    return report


__all__ = ["EpisodeResults", "evaluate", "run_episodes"]
