"""Stable-Baselines3 integration: the model being trained as an attackable policy, and a callback
that logs its robustness table to SB3's logger (TensorBoard, CSV, stdout: whatever the model has).

Needs ``stable-baselines3`` (the ``sb3`` extra). Example::

    from stable_baselines3 import PPO
    from robustrl.sb3 import RobustnessCallback

    model = PPO("MlpPolicy", "Hopper-v5", tensorboard_log="tb/")
    model.learn(1_000_000, callback=RobustnessCallback("Hopper-v5", attacks=["random", "mad"], every=50_000))
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from robustrl.errors import InvalidArgumentError
from robustrl.policies.adapters import SB3Policy, load_sb3_zip

__all__ = ["RobustnessCallback", "policy_from_model"]


def policy_from_model(model: BaseAlgorithm, env_id: str) -> SB3Policy:
    """A frozen copy of ``model``'s current policy as an :class:`SB3Policy` (the same loader as for
    a saved zip: the model is saved to a temporary file and read back without unpickling). Its
    VecNormalize statistics, if the model trains under one, come along."""
    with tempfile.TemporaryDirectory(prefix="robustrl-sb3-") as directory:
        zip_path = Path(directory) / "model.zip"
        model.save(zip_path)
        stats = None
        vec_normalize = model.get_vec_normalize_env()
        if vec_normalize is not None and getattr(vec_normalize, "norm_obs", False):
            stats = Path(directory) / "vecnormalize.npz"
            np.savez(
                stats,
                obs_mean=vec_normalize.obs_rms.mean,
                obs_var=vec_normalize.obs_rms.var,
                clip_obs=vec_normalize.clip_obs,
                epsilon=vec_normalize.epsilon,
            )
        policy = load_sb3_zip(zip_path, env_id, vecnormalize=stats)
    policy.checkpoint = None
    return policy


class RobustnessCallback(BaseCallback):
    """Every ``every`` env steps, the robustness table of the model being trained (natural return,
    return under each attack, worst-case robustness; BARPO Table 2) on ``episodes`` fresh
    episodes, logged as ``robustness/<column>`` through the model's logger (so to TensorBoard when
    ``tensorboard_log`` is set) and kept in ``reports`` as ``(timesteps, report)``.

    Args:
        env_id: the Gymnasium id the model trains on (its spaces must match).
        attacks: attack names (:data:`robustrl.attacks.ATTACKS`); the cheap ones by default.
            Learned attacks are refitted at every evaluation (costly).
        eps: attack radius in the model's perturbation space (default: the papers' value for the env).
        every: env steps between evaluations; one more runs when training ends.
        episodes: deterministic episodes per column.
        seed: seed of the evaluation episodes.
        norm: ``"inf"`` or ``"2"``.
        attack_options, budgets: per attack name, as for :func:`robustrl.evaluate.robustness_report`.
    """

    def __init__(
        self,
        env_id: str,
        attacks: Sequence[str] = ("random", "mad"),
        *,
        eps: float | None = None,
        every: int = 10_000,
        episodes: int = 5,
        seed: int = 10_000,
        norm: str = "inf",
        attack_options: dict[str, dict[str, Any]] | None = None,
        budgets: dict[str, int] | None = None,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        if every < 1 or episodes < 1:
            raise InvalidArgumentError(f"every and episodes must be >= 1, got every={every}, episodes={episodes}")
        from robustrl.evaluate.robustness import check_attacks

        check_attacks(list(attacks), 0.0 if eps is None else eps, norm, attack_options)
        self.env_id, self.attacks, self.eps, self.every = env_id, list(attacks), eps, int(every)
        self.episodes, self.seed, self.norm = int(episodes), int(seed), norm
        self.attack_options, self.budgets = attack_options, budgets
        self.reports: list[tuple[int, dict[str, Any]]] = []
        self._last = 0

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.every:
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if self.num_timesteps > self._last:
            self.evaluate()

    def evaluate(self) -> dict[str, Any]:
        """Evaluate now, log, and return the report."""
        from robustrl.evaluate.robustness import robustness_report

        self._last = self.num_timesteps
        policy = policy_from_model(self.model, self.env_id)
        report = robustness_report(
            policy, self.env_id, attacks=self.attacks, eps=self.eps, norm=self.norm, episodes=self.episodes,
            seed=self.seed, attack_options=self.attack_options, budgets=self.budgets,
        )  # fmt: skip
        for name, result in report["results"].items():
            self.logger.record(f"robustness/{name}", result["mean"])
        if "worst_case_robustness" in report:
            self.logger.record("robustness/worst_case_robustness", report["worst_case_robustness"])
        self.logger.dump(self.num_timesteps)
        self.reports.append((self.num_timesteps, report))
        return report
