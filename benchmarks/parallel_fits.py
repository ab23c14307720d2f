"""`robustrl evaluate --workers N` against one worker: the same table (cheap attacks, SA-RL fitted
`--fits` times, PA-AD) of the same trained agent, its fits made one after another (workers 1) or
N at a time in processes of their own (robustness.prefit_parallel), each on a fresh copy of the run
(no cache). Reports the wall-clock of each and the ratio, and checks the two tables agree where
they must: the fits use the same seeds, so each fit's adversary and returns are the same.

    python benchmarks/parallel_fits.py RUN_DIR [--budget 50000] [--fits 2] [--workers 2]

Stop other work on the cores while it runs (SIGSTOP): the ratio is of this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from robustrl.evaluate.reports import evaluate_robustness

ROOT = Path(__file__).resolve().parents[1]


def timed_table(run: Path, workers: int, args: argparse.Namespace) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(shutil.copytree(run, Path(scratch) / run.name, ignore=shutil.ignore_patterns("attacks", "eval-*.json")))
        start = time.perf_counter()
        reports, _ = evaluate_robustness(
            [copy], None, attacks=["random", "mad", "sa-rl", "pa-ad"], episodes=args.episodes, workers=workers,
            budgets={"sa-rl": args.budget, "pa-ad": args.budget}, fits={"sa-rl": args.fits},
        )  # fmt: skip
        return time.perf_counter() - start, reports[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--budget", type=int, default=50_000, help="env steps per SA-RL / PA-AD fit")
    parser.add_argument("--fits", type=int, default=2, help="SA-RL fits (PA-AD: one)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "parallel_fits.md")
    args = parser.parse_args()
    serial, serial_report = timed_table(args.run, 1, args)
    parallel, parallel_report = timed_table(args.run, args.workers, args)
    def fits(report: dict) -> list[float]:
        return [round(f["mean"], 1) for f in report["results"]["sa-rl"]["fits"]]

    same = all(
        serial_report["results"][a]["mean"] == parallel_report["results"][a]["mean"] for a in serial_report["results"]
    )
    lines = [
        "# Fits side by side: `robustrl evaluate --workers` (session 20)",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python benchmarks/parallel_fits.py {args.run} --budget "
        f"{args.budget} --fits {args.fits} --workers {args.workers} --episodes {args.episodes}`: the table random, MAD, "
        f"SA-RL ({args.fits} fits, the worst kept), PA-AD ({args.budget:,} env steps per fit) of one agent, on a fresh copy "
        "of its run each time.",
        "",
        "| workers | wall-clock (s) | SA-RL fits' returns | worst |",
        "|---:|---:|---|---:|",
        f"| 1 | {serial:.0f} | {fits(serial_report)} | {serial_report['worst']['mean']:.0f} |",
        f"| {args.workers} | {parallel:.0f} | {fits(parallel_report)} | {parallel_report['worst']['mean']:.0f} |",
        "",
        f"Speed-up: **{serial / parallel:.2f}x** on {args.workers} workers. The two tables are "
        + ("identical (the fits use the same seeds)." if same else "**not** identical: see the JSON."),
    ]
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"serial_seconds": serial, "parallel_seconds": parallel,
                                                         "workers": args.workers, "identical": same,
                                                         "serial": serial_report, "parallel": parallel_report}, indent=1))  # fmt: skip
    print("\n".join(lines))


if __name__ == "__main__":
    main()
