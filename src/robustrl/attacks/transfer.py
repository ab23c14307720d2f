"""Transfer attack: a learned adversary fitted against one victim, used unchanged on another.

Issue 17 asks for an attack the agents were not tuned against ("held-out"): the SA-RL (or PA-AD)
adversary fitted on one seed's agent, replayed on the other seeds' agents of the same task. It
also answers a user's question the per-victim fits cannot: does an adversary found for one policy
break its siblings (a black-box attacker who trained against a surrogate)?

    robustrl evaluate runs/bar-ppo-s1 --attacks transfer \\
        --attack-option transfer.source='"runs/bar-ppo-s0"' --attack-option transfer.attack='"sa-rl"'

``source`` is the run directory whose fitted adversary is replayed (its cache
``<run>/attacks/eps<eps>-l<norm>/<attack>``, written by ``robustrl evaluate --attacks sa-rl``; where
that run's report kept the worst of several fits (``--fits``), that fit's, ``.../fit<j>/<attack>``:
the strongest adversary found for the source), or that cache's directory, or the stem of the files
themselves. The adversary acts on the new
victim's normalised observations inside the evaluation's ball (its network is fitted on the
source's normaliser: part of what a transfer tests). Nothing is fitted: it costs one forward pass
of the adversary per step. The source must be an observation attack fitted on the same env.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robustrl.attacks.base import ATTACKS, Attack, _tuples, register
from robustrl.errors import CheckpointError, InvalidArgumentError
from robustrl.policies.checkpoint import load_checkpoint


@register
class TransferAttack(Attack):
    name = "transfer"

    @dataclass(frozen=True)
    class Options:
        source: str = ""  # a run directory, its attack cache directory, or the fitted files' stem
        attack: str = "sa-rl"  # which fitted adversary of the source: sa-rl or pa-ad

    def __init__(self, eps: float, norm: str = "inf", *, seed: int = 0, **options: Any):
        super().__init__(eps, norm, seed=seed, **options)
        attack = self.options.attack
        if attack not in ATTACKS or not ATTACKS[attack].learned or ATTACKS[attack].side != "observation" or attack == self.name:
            learned = sorted(n for n, c in ATTACKS.items() if c.learned and c.side == "observation" and n != self.name)
            raise InvalidArgumentError(f"transfer.attack must be a learned observation attack ({', '.join(learned)}), got {attack!r}")
        if not self.options.source:
            raise InvalidArgumentError(
                "the transfer attack needs transfer.source: the run directory whose fitted adversary it replays "
                "(e.g. --attack-option transfer.source='\"runs/bar-ppo-s0\"')"
            )
        self.inner: Attack | None = None
        self.source_stem: Path | None = None

    def stem(self) -> Path:
        """The fitted adversary's files (``<stem>.safetensors`` + ``.json``) named by ``source``."""
        source, attack = Path(self.options.source), self.options.attack
        cache = source / "attacks" / f"eps{self.eps:g}-l{self.ball.norm}"
        worst = _worst_fit(source, self.eps, self.ball.norm, attack)
        candidates = [
            source,  # the stem itself
            source / attack,  # an attack cache directory
            (cache / f"fit{worst}" if worst else cache) / attack,  # a run directory: its report's worst fit
        ]
        for stem in candidates:
            if stem.with_name(stem.name + ".json").is_file():
                return stem
        raise InvalidArgumentError(
            f"transfer.source {source}: no fitted {attack} adversary there (looked for {candidates[-1]}.json); "
            f"fit one first: robustrl evaluate {source} --attacks {attack} --eps {self.eps:g}"
        )

    def inputs(self) -> dict[str, Any]:
        """The replayed adversary: its files and a digest of its weights. A source fitted again
        (``--fits 3`` after one fit) keeps its strongest fit elsewhere (``fit<j>/``) or overwrites
        the first: either way a cached transfer result of the old adversary is not reused."""
        import hashlib

        stem = self.stem()
        weights = stem.with_name(stem.name + ".safetensors")
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16] if weights.is_file() else None
        return {"adversary": str(stem.resolve()), "adversary_sha256": digest}

    def bind(self, policy: Any, env_id: str) -> None:
        super().bind(policy, env_id)
        stem = self.stem()
        try:
            tensors, meta = load_checkpoint(stem)  # no victim fingerprint check: another victim is the point
        except CheckpointError as error:
            raise InvalidArgumentError(f"transfer.source: {error}") from None
        attack = self.options.attack
        if meta.get("attack") != attack:
            raise InvalidArgumentError(f"transfer.source: {stem}.json holds attack {meta.get('attack')!r}, not {attack!r}")
        if meta.get("env_id") not in (None, env_id):
            raise InvalidArgumentError(f"transfer.source: {stem}.json was fitted on {meta.get('env_id')}, not {env_id}")
        cls = ATTACKS[attack]
        options = {**cls.legacy_options, **{k: _tuples(v) for k, v in meta.get("options", {}).items()}}
        inner = cls(self.eps, self.ball.norm, seed=self.seed, **options)  # this evaluation's ball
        inner.bind(policy, env_id)
        try:
            inner._load_tensors(tensors, meta)
        except (KeyError, RuntimeError, ValueError) as error:  # shapes of another observation space
            raise InvalidArgumentError(f"transfer.source: {stem} does not fit this victim: {error}") from None
        inner.fit_budget, inner.fitted = meta.get("fit_budget"), True
        self.inner, self.source_stem = inner, stem

    def _perturb(self, obs: torch.Tensor) -> torch.Tensor:
        assert self.inner is not None
        return self.inner._perturb(obs)


def _worst_fit(run_dir: Path, eps: float, norm: str, attack: str) -> int:
    """Which fit of ``attack`` the run's (deterministic) report at ``eps`` keeps as its cell: 0
    without a report, or for a report that fitted it once."""
    import json

    from robustrl.evaluate.reports import report_path

    path = report_path(run_dir, eps, norm) if run_dir.is_dir() else None
    try:
        report = json.loads(path.read_text()) if path is not None and path.is_file() else {}
    except (OSError, ValueError):
        return 0  # unreadable: the first fit, as before fits existed
    worst = report.get("results", {}).get(attack, {}).get("worst_fit", 0) if isinstance(report, dict) else 0
    return worst if isinstance(worst, int) and worst >= 0 else 0
