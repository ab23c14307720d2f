"""``robustrl games``: matrix games (Figure 5) and Kuhn Poker (Figure 2) of *Rethinking
adversarial policies*. Thin: check the options, call :mod:`robustrl.games`, print."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from robustrl.errors import InvalidArgumentError

games_app = typer.Typer(
    no_args_is_help=True,
    help="Games with exact answers: partial-control attacks and adversarial training with timescale separation.",
)
console = Console()
_FIGURE_SUFFIXES = (".png", ".svg")


def _check_figure(path: Path, option: str) -> None:
    if path.suffix.lower() not in _FIGURE_SUFFIXES:
        raise InvalidArgumentError(f"{option} {path}: give a .png or .svg file name")
    _check_file(path, option)


def _check_file(path: Path | None, option: str) -> None:
    if path is None:
        return
    if path.is_dir():
        raise InvalidArgumentError(f"{option} {path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise InvalidArgumentError(f"{option} {path}: folder {path.parent} does not exist")


def _positive(value: float, option: str) -> None:
    if not value > 0 or value != value or value == float("inf"):
        raise InvalidArgumentError(f"{option} must be a positive number, got {value!r}")


@games_app.command("matrix")
def matrix(
    game: str = typer.Option("rps", "--game", help="rps (Appendix C's matrix), rps-env, matching-pennies."),
    out: Path = typer.Option(..., "--out", help="The figure (.png or .svg): exploitability per learner (Figure 5)."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the curves as JSON."),
    iterations: int = typer.Option(1000, "--iterations", help="Iterations of each learner."),
    step_size: float = typer.Option(0.01, "--step-size", help="eta of the gradient learners (SGDA, AGDA, GAMin)."),
    eps_pi: float = typer.Option(1.0, "--eps-pi", help="The attacker's share of control (Appendix C: 1)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the random starting strategies (the same for every learner)."),
) -> None:
    """Run SGDA, AGDA, SIBR, AIBR and GAMin (Appendix C) on a matrix game; draw Figure 5."""
    from robustrl.games.matrix import LEARNERS, MATRIX_GAMES, MatrixGame

    if game not in MATRIX_GAMES:
        raise InvalidArgumentError(f"unknown --game {game!r}; known: {', '.join(MATRIX_GAMES)}")
    _check_figure(out, "--out")
    _check_file(json_path, "--json")
    if iterations < 1 or iterations > 10**7:
        raise InvalidArgumentError(f"--iterations must be in [1, 1e7], got {iterations}")
    _positive(step_size, "--step-size")
    from robustrl.games.matrix import run_learner

    matrix_game = MatrixGame.named(game, eps_pi=eps_pi)
    value, _ = matrix_game.robust_value()
    result = {
        "game": game,
        "payoff": matrix_game.payoff.tolist(),
        "eps_pi": matrix_game.eps_pi,
        "benign": matrix_game.benign.tolist(),
        "robust_value": value,
        "min_exploitability": -value,
        "iterations": iterations,
        "step_size": step_size,
        "seed": seed,
        "methods": {name: run_learner(matrix_game, name, iterations, step_size, seed) for name in LEARNERS},
    }
    from robustrl.report.games import plot_matrix_curves

    plot_matrix_curves(result, out)
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=1))
    for name, entry in result["methods"].items():
        console.print(f"{name:6s} final exploitability {entry['final_exploitability']:.4f}")
    console.print(
        f"min exploitability (LP) {-value:.4f}; figure -> {out}" + (f", json -> {json_path}" if json_path else "")
    )


@games_app.command("kuhn")
def kuhn(
    method: str = typer.Option(..., "--method", help="min-oracle | two-timescale | single | self-play | fictitious."),
    eps_pi: float = typer.Option(..., "--eps-pi", help="The attacker's share of control of the opponent, in [0, 1]."),
    iterations: int = typer.Option(2000, "--iterations", help="Training iterations (one exact gradient step each)."),
    eta_nu: float = typer.Option(0.1, "--eta-nu", help="The victim's step size."),
    ratio: float = typer.Option(20.0, "--ratio", help="eta_alpha / eta_nu of two-timescale."),
    seed: int = typer.Option(0, "--seed", help="Seeds the random initial policies."),
    victim_seat: int = typer.Option(0, "--victim-seat", help="The victim's seat (0 or 1)."),
    out: Path | None = typer.Option(
        None, "--out", help="Run directory (default runs/games-kuhn-<method>-eps<eps>-s<seed>)."
    ),
) -> None:
    """Adversarially train a Kuhn Poker victim against a partly controlled opponent (benign:
    uniform) and record its exact exploitability per iteration (Figure 2 in spirit)."""
    from robustrl.games.kuhn import require_open_spiel
    from robustrl.games.simplex import check_eps_pi
    from robustrl.games.training import METHODS

    if method not in METHODS:
        raise InvalidArgumentError(f"unknown --method {method!r}; known: {', '.join(METHODS)}")
    check_eps_pi(eps_pi)
    if iterations < 1 or iterations > 10**7:
        raise InvalidArgumentError(f"--iterations must be in [1, 1e7], got {iterations}")
    _positive(eta_nu, "--eta-nu")
    _positive(ratio, "--ratio")
    if victim_seat not in (0, 1):
        raise InvalidArgumentError(f"--victim-seat must be 0 or 1, got {victim_seat}")
    run_dir = out or Path("runs") / f"games-kuhn-{method}-eps{eps_pi:g}-s{seed}"
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise InvalidArgumentError(f"--out {run_dir} exists and is not an empty directory; pick another")
    if not run_dir.parent.is_dir() and out is not None:
        raise InvalidArgumentError(f"--out {run_dir}: folder {run_dir.parent} does not exist")
    require_open_spiel()
    from robustrl.experiments.run import train
    from robustrl.games.learner import GamesLearner

    learner = GamesLearner({
        "game": "kuhn_poker", "victim_seat": victim_seat, "method": method, "eps_pi": eps_pi,
        "iterations": iterations, "eta_nu": eta_nu, "ratio": ratio, "seed": seed,
        "checkpoint_every": max(iterations // 4, 1),
    })  # fmt: skip
    curve = [learner.trainer.exploitability()]
    learner.add_iteration_callback(lambda stats: curve.append(stats.metrics["exploitability"]))
    result = train(learner=learner, out=run_dir)
    minimum = -learner.game.robust_value()[0]
    summary = {
        "method": method,
        "eps_pi": eps_pi,
        "seed": seed,
        "victim_seat": victim_seat,
        "convention": "one-sided Expl(nu) = -min_alpha V(nu, (1-eps_pi) uniform + eps_pi alpha); OpenSpiel nash_conv = Expl(seat 0) + Expl(seat 1) at eps_pi = 1",
        "min_exploitability": minimum,
        "exploitability": curve,
        "final_exploitability": curve[-1],
        "mean_exploitability": sum(curve[1:]) / max(len(curve) - 1, 1),
        "final_victim": learner.trainer.nu.tolist(),
        "interrupted": result.interrupted,
    }
    (run_dir / "exploitability.json").write_text(json.dumps(summary, indent=1))
    from robustrl.report.games import plot_training_curves

    steps = list(range(len(curve)))
    plot_training_curves({method: [{"steps": steps, "exploitability": curve}]}, run_dir / "exploitability.png",
                         minimum=minimum, title=f"Kuhn Poker, eps_pi = {eps_pi:g}, seed {seed}")  # fmt: skip
    console.print(
        f"{method} eps_pi={eps_pi:g}: exploitability {curve[0]:.4f} -> {curve[-1]:.4f} "
        f"(mean over iterations {summary['mean_exploitability']:.4f}; min possible {minimum:.4f}); run -> {run_dir}"
    )
