"""``robustrl sumo``: the two-player MuJoCo sumo of *Rethinking adversarial policies* (Sec. 7,
App. E). Thin: check the options, call :mod:`robustrl.games.sumo`, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from robustrl.errors import InvalidArgumentError

sumo_app = typer.Typer(
    no_args_is_help=True,
    help="Two-player MuJoCo sumo: self-play, partial-control adversarial policies, stealth, defence.",
)
console = Console()


def _count(text: str, option: str) -> int:
    from robustrl.cli import parse_count

    return parse_count(text, option)


def _fresh_dir(path: Path, option: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidArgumentError(f"{option} {path} exists and is not an empty directory; pick another or --resume it")
    if not path.parent.is_dir():
        raise InvalidArgumentError(f"{option} {path}: folder {path.parent} does not exist")


def _run_dir(path: Path, what: str) -> Path:
    from robustrl.policies.checkpoint import is_run_dir

    if not is_run_dir(path):
        raise InvalidArgumentError(f"{what} {path} is not a robustrl run directory (no config.json and checkpoints/)")
    return path


def _check_file(path: Path | None, option: str, suffixes: tuple[str, ...] | None = None) -> None:
    if path is None:
        return
    if suffixes and path.suffix.lower() not in suffixes:
        raise InvalidArgumentError(f"{option} {path}: give a file ending in {' or '.join(suffixes)}")
    if path.is_dir():
        raise InvalidArgumentError(f"{option} {path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise InvalidArgumentError(f"{option} {path}: folder {path.parent} does not exist")


def _check_eps_pi(eps_pi: float) -> None:
    from robustrl.attacks.action import check_eps_pi

    check_eps_pi(eps_pi)


def _split(steps_per_iteration: int, num_envs: int) -> None:
    if num_envs < 1 or steps_per_iteration < num_envs or steps_per_iteration % num_envs:
        raise InvalidArgumentError(
            f"--num-envs ({num_envs}) must be >= 1 and divide --steps-per-iteration ({steps_per_iteration})"
        )


def _train(learner_fn: Any, out: Path | None, resume: Path | None, default: Path) -> Any:
    """A new run (``learner_fn()`` built before the directory is created) or a resumed one."""
    from robustrl.cli import _progress_bars, _StoppedEarly
    from robustrl.experiments.run import train

    with _progress_bars(enabled=None, transient=False) as progress:
        if resume is not None:
            result = train(resume=_run_dir(resume, "--resume"), progress=progress)
        else:
            run_dir = out or default
            _fresh_dir(run_dir, "--out")
            result = train(learner=learner_fn(), out=run_dir, progress=progress)
    if result.interrupted:
        console.print(f"interrupted; continue with --resume {result.run_dir}")
        raise _StoppedEarly
    return result


def _last_row(run_dir: Path) -> dict[str, str]:
    import csv

    with open(run_dir / "progress.csv") as handle:
        rows = list(csv.DictReader(handle))
    return rows[-1] if rows else {}


@sumo_app.command("train")
def train_command(
    steps: str = typer.Option("4e5", "--steps", help="Joint env steps of self-play (the paper: 3e7 for defences)."),
    seed: int = typer.Option(0, "--seed", min=0),
    lr: float = typer.Option(3e-4, "--lr", help="PPO learning rate (policy and value)."),
    num_envs: int = typer.Option(4, "--num-envs", help="Arena copies stepped together."),
    steps_per_iteration: int = typer.Option(2048, "--steps-per-iteration", help="Joint steps per PPO iteration."),
    max_steps: int = typer.Option(500, "--max-steps", min=1, help="Steps before a match is a draw (Robosumo: 500)."),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default runs/sumo-self-play-s<seed>)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue this run directory."),
) -> None:
    """Benign agents: one PPO policy playing both seats (self-play, Bansal et al. 2018)."""
    from robustrl.games.sumo import SumoLearner

    total = _count(steps, "--steps")
    _split(steps_per_iteration, num_envs)
    config = {"method": "self-play", "total_steps": total, "seed": seed, "victim_lr": lr, "num_envs": num_envs,
              "steps_per_iteration": steps_per_iteration, "settings": {"max_steps": max_steps}}  # fmt: skip
    result = _train(lambda: SumoLearner(config), out, resume, Path("runs") / f"sumo-self-play-s{seed}")
    row = _last_row(result.run_dir)
    console.print(
        f"self-play: {result.global_step} joint steps; last iteration's draw rate {row.get('draw_rate', '?')}; run -> {result.run_dir}"
    )


@sumo_app.command("attack")
def attack_command(
    victim: Path = typer.Argument(..., help="The victim's run directory (frozen)."),
    eps_pi: float = typer.Option(1.0, "--eps-pi", help="The attacker's share of control per step (1: Gleave et al.)."),
    benign: Path | None = typer.Option(
        None, "--benign", help="The benign opponent it partly replaces (default: the victim's run)."
    ),
    init: Path | None = typer.Option(
        None,
        "--init",
        help="Start the adversarial policy from this run (e.g. the benign agent; default fresh weights).",
    ),
    steps: str = typer.Option("1e5", "--steps", help="Attacker training steps (the paper: 2e7)."),
    seed: int = typer.Option(0, "--seed", min=0),
    lr: float = typer.Option(3e-4, "--lr"),
    num_envs: int = typer.Option(4, "--num-envs"),
    steps_per_iteration: int = typer.Option(2048, "--steps-per-iteration"),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default runs/sumo-attack-eps<eps>-s<seed>)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue this run directory."),
) -> None:
    """Train an adversarial policy with PPO against a frozen victim under partial control (eps_pi);
    progress.csv records the attacker's win and non-loss rates (Figure 6)."""
    from robustrl.games.sumo import SumoAttackLearner

    if resume is None:
        _check_eps_pi(eps_pi)
        _run_dir(victim, "VICTIM")
        for path, option in ((benign, "--benign"), (init, "--init")):
            if path is not None:
                _run_dir(path, option)
        _split(steps_per_iteration, num_envs)
    total = _count(steps, "--steps")
    settings = json.loads((victim / "config.json").read_text()).get("settings", {}) if resume is None else {}
    config = {"victim": str(victim), "benign": None if benign is None else str(benign),
              "init": None if init is None else str(init), "eps_pi": eps_pi,
              "total_steps": total, "seed": seed, "lr": lr, "num_envs": num_envs,
              "steps_per_iteration": steps_per_iteration, "settings": settings}  # fmt: skip
    result = _train(lambda: SumoAttackLearner(config), out, resume, Path("runs") / f"sumo-attack-eps{eps_pi:g}-s{seed}")
    row = _last_row(result.run_dir)
    console.print(
        f"attack eps_pi={eps_pi:g}: last iteration's win rate {row.get('win_rate', '?')}, "
        f"non-loss rate {row.get('non_loss_rate', '?')}; run -> {result.run_dir}"
    )


@sumo_app.command("defend")
def defend_command(
    benign: Path = typer.Argument(..., help="The benign agent's run directory: the victim starts from it."),
    method: str = typer.Option("two-timescale", "--method", help="two-timescale | single | self-play | fictitious."),
    eps_pi: float = typer.Option(
        0.7, "--eps-pi", help="The defence budget: the attacker's share of control in training."
    ),
    steps: str = typer.Option("1e5", "--steps", help="Joint env steps (the paper: 3e7)."),
    victim_lr: float = typer.Option(1e-4, "--victim-lr", help="eta_nu."),
    ratio: float = typer.Option(10.0, "--ratio", help="eta_alpha / eta_nu (two-timescale, fictitious)."),
    fresh_attacker: bool = typer.Option(
        False, "--fresh-attacker", help="Start the attacker from fresh weights (default: from the benign agent)."
    ),
    seed: int = typer.Option(0, "--seed", min=0),
    num_envs: int = typer.Option(4, "--num-envs"),
    steps_per_iteration: int = typer.Option(2048, "--steps-per-iteration"),
    out: Path | None = typer.Option(
        None, "--out", help="Run directory (default runs/sumo-defend-<method>-eps<eps>-s<seed>)."
    ),
    resume: Path | None = typer.Option(None, "--resume"),
) -> None:
    """Adversarial training of the victim (Algorithm 2 with PPO) or a baseline; progress.csv has
    the victim's score and gradient norm per iteration (Figures 4a, 4b)."""
    from robustrl.games.sumo import METHODS, SumoLearner

    if resume is None:
        if method not in METHODS:
            raise InvalidArgumentError(f"unknown --method {method!r}; known: {', '.join(METHODS)}")
        _check_eps_pi(eps_pi)
        _run_dir(benign, "BENIGN")
        _split(steps_per_iteration, num_envs)
        if not ratio > 0 or not victim_lr > 0:
            raise InvalidArgumentError("--ratio and --victim-lr must be positive")
    total = _count(steps, "--steps")
    settings = json.loads((benign / "config.json").read_text()).get("settings", {}) if resume is None else {}
    config = {"method": method, "eps_pi": eps_pi, "total_steps": total, "seed": seed, "victim_lr": victim_lr,
              "ratio": ratio, "init": str(benign), "attacker_init": None if fresh_attacker else str(benign), "num_envs": num_envs, "steps_per_iteration": steps_per_iteration,
              "settings": settings}  # fmt: skip
    default = Path("runs") / f"sumo-defend-{method}-eps{eps_pi:g}-s{seed}"
    result = _train(lambda: SumoLearner(config), out, resume, default)
    row = _last_row(result.run_dir)
    console.print(
        f"{method}: last score {row.get('score', '?')}, gradient norm {row.get('gradient_norm', '?')}; run -> {result.run_dir}"
    )


@sumo_app.command("stealth")
def stealth_command(
    victim: Path = typer.Argument(..., help="The victim's run directory (the benign agent)."),
    attacks: list[Path] = typer.Argument(..., help="Attack run directories (robustrl sumo attack)."),
    episodes: int = typer.Option(100, "--episodes", min=1, help="Matches per opponent."),
    features: int = typer.Option(10, "--features", min=1, help="Highest-variance victim features compared (App. E.2)."),
    seed: int = typer.Option(20_000, "--seed"),
    json_path: Path | None = typer.Option(None, "--json", help="Write the report here."),
    plot: Path | None = typer.Option(None, "--plot", help="A figure (.png/.svg): feature distributions and distances."),
) -> None:
    """The victim's observation distribution against the benign opponent versus each attack:
    W2 (with its split-half baseline), Gaussian KL / Hellinger, sliced W2, feature importance
    (Figures 1, 3, 7; Tables 1-3 in spirit), and each attack's win rate."""
    from robustrl.games.sumo import stealth_study

    _run_dir(victim, "VICTIM")
    for attack in attacks:
        _run_dir(attack, "ATTACK")
    _check_file(json_path, "--json", (".json",))
    _check_file(plot, "--plot", (".png", ".svg"))
    report = stealth_study(victim, [str(a) for a in attacks], episodes=episodes, features=features, seed=seed)
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=1))
    if plot is not None:
        from robustrl.report.sumo import plot_stealth

        plot_stealth(report, plot)
    console.print(f"no attack: attacker win rate {report['reference']['win_rate']:.2f} over {episodes} matches")
    for name, entry in report["attacks"].items():
        console.print(
            f"{name}: eps_pi {entry['eps_pi']:g} win rate {entry['win_rate']:.2f}; W2 {entry['w2']:.3f} "
            f"(split-half {entry['w2_split_half']:.3f}); KL {entry['gaussian_kl']:.3f}; Hellinger {entry['gaussian_hellinger']:.3f}"
        )


@sumo_app.command("render")
def render_command(
    victim: Path = typer.Argument(..., help="The victim's run directory (seat player_0, red)."),
    out: Path = typer.Option(..., "--out", help="The animation (.gif, or .mp4 with imageio-ffmpeg)."),
    opponents: list[Path] = typer.Option(
        [], "--opponent", help="Attack runs, one panel each (default: the benign agent)."
    ),
    seed: int = typer.Option(20_000, "--seed"),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Cut the episode after this many steps."),
    size: str = typer.Option("320x240", "--size", help="Panel size WIDTHxHEIGHT in pixels."),
) -> None:
    """One match per panel, side by side (offscreen EGL rendering; needs libegl1 libegl-mesa0
    libgl1-mesa-dri on Debian)."""
    import os

    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"  # read when mujoco is first imported: before anything imports it
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    from robustrl.games.sumo import render_matches

    _run_dir(victim, "VICTIM")
    for opponent in opponents:
        _run_dir(opponent, "--opponent")
    from robustrl.evaluate.render import check_video_path

    _check_file(out, "--out", (".gif", ".mp4"))
    check_video_path(out)
    try:
        width, height = (int(v) for v in size.lower().split("x"))
        if width < 16 or height < 16:
            raise ValueError
    except ValueError:
        raise InvalidArgumentError(f"--size must be WIDTHxHEIGHT (at least 16x16), got {size!r}") from None
    path = render_matches(
        victim, [str(o) for o in opponents], out, seed=seed, max_steps=max_steps, size=(width, height)
    )
    console.print(f"animation -> {path}")
