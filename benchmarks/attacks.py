"""Strength and cost of the six attacks on PPO Hopper agents, next to the BARPO paper's Table 2.

    python benchmarks/attacks.py [--runs benchmarks/runs/ppo-Hopper-v5-s0-1000000 ...]
                                 [--eps 0.075] [--episodes 50] [--budget 1e6] [--rs-iterations 30]

For each run: natural return and the return under random, critic, MAD, RS, SA-RL and PA-AD
(deterministic episodes, eps in the policy's normalised observation space), the worst attack and
the worst-case robustness; the cost of each attack: evaluation env-steps/s relative to clean
evaluation in the same process, and the training time of RS, SA-RL and PA-AD. Reports are
resumable (``<run>/eval-eps<e>.json``; fitted attacks cached in ``<run>/attacks/``). Writes
benchmarks/results/attacks.md and attacks.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import torch

from robustrl.attacks import ALL
from robustrl.evaluate.robustness import robustness_report
from robustrl.experiments.run import load_policy
from robustrl.report.table import robustness_markdown

ROOT = Path(__file__).resolve().parent
REFERENCE = ROOT.parent.parent / "shared" / "reference" / "barpo_tables.json"
KEYS = {"random": "random", "critic": "critic", "mad": "mad", "rs": "rs", "sa-rl": "sa_rl", "pa-ad": "pa_ad"}


def parse_count(text: str) -> int:
    return int(float(text))


def published_ppo_row(family: str) -> str | None:
    if not REFERENCE.is_file():
        return None
    entry = json.loads(REFERENCE.read_text())["table2_baselines_vs_bar_ppo"].get(family.lower())
    if not entry:
        return None
    ppo = entry["methods"]["PPO"]
    cells = [f"{ppo['natural']['mean']:.0f} ± {ppo['natural']['std']:.0f}"]
    cells += [f"{ppo[KEYS[a]]['mean']:.0f} ± {ppo[KEYS[a]]['std']:.0f}" for a in ALL]
    cells += [f"{ppo['worst']['mean']:.0f}", f"{ppo['worst_case_robustness']:+.1%}"]
    return "| published PPO (BARPO Table 2, median of 17 seeds, 2M steps, v2 tasks) | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=[str(ROOT / "runs" / "ppo-Hopper-v5-s0-1000000")])
    parser.add_argument("--eps", type=float, default=0.075)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--budget", type=parse_count, default=1_000_000, help="env steps for SA-RL and PA-AD each")
    parser.add_argument("--rs-iterations", type=int, default=30)
    parser.add_argument("--attacks", default=",".join(ALL))
    parser.add_argument("--out", default=str(ROOT / "results" / "attacks"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    attacks = args.attacks.split(",")
    reports, labels, wall = [], [], {}
    for run in args.runs:
        policy = load_policy(run)
        start = time.perf_counter()

        def progress(stage: str, name: str, done: int, total: int, run: str = run) -> None:
            if stage == "fit" and (done == total or done % max(1, total // 10) < 2048):
                print(f"[{Path(run).name}] {name} fit {done}/{total}", flush=True)

        report = robustness_report(
            policy, policy.env_id, attacks=attacks, eps=args.eps, episodes=args.episodes, source=run,
            json_path=Path(run) / f"eval-eps{args.eps:g}.json", budgets={"sa-rl": args.budget, "pa-ad": args.budget},
            attack_options={"rs": {"iterations": args.rs_iterations}}, progress=progress,
        )
        wall[run] = time.perf_counter() - start
        reports.append(report)
        labels.append(Path(run).name)
        print(robustness_markdown([report], [Path(run).name]), flush=True)

    lines = [
        f"# Attack strength and cost ({date.today()}, {platform.machine()}, {torch.get_num_threads()} torch thread)",
        "",
        f"Machine: 2-core sandbox, no GPU. Victims: PPO Hopper-v5 agents of benchmarks/ppo_reference.py (1M steps). "
        f"Budgets: SA-RL and PA-AD {args.budget} env steps each (one PPO config, no grid), RS {args.rs_iterations} x 2048 "
        f"steps (sarsa_eps 0.02, sarsa_reg 0.1); {args.episodes} deterministic episodes per column, eval seeds 10000+.",
        "",
        robustness_markdown(reports, labels).rstrip(),
    ]
    published = published_ppo_row("Hopper") if reports and reports[0]["env_id"].startswith("Hopper") else None
    if published:
        lines.append(published)
    lines += ["", "## Cost", "", "| run | attack | eval env-steps/s | relative to clean | fit seconds |", "|---|---|---:|---:|---:|"]
    for label, report in zip(labels, reports):
        clean = report["results"]["natural"]["steps_per_second"]
        for name, result in report["results"].items():
            fit = result.get("fit_seconds")
            fit_text = "-" if fit is None or not result.get("fit_seconds") else f"{fit:.0f}"
            if result.get("loaded_fitted_attack"):
                fit_text = "cached"
            lines.append(f"| {label} | {name} | {result['steps_per_second']:.0f} | {result['steps_per_second'] / clean:.2f}x | {fit_text} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"reports": reports, "labels": labels, "wall_seconds": wall}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
