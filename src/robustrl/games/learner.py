"""Adversarial training on an exact game as a :class:`~robustrl.algos.learner.Learner`, so it gets
run directories, checkpoints, resume, Ctrl-C and ``progress.csv`` (columns: the training score,
the victim's gradient norm and its exact exploitability) from :func:`robustrl.experiments.run.train`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustrl.algos.learner import IterationStats, StopAndCallbacks, register_learner
from robustrl.errors import InvalidArgumentError
from robustrl.games.training import AdversarialTraining

DEFAULTS = {
    "game": "kuhn_poker",
    "victim_seat": 0,
    "method": "two-timescale",
    "eps_pi": 0.7,
    "iterations": 2000,
    "eta_nu": 0.1,
    "ratio": 20.0,
    "seed": 0,
    "checkpoint_every": 500,
}


def build_game(settings: dict[str, Any]) -> Any:
    """The exact game a learner's settings name: an OpenSpiel game name (Kuhn Poker) or a tabular
    Markov game's JSON object (with ``benign``: a table over states, default uniform)."""
    game = settings["game"]
    if isinstance(game, str):
        from robustrl.games.kuhn import KuhnGame

        return KuhnGame(settings["eps_pi"], victim_seat=settings["victim_seat"], game=game)
    from robustrl.games.markov import PartialControlMarkovGame, TabularMarkovGame

    markov = TabularMarkovGame.from_dict(game)
    benign = settings.get("benign")
    if benign is None:
        benign = np.full(markov.opponent_shape, 1.0 / markov.opponent_shape[1])
    return PartialControlMarkovGame(markov, np.asarray(benign, float), settings["eps_pi"])


class GamesLearner(StopAndCallbacks):
    """One iteration of an :class:`~robustrl.games.training.AdversarialTraining` method per
    ``train_iteration``; settings as in :data:`DEFAULTS`."""

    learner_name = "games-adversarial-training"

    def __init__(self, config: dict[str, Any]):
        unknown = set(config) - set(DEFAULTS) - {"benign"}
        if unknown:
            raise InvalidArgumentError(f"unknown games learner setting(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.settings = {**DEFAULTS, **config}
        iterations = self.settings["iterations"]
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise InvalidArgumentError(f"iterations must be a positive integer, got {iterations!r}")
        self.game = build_game(self.settings)
        self.trainer = AdversarialTraining(
            self.game,
            self.settings["method"],
            eta_nu=self.settings["eta_nu"],
            ratio=self.settings["ratio"],
            seed=self.settings["seed"],
        )
        self.iteration = self.global_step = 0
        self.num_iterations = self.total_steps = iterations
        name = self.settings["game"] if isinstance(self.settings["game"], str) else "markov"
        self.label = f"{self.settings['method']} {name} eps_pi={self.settings['eps_pi']}"
        self._init_stop_and_callbacks()

    @property
    def done(self) -> bool:
        return self.iteration >= self.num_iterations

    def config_dict(self) -> dict[str, Any]:
        return dict(self.settings)

    def train_iteration(self) -> IterationStats:
        metrics = self.trainer.step()
        metrics["exploitability"] = self.trainer.exploitability()
        self.iteration = self.global_step = self.trainer.iteration
        stats = IterationStats(self.iteration, self.global_step, metrics, [])
        self._notify(stats)
        return stats

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        import torch

        tensors = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in self.trainer.state().items()}
        return tensors, {"iteration": self.iteration, "learner": self.learner_name}

    def load_state(self, tensors: dict[str, Any], meta: dict[str, Any], source: str) -> bool:
        self.trainer.load_state({key: value.numpy() for key, value in tensors.items()}, meta["iteration"])
        self.iteration = self.global_step = int(meta["iteration"])
        return True

    @property
    def policy(self) -> np.ndarray:
        return self.trainer.nu

    def close(self) -> None:
        pass


register_learner(
    GamesLearner.learner_name, lambda config, hooks: GamesLearner({k: v for k, v in config.items() if k != "learner"})
)
