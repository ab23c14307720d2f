"""Measurements of robustrl.games next to the paper's Figures 5 and 2 (issue 14).

RPS (Appendix C, Figure 5): the five learners, several random starts, exploitability after N
iterations. Kuhn Poker (Section 7, Figure 2; Figure 4c and Table E.4 in spirit): the victim
(seat 0) trained by min-oracle, two-timescale, single, self-play and fictitious play against
(1 - eps_pi) uniform + eps_pi attacker, exact gradients under direct parameterisation, seeds =
random initial policies; a timescale-ratio sweep; final victims attacked at every eps_pi.

    nice -n 19 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/games_measure.py
writes benchmarks/results/games_{rps,kuhn}.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np

from robustrl.games.kuhn import KuhnGame
from robustrl.games.matrix import LEARNERS, MatrixGame, run_learner
from robustrl.games.training import METHODS, train_curve
from robustrl.report.games import plot_matrix_curves, plot_training_curves

RESULTS = Path(__file__).parent / "results"


def rps(iterations: int, step_size: float, seeds: list[int]) -> dict:
    game = MatrixGame.named("rps")
    runs = {name: [run_learner(game, name, iterations, step_size, s) for s in seeds] for name in LEARNERS}
    first = {"game": "rps", "eps_pi": 1.0, "robust_value": 0.0, "methods": {n: r[0] for n, r in runs.items()}}
    plot_matrix_curves(first, RESULTS / "games_rps.png")
    table = {
        name: {
            "final": [r["final_exploitability"] for r in results],
            "last_10pct_max": [max(r["exploitability"][-iterations // 10 :]) for r in results],
        }
        for name, results in runs.items()
    }
    return {"iterations": iterations, "step_size": step_size, "seeds": seeds, "table": table,
            "curves_seed0": {n: r[0]["exploitability"] for n, r in runs.items()}}  # fmt: skip


def first_within(steps: list[int], curve: list[float], target: float, tolerance: float) -> int | None:
    """The first evaluated iteration from which the curve stays within tolerance of target."""
    gaps = np.asarray(curve) - target
    outside = np.nonzero(gaps > tolerance)[0]
    if len(outside) == 0:
        return steps[0]
    if outside[-1] == len(curve) - 1:
        return None
    return steps[outside[-1] + 1]


def kuhn(iterations: int, eta_nu: float, ratio: float, seeds: list[int], eps_values: list[float], ratios: list[float],
         eval_every: int) -> dict:  # fmt: skip
    out: dict = {"iterations": iterations, "eta_nu": eta_nu, "ratio": ratio, "seeds": seeds, "eval_every": eval_every,
                 "per_eps": {}, "ratio_sweep": {}, "cross_eval": {}}  # fmt: skip
    games = {eps: KuhnGame(eps) for eps in eps_values}
    minimum = {eps: -games[eps].robust_value()[0] for eps in eps_values}
    finals: dict = {}
    for eps in eps_values:
        runs = {}
        for method in METHODS:
            runs[method] = [
                train_curve(games[eps], method, iterations, eta_nu=eta_nu, ratio=ratio, seed=s, eval_every=eval_every)
                for s in seeds
            ]
            finals[(eps, method)] = [np.asarray(r["final_victim"]) for r in runs[method]]
        plot_training_curves(runs, RESULTS / f"games_kuhn_eps{eps:g}.png", minimum=minimum[eps],
                             title=f"Kuhn Poker, victim seat 0, eps_pi = {eps:g} ({len(seeds)} seeds)")  # fmt: skip
        summary = {}
        for method, results in runs.items():
            tail = max(len(results[0]["exploitability"]) // 5, 2)
            summary[method] = {
                "final": [r["final_exploitability"] for r in results],
                "mean_over_iterations": [r["mean_exploitability"] for r in results],
                "output_rule_draw": [r["output_exploitability"] for r in results],
                "tail_range": [float(np.ptp(r["exploitability"][-tail:])) for r in results],
                "iterations_to_within_0.01": [
                    first_within(r["steps"], r["exploitability"], minimum[eps], 0.01) for r in results
                ],
                "score_tail_std": [float(np.std(r["score"][-iterations // 5 :])) for r in results],
                "gradient_norm_tail_mean": [float(np.mean(r["gradient_norm"][-iterations // 5 :])) for r in results],
                "steps": results[0]["steps"],
                "curves": [r["exploitability"] for r in results],
            }
        out["per_eps"][str(eps)] = {"min_exploitability": minimum[eps], "methods": summary}
    for eps in eps_values:
        if eps == 0.3:
            continue
        sweep = {}
        for r in ratios:
            results = [train_curve(games[eps], "two-timescale", iterations, eta_nu=eta_nu, ratio=r, seed=s,
                                   eval_every=eval_every) for s in seeds]  # fmt: skip
            sweep[str(r)] = {
                "final": [x["final_exploitability"] for x in results],
                "mean_over_iterations": [x["mean_exploitability"] for x in results],
            }
        out["ratio_sweep"][str(eps)] = sweep
    for (eps_train, method), victims in finals.items():
        for eps_test in eps_values:
            key = f"{method}|train {eps_train:g}|test {eps_test:g}"
            values = [games[eps_test].exploitability(v) for v in victims]
            out["cross_eval"][key] = values
    out["uniform_victim"] = {str(eps): games[eps].exploitability(games[eps].victim_mask / 2) for eps in eps_values}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--rps-iterations", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    rps_result = rps(args.rps_iterations, 0.01, seeds)
    rps_result["seconds"] = time.perf_counter() - start
    meta = {"date": str(date.today()), "machine": f"{platform.machine()}, {platform.platform()}"}
    (RESULTS / "games_rps.json").write_text(json.dumps({**meta, **rps_result}))
    start = time.perf_counter()
    kuhn_result = kuhn(args.iterations, 0.1, 20.0, seeds, [0.3, 0.7, 1.0], [1.0, 2.0, 5.0, 20.0, 100.0, 1000.0], 10)
    kuhn_result["seconds"] = time.perf_counter() - start
    (RESULTS / "games_kuhn.json").write_text(json.dumps({**meta, **kuhn_result}))
    print(f"rps {rps_result['seconds']:.0f}s, kuhn {kuhn_result['seconds']:.0f}s")


if __name__ == "__main__":
    main()
