"""Vector environments with one set of episode semantics across backends.

Both backends return a ``gymnasium.vector.VectorEnv`` with *same-step* autoreset: when an episode
ends, ``step`` already returns the first observation of the next episode, and the last observation
of the finished one is in ``info["final_obs"][i]`` (mask ``info["_final_obs"]``). The training loop
needs that final observation to bootstrap the value of time-limit truncations.

- ``gymnasium`` (default): ``gymnasium.make_vec`` with a synchronous vector env.
- ``envpool`` (optional extra ``robustrl[envpool]``): EnvPool's C++ implementation of the same task,
  wrapped below to give the same semantics.
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from robustrl.config import BACKENDS
from robustrl.errors import (
    InvalidArgumentError,
    NonFiniteObservationError,
    UnknownEnvError,
)


def check_env_id(env_id: str, backend: str = "gymnasium") -> None:
    """Raise :class:`UnknownEnvError` (with suggestions) unless ``backend`` provides ``env_id``."""
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend == "envpool":
        known = _envpool_ids()
        if env_id not in known:
            near = difflib.get_close_matches(env_id, known, n=3)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise UnknownEnvError(f"envpool has no task {env_id!r}{hint}; use --backend gymnasium for this env")
        return
    if env_id not in gym.registry:
        near = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise UnknownEnvError(f"unknown environment id {env_id!r} (not registered with Gymnasium{hint})")


def make_env(env: Any, num_envs: int = 1, seed: int = 0, backend: str = "gymnasium") -> VectorEnv:
    """Make ``num_envs`` copies of ``env``, seeded ``seed, seed+1, ...`` (the caller resets).

    ``env`` is a Gymnasium id (``"Hopper-v5"``) or an *env factory*: a callable returning a
    ``gymnasium.Env`` (a wrapped env, an env built from MJCF in code, or the single-agent
    :class:`~robustrl.envs.multiagent.OpponentView` of a PettingZoo parallel env). Either way the
    result is a Gymnasium vector env with same-step autoreset (see module docstring), so
    normalisation and episode semantics are the same. The caller owns it and must ``close()`` it.
    Observations are raw; normalisation lives with the policy.
    """
    if num_envs < 1:
        raise InvalidArgumentError(f"num_envs must be >= 1, got {num_envs}")
    if callable(env) and not isinstance(env, str):
        if backend != "gymnasium":
            raise InvalidArgumentError(f"an env factory runs on the gymnasium backend, not {backend!r}")
        label = getattr(env, "__name__", type(env).__name__)
        vector: VectorEnv = gym.vector.SyncVectorEnv(
            [_checked_factory(env, label)] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP
        )
        _check_spaces(label, vector)
        vector.action_space.seed(seed)
        return vector
    if not isinstance(env, str):
        raise InvalidArgumentError(
            f"env must be a Gymnasium id or a callable returning a gymnasium.Env, got {type(env).__name__}; "
            "a PettingZoo parallel env takes part through robustrl.envs.multiagent.opponent_view(...) "
            "or robustrl.algos.rollout.MultiAgentCollector"
        )
    env_id = env
    check_env_id(env_id, backend)
    if backend == "envpool":
        vector = EnvpoolVectorEnv(env_id, num_envs, seed)
    else:
        route_mujoco_warnings()
        vector = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        )
    _check_spaces(env_id, vector)
    vector.action_space.seed(seed)
    return vector


class MujocoWarning(UserWarning):
    """A warning MuJoCo's C library raised (e.g. a deprecated attribute in a task's XML)."""


def route_mujoco_warnings() -> None:
    """Send MuJoCo's C-level warnings through Python's ``warnings`` (shown once per process and
    message, filterable) unless the user installed a handler of their own. MuJoCo prints each
    one to stdout every time a model compiles: Gymnasium's half_cheetah.xml uses the deprecated
    ``settotalmass``, so a study on HalfCheetah-v5 printed it some 500 times per session (8 envs
    per evaluation, every evaluation)."""
    try:
        import mujoco
    except ImportError:  # no MuJoCo tasks here
        return
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_mujoco_warning)


def _mujoco_warning(message: str) -> None:
    import warnings

    warnings.warn(f"MuJoCo: {message}", MujocoWarning, stacklevel=1)


def _checked_factory(factory: Any, label: str):
    def make() -> gym.Env:
        made = factory()
        if not isinstance(made, gym.Env):
            hint = (
                " (a PettingZoo parallel env: wrap it with robustrl.envs.multiagent.opponent_view)"
                if hasattr(made, "possible_agents")
                else ""
            )
            raise InvalidArgumentError(f"env factory {label} returned {type(made).__name__}, not a gymnasium.Env{hint}")
        return made

    return make


def require_finite(obs: np.ndarray, env_id: str, where: str = "") -> None:
    """Raise :class:`NonFiniteObservationError` if ``obs`` holds NaN or inf (an env gone unstable)."""
    if not np.all(np.isfinite(obs)):
        raise NonFiniteObservationError(f"{env_id} returned a non-finite observation{where}")


def _check_spaces(env_id: str, env: VectorEnv) -> None:
    obs_space, act_space = env.single_observation_space, env.single_action_space
    if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
        env.close()
        raise UnknownEnvError(f"{env_id}: robustrl needs a flat Box observation space, got {obs_space}")
    if not isinstance(act_space, (gym.spaces.Box, gym.spaces.Discrete)):
        env.close()
        raise UnknownEnvError(f"{env_id}: robustrl needs a Box or Discrete action space, got {act_space}")


def _envpool_ids() -> list[str]:
    try:
        import envpool
    except ImportError as error:
        raise InvalidArgumentError(
            "backend 'envpool' needs the optional extra: pip install 'robustrl[envpool]'"
        ) from error
    return list(envpool.list_all_envs())


class EnvpoolVectorEnv(VectorEnv):
    """EnvPool task behind the Gymnasium ``VectorEnv`` face, with same-step autoreset.

    EnvPool resets a finished env on the *next* ``step`` call (ignoring that action). We instead
    reset finished envs immediately with ``reset(env_ids)``, so every action passed to ``step`` is
    applied and episode boundaries match the Gymnasium backend exactly.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env_id: str, num_envs: int, seed: int):
        import envpool

        self._pool = envpool.make_gymnasium(env_id, num_envs=num_envs, seed=seed)
        self.num_envs = num_envs
        self.single_observation_space = self._pool.observation_space
        self.single_action_space = self._pool.action_space
        if isinstance(self.single_action_space, gym.spaces.Box):
            # EnvPool reports float64 bounds; Gymnasium MuJoCo tasks float32. Same values.
            self.single_action_space = gym.spaces.Box(
                self.single_action_space.low.astype(np.float32),
                self.single_action_space.high.astype(np.float32),
                dtype=np.float32,
            )
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.spec = gym.registry.get(env_id)
        self._all_ids = np.arange(num_envs, dtype=np.int32)

    def reset(self, *, seed: Any = None, options: Any = None):
        # EnvPool fixes its seeds at construction; reset(seed=...) cannot reseed it.
        obs, _ = self._pool.reset(self._all_ids)
        return obs, {}

    def step(self, actions):
        obs, reward, terminated, truncated, _ = self._pool.step(np.asarray(actions), self._all_ids)
        done = terminated | truncated
        info: dict[str, Any] = {}
        if done.any():
            done_ids = np.flatnonzero(done).astype(np.int32)
            final_obs = np.empty(self.num_envs, dtype=object)
            final_obs[done_ids] = list(obs[done_ids])
            info = {"final_obs": final_obs, "_final_obs": done}
            obs = obs.copy()
            new_obs, _ = self._pool.reset(done_ids)
            obs[done_ids] = new_obs
        return obs, reward.astype(np.float64), terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        self._pool.close()
