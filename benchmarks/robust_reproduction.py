"""Reproduce the BARPO paper's comparison (Tables 2 and 4) on Hopper-v5 at eps 0.075.

    python benchmarks/robust_reproduction.py [--env Hopper-v5] [--steps 1e6] [--seeds 0 1 2]
        [--methods ppo bar-ppo bar-ppo-nog ar-ppo ar-ppo-nog sa-ppo] [--kappa 0.3] [--num-envs 8]
        [--episodes 20] [--expensive | --expensive-every] [--attack-budget 1e6]

A thin wrapper over the study runner (`robustrl study run`; see studies/barpo_hopper.yaml for the
same study as a spec): the options become a spec in benchmarks/runs/studies/, whose runs (named by
their config hash; resumable: re-run the same command) are evaluated with the cheap attacks
(random, critic, MAD, RS), with --expensive SA-RL and PA-AD on each method's median agent (BARPO
App. F.3), with --expensive-every on every agent. Writes
benchmarks/results/robust_reproduction.md (+ .json) side by side with the paper's tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date
from pathlib import Path

import torch
import yaml

from robustrl.attacks import ALL
from robustrl.config import default_eps
from robustrl.evaluate.reports import split_attacks
from robustrl.evaluate.robustness import median_agent
from robustrl.experiments.study import Study, run_study
from robustrl.report.paper import default_reference, load_reference, paper_entries, paper_method
from robustrl.report.plots import plot_method_comparison

ROOT = Path(__file__).resolve().parent
REFERENCE = default_reference()
# the papers' six attacks; the learned-adversary ones (SA-RL, PA-AD) are the expensive ones
CHEAP, EXPENSIVE = (list(names) for names in split_attacks(ALL))
# method label -> (algo, guidance); labels follow the paper (Table 4 names in brackets)
METHODS = {
    "ppo": ("ppo", True),  # SPO
    "ar-ppo-nog": ("ar-ppo", False),  # ARPO
    "ar-ppo": ("ar-ppo", True),  # ARPO w/ g
    "bar-ppo-nog": ("bar-ppo", False),  # BARPO w/o g
    "bar-ppo": ("bar-ppo", True),  # BARPO
    "sa-ppo": ("sa-ppo", True),  # SA-PPO baseline
}
PAPER_NAMES = {"ppo": "SPO / PPO", "ar-ppo-nog": "ARPO", "ar-ppo": "ARPO w/ g", "bar-ppo-nog": "BARPO w/o g", "bar-ppo": "BARPO", "sa-ppo": "SA-PPO"}


# the table's columns, in order (the paper's sa_rl / pa_ad read as ours: robustrl.report.paper)
COLUMNS = ("natural", "random", "critic", "mad", "rs", "sa-rl", "pa-ad")


def paper_rows(env_family: str) -> list[str]:
    """The paper's Tables 4, 3 and 2 for this task, in our column order."""
    entries = list(paper_entries(load_reference(REFERENCE), env_family))
    rows = []
    for number in ("Table 4", "Table 3", "Table 2"):
        for _, name, cells in (e for e in entries if e[0] == number):
            values = " | ".join(f"{cells[k]:.0f}" if k in cells else "-" for k in (*COLUMNS, "worst"))
            rows.append(f"| paper {number}: {name} | {values} |")
    return rows


def paper_natural_and_worst(env_family: str) -> dict[str, tuple[float, float]]:
    """(natural, worst) of the paper's median agents, keyed by our method labels (PAPER_NAMES)."""
    ours = {"SPO": "ppo", "ARPO": "ar-ppo-nog", "ARPO (w g)": "ar-ppo", "BARPO (w/o g)": "bar-ppo-nog", "BARPO": "bar-ppo", "SA": "sa-ppo"}
    found = {}
    for _, name, cells in paper_entries(load_reference(REFERENCE), env_family):
        if name in ours and "worst" in cells:
            found.setdefault(PAPER_NAMES[ours[name]], (cells["natural"], cells["worst"]))
    return found


ATTACK_HEADER = "| natural | random | critic | MAD | RS | SA-RL | PA-AD | worst |"


def attack_cells(results: dict, worst: float) -> str:
    cells = " | ".join(f"{results[k]['mean']:.0f}" if k in results else "-" for k in COLUMNS)
    return f"{cells} | {worst:.0f}"


def agent_table(reports: dict[str, dict[int, dict]]) -> list[str]:
    """Every agent, every attack: the per-seed rows behind the median-agent table."""
    lines = ["## Every agent, every attack", "", f"| method | seed {ATTACK_HEADER} worst attack | worst-case robustness |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for method, by_seed in reports.items():
        for seed, report in sorted(by_seed.items()):
            lines.append(
                f"| {PAPER_NAMES[method]} | {seed} | {attack_cells(report['results'], report['worst']['mean'])} | "
                f"{report['worst']['attack']} | {report['worst_case_robustness']:+.1%} |"
            )
    return lines


def summary_table(reports: dict[str, dict[int, dict]]) -> list[str]:
    """Mean and median over seeds of every column (the paper reports the median agent of 17)."""
    lines = ["## Mean and median over seeds", "", f"| method | statistic | seeds {ATTACK_HEADER}",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for method, by_seed in reports.items():
        if not by_seed:
            continue
        for name, reduce in (("mean", statistics.mean), ("median", statistics.median)):
            results = {
                key: {"mean": reduce(r["results"][key]["mean"] for r in by_seed.values())}
                for key in by_seed[min(by_seed)]["results"]
                if all(key in r["results"] for r in by_seed.values())
            }
            worst = reduce(r["worst"]["mean"] for r in by_seed.values())
            lines.append(f"| {PAPER_NAMES[method]} | {name} | {len(by_seed)} | {attack_cells(results, worst)} |")
    return lines


def claims(reports: dict[str, dict[int, dict]], env_family: str) -> list[str]:
    """The paper's claims (BARPO Sec. 6, Tables 2 and 4), checked on the mean over seeds."""

    def mean_of(method: str, key: str) -> float | None:
        by_seed = reports.get(method) or {}
        if not by_seed:
            return None
        if key == "worst":
            return statistics.mean(r["worst"]["mean"] for r in by_seed.values())
        return statistics.mean(r["results"][key]["mean"] for r in by_seed.values())

    lines = ["## The paper's claims, on the mean over seeds (computed)", ""]
    for better, worse in (("bar-ppo-nog", "ar-ppo-nog"), ("bar-ppo", "ar-ppo"), ("bar-ppo", "ar-ppo-nog")):
        for key in ("natural", "worst"):
            a, b = mean_of(better, key), mean_of(worse, key)
            if a is None or b is None:
                continue
            verdict = "holds" if a > b else "does not hold"
            lines.append(f"- {PAPER_NAMES[better]} beats {PAPER_NAMES[worse]} on {key} return: {a:.0f} vs {b:.0f}: {verdict}.")
    natural_bar, natural_ppo = mean_of("bar-ppo", "natural"), mean_of("ppo", "natural")
    worst_bar, worst_ppo = mean_of("bar-ppo", "worst"), mean_of("ppo", "worst")
    if None not in (natural_bar, natural_ppo, worst_bar, worst_ppo):
        lines.append(f"- BAR-PPO keeps PPO's natural return: {natural_bar:.0f} vs {natural_ppo:.0f} ({natural_bar / natural_ppo - 1:+.0%}).")
        paper = ""
        reference = load_reference(REFERENCE)
        bar, ppo = (paper_method(reference, env_family, m) for m in ("BAR", "PPO"))
        if bar and ppo:
            paper = f"; paper {bar['worst']:.0f} vs {ppo['worst']:.0f} = {bar['worst'] / ppo['worst']:.0f}x"
        lines.append(f"- BAR-PPO's worst case against PPO's: {worst_bar:.0f} vs {worst_ppo:.0f} ({worst_bar / max(worst_ppo, 1e-9):.1f}x{paper}).")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--steps", type=lambda t: int(float(t)), default=1_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--kappa", type=float, default=0.3)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--expensive", action="store_true", help="SA-RL and PA-AD on each method's median agent")
    parser.add_argument(
        "--expensive-every", action="store_true", help="SA-RL and PA-AD on every agent (after all training)"
    )
    parser.add_argument("--attack-budget", type=lambda t: int(float(t)), default=1_000_000)
    parser.add_argument(
        "--compile", action="store_true", help="ppo.compile for new runs (PPO, AR-PPO, BAR-PPO: ~2.5x faster update)"
    )
    parser.add_argument("--report-only", action="store_true", help="no training: tabulate the finished runs")
    parser.add_argument("--workers", type=int, default=1, help="parallel runs (the study runner's local pool)")
    parser.add_argument("--out", default=str(ROOT / "results" / "robust_reproduction"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    eps = default_eps(args.env)
    # A thin wrapper over the study runner (robustrl.experiments.study): the spec below is what
    # this script's options mean; runs are named by their config hash under benchmarks/runs/studies/.
    methods = {}
    for method in args.methods:
        algo, guidance = METHODS[method]
        methods[method] = {"algo": algo} if algo == "ppo" else {"algo": algo, "kappa": args.kappa, "guidance": guidance}
    expensive = args.expensive or args.expensive_every
    spec = {
        "name": f"repro-{args.env}-{args.steps}", "methods": methods, "envs": [args.env], "seeds": args.seeds,
        "steps": args.steps, "num_envs": args.num_envs, "set": {"compile": bool(args.compile)},
        "evaluation": {
            "attacks": CHEAP + (EXPENSIVE if expensive else []), "eps": eps, "episodes": args.episodes,
            "budgets": dict.fromkeys(EXPENSIVE, args.attack_budget) if expensive else {}, "median": bool(args.expensive and not args.expensive_every),
        },
    }  # fmt: skip
    spec_path = ROOT / "runs" / "studies" / f"{spec['name']}.yaml"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(yaml.safe_dump(spec))
    directory = spec_path.with_suffix("")
    start = time.perf_counter()
    if args.report_only:
        study = Study.open(directory, spec_path)
    else:
        study = run_study(spec_path, directory, workers=args.workers)
    train_seconds = {"study": round(time.perf_counter() - start, 1)}
    reports: dict[str, dict[int, dict]] = {m: {} for m in args.methods}
    for run in study.spec.runs:
        report = study.report(run)
        if report is not None:
            reports[run.label][run.config.seed] = report
            print(f"{run.label} s{run.config.seed}: natural {report['results']['natural']['mean']:.0f}, worst {report['worst']['mean']:.0f} ({report['worst']['attack']})", flush=True)

    medians: dict[str, tuple[int, dict]] = {}
    for method, by_seed in reports.items():
        if not by_seed:
            continue
        seeds = sorted(by_seed)
        index = median_agent([by_seed[s] for s in seeds])
        seed = seeds[index]
        report = by_seed[seed]
        medians[method] = (seed, report)

    family = args.env.split("-v")[0]
    lines = [
        f"# Robust training reproduction, {args.env}, eps {eps} ({date.today()})",
        "",
        f"Budget (what this 2-core machine allowed): {args.steps:.0e} env steps per run (paper: 2M), "
        f"{args.num_envs} envs per 2048-step batch, seeds {args.seeds} (paper: 17, median agent), kappa {args.kappa} "
        f"for all robust methods (paper grid {{0.1, 0.3, 1.0}}), eps schedule 0 -> {eps} over the first 75% of "
        f"iterations, {args.episodes} deterministic episodes per attack. Worst = min over the attacks evaluated"
        + (" (random, critic, MAD, RS, SA-RL, PA-AD)." if args.expensive or args.expensive_every else " (random, critic, MAD, RS; no SA-RL/PA-AD in this run)."),
        "",
        "## Median agent per method (ours) next to the paper",
        "",
        "| method (seed) | natural | random | critic | MAD | RS | SA-RL | PA-AD | worst |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, (seed, report) in medians.items():
        lines.append(f"| ours: {PAPER_NAMES[method]} (s{seed}) | {attack_cells(report['results'], report['worst']['mean'])} |")
    lines += paper_rows(family)
    lines += ["", *agent_table(reports), "", *summary_table(reports), "", *claims(reports, family)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    markdown = out.with_suffix(".md")
    # a hand-written "## Reading" section of an earlier report survives the rewrite
    reading = markdown.read_text().partition("\n## Reading")[2] if markdown.is_file() else ""
    markdown.write_text("\n".join(lines) + "\n" + ("\n## Reading" + reading if reading else ""))
    if any(reports.values()):
        plot_method_comparison(
            {PAPER_NAMES[m]: [r for _, r in sorted(v.items())] for m, v in reports.items()}, out.with_suffix(".png"),
            paper=paper_natural_and_worst(family),
        )
    out.with_suffix(".json").write_text(json.dumps({"reports": {m: {str(s): r for s, r in v.items()} for m, v in reports.items()}, "train_seconds": train_seconds}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
