"""Checkpoints: ``NAME.safetensors`` (tensors) + ``NAME.json`` (metadata). No pickle anywhere.

The JSON records the format version, the SHA-256 of the tensor file (so a truncated or swapped file
is caught before it is parsed), the env id, both spaces, the architecture, the run config and the
package versions. Writes go to a temporary file first and are renamed into place, so an
interrupted save never damages an earlier checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
import warnings
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors_from_bytes
from safetensors.torch import save as save_tensors_to_bytes

from robustrl.errors import CheckpointError, RunDirectoryError
from robustrl.policies.actor_critic import ActorCritic

FORMAT = "robustrl-checkpoint"
FORMAT_VERSION = 1
POLICY_PREFIX = "policy/"
NORMALIZER_PREFIX = "obs_normalizer/"

_VERSIONED_PACKAGES = ("robustrl", "torch", "numpy", "gymnasium", "mujoco", "safetensors", "envpool")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


# ---- spaces as JSON ---------------------------------------------------------------------------
def space_to_dict(space: gym.spaces.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "low": np.asarray(space.low, dtype=np.float64).tolist(),
            "high": np.asarray(space.high, dtype=np.float64).tolist(),
            "dtype": str(space.dtype),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    raise CheckpointError(f"cannot record space {space}")


def space_from_dict(data: dict[str, Any]) -> gym.spaces.Space:
    if data["type"] == "Box":
        return gym.spaces.Box(
            np.asarray(data["low"], dtype=data["dtype"]), np.asarray(data["high"], dtype=data["dtype"]), dtype=data["dtype"]
        )
    if data["type"] == "Discrete":
        return gym.spaces.Discrete(data["n"])
    raise CheckpointError(f"unknown space type {data['type']!r} in checkpoint")


# ---- generic save / load ----------------------------------------------------------------------
def _non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding NaN or inf."""
    return [name for name, value in tensors.items() if value.is_floating_point() and not bool(torch.isfinite(value).all())]


def save_checkpoint(stem: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``stem.safetensors`` then ``stem.json`` (the JSON is the commit point). Refuses
    tensors holding NaN or inf: such a checkpoint could never be resumed or evaluated, and writing
    it would hide the last good one."""
    stem = Path(stem)
    bad = _non_finite(tensors)
    if bad:
        raise CheckpointError(
            f"refusing to save {stem}: tensor {bad[0]} holds NaN or inf"
            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
            + "; training diverged (try a lower learning rate); earlier checkpoints are intact"
        )
    stem.parent.mkdir(parents=True, exist_ok=True)
    blob = save_tensors_to_bytes({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    atomic_write_bytes(stem.with_suffix(".safetensors"), blob)
    full_meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        **meta,
    }
    atomic_write_text(stem.with_suffix(".json"), json.dumps(full_meta, indent=1))


def load_checkpoint(stem: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a checkpoint; any problem is a :class:`CheckpointError` naming the file."""
    stem = Path(stem)
    if stem.suffix in (".json", ".safetensors"):
        stem = stem.with_suffix("")
    json_path, tensor_path = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
    for path in (json_path, tensor_path):
        if not path.is_file():
            raise CheckpointError(f"checkpoint file {path} is missing")
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{json_path} is not valid JSON (corrupt or truncated): {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{json_path} is not a robustrl checkpoint")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{json_path} has format version {meta.get('format_version')}, this robustrl reads {FORMAT_VERSION}"
        )
    blob = tensor_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("tensors_sha256"):
        raise CheckpointError(
            f"{tensor_path} does not match its metadata checksum (corrupt, truncated or replaced)"
        )
    try:
        tensors = load_tensors_from_bytes(blob)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{tensor_path} is not a readable safetensors file: {error}") from None
    bad = _non_finite(tensors)
    if bad:
        raise CheckpointError(f"{tensor_path}: tensor {bad[0]} holds NaN or inf (a diverged run); use an earlier checkpoint")
    return tensors, meta


# ---- policies -----------------------------------------------------------------------------------
def policy_tensors(policy: ActorCritic) -> dict[str, torch.Tensor]:
    tensors = {POLICY_PREFIX + k: v for k, v in policy.state_dict().items()}
    for key, value in policy.normalizer.state_dict().items():
        tensors[NORMALIZER_PREFIX + key] = torch.as_tensor(np.asarray(value, dtype=np.float64))
    return tensors


def policy_meta(policy: ActorCritic, env_id: str) -> dict[str, Any]:
    return {
        "env_id": env_id,
        "observation_space": space_to_dict(policy.observation_space),
        "action_space": space_to_dict(policy.action_space),
        "architecture": policy.architecture(),
        "versions": package_versions(),
    }


def save_policy(stem: Path, policy: ActorCritic, env_id: str, extra_meta: dict[str, Any] | None = None) -> None:
    save_checkpoint(stem, policy_tensors(policy), {**policy_meta(policy, env_id), **(extra_meta or {})})


def policy_from_checkpoint(
    tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: Path | str, expected_env_id: str | None = None
) -> ActorCritic:
    """Rebuild the policy a checkpoint describes and check every tensor against it."""
    env_id = meta.get("env_id")
    if expected_env_id is not None and env_id != expected_env_id:
        raise CheckpointError(f"{source} was trained on {env_id!r}, not {expected_env_id!r}")
    try:
        observation_space = space_from_dict(meta["observation_space"])
        action_space = space_from_dict(meta["action_space"])
        policy = ActorCritic(observation_space, action_space, **meta["architecture"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{source} has incomplete policy metadata: {error}") from None
    expected = policy.state_dict()
    state = {k[len(POLICY_PREFIX):]: v for k, v in tensors.items() if k.startswith(POLICY_PREFIX)}
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise CheckpointError(f"{source}: policy tensors do not match the architecture (missing {missing}, extra {extra})")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{source}: tensor {key} has shape {tuple(value.shape)}, architecture needs {tuple(expected[key].shape)}"
            )
    policy.load_state_dict(state)
    normalizer_state = {
        k[len(NORMALIZER_PREFIX):]: v.numpy() for k, v in tensors.items() if k.startswith(NORMALIZER_PREFIX)
    }
    try:
        policy.normalizer.load_state_dict(normalizer_state)
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{source}: observation-normaliser statistics are invalid: {error}") from None
    policy.env_id = env_id
    policy.eval()
    return policy


# ---- run directories: where a run keeps its checkpoints (layout: robustrl.experiments.run) --------
CHECKPOINT_PATTERN = re.compile(r"^iter_(\d{6,})\.json$")


def is_run_dir(path: Path) -> bool:
    return (Path(path) / "config.json").is_file() and (Path(path) / "checkpoints").is_dir()


def require_run_dir(path: Path | str) -> Path:
    path = Path(path)
    if not path.exists():
        raise RunDirectoryError(f"{path} does not exist")
    if not is_run_dir(path):
        raise RunDirectoryError(f"{path} is not a robustrl run directory (no config.json and checkpoints/)")
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint stems of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    found = [(int(m.group(1)), folder / f"iter_{m.group(1)}") for p in folder.glob("iter_*.json") if (m := CHECKPOINT_PATTERN.match(p.name))]
    return [stem for _, stem in sorted(found)]


def latest_checkpoint(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], Path]:
    """Load the newest readable checkpoint; a corrupt newer one is skipped with a warning."""
    stems = list_checkpoints(run_dir)
    if not stems:
        raise CheckpointError(f"{run_dir} has no checkpoints yet")
    errors = []
    for stem in reversed(stems):
        try:
            tensors, meta = load_checkpoint(stem)
            for message in errors:
                warnings.warn(f"skipped unreadable checkpoint: {message}; using {stem.name}", stacklevel=2)
            return tensors, meta, stem
        except CheckpointError as error:
            errors.append(str(error))
    raise CheckpointError(f"no readable checkpoint in {run_dir}: {errors[0]}")


def load_policy(path: Path | str, env_id: str | None = None) -> ActorCritic:
    """Load a trained policy from a run directory (newest readable checkpoint; a corrupt newer one
    is skipped with a warning) or a checkpoint file/stem.

    ``env_id``, if given, must match the env the policy was trained on. The policy's
    ``checkpoint`` attribute is the stem of the checkpoint actually loaded (reports record it).
    """
    path = Path(path)
    if not path.exists() and not path.with_suffix(".json").exists():
        raise RunDirectoryError(f"{path} does not exist")
    if path.is_dir():
        tensors, meta, stem = latest_checkpoint(require_run_dir(path))
    else:
        tensors, meta = load_checkpoint(path)
        stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    policy = policy_from_checkpoint(tensors, meta, stem, env_id)
    policy.checkpoint = str(stem)
    return policy
