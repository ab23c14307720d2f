"""Sumo (Rethinking adversarial policies, Sec. 7 and App. E: Robosumo) with deep RL: benign agents
by self-play, partial-control adversarial policies, their stealth, and the timescale-separated
defence. The exact-game versions of the same algorithms are :mod:`robustrl.games.training`.

Everything trains with the one PPO update (:class:`robustrl.algos.ppo.PPO`) on batches the
rollout collectors fill, and runs through :func:`robustrl.experiments.run.train` (run
directories, checkpoints, exact resume, ``progress.csv``):

- :class:`SumoLearner` (learner ``sumo``): both seats learn from one :class:`MultiAgentCollector`
  rollout per iteration.
    * ``self-play`` (Bansal et al. 2018): one policy plays both seats (its two batches make one
      update); this trains the benign agents.
    * ``two-timescale`` (Algorithm 2): the victim (seat ``player_0``) against an attacker who
      controls ``player_1`` with probability eps_pi per step (else the frozen benign agent acts);
      attacker learning rate = ``ratio`` x the victim's.
    * ``single``: the same with equal learning rates.
    * ``fictitious`` (Heinrich et al. 2015): each iteration the attacker takes a PPO step against
      the current (frozen) victim, then the victim takes a PPO step against an attacker drawn
      uniformly from all past attackers (the average of the best responses); each half gets half
      the iteration's steps.
  The victim starts from the benign agent (``init``); metrics per iteration: the victim's
  ``score`` (win 1, draw 1/2, loss 0 averaged over the episodes that ended), the attacker's
  ``attacker_score = 1 - score`` and ``gradient_norm``, the norm of the victim's policy-gradient
  estimate on its batch before the update (Figure 4b).
- :class:`SumoAttackLearner` (learner ``sumo-attack``): PPO on the attacker's seat against the
  frozen victim, the seat handed to the benign agent with probability 1 - eps_pi per step (the
  coin of :class:`robustrl.attacks.action.AdversarialPolicyAttack`); logs the attacker's win and
  non-loss rates per iteration (Figure 6). Deployed as ``PartialControl(benign, adversarial,
  eps_pi)``.
- :func:`play_matches`: win / draw / loss counts and the victim's observations under any opponent
  (stealth: :mod:`robustrl.games.stealth`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustrl.algos.learner import IterationStats, StopAndCallbacks, register_learner
from robustrl.algos.rollout import Batch, MultiAgentCollector, normalized_advantages
from robustrl.attacks.action import PartialControl, _CoinSeat, check_eps_pi
from robustrl.config import TrainConfig, ppo_defaults_for
from robustrl.envs.multiagent import FrozenPolicy, OpponentPolicy, OpponentView, RandomOpponent
from robustrl.envs.sumo import AGENTS, SumoEnv, SumoSettings
from robustrl.errors import InvalidArgumentError

ENV_ID = "sumo-ant"  # the env id recorded with sumo policies
VICTIM, ATTACKER = AGENTS
METHODS = ("self-play", "two-timescale", "single", "fictitious")
OUTCOME_SCORE = {"win": 1.0, "draw": 0.5, "loss": 0.0}
# Frozen, deployed policies (the victim under attack, the benign agent, the deployed attacker) act
# by their mean action, as the papers evaluate; learners sample. Measured for issue 15: after 3e5
# self-play steps the benign agent beat a random policy in 66% of 100 matches sampling its actions
# (its policy's std was still large) and in 93% acting by its mean.
DEPLOYED_DETERMINISTIC = True


# ---- env pieces -------------------------------------------------------------------------------------
class OutcomeLog:
    """Wraps a :class:`SumoEnv` (parallel API) and appends each finished episode's outcome (from
    ``player_0``'s side) to ``outcomes``, a list the owner drains."""

    def __init__(self, env: Any, outcomes: list[str]):
        self.env, self.outcomes = env, outcomes

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: dict[str, Any]):
        result = self.env.step(actions)
        outcome = result[4].get(VICTIM, {}).get("outcome")
        if outcome is not None:
            self.outcomes.append(outcome)
        return result


class PartialControlSeat:
    """A PettingZoo parallel env whose ``seat`` is only partly controlled: each step, with
    probability 1 - eps_pi, the ``benign`` opponent's action replaces the one the seat's policy
    chose (Rethinking adversarial policies, Eq. 3.2, simulated). The learner at that seat records
    its own action; on steps it did not control that action had no effect (noise, not bias, in its
    policy gradient), as :class:`robustrl.attacks.action.AdversarialPolicyAttack`'s seat."""

    def __init__(self, env: Any, seat: str, benign: FrozenPolicy, eps_pi: float):
        self.env, self.seat, self.benign, self.eps_pi = env, seat, benign, check_eps_pi(eps_pi)
        self.rng = np.random.default_rng(0)
        self._obs: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self.rng = np.random.default_rng(seed + 104729)
            self.benign.reset(seed + 1299709)
        self._obs = obs
        return obs, infos

    def step(self, actions: dict[str, Any]):
        actions = dict(actions)
        if self.rng.random() >= self.eps_pi:
            actions[self.seat] = self.benign.act(self._obs[self.seat])
        result = self.env.step(actions)
        self._obs = result[0]
        return result

    def get_state(self) -> dict[str, Any]:
        return {
            "env": self.env.get_state(),
            "coin": self.rng.bit_generator.state,
            "benign": self.benign.rng.bit_generator.state,
            "obs": {a: np.asarray(o).tolist() for a, o in self._obs.items()},
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.env.set_state(state["env"])
        self.rng.bit_generator.state = state["coin"]
        self.benign.rng.bit_generator.state = state["benign"]
        self._obs = {a: np.asarray(o) for a, o in state["obs"].items()}


def settings_from(value: SumoSettings | dict[str, Any] | None) -> SumoSettings:
    if isinstance(value, SumoSettings):
        return value
    try:
        return SumoSettings(**(value or {}))
    except TypeError as error:
        raise InvalidArgumentError(f"unknown sumo setting: {error}") from None


def load_sumo_policy(path: Path | str) -> Any:
    """A sumo policy from a run directory or checkpoint (a sumo learner's checkpoint holds both
    seats: the victim's, ``victim/...``, is the run's policy)."""
    from robustrl.policies.checkpoint import latest_checkpoint, load_checkpoint, policy_from_checkpoint

    path = Path(path)
    if path.is_dir():
        tensors, meta, stem = latest_checkpoint(path)
    else:
        tensors, meta = load_checkpoint(path)
        stem = path
    if "victim" in meta.get("roles", {}):
        prefix = "victim/"
        tensors = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        meta = meta["roles"]["victim"]
    policy = policy_from_checkpoint(tensors, meta, stem, expected_env_id=ENV_ID)
    policy.checkpoint = str(stem)
    return policy


# ---- PPO pieces -------------------------------------------------------------------------------------
def sumo_train_config(
    total_steps: int, seed: int, lr: float, *, num_envs: int = 1, steps_per_iteration: int = 2048, **ppo: Any
) -> TrainConfig:
    """PPO for one sumo seat: the Ant family's reference knobs (64-64 tanh, 10 epochs, 32
    minibatches, GAE 0.95, clip 0.2: also Robosumo's in the paper, App. E.3) with learning rate
    ``lr`` for both networks."""
    knobs = dict(policy_lr=lr, value_lr=lr, steps_per_iteration=steps_per_iteration, anneal_lr=False)
    knobs.update(ppo)
    return TrainConfig(
        ENV_ID, total_steps=total_steps, seed=seed, num_envs=num_envs, ppo=ppo_defaults_for("Ant", **knobs)
    )


def ppo_for_seat(config: TrainConfig, settings: SumoSettings, seat: str) -> Any:
    """A :class:`PPO` whose update trains the policy of ``seat``. Its own collector (one env copy
    against a random opponent) is never stepped: a :class:`MultiAgentCollector` fills its batches."""
    from robustrl.algos.ppo import PPO

    other = next(a for a in AGENTS if a != seat)

    def view() -> OpponentView:
        env = SumoEnv(settings)
        return OpponentView(env, seat, {other: RandomOpponent(env.action_space(other))})

    return PPO(dataclasses.replace(config, num_envs=1), env=view)


def concat_batches(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    columns = {}
    for name in Batch.__dataclass_fields__:
        if name == "extras":
            continue
        values = [getattr(b, name) for b in batches]
        columns[name] = None if any(v is None for v in values) else torch.cat(values)
    return Batch(**columns)


def policy_gradient_norm(policy: Any, batch: Batch) -> float:
    """``|| grad_theta mean(log pi(a|s) A_hat) ||`` over the actor's parameters (advantages
    normalised as PPO does): the norm of the victim's policy-gradient estimate (Figure 4b)."""
    parameters = [p for n, p in policy.named_parameters() if not n.startswith("critic.")]
    advantages = normalized_advantages(batch.advantages)
    log_prob, _ = policy.log_prob_and_entropy(batch.obs, batch.actions)
    grads = torch.autograd.grad((log_prob * advantages).mean(), parameters)
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))


def copy_policy(source: Any, target: Any) -> None:
    target.load_state_dict(source.state_dict())
    target.normalizer.load_state_dict(source.normalizer.state_dict())


def _score(outcomes: list[str]) -> dict[str, float]:
    n = len(outcomes)
    if n == 0:
        return {"score": math.nan, "win_rate": math.nan, "draw_rate": math.nan, "loss_rate": math.nan, "matches": 0.0}
    wins, draws = outcomes.count("win"), outcomes.count("draw")
    return {
        "score": float(np.mean([OUTCOME_SCORE[o] for o in outcomes])),
        "win_rate": wins / n,
        "draw_rate": draws / n,
        "loss_rate": (n - wins - draws) / n,
        "matches": float(n),
    }


class _PoolPolicy:
    """The fictitious-play opponent: one of the past attackers (``choose`` loads it), acting through
    the normal policy face (normalize / sample / to_env_action) so the collector can use it."""

    def __init__(self, template: Any):
        import copy

        self.policy = copy.deepcopy(template)
        self.policy.eval()

    def choose(self, tensors: dict[str, torch.Tensor], normalizer: dict[str, Any]) -> None:
        self.policy.load_state_dict(tensors)
        self.policy.normalizer.load_state_dict(normalizer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)


# ---- the two-seat learner -------------------------------------------------------------------------
SUMO_DEFAULTS: dict[str, Any] = {
    "method": "self-play",
    "eps_pi": 1.0,  # the attacker's share of control during training (not used by self-play)
    "total_steps": 200_000,  # joint env steps
    "seed": 0,
    "num_envs": 4,
    "steps_per_iteration": 2048,  # joint steps per iteration (all env copies)
    "victim_lr": 1e-4,  # eta_nu
    "ratio": 10.0,  # eta_alpha / eta_nu for two-timescale and fictitious play
    "init": None,  # run dir or checkpoint the victim starts from (defence: the benign agent)
    "benign": None,  # the benign opponent the attacker partly replaces (default: init)
    "attacker_init": None,  # run dir / checkpoint the attacker starts from (None: fresh weights)
    "settings": {},  # SumoSettings fields
    "checkpoint_every": 10,
    "ppo": {},  # further PPOConfig overrides
}


class SumoLearner(StopAndCallbacks):
    """Two seats of the sumo arena trained together (see the module docstring); meets the
    :class:`~robustrl.algos.learner.Learner` protocol. ``config``: keys of :data:`SUMO_DEFAULTS`."""

    learner_name = "sumo"

    def __init__(self, config: dict[str, Any]):
        unknown = set(config) - set(SUMO_DEFAULTS)
        if unknown:
            raise InvalidArgumentError(
                f"unknown sumo learner setting(s) {sorted(unknown)}; known: {sorted(SUMO_DEFAULTS)}"
            )
        self.settings_dict = {**SUMO_DEFAULTS, **config}
        s = self.settings_dict
        self.method = s["method"]
        if self.method not in METHODS:
            raise InvalidArgumentError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        self.eps_pi = check_eps_pi(s["eps_pi"])
        if self.method != "self-play" and s["init"] is None:
            raise InvalidArgumentError(f"{self.method} defends a trained victim: give init (the benign agent's run)")
        self.arena = settings_from(s["settings"])
        steps, num_envs = int(s["steps_per_iteration"]), int(s["num_envs"])
        if steps % num_envs or (self.method == "fictitious" and (steps // num_envs) % 2):
            raise InvalidArgumentError(
                f"num_envs ({num_envs}) must divide steps_per_iteration ({steps}) (fictitious: into even parts)"
            )
        self.steps_per_env = steps // num_envs
        self.num_iterations = max(1, int(s["total_steps"]) // steps)
        self.total_steps = self.num_iterations * steps
        seed = int(s["seed"])
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        victim_lr = float(s["victim_lr"])
        attacker_lr = victim_lr * (1.0 if self.method == "single" else float(s["ratio"]))
        ppo = dict(s["ppo"])
        victim_config = sumo_train_config(
            self.total_steps, seed, victim_lr, num_envs=num_envs, steps_per_iteration=steps, **ppo
        )
        self.roles: dict[str, Any] = {"victim": ppo_for_seat(victim_config, self.arena, VICTIM)}
        if s["init"] is not None:
            copy_policy(load_sumo_policy(s["init"]), self.roles["victim"].policy)
        self.outcomes: list[str] = []
        env_copies = [self._env_fn(k) for k in range(num_envs)]
        common = dict(rng=self.rng, gamma=victim_config.ppo.gamma, gae_lambda=victim_config.ppo.gae_lambda, seed=seed)
        if self.method == "self-play":
            victim = self.roles["victim"].policy
            self.collectors = {
                "both": MultiAgentCollector(
                    env_copies, {VICTIM: victim, ATTACKER: victim}, steps_per_env=self.steps_per_env, **common
                )
            }
        else:
            attacker_config = sumo_train_config(
                self.total_steps, seed + 1, attacker_lr, num_envs=num_envs, steps_per_iteration=steps, **ppo
            )
            self.roles["attacker"] = ppo_for_seat(attacker_config, self.arena, ATTACKER)
            if s["attacker_init"] is not None:
                copy_policy(load_sumo_policy(s["attacker_init"]), self.roles["attacker"].policy)
            players = {VICTIM: self.roles["victim"].policy, ATTACKER: self.roles["attacker"].policy}
            if self.method in ("two-timescale", "single"):
                self.collectors = {
                    "both": MultiAgentCollector(env_copies, players, steps_per_env=self.steps_per_env, **common)
                }
            else:
                half = self.steps_per_env // 2
                self.pool: list[dict[str, torch.Tensor]] = []
                self.pool_normalizers: list[dict[str, Any]] = []
                self.pool_policy = _PoolPolicy(self.roles["attacker"].policy)
                self.collectors = {
                    "attacker": MultiAgentCollector(env_copies, players, trained=(ATTACKER,), steps_per_env=half, **common),
                    "victim": MultiAgentCollector(
                        [self._env_fn(k + num_envs) for k in range(num_envs)], {**players, ATTACKER: self.pool_policy},
                        trained=(VICTIM,), steps_per_env=half, **{**common, "seed": seed + 7_777_777},
                    ),
                }  # fmt: skip
        self.iteration = self.global_step = 0
        self.label = f"sumo {self.method}" + ("" if self.method == "self-play" else f" eps_pi={self.eps_pi:g}")
        self._init_stop_and_callbacks()

    def _env_fn(self, index: int) -> Callable[[], Any]:
        s = self.settings_dict

        def make() -> Any:
            env: Any = OutcomeLog(SumoEnv(self.arena), self.outcomes)
            if self.method == "self-play":
                return env
            benign = load_sumo_policy(s["benign"] or s["init"])
            return PartialControlSeat(
                env, ATTACKER, FrozenPolicy(benign, deterministic=DEPLOYED_DETERMINISTIC, seed=index), self.eps_pi
            )

        return make

    # ---- Learner face ---------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.iteration >= self.num_iterations

    @property
    def policy(self) -> Any:
        return self.roles["victim"].policy

    def config_dict(self) -> dict[str, Any]:
        s = dict(self.settings_dict)
        s["settings"] = self.arena.to_dict()
        for key in ("init", "benign", "attacker_init"):
            if s[key] is not None:
                s[key] = str(Path(s[key]).resolve())
        return s

    def _update(self, role: str, batch: Batch) -> dict[str, float]:
        metrics = self.roles[role].update(batch, 0.0)
        for name in ("policy_loss", "value_loss"):
            if not math.isfinite(metrics.get(name, 0.0)):
                from robustrl.errors import NonFiniteError

                raise NonFiniteError(
                    f"sumo {self.method}: the {role}'s PPO update diverged ({name}); lower the learning rate"
                )
        return metrics

    def train_iteration(self) -> IterationStats:
        metrics: dict[str, float] = {}
        returns: list[float] = []
        if self.method == "self-play":
            batches, finished = self.collectors["both"].collect()
            metrics["gradient_norm"] = policy_gradient_norm(self.policy, batches[VICTIM])
            metrics.update(self._update("victim", concat_batches([batches[VICTIM], batches[ATTACKER]])))
            returns = finished[VICTIM] + finished[ATTACKER]
        elif self.method in ("two-timescale", "single"):
            batches, finished = self.collectors["both"].collect()
            metrics["gradient_norm"] = policy_gradient_norm(self.policy, batches[VICTIM])
            victim = self._update("victim", batches[VICTIM])
            attacker = self._update("attacker", batches[ATTACKER])
            metrics.update(victim)
            metrics.update(
                {f"attacker_{k}": v for k, v in attacker.items() if k in ("policy_loss", "value_loss", "entropy")}
            )
            returns = finished[VICTIM]
        else:  # fictitious: attacker best-responds to the current victim, victim plays the pool
            batches, _ = self.collectors["attacker"].collect()
            attacker = self._update("attacker", batches[ATTACKER])
            attacker_policy = self.roles["attacker"].policy
            self.pool.append({k: v.clone() for k, v in attacker_policy.state_dict().items()})
            self.pool_normalizers.append(
                {k: np.array(v, copy=True) for k, v in attacker_policy.normalizer.state_dict().items()}
            )
            pick = int(self.rng.integers(len(self.pool)))
            self.pool_policy.choose(self.pool[pick], self.pool_normalizers[pick])
            self.outcomes.clear()  # the victim's score is measured against the pool
            batches, finished = self.collectors["victim"].collect()
            metrics["gradient_norm"] = policy_gradient_norm(self.policy, batches[VICTIM])
            metrics.update(self._update("victim", batches[VICTIM]))
            metrics.update(
                {f"attacker_{k}": v for k, v in attacker.items() if k in ("policy_loss", "value_loss", "entropy")}
            )
            metrics["pool_size"] = float(len(self.pool))
            returns = finished[VICTIM]
        scores = _score(self.outcomes)
        self.outcomes.clear()
        metrics.update(scores)
        metrics["attacker_score"] = 1.0 - scores["score"]
        metrics["mean_return"] = float(np.mean(returns)) if returns else math.nan
        self.iteration += 1
        self.global_step = sum(c.global_step for c in self.collectors.values())
        stats = IterationStats(self.iteration, self.global_step, metrics, returns)
        self._notify(stats)
        return stats

    # ---- state --------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {
            "learner": self.learner_name,
            "iteration": self.iteration,
            "global_step": self.global_step,
        }
        roles = {}
        for role, trainer in self.roles.items():
            role_tensors, role_meta = trainer.state()
            tensors |= {f"{role}/{k}": v for k, v in role_tensors.items()}
            roles[role] = role_meta
        meta["roles"] = roles
        meta["rng"] = self.rng.bit_generator.state
        meta["collectors"] = {name: _collector_state(c) for name, c in self.collectors.items()}
        for name, collector in self.collectors.items():
            for agent, scaler in collector.reward_scalers.items():
                for key, value in scaler.state_dict().items():
                    tensors[f"collector/{name}/{agent}/{key}"] = torch.as_tensor(np.asarray(value, dtype=np.float64))
        if self.method == "fictitious":
            for i, (weights, normalizer) in enumerate(zip(self.pool, self.pool_normalizers)):
                tensors |= {f"pool/{i}/policy/{k}": v for k, v in weights.items()}
                tensors |= {
                    f"pool/{i}/normalizer/{k}": torch.as_tensor(np.asarray(v, dtype=np.float64))
                    for k, v in normalizer.items()
                }
            meta["pool_size"] = len(self.pool)
            tensors |= {f"pool_choice/policy/{k}": v for k, v in self.pool_policy.policy.state_dict().items()}
            tensors |= {
                f"pool_choice/normalizer/{k}": torch.as_tensor(np.asarray(v, dtype=np.float64))
                for k, v in self.pool_policy.policy.normalizer.state_dict().items()
            }
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: str) -> bool:
        for role, trainer in self.roles.items():
            prefix = f"{role}/"
            trainer.load_state(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}, meta["roles"][role], source
            )
        self.rng.bit_generator.state = meta["rng"]
        for name, collector in self.collectors.items():
            _load_collector_state(collector, meta["collectors"][name])
            for agent, scaler in collector.reward_scalers.items():
                prefix = f"collector/{name}/{agent}/"
                scaler.load_state_dict(
                    {k[len(prefix) :]: v.numpy() for k, v in tensors.items() if k.startswith(prefix)}
                )
        if self.method == "fictitious":
            self.pool, self.pool_normalizers = [], []
            for i in range(int(meta["pool_size"])):
                p, n = f"pool/{i}/policy/", f"pool/{i}/normalizer/"
                self.pool.append({k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)})
                self.pool_normalizers.append({k[len(n) :]: v.numpy() for k, v in tensors.items() if k.startswith(n)})
            p, n = "pool_choice/policy/", "pool_choice/normalizer/"
            self.pool_policy.choose(
                {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)},
                {k[len(n) :]: v.numpy() for k, v in tensors.items() if k.startswith(n)},
            )
        self.iteration, self.global_step = int(meta["iteration"]), int(meta["global_step"])
        return True

    def close(self) -> None:
        for collector in self.collectors.values():
            collector.close()
        for trainer in self.roles.values():
            trainer.close()


def _collector_state(collector: MultiAgentCollector) -> dict[str, Any]:
    return {
        "obs": [{a: np.asarray(o).tolist() for a, o in obs.items()} for obs in collector.obs],
        "resets": collector.resets,
        "global_step": collector.global_step,
        "episodes": {a: book.state_dict() for a, book in collector.episodes.items()},
        "envs": [env.get_state() for env in collector.envs],
    }


def _load_collector_state(collector: MultiAgentCollector, state: dict[str, Any]) -> None:
    collector.obs = [{a: np.asarray(o) for a, o in obs.items()} for obs in state["obs"]]
    collector.resets, collector.global_step = int(state["resets"]), int(state["global_step"])
    for agent, book in collector.episodes.items():
        book.load_state_dict(state["episodes"][agent])
    for env, env_state in zip(collector.envs, state["envs"]):
        env.set_state(env_state)


register_learner(
    SumoLearner.learner_name, lambda config, hooks: SumoLearner({k: v for k, v in config.items() if k != "learner"})
)


# ---- the attack: PPO on the attacker's seat --------------------------------------------------------
ATTACK_DEFAULTS: dict[str, Any] = {
    "victim": None,  # run dir / checkpoint of the victim (frozen, acting by its mean action)
    "benign": None,  # the benign opponent the attacker partly replaces (default: the victim's run)
    "init": None,  # run dir / checkpoint the adversarial policy starts from (None: fresh weights)
    "eps_pi": 1.0,
    "total_steps": 100_000,
    "seed": 0,
    "num_envs": 4,
    "steps_per_iteration": 2048,
    "lr": 3e-4,
    "settings": {},
    "checkpoint_every": 10,
    "ppo": {},
}


class SumoAttackLearner:
    """An adversarial policy under partial control, trained with PPO against a frozen victim (see
    the module docstring). Delegates the Learner face to its :class:`PPO`; adds the attacker's
    ``win_rate`` / ``non_loss_rate`` over the episodes of each iteration to the metrics."""

    learner_name = "sumo-attack"

    def __init__(self, config: dict[str, Any]):
        unknown = set(config) - set(ATTACK_DEFAULTS)
        if unknown:
            raise InvalidArgumentError(
                f"unknown sumo attack setting(s) {sorted(unknown)}; known: {sorted(ATTACK_DEFAULTS)}"
            )
        s = self.settings_dict = {**ATTACK_DEFAULTS, **config}
        if s["victim"] is None:
            raise InvalidArgumentError("the attack needs a victim (a sumo run directory)")
        self.eps_pi = check_eps_pi(s["eps_pi"])
        self.arena = settings_from(s["settings"])
        victim = load_sumo_policy(s["victim"])
        benign_path = s["benign"] or s["victim"]
        self.outcomes: list[str] = []

        def seat() -> Any:
            env = OutcomeLog(SumoEnv(self.arena), self.outcomes)
            view = OpponentView(env, ATTACKER, {VICTIM: FrozenPolicy(victim, deterministic=DEPLOYED_DETERMINISTIC)})
            return _CoinSeat(
                view, FrozenPolicy(load_sumo_policy(benign_path), deterministic=DEPLOYED_DETERMINISTIC), self.eps_pi
            )

        config_ = sumo_train_config(
            int(s["total_steps"]), int(s["seed"]), float(s["lr"]), num_envs=int(s["num_envs"]),
            steps_per_iteration=int(s["steps_per_iteration"]), **dict(s["ppo"]),
        )  # fmt: skip
        from robustrl.algos.ppo import PPO

        self.trainer = PPO(config_, env=seat)
        if s["init"] is not None:  # e.g. the benign agent: the attacker starts from a policy that stands and walks
            copy_policy(load_sumo_policy(s["init"]), self.trainer.policy)
        self.label = f"sumo attack eps_pi={self.eps_pi:g}"

        def add_outcomes(stats: IterationStats) -> None:
            # outcomes are logged from player_0's (the victim's) side: the attacker wins on "loss"
            flipped = [{"win": "loss", "loss": "win", "draw": "draw"}[o] for o in self.outcomes]
            scores = _score(flipped)
            self.outcomes.clear()
            stats.metrics.update(
                win_rate=scores["win_rate"], non_loss_rate=1.0 - scores["loss_rate"], draw_rate=scores["draw_rate"],
                attacker_score=scores["score"], matches=scores["matches"],
            )  # fmt: skip

        self.trainer.add_iteration_callback(add_outcomes)  # before the run layer's: the row has them

    def __getattr__(self, name: str) -> Any:
        return getattr(self.trainer, name)

    @property
    def iteration(self) -> int:
        return self.trainer.iteration

    @property
    def global_step(self) -> int:
        return self.trainer.global_step

    @property
    def num_iterations(self) -> int:
        return self.trainer.num_iterations

    @property
    def total_steps(self) -> int:
        return self.trainer.total_steps

    @property
    def done(self) -> bool:
        return self.trainer.done

    @property
    def stop_requested(self) -> bool:
        return self.trainer.stop_requested

    def config_dict(self) -> dict[str, Any]:
        s = dict(self.settings_dict)
        s["settings"] = self.arena.to_dict()
        for key in ("victim", "benign", "init"):
            if s[key] is not None:
                s[key] = str(Path(s[key]).resolve())
        return s

    def train_iteration(self) -> IterationStats:
        return self.trainer.train_iteration()

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = self.trainer.state()
        meta["learner"] = self.learner_name
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: str) -> bool:
        return self.trainer.load_state(tensors, meta, source)

    def add_iteration_callback(self, callback: Callable[[IterationStats], None]) -> None:
        self.trainer.add_iteration_callback(callback)


register_learner(
    SumoAttackLearner.learner_name,
    lambda config, hooks: SumoAttackLearner({k: v for k, v in config.items() if k != "learner"}),
)


# ---- matches ------------------------------------------------------------------------------------------
def play_matches(
    victim: Any,
    opponent: OpponentPolicy,
    *,
    episodes: int = 100,
    seed: int = 20_000,
    settings: SumoSettings | dict[str, Any] | None = None,
    record_observations: bool = False,
    render: bool = False,
    deterministic: bool = DEPLOYED_DETERMINISTIC,
    size: tuple[int, int] = (240, 180),
) -> dict[str, Any]:
    """``episodes`` matches of ``victim`` (seat player_0; its mean action unless not
    ``deterministic``) against ``opponent``
    (player_1). Returns counts and rates of the victim's wins / draws / losses, the attacker's
    ``win_rate`` and ``non_loss_rate`` (the opponent's side, Figure 6), episode lengths, and with
    ``record_observations`` every observation the victim saw (the stealth measures' samples);
    with ``render`` the frames of the first episode."""
    if episodes < 1:
        raise InvalidArgumentError(f"episodes must be >= 1, got {episodes}")
    arena = settings_from(settings)
    env = SumoEnv(arena, render_mode="rgb_array" if render else None, width=size[0], height=size[1])
    view = OpponentView(env, VICTIM, {ATTACKER: opponent})
    player = FrozenPolicy(victim, deterministic=deterministic, seed=seed)
    outcomes, lengths, observations, frames = [], [], [], []
    controlled = getattr(opponent, "controlled_steps", None)
    for k in range(episodes):
        obs, _ = view.reset(seed=seed + k)
        player.reset(seed + k)
        length, done = 0, False
        while not done:
            if record_observations:
                observations.append(np.asarray(obs, dtype=np.float64))
            if render and k == 0:
                frames.append(env.render())
            obs, _, terminated, truncated, info = view.step(player.act(obs))
            length += 1
            done = terminated or truncated
        if render and k == 0:
            frames.append(env.render())
        outcomes.append(info.get("outcome", "draw"))
        lengths.append(length)
    view.close()
    n = len(outcomes)
    result: dict[str, Any] = {
        "episodes": n,
        "victim_wins": outcomes.count("win"),
        "draws": outcomes.count("draw"),
        "victim_losses": outcomes.count("loss"),
        "outcomes": outcomes,
        "lengths": lengths,
    }
    result["win_rate"] = result["victim_losses"] / n  # the opponent's
    result["non_loss_rate"] = 1.0 - result["victim_wins"] / n
    result["victim_win_rate"] = result["victim_wins"] / n
    result["attacker_score"] = (result["victim_losses"] + 0.5 * result["draws"]) / n
    if controlled is not None and getattr(opponent, "steps", 0):
        result["controlled_fraction"] = opponent.controlled_steps / opponent.steps
    if record_observations:
        result["observations"] = np.stack(observations)
    if render:
        result["frames"] = frames
    return result


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def deployed_attacker(
    attack_run: Path | str, eps_pi: float | None = None, seed: int = 0, checkpoint: Path | str | None = None
) -> PartialControl:
    """The deployed opponent of a ``sumo-attack`` run: ``PartialControl(benign, adversarial,
    eps_pi)`` with the adversarial policy acting deterministically (its mean action); from the
    run's newest checkpoint or ``checkpoint`` (a stem in its checkpoints/ folder)."""
    import json

    config = json.loads((Path(attack_run) / "config.json").read_text())
    adversarial = load_sumo_policy(checkpoint if checkpoint is not None else attack_run)
    benign = load_sumo_policy(config.get("benign") or config["victim"])
    eps = config["eps_pi"] if eps_pi is None else eps_pi
    return PartialControl(
        FrozenPolicy(benign, deterministic=DEPLOYED_DETERMINISTIC, seed=seed),
        FrozenPolicy(adversarial, deterministic=DEPLOYED_DETERMINISTIC, seed=seed),
        eps,
        seed,
    )


# ---- stealth -----------------------------------------------------------------------------------------
def stealth_study(
    victim: Path | str,
    attacks: list[str],
    *,
    episodes: int = 100,
    features: int = 10,
    seed: int = 20_000,
    settings: SumoSettings | dict[str, Any] | None = None,
    max_samples: int = 2000,
) -> dict[str, Any]:
    """The victim's observations against the benign opponent (the reference) and against each
    attack run's deployed opponent, compared on the ``features`` highest-variance features of the
    reference (variance-based feature importance, App. E.2) with every measure of
    :func:`robustrl.games.stealth.stealth_report`, on at most ``max_samples`` observations drawn
    (seeded, without replacement) from each side: the exact W2 solves an n x n transport problem
    (45 000 observations of 100 long matches would need a 16 GB cost matrix); each entry also has
    the attack's win rates."""
    import json

    from robustrl.games.stealth import feature_importance, stealth_report

    victim_policy = load_sumo_policy(victim)
    if settings is None:
        settings = json.loads((Path(victim) / "config.json").read_text()).get("settings", {})
    benign = FrozenPolicy(load_sumo_policy(victim), deterministic=DEPLOYED_DETERMINISTIC, seed=seed)
    reference = play_matches(
        victim_policy, benign, episodes=episodes, seed=seed, settings=settings, record_observations=True
    )
    order, variances = feature_importance(reference["observations"])
    keep = order[:features]
    report: dict[str, Any] = {
        "victim": str(victim),
        "episodes": episodes,
        "features": keep.tolist(),
        "feature_variances": variances[:features].tolist(),
        "reference": {k: v for k, v in reference.items() if k not in ("observations", "outcomes")},
        "attacks": {},
    }
    for attack in attacks:
        opponent = deployed_attacker(attack, seed=seed)
        played = play_matches(
            victim_policy, opponent, episodes=episodes, seed=seed, settings=settings, record_observations=True
        )
        attacked_order, _ = feature_importance(played["observations"])
        entry = {k: v for k, v in played.items() if k not in ("observations", "outcomes")}
        entry["eps_pi"] = opponent.eps_pi
        entry["top_features"] = attacked_order[:features].tolist()
        entry.update(
            stealth_report(
                subsample(reference["observations"][:, keep], max_samples, seed),
                subsample(played["observations"][:, keep], max_samples, seed + 1),
                seed=seed,
            )
        )
        entry["samples"] = [len(reference["observations"]), len(played["observations"])]
        entry["feature_means"] = played["observations"][:, keep].mean(axis=0).tolist()
        report["attacks"][attack] = entry
    report["reference"]["feature_means"] = reference["observations"][:, keep].mean(axis=0).tolist()
    return report


def subsample(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most ``n`` rows of ``x``, drawn without replacement (seeded), in their original order."""
    if len(x) <= n:
        return x
    rows = np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))
    return x[rows]


# ---- pictures ----------------------------------------------------------------------------------------
def write_gif(frames: list[np.ndarray], path: Path | str, fps: float = 20.0) -> Path:
    """Frames (H, W, 3 uint8) as a video (``.gif``, or ``.mp4`` with imageio-ffmpeg), written
    atomically by the shared writer of issue 18 (:func:`robustrl.evaluate.render.write_video`)."""
    from robustrl.evaluate.render import write_video

    return write_video(frames, path, fps)


def _label(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    from PIL import Image, ImageDraw

    image = Image.fromarray(np.ascontiguousarray(frame[..., :3]).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, max(draw.textlength(line) for line in lines) + 8, 12 * len(lines) + 4], fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((4, 2 + 12 * i), line, fill=(255, 255, 255))
    return np.asarray(image)


def render_matches(
    victim: Path | str,
    opponents: list[str],
    out: Path | str,
    *,
    seed: int = 20_000,
    max_steps: int | None = None,
    size: tuple[int, int] = (320, 240),
) -> Path:
    """One match of the victim (red) per opponent (blue; an attack run's deployed opponent, or the
    benign agent when ``opponents`` is empty), same seed, rendered side by side into a GIF."""
    import json

    from robustrl.errors import RendererUnavailableError

    settings = dict(json.loads((Path(victim) / "config.json").read_text()).get("settings", {}))
    if max_steps is not None:
        settings["max_steps"] = max_steps
    victim_policy = load_sumo_policy(victim)
    panels = []
    for opponent_run in opponents or [None]:
        if opponent_run is None:
            opponent: Any = FrozenPolicy(load_sumo_policy(victim), deterministic=DEPLOYED_DETERMINISTIC, seed=seed)
            label = "no attack"
        else:
            opponent = deployed_attacker(opponent_run, seed=seed)
            label = f"eps_pi = {opponent.eps_pi:g}"
        try:
            played = play_matches(
                victim_policy, opponent, episodes=1, seed=seed, settings=settings, render=True, size=size
            )
        except Exception as error:  # no GL context: EGL libraries missing
            if isinstance(error, InvalidArgumentError):
                raise
            raise RendererUnavailableError(
                f"cannot render the sumo arena offscreen ({type(error).__name__}: {str(error)[:160]}); on Debian "
                "install libegl1 libegl-mesa0 libgl1-mesa-dri"
            ) from None
        outcome = {"win": "victim wins", "loss": "attacker wins", "draw": "draw"}[played["outcomes"][0]]
        panels.append((label, outcome, played["frames"]))
    length = max(len(frames) for _, _, frames in panels)
    video = []
    for t in range(length):
        row = []
        for label, outcome, frames in panels:
            last = t >= len(frames) - 1
            row.append(
                _label(
                    frames[min(t, len(frames) - 1)],
                    [label, f"step {min(t, len(frames) - 1)}" + (f": {outcome}" if last else "")],
                )
            )
        video.append(np.concatenate(row, axis=1))
    return write_gif(video, out)
