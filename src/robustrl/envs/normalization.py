"""Observation normalisation and return-based reward scaling, as in SA-PPO's ZFilter/RewardFilter.

We keep these ourselves rather than using Gymnasium's ``NormalizeObservation`` /
``NormalizeReward`` wrappers because (1) the observation statistics must travel *with the policy*
(attacks define eps in this normalised space, and a saved policy must normalise exactly as it did
in training), and (2) resume must restore their exact state from a checkpoint, which needs plain
arrays we can write to safetensors/JSON.
"""

from __future__ import annotations

import numpy as np


def clip(values: np.ndarray, bound: float) -> np.ndarray:
    """``np.clip(values, -bound, bound)`` for non-NaN input, as two ufuncs: np.clip's dispatch
    costs several times the work on the 8-element arrays of a training step."""
    return np.minimum(np.maximum(values, -bound), bound)


class RunningMeanStd:
    """Running mean and variance over a stream of batches (Chan et al. parallel update)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        # A small prior count keeps the first update from dividing by zero (Gymnasium does the same).
        self.count = float(epsilon)

    def update(self, batch: np.ndarray) -> None:
        # np.mean / np.var's arithmetic (same results) without their Python argument handling,
        # which cost more than the maths here: this runs twice per environment step in training.
        batch = np.asarray(batch, dtype=np.float64)
        batch_count = batch.shape[0]
        batch_mean = np.add.reduce(batch, axis=0) / batch_count
        centered = batch - batch_mean
        batch_var = np.add.reduce(centered * centered, axis=0) / batch_count
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": np.array(self.count)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if state["mean"].shape != self.mean.shape:
            raise ValueError(f"running-stat shape {state['mean'].shape} != expected {self.mean.shape}")
        self.mean = np.array(state["mean"], dtype=np.float64)
        self.var = np.array(state["var"], dtype=np.float64)
        self.count = float(state["count"])


class ObservationNormalizer:
    """``clip((obs - mean) / std, -clip, clip)`` with running statistics.

    ``update`` is called by the training loop only; evaluation and attacks use the frozen
    statistics. When ``enabled`` is False it is the identity (clipping included), so eps then
    refers to raw observations.
    """

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, enabled: bool = True, epsilon: float = 1e-8):
        self.stats = RunningMeanStd(shape)
        self.clip = float(clip)
        self.enabled = bool(enabled)
        self.epsilon = epsilon

    def update(self, obs: np.ndarray) -> None:
        if self.enabled:
            self.stats.update(obs)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return np.asarray(obs, dtype=np.float32)
        normalized = (obs - self.stats.mean) / np.sqrt(self.stats.var + self.epsilon)
        return clip(normalized, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.stats.state_dict()

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.stats.load_state_dict(state)


class RewardScaler:
    """Divide rewards by the running std of the discounted return, then clip (SA-PPO "returns").

    ``returns`` holds each env's running discounted return; it is reset where an episode ends.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, enabled: bool = True, epsilon: float = 1e-8):
        self.stats = RunningMeanStd(())
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.gamma = gamma
        self.clip = clip
        self.enabled = enabled
        self.epsilon = epsilon

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return np.asarray(rewards, dtype=np.float64)
        self.returns = self.returns * self.gamma + rewards
        self.stats.update(self.returns)
        scaled = clip(rewards / np.sqrt(self.stats.var + self.epsilon), self.clip)
        self.returns[dones] = 0.0
        return scaled

    def state_dict(self) -> dict[str, np.ndarray]:
        return {**self.stats.state_dict(), "returns": self.returns.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.stats.load_state_dict(state)
        self.returns = np.array(state["returns"], dtype=np.float64)
