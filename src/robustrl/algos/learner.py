"""The face every trainer shows to the run layer (:mod:`robustrl.experiments.run`).

PPO (with any robust objective) is one learner; self-play of two agents, adversarial training with
timescale separation and tabular learners are others. Run directories, checkpoints, resume, Ctrl-C
/ SIGTERM, progress bars and ``progress.csv`` work for anything with this face: the CSV's columns
are the metric names the learner reports, whatever they are.

Resume rebuilds a learner from its run directory's ``config.json``: the ``"learner"`` key there
names an entry of :data:`LEARNERS` (runs written before that key existed are PPO runs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch


@dataclass
class IterationStats:
    iteration: int
    global_step: int
    metrics: dict[str, float]
    episode_returns: list[float]  # raw returns of the episodes that ended in this iteration


@runtime_checkable
class Learner(Protocol):
    """One training iteration at a time, with its whole state as tensors + JSON."""

    learner_name: str  # key of LEARNERS, recorded in config.json for resume
    iteration: int
    global_step: int
    num_iterations: int
    total_steps: int  # env steps of the whole run (for progress)
    label: str  # e.g. "bar-ppo Hopper-v5" (progress display)

    @property
    def done(self) -> bool: ...

    def config_dict(self) -> dict[str, Any]:
        """The learner's settings as JSON (written to config.json once)."""

    def train_iteration(self) -> IterationStats:
        """Collect, update; return the iteration's metrics (their names become CSV columns)."""

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything a resume needs: tensors and JSON metadata."""

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: str) -> bool:
        """Restore :meth:`state`; False if some state (e.g. mid-episode envs) could not be."""

    def request_stop(self) -> None:
        """Finish the current iteration, then stop."""

    def clear_stop_request(self) -> None: ...

    @property
    def stop_requested(self) -> bool: ...

    def add_iteration_callback(self, callback: Callable[[IterationStats], None]) -> None:
        """Call ``callback(stats)`` after every iteration (logging, checkpoints, progress)."""

    def close(self) -> None: ...


class StopAndCallbacks:
    """The Learner protocol's stop request and iteration callbacks, for learners that have no
    other place for them (PPO keeps its own: its callbacks live in its hooks). Call
    :meth:`_init_stop_and_callbacks` in ``__init__`` and :meth:`_notify` after each iteration."""

    def _init_stop_and_callbacks(self) -> None:
        self._callbacks: list[Callable[[IterationStats], None]] = []
        self._stop = False

    @property
    def stop_requested(self) -> bool:
        return self._stop

    def request_stop(self) -> None:
        self._stop = True

    def clear_stop_request(self) -> None:
        self._stop = False

    def add_iteration_callback(self, callback: Callable[[IterationStats], None]) -> None:
        self._callbacks.append(callback)

    def _notify(self, stats: IterationStats) -> None:
        for callback in self._callbacks:
            callback(stats)


# learner name -> fn(config dict from config.json, caller's extra hooks or None) -> Learner
LEARNERS: dict[str, Callable[[dict[str, Any], Any], Learner]] = {}


def register_learner(name: str, build: Callable[[dict[str, Any], Any], Learner]) -> None:
    """Make runs of learner ``name`` resumable from their config.json."""
    LEARNERS[name] = build
