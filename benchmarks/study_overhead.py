"""Study runner: wall-clock of the smoke study, the local pool's speed-up over serial on this
machine, and the same spec on a local Ray instance (its overhead over the pool).

    python benchmarks/study_overhead.py [--repeats 1]

Each configuration runs the spec from an empty directory (training and evaluation of every run).
Pause other jobs while it runs (the ratios are measured in one run, but two cores are easily
disturbed). Writes benchmarks/results/study_overhead.md (+ .json).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent
SMOKE = ROOT.parent / "studies" / "smoke.yaml"


def timed(spec: Path, backend: str, workers: int) -> float:
    from robustrl.experiments.study import run_study

    directory = Path(tempfile.mkdtemp(prefix="study-bench-"))
    try:
        start = time.perf_counter()
        study = run_study(spec, directory / "s", backend=backend, workers=workers)
        seconds = time.perf_counter() - start
        assert all(e["train"] == "done" and e["evaluate"] == "done" for e in study.status["runs"].values())
        return seconds
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="study-specs-"))
    medium = yaml.safe_load(SMOKE.read_text())
    medium.update(name="medium", steps=256 * 16, seeds=[0, 1])  # 4 runs x 16 iterations: enough work to parallelise
    (work / "medium.yaml").write_text(yaml.safe_dump(medium))
    rows = []
    for spec in (SMOKE, work / "medium.yaml"):
        for backend, workers in (("local", 1), ("local", 2), ("ray", 2)):
            seconds = min(timed(spec, backend, workers) for _ in range(args.repeats))
            if backend == "ray":
                import ray

                ray.shutdown()
            rows.append({"spec": spec.stem, "backend": backend, "workers": workers, "seconds": round(seconds, 1)})
            print(rows[-1], flush=True)
    by = {(r["spec"], r["backend"], r["workers"]): r["seconds"] for r in rows}
    lines = [
        "# Study runner overhead",
        "",
        f"{date.today()}, {platform.processor() or platform.machine()}, 2 cores; best of {args.repeats}; other jobs paused (SIGSTOP) while measuring.",
        "smoke = studies/smoke.yaml (4 runs x 3 iterations of 256 steps on Pendulum, 3 attacks x 3 episodes);",
        "medium = the same with 16 iterations per run. Wall-clock from an empty study directory, results store included.",
        "",
        "| spec | serial (1 worker) s | pool (2 workers) s | speed-up | Ray (2 CPUs) s | Ray / pool |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for spec in ("smoke", "medium"):
        serial, pool, ray_s = by[(spec, "local", 1)], by[(spec, "local", 2)], by[(spec, "ray", 2)]
        lines.append(f"| {spec} | {serial} | {pool} | {serial / pool:.2f}x | {ray_s} | {ray_s / pool:.2f}x |")
    (ROOT / "results" / "study_overhead.md").write_text("\n".join(lines) + "\n")
    (ROOT / "results" / "study_overhead.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
