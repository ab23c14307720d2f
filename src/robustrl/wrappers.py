"""Attacks where users' own loops are: a Gymnasium wrapper that shows an agent attacked observations.

``AttackedObservation(env, victim, attack)`` perturbs each observation of ``env`` the way
:func:`robustrl.evaluate.robustness_report` does: in the victim's perturbation space (its
normalised observations, ``victim.perturbation_space``), inside the attack's eps-ball. It returns
a *raw* observation, so the user's agent (an SB3 model with its VecNormalize, a CleanRL agent with
its running normaliser, our policy) normalises it as usual and sees the attack's ``s_hat``. Use
it to evaluate a policy under attack inside your own code, or to train against an attacker
(ATLA-style: fit the attack on a victim, wrap the training env, keep training).

For the Stable-Baselines3 callback that logs the robustness table while training, see
:mod:`robustrl.sb3`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robustrl.envs.normalization import ObservationNormalizer
from robustrl.errors import InvalidArgumentError

__all__ = ["AttackedObservation", "denormalizer"]


def denormalizer(policy: Any):
    """The map from a *change* of the victim's normalised observation back to raw units, per
    dimension (a vector of scales), or None when the perturbation space is the raw one. Policies
    with an :class:`~robustrl.envs.normalization.ObservationNormalizer` (ours, SB3, CleanRL) have
    one; a ``TorchModulePolicy`` with its own ``normalize`` function cannot be inverted."""
    normalizer = getattr(policy, "normalizer", None)
    if normalizer is not None:
        if not normalizer.enabled:
            return None
        return np.sqrt(normalizer.stats.var + normalizer.epsilon).astype(np.float64)
    if hasattr(policy, "module"):  # TorchModulePolicy: raw space, or a loaded VecNormalize
        function = getattr(policy, "_normalize_fn", None)
        if function is None:
            return None
        if isinstance(function, ObservationNormalizer):
            return denormalizer(type("_Victim", (), {"normalizer": function})())
    raise InvalidArgumentError(
        f"{type(policy).__name__} normalises observations with a function robustrl cannot invert, so the "
        "wrapper cannot turn a perturbed normalised observation back into a raw one"
    )


class AttackedObservation(gym.ObservationWrapper):
    """Replace each observation ``s`` by the raw observation whose normalisation (by ``victim``) is
    the attack's ``s_hat`` in B_eps(normalise(s)).

    ``attack``: an :class:`~robustrl.attacks.base.Attack` (``robustrl.attacks.make_attack``). An
    unfitted attack that learns nothing (random, critic, MAD) is bound to ``victim`` here; a
    learned one (RS, SA-RL, PA-AD) must already be fitted or loaded for this victim. The
    perturbation is added in normalised space and mapped back by the normaliser's scale, so a
    victim that clips its normalised observations sees ``s_hat`` clipped as usual, and eps=0
    leaves observations untouched. After each step, ``last_clean`` and ``last_perturbed`` hold the
    victim-space observations (numpy), e.g. for plots.
    """

    def __init__(self, env: gym.Env, victim: Any, attack: Any):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or space.shape != victim.observation_space.shape:
            raise InvalidArgumentError(
                f"the victim expects observations of shape {victim.observation_space.shape}, the env gives {space}"
            )
        if getattr(attack, "side", "observation") != "observation":
            raise InvalidArgumentError(f"attack {attack.name!r} acts through an opponent, not on observations")
        if attack.policy is None or attack.policy is not victim:
            if attack.learned:
                raise InvalidArgumentError(
                    f"attack {attack.name!r} is learned: fit it on this victim first (attack.fit(victim, env_id))"
                )
            attack.fit(victim, getattr(victim, "env_id", None) or (env.spec.id if env.spec else None))
        self.victim, self.attack = victim, attack
        self.scale = denormalizer(victim)
        self.last_clean: np.ndarray | None = None
        self.last_perturbed: np.ndarray | None = None

    def observation(self, observation: np.ndarray) -> np.ndarray:
        raw = np.asarray(observation)
        with torch.no_grad():
            clean = self.victim.normalize(raw[None].astype(np.float32))
            perturbed = self.attack.perturb(clean)
        delta = (perturbed - clean)[0].double().numpy()
        self.last_clean, self.last_perturbed = clean[0].numpy(), perturbed[0].numpy()
        shifted = raw + (delta if self.scale is None else delta * self.scale)
        return shifted.astype(self.observation_space.dtype, copy=False)
