"""``robustrl`` command line: parse, call the library, print with rich. Nothing else lives here."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from robustrl.errors import InvalidArgumentError, RobustRLError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Adversarially robust deep RL: train, attack, evaluate.",
)
# soft_wrap: never hard-wrap messages at 80 columns when piped (paths and commands must stay on one line)
# Piped output gets a wide virtual terminal: rich would otherwise squeeze the robustness table
# into 80 columns and truncate every cell.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 220)
error_console = Console(stderr=True, soft_wrap=True)


class _StoppedEarly(Exception):
    """Training was interrupted and saved (a resumable checkpoint): exit code 130, no message."""


@app.callback()
def _global_options(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    """Adversarially robust deep RL: train, attack, evaluate."""


MAX_COUNT = 10**10  # robustrl.config.MAX_STEPS (not imported here: the CLI starts without torch)


def parse_count(text: str, name: str) -> int:
    """Accept ``2e6``, ``2000000`` or ``2_000_000``; reject negatives, fractions, words and counts
    above 1e10 (a typo, or a run that would never end)."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise InvalidArgumentError(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise InvalidArgumentError(f"{name} must be a positive whole number, got {text!r}")
    if value > MAX_COUNT:
        raise InvalidArgumentError(f"{name} must be at most 1e10, got {text!r}")
    return int(value)


def _json_value(raw: str, option: str, key: str, string_ok: bool) -> Any:
    """``KEY=VALUE``'s value as JSON; plain words are strings where the field is a string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        if string_ok:
            return raw
        raise InvalidArgumentError(
            f"{option} {key}: {raw!r} is not a JSON value (number, true/false, null, list)"
        ) from None


def _string_fields(cls: type) -> set[str]:
    import typing

    hints = typing.get_type_hints(cls)
    return {name for name, kind in hints.items() if kind is str or str in typing.get_args(kind)}


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``--set policy_lr=1e-4 --set hidden_sizes=[32,32]`` -> PPOConfig overrides (JSON values,
    checked against the fields' types)."""
    from robustrl.config import PPOConfig, check_field_value

    known = {f.name for f in dataclasses.fields(PPOConfig)}
    strings = _string_fields(PPOConfig)
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in known:
            raise InvalidArgumentError(f"--set expects KEY=VALUE with KEY one of {sorted(known)}, got {pair!r}")
        value = _json_value(raw, "--set", key, key in strings)
        overrides[key] = check_field_value(PPOConfig, key, value, "--set ")
    return overrides


def parse_robust_options(pairs: list[str]) -> dict[str, Any]:
    """``--set-robust temperature=1e-5`` -> RobustConfig fields (JSON values; plain words for
    the string fields norm, inner_solve, solver)."""
    from robustrl.config import RobustConfig

    known = {f.name for f in dataclasses.fields(RobustConfig)}
    strings = _string_fields(RobustConfig)
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in known:
            raise InvalidArgumentError(f"--set-robust expects KEY=VALUE with KEY one of {sorted(known)}, got {pair!r}")
        value = _json_value(raw, "--set-robust", key, key in strings)
        if key in strings and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = raw  # norm=2: the string "2"
        values[key] = value
    return values


def _check_output_dir(path: Path, option: str) -> None:
    """A directory we may create (or fill, if empty): refuse files before anything is built."""
    if path.exists() and not path.is_dir():
        raise InvalidArgumentError(f"{option} {path} is a file; give a directory that does not exist yet (or is empty)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InvalidArgumentError(f"{option} {path}: {parent} is a file, not a directory")
            break


def _check_output_file(path: Path | None, option: str) -> None:
    """A file we will write: refuse directories and missing parent folders before any work."""
    if path is None:
        return
    if path.is_dir():
        raise InvalidArgumentError(f"{option} {path} is a directory; give a file name, e.g. {path / 'report.json'}")
    if not path.parent.is_dir():
        raise InvalidArgumentError(f"{option} {path}: folder {path.parent} does not exist")


@app.command()
def train(
    env: str | None = typer.Option(None, "--env", help="Gymnasium id, e.g. Hopper-v5."),
    # the help of --algo lists the ALGORITHMS registry; main() fills it in (importing it loads torch)
    algo: str | None = typer.Option(None, "--algo", help="Training method (default ppo)."),
    steps: str | None = typer.Option(
        None,
        "--steps",
        help="Env steps (e.g. 2e6, at most 1e10), rounded down to whole iterations of ppo.steps_per_iteration "
        "(2048) steps, at least one. Default: the papers' budget (2e6; Ant, Humanoid 1e7).",
    ),
    seed: int | None = typer.Option(
        None,
        "--seed",
        min=0,
        help="Seed of the run: envs, network initialisation, action sampling, solver noise (default 0).",
    ),
    num_envs: int | None = typer.Option(
        None, "--num-envs", min=1, help="Envs sharing each 2048-step batch (default: 8 fast, 1 reference)."
    ),
    backend: str | None = typer.Option(None, "--backend", help="gymnasium or envpool (default: envpool fast, gymnasium reference)."),
    profile: str | None = typer.Option(
        None, "--profile",
        help="fast: 8 EnvPool envs and the compiled update (measured to reach the same returns); reference: the "
        "papers' exact setting (1 env, eager). Default: fast from 100k steps, reference below (compile costs 10-40 s).",
    ),
    checkpoint_every: int | None = typer.Option(
        None, "--checkpoint-every", min=1, help="Iterations between checkpoints (default 50)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default runs/<algo>-<env>-s<seed>-<time>)."),
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue the run in this directory (its settings come from it)."
    ),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        help="PPO hyperparameter KEY=VALUE, VALUE as JSON (repeatable), e.g. hidden_sizes=[32,32]. "
        "Keys: the fields of robustrl.config.PPOConfig, listed with defaults by --list-knobs.",
    ),
    eps: float | None = typer.Option(
        None,
        "--eps",
        help="Robust methods: target radius of the observation ball, in normalised observations "
        "(units of the running std of each feature, as the papers); default: the papers' value for the env.",
    ),
    kappa: float | None = typer.Option(None, "--kappa", help="Robust methods: robustness weight (default 0.3)."),
    no_guidance: bool = typer.Option(
        False, "--no-guidance", help="ar-ppo/bar-ppo/bar-ppo-wocar: the robust term alone (ARPO, BARPO w/o g)."
    ),
    inner_solve: str | None = typer.Option(None, "--inner-solve", help="iteration (once per batch) or minibatch."),
    solver: str | None = typer.Option(None, "--solver", help="sa-ppo inner solver: sgld, pgd or ibp."),
    robust_overrides: list[str] = typer.Option(
        [],
        "--set-robust",
        help="Robust knob KEY=VALUE (repeatable), e.g. temperature=1e-5. Keys: the fields of "
        "robustrl.config.RobustConfig that --algo reads, listed per algorithm by --list-knobs.",
    ),
    prune: str | None = typer.Option(
        None, "--prune", help="Prune during training: random, magnitude, magnitude-ste or saliency (default none)."
    ),
    sparsity: float | None = typer.Option(None, "--sparsity", help="--prune: final fraction of weights pruned, in [0, 1)."),
    prune_every: int | None = typer.Option(
        None, "--prune-every", help="--prune: optimiser steps between mask updates (default 20)."
    ),
    burn_in: float | None = typer.Option(
        None, "--burn-in", help="--prune: fraction of the run before pruning starts (default 0.25)."
    ),
    atla: str | None = typer.Option(
        None, "--atla", help="Train against a learned adversary in the loop (ATLA; any --algo): sa-rl. It perturbs the "
        "observations of half the rollout envs at the run's eps (docs/methods.md)."),
    atla_options: list[str] = typer.Option(
        [], "--set-atla", help="--atla knob KEY=VALUE (repeatable): fraction (of the envs attacked, default 0.5), "
        "agent_iterations and adversary_iterations (per phase, default 10 each), curriculum_scale (4) and "
        "curriculum_fraction (0.5: the adversary's radius curriculum)."),
    list_knobs: bool = typer.Option(
        False, "--list-knobs", help="List the --set and --set-robust keys (defaults, which --algo reads each) and exit."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (logs still written)."),
) -> None:
    """Train a policy into a run directory (Ctrl-C saves a checkpoint and exits 130; --resume continues)."""
    if list_knobs:
        _print_knobs()
        return
    from robustrl.algos import ALGORITHMS, check_env_support, robust_config_for
    from robustrl.config import FAST_MIN_STEPS, TrainConfig, default_total_steps, fast_settings, ppo_defaults_for
    from robustrl.experiments.run import train as train_run

    if resume is not None:
        given = {
            "--env": env,
            "--algo": algo,
            "--steps": steps,
            "--seed": seed,
            "--num-envs": num_envs,
            "--backend": backend,
            "--profile": profile,
            "--checkpoint-every": checkpoint_every,
            "--out": out,
            "--set": overrides,
            "--eps": eps,
            "--kappa": kappa,
            "--no-guidance": no_guidance,
            "--inner-solve": inner_solve,
            "--solver": solver,
            "--set-robust": robust_overrides,
            "--prune": prune,
            "--sparsity": sparsity,
            "--prune-every": prune_every,
            "--burn-in": burn_in,
            "--atla": atla,
            "--set-atla": atla_options,
        }
        passed = [name for name, value in given.items() if value not in (None, [], False)]
        if passed:
            raise InvalidArgumentError(f"--resume takes its settings from the run directory; drop {', '.join(passed)}")
        with _progress_bars(enabled=not no_progress, transient=False) as progress:
            result = train_run(resume=resume, progress=progress)
    else:
        if env is None:
            raise InvalidArgumentError("--env is required (e.g. --env Hopper-v5), or --resume RUN_DIR")
        algo = algo or "ppo"
        if algo not in ALGORITHMS:
            raise InvalidArgumentError(f"unknown --algo {algo!r}; available: {', '.join(ALGORITHMS)}")
        if out is not None:
            _check_output_dir(out, "--out")
        total_steps = parse_count(steps, "--steps") if steps is not None else default_total_steps(env)
        robust = parse_robust_options(robust_overrides)
        for key, value in (("eps", eps), ("kappa", kappa), ("inner_solve", inner_solve), ("solver", solver)):
            if value is not None:
                robust[key] = value
        if no_guidance:
            robust["guidance"] = False
        ppo_overrides = parse_overrides(overrides)
        if profile not in (None, "fast", "reference"):
            raise InvalidArgumentError(f"--profile must be fast or reference, got {profile!r}")
        size = {None: total_steps, "fast": FAST_MIN_STEPS, "reference": 0}[profile]
        settings, notices = fast_settings(env, size, ppo_defaults_for(env, **ppo_overrides).steps_per_iteration)
        ppo_overrides.setdefault("compile", settings["compile"])  # --set compile=... wins
        num_envs, backend = num_envs or settings["num_envs"], backend or settings["backend"]
        for notice in notices:
            error_console.print(f"note: {notice}", highlight=False, markup=False)
        config = TrainConfig(
            env_id=env,
            algo=algo,
            total_steps=total_steps,
            seed=0 if seed is None else seed,
            num_envs=num_envs,
            backend=backend,
            checkpoint_every=checkpoint_every or 50,
            ppo=ppo_defaults_for(env, **ppo_overrides),
            robust=robust_config_for(algo, robust, atla=atla is not None),
            prune=_prune_config(prune, sparsity, prune_every, burn_in),
            atla=_atla_config(atla, atla_options),
        )
        config.validate()
        check_env_support(config)  # e.g. wocar-ppo on a discrete-action env: refused before the run directory exists
        setting = f"{config.num_envs} {config.backend} env{'s' if config.num_envs > 1 else ''}, " + (
            "compiled update" if config.ppo.compile else "eager update"
        )
        fast = config.ppo.compile or config.num_envs > 1
        other = "--profile reference: the papers' exact setting" if fast else "--profile fast: 8 envs, compiled update"
        with _progress_bars(enabled=not no_progress, transient=False) as progress:
            announced = False

            def announce(*args: Any, **kwargs: Any) -> None:  # once the run directory exists
                nonlocal announced
                if not announced:
                    error_console.print(f"configuration: {setting} ({other})", highlight=False, markup=False)
                    announced = True
                if progress is not None:
                    progress(*args, **kwargs)

            result = train_run(config, out, progress=announce)
    if result.interrupted:
        console.print(
            f"interrupted at iteration {result.iterations} ({result.global_step} steps); run directory: [bold]{result.run_dir}[/]"
        )
        console.print(f"continue with: robustrl train --resume {result.run_dir}")
        raise _StoppedEarly  # exit 130, so `train && evaluate` does not evaluate a half-trained policy
    console.print(
        f"finished iteration {result.iterations} ({result.global_step} steps); run directory: [bold]{result.run_dir}[/]"
    )


def _print_knobs() -> None:
    """``robustrl train --list-knobs``: every --set and --set-robust key with its default."""
    from rich.table import Table

    from robustrl.algos import ALGORITHMS, robust_knobs
    from robustrl.config import PPOConfig, RobustConfig

    def defaults(cls: type) -> dict[str, Any]:
        return {f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)}

    table = Table(
        title="--set KEY=VALUE (robustrl.config.PPOConfig; per-env defaults may differ)", title_justify="left"
    )
    table.add_column("key")
    table.add_column("default")
    for key, value in defaults(PPOConfig).items():
        table.add_row(key, json.dumps(list(value) if isinstance(value, tuple) else value))
    console.print(table)
    robust = Table(title="--set-robust KEY=VALUE (robustrl.config.RobustConfig)", title_justify="left")
    robust.add_column("key")
    robust.add_column("default")
    robust.add_column("read by --algo")
    for key, value in defaults(RobustConfig).items():
        users = [name for name in ALGORITHMS if key in robust_knobs(name)]
        robust.add_row(key, json.dumps(value), ", ".join(users) or "-")
    console.print(robust)


def _atla_config(adversary: str | None, pairs: list[str]) -> Any:
    """``--atla sa-rl --set-atla fraction=0.25`` -> a validated AtlaConfig."""
    from robustrl.config import AtlaConfig

    known = {f.name for f in dataclasses.fields(AtlaConfig)} - {"adversary"}
    if pairs and adversary is None:
        raise InvalidArgumentError("--set-atla needs --atla ADVERSARY (sa-rl)")
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in known:
            raise InvalidArgumentError(f"--set-atla expects KEY=VALUE with KEY one of {sorted(known)}, got {pair!r}")
        values[key] = _json_value(raw, "--set-atla", key, False)
    config = AtlaConfig(adversary=adversary or "none", **values)
    config.validate()
    return config


def _prune_config(strategy: str | None, sparsity: float | None, prune_every: int | None, burn_in: float | None) -> Any:
    """``--prune/--sparsity/--prune-every/--burn-in`` -> a validated PruneConfig."""
    from robustrl.config import PruneConfig

    if strategy is None:
        given = [n for n, v in (("--sparsity", sparsity), ("--prune-every", prune_every), ("--burn-in", burn_in)) if v is not None]
        if given:
            raise InvalidArgumentError(f"{', '.join(given)} need --prune STRATEGY (random, magnitude, magnitude-ste, saliency)")
        return PruneConfig()
    if strategy == "none":
        raise InvalidArgumentError("--prune none prunes nothing; drop --prune, or choose random, magnitude, magnitude-ste or saliency")
    if sparsity is None:
        raise InvalidArgumentError("--prune needs --sparsity S (final fraction of weights pruned, in [0, 1))")
    values: dict[str, Any] = {"strategy": strategy, "sparsity": sparsity}
    if prune_every is not None:
        values["prune_every"] = prune_every
    if burn_in is not None:
        values["burn_in"] = burn_in
    config = PruneConfig(**values)
    config.validate()
    return config


@app.command("prune")
def prune_command(
    run: Path = typer.Argument(..., help="Run directory of a trained policy (its newest checkpoint is pruned)."),
    sparsity: float = typer.Option(..., "--sparsity", help="Fraction of the weights set to zero, in [0, 1)."),
    strategy: str = typer.Option("magnitude", "--strategy", help="random, magnitude (default), magnitude-ste or saliency."),
    finetune: str | None = typer.Option(
        None, "--finetune", help="Env steps of PPO fine-tuning with the masks held (default: none)."
    ),
    prune_every: int = typer.Option(20, "--prune-every", help="With --finetune: optimiser steps between mask updates."),
    allocation: str | None = typer.Option(
        None, "--allocation", help="layer, global or erk (default: erk for random, layer for the others)."
    ),
    out: Path | None = typer.Option(None, "--out", help="New run directory (default RUN-pruned-STRATEGY-SPARSITY)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """One-shot pruning of a trained run into a new run directory (evaluate, attack and certify it like any run)."""
    from robustrl.config import PruneConfig

    PruneConfig(strategy=strategy, sparsity=sparsity, prune_every=prune_every, allocation=allocation).validate()
    steps = parse_count(finetune, "--finetune") if finetune is not None else None
    if out is not None:
        _check_output_dir(out, "--out")
    from robustrl.prune.tools import prune_run

    with _progress_bars(enabled=not no_progress and steps is not None, transient=False) as progress:
        result = prune_run(
            run, sparsity=sparsity, strategy=strategy, finetune=steps, out=out, prune_every=prune_every,
            allocation=allocation, progress=progress,
        )  # fmt: skip
    console.print(f"pruned {run} to sparsity {sparsity:g} ({strategy}); run directory: [bold]{result}[/]")


@app.command()
def certify(
    run: Path = typer.Argument(..., help="Run directory."),
    eps: float | None = typer.Option(None, "--eps", help="Radius (default: the run's robust eps, the papers' per env)."),
    r_max: float | None = typer.Option(
        None, "--r-max", help="Max |reward| per step (default: exact where known, else empirical from the episodes)."
    ),
    episodes: int = typer.Option(5, "--episodes", min=1, help="Clean episodes whose states the IBP certificate covers."),
    samples: int = typer.Option(0, "--samples", min=0, help="Random ball corners per state for a sampled TV (lower bound)."),
    json_file: Path | None = typer.Option(None, "--json", help="Write the certificate here."),
) -> None:
    """Theorem 1's certified bound alpha * c * L~ * eps per checkpoint, and the per-state IBP certificate."""
    from robustrl.policies.checkpoint import atomic_write_text, require_run_dir
    from robustrl.report.prune import certify_table

    _check_output_file(json_file, "--json")
    require_run_dir(run)
    from robustrl.prune.tools import certify_run

    result = certify_run(run, eps=eps, r_max=r_max, episodes=episodes, samples=samples)
    console.print(certify_table(result))
    if json_file is not None:
        atomic_write_text(json_file, json.dumps(result, indent=1))


def parse_float_list(text: str, name: str) -> list[float]:
    try:
        values = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise InvalidArgumentError(f"{name} must be comma-separated numbers, got {text!r}") from None
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise InvalidArgumentError(f"{name} needs finite numbers >= 0, got {text!r}")
    return values


def parse_attack_settings(budgets: list[str], options: list[str]) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """``--budget sa-rl=2e5`` and ``--attack-option rs.sarsa_reg=1.0`` (JSON values)."""
    import dataclasses as dc

    from robustrl.attacks import ATTACKS

    parsed_budgets: dict[str, int] = {}
    for pair in budgets:
        name, sep, value = pair.partition("=")
        if not sep or name not in ATTACKS or not ATTACKS[name].learned:
            learned = [n for n, cls in ATTACKS.items() if cls.learned]
            raise InvalidArgumentError(f"--budget expects NAME=STEPS with NAME one of {learned}, got {pair!r}")
        parsed_budgets[name] = parse_count(value, f"--budget {name}")
    parsed_options: dict[str, dict[str, Any]] = {}
    for pair in options:
        key, sep, raw = pair.partition("=")
        name, dot, field = key.partition(".")
        if not sep or not dot or name not in ATTACKS:
            raise InvalidArgumentError(f"--attack-option expects ATTACK.KEY=VALUE, got {pair!r}")
        known = {f.name for f in dc.fields(ATTACKS[name].Options)}
        if field not in known:
            raise InvalidArgumentError(f"attack {name!r} has no option {field!r}; it takes {sorted(known)}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise InvalidArgumentError(f"--attack-option {key}: {raw!r} is not a JSON value") from None
        if isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        parsed_options.setdefault(name, {})[field] = value
    return parsed_budgets, parsed_options


def parse_fits(pairs: list[str]) -> dict[str, int]:
    """``--fits sa-rl=3``: fits per learned attack (checked by robustness_report's check_fits)."""
    from robustrl.evaluate.robustness import check_fits

    parsed: dict[str, int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not value.strip().isdecimal():
            raise InvalidArgumentError(f"--fits expects NAME=K with K a whole number >= 1, got {pair!r}")
        parsed[name] = int(value)
    return check_fits(parsed)


def _load_any(
    path: Path, env: str | None, vecnormalize: Path | None, trust_pickle: bool, obs_stats: Path | None = None
) -> Any:
    from robustrl.policies.adapters import load_model

    return load_model(path, env, vecnormalize=vecnormalize, trust_pickle=trust_pickle, obs_stats=obs_stats)


@contextmanager
def _progress_bars(enabled: bool | None = None, transient: bool = True) -> Iterator[Any]:
    """A :class:`robustrl.progress.Progress` callback drawing one rich bar per task on stderr
    (only on a terminal unless ``enabled``); the library never draws."""
    from robustrl.report.console import progress_bars

    disable = not error_console.is_terminal if enabled is None else not enabled
    with progress_bars(error_console, transient=transient, disable=disable) as draw:
        yield draw


@app.command()
def evaluate(
    paths: list[Path] = typer.Argument(
        ...,
        help="Run directories, checkpoints, SB3 .zip models, RL Zoo folders, CleanRL .cleanrl_model or TorchScript .pt files.",
    ),
    attacks: str | None = typer.Option(
        None,
        "--attacks",
        help="Comma-separated: random,critic,mad,rs,sa-rl,pa-ad, or all. Omit for natural return only.",
    ),
    eps: float | None = typer.Option(
        None, "--eps", help="Attack radius in the policy's perturbation space (default: the papers' value for the env)."
    ),
    norm: str = typer.Option("inf", "--norm", help="inf (l_inf, default) or 2 (l_2)."),
    eps_sweep: str | None = typer.Option(
        None, "--eps-sweep", help="Comma-separated eps values: return versus eps for each attack (PNG)."
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="PNG for --eps-sweep (default eps_sweep.png next to the first model)."
    ),
    episodes: int = typer.Option(
        50, "--episodes", min=1, help="Episodes per mode and per attack (each env runs a fixed share of them)."
    ),
    seed: int = typer.Option(
        10_000, "--seed", min=0, help="Seed of the evaluation envs (default 10000, apart from training seeds)."
    ),
    mode: str | None = typer.Option(
        None, "--mode", help="deterministic, stochastic or both (default: both without attacks, deterministic with)."
    ),
    env: str | None = typer.Option(None, "--env", help="Env id (required for foreign models; checked for ours)."),
    budgets: list[str] = typer.Option(
        [], "--budget", help="Training env steps of a learned attack, NAME=STEPS (repeatable), e.g. sa-rl=2e5."
    ),
    attack_options: list[str] = typer.Option(
        [], "--attack-option", help="ATTACK.KEY=JSON (repeatable), e.g. rs.grid=[[0.02,0.1],[0.05,1.0]]."
    ),
    fits: list[str] = typer.Option(
        [], "--fits", help="Fit a learned attack K times with other seeds and keep the worst fit, NAME=K (repeatable), "
        "e.g. sa-rl=3: one fit can miss a weakness another finds.",
    ),
    median: bool = typer.Option(False, "--median", help="Median-agent protocol over the given runs (BARPO App. F.3)."),
    refit: bool = typer.Option(False, "--refit", help="Fit learned attacks again even if a fitted one is cached."),
    workers: int = typer.Option(
        1, "--workers", help="Make the SA-RL / PA-AD fits (--fits each) this many at a time, one core each, "
        "before the episodes (a table's fits are minutes each, one after another by default).",
    ),
    vecnormalize: Path | None = typer.Option(
        None, "--vecnormalize", help="SB3 VecNormalize statistics (.npz/.json, or .pkl with --trust-pickle)."
    ),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="Allow unpickling files you trust (SB3 vec_normalize.pkl)."
    ),
    json_file: Path | None = typer.Option(None, "--json", help="Write results (and every return) here."),
    markdown_file: Path | None = typer.Option(None, "--markdown", help="Write the table as markdown here."),
    obs_stats: Path | None = typer.Option(
        None, "--obs-stats", help="Observation statistics of a CleanRL model (.npz/.json: obs_mean, obs_var)."
    ),
    render: Path | None = typer.Option(
        None, "--render", help="With --attacks: one episode clean and under each attack side by side (.gif/.mp4)."
    ),
    figures: Path | None = typer.Option(
        None, "--figures", help="With --attacks: folder for return distributions and per-attack perturbation plots."
    ),
) -> None:
    """Natural return, or the robustness table under attacks (BARPO Table 2), of trained policies."""
    from robustrl.policies.checkpoint import atomic_write_text

    modes = {
        "both": ("deterministic", "stochastic"),
        "deterministic": ("deterministic",),
        "stochastic": ("stochastic",),
    }
    if mode is not None and mode not in modes:
        raise InvalidArgumentError(f"--mode must be deterministic, stochastic or both, got {mode!r}")
    if eps is not None and (eps < 0 or not math.isfinite(eps)):
        raise InvalidArgumentError(f"--eps must be a finite number >= 0, got {eps}")
    for path in paths:
        if not path.exists():
            raise InvalidArgumentError(f"{path} does not exist")
    for path, option in ((json_file, "--json"), (markdown_file, "--markdown"), (plot, "--plot"), (render, "--render")):
        _check_output_file(path, option)
    loaded: dict[tuple[str, str | None], Any] = {}

    def load(path: Path | str, env_id: str | None) -> Any:
        if (str(path), env_id) not in loaded:
            loaded[str(path), env_id] = _load_any(Path(path), env_id, vecnormalize, trust_pickle, obs_stats)
        return loaded[str(path), env_id]

    if render is not None or figures is not None:
        _check_pictures(paths, env, attacks, eps_sweep, median, render, figures, load)

    if attacks is None and eps_sweep is None:
        _evaluate_natural(paths, env, episodes, seed, modes[mode or "both"], json_file, markdown_file, load)
        return

    from robustrl.attacks import parse_attacks
    from robustrl.evaluate.reports import evaluate_robustness
    from robustrl.report.table import robustness_markdown, robustness_table

    names = parse_attacks(attacks or "random,critic,mad")
    parsed_budgets, parsed_options = parse_attack_settings(budgets, attack_options)
    parsed_fits = parse_fits(fits)
    if set(parsed_fits) - set(names):
        raise InvalidArgumentError(f"--fits {', '.join(sorted(set(parsed_fits) - set(names)))}: not among --attacks {','.join(names)}")
    if (mode or "deterministic") == "both":
        raise InvalidArgumentError("with --attacks, --mode is deterministic (default, as the papers) or stochastic")
    if median and eps_sweep is not None:
        raise InvalidArgumentError("--median and --eps-sweep cannot be combined")
    if workers < 1:
        raise InvalidArgumentError(f"--workers must be a whole number >= 1, got {workers}")
    if workers > 1 and (median or eps_sweep is not None):
        # the median agent is known only once the cheap attacks ran (a study runs its fits in
        # parallel: `robustrl study run`); a sweep runs its attacks at many radii
        raise InvalidArgumentError("--workers parallelises the fits of one table: not with --median or --eps-sweep")
    sweep = parse_float_list(eps_sweep, "--eps-sweep") if eps_sweep is not None else None
    common = dict(
        norm=norm,
        episodes=episodes,
        seed=seed,
        deterministic=(mode or "deterministic") == "deterministic",
        attack_options=parsed_options,
        budgets=parsed_budgets,
        fits=parsed_fits,
        refit=refit,
    )
    if sweep is not None:
        _evaluate_sweep(paths, env, names, sweep, json_file, plot, load, common)
        return
    with _progress_bars() as progress:
        reports, labels = evaluate_robustness(
            paths,
            env,
            attacks=names,
            eps=eps,
            median=median,
            json_path=json_file,
            load=load,
            progress=progress,
            workers=workers,
            load_options={"vecnormalize": vecnormalize, "trust_pickle": trust_pickle, "obs_stats": obs_stats},
            **common,
        )
    console.print(robustness_table(reports, labels))
    if markdown_file is not None:
        atomic_write_text(markdown_file, robustness_markdown(reports, labels))
    if render is not None or figures is not None:
        _pictures(paths[0], env, names, eps, reports[0], render, figures, load, common)


def _check_pictures(paths, env, attacks, eps_sweep, median, render, figures, load) -> None:
    """``--render``/``--figures``: refuse what cannot work (no renderer included) before any report is written."""
    from robustrl.evaluate.render import check_renderer, check_video_path

    if attacks is None or eps_sweep is not None or median or len(paths) != 1:
        raise InvalidArgumentError(
            "--render and --figures take one policy with --attacks (no --eps-sweep, no --median)"
        )
    if figures is not None and (figures.is_file() or not figures.parent.is_dir()):
        raise InvalidArgumentError(f"--figures {figures}: give a folder (its parent must exist)")
    if render is not None:
        check_video_path(render)
        policy = load(paths[0], env)
        check_renderer(env or policy.env_id)


def _pictures(path, env, names, eps, report, render, figures, load, common) -> None:
    from robustrl.evaluate.render import write_attack_pictures

    policy = load(path, env)
    options = {k: common[k] for k in ("norm", "seed", "deterministic", "attack_options", "budgets")}
    with console.status("rendering" if render is not None else "recording episodes"):
        written = write_attack_pictures(
            policy, env or policy.env_id, names, video=render, figures=figures, report=report, eps=eps, source=path,
            **options,
        )  # fmt: skip
    for name, written_path in written.items():
        console.print(f"{name}: {written_path}")


def _evaluate_sweep(paths, env, names, eps_values, json_file, plot, load, common) -> None:
    """``--eps-sweep``: one report per eps for each path, and a plot of return versus eps."""
    from robustrl.evaluate.reports import labelled, run_label, sweep_paths
    from robustrl.evaluate.robustness import check_attacks, eps_sweep
    from robustrl.report.plots import plot_eps_sweep
    from robustrl.report.table import robustness_table

    loaded = []
    for path in paths:  # every policy and every attack option before any report is written
        policy = load(path, env)
        env_id = env or policy.env_id
        if env_id is None:
            raise InvalidArgumentError(f"{path}: pass --env (the model file does not record its env)")
        for eps in eps_values:
            check_attacks(names, eps, common["norm"], common["attack_options"], policy, env_id)
        loaded.append((path, policy, env_id))
    with _progress_bars() as progress:
        for path, policy, env_id in loaded:
            report_stem, default_plot = sweep_paths(path, common["norm"])
            reports = eps_sweep(
                policy, env_id, eps_values, attacks=names, source=path, json_path=json_file or report_stem,
                progress=labelled(progress, run_label(path)), **common,
            )  # fmt: skip
            figure = plot_eps_sweep(reports, plot or default_plot)
            console.print(robustness_table(reports, [f"eps={r['eps']:g}" for r in reports]))
            console.print(f"plot: {figure}")


def _evaluate_natural(paths, env, episodes, seed, modes, json_file, markdown_file, load) -> None:
    from robustrl.evaluate import evaluate as evaluate_policy
    from robustrl.policies.checkpoint import atomic_write_text
    from robustrl.report.table import natural_return_markdown, natural_return_table

    if len(paths) != 1:
        raise InvalidArgumentError("natural-return evaluation takes one path; add --attacks for a table of several")
    path = paths[0]
    policy = load(path, env)
    with _progress_bars() as progress:
        report = evaluate_policy(
            policy, env or policy.env_id, episodes=episodes, seed=seed, modes=modes, json_path=json_file,
            progress=progress, source=str(path),
        )  # fmt: skip
    console.print(natural_return_table(report))
    if markdown_file is not None:
        atomic_write_text(markdown_file, natural_return_markdown(report))


@app.command()
def demo(
    env: str = typer.Option("Hopper-v5", "--env"),
    steps: str = typer.Option("3e5", "--steps", help="Training budget of the demo."),
    episodes: int = typer.Option(10, "--episodes", min=1, help="Evaluation episodes per attack."),
    attack_budget: str = typer.Option(
        "1e5", "--attack-budget", help="Training env steps of each learned attack (SA-RL, PA-AD)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default runs/demo-<time>)."),
) -> None:
    """Short end-to-end demo: train PPO, attack it with the six attacks, print the robustness table."""
    from datetime import datetime

    from robustrl.attacks import ALL
    from robustrl.config import TrainConfig, default_eps, fast_settings, ppo_defaults_for
    from robustrl.evaluate.reports import report_path, split_attacks
    from robustrl.evaluate.robustness import robustness_report
    from robustrl.experiments.run import train as train_run
    from robustrl.report.table import robustness_table

    run_dir = out or Path("runs") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    _check_output_dir(run_dir, "--out")
    total_steps = parse_count(steps, "--steps")
    settings, notices = fast_settings(env, total_steps)  # what `robustrl train` would pick for this budget
    for notice in notices:
        error_console.print(f"note: {notice}", highlight=False, markup=False)
    config = TrainConfig(
        env_id=env, total_steps=total_steps, seed=0, num_envs=settings["num_envs"], backend=settings["backend"],
        ppo=ppo_defaults_for(env, compile=settings["compile"]),
    )  # fmt: skip
    budget = parse_count(attack_budget, "--attack-budget")
    setting = f"{config.num_envs} {config.backend} env{'s' if config.num_envs > 1 else ''}, {'compiled' if config.ppo.compile else 'eager'} update"
    console.print(f"[bold]1/2[/] training PPO on {env} for {config.total_steps} steps ({setting}) -> {run_dir}")
    with _progress_bars(enabled=True, transient=False) as progress:
        result = train_run(config, run_dir, progress=progress)
    if result.interrupted:
        console.print(f"interrupted; continue with: robustrl train --resume {result.run_dir}")
        raise _StoppedEarly
    eps = default_eps(env)
    console.print(
        f"[bold]2/2[/] attacking it at eps={eps:g} ({', '.join(ALL)}; learned attacks trained for {budget} steps "
        f"each, the papers use ~1M-2M): {episodes} deterministic episodes per column"
    )
    with _progress_bars(enabled=True) as progress:
        report = robustness_report(
            result.policy,
            env,
            attacks=list(ALL),
            eps=eps,
            episodes=episodes,
            source=result.run_dir,
            budgets=dict.fromkeys(split_attacks(ALL)[1], budget),
            attack_options={"rs": {"iterations": 10}},
            json_path=report_path(result.run_dir, eps),
            progress=progress,
        )
    console.print(robustness_table([report], [result.run_dir.name]))
    _demo_video(result, env, eps, report, dict.fromkeys(split_attacks(ALL)[1], budget))


def _demo_video(result: Any, env: str, eps: float, report: dict[str, Any], budgets: dict[str, int]) -> None:
    """The demo's picture: one episode clean, under MAD and under the worst attack, side by side."""
    from robustrl.errors import RendererUnavailableError
    from robustrl.evaluate.render import check_renderer, write_attack_pictures

    try:
        check_renderer(env)
    except RendererUnavailableError as error:
        console.print(f"no video: {error}", highlight=False, markup=False)
        return
    attacks = list(dict.fromkeys(["mad", report.get("worst", {}).get("attack", "mad")]))
    with console.status("rendering one episode clean and under " + ", ".join(attacks)):
        written = write_attack_pictures(
            result.policy, env, attacks, video=result.run_dir / "attacks.gif", eps=eps, source=result.run_dir,
            attack_options={"rs": {"iterations": 10}}, budgets=budgets, frame_every=4,
        )  # fmt: skip
    console.print(f"video: {written['video']}")


study_app = typer.Typer(no_args_is_help=True, help="Studies: a grid of runs from one spec, on a local pool or Ray.")
app.add_typer(study_app, name="study")
from robustrl.commands.theory import theory_app  # noqa: E402

app.add_typer(theory_app, name="theory")
from robustrl.commands.games import games_app  # noqa: E402

app.add_typer(games_app, name="games")
from robustrl.commands.sumo import sumo_app  # noqa: E402

app.add_typer(sumo_app, name="sumo")


@study_app.command("run")
def study_run(
    spec: Path = typer.Argument(..., help="Study spec (.yaml or .toml; see studies/smoke.yaml)."),
    out: Path | None = typer.Option(None, "--out", help="Study directory (default runs/studies/<name>)."),
    backend: str = typer.Option("local", "--backend", help="local (process pool) or ray."),
    workers: int | None = typer.Option(None, "--workers", help="Parallel tasks (default: the CPU count; Ray: its CPUs)."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (e.g. auto); default: a local Ray."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and what is left to do; write nothing."),
    only: list[str] = typer.Option(
        [], "--only", help="Run only these runs: a method label or run name, shell patterns allowed (bar-ppo-k1, '*Walker2d*'); repeatable."
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Try tasks that failed past the spec's retries again (after fixing the cause)."
    ),
    reuse_from: list[Path] = typer.Option(
        [], "--reuse-from", help="Another study directory: copy in its finished runs of the same name (same config) "
        "and the fitted attacks of runs both have, instead of training and fitting them again; repeatable.",
    ),
) -> None:
    """Run every run and evaluation of SPEC that is not done yet (re-run to resume), then write the
    results store (<dir>/results/) and print the status."""
    from robustrl.experiments.results import collect_results
    from robustrl.experiments.spec import load_spec
    from robustrl.experiments.study import Study, _check_only, make_executor

    parsed = load_spec(spec)  # a bad spec fails here, before anything is written
    directory = out or Path("runs") / "studies" / parsed.name
    _check_only(Study.inspect(directory, parsed), only)  # a typo fails before anything is written
    for other in reuse_from:  # checked before the runner starts: a wrong path fails with nothing written
        if not (other / "runs").is_dir():
            raise InvalidArgumentError(f"--reuse-from {other}: not a study directory (it has no runs/)")
    if dry_run:
        for other in reuse_from:  # what a real run copies first (the plan below still counts those runs)
            reused = Study.inspect(directory, parsed).reuse_runs(other, only, dry_run=True)
            console.print(f"from {other}: would copy in {len(reused['runs'])} finished run(s) and the fitted "
                          f"attacks of {len(reused['attacks'])} run(s) both have")  # fmt: skip
        _print_study_plan(parsed, directory, workers, only, retry_failed)
        return
    executor = make_executor(backend, workers, address)
    study = Study.open(directory, spec)
    console.print(f"study [bold]{parsed.name}[/]: {len(parsed.runs)} runs -> {directory} ({backend})")
    for other in reuse_from:
        reused = study.reuse_runs(other, only)
        console.print(f"from {other}: {len(reused['runs'])} finished run(s) copied in, fitted attacks of "
                      f"{len(reused['attacks'])} run(s) both have")  # fmt: skip
    if retry_failed:
        console.print(f"{study.retry_failed(only)} failed task(s) to try again")
    stopped = False
    try:
        with _progress_bars(enabled=None, transient=False) as progress:
            if not error_console.is_terminal:  # a log (nohup, a scheduler): plain timestamped lines, not bars
                from robustrl.report.console import progress_lines

                progress = progress_lines()
            study.run(executor, progress, only=only)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the running tasks saved and are pending
        stopped = True
    finally:
        executor.shutdown()
    collect_results(study)
    _print_study_status(directory)
    if stopped:
        console.print(f"stopped; every run saved. Resume: robustrl study run {spec}" + (f" --out {out}" if out else ""))
        raise _StoppedEarly
    # the runs this invocation was asked to run (--only): another method's old failure is not this one's
    if any(
        (e.get("train") == "failed" or e.get("evaluate") == "failed") and study.selected(name, only)
        for name, e in study.status["runs"].items()
    ):
        console.print("failed tasks are not tried again by a plain re-run: fix the cause (the error above), then "
                      f"robustrl study run {spec}" + (f" --out {out}" if out else "") + " --retry-failed")  # fmt: skip
        raise typer.Exit(1)  # failed, not interrupted (130): a queue of studies goes on to the next one


def _print_study_plan(parsed: Any, directory: Path, workers: int | None, only: list[str] | tuple[str, ...] = (),
                      retry_failed: bool = False) -> None:  # fmt: skip
    """``study run --dry-run``: the tasks ``study run`` would start with (Study.plan: the runner's
    own queue, so a changed evaluation, a median agent still missing its learned attacks or a
    damaged run show as they would run), the env steps left to train and, when the directory has
    finished trainings, the wall-clock they imply at this study's own rate. Reads ``directory``,
    never writes it."""
    from rich.table import Table

    from robustrl.experiments.study import Study

    study = Study.inspect(directory, parsed)
    if retry_failed:  # the plan as --retry-failed would run it (in memory: a dry run writes nothing)
        study.retry_failed(only, save=False)
    plan = study.plan(only)
    tasks: dict[str, list[str]] = {}
    for task, name in plan:
        tasks.setdefault(name, []).append({"median": "learned attacks"}.get(task, task))
    table = Table(title=f"{parsed.name}: {len(parsed.runs)} runs -> {directory} (dry run: nothing written)")
    for column in ("run", "trained", "train", "evaluate", "next"):
        table.add_column(column)
    left, trainings = 0.0, 0
    for run in parsed.runs:
        entry = study.status["runs"][run.name]
        trained, planned = study.steps_trained(run)
        if "train" in tasks.get(run.name, []):
            left, trainings = left + planned - trained, trainings + 1
        table.add_row(run.name, f"{trained / planned:.0%} of {planned / 1e6:.3g}M" if planned else "-", entry["train"],
                      entry["evaluate"], ", ".join(tasks.get(run.name, [])) or "nothing")  # fmt: skip
    console.print(table)
    count = lambda task: sum(task in t for t in tasks.values())  # noqa: E731
    amount = f"{left / 1e6:.2f}M" if left >= 1e6 else f"{left:,.0f}"
    line = f"to train: {amount} env steps in {trainings} run(s), each evaluated after; evaluations of trained runs: {count('evaluate')}"
    if not parsed.evaluation.median:
        line += " (every attack on every run: `median: false`)" if study.median_attacks() else ""
    else:
        line += f"; learned attacks on {count('learned attacks')} median agent(s)"
        later = study.medians_later(plan)
        line += f", then on {later} more once their groups are evaluated" if later else ""
    console.print(line + _cost_line(study.cost_left(only, workers)))


def _cost_line(cost: dict[str, Any]) -> str:
    """The tail of a plan's line: its price at the study's own rates, and what it could not price."""
    line = ""
    if cost["worker_hours"]:
        line += f"; ~{cost['worker_hours']:.1f} worker-hours at this study's rates so far, ~{cost['hours']:.1f} h on {cost['workers']} workers"
    if cost["unpriced"]:
        line += f" (not priced: {', '.join(cost['unpriced'])}; nothing of the kind has finished in this study yet)"
    return line


@study_app.command("snapshot")
def study_snapshot(
    directory: Path = typer.Argument(..., help="A study directory (its runner stopped)."),
    dest: Path = typer.Argument(..., help="Where the copy goes (replaced if it is an earlier snapshot of the same study)."),
) -> None:
    """Copy a study as a resumable state to archive or commit: every run's config, progress,
    reports, fitted attacks and newest checkpoint; no TensorBoard logs, older checkpoints or
    results store. Checked before it replaces DEST: every task done in DIRECTORY is done in the copy."""
    from robustrl.experiments.study import snapshot_study

    result = snapshot_study(directory, dest)
    console.print(f"{result['runs']} runs -> {result['dest']} ({result['bytes'] / 2**20:.1f} MiB); "
                  f"resume: robustrl study run SPEC --out {result['dest']}")  # fmt: skip


@study_app.command("status")
def study_status_command(directory: Path = typer.Argument(..., help="A study directory.")) -> None:
    """What is done, running, failed (with the last error of each failed task)."""
    _print_study_status(directory)


def _print_study_status(directory: Path) -> None:
    from rich.table import Table

    from robustrl.experiments.study import study_status

    status = study_status(directory)
    table = Table(title=f"{directory} (runner {'running' if status['runner_alive'] else 'not running'})")
    for column in ("run", "train", "evaluate", "minutes", "error"):
        table.add_column(column)
    for name, entry in status["runs"].items():
        error = entry.get("train_error") or entry.get("evaluate_error") or ""
        minutes = (entry.get("train_seconds", 0.0) + entry.get("evaluate_seconds", 0.0)) / 60
        train = entry.get("train", "pending")
        if train != "done" and entry.get("steps_done"):  # how far a running or interrupted training is
            train += f" {entry['steps_done'] / entry['steps_total']:.0%}"
        evaluate = entry.get("evaluate", "pending")
        fits = [f"{len(entry['fits_done'])} done"] if entry.get("fits_done") and evaluate != "done" else []
        if entry.get("fits_running") and status["runner_alive"]:
            fits.append(f"{len(entry['fits_running'])} running")
        if fits:  # a learned attack's fits are tasks of their own; the evaluation waits for them
            evaluate += f" (fits: {', '.join(fits)})"
        table.add_row(name, train, evaluate, f"{minutes:.1f}" if minutes else "",
                      error.strip().splitlines()[-1] if error else "")  # fmt: skip
    console.print(table)
    done, total = status["train_steps"]
    if total:
        console.print(f"training: {done / 1e6:.2f}M of {total / 1e6:.2f}M env steps ({done / total:.0%})")
    console.print("  ".join(f"{task}: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) for task, counts in status["counts"].items()))
    for name, entry in status["runs"].items():
        if entry.get("train_set_aside"):
            console.print(f"{name}: its directory had no checkpoint to resume; set aside to {entry['train_set_aside']}, trained again")
    if status["retired"]:
        console.print(f"{len(status['retired'])} run(s) of an earlier version of the spec kept on record, not counted")
    if status.get("wall_seconds"):
        console.print(
            f"wall-clock {status['wall_seconds'] / 3600:.2f} h over {status['invocations']} invocation(s); "
            f"tasks {status['task_seconds'] / 3600:.2f} worker-hours"
        )
    cost = _study_cost_left(directory)
    if cost and cost["tasks"]:
        console.print(f"left: {cost['tasks']} task(s)" + _cost_line(cost))


def _study_cost_left(directory: Path) -> dict[str, Any] | None:
    """Study.cost_left of the study in ``directory`` as its study.json has it (read only), on the
    workers of its last invocation; None if it cannot be priced (an older study.json, a damaged
    report): the status above it is what `study status` is for, and it must not fail for this."""
    from robustrl.experiments.spec import parse_spec
    from robustrl.experiments.study import Study

    try:
        saved, status_path = directory / "study.json", directory / "status.json"
        spec = parse_spec(json.loads(saved.read_text())["spec"], where=str(saved))
        workers = json.loads(status_path.read_text()).get("workers") if status_path.is_file() else None
        workers = workers[-1] if isinstance(workers, list) and workers else workers if isinstance(workers, int) else None
        return Study.inspect(directory, spec).cost_left(workers=workers)
    except Exception:  # a price is a courtesy; the status must print
        return None


@app.command()
def report(
    directory: Path = typer.Argument(..., help="A study directory (after `robustrl study run`)."),
    out: Path | None = typer.Option(None, "--out", help="Folder for tables and figures (default <dir>/report)."),
) -> None:
    """The BARPO paper's Table 2 for a study (median agent; mean and IQM with 95% bootstrap
    intervals) as Markdown, LaTeX and CSV, and its figures (training curves, natural vs worst,
    return vs eps) as PNG and SVG."""
    from robustrl.report.study import write_study_report

    if not (directory / "study.json").is_file():
        raise InvalidArgumentError(f"{directory} is not a study directory (no study.json)")
    written = write_study_report(directory, out)
    if "table2_median" in written:
        console.print(written["table2_median"].read_text(), markup=False, highlight=False)
    for name, path in written.items():
        console.print(f"{name}: {path}")


def _command() -> Any:
    """The click command of the app; on ``--help`` the train help lists the ALGORITHMS registry
    (imported only then: it loads torch)."""
    command = typer.main.get_command(app)
    return command


def _fill_registry_help(command: Any) -> None:
    from robustrl.algos import ALGORITHMS

    train_command = command.commands.get("train") if hasattr(command, "commands") else None
    for param in getattr(train_command, "params", []):
        if param.name == "algo":
            param.help = f"Training method: {', '.join(ALGORITHMS)} (default ppo)."


def _show_warning(
    message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """Every warning (a corrupt checkpoint skipped, a signal received, a library's notice) as one
    ``warning:`` line on stderr, instead of Python's two lines with a source excerpt."""
    import re

    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(message)).split())
    error_console.print(f"warning: {text}", highlight=False, markup=False)


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input prints one line and exits 2; ``--debug`` shows the traceback."""
    import warnings

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    command = _command()
    if "--help" in argv:
        _fill_registry_help(command)
    try:
        from robustrl.threads import torch_threads

        # every command runs with a deliberate torch thread count (1; ROBUSTRL_TORCH_THREADS overrides)
        with warnings.catch_warnings(), torch_threads(import_torch=False):
            warnings.showwarning = _show_warning
            code = command.main(args=argv, prog_name="robustrl", standalone_mode=False)
        # In non-standalone mode click turns a KeyboardInterrupt into a *returned* 130.
        if code == 130:
            raise KeyboardInterrupt
    except typer.Exit as done:
        return done.exit_code
    except _StoppedEarly:
        return 130
    except typer.Abort:
        error_console.print("aborted")
        return 130
    except typer.TyperException as error:  # usage errors: bad option, bad value
        if debug:
            raise
        error_console.print(f"error: {error.format_message()}", highlight=False, markup=False)
        return 2
    except (RobustRLError, FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError) as error:
        if debug:
            raise
        error_console.print(f"error: {error}", highlight=False, markup=False)
        return 2
    except KeyboardInterrupt:
        error_console.print("aborted; earlier checkpoints are intact")
        return 130
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
