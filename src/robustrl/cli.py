"""``robustrl`` command line: parse, call the library, print with rich. Nothing else lives here."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
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


@app.callback()
def _global_options(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    """Adversarially robust deep RL: train, attack, evaluate."""


def parse_count(text: str, name: str) -> int:
    """Accept ``2e6``, ``2000000`` or ``2_000_000``; reject negatives, fractions and words."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise InvalidArgumentError(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise InvalidArgumentError(f"{name} must be a positive whole number, got {text!r}")
    return int(value)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``--set policy_lr=1e-4 --set hidden_sizes=[32,32]`` -> PPOConfig overrides (JSON values)."""
    from robustrl.config import PPOConfig

    known = {f.name: f for f in dataclasses.fields(PPOConfig)}
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in known:
            raise InvalidArgumentError(f"--set expects KEY=VALUE with KEY one of {sorted(known)}, got {pair!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise InvalidArgumentError(f"--set {key}: {raw!r} is not a JSON value (number, true/false, null, list)") from None
        overrides[key] = tuple(value) if isinstance(value, list) else value
    return overrides


@app.command()
def train(
    env: str | None = typer.Option(None, "--env", help="Gymnasium id, e.g. Hopper-v5."),
    algo: str = typer.Option("ppo", "--algo", help="Training method."),
    steps: str | None = typer.Option(None, "--steps", help="Env steps (e.g. 2e6). Default: the papers' budget."),
    seed: int = typer.Option(0, "--seed", min=0),
    num_envs: int = typer.Option(1, "--num-envs", min=1, help="Envs sharing each 2048-step batch."),
    backend: str = typer.Option("gymnasium", "--backend", help="gymnasium or envpool."),
    checkpoint_every: int = typer.Option(50, "--checkpoint-every", min=1, help="Iterations between checkpoints."),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default runs/<algo>-<env>-s<seed>-<time>)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this directory."),
    overrides: list[str] = typer.Option([], "--set", help="PPO hyperparameter KEY=VALUE (repeatable)."),
    eps: float | None = typer.Option(None, "--eps", help="Robust methods: target eps (default: the papers' value for the env)."),
    kappa: float | None = typer.Option(None, "--kappa", help="Robust methods: robustness weight (default 0.3)."),
    no_guidance: bool = typer.Option(False, "--no-guidance", help="ar-ppo/bar-ppo: the robust term alone (ARPO, BARPO w/o g)."),
    inner_solve: str | None = typer.Option(None, "--inner-solve", help="iteration (once per batch) or minibatch."),
    solver: str | None = typer.Option(None, "--solver", help="sa-ppo inner solver: sgld, pgd or ibp."),
    robust_overrides: list[str] = typer.Option([], "--set-robust", help="Robust knob KEY=VALUE (repeatable), e.g. temperature=1e-5."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (logs still written)."),
) -> None:
    """Train a policy into a run directory (Ctrl-C saves a checkpoint; --resume continues)."""
    from robustrl.algos import ALGORITHMS
    from robustrl.config import TrainConfig, default_total_steps, ppo_defaults_for
    from robustrl.experiments.run import train as train_run

    if resume is not None:
        if env is not None or steps is not None or overrides or out is not None or robust_overrides or eps is not None or kappa is not None:
            raise InvalidArgumentError("--resume takes its settings from the run directory; drop --env/--steps/--set/--out")
        result = train_run(resume=resume, progress=not no_progress)
    else:
        if env is None:
            raise InvalidArgumentError("--env is required (e.g. --env Hopper-v5), or --resume RUN_DIR")
        if algo not in ALGORITHMS:
            raise InvalidArgumentError(f"unknown --algo {algo!r}; available: {', '.join(ALGORITHMS)}")
        total_steps = parse_count(steps, "--steps") if steps is not None else default_total_steps(env)
        config = TrainConfig(
            env_id=env,
            algo=algo,
            total_steps=total_steps,
            seed=seed,
            num_envs=num_envs,
            backend=backend,
            checkpoint_every=checkpoint_every,
            ppo=ppo_defaults_for(env, **parse_overrides(overrides)),
            robust=robust_config(algo, eps, kappa, no_guidance, inner_solve, solver, robust_overrides),
        )
        result = train_run(config, out, progress=not no_progress)
    state = "interrupted at" if result.interrupted else "finished"
    console.print(
        f"{state} iteration {result.iterations} ({result.global_step} steps); run directory: [bold]{result.run_dir}[/]"
    )
    if result.interrupted:
        console.print(f"continue with: robustrl train --resume {result.run_dir}")


def robust_config(algo, eps, kappa, no_guidance, inner_solve, solver, pairs: list[str]):
    """The RobustConfig of ``robustrl train`` options (plain PPO ignores it, so reject them there)."""
    from robustrl.config import RobustConfig

    values: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(RobustConfig)}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in known:
            raise InvalidArgumentError(f"--set-robust expects KEY=VALUE with KEY one of {sorted(known)}, got {pair!r}")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw  # plain strings (norm, inner_solve, solver)
    for key, value in (("eps", eps), ("kappa", kappa), ("inner_solve", inner_solve), ("solver", solver)):
        if value is not None:
            values[key] = value
    if no_guidance:
        if algo not in ("ar-ppo", "bar-ppo"):
            raise InvalidArgumentError("--no-guidance applies to ar-ppo and bar-ppo only")
        values["guidance"] = False
    if algo == "ppo" and values:
        raise InvalidArgumentError(f"--algo ppo takes no robust options (got {sorted(values)})")
    if algo == "radial-ppo" and kappa is not None:
        raise InvalidArgumentError("radial-ppo has no kappa: its loss mixes the clean and worst-case surrogates (--set-robust radial_mix=0.5)")
    config = RobustConfig(**values)
    config.validate()
    return config


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


def _load_any(path: Path, env: str | None, vecnormalize: Path | None, trust_pickle: bool) -> Any:
    from robustrl.policies.adapters import load_model

    return load_model(path, env, vecnormalize=vecnormalize, trust_pickle=trust_pickle)


class _AttackProgress:
    """Rich bars for each attack's fitting and episodes (stderr, only on a terminal)."""

    def __init__(self, bar: Any, label: str = ""):
        self.bar, self.label, self.tasks = bar, label, {}

    def __call__(self, stage: str, name: str, done: int, total: int) -> None:
        key = (stage, name)
        if key not in self.tasks:
            text = f"{self.label}{name}: " + ("fitting" if stage == "fit" else "episodes")
            self.tasks[key] = self.bar.add_task(text, total=total)
        self.bar.update(self.tasks[key], completed=done, total=total)


@app.command()
def evaluate(
    paths: list[Path] = typer.Argument(..., help="Run directories, checkpoints, SB3 .zip models or TorchScript .pt files."),
    attacks: str | None = typer.Option(
        None, "--attacks", help="Comma-separated: random,critic,mad,rs,sa-rl,pa-ad, or all. Omit for natural return only."
    ),
    eps: float | None = typer.Option(None, "--eps", help="Attack radius in the policy's perturbation space (default: the papers' value for the env)."),
    norm: str = typer.Option("inf", "--norm", help="inf (l_inf, default) or 2 (l_2)."),
    eps_sweep: str | None = typer.Option(None, "--eps-sweep", help="Comma-separated eps values: return versus eps for each attack (PNG)."),
    plot: Path | None = typer.Option(None, "--plot", help="PNG for --eps-sweep (default eps_sweep.png next to the first model)."),
    episodes: int = typer.Option(50, "--episodes", min=1),
    seed: int = typer.Option(10_000, "--seed", min=0, help="Seed of the evaluation envs."),
    mode: str | None = typer.Option(None, "--mode", help="deterministic, stochastic or both (default: both without attacks, deterministic with)."),
    env: str | None = typer.Option(None, "--env", help="Env id (required for foreign models; checked for ours)."),
    budgets: list[str] = typer.Option([], "--budget", help="Training env steps of a learned attack, NAME=STEPS (repeatable), e.g. sa-rl=2e5."),
    attack_options: list[str] = typer.Option([], "--attack-option", help="ATTACK.KEY=JSON (repeatable), e.g. rs.grid=[[0.02,0.1],[0.05,1.0]]."),
    median: bool = typer.Option(False, "--median", help="Median-agent protocol over the given runs (BARPO App. F.3)."),
    refit: bool = typer.Option(False, "--refit", help="Fit learned attacks again even if a fitted one is cached."),
    vecnormalize: Path | None = typer.Option(None, "--vecnormalize", help="SB3 VecNormalize statistics (.npz/.json, or .pkl with --trust-pickle)."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Allow unpickling files you trust (SB3 vec_normalize.pkl)."),
    json_file: Path | None = typer.Option(None, "--json", help="Write results (and every return) here."),
    markdown_file: Path | None = typer.Option(None, "--markdown", help="Write the table as markdown here."),
) -> None:
    """Natural return, or the robustness table under attacks (BARPO Table 2), of trained policies."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from robustrl.policies.checkpoint import atomic_write_text

    modes = {"both": ("deterministic", "stochastic"), "deterministic": ("deterministic",), "stochastic": ("stochastic",)}
    if mode is not None and mode not in modes:
        raise InvalidArgumentError(f"--mode must be deterministic, stochastic or both, got {mode!r}")
    if eps is not None and (eps < 0 or not math.isfinite(eps)):
        raise InvalidArgumentError(f"--eps must be a finite number >= 0, got {eps}")
    for path in paths:
        if not path.exists():
            raise InvalidArgumentError(f"{path} does not exist")
    progress_columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    if attacks is None and eps_sweep is None:
        _evaluate_natural(paths, env, episodes, seed, modes[mode or "both"], json_file, markdown_file, vecnormalize, trust_pickle)
        return

    from robustrl.attacks import parse_attacks
    from robustrl.evaluate.robustness import eps_sweep as run_sweep
    from robustrl.evaluate.robustness import median_agent_protocol, robustness_report
    from robustrl.report.table import robustness_markdown, robustness_table

    names = parse_attacks(attacks or "random,critic,mad")
    parsed_budgets, parsed_options = parse_attack_settings(budgets, attack_options)
    if (mode or "deterministic") == "both":
        raise InvalidArgumentError("with --attacks, --mode is deterministic (default, as the papers) or stochastic")
    common = dict(
        norm=norm, episodes=episodes, seed=seed, deterministic=(mode or "deterministic") == "deterministic",
        attack_options=parsed_options, budgets=parsed_budgets, refit=refit,
    )
    with Progress(*progress_columns, console=error_console, transient=True, disable=not error_console.is_terminal) as bar:
        if median:
            if eps_sweep is not None:
                raise InvalidArgumentError("--median and --eps-sweep cannot be combined")
            cheap = tuple(n for n in names if n not in ("sa-rl", "pa-ad"))
            expensive = tuple(n for n in names if n in ("sa-rl", "pa-ad"))
            result = median_agent_protocol(
                paths, env, cheap_attacks=cheap, expensive_attacks=expensive, eps=eps,
                load=lambda p, e: _load_any(Path(p), e, vecnormalize, trust_pickle),
                progress_for=lambda label: _AttackProgress(bar, f"{Path(label).name} "), **common,
            )
            reports = result["reports"]
            labels = [_label(p) + (" (median)" if i == result["median_index"] else "") for i, p in enumerate(paths)]
            reports[result["median_index"]] = result["median_report"]
        else:
            reports, labels = [], []
            for path in paths:
                policy = _load_any(path, env, vecnormalize, trust_pickle)
                env_id = env or policy.env_id
                if env_id is None:
                    raise InvalidArgumentError(f"{path}: pass --env (the model file does not record its env)")
                if eps_sweep is not None:
                    sweep = run_sweep(
                        policy, env_id, parse_float_list(eps_sweep, "--eps-sweep"), attacks=names, source=path,
                        json_path=json_file or _default_report(path, "eps-sweep"), progress=_AttackProgress(bar, f"{path.name} "), **common,
                    )
                    from robustrl.report.plots import plot_eps_sweep

                    figure = plot_eps_sweep(sweep, plot or _default_report(path, "eps_sweep").with_suffix(".png"))
                    console.print(robustness_table(sweep, [f"eps={r['eps']:g}" for r in sweep]))
                    console.print(f"plot: {figure}")
                    continue
                report = robustness_report(
                    policy, env_id, attacks=names, eps=eps, source=path, progress=_AttackProgress(bar, f"{path.name} "),
                    json_path=json_file if len(paths) == 1 and json_file else _default_report(path, None, eps, env_id), **common,
                )
                reports.append(report)
                labels.append(_label(path))
    if reports:
        console.print(robustness_table(reports, labels))
        if json_file is not None and len(paths) > 1:
            atomic_write_text(json_file, json.dumps({"reports": reports, "labels": labels}, indent=1))
        if markdown_file is not None:
            atomic_write_text(markdown_file, robustness_markdown(reports, labels))


def _label(path: Path) -> str:
    """A short row label: the run directory's name (or the file's)."""
    path = Path(path)
    return path.parent.parent.name if path.parent.name == "checkpoints" else path.name


def _default_report(path: Path, stem: str | None, eps: float | None = None, env_id: str | None = None) -> Path:
    """Reports live next to the policy: ``<run dir>/eval-eps<e>.json`` (resumable)."""
    from robustrl.config import default_eps

    base = path if path.is_dir() else path.parent
    if stem is None:
        stem = f"eval-eps{(eps if eps is not None else default_eps(env_id)):g}"
    return base / f"{stem}.json"


def _evaluate_natural(paths, env, episodes, seed, modes, json_file, markdown_file, vecnormalize, trust_pickle) -> None:
    from rich.progress import Progress

    from robustrl.evaluate import evaluate as evaluate_policy
    from robustrl.policies.checkpoint import atomic_write_text
    from robustrl.report.table import natural_return_markdown, natural_return_table

    if len(paths) != 1:
        raise InvalidArgumentError("natural-return evaluation takes one path; add --attacks for a table of several")
    path = paths[0]
    policy = _load_any(path, env, vecnormalize, trust_pickle)
    with Progress(console=error_console, transient=True, disable=not error_console.is_terminal) as bar:
        tasks = {m: bar.add_task(f"{m} episodes", total=episodes) for m in modes}
        report = evaluate_policy(
            policy, env or policy.env_id, episodes=episodes, seed=seed, modes=modes, json_path=json_file,
            on_episode=lambda m, _ret: bar.advance(tasks[m]), source=str(path),
        )
    console.print(natural_return_table(report))
    if markdown_file is not None:
        atomic_write_text(markdown_file, natural_return_markdown(report))


@app.command()
def demo(
    env: str = typer.Option("Hopper-v5", "--env"),
    steps: str = typer.Option("3e5", "--steps", help="Training budget of the demo."),
    episodes: int = typer.Option(10, "--episodes", min=1),
    attack_budget: str = typer.Option("1e5", "--attack-budget", help="Training env steps of each learned attack (SA-RL, PA-AD)."),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default runs/demo-<time>)."),
) -> None:
    """Short end-to-end demo: train PPO, attack it with the six attacks, print the robustness table."""
    from datetime import datetime

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from robustrl.attacks import ALL
    from robustrl.config import TrainConfig, default_eps, ppo_defaults_for
    from robustrl.evaluate.robustness import robustness_report
    from robustrl.experiments.run import train as train_run
    from robustrl.report.table import robustness_table

    run_dir = out or Path("runs") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    config = TrainConfig(env_id=env, total_steps=parse_count(steps, "--steps"), seed=0, ppo=ppo_defaults_for(env))
    budget = parse_count(attack_budget, "--attack-budget")
    console.print(f"[bold]1/2[/] training PPO on {env} for {config.total_steps} steps -> {run_dir}")
    result = train_run(config, run_dir)
    eps = default_eps(env)
    console.print(
        f"[bold]2/2[/] attacking it at eps={eps:g} ({', '.join(ALL)}; learned attacks trained for {budget} steps "
        f"each, the papers use ~1M-2M): {episodes} deterministic episodes per column"
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=error_console, transient=True) as bar:
        report = robustness_report(
            result.policy, env, attacks=list(ALL), eps=eps, episodes=episodes, source=result.run_dir,
            budgets={"sa-rl": budget, "pa-ad": budget}, attack_options={"rs": {"iterations": 10}},
            json_path=result.run_dir / f"eval-eps{eps:g}.json", progress=_AttackProgress(bar),
        )
    console.print(robustness_table([report], [result.run_dir.name]))


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input prints one line and exits 2; ``--debug`` shows the traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        code = app(args=argv, prog_name="robustrl", standalone_mode=False)
        # In non-standalone mode typer turns a KeyboardInterrupt into a *returned* 130.
        if code == 130:
            raise KeyboardInterrupt
    except typer.Exit as done:
        return done.exit_code
    except typer.Abort:
        error_console.print("aborted")
        return 130
    except typer.TyperException as error:  # usage errors: bad option, bad value
        if debug:
            raise
        error_console.print(f"error: {error.format_message()}", highlight=False, markup=False)
        return 2
    except (RobustRLError, FileNotFoundError, PermissionError) as error:
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
