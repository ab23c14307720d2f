"""The attack protocol and its registry.

An attack perturbs the observations a fixed victim policy acts on, inside B_eps(s) in the victim's
perturbation space (normalised observations for our policies; see
:mod:`robustrl.policies.protocol`). Every attack:

- ``fit(policy, env_id, budget=..., progress=...)``: binds the victim and learns whatever the attack
  needs (nothing for random / critic / MAD; a Q function for RS; an adversary policy for SA-RL and
  PA-AD, trained with our PPO). Learned attacks report to ``progress`` with the library's one
  signature (:mod:`robustrl.progress`): ``progress("fit <name>", env_steps_done, env_steps_total,
  candidate=i, candidates=n, ...)``, counted over the whole grid of candidates;
- ``perturb(obs) -> obs_hat``: a batch of normalised observations to perturbed ones, always inside
  the ball (batched over vector envs);
- ``save(directory)`` / ``Attack.load(directory, policy)``: the learned parts, as safetensors +
  JSON (no pickle), tied to the victim by a fingerprint of its weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from robustrl.errors import CheckpointError, InvalidArgumentError
from robustrl.policies.checkpoint import load_checkpoint, save_checkpoint
from robustrl.policies.protocol import AttackablePolicy
from robustrl.progress import Progress
from robustrl.threads import torch_threads
from robustrl.threat import Ball


def policy_fingerprint(policy: Any) -> str | None:
    """SHA-256 of the victim's weights (and normaliser), so a fitted attack is never silently
    reused against another policy."""
    if not hasattr(policy, "state_dict"):
        return None
    digest = hashlib.sha256()
    for key, value in sorted(policy.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    normalizer = getattr(policy, "normalizer", None)
    if normalizer is not None:
        for key, value in sorted(normalizer.state_dict().items()):
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(np.asarray(value, dtype=np.float64)).tobytes())
    return digest.hexdigest()


class Attack(ABC):
    """Base class: holds the ball, the options dataclass and the bound victim."""

    # Options introduced after the first release, with the value that reproduces the old
    # behaviour: a saved attack whose metadata lacks them was fitted that way.
    legacy_options: dict[str, Any] = {}

    name: ClassVar[str]
    learned: ClassVar[bool] = False
    # "observation": perturbs what the victim sees (these); "action": acts through an opponent
    # agent (robustrl.attacks.action). Both share ATTACKS, the report rows and the cache format.
    side: ClassVar[str] = "observation"
    # Trains an adversary policy with RL (SA-RL, PA-AD): the median-agent protocol runs these on
    # the median agent only (BARPO App. F.3). Robust Sarsa is learned but cheap.
    expensive: ClassVar[bool] = False
    Options: ClassVar[type]  # a dataclass of the attack's knobs, defaults from the reference code

    def __init__(self, eps: float, norm: str = "inf", *, seed: int = 0, **options: Any):
        self.ball = Ball(eps, norm)
        known = {f.name for f in dataclasses.fields(self.Options)}
        unknown = set(options) - known
        if unknown:
            raise InvalidArgumentError(
                f"attack {self.name!r} has no option(s) {sorted(unknown)}; it takes {sorted(known)}"
            )
        self.options = self.Options(**options)
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.policy: AttackablePolicy | None = None
        self.env_id: str | None = None
        self.fitted = not self.learned
        self.fit_budget: int | None = None  # the budget of the last fit (part of a cached fit's identity)
        # seconds the last fit took, kept with a cached fit: a study that fits in one task and
        # evaluates in another (experiments/study.py's fit tasks) still prices its fits
        self.fit_seconds: float | None = None
        # a folder where a learned attack keeps its training state while it fits, to resume a fit
        # cut short (robustrl.attacks.adversary.FitCheckpoint); None: not kept
        self.resume_dir: Path | None = None
        self.resumed_seconds = 0.0  # fit seconds spent before a resume, added to fit_seconds

    @property
    def eps(self) -> float:
        return self.ball.eps

    def inputs(self) -> dict[str, Any]:
        """What besides the options decides this attack's result, as JSON (a cached result is
        reused only where it matches: robustrl.evaluate.robustness). Empty for most attacks; the
        transfer attack names the adversary file it replays, which a source's new fits replace."""
        return {}

    # ---- the protocol ----------------------------------------------------------------------------
    def fit(
        self, policy: AttackablePolicy, env_id: str, *, budget: int | None = None, progress: Progress | None = None,
        resume_dir: Path | str | None = None,
    ) -> Attack:  # fmt: skip
        """Bind the victim (and learn, for learned attacks). Returns self. ``resume_dir``: where a
        learned attack keeps its training state while it fits, and resumes it from (the caller
        removes it once the fitted attack is saved)."""
        self.bind(policy, env_id)
        if self.learned:
            self.fit_budget = None if budget is None else int(budget)
            self.resume_dir, self.resumed_seconds = (None if resume_dir is None else Path(resume_dir)), 0.0
            start = time.perf_counter()
            with torch_threads():  # a deliberate thread count (robustrl.threads), as train and evaluate
                self._fit(budget, progress)
            self.fit_seconds = round(time.perf_counter() - start + self.resumed_seconds, 2)
            self.fitted = True
        return self

    def bind(self, policy: AttackablePolicy, env_id: str) -> None:
        self.policy, self.env_id = policy, env_id

    def perturb(self, obs: torch.Tensor) -> torch.Tensor:
        if self.policy is None:
            raise InvalidArgumentError(f"attack {self.name!r}: call fit(policy, env_id) before perturb()")
        if not self.fitted:
            raise InvalidArgumentError(f"attack {self.name!r} is learned: fit() or load() it before perturb()")
        if obs.ndim != 2 or obs.shape[1] != self.policy.obs_dim:
            raise InvalidArgumentError(
                f"attack {self.name!r}: expected a batch of observations of shape (n, {self.policy.obs_dim}), got {tuple(obs.shape)}"
            )
        if self.eps == 0:
            return obs.clone()
        obs_hat = self._perturb(obs.detach().float())
        # The contract every caller relies on: the result is inside the ball.
        return self.ball.project(obs_hat.detach(), obs)

    __call__ = perturb

    @abstractmethod
    def _perturb(self, obs: torch.Tensor) -> torch.Tensor:
        """The attack itself: a batch of normalised observations -> perturbed ones."""

    def _fit(self, budget: int | None, progress: Progress | None) -> None:
        """Learn the attack's parts (learned attacks override; the others learn nothing)."""

    # ---- persistence of learned parts --------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def _load_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        pass

    def _extra_meta(self) -> dict[str, Any]:
        return {}

    def save(self, directory: Path | str) -> Path:
        """Write ``directory/<name>.safetensors`` + ``.json``; returns the stem."""
        return save_fitted(
            Path(directory) / self.name, self._tensors(), self.policy, seed=self.seed, options=self.options,
            fit_budget=self.fit_budget, extra={**self._extra_meta(), "fit_seconds": self.fit_seconds}, attack=self.name, eps=self.eps, norm=self.ball.norm,
            env_id=self.env_id,
        )  # fmt: skip

    @classmethod
    def load(cls, directory: Path | str, policy: AttackablePolicy, env_id: str) -> Attack:
        """Load a saved attack for ``policy``; refuses an attack fitted against another victim."""
        stem = Path(directory) / cls.name
        tensors, meta = load_fitted(stem, policy, attack=cls.name, env_id=env_id)
        try:
            options = {key: _tuples(value) for key, value in meta.get("options", {}).items()}
            # Options added after an attack was saved take the value that reproduces how it was fitted
            options = {**cls.legacy_options, **options}
            attack = cls(meta["eps"], meta["norm"], seed=meta.get("seed", 0), **options)
        except (KeyError, TypeError) as error:
            raise CheckpointError(f"{stem}.json has incomplete attack metadata: {error}") from None
        attack.bind(policy, env_id)
        attack.fit_budget = meta.get("fit_budget")
        attack.fit_seconds = meta.get("fit_seconds")  # None in a file saved before it was kept
        attack._load_tensors(tensors, meta)
        attack.fitted = True
        return attack


def save_fitted(stem: Path, tensors: dict[str, Any], victim: Any, *, seed: int, options: Any, fit_budget: int | None,
                extra: dict[str, Any], **identity: Any) -> Path:  # fmt: skip
    """The cache format of every fitted attack, observation or action side: safetensors + JSON
    holding ``identity`` (attack name, eps or eps_pi, env or game, ...), the options, the seed,
    the budget and the victim's fingerprint."""
    meta = {**identity, "seed": seed, "options": dataclasses.asdict(options), "victim_fingerprint": policy_fingerprint(victim),
            "fit_budget": fit_budget, **extra}  # fmt: skip
    save_checkpoint(stem, tensors, meta)
    return stem


def load_fitted(stem: Path, victim: Any, **identity: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load what :func:`save_fitted` wrote, refusing a file fitted against another victim or with
    another identity (a key the file lacks is accepted: it predates that key)."""
    tensors, meta = load_checkpoint(stem)
    if meta.get("attack") != identity.get("attack"):
        raise CheckpointError(f"{stem}.json holds attack {meta.get('attack')!r}, not {identity.get('attack')!r}")
    fingerprint = policy_fingerprint(victim)
    if fingerprint is not None and meta.get("victim_fingerprint") not in (None, fingerprint):
        raise CheckpointError(f"{stem}.json was fitted against a different victim policy; fit it again")
    for key, value in identity.items():
        if meta.get(key) not in (None, value):
            raise CheckpointError(f"{stem}.json was fitted with {key} {meta.get(key)!r}, not {value!r}")
    return tensors, meta


def _tuples(value: Any) -> Any:
    """JSON turns the options' tuples (e.g. ``grid``) into lists; turn them back, so a loaded
    attack's options compare equal to the ones it was fitted with."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


ATTACKS: dict[str, type[Attack]] = {}


def register(cls: type[Attack]) -> type[Attack]:
    """Class decorator: make ``cls`` available under ``cls.name``. A second class under a taken
    name is refused (it would silently replace the first); re-registering the same class (a module
    reload) is allowed."""
    previous = ATTACKS.get(cls.name)
    if previous is not None and (previous.__module__, previous.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"attack name {cls.name!r} is taken by {previous.__module__}.{previous.__qualname__}")
    ATTACKS[cls.name] = cls
    return cls


ALL = ("random", "critic", "mad", "rs", "sa-rl", "pa-ad")  # the order of the papers' Table 2


def parse_attacks(text: str) -> list[str]:
    """``"random,mad"`` or ``"all"`` -> names, in the table's order; unknown names are an error."""
    if text.strip() in ("", "none"):
        return []
    if text.strip() == "all":
        return list(ALL)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ATTACKS]
    if unknown:
        raise InvalidArgumentError(f"unknown attack(s) {unknown}: choose from {list(ALL)} or 'all'")
    action_side = [name for name in names if ATTACKS[name].side != "observation"]
    if action_side:
        raise InvalidArgumentError(
            f"{action_side} attack(s) act through an opponent agent, not on observations: evaluate them on a two-player "
            "game (robustrl.attacks.action.evaluate_against); observation attacks: " + ", ".join(ALL)
        )
    return list(dict.fromkeys(names))


def make_attack(name: str, eps: float, norm: str = "inf", *, seed: int = 0, **options: Any) -> Attack:
    if name not in ATTACKS:
        raise InvalidArgumentError(f"unknown attack {name!r}: choose from {list(ALL)}")
    if ATTACKS[name].side != "observation":
        raise InvalidArgumentError(f"{name!r} acts through an opponent agent; build it with robustrl.attacks.action")
    return ATTACKS[name](eps, norm, seed=seed, **options)
