"""Action-side attacks: the attacker acts through another agent of a multi-agent env.

Observation attacks (:mod:`robustrl.attacks.base`) perturb what the victim sees. Here the victim's
observations are clean, and the attacker controls the *opponent* agent, but only partly: with
probability ``eps_pi`` per step the adversarial policy acts, otherwise the benign opponent does
(Rethinking adversarial policies, Sec. 3: the deployed opponent is the mixture
``(1 - eps_pi) * benign + eps_pi * adversarial``; eps_pi = 1 is the classic adversarial policy of
Gleave et al.). Both faces share the attack registry (``ATTACKS``; ``side`` tells them apart), the
report row format (``{"mean", "std", "returns"}`` of the victim's return) and the cache of fitted
attacks (safetensors + JSON, tied to the victim's weights by fingerprint).
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from robustrl.attacks.base import load_fitted, register, save_fitted
from robustrl.envs.multiagent import FrozenPolicy, OpponentPolicy, OpponentView
from robustrl.errors import CheckpointError, InvalidArgumentError
from robustrl.threads import torch_threads, with_torch_threads


class PartialControl:
    """The deployed opponent: each step a seeded coin gives control to ``adversarial`` with
    probability ``eps_pi``, else to ``benign``. Counts the steps the attacker controlled."""

    def __init__(self, benign: OpponentPolicy, adversarial: OpponentPolicy, eps_pi: float, seed: int = 0):
        self.benign, self.adversarial, self.eps_pi = benign, adversarial, check_eps_pi(eps_pi)
        self.rng = np.random.default_rng(seed)
        self.controlled_steps = self.steps = 0

    def act(self, obs: np.ndarray) -> Any:
        self.steps += 1
        # draw the coin every step even when eps_pi is 0 or 1, so the stream does not depend on it
        if self.rng.random() < self.eps_pi:
            self.controlled_steps += 1
            return self.adversarial.act(obs)
        return self.benign.act(obs)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.benign.reset(None if seed is None else seed + 7919)
        self.adversarial.reset(None if seed is None else seed + 15485863)


def check_eps_pi(eps_pi: float) -> float:
    if not isinstance(eps_pi, (int, float)) or not math.isfinite(eps_pi) or not 0.0 <= eps_pi <= 1.0:
        raise InvalidArgumentError(f"eps_pi (the attacker's share of control) must be in [0, 1], got {eps_pi!r}")
    return float(eps_pi)


@dataclass(frozen=True)
class TwoPlayerGame:
    """Where an action-side attack happens: a PettingZoo parallel env factory, the victim's seat,
    the attacker's seat and the benign opponent the attacker partly replaces."""

    env_fn: Callable[[], Any]
    victim: str
    attacker: str
    benign: Callable[[], OpponentPolicy]  # a fresh benign opponent per env copy
    label: str = "two-player game"


class _CoinSeat(gym.Wrapper):
    """The attacker's seat with partial control: with probability 1 - eps_pi the benign opponent's
    action replaces the attacker's. PPO trained here learns the adversarial part of the mixture;
    on the steps it did not control its action had no effect, so those steps add noise, not bias,
    to its policy gradient."""

    def __init__(self, view: OpponentView, benign: OpponentPolicy, eps_pi: float):
        super().__init__(view)
        self.benign, self.eps_pi = benign, eps_pi
        self.rng = np.random.default_rng(0)
        self._obs: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self.rng = np.random.default_rng(seed + 104729)
            self.benign.reset(seed + 1299709)
        self._obs = obs
        return obs, info

    def step(self, action: Any):
        if self.rng.random() >= self.eps_pi:
            action = self.benign.act(self._obs)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._obs = obs
        return obs, reward, terminated, truncated, info


class ActionAttack(ABC):
    """Base class of the action-side attacks (see module docstring)."""

    side: ClassVar[str] = "action"
    name: ClassVar[str]
    learned: ClassVar[bool] = True
    Options: ClassVar[type]

    def __init__(self, eps_pi: float, *, seed: int = 0, **options: Any):
        self.eps_pi = check_eps_pi(eps_pi)
        known = {f.name for f in dataclasses.fields(self.Options)}
        if set(options) - known:
            raise InvalidArgumentError(
                f"attack {self.name!r} has no option(s) {sorted(set(options) - known)}; it takes {sorted(known)}"
            )
        self.options = self.Options(**options)
        self.seed = int(seed)
        self.victim: Any = None
        self.game: TwoPlayerGame | None = None
        self.fit_budget: int | None = None

    def fit(self, victim: Any, game: TwoPlayerGame, *, budget: int | None = None, progress: Any = None) -> ActionAttack:
        """Learn the adversarial part against ``victim`` (frozen) in ``game``. Returns self."""
        if game.victim == game.attacker:
            raise InvalidArgumentError("the victim and the attacker must sit in different seats")
        self.victim, self.game = victim, game
        self.fit_budget = None if budget is None else int(budget)
        with torch_threads():  # a deliberate thread count (robustrl.threads), as the observation attacks
            self._fit(budget, progress)
        return self

    @abstractmethod
    def _fit(self, budget: int | None, progress: Any) -> None: ...

    @abstractmethod
    def adversarial_policy(self) -> OpponentPolicy:
        """The learned adversarial opponent (full control)."""

    def opponent(self, seed: int = 0) -> PartialControl:
        """The deployed opponent: the benign one, with the attacker in control w.p. eps_pi."""
        if self.game is None:
            raise InvalidArgumentError(f"attack {self.name!r}: fit() or load() it before opponent()")
        return PartialControl(self.game.benign(), self.adversarial_policy(), self.eps_pi, seed)

    # ---- persistence: the same cache format as the observation attacks ---------------------------
    def _tensors(self) -> dict[str, Any]:
        return {}

    def _load_tensors(self, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
        pass

    def _extra_meta(self) -> dict[str, Any]:
        return {}

    def save(self, directory: Path | str) -> Path:
        return save_fitted(
            Path(directory) / self.name, self._tensors(), self.victim, seed=self.seed, options=self.options,
            fit_budget=self.fit_budget, extra=self._extra_meta(), attack=self.name, side=self.side, eps_pi=self.eps_pi,
            game=self.game.label if self.game else None,
        )  # fmt: skip

    @classmethod
    def load(cls, directory: Path | str, victim: Any, game: TwoPlayerGame) -> ActionAttack:
        stem = Path(directory) / cls.name
        tensors, meta = load_fitted(stem, victim, attack=cls.name, side="action", game=game.label)
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in meta.get("options", {}).items()}
        attack = cls(meta["eps_pi"], seed=meta.get("seed", 0), **options)
        attack.victim, attack.game, attack.fit_budget = victim, game, meta.get("fit_budget")
        attack._load_tensors(tensors, meta)
        return attack


@register
class AdversarialPolicyAttack(ActionAttack):
    """An adversarial policy (Gleave et al. 2020) under partial control (Rethinking adversarial
    policies, Sec. 3): PPO trains the attacker's seat against the frozen victim, where each step
    its action is replaced by the benign opponent's with probability 1 - eps_pi; the attacker's
    reward is its own reward in the (zero-sum) game."""

    name = "adv-policy"

    @dataclass(frozen=True)
    class Options:
        num_envs: int = 4
        hidden_sizes: tuple[int, ...] = (64, 64)

    def _fit(self, budget: int | None, progress: Any) -> None:
        from robustrl.algos.ppo import PPO, PPOHooks
        from robustrl.config import TrainConfig, ppo_defaults_for

        game, victim = self.game, self.victim

        def seat() -> gym.Env:
            view = OpponentView(game.env_fn(), game.attacker, {game.victim: FrozenPolicy(victim, deterministic=False)})
            return _CoinSeat(view, game.benign(), self.eps_pi)

        config = TrainConfig(
            env_id=f"{game.label} ({game.attacker} vs frozen {game.victim})",
            total_steps=int(budget or 100_000),
            seed=self.seed,
            num_envs=self.options.num_envs,
            ppo=ppo_defaults_for("CartPole-v1", entropy_coef=0.0, hidden_sizes=tuple(self.options.hidden_sizes)),
        )
        hooks = PPOHooks()
        if progress is not None:
            hooks.on_iteration.append(lambda stats: progress(f"fit {self.name}", stats.global_step, config.total_steps))
        trainer = PPO(config, hooks, env=seat)
        try:
            trainer.learn()
        finally:
            trainer.close()
        trainer.policy.eval()
        self._policy = trainer.policy

    def adversarial_policy(self) -> OpponentPolicy:
        # deployed deterministically (its mean / most likely action), as the papers evaluate
        return FrozenPolicy(self._policy, deterministic=True, seed=self.seed)

    def _tensors(self) -> dict[str, Any]:
        from robustrl.policies.checkpoint import policy_tensors

        return policy_tensors(self._policy)

    def _extra_meta(self) -> dict[str, Any]:
        from robustrl.policies.checkpoint import policy_meta

        return {"policy": policy_meta(self._policy, self.game.label)}

    def _load_tensors(self, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
        from robustrl.policies.checkpoint import policy_from_checkpoint

        if "policy" not in meta:
            raise CheckpointError(f"saved {self.name} attack lacks its policy metadata; fit it again")
        self._policy = policy_from_checkpoint(tensors, meta["policy"], f"saved {self.name} attack")
        self._policy.eval()


@with_torch_threads
def evaluate_against(
    victim: Any,
    game: TwoPlayerGame,
    opponent: OpponentPolicy,
    *,
    episodes: int = 100,
    seed: int = 10_000,
    deterministic: bool = False,
) -> dict[str, Any]:
    """The victim's return (mean, std, every episode) when ``opponent`` plays the attacker's seat:
    the report row of an action-side attack, in the format of the observation attacks' rows."""
    if episodes < 1:
        raise InvalidArgumentError(f"episodes must be >= 1, got {episodes}")
    view = OpponentView(game.env_fn(), game.victim, {game.attacker: opponent})
    player = FrozenPolicy(victim, deterministic=deterministic, seed=seed)
    returns = []
    for k in range(episodes):
        obs, _ = view.reset(seed=seed + k)
        player.reset(seed + k)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = view.step(player.act(obs))
            total += reward
            done = terminated or truncated
        returns.append(total)
    view.close()
    return {"mean": float(np.mean(returns)), "std": float(np.std(returns)), "returns": returns}
