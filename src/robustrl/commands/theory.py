"""``robustrl theory ...``: the exact theory lab (tabular ISA-MDPs) on the command line.

Thin: parse, check every output path and input file before any work, call :mod:`robustrl.theory`,
print with rich, write JSON / PNG / SVG last. Bad input raises InvalidArgumentError, which
``robustrl``'s entry point prints as ``error: ...`` with exit code 2 (nothing is written).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from robustrl.errors import InvalidArgumentError

theory_app = typer.Typer(
    no_args_is_help=True,
    help="Exact theory lab: tabular ISA-MDPs, the BARPO toy example, basins and landscapes.",
)
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)

_OBJECTIVE_HELP = "spo, arpo or barpo."


def _check_output(path: Path | None, option: str, suffixes: tuple[str, ...]) -> None:
    if path is None:
        return
    if path.suffix.lower() not in suffixes:
        raise InvalidArgumentError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise InvalidArgumentError(f"{option} {path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise InvalidArgumentError(f"{option} {path}: the folder {path.parent} does not exist")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")
    console.print(f"wrote {path}")


def _load_mdp(path: Path | None) -> Any:
    from robustrl.theory import TabularISAMDP, toy_isa_mdp

    return toy_isa_mdp() if path is None else TabularISAMDP.load(path)


def _load_policy(path: Path, mdp: Any) -> np.ndarray:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InvalidArgumentError(f"{path} is not valid JSON: {error}") from None
    if isinstance(data, dict):
        if set(data) != {"policy"}:
            raise InvalidArgumentError(f'{path}: a policy file is a list of rows pi[s][a] or {{"policy": [...]}}')
        data = data["policy"]
    try:
        return mdp.check_policy(data)
    except InvalidArgumentError as error:
        raise InvalidArgumentError(f"{path}: {error}") from None


def _pair(text: str, option: str) -> tuple[int, int]:
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise InvalidArgumentError(f"{option} takes two action indices like 0,1; got {text!r}")
    return int(parts[0]), int(parts[1])


def _objective(name: str) -> str:
    from robustrl.theory.gradients import check_objective

    return check_objective(name)


def _plane(
    mdp_path: Path | None, base: Path | None, alpha_state: int, beta_state: int, alpha_actions: str, beta_actions: str
) -> tuple[Any, dict | None]:
    from robustrl.theory import TOY_NAMES, PolicySlice

    mdp = _load_mdp(mdp_path)
    base_policy = None if base is None else _load_policy(base, mdp)
    plane = PolicySlice.build(
        mdp,
        base_policy,
        alpha_state,
        beta_state,
        _pair(alpha_actions, "--alpha-actions"),
        _pair(beta_actions, "--beta-actions"),
    )
    return plane, (TOY_NAMES if mdp_path is None else None)


_MDP_OPTION = typer.Option(None, "--mdp", help="ISA-MDP JSON (default: the BARPO paper's Appendix D toy).")
_BASE_OPTION = typer.Option(None, "--base", help="Policy JSON for the rows outside the slice (default uniform).")
_ALPHA_STATE = typer.Option(0, "--alpha-state", help="State whose row alpha sets.")
_BETA_STATE = typer.Option(1, "--beta-state", help="State whose row beta sets.")
_ALPHA_ACTIONS = typer.Option(
    "0,1", "--alpha-actions", help="pi(a|s_alpha) = alpha on the first, 1 - alpha on the second."
)
_BETA_ACTIONS = typer.Option("0,1", "--beta-actions", help="Likewise for beta.")


@theory_app.command("toy")
def toy(json_file: Path | None = typer.Option(None, "--json", help="Write the numbers here.")) -> None:
    """Appendix D's toy ISA-MDP: the values of equation (32), the threshold beta~ of (33), the
    robust region and Proposition 3.1, next to the numbers the paper prints."""
    from robustrl.theory import PAPER, toy_summary

    _check_output(json_file, "--json", (".json",))
    summary = toy_summary()
    table = Table(title="Appendix D toy: deterministic policies pi_{alpha,beta} (equation 32)")
    for column in ("policy", "V(s1), V(s2)", "paper (32)", "V(mu0)", "V^(pi o nu*)(s1), (s2)", "nu*", "robust"):
        table.add_column(column)
    for name, entry in summary["policies"].items():
        table.add_row(
            name,
            f"{entry['value'][0]:.4f}, {entry['value'][1]:.4f}",
            ", ".join(f"{v:.2f}" for v in PAPER["values"][name]),
            f"{entry['value_mu0']:.4f}",
            f"{entry['adversarial_value'][0]:.4f}, {entry['adversarial_value'][1]:.4f}",
            str(entry["strongest_adversary"]),
            "yes" if entry["robust"] else "no",
        )
    console.print(table)
    threshold = summary["threshold"]
    console.print(f"beta~ (33): s1 {threshold['s1']:.6f}, s2 {threshold['s2']:.6f} (paper ~{threshold['paper']})")
    console.print(f"robust region: {summary['robust_region']}; cut point (beta~, beta~)")
    console.print(f"optimal policy = optimal robust policy: {summary['optimal_robust_policy']} (pi_11)")
    prop = summary["proposition_3_1"]
    console.print(
        f"Proposition 3.1: V^(pi_S)(mu0) = {prop['spo_fosp']['value']:.4f} (paper {PAPER['value_spo_fosp']}), "
        f"V^(pi_A)(mu0) = {prop['arpo_fosp']['value']:.4f} ({PAPER['value_arpo_fosp']}), "
        f"V^-(mu0) = {prop['worst_value']:.4f} ({PAPER['worst_value']}); "
        f"{prop['gap_arpo']:.4f} < {prop['half_gap_spo']:.4f}: {'holds' if prop['holds'] else 'FAILS'}"
    )
    stationary = prop["stationary_at"]
    console.print(
        "FOSP at (0, 0): "
        + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in stationary["(0, 0)"].items())
        + "; at (1, 1): "
        + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in stationary["(1, 1)"].items())
    )
    if json_file is not None:
        _write_json(json_file, summary)


@theory_app.command("basins")
def basins_command(
    objective: str = typer.Option("arpo", "--objective", help=_OBJECTIVE_HELP),
    grid: int = typer.Option(20, "--grid", help="N: starts at the N x N cell centres of [0, 1]^2."),
    lr: float = typer.Option(0.01, "--lr", help="Step size of projected gradient ascent in (alpha, beta)."),
    steps: int = typer.Option(1000, "--steps", help="Gradient steps from each start."),
    json_file: Path | None = typer.Option(
        None, "--json", help="Write settings, fractions, classes and every start here."
    ),
    mdp_path: Path | None = _MDP_OPTION,
    base: Path | None = _BASE_OPTION,
    alpha_state: int = _ALPHA_STATE,
    beta_state: int = _BETA_STATE,
    alpha_actions: str = _ALPHA_ACTIONS,
    beta_actions: str = _BETA_ACTIONS,
) -> None:
    """Projected gradient ascent from an N x N grid of (alpha, beta) and where each start ends:
    which first-order stationary policy, its value, robust or not (Proposition 3.1, Figure 3)."""
    from robustrl.theory import basins

    _check_output(json_file, "--json", (".json",))
    objective = _objective(objective)
    plane, names = _plane(mdp_path, base, alpha_state, beta_state, alpha_actions, beta_actions)
    result = basins(plane, objective, grid, lr, steps, names=names)
    result.settings["mdp"] = str(mdp_path) if mdp_path else "toy (Appendix D)"
    table = Table(title=f"{objective.upper()}: {grid}x{grid} starts, lr {lr:g}, {steps} steps")
    for column in ("ends at", "fraction", "hovering", "V(mu0)", "V^(pi o nu*)(mu0)", "robust"):
        table.add_column(column)
    for label, fraction in result.fractions.items():
        entry = result.classes.get(label)
        if entry is None:
            table.add_row(label, f"{fraction:.3f}", "", "", "", "")
        else:
            table.add_row(
                label,
                f"{fraction:.3f}",
                str(entry["hovering"]),
                f"{entry['value']:.4f}",
                f"{entry['adversarial_value']:.4f}",
                "yes" if entry["robust"] else "no",
            )
    console.print(table)
    if json_file is not None:
        _write_json(json_file, result.to_dict())


@theory_app.command("landscape")
def landscape(
    out: Path = typer.Option(..., "--out", help="Figure file (.png or .svg)."),
    objective: list[str] = typer.Option(
        ["spo", "arpo", "barpo"], "--objective", help="Repeat for several panels: " + _OBJECTIVE_HELP
    ),
    resolution: int = typer.Option(101, "--resolution", help="Grid points per axis."),
    paths: int = typer.Option(
        4, "--paths", help="Draw gradient-ascent paths from a paths x paths grid of starts (0: none)."
    ),
    lr: float = typer.Option(0.05, "--lr", help="Step size of the drawn paths."),
    steps: int = typer.Option(400, "--steps", help="Steps of the drawn paths."),
    mdp_path: Path | None = _MDP_OPTION,
    base: Path | None = _BASE_OPTION,
    alpha_state: int = _ALPHA_STATE,
    beta_state: int = _BETA_STATE,
    alpha_actions: str = _ALPHA_ACTIONS,
    beta_actions: str = _BETA_ACTIONS,
) -> None:
    """The value landscape over (alpha, beta) for each objective, with the robust region, the
    FOSPs and gradient-ascent paths (Figures 1, 3, 4 in spirit); any two-parameter slice of an
    ISA-MDP from JSON."""
    from robustrl.report.theory import landscape_figure
    from robustrl.theory import basins
    from robustrl.theory.landscape import grid_starts

    _check_output(out, "--out", (".png", ".svg"))
    objectives = [_objective(name) for name in objective]
    plane, names = _plane(mdp_path, base, alpha_state, beta_state, alpha_actions, beta_actions)
    if isinstance(paths, bool) or paths < 0:
        raise InvalidArgumentError(f"--paths must be >= 0, got {paths}")
    fosps = {}
    for name in objectives:
        found = basins(plane, name, 8, lr, steps, names=names).classes
        fosps[name] = np.array([[entry["alpha"], entry["beta"]] for entry in found.values()])
    starts = grid_starts(paths) if paths else None
    drawn = landscape_figure(
        plane,
        objectives,
        out,
        resolution=resolution,
        paths_from=starts,
        lr=lr,
        steps=steps,
        fosps=fosps,
        labels=(
            f"alpha = pi(a{plane.alpha_actions[0]}|s{plane.alpha_state})",
            f"beta = pi(a{plane.beta_actions[0]}|s{plane.beta_state})",
        ),
    )
    for name in objectives:
        points = drawn["objectives"][name].get("fosps", [])
        console.print(f"{name}: FOSPs at " + ", ".join(f"({a:.2f}, {b:.2f})" for a, b in points))
    console.print(f"wrote {out}")


@theory_app.command("solve")
def solve(
    mdp_path: Path = typer.Argument(
        ..., help="ISA-MDP JSON (keys rewards, transitions, gamma, perturbation_sets, initial_distribution)."
    ),
    policy: Path | None = typer.Option(None, "--policy", help="Policy JSON pi[s][a] (default: the optimal policy)."),
    json_file: Path | None = typer.Option(None, "--json", help="Write the results here."),
) -> None:
    """V^pi, the strongest adversary nu*(pi) and V^(pi o nu*) for a policy on an ISA-MDP, with
    V*, the optimal policy and the optimal robust policy (when one exists)."""
    from robustrl.theory import TabularISAMDP

    _check_output(json_file, "--json", (".json",))
    mdp = TabularISAMDP.load(mdp_path)
    pi = mdp.optimal_policy() if policy is None else _load_policy(policy, mdp)
    natural, nu = mdp.value(pi), mdp.strongest_adversary(pi)
    adversarial = mdp.adversarial_value(pi)
    robust_policy = mdp.optimal_robust_policy()
    result = {
        "policy": pi.tolist(),
        "value": natural.tolist(),
        "strongest_adversary": nu.tolist(),
        "adversarial_value": adversarial.tolist(),
        "value_mu0": mdp.expected(natural),
        "adversarial_value_mu0": mdp.expected(adversarial),
        "robust": mdp.is_robust(pi),
        "optimal_value": mdp.optimal_value().tolist(),
        "optimal_policy": mdp.optimal_policy().tolist(),
        "optimal_robust_policy": None if robust_policy is None else robust_policy.tolist(),
    }
    table = Table(title=f"{mdp!r}; policy: {policy or 'optimal'}")
    for column in ("s", "B(s)", "V^pi", "nu*(s)", "V^(pi o nu*)", "V*"):
        table.add_column(column)
    for s in range(mdp.num_states):
        table.add_row(
            str(s),
            str(list(mdp.perturbation_sets.admissible[s])),
            f"{natural[s]:.6f}",
            str(int(nu[s])),
            f"{adversarial[s]:.6f}",
            f"{result['optimal_value'][s]:.6f}",
        )
    console.print(table)
    console.print(
        f"V^pi(mu0) {result['value_mu0']:.6f}, V^(pi o nu*)(mu0) {result['adversarial_value_mu0']:.6f}, "
        f"robust: {'yes' if result['robust'] else 'no'}; optimal robust policy: "
        f"{'none (B(s) changes optimal actions)' if robust_policy is None else robust_policy.argmax(1).tolist()}"
    )
    if json_file is not None:
        _write_json(json_file, result)


@theory_app.command("random")
def random_command(
    out: Path = typer.Option(..., "--out", help="Write the ISA-MDP JSON here."),
    states: int = typer.Option(4, "--states"),
    actions: int = typer.Option(2, "--actions"),
    seed: int = typer.Option(0, "--seed"),
    gamma: float = typer.Option(0.9, "--gamma"),
    perturbation_size: int = typer.Option(2, "--perturbation-size", help="|B(s)|, the state itself included."),
) -> None:
    """A seeded random ISA-MDP (rewards uniform on [-1, 1], Dirichlet transitions)."""
    from robustrl.theory import random_isa_mdp

    _check_output(out, "--out", (".json",))
    mdp = random_isa_mdp(states, actions, seed=seed, gamma=gamma, perturbation_size=perturbation_size)
    mdp.save(out)
    console.print(f"wrote {out}: {mdp!r}")
