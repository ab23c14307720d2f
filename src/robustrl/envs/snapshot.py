"""Save and restore the exact mid-episode state of a Gymnasium vector env, as JSON-able data.

Resume must continue an interrupted run bit for bit, so a checkpoint records where each
environment was: the simulator state, the env's random generator, and the time-limit counter.
Gymnasium has no generic state API (and pickling envs is both fragile and unsafe to load), so we
support the two families the project trains on:

- MuJoCo envs (``gymnasium.envs.mujoco.MujocoEnv``): ``mujoco.mj_getState`` with
  ``mjSTATE_INTEGRATION``, which includes the solver warm-start and so reproduces later steps
  exactly;
- classic-control envs whose whole state is the ``state`` attribute (Pendulum, CartPole, ...).

Anything else raises :class:`SnapshotUnsupportedError`; the trainer then resumes with freshly reset
episodes and says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import SyncVectorEnv

# Plain attributes of classic-control envs that, with ``state``, define their dynamics state.
_CLASSIC_EXTRA_ATTRIBUTES = ("steps_beyond_terminated", "last_u")


class SnapshotUnsupportedError(RuntimeError):
    """This environment's state cannot be captured exactly."""


def snapshot_vector_env(env: Any) -> list[dict[str, Any]]:
    if not isinstance(env, SyncVectorEnv):
        raise SnapshotUnsupportedError(f"cannot snapshot {type(env).__name__}")
    return [_snapshot_single(sub_env) for sub_env in env.envs]


def restore_vector_env(env: Any, snapshots: list[dict[str, Any]]) -> None:
    if not isinstance(env, SyncVectorEnv) or len(env.envs) != len(snapshots):
        raise SnapshotUnsupportedError("vector env does not match the snapshot")
    for sub_env, snapshot in zip(env.envs, snapshots):
        _restore_single(sub_env, snapshot)


def _time_limit(env: Any) -> Any | None:
    while env is not None:
        if hasattr(env, "_elapsed_steps") and hasattr(env, "_max_episode_steps"):
            return env
        env = getattr(env, "env", None)
    return None


def _snapshot_single(env: Any) -> dict[str, Any]:
    base = env.unwrapped
    snapshot: dict[str, Any] = {"rng": base.np_random.bit_generator.state}
    limit = _time_limit(env)
    snapshot["elapsed_steps"] = None if limit is None else limit._elapsed_steps
    if _is_mujoco(base):
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(mujoco.mj_stateSize(base.model, spec))
        mujoco.mj_getState(base.model, base.data, state, spec)
        snapshot["mujoco_state"] = state.tolist()
    elif getattr(base, "state", None) is not None:
        snapshot["state"] = np.asarray(base.state, dtype=np.float64).tolist()
        for name in _CLASSIC_EXTRA_ATTRIBUTES:
            if hasattr(base, name):
                value = getattr(base, name)
                snapshot[name] = None if value is None else float(value)
    else:
        raise SnapshotUnsupportedError(f"no known way to snapshot {type(base).__name__}")
    return snapshot


def _restore_single(env: Any, snapshot: dict[str, Any]) -> None:
    base = env.unwrapped
    base.np_random.bit_generator.state = snapshot["rng"]
    limit = _time_limit(env)
    if limit is not None:
        limit._elapsed_steps = snapshot["elapsed_steps"]
    if "mujoco_state" in snapshot:
        import mujoco

        if not _is_mujoco(base):
            raise SnapshotUnsupportedError("snapshot is of a MuJoCo env, this env is not one")
        state = np.asarray(snapshot["mujoco_state"], dtype=np.float64)
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        mujoco.mj_setState(base.model, base.data, state, spec)
        mujoco.mj_forward(base.model, base.data)
    else:
        base.state = np.asarray(snapshot["state"], dtype=np.float64)
        for name in _CLASSIC_EXTRA_ATTRIBUTES:
            if name in snapshot:
                setattr(base, name, snapshot[name])
    # OrderEnforcing refuses step() before reset(); the restored env is mid-episode.
    wrapper = env
    while wrapper is not None:
        if hasattr(wrapper, "_has_reset"):
            wrapper._has_reset = True
        wrapper = getattr(wrapper, "env", None)


def _is_mujoco(base: Any) -> bool:
    return hasattr(base, "model") and hasattr(base, "data") and type(base.data).__module__.startswith("mujoco")
