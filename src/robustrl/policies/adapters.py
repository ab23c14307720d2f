"""Adapters that give foreign policies the :class:`~robustrl.policies.protocol.AttackablePolicy`
face, so they can be evaluated and attacked exactly like ours.

- :func:`load_sb3_zip`: Stable-Baselines3 PPO / A2C / SAC / TD3 ``.zip`` files (MlpPolicy), with
  or without gSDE (generalised state-dependent exploration, Raffin et al. 2022).
- :func:`robustrl.policies.zoo.find_zoo_model`: an RL Zoo folder (model, VecNormalize, env id).
- :func:`robustrl.policies.cleanrl.load_cleanrl`: CleanRL ``ppo_continuous_action.py`` state dicts.
- :class:`TorchModulePolicy`: any ``torch.nn.Module`` (for instance a TorchScript export).
- :func:`load_model`: picks one of these from the path, or loads one of our own runs/checkpoints.

A model file is untrusted input, so we never unpickle anything in it. SB3 stores its spaces and
classes in the ``data`` JSON member as base64 cloudpickle (under ``":serialized:"``); we only read
the plain fields next to them (shapes, bounds, ``policy_kwargs``), take the spaces themselves from
``gymnasium.make(env_id)``, load ``policy.pth`` with ``torch.load(weights_only=True)``, and rebuild
the networks as small torch modules. That also means evaluating an SB3 model needs no SB3 install.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Normal

from robustrl.envs.make import check_env_id
from robustrl.envs.normalization import ObservationNormalizer
from robustrl.errors import CheckpointError, InvalidArgumentError

PathLike = str | Path
# SB3's defaults when policy_kwargs names no activation_fn (ActorCriticPolicy: Tanh; SAC/TD3: ReLU).
_DEFAULT_ACTIVATION = {"PPO": "Tanh", "A2C": "Tanh", "SAC": "ReLU", "TD3": "ReLU"}
_ON_POLICY = ("PPO", "A2C")  # SB3's ActorCriticPolicy: same layout, same semantics
_GSDE_EPSILON = 1e-6  # StateDependentNoiseDistribution's epsilon, added to the variance
_ACTIVATIONS = {"Tanh", "ReLU", "ELU", "LeakyReLU", "GELU", "SiLU", "Sigmoid", "Softplus", "Mish"}
_SAC_LOG_STD_RANGE = (-20.0, 2.0)  # SB3's LOG_STD_MIN / LOG_STD_MAX clamp
_TORCHSCRIPT_SUFFIXES = (".pt", ".ts")


class _ForeignPolicy(nn.Module):
    """What both adapters share: space bookkeeping, joint log-probs/entropies, ``act``."""

    perturbation_space: str

    def _set_spaces(self, observation_space: gym.spaces.Space, action_space: gym.spaces.Space, env_id: str | None):
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
            raise InvalidArgumentError(f"need a flat Box observation space, got {observation_space}")
        self.observation_space, self.action_space, self.env_id = observation_space, action_space, env_id
        self.obs_dim = int(observation_space.shape[0])
        self.continuous = isinstance(action_space, gym.spaces.Box)
        if self.continuous:
            self.action_dim = int(np.prod(action_space.shape))
            self._low = np.asarray(action_space.low, dtype=np.float32)
            self._high = np.asarray(action_space.high, dtype=np.float32)
        elif isinstance(action_space, gym.spaces.Discrete):
            self.action_dim = int(action_space.n)
        else:
            raise InvalidArgumentError(f"need a Box or Discrete action space, got {action_space}")

    def log_prob(self, dist: Distribution, actions: torch.Tensor) -> torch.Tensor:
        """Joint log-likelihood per sample (per-dimension Gaussian log-probs are summed)."""
        if not self.continuous:
            return dist.log_prob(actions.long())
        log_prob = dist.log_prob(actions)
        return log_prob.sum(-1) if len(dist.event_shape) == 0 else log_prob

    def entropy(self, dist: Distribution) -> torch.Tensor:
        entropy = dist.entropy()
        return entropy.sum(-1) if self.continuous and len(dist.event_shape) == 0 else entropy

    def act(self, raw_obs: np.ndarray, deterministic: bool = True, rng: np.random.Generator | None = None) -> np.ndarray:
        """Env-ready actions for a batch of raw observations."""
        rng = rng if rng is not None else np.random.default_rng()
        return self.to_env_action(self.sample(self.normalize(raw_obs), rng, deterministic))


def _categorical_sample(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    cdf = np.cumsum(probs / probs.sum(-1, keepdims=True), axis=-1)
    return np.minimum((rng.random((logits.shape[0], 1)) > cdf).sum(-1), logits.shape[-1] - 1)


# ---- Stable-Baselines3 ---------------------------------------------------------------------------
class SB3Policy(_ForeignPolicy):
    """A Stable-Baselines3 PPO, A2C, SAC or TD3 MlpPolicy rebuilt in plain torch.

    Submodules are named as in SB3 so its ``policy.pth`` loads with ``strict=True``. Semantics:

    - PPO / A2C: Gaussian with state-independent ``log_std`` (actions clipped to the space, as SB3
      and :class:`ActorCritic` do) or categorical; ``value`` is its value net.
    - gSDE (``use_sde=True``; PPO, A2C, SAC): the Gaussian's std depends on the state, as gSDE
      defines it (Raffin et al. 2022, Eq. 3; SB3's ``StateDependentNoiseDistribution``):
      ``std(s)^2 = latent(s)^2 @ sigma^2 + 1e-6``, where ``latent`` is the last hidden layer of the
      policy net and ``sigma = exp(log_std)`` (or ``expln``). The deterministic action is the mean.
      ``distribution`` is differentiable in the observation through ``latent`` too (SB3 detaches it
      for PPO's training; the attacks need the policy as a function of the observation). Stochastic
      ``sample`` draws from this per-state marginal with fresh noise every step (SB3 holds one
      exploration matrix for ``sde_sample_freq`` steps; the marginal law of each action is the same).
      PPO with ``squash_output=True`` squashes and rescales its actions as SAC does.
    - SAC: ``distribution`` is the *pre-tanh* Normal with state-dependent std; ``sample`` returns
      pre-tanh actions and ``to_env_action`` squashes and rescales them. KL divergences are the same
      before and after the (bijective) squashing, so KL-based attacks are exact; entropies and
      log-probs are those of the pre-tanh Gaussian (no tanh Jacobian term).
    - TD3: a deterministic tanh actor. ``distribution`` is Normal(actor output in [-1, 1], std 1), a
      surrogate under which KL-based attacks reduce to half the squared action difference;
      ``sample`` always returns the actor output (exploration noise is not part of the policy).
    - ``mean_action`` is the deterministic action in env units (SAC/TD3: tanh output rescaled to
      the bounds; PPO: the unclipped mean, as ActorCritic).
    - SAC/TD3 have no state-value net, so ``value(obs)`` is min over critics of
      Q(obs, deterministic action in SB3's [-1, 1] action scale, which is what the critics saw).
    """

    def __init__(self, algorithm: str, observation_space: gym.spaces.Box, action_space: gym.spaces.Space,
                 state: dict[str, torch.Tensor], activation: str, normalizer: ObservationNormalizer | None,
                 env_id: str, source: PathLike = "<SB3 model>", gsde: dict[str, Any] | None = None):
        """``gsde``: None, or the gSDE settings read from ``policy_kwargs``: ``use_expln``,
        ``squash_output`` (PPO/A2C), ``clip_mean`` (SAC)."""
        super().__init__()
        self._set_spaces(observation_space, action_space, env_id)
        self.algorithm = algorithm
        self.on_policy = algorithm in _ON_POLICY
        self.gsde = dict(gsde) if gsde is not None else None
        if self.gsde is not None and not self.continuous:
            raise CheckpointError(f"{source}: gSDE needs a Box action space")
        # tanh-squashed actions rescaled to the bounds: SAC always, PPO/A2C with gSDE's squash_output
        self.squashed = algorithm == "SAC" or bool(self.gsde and self.gsde.get("squash_output"))
        n, act = self.obs_dim, getattr(nn, activation)
        if self.on_policy:
            self.mlp_extractor = nn.Module()
            self.mlp_extractor.policy_net, pi_dim = _mlp(state, "mlp_extractor.policy_net.", n, act, source)
            self.mlp_extractor.value_net, vf_dim = _mlp(state, "mlp_extractor.value_net.", n, act, source)
            self.action_net = nn.Linear(pi_dim, self.action_dim)
            self.value_net = nn.Linear(vf_dim, 1)
            if self.gsde is not None:
                self.log_std = nn.Parameter(torch.zeros(_gsde_log_std_shape(state, "log_std", pi_dim, self.action_dim, source)))
            elif self.continuous:
                self.log_std = nn.Parameter(torch.zeros(self.action_dim))
        else:
            self.actor = nn.Module()
            if algorithm == "SAC":
                self.actor.latent_pi, latent_dim = _mlp(state, "actor.latent_pi.", n, act, source)
                if self.gsde is not None:
                    clip_mean = float(self.gsde.get("clip_mean", 2.0))
                    mu = nn.Linear(latent_dim, self.action_dim)
                    self.actor.mu = nn.Sequential(mu, nn.Hardtanh(-clip_mean, clip_mean)) if clip_mean > 0 else mu
                    self.actor.log_std = nn.Parameter(
                        torch.zeros(_gsde_log_std_shape(state, "actor.log_std", latent_dim, self.action_dim, source)))
                else:
                    self.actor.mu = nn.Linear(latent_dim, self.action_dim)
                    self.actor.log_std = nn.Linear(latent_dim, self.action_dim)
            else:
                self.actor.mu, _ = _mlp(state, "actor.mu.", n, act, source, last_activation=nn.Tanh)
            self.critic = nn.Module()
            n_critics = len({k.split(".")[1] for k in state if k.startswith("critic.qf")})
            for i in range(n_critics):
                qf, _ = _mlp(state, f"critic.qf{i}.", n + self.action_dim, act, source, last_activation=None)
                setattr(self.critic, f"qf{i}", qf)
            if n_critics == 0:
                raise CheckpointError(f"{source}: {algorithm} model has no critic weights")
            self.n_critics = n_critics
        if self.continuous:
            self.register_buffer("_low_t", torch.as_tensor(self._low), persistent=False)
            self.register_buffer("_high_t", torch.as_tensor(self._high), persistent=False)
        # Target networks only matter for training; everything else must match exactly.
        state = {k: v for k, v in state.items() if not k.startswith(("actor_target.", "critic_target."))}
        expected = self.state_dict()
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or extra:
            raise CheckpointError(f"{source}: unsupported {algorithm} policy layout "
                                  f"(missing {missing[:4]}, unexpected {extra[:4]})")
        for key, value in state.items():
            if value.shape != expected[key].shape:
                raise CheckpointError(f"{source}: {key} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}")
        self.load_state_dict(state)
        self.normalizer = normalizer or ObservationNormalizer(observation_space.shape, enabled=False)
        self.perturbation_space = ("VecNormalize space of the SB3 model" if self.normalizer.enabled
                                   else "raw observations (SB3 model has no normaliser)")
        self.eval()

    def _actor_out(self, obs: torch.Tensor) -> torch.Tensor:
        """PPO: Gaussian mean or logits; SAC: pre-tanh mean; TD3: action in [-1, 1]."""
        if self.on_policy:
            return self.action_net(self.mlp_extractor.policy_net(obs))
        if self.algorithm == "SAC":
            return self.actor.mu(self.actor.latent_pi(obs))
        return self.actor.mu(obs)

    def _rescale(self, scaled: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> action bounds (SB3's ``unscale_action``)."""
        return self._low_t + 0.5 * (scaled + 1.0) * (self._high_t - self._low_t)

    def _gsde_std(self, latent: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        """gSDE's state-dependent std: sqrt(latent^2 @ sigma^2 + epsilon) (SB3's get_std + proba_distribution)."""
        if self.gsde.get("use_expln"):
            safe = log_std * (log_std > 0) + _GSDE_EPSILON
            sigma = torch.exp(log_std) * (log_std <= 0) + (torch.log1p(safe) + 1.0) * (log_std > 0)
        else:
            sigma = torch.exp(log_std)
        sigma = sigma.expand(latent.shape[-1], self.action_dim)  # full_std=False: one column for all actions
        return torch.sqrt((latent**2) @ (sigma**2) + _GSDE_EPSILON)

    def distribution(self, obs: torch.Tensor) -> Distribution:
        if self.gsde is not None:
            if self.on_policy:
                latent = self.mlp_extractor.policy_net(obs)
                mean, log_std = self.action_net(latent), self.log_std
            else:
                latent = self.actor.latent_pi(obs)
                mean, log_std = self.actor.mu(latent), self.actor.log_std
            return Normal(mean, self._gsde_std(latent, log_std), validate_args=False)
        if self.algorithm == "SAC":
            latent = self.actor.latent_pi(obs)
            log_std = self.actor.log_std(latent).clamp(*_SAC_LOG_STD_RANGE)
            return Normal(self.actor.mu(latent), log_std.exp(), validate_args=False)
        out = self._actor_out(obs)
        if self.algorithm == "TD3":
            return Normal(out, torch.ones_like(out), validate_args=False)
        if self.continuous:
            return Normal(out, self.log_std.exp().expand_as(out), validate_args=False)
        return Categorical(logits=out, validate_args=False)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        if self.on_policy:
            return self.value_net(self.mlp_extractor.value_net(obs)).squeeze(-1)
        out = self._actor_out(obs)
        scaled_action = torch.tanh(out) if self.algorithm == "SAC" else out
        q_input = torch.cat([obs, scaled_action], dim=-1)
        q_values = [getattr(self.critic, f"qf{i}")(q_input) for i in range(self.n_critics)]
        return torch.stack(q_values).min(0).values.squeeze(-1)

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        out = self._actor_out(obs)
        if self.squashed:
            return self._rescale(torch.tanh(out))
        if self.on_policy:
            return out if self.continuous else out.argmax(-1)
        return self._rescale(out)

    def normalize(self, raw_obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(self.normalizer(raw_obs))

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, rng: np.random.Generator, deterministic: bool = False) -> np.ndarray:
        """Numpy-generator draws (as ActorCritic). SAC: pre-tanh actions; TD3: always the actor output."""
        out = self._actor_out(obs).numpy()
        if not self.continuous:
            return out.argmax(-1) if deterministic else _categorical_sample(out, rng)
        if deterministic or self.algorithm == "TD3":
            return out
        std = self.distribution(obs).stddev.numpy()
        return (out + std * rng.standard_normal(out.shape)).astype(np.float32)

    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        if not self.continuous:
            return actions
        if self.on_policy and not self.squashed:
            return np.clip(actions, self._low, self._high)
        scaled = np.tanh(actions) if self.squashed else np.clip(actions, -1.0, 1.0)
        return (self._low + 0.5 * (scaled + 1.0) * (self._high - self._low)).astype(np.float32)


def _mlp(state: dict[str, torch.Tensor], prefix: str, in_dim: int, activation: type[nn.Module], source: PathLike,
         last_activation: type[nn.Module] | str | None = "same") -> tuple[nn.Sequential, int]:
    """Rebuild an SB3 ``create_mlp`` stack ([Linear, act] * k, indices 0, 2, 4, ...) from weight shapes.

    ``last_activation``: "same" = activation after every Linear (a latent net); None = bare output
    layer (a Q net); a module class = that after the output layer (TD3's Tanh). Layouts with extra
    modules (dropout, layer norm) have other indices and are refused.
    """
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    indices = sorted({int(k.split(".")[0]) for k in weights if k.split(".")[0].isdigit()})
    if indices != list(range(0, 2 * len(indices), 2)) or any(not k.split(".")[0].isdigit() for k in weights):
        raise CheckpointError(f"{source}: unsupported network layout under {prefix!r} (only plain MLPs are supported)")
    layers: list[nn.Module] = []
    dim = in_dim
    for j, index in enumerate(indices):
        weight = weights.get(f"{index}.weight")
        if weight is None or weight.dim() != 2 or weight.shape[1] != dim:
            shape = None if weight is None else tuple(weight.shape)
            raise CheckpointError(f"{source}: layer {prefix}{index} has weight shape {shape}, expected input size {dim}")
        layers.append(nn.Linear(dim, weight.shape[0], bias=f"{index}.bias" in weights))
        dim = weight.shape[0]
        last = j == len(indices) - 1
        if not last or last_activation == "same":
            layers.append(activation())
        elif last_activation is not None:
            layers.append(last_activation())
    if not indices and last_activation != "same":
        raise CheckpointError(f"{source}: no weights under {prefix!r}")
    return nn.Sequential(*layers), dim


def _gsde_log_std_shape(state: dict[str, torch.Tensor], key: str, latent_dim: int, action_dim: int,
                        source: PathLike) -> tuple[int, int]:
    """gSDE's ``log_std`` is (latent, actions) with full_std, (latent, 1) without: read from the file."""
    tensor = state.get(key)
    if tensor is None or tensor.dim() != 2 or tensor.shape[0] != latent_dim or tensor.shape[1] not in (1, action_dim):
        shape = None if tensor is None else tuple(tensor.shape)
        raise CheckpointError(f"{source}: gSDE parameter {key} has shape {shape}, expected ({latent_dim}, {action_dim}) or ({latent_dim}, 1)")
    return tuple(tensor.shape)


def _first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message (torch's load errors carry paragraphs of
    advice that do not apply here: we never unpickle arbitrary objects)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # torch colours part of its advice
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:  # torch's weights-only refusal: the reason is on this line, after the advice
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip().split(". ")[0]
    return lines[0] if lines else type(error).__name__


def _read_sb3_zip(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The ``data`` JSON and the ``policy.pth`` state dict, with one-line errors for bad files."""
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for member in ("data", "policy.pth"):
                if member not in names:
                    raise CheckpointError(f"{path} has no {member!r} member: not a Stable-Baselines3 model zip")
            data_bytes, policy_bytes = archive.read("data"), archive.read("policy.pth")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, EOFError, OSError) as error:
        raise CheckpointError(f"{path} is not a readable zip file ({error})") from None
    try:
        data = json.loads(data_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: member 'data' is not valid JSON ({error}); corrupt SB3 model?") from None
    if not isinstance(data, dict) or "observation_space" not in data or "action_space" not in data:
        raise CheckpointError(f"{path}: 'data' has no observation/action spaces: not a Stable-Baselines3 model")
    try:  # weights_only: a restricted unpickler that only rebuilds tensors and plain containers
        state = torch.load(io.BytesIO(policy_bytes), weights_only=True, map_location="cpu")
    except Exception as error:
        raise CheckpointError(
            f"{path}: member 'policy.pth' is corrupt or not a weights-only state dict ({_first_line(error)})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: member 'policy.pth' is not a state dict of tensors")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path}: tensor {bad[0]} of 'policy.pth' holds NaN or inf")
    return data, state


def _identify(path: Path, data: dict[str, Any], state: dict[str, torch.Tensor]) -> str:
    """PPO, A2C, SAC or TD3 from the state-dict layout; PPO and A2C (one ActorCriticPolicy) differ
    only in their saved hyperparameters (PPO's ``clip_range``). DDPG zips share TD3's layout."""
    if "action_net.weight" in state and any(k.startswith("mlp_extractor.") for k in state):
        return "PPO" if "clip_range" in data or "n_epochs" in data else "A2C"
    if any(k.startswith("actor.latent_pi.") for k in state) and ("actor.log_std.weight" in state or "actor.log_std" in state):
        return "SAC"
    if "actor.mu.0.weight" in state:
        return "TD3"
    module = data.get("policy_class", {}).get("__module__", "?") if isinstance(data.get("policy_class"), dict) else "?"
    raise CheckpointError(f"{path}: unsupported algorithm or policy (policy class from {module}; "
                          f"parameters {sorted(state)[:3]}...); supported: PPO, A2C, SAC, TD3 with MlpPolicy")


def _gsde_settings(path: Path, data: dict[str, Any], algorithm: str) -> dict[str, Any] | None:
    """None without gSDE; else the readable policy_kwargs that change its distribution."""
    if data.get("use_sde") is not True:
        return None
    if algorithm == "TD3":
        raise CheckpointError(f"{path}: use_sde=True on a TD3/DDPG model: SB3 has no gSDE for these")
    kwargs = data.get("policy_kwargs") if isinstance(data.get("policy_kwargs"), dict) else {}
    settings: dict[str, Any] = {"use_expln": bool(kwargs.get("use_expln", False))}
    if algorithm == "SAC":
        settings["clip_mean"] = float(kwargs.get("clip_mean", 2.0))
    else:
        settings["squash_output"] = bool(kwargs.get("squash_output", False))
    return settings


def _activation(path: Path, data: dict[str, Any], algorithm: str) -> str:
    """The readable ``activation_fn`` of policy_kwargs (a string like "<class '...ReLU'>"), or SB3's default."""
    kwargs = data.get("policy_kwargs")
    text = kwargs.get("activation_fn") if isinstance(kwargs, dict) else None
    if text is None:
        return _DEFAULT_ACTIVATION[algorithm]
    match = re.fullmatch(r"<class 'torch\.nn\.modules\.activation\.(\w+)'>", str(text))
    if not match or match.group(1) not in _ACTIVATIONS:
        raise CheckpointError(f"{path}: unsupported activation_fn {text}")
    return match.group(1)


def _check_space(path: Path, what: str, saved: Any, space: gym.spaces.Space, env_id: str) -> None:
    """Compare the readable ``_shape``/``n``/``low``/``high`` fields of a saved space with the env's."""
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: 'data' has no readable {what} space")
    kind = str(saved.get(":type:", ""))
    if isinstance(space, gym.spaces.Box):
        if "Box" not in kind:
            raise CheckpointError(f"{path}: model {what} space is {kind or '?'}, {env_id} has a Box")
        shape = tuple(saved.get("_shape") or ())
        if shape != space.shape:
            raise CheckpointError(f"{path}: model {what} shape {shape} does not match {env_id}'s {space.shape}")
        if what == "action":  # the bounds set the rescaling of SAC/TD3 actions, so they must agree
            for name, env_bound in (("low", space.low), ("high", space.high)):
                try:
                    saved_bound = np.array(str(saved.get(name)).strip("[]").split(), dtype=np.float64)
                except ValueError:
                    continue  # numpy elided a long array ("..."): shapes already agree
                if saved_bound.shape == env_bound.shape and not np.allclose(saved_bound, env_bound, rtol=1e-5):
                    raise CheckpointError(f"{path}: model action {name} {saved_bound} differs from {env_id}'s {env_bound}")
    elif "Discrete" not in kind or str(saved.get("n")) != str(space.n):
        raise CheckpointError(f"{path}: model {what} space ({kind}, n={saved.get('n')}) does not match {env_id}'s {space}")


def _env_spaces(env_id: str) -> tuple[gym.spaces.Space, gym.spaces.Space]:
    check_env_id(env_id)
    env = gym.make(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def load_vecnormalize_stats(path: PathLike, obs_shape: tuple[int, ...], *, trust_pickle: bool = False) -> ObservationNormalizer:
    """Observation statistics of an SB3 VecNormalize, as a frozen :class:`ObservationNormalizer`
    (same formula: ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``).

    ``.npz``/``.json`` with keys obs_mean, obs_var, clip_obs (default 10), epsilon (default 1e-8)
    are read safely. Anything else is taken to be SB3's ``vec_normalize.pkl``, which can only be
    read by unpickling (running code from the file), hence only with ``trust_pickle=True``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"VecNormalize statistics {path} do not exist")
    try:
        if path.suffix.lower() in (".npz", ".json"):
            if path.suffix.lower() == ".npz":
                with np.load(path, allow_pickle=False) as npz:
                    stats = {k: npz[k] for k in npz.files}
            else:
                stats = json.loads(path.read_text())
            mean, var = np.asarray(stats["obs_mean"], np.float64), np.asarray(stats["obs_var"], np.float64)
            clip, epsilon, enabled = float(stats.get("clip_obs", 10.0)), float(stats.get("epsilon", 1e-8)), True
        elif not trust_pickle:
            raise CheckpointError(
                f"{path} is a pickle (SB3 VecNormalize) and unpickling runs code from the file: pass --trust-pickle "
                "if you trust it, or give the statistics as .npz/.json with keys obs_mean, obs_var, clip_obs, epsilon")
        else:
            import pickle  # only on this explicit opt-in; needs stable-baselines3 installed

            with open(path, "rb") as file:
                vec_normalize = pickle.load(file)
            mean = np.asarray(vec_normalize.obs_rms.mean, np.float64)
            var = np.asarray(vec_normalize.obs_rms.var, np.float64)
            clip, epsilon = float(vec_normalize.clip_obs), float(vec_normalize.epsilon)
            enabled = bool(getattr(vec_normalize, "norm_obs", True))
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OSError, ImportError, EOFError) as error:
        raise CheckpointError(f"VecNormalize statistics {path} are unreadable or incomplete ({type(error).__name__}: {_first_line(error)})") from None
    except Exception as error:
        raise CheckpointError(f"VecNormalize statistics {path} could not be unpickled ({type(error).__name__}: {_first_line(error)})") from None
    if mean.shape != tuple(obs_shape) or var.shape != tuple(obs_shape):
        raise CheckpointError(f"VecNormalize statistics {path} have shape {mean.shape}, observations have {tuple(obs_shape)}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0) and clip > 0 and epsilon >= 0):
        raise CheckpointError(f"VecNormalize statistics {path} hold non-finite or negative values")
    normalizer = ObservationNormalizer(tuple(obs_shape), clip=clip, enabled=enabled, epsilon=epsilon)
    normalizer.load_state_dict({"mean": mean, "var": var, "count": np.array(1.0)})
    return normalizer


def load_sb3_zip(path: PathLike, env_id: str, *, vecnormalize: PathLike | None = None,
                 trust_pickle: bool = False) -> SB3Policy:
    """Load a Stable-Baselines3 PPO/A2C/SAC/TD3 MlpPolicy ``.zip`` (gSDE or not) without unpickling
    anything in it.

    ``vecnormalize``: the VecNormalize statistics the model was trained with (see
    :func:`load_vecnormalize_stats`; ``trust_pickle`` only concerns that file). Deterministic
    actions equal SB3's ``model.predict(normalised obs, deterministic=True)``.
    """
    path = Path(path)
    data, state = _read_sb3_zip(path)
    observation_space, action_space = _env_spaces(env_id)
    if not isinstance(action_space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise InvalidArgumentError(f"{env_id}: need a Box or Discrete action space, got {action_space}")
    _check_space(path, "observation", data["observation_space"], observation_space, env_id)
    _check_space(path, "action", data["action_space"], action_space, env_id)
    algorithm = _identify(path, data, state)
    if algorithm != "PPO" and not isinstance(action_space, gym.spaces.Box):
        raise CheckpointError(f"{path}: {algorithm} needs a Box action space")
    normalizer = None
    if vecnormalize is not None:
        normalizer = load_vecnormalize_stats(vecnormalize, observation_space.shape, trust_pickle=trust_pickle)
    return SB3Policy(algorithm, observation_space, action_space, state, _activation(path, data, algorithm),
                     normalizer, env_id, path, gsde=_gsde_settings(path, data, algorithm))


# ---- plain torch modules -------------------------------------------------------------------------
class TorchModulePolicy(_ForeignPolicy):
    """Any ``torch.nn.Module`` taking perturbation-space observations (batch first), as a policy.

    ``output`` says what the module returns:

    - "action": the deterministic action (env units). ``sample`` always returns it, and
      ``distribution`` is the surrogate Normal(action, ``std`` or 1) for KL-based attacks.
    - "mean": the mean of a Gaussian policy with the fixed ``std`` (required).
    - "logits": unnormalised log-probabilities of a Discrete action space.
    - "distribution": a ``torch.distributions.Distribution`` (sampled through a torch generator
      seeded from the numpy ``rng``, so runs stay reproducible).

    ``normalize`` maps raw numpy observations to the module's input (default: identity, so eps is
    in raw units). ``value`` is an optional V(obs) callable; only the critic attack needs it. The
    module is put in eval mode (dropout/batch norm would make attacks chase noise).
    """

    def __init__(self, module: nn.Module, observation_space: gym.spaces.Box, action_space: gym.spaces.Space, *,
                 output: str = "action", std: float | Sequence[float] | None = None,
                 normalize: Callable[[np.ndarray], Any] | None = None,
                 value: Callable[[torch.Tensor], torch.Tensor] | None = None, env_id: str | None = None):
        super().__init__()
        self._set_spaces(observation_space, action_space, env_id)
        allowed = ("action", "mean", "distribution") if self.continuous else ("logits", "distribution")
        if output not in allowed:
            raise InvalidArgumentError(f"output must be one of {allowed} for action space {action_space}, got {output!r}")
        if output == "mean" and std is None:
            raise InvalidArgumentError("output='mean' needs the Gaussian's std (std=...)")
        self.module, self.output = module.eval(), output
        std_values = np.broadcast_to(np.asarray(1.0 if std is None else std, np.float32), (self.action_dim,))
        if not np.all(std_values > 0):
            raise InvalidArgumentError(f"std must be positive, got {std}")
        self.register_buffer("_std", torch.tensor(std_values), persistent=False)
        self._normalize_fn, self._value_fn = normalize, value
        self.perturbation_space = ("observations after the given normalize function" if normalize is not None
                                   else "raw observations (module has no normaliser)")

    def distribution(self, obs: torch.Tensor) -> Distribution:
        out = self.module(obs)
        if self.output == "distribution":
            if not isinstance(out, Distribution):
                raise InvalidArgumentError(f"output='distribution' but the module returned {type(out).__name__}")
            return out
        if self.output == "logits":
            return Categorical(logits=out, validate_args=False)
        return Normal(out, self._std.expand_as(out), validate_args=False)

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        if self.output in ("action", "mean"):
            return self.module(obs)
        dist = self.distribution(obs)
        try:
            return dist.mode  # Normal: the mean; Categorical: the arg-max class
        except NotImplementedError:
            return dist.mean

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        if self._value_fn is None:
            raise InvalidArgumentError(
                "this TorchModulePolicy has no value function; the critic attack needs one (pass value=...)")
        values = self._value_fn(obs)
        return values.squeeze(-1) if values.dim() == obs.dim() and values.shape[-1] == 1 else values

    def normalize(self, raw_obs: np.ndarray) -> torch.Tensor:
        if self._normalize_fn is None:
            return torch.as_tensor(np.asarray(raw_obs, dtype=np.float32))
        with torch.no_grad():
            return torch.as_tensor(self._normalize_fn(raw_obs), dtype=torch.float32).detach()

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, rng: np.random.Generator, deterministic: bool = False) -> np.ndarray:
        if self.output == "action" or deterministic:
            return self.mean_action(obs).numpy()
        if self.output == "mean":
            mean = self.module(obs).numpy()
            return (mean + self._std.numpy() * rng.standard_normal(mean.shape)).astype(np.float32)
        if self.output == "logits":
            return _categorical_sample(self.module(obs).numpy(), rng)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**62)))
            return self.distribution(obs).sample().numpy()

    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        return np.clip(actions, self._low, self._high) if self.continuous else actions


# ---- dispatch ------------------------------------------------------------------------------------
def load_model(path: PathLike, env_id: str | None = None, *, vecnormalize: PathLike | None = None,
               trust_pickle: bool = False, obs_stats: PathLike | None = None):
    """Any policy we can evaluate and attack: an SB3 ``.zip``, an RL Zoo folder (model, statistics
    and env id found in it, :mod:`robustrl.policies.zoo`), a CleanRL ``.cleanrl_model`` state dict
    (``obs_stats``: its observation statistics, :mod:`robustrl.policies.cleanrl`), a TorchScript
    file (``.pt``/``.ts``, module outputs deterministic actions), or one of our run directories /
    checkpoints."""
    path = Path(path)
    suffix = path.suffix.lower()
    if obs_stats is not None and suffix != ".cleanrl_model":
        raise InvalidArgumentError(f"{path}: --obs-stats is for CleanRL models; SB3/TorchScript models take --vecnormalize")
    if suffix == ".cleanrl_model":
        if vecnormalize is not None:
            raise InvalidArgumentError(f"{path}: a CleanRL model takes its observation statistics with --obs-stats")
        if env_id is None:
            raise InvalidArgumentError(f"{path}: give the environment id (--env); CleanRL saves only the weights")
        from robustrl.policies.cleanrl import load_cleanrl

        return load_cleanrl(path, env_id, obs_stats=obs_stats, trust_pickle=trust_pickle)
    from robustrl.policies.zoo import find_zoo_model, is_zoo_folder

    if is_zoo_folder(path):
        found = find_zoo_model(path, env_id, trust_pickle=trust_pickle)
        if found.env_id is None:
            raise InvalidArgumentError(f"{path}: the folder records no env id (no args.yml, no <env>_<n> name): pass --env")
        policy = load_sb3_zip(found.model, found.env_id, vecnormalize=vecnormalize or found.vecnormalize,
                              trust_pickle=trust_pickle)
        policy.checkpoint = str(found.model)
        return policy
    if suffix == ".zip" or suffix in _TORCHSCRIPT_SUFFIXES:
        if env_id is None:
            raise InvalidArgumentError(f"{path}: give the environment id (--env); this file does not record its spaces safely")
        if suffix == ".zip":
            policy = load_sb3_zip(path, env_id, vecnormalize=vecnormalize, trust_pickle=trust_pickle)
            policy.checkpoint = str(path)
            return policy
        if not path.is_file():
            raise CheckpointError(f"{path} does not exist")
        try:  # TorchScript runs in the TorchScript interpreter: no Python pickle is executed
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as error:
            raise CheckpointError(f"{path} is not a TorchScript file (save it with torch.jit.save): {_first_line(error)}") from None
        observation_space, action_space = _env_spaces(env_id)
        normalizer = None
        if vecnormalize is not None:
            normalizer = load_vecnormalize_stats(vecnormalize, observation_space.shape, trust_pickle=trust_pickle)
        policy = TorchModulePolicy(module, observation_space, action_space,
                                   output="action" if isinstance(action_space, gym.spaces.Box) else "logits",
                                   normalize=normalizer, env_id=env_id)
        if normalizer is not None:
            policy.perturbation_space = "VecNormalize space of the module"
        policy.checkpoint = str(path)
        return policy
    if vecnormalize is not None:
        raise InvalidArgumentError(f"{path}: --vecnormalize is only for SB3/TorchScript models; our checkpoints carry their normaliser")
    # Imported lazily: it pulls in the training stack.
    from robustrl.policies.checkpoint import load_policy

    return load_policy(path, env_id)
