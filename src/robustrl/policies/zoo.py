"""RL Zoo folders: find the model, its VecNormalize statistics and its env id.

Two layouts are recognised:

- the RL Zoo's training output ``logs/<algo>/<env>_<n>/``: the final model ``<env>.zip`` (also
  ``best_model.zip`` and ``rl_model_<steps>_steps.zip`` checkpoints), and a subfolder ``<env>/``
  holding ``config.yml`` (hyperparameters, ``normalize``), ``args.yml`` (``env``, ``algo``) and
  ``vecnormalize.pkl``;
- a Hugging Face ``sb3/<algo>-<env>`` download: ``<algo>-<env>.zip``, ``config.yml``,
  ``vec_normalize.pkl`` side by side.

The YAML files are written by ``yaml.dump`` of ``OrderedDict``s (a ``!!python/object/apply`` tag):
we read them with a safe loader that turns that one tag into a dict and every other Python tag
into None, so nothing in the folder is executed. ``vecnormalize.pkl`` is a pickle: it is read only
with ``trust_pickle``, or replaced by an export ``vecnormalize.npz``/``.json`` (keys obs_mean,
obs_var, clip_obs, epsilon) placed beside it.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml

from robustrl.errors import CheckpointError, InvalidArgumentError

_ALGOS = ("ppo", "a2c", "sac", "td3", "ddpg", "tqc", "trpo")
_STATS_NAMES = ("vecnormalize", "vec_normalize")
_EXPORT_SUFFIXES = (".npz", ".json")


@dataclass(frozen=True)
class ZooModel:
    """What :func:`find_zoo_model` found: the model zip, the statistics file (or None), the env id
    the model was trained on and the installed env id to run it on (the same, or the nearest version)."""

    model: Path
    vecnormalize: Path | None
    trained_env_id: str | None
    env_id: str | None
    algo: str | None


class _ZooLoader(yaml.SafeLoader):
    """SafeLoader plus the OrderedDict tag the Zoo writes; other Python tags become None."""


def _ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    args = loader.construct_sequence(node, deep=True)
    pairs = args[0] if args else []
    try:
        return {str(key): value for key, value in pairs}
    except (TypeError, ValueError):
        return {}


def _ignore_python(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> None:
    return None


_ZooLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict)
_ZooLoader.add_multi_constructor("tag:yaml.org,2002:python/", _ignore_python)


def read_zoo_yaml(path: Path) -> dict[str, Any]:
    """A Zoo ``config.yml``/``args.yml`` as a dict (safely; see module docstring)."""
    try:
        data = yaml.load(path.read_text(), Loader=_ZooLoader)  # _ZooLoader is a SafeLoader
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as error:
        raise CheckpointError(f"{path} is not readable YAML ({type(error).__name__})") from None
    if isinstance(data, list):  # an OrderedDict dumped without its tag: a list of pairs
        try:
            data = {str(k): v for k, v in data}
        except (TypeError, ValueError):
            data = None
    return data if isinstance(data, dict) else {}


def is_zoo_folder(path: Path) -> bool:
    """A directory that is not one of our runs (no ``config.json``) and holds SB3 zips or Zoo YAML."""
    path = Path(path)
    if not path.is_dir() or (path / "config.json").is_file():
        return False
    return any(path.glob("*.zip")) or any(path.glob("config.yml")) or any(path.glob("*/config.yml"))


def nearest_env_id(env_id: str) -> str:
    """``env_id`` if Gymnasium has it, else the installed version of the same env nearest to it
    (ties go to the newer version), with a warning; the Zoo's ``Hopper-v3`` runs on ``Hopper-v5``."""
    if env_id in gym.registry:
        return env_id
    match = re.fullmatch(r"(.+)-v(\d+)", env_id)
    if match is None:
        raise InvalidArgumentError(f"unknown environment id {env_id!r} (not registered with Gymnasium)")
    name, version = match.group(1), int(match.group(2))
    versions = sorted(int(m.group(1)) for key in gym.registry if (m := re.fullmatch(re.escape(name) + r"-v(\d+)", key)))
    if not versions:
        raise InvalidArgumentError(f"the model was trained on {env_id!r}, and Gymnasium has no version of {name}")
    chosen = min(versions, key=lambda v: (abs(v - version), -v))
    warnings.warn(
        f"the model was trained on {env_id}, which is not installed; running it on {name}-v{chosen}", stacklevel=2
    )
    return f"{name}-v{chosen}"


def find_zoo_model(folder: Path | str, env_id: str | None = None, *, trust_pickle: bool = False) -> ZooModel:
    """Find the model, its statistics and its env id in an RL Zoo folder (see module docstring).

    ``env_id`` (``--env``) overrides the env id the folder records. The model is, in order: the
    Zoo's final ``<env>.zip``, Hugging Face's ``<algo>-<env>.zip``, ``best_model.zip``, or the only
    zip of the folder. Statistics: an export (``vecnormalize.npz``/``.json``) is preferred to the
    pickle; the pickle without ``trust_pickle``, or ``normalize: true`` in ``config.yml`` with no
    statistics at all, is an error (the policy would see observations on the wrong scale).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder")
    params = [
        p
        for p in (folder, *sorted(q for q in folder.iterdir() if q.is_dir()))
        if (p / "config.yml").is_file() or (p / "args.yml").is_file()
    ]
    config = read_zoo_yaml(params[0] / "config.yml") if params and (params[0] / "config.yml").is_file() else {}
    args = read_zoo_yaml(params[0] / "args.yml") if params and (params[0] / "args.yml").is_file() else {}
    trained = args.get("env") if isinstance(args.get("env"), str) else None
    algo = args.get("algo") if isinstance(args.get("algo"), str) else None
    zips = sorted(folder.glob("*.zip"))
    if trained is None:  # the folder's name: <env>_<n> (Zoo) or <algo>-<env> (Hugging Face), or a zip's
        for candidate in [folder.name, *(z.stem for z in zips), *(p.name for p in params if p != folder)]:
            zoo = re.fullmatch(r"(.+-v\d+)(?:_\d+)?", candidate)
            hub = re.fullmatch(r"(" + "|".join(_ALGOS) + r")-(.+-v\d+)", candidate)
            if hub:
                algo, trained = algo or hub.group(1), hub.group(2)
                break
            if zoo:
                trained = zoo.group(1)
                break
    if algo is None and folder.parent.name in _ALGOS:
        algo = folder.parent.name
    if not zips:
        raise CheckpointError(f"{folder} holds no model (.zip): not an RL Zoo folder, or the model was not saved")
    by_name = {z.name: z for z in zips}
    preferred = [f"{trained}.zip", f"{algo}-{trained}.zip", "best_model.zip"] if trained else ["best_model.zip"]
    model = next((by_name[name] for name in preferred if name in by_name), None)
    if model is None:
        if len(zips) != 1:
            raise CheckpointError(
                f"{folder} holds several models ({', '.join(z.name for z in zips[:5])}) and none "
                f"named {preferred[0]}: pass the .zip you mean (with --env and --vecnormalize)"
            )
        model = zips[0]
    stats = _find_stats(folder, params, trust_pickle)
    if stats is None and config.get("normalize") not in (None, False, "false", "False"):
        raise CheckpointError(
            f"{folder}: config.yml says the model was trained with normalize={config['normalize']!r}, "
            "but the folder has no vecnormalize.pkl (or .npz/.json export)"
        )
    run_env = env_id if env_id is not None else (nearest_env_id(trained) if trained else None)
    return ZooModel(model, stats, trained, run_env, algo)


def _find_stats(folder: Path, params: list[Path], trust_pickle: bool) -> Path | None:
    places = [folder, *params]
    for suffix in _EXPORT_SUFFIXES:
        for place in places:
            for name in _STATS_NAMES:
                if (place / f"{name}{suffix}").is_file():
                    return place / f"{name}{suffix}"
    for place in places:
        for name in _STATS_NAMES:
            pickle_path = place / f"{name}.pkl"
            if pickle_path.is_file():
                if not trust_pickle:
                    raise CheckpointError(
                        f"{pickle_path} is a pickle (SB3 VecNormalize) and unpickling runs code from the file: pass "
                        "--trust-pickle if you trust it, or export it beside it as vecnormalize.npz (keys obs_mean, "
                        "obs_var, clip_obs, epsilon; see the README)"
                    )
                return pickle_path
    return None
