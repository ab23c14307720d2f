"""``robustrl`` command line: parse, call the library, print with rich. Nothing else lives here."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional

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
console = Console(soft_wrap=True)
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
    env: Optional[str] = typer.Option(None, "--env", help="Gymnasium id, e.g. Hopper-v5."),
    algo: str = typer.Option("ppo", "--algo", help="Training method."),
    steps: Optional[str] = typer.Option(None, "--steps", help="Env steps (e.g. 2e6). Default: the papers' budget."),
    seed: int = typer.Option(0, "--seed", min=0),
    num_envs: int = typer.Option(1, "--num-envs", min=1, help="Envs sharing each 2048-step batch."),
    backend: str = typer.Option("gymnasium", "--backend", help="gymnasium or envpool."),
    checkpoint_every: int = typer.Option(50, "--checkpoint-every", min=1, help="Iterations between checkpoints."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/<algo>-<env>-s<seed>-<time>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory."),
    overrides: list[str] = typer.Option([], "--set", help="PPO hyperparameter KEY=VALUE (repeatable)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (logs still written)."),
) -> None:
    """Train a policy into a run directory (Ctrl-C saves a checkpoint; --resume continues)."""
    from robustrl.algos import ALGORITHMS
    from robustrl.config import TrainConfig, default_total_steps, ppo_defaults_for
    from robustrl.experiments.run import train as train_run

    if resume is not None:
        if env is not None or steps is not None or overrides or out is not None:
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
        )
        result = train_run(config, out, progress=not no_progress)
    state = "interrupted at" if result.interrupted else "finished"
    console.print(
        f"{state} iteration {result.iterations} ({result.global_step} steps); run directory: [bold]{result.run_dir}[/]"
    )
    if result.interrupted:
        console.print(f"continue with: robustrl train --resume {result.run_dir}")


@app.command()
def evaluate(
    path: Path = typer.Argument(..., help="Run directory or checkpoint (.json/.safetensors)."),
    episodes: int = typer.Option(50, "--episodes", min=1),
    seed: int = typer.Option(10_000, "--seed", min=0, help="Seed of the evaluation envs."),
    mode: str = typer.Option("both", "--mode", help="deterministic, stochastic or both."),
    env: Optional[str] = typer.Option(None, "--env", help="Check the policy was trained on this env."),
    json_file: Optional[Path] = typer.Option(None, "--json", help="Write results (and every return) here."),
    markdown_file: Optional[Path] = typer.Option(None, "--markdown", help="Write the table as markdown here."),
) -> None:
    """Natural return of a trained policy (deterministic = mean action, as the papers)."""
    from rich.progress import Progress

    from robustrl.evaluate import evaluate as evaluate_policy
    from robustrl.policies.checkpoint import atomic_write_text
    from robustrl.report.table import natural_return_markdown, natural_return_table

    modes = {"both": ("deterministic", "stochastic"), "deterministic": ("deterministic",), "stochastic": ("stochastic",)}
    if mode not in modes:
        raise InvalidArgumentError(f"--mode must be deterministic, stochastic or both, got {mode!r}")
    with Progress(console=error_console, transient=True, disable=not error_console.is_terminal) as bar:
        tasks = {m: bar.add_task(f"{m} episodes", total=episodes) for m in modes[mode]}
        report = evaluate_policy(
            path, env, episodes=episodes, seed=seed, modes=modes[mode], json_path=json_file,
            on_episode=lambda m, _ret: bar.advance(tasks[m]),
        )
    console.print(natural_return_table(report))
    if markdown_file is not None:
        atomic_write_text(markdown_file, natural_return_markdown(report))


@app.command()
def demo(
    env: str = typer.Option("Hopper-v5", "--env"),
    steps: str = typer.Option("3e5", "--steps", help="Training budget of the demo."),
    episodes: int = typer.Option(10, "--episodes", min=1),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/demo-<time>)."),
) -> None:
    """Short end-to-end demo: train PPO, evaluate it, print the table."""
    from datetime import datetime

    from robustrl.config import TrainConfig, ppo_defaults_for
    from robustrl.evaluate import evaluate as evaluate_policy
    from robustrl.experiments.run import train as train_run
    from robustrl.report.table import natural_return_table

    run_dir = out or Path("runs") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    config = TrainConfig(env_id=env, total_steps=parse_count(steps, "--steps"), seed=0, ppo=ppo_defaults_for(env))
    console.print(f"[bold]1/2[/] training PPO on {env} for {config.total_steps} steps -> {run_dir}")
    result = train_run(config, run_dir)
    console.print(f"[bold]2/2[/] evaluating {episodes} episodes per mode")
    report = evaluate_policy(result.run_dir, episodes=episodes, json_path=result.run_dir / "eval.json")
    console.print(natural_return_table(report))
    console.print("Attack columns join this table once the attack suite lands (issue 3).")


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
