"""Study specs: a grid of runs and their evaluation, in YAML or TOML, validated with errors that
name the bad key.

A spec (see ``studies/smoke.yaml``)::

    name: smoke
    methods:                 # label -> what the label means (algo + robust knobs)
      ppo: {algo: ppo}
      bar-ppo: {algo: bar-ppo, kappa: 0.3}
      bar-ppo-nog: {algo: bar-ppo, guidance: false}
      bar-ppo-5: {algo: bar-ppo, seeds: [0, 1, 2, 3, 4]}   # a method's own seeds (else the study's)
      bar-ppo-4m: {algo: bar-ppo, steps: 4000000}          # a method's own budget (else the study's)
      bar-ppo-atla: {algo: bar-ppo, atla: {adversary: sa-rl}}  # a learned adversary in training (ATLA)
    envs: [Pendulum-v1]
    seeds: [0, 1]
    steps: 4096               # or a list: one more grid axis; null: the papers' budget per env (2M; Ant 10M)
    grid: {kappa: [0.1, 0.3]} # any robust knob as a list: a grid axis (methods that take the knob);
                              # prune.<knob> (prune.sparsity, prune.strategy, prune.prune_every, ...)
                              # is a pruning axis for every method (studies/pruning_hopper.yaml)
    prune: {strategy: magnitude, prune_every: 20}  # pruning knobs for every run (a method may add its own)
    num_envs: 1
    backend: gymnasium
    set: {steps_per_iteration: 256}   # PPO knobs for every run (as `--set`)
    set_robust: {inner_steps: 5}      # robust knobs for every run that takes them
    evaluation:
      attacks: [random, critic, mad, rs]
      eps: null               # the papers' value per env
      norm: inf
      episodes: 10
      budgets: {sa-rl: 1000000}
      fits: {sa-rl: 3}        # fit a learned attack 3 times with other seeds, keep the worst (default 1)
      attack_options: {rs: {iterations: 10}}
      median: false           # true: expensive attacks on each method's median agent only
      certify: false          # true: Theorem 1's bound and the IBP certificate of each run
      deterministic: true     # false: sampled actions (own report files)
    retries: 1

Expanded, each run is a :class:`~robustrl.config.TrainConfig` named
``<label>-<env>-s<seed>-<hash>``, where the hash is of the config itself: the same config always
gets the same directory, so a study resumes and never runs a config twice. A run at sparsity 0 is
the unpruned run whatever the other pruning knobs say (its config has no pruning), so every
strategy and interval of a pruning grid shares one baseline per method, env and seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustrl.errors import InvalidArgumentError, RobustRLError


class StudySpecError(InvalidArgumentError):
    """A study spec is malformed; the message names the key."""


TOP_KEYS = {
    "name",
    "methods",
    "envs",
    "seeds",
    "steps",
    "grid",
    "num_envs",
    "backend",
    "set",
    "set_robust",
    "evaluation",
    "retries",
    "description",
    "prune",
}
EVALUATION_KEYS = {"attacks", "eps", "norm", "episodes", "budgets", "fits", "attack_options", "median", "seed", "certify",
                   "deterministic"}  # fmt: skip
PRUNE_PREFIX = "prune."
# how a pruning axis reads in a run's label (``ppo-magnitude-sp0.5-k20``)
PRUNE_LABELS = {"strategy": "{}", "sparsity": "sp{:g}", "prune_every": "k{}"}


@dataclass(frozen=True)
class EvaluationSpec:
    attacks: tuple[str, ...] = ("random", "critic", "mad", "rs")
    eps: float | None = None  # the table's eps (None: the papers' value per env)
    eps_sweep: tuple[float, ...] = ()  # more eps values, cheap attacks only (return-vs-eps plots)
    norm: str = "inf"
    episodes: int = 20
    budgets: dict[str, int] = field(default_factory=dict)
    # fits per learned attack (default 1): its cell is the worst of that many fits with other seeds
    # (one SA-RL fit can miss a weakness: benchmarks/results/sa_rl_refit.md)
    fits: dict[str, int] = field(default_factory=dict)
    attack_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    median: bool = False
    seed: int = 10_000
    certify: bool = False
    # False: sampled actions instead of the policy's mean (own report files, eval-eps<e>-sampled.json);
    # a policy that stays wide scores its mean action far better than itself (benchmarks/results/
    # arpo_stochastic.md), and the BARPO paper does not say which mode its tables report
    deterministic: bool = True


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: its label (method), its config and its directory name."""

    name: str
    label: str
    config: Any  # TrainConfig
    method: str = ""  # the spec's method label (``label`` adds the grid axes)

    @property
    def env_id(self) -> str:
        return self.config.env_id


@dataclass(frozen=True)
class StudySpec:
    name: str
    runs: tuple[RunSpec, ...]
    evaluation: EvaluationSpec
    retries: int = 1
    source: dict[str, Any] = field(default_factory=dict)  # the spec as read, for study.json

    def run(self, name: str) -> RunSpec:
        return next(r for r in self.runs if r.name == name)


def config_hash(config: Any) -> str:
    """First 10 hex digits of the SHA-256 of the config's canonical JSON, without the speed
    switches added after studies existed (``ppo.fast_rollout``: results equal up to float
    rounding), and without newer knobs at the value that means what their absence meant
    (``ppo.learn_std: true``, ``robust.guidance_until: 1``, ``atla`` off), nor robust knobs the
    method does not read (``radial_bound`` outside RADIAL-PPO), so every existing study keeps its run names."""
    from robustrl.config import (
        LEGACY_PPO_VALUES,
        MONITORING,
        SPEED_SWITCHES,
        learned_adversary_on,
        robust_identity,
    )

    data = config.to_dict()
    if not learned_adversary_on(data.get("atla")):
        data.pop("atla", None)  # off, as in every run before it existed: the same names
    if isinstance(data.get("robust"), dict):
        data["robust"] = robust_identity(data)
    if isinstance(data.get("ppo"), dict):
        data["ppo"] = {
            k: v for k, v in data["ppo"].items()
            if k not in SPEED_SWITCHES + MONITORING and not (k in LEGACY_PPO_VALUES and v == LEGACY_PPO_VALUES[k])
        }  # fmt: skip
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def read_spec_file(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise StudySpecError(f"{path}: no such study spec")
    text = path.read_text()
    if path.suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise StudySpecError(f"{path}: not valid TOML: {error}") from None
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise StudySpecError("YAML specs need PyYAML (pip install pyyaml), or write the spec as TOML") from None
        try:
            data = yaml.safe_load(text)  # safe_load: a spec can never construct Python objects
        except yaml.YAMLError as error:
            raise StudySpecError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(data, dict):
            raise StudySpecError(f"{path}: a study spec is a mapping of keys ({', '.join(sorted(TOP_KEYS))})")
        return data
    raise StudySpecError(f"{path}: a study spec is .yaml, .yml or .toml")


def load_spec(path: Path | str) -> StudySpec:
    return parse_spec(read_spec_file(path), where=str(path))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise StudySpecError(f"{key} must be a whole number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StudySpecError(f"{key} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number < 1 or number != int(number):
        raise StudySpecError(f"{key} must be a positive whole number, got {value!r}")
    return int(number)


def parse_spec(data: dict[str, Any], where: str = "spec") -> StudySpec:
    """Validate ``data`` and expand its grid into runs."""
    from robustrl.algos import ALGORITHMS, ATLA_KNOBS, robust_config_for, robust_knobs
    from robustrl.config import (
        AtlaConfig,
        PPOConfig,
        PruneConfig,
        TrainConfig,
        check_field_value,
        default_total_steps,
        learned_adversary_on,
        ppo_defaults_for,
    )

    if not isinstance(data, dict):
        raise StudySpecError(f"{where}: a study spec is a mapping")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise StudySpecError(f"{where}: unknown key(s) {unknown}; a spec takes {sorted(TOP_KEYS)}")
    for required in ("name", "methods", "envs", "seeds", "steps"):
        if required not in data:
            raise StudySpecError(f"{where}: missing key {required!r}")
    name = str(data["name"])
    if not name or "/" in name:
        raise StudySpecError(f"name must be a non-empty string without '/', got {name!r}")
    methods = data["methods"]
    if not isinstance(methods, dict) or not methods:
        raise StudySpecError("methods must map labels to settings, e.g. {bar-ppo: {algo: bar-ppo, kappa: 0.3}}")
    envs = [str(e) for e in _as_list(data["envs"])]
    from robustrl.envs.make import check_env_id

    for env in envs:
        try:
            check_env_id(env, str(data.get("backend", "gymnasium")))
        except RobustRLError as error:
            raise StudySpecError(f"envs: {error}") from None
    seeds = _seeds(data["seeds"], "seeds")
    # null: each env's budget in the papers (robustrl.config.default_total_steps: 2M, Ant 10M), so
    # one spec can hold Table 2's four tasks; resolved per env below, so the config (and its hash)
    # is the same as with the number written out
    steps = [None if s is None else _count(s, "steps") for s in _as_list(data["steps"])]
    num_envs = _count(data.get("num_envs", 1), "num_envs")
    backend = str(data.get("backend", "gymnasium"))
    ppo_set = data.get("set", {}) or {}
    robust_set = data.get("set_robust", {}) or {}
    grid = data.get("grid", {}) or {}
    for key, value in (("set", ppo_set), ("set_robust", robust_set), ("grid", grid)):
        if not isinstance(value, dict):
            raise StudySpecError(f"{key} must be a mapping of knob -> value")
    ppo_fields = {f.name for f in dataclasses.fields(PPOConfig)}
    for key, value in ppo_set.items():
        if key not in ppo_fields:
            raise StudySpecError(f"set.{key}: not a PPO knob; PPO knobs: {sorted(ppo_fields)}")
        try:
            check_field_value(PPOConfig, key, tuple(value) if isinstance(value, list) else value, "set.")
        except InvalidArgumentError as error:
            raise StudySpecError(str(error)) from None
    from robustrl.config import RobustConfig

    robust_fields = {f.name for f in dataclasses.fields(RobustConfig)}
    prune_fields = {f.name for f in dataclasses.fields(PruneConfig)} - {"initial_checkpoint"}
    for key in robust_set:
        if key not in robust_fields:
            raise StudySpecError(f"set_robust.{key}: not a robust knob; robust knobs: {sorted(robust_fields)}")
    prune_set = _prune_mapping(data.get("prune"), "prune", prune_fields)
    grid_axes, prune_axes = _split_grid(grid, "grid", robust_fields, prune_fields)

    runs: dict[str, RunSpec] = {}
    for label, settings in methods.items():
        settings = dict(settings or {})
        algo = settings.pop("algo", label)
        settings.pop("paper", None)  # the paper's name for this method, read by the report
        method_set = settings.pop("set", {}) or {}  # PPO knobs of this method only
        # this method's own seeds (more seeds for the method a quality goal is about, without
        # paying for them on every baseline); the same seed gives the same run as the study's seeds
        method_seeds = _seeds(settings.pop("seeds"), f"methods.{label}.seeds") if "seeds" in settings else seeds
        # this method's own budget(s) (e.g. training longer at full eps, issue 17 item 5); the same
        # budget gives the same run as the study's steps
        method_steps = (
            [None if s is None else _count(s, f"methods.{label}.steps") for s in _as_list(settings.pop("steps"))]
            if "steps" in settings else steps
        )  # fmt: skip
        if not method_steps:
            raise StudySpecError(f"methods.{label}.steps must name at least one budget")
        method_prune = {**prune_set, **_prune_mapping(settings.pop("prune", None), f"methods.{label}.prune", prune_fields)}
        method_atla = _atla_mapping(settings.pop("atla", None), f"methods.{label}.atla")  # a learned adversary in training
        method_grid = settings.pop("grid", {}) or {}  # axes of this method only (added to, or replacing, the study's)
        if not isinstance(method_grid, dict):
            raise StudySpecError(f"methods.{label}.grid must be a mapping of knob -> list of values")
        own_axes, own_prune_axes = _split_grid(method_grid, f"methods.{label}.grid", robust_fields, prune_fields)
        if not isinstance(method_set, dict):
            raise StudySpecError(f"methods.{label}.set must be a mapping of PPO knob -> value")
        for key in method_set:
            if key not in ppo_fields:
                raise StudySpecError(f"methods.{label}.set.{key}: not a PPO knob; PPO knobs: {sorted(ppo_fields)}")
        if algo not in ALGORITHMS:
            raise StudySpecError(
                f"methods.{label}.algo: unknown algorithm {algo!r}; available: {', '.join(ALGORITHMS)}"
            )
        # a learned adversary in the loop reads the radius and its warm-up, whatever the method
        knobs = set(robust_knobs(algo)) | (set(ATLA_KNOBS) if learned_adversary_on(method_atla) else set())
        bad = sorted(set(settings) - robust_fields)
        if bad:
            raise StudySpecError(
                f"methods.{label}: unknown key(s) {bad}; a method takes algo and robust knobs {sorted(robust_fields)}"
            )
        axes = {k: v for k, v in grid_axes.items() if k in knobs and k not in settings} | own_axes
        pruning_axes = {k: v for k, v in prune_axes.items() if k not in method_prune} | own_prune_axes
        method_prune = {k: v for k, v in method_prune.items() if k not in own_prune_axes}
        for env, seed, total_steps, *values in itertools.product(envs, method_seeds, method_steps, *axes.values(), *pruning_axes.values()):
            robust_values, prune_values = values[: len(axes)], values[len(axes) :]
            options = {k: v for k, v in robust_set.items() if k in knobs}
            options.update(settings)
            options.update(dict(zip(axes, robust_values)))
            pruning = {**method_prune, **dict(zip(pruning_axes, prune_values))}
            if total_steps is None:
                total_steps = default_total_steps(env)
            try:
                robust = robust_config_for(algo, options, atla=learned_adversary_on(method_atla))
                overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in {**ppo_set, **method_set}.items()}
                prune = _prune_config(pruning)
                config = TrainConfig(
                    env_id=env, algo=algo, total_steps=total_steps, seed=seed, num_envs=num_envs, backend=backend,
                    ppo=ppo_defaults_for(env, **overrides), robust=robust, prune=prune, atla=AtlaConfig(**method_atla),
                )  # fmt: skip
                config.validate()
            except (InvalidArgumentError, TypeError) as error:
                raise StudySpecError(f"methods.{label} on {env}: {error}") from None
            axis_label = "".join(f"-{k}{v}" for k, v in zip(axes, robust_values))
            if len(method_steps) > 1:  # a budget axis: its runs are groups of their own (median agent, tables)
                axis_label += f"-{budget_label(total_steps)}"
            if pruning_axes:  # the unpruned run is one run, whatever the strategy or interval axes say
                axis_label += "".join(
                    "-" + PRUNE_LABELS.get(k, k + "{}").format(v) for k, v in zip(pruning_axes, prune_values)
                ) if prune.sparsity > 0 else "-unpruned"  # fmt: skip
            run_name = f"{label}{axis_label}-{env.replace('/', '_')}-s{seed}-{config_hash(config)}"
            runs.setdefault(run_name, RunSpec(run_name, label + axis_label, config, label))
    evaluation = parse_evaluation(data.get("evaluation", {}) or {})
    retries = data.get("retries", 1)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise StudySpecError(f"retries must be a whole number >= 0, got {retries!r}")
    return StudySpec(name, tuple(runs.values()), evaluation, retries, json.loads(json.dumps(data, default=str)))


def budget_label(steps: int) -> str:
    """A budget as a run label reads it: 2000000 -> 2M, 512000 -> 512k, 768 -> 768."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if steps % size == 0:
            return f"{steps // size}{unit}"
    return str(steps)


def _seeds(value: Any, key: str) -> list[int]:
    seeds = []
    for seed in _as_list(value):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise StudySpecError(f"{key} must be whole numbers >= 0, got {seed!r}")
        seeds.append(seed)
    if not seeds:
        raise StudySpecError(f"{key} must name at least one seed")
    return seeds


def _split_grid(
    grid: dict[str, Any], where: str, robust_fields: set[str], prune_fields: set[str]
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """A grid's robust axes (``kappa``) and pruning axes (``prune.sparsity`` -> ``sparsity``)."""
    robust, prune = {}, {}
    for key, values in grid.items():
        if key.startswith(PRUNE_PREFIX):
            if key[len(PRUNE_PREFIX) :] not in prune_fields:
                raise StudySpecError(f"{where}.{key}: not a pruning knob; pruning knobs: {sorted(prune_fields)}")
            prune[key[len(PRUNE_PREFIX) :]] = _as_list(values)
        elif key in robust_fields:
            robust[key] = _as_list(values)
        else:
            hint = f" (pruning axes are {PRUNE_PREFIX}<knob>, e.g. {PRUNE_PREFIX}sparsity)" if key in prune_fields else ""
            raise StudySpecError(f"{where}.{key}: not a robust knob; robust knobs: {sorted(robust_fields)}{hint}")
    return robust, prune


def _knob_mapping(value: Any, key: str, fields: set[str], what: str, example: str) -> dict[str, Any]:
    """A spec's mapping of ``what`` knobs (pruning, ATLA) -> value, its keys checked."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StudySpecError(f"{key} must be a mapping of {what} knob -> value, e.g. {example}")
    unknown = sorted(set(value) - fields)
    if unknown:
        raise StudySpecError(f"{key}: unknown {what} knob(s) {unknown}; {what} knobs: {sorted(fields)}")
    return dict(value)


def _prune_mapping(value: Any, key: str, fields: set[str]) -> dict[str, Any]:
    return _knob_mapping(value, key, fields, "pruning", "{strategy: magnitude, sparsity: 0.5}")


def _atla_mapping(value: Any, key: str) -> dict[str, Any]:
    """A method's ``atla:`` entry (robustrl.algos.atla): e.g. ``{adversary: sa-rl, fraction: 0.5}``."""
    from robustrl.config import AtlaConfig

    return _knob_mapping(value, key, {f.name for f in dataclasses.fields(AtlaConfig)}, "ATLA", "{adversary: sa-rl}")


def _prune_config(values: dict[str, Any]) -> Any:
    """The run's PruneConfig; sparsity 0 is no pruning (one shared baseline per method and seed)."""
    from robustrl.config import PruneConfig

    if not values or float(values.get("sparsity", 0.0) or 0.0) == 0.0:
        return PruneConfig()
    return PruneConfig(**values)


def parse_evaluation(data: dict[str, Any]) -> EvaluationSpec:
    from robustrl.attacks import ATTACKS, parse_attacks
    from robustrl.threat.norms import parse_norm

    if not isinstance(data, dict):
        raise StudySpecError("evaluation must be a mapping")
    unknown = sorted(set(data) - EVALUATION_KEYS)
    if unknown:
        raise StudySpecError(f"evaluation: unknown key(s) {unknown}; it takes {sorted(EVALUATION_KEYS)}")
    attacks = data.get("attacks", list(EvaluationSpec.attacks))
    try:
        attacks = parse_attacks(attacks if isinstance(attacks, str) else ",".join(map(str, attacks)))
        norm = parse_norm(data.get("norm", "inf"))
    except InvalidArgumentError as error:
        raise StudySpecError(f"evaluation: {error}") from None
    eps_values = data.get("eps")
    eps_values = eps_values if isinstance(eps_values, list) else [eps_values]
    for eps in eps_values:
        if eps is not None and (
            isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0 or not math.isfinite(eps)
        ):
            raise StudySpecError(
                f"evaluation.eps must be a number >= 0, a list of them (the first is the table's), or null; got {eps!r}"
            )
    if not eps_values or (None in eps_values and len(eps_values) > 1):
        raise StudySpecError("evaluation.eps: a list of eps values cannot be empty or contain null")
    eps = eps_values[0]
    budgets = {}
    for name, value in (data.get("budgets") or {}).items():
        if name not in ATTACKS or not ATTACKS[name].learned:
            raise StudySpecError(
                f"evaluation.budgets.{name}: not a learned attack ({sorted(n for n, c in ATTACKS.items() if c.learned)})"
            )
        budgets[name] = _count(value, f"evaluation.budgets.{name}")
    from robustrl.evaluate.robustness import check_fits

    if not isinstance(data.get("fits") or {}, dict):
        raise StudySpecError(f"evaluation.fits: expected a mapping of learned attacks to fit counts, e.g. {{sa-rl: 3}}; got {data['fits']!r}")
    try:
        fits = check_fits(dict(data.get("fits") or {}))
    except InvalidArgumentError as error:
        raise StudySpecError(f"evaluation.{error}") from None
    options = data.get("attack_options") or {}
    for name, values in options.items():
        if name not in ATTACKS or not isinstance(values, dict):
            raise StudySpecError(f"evaluation.attack_options.{name}: expected an attack name mapping to its options")
        known = {f.name for f in dataclasses.fields(ATTACKS[name].Options)}
        if set(values) - known:
            raise StudySpecError(
                f"evaluation.attack_options.{name}: unknown option(s) {sorted(set(values) - known)}; it takes {sorted(known)}"
            )
    median = data.get("median", False)
    if not isinstance(median, bool):
        raise StudySpecError(f"evaluation.median must be true or false, got {median!r}")
    certify = data.get("certify", False)
    if not isinstance(certify, bool):
        raise StudySpecError(f"evaluation.certify must be true or false, got {certify!r}")
    deterministic = data.get("deterministic", True)
    if not isinstance(deterministic, bool):
        raise StudySpecError(f"evaluation.deterministic must be true or false, got {deterministic!r}")
    return EvaluationSpec(
        attacks=tuple(attacks), eps=None if eps is None else float(eps), eps_sweep=tuple(float(e) for e in eps_values[1:]), norm=norm,
        episodes=_count(data.get("episodes", 20), "evaluation.episodes"), budgets=budgets, fits=fits,
        attack_options={k: dict(v) for k, v in options.items()}, median=median,
        seed=int(data.get("seed", 10_000)), certify=certify, deterministic=deterministic,
    )  # fmt: skip
