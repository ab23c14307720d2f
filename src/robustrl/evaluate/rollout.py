"""Evaluation episodes: :func:`run_episodes` lives in :mod:`robustrl.policies.episodes` (below both
evaluation and the attacks, which use it too); this module keeps the names where they were."""

from robustrl.policies.episodes import EpisodeResults, Perturbation, run_episodes

__all__ = ["EpisodeResults", "Perturbation", "run_episodes"]
