"""Actor-critic MLPs with their observation normaliser.

The networks take *normalised* observations: that is the space in which eps is defined (as in
SA-PPO and its descendants), so attacks and robust objectives perturb the output of
:meth:`ActorCritic.normalize` and call :meth:`distribution` / :meth:`value` on the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Normal

from robustrl.envs.normalization import ObservationNormalizer

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
_LOG_2PI = math.log(2.0 * math.pi)


def mlp(in_dim: int, out_dim: int, hidden_sizes: Sequence[int], activation: str, out_gain: float) -> nn.Sequential:
    """Orthogonally initialised MLP: hidden gain sqrt(2), output gain ``out_gain``, zero biases.

    As SA-PPO's ``initialize_weights`` (policy output 0.01, value output 1.0) and CleanRL.
    """
    layers: list[nn.Module] = []
    sizes = [in_dim, *hidden_sizes]
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [_orthogonal(nn.Linear(fan_in, fan_out), math.sqrt(2.0)), _ACTIVATIONS[activation]()]
    layers.append(_orthogonal(nn.Linear(sizes[-1], out_dim), out_gain))
    return nn.Sequential(*layers)


def _orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Separate policy and value MLPs; Gaussian policy with state-independent log-std
    (continuous actions) or categorical policy (discrete actions)."""

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Space,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
        initial_std: float = 1.0,
        normalize_observations: bool = True,
        clip_observations: float = 10.0,
    ):
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.activation = activation
        self.initial_std = float(initial_std)
        obs_dim = int(np.prod(observation_space.shape))
        self.obs_dim = obs_dim
        self.continuous = isinstance(action_space, gym.spaces.Box)
        if self.continuous:
            self.action_dim = int(np.prod(action_space.shape))
            self.actor = mlp(obs_dim, self.action_dim, self.hidden_sizes, activation, out_gain=0.01)
            self.log_std = nn.Parameter(torch.full((self.action_dim,), math.log(initial_std)))
            self._action_low = np.asarray(action_space.low, dtype=np.float32)
            self._action_high = np.asarray(action_space.high, dtype=np.float32)
        elif isinstance(action_space, gym.spaces.Discrete):
            self.action_dim = int(action_space.n)
            self.actor = mlp(obs_dim, self.action_dim, self.hidden_sizes, activation, out_gain=0.01)
        else:
            raise TypeError(f"unsupported action space {action_space}")
        self.critic = mlp(obs_dim, 1, self.hidden_sizes, activation, out_gain=1.0)
        self.normalizer = ObservationNormalizer(observation_space.shape, clip_observations, normalize_observations)
        self.env_id: str | None = None  # set when loaded from a checkpoint

    @property
    def perturbation_space(self) -> str:
        """Where eps is measured (see :mod:`robustrl.policies.protocol`)."""
        if self.normalizer.enabled:
            return "normalised observations (policy's running mean/std)"
        return "raw observations (policy has no normaliser)"

    # ---- the face attacks and objectives use (normalised observations, tensors) ---------------
    def distribution(self, obs: torch.Tensor) -> Distribution:
        """pi(.|obs) for a batch of normalised observations. Gaussian log-probs are per dimension;
        use :meth:`log_prob` for the joint log-likelihood."""
        if self.continuous:
            mean = self.actor(obs)
            return Normal(mean, self.log_std.exp().expand_as(mean), validate_args=False)
        return Categorical(logits=self.actor(obs), validate_args=False)

    def log_prob(self, dist: Distribution, actions: torch.Tensor) -> torch.Tensor:
        """Joint log-likelihood of a batch of actions (summed over action dimensions)."""
        if self.continuous:
            return dist.log_prob(actions).sum(-1)
        return dist.log_prob(actions.long())

    def entropy(self, dist: Distribution) -> torch.Tensor:
        entropy = dist.entropy()
        return entropy.sum(-1) if self.continuous else entropy

    def log_prob_and_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint log-likelihood of ``actions`` at ``obs`` and the policy's mean entropy: the PPO
        update's hot path. For the Gaussian with state-independent std this is the closed form
        -1/2 ||(a - mu) / sigma||^2 - sum(log sigma) - d/2 log(2 pi), entropy sum(log sigma) +
        d/2 (1 + log 2 pi); equal to ``distribution`` + ``log_prob`` + ``entropy`` (tested) with a
        third of the autograd nodes (torch.distributions.Normal recomputes var and log(scale))."""
        if not self.continuous:
            dist = self.distribution(obs)
            return self.log_prob(dist, actions), self.entropy(dist).mean()
        mean = self.actor(obs)
        log_std_sum = self.log_std.sum()
        half_d_log_2pi = 0.5 * self.action_dim * _LOG_2PI
        squared = ((actions - mean) * torch.exp(-self.log_std)).pow(2).sum(-1)
        return -0.5 * squared - (log_std_sum + half_d_log_2pi), log_std_sum + half_d_log_2pi + 0.5 * self.action_dim

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(obs) for a batch of normalised observations, shape (batch,)."""
        return self.critic(obs).squeeze(-1)

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action (Gaussian mean, or arg-max class) for normalised observations."""
        out = self.actor(obs)
        return out if self.continuous else out.argmax(-1)

    # ---- the face rollouts use (raw numpy observations) ---------------------------------------
    def normalize(self, raw_obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(self.normalizer(raw_obs))

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, rng: np.random.Generator, deterministic: bool = False) -> np.ndarray:
        """Draw actions for normalised observations with a numpy generator (so the random stream
        can be saved in a checkpoint as plain JSON). Returns unclipped actions."""
        std = self.log_std.exp().numpy() if self.continuous and not deterministic else None
        return self.sample_from_output(self.actor(obs).numpy(), std, rng, deterministic)

    def sample_from_output(
        self, out: np.ndarray, std: np.ndarray | None, rng: np.random.Generator, deterministic: bool = False
    ) -> np.ndarray:
        """:meth:`sample` given the actor's output ``out`` (and the Gaussian's std), so a caller
        that computed the forward pass another way (:class:`NumpyMLP`) draws the same actions."""
        if self.continuous:
            if deterministic:
                return out
            return (out + std * rng.standard_normal(out.shape)).astype(np.float32)
        if deterministic:
            return out.argmax(-1)
        probs = np.exp(out - out.max(-1, keepdims=True))
        cdf = np.cumsum(probs / probs.sum(-1, keepdims=True), axis=-1)
        draws = rng.random((out.shape[0], 1))
        return np.minimum((draws > cdf).sum(-1), self.action_dim - 1)

    def numpy_actor(self) -> NumpyMLP | None:
        """The actor MLP as numpy arrays (a snapshot of the current weights), or None if it is not
        a plain Linear/Tanh/ReLU stack (e.g. a subclass changed it)."""
        return NumpyMLP.of(self.actor)

    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        """Clip continuous actions to the action space (log-probs stay on the unclipped sample)."""
        if self.continuous:
            return np.clip(actions, self._action_low, self._action_high)
        return actions

    def act(
        self, raw_obs: np.ndarray, deterministic: bool = True, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Env-ready actions for a batch of raw observations."""
        rng = rng if rng is not None else np.random.default_rng()
        return self.to_env_action(self.sample(self.normalize(raw_obs), rng, deterministic))

    def architecture(self) -> dict:
        return {
            "hidden_sizes": list(self.hidden_sizes),
            "activation": self.activation,
            "initial_std": self.initial_std,
            "normalize_observations": self.normalizer.enabled,
            "clip_observations": self.normalizer.clip,
        }


class NumpyMLP:
    """A snapshot of a Linear/Tanh/ReLU ``nn.Sequential`` evaluated with numpy (float32).

    For the batches of a rollout step (1-16 rows) torch's per-op dispatch costs several times the
    arithmetic: the 64-64 actor takes ~80 us through the modules and ~20 us here (Hopper, 8 rows;
    benchmarks/results/profile.md). Outputs equal torch's up to float rounding (different GEMM
    kernels; ~1e-9 on Hopper, tested). Take a new snapshot whenever the weights change.
    """

    def __init__(self, layers: list[tuple[str, np.ndarray | None, np.ndarray | None]]):
        self.layers = layers

    @classmethod
    def of(cls, module: nn.Module) -> NumpyMLP | None:
        layers: list[tuple[str, np.ndarray | None, np.ndarray | None]] = []
        for layer in module.children() if isinstance(module, nn.Sequential) else [module]:
            if type(layer) is nn.Linear:
                weight = layer.weight.detach().numpy().T.copy()  # (in, out): x @ W + b
                bias = None if layer.bias is None else layer.bias.detach().numpy().copy()
                layers.append(("linear", weight, bias))
            elif type(layer) is nn.Tanh:
                layers.append(("tanh", None, None))
            elif type(layer) is nn.ReLU:
                layers.append(("relu", None, None))
            else:
                return None
        return cls(layers)

    def value_and_input_grad(
        self, x: np.ndarray, loss: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``loss(output) -> (per-sample values, d sum(values) / d output)``; returns the values and
        d sum(values) / d x by backpropagation written out (no autograd graph: the inner solvers of
        the attacks take ten of these per env step on batches of ~10 rows)."""
        outputs = []  # what each layer returned (tanh's derivative is 1 - output^2)
        for layer in self.layers:
            x = _apply_layer(layer, x)
            outputs.append(x)
        values, grad = loss(x)
        for (kind, weight, _), output in zip(reversed(self.layers), reversed(outputs)):
            if kind == "linear":
                grad = grad @ weight.T
            elif kind == "tanh":
                grad = grad * (1.0 - output * output)
            else:
                grad = grad * (output > 0)
        return values, grad

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = _apply_layer(layer, x)
        return x


def _apply_layer(layer: tuple[str, np.ndarray | None, np.ndarray | None], x: np.ndarray) -> np.ndarray:
    """One layer of :class:`NumpyMLP` (``"linear"``, ``"tanh"`` or ``"relu"``) on a batch."""
    kind, weight, bias = layer
    if kind == "linear":
        x = x @ weight
        if bias is not None:
            x += bias
        return x
    if kind == "tanh":
        return np.tanh(x)
    return np.maximum(x, 0.0, dtype=x.dtype)
