"""Issue 17's compute as one resumable queue: every study of BARPO's Tables 2 and 4 beyond Hopper,
in the order of what the page needs most, then the page (benchmarks/barpo_table2.py).

Each step is one `robustrl study run` (a study spec, the labels it runs first); a step with
nothing left to do finishes in seconds, so re-running the queue resumes it where it stopped. A
study directory that does not exist yet starts from its committed state
(benchmarks/results/<study>_state: its trained runs and evaluations), not from nothing: those
hold about 60 worker-hours of training.

    python benchmarks/barpo_table2_queue.py --dry-run        # what each step would run, and its cost
    nohup python benchmarks/barpo_table2_queue.py --workers 2 > queue.log 2>&1 &
    kill -TERM <pid>                                          # every run saves; the queue stops

Ctrl-C or SIGTERM stops the step that runs (its runs save; exit 130) and the queue with it. A
step whose tasks failed (exit 1) does not stop the queue: the next step runs, and the summary
says which step to re-run with --retry-failed once the cause is fixed. The study runner has no
lock: do not run two queues, or a queue and a `study run`, on the same directories.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATES = ROOT / "benchmarks" / "results"
INTERRUPTED = 130


@dataclass(frozen=True)
class Step:
    study: str  # the study directory's name under --root (and its committed state's, with _state)
    spec: str  # the study spec, relative to the repository
    only: tuple[str, ...] = ()  # the labels this step runs (the runner's --only); () runs the whole study
    why: str = ""
    # studies (directory names under --root) whose finished runs of the same name, and fitted
    # attacks, this step copies in rather than repeats (the runner's --reuse-from)
    reuse_from: tuple[str, ...] = ()


# Issue 17's items in the order the page needs them; `--dry-run` prints what each has left and its cost.
QUEUE = (
    Step("barpo_walker_cheetah", "studies/barpo_walker_cheetah.yaml", ("bar-ppo", "ppo"), "item 2: the quality goal's method and its baseline first (BAR-PPO seeds 3-4 since session 20)",
         ("barpo_wc_reliability",)),
    Step("barpo_walker_cheetah", "studies/barpo_walker_cheetah.yaml", ("sa-ppo", "ar-ppo", "bar-ppo-nog", "ar-ppo-nog"),
         "item 2: SA-PPO (Table 2), ARPO w/ g (Table 3), BARPO and ARPO w/o g (Table 4); their medians' SA-RL fits"),
    Step("barpo_wc_reliability", "studies/barpo_wc_reliability.yaml", (), "item 5: learned attacks on every Walker2d/HalfCheetah BAR-PPO seed, SA-RL fitted 3 times",
         ("barpo_walker_cheetah",)),
    Step("barpo_reliability", "studies/barpo_reliability.yaml", ("bar-ppo-k1",), "item 5: the Hopper quality goal's 5 agents, SA-RL fitted 3 times"),
    Step("barpo_reliability", "studies/barpo_reliability.yaml", ("bar-ppo-k1-inner20",), "item 5: a stronger inner solve, 5 seeds, learned attacks on each"),
    Step("barpo_ant", "studies/barpo_ant.yaml", ("bar-ppo",), "item 3: Ant at the paper's 10M steps, BAR-PPO first (the one task with no row yet: before more reliability knobs)"),
    Step("barpo_ant", "studies/barpo_ant.yaml", ("ppo",), "item 3: Ant, PPO"),
    # one step for both: a step with fewer tasks than workers leaves the others idle (minibatch
    # seed 4 trained alone on one of two workers for 20 min in session 21)
    Step("barpo_reliability", "studies/barpo_reliability.yaml", ("bar-ppo-k1-minibatch", "bar-ppo-k1-long"),
         "item 5: the inner problem per minibatch, and longer at full eps (4M steps, the same warm-up), 5 seeds each, learned attacks on each"),
    Step("barpo_reliability", "studies/barpo_reliability.yaml", ("bar-ppo-k1-warmup40",), "item 5: the warm-up over 40%: its agents' last SA-RL fits"),
    Step("barpo_ant_reliability", "studies/barpo_ant_reliability.yaml", (), "item 5: learned attacks on every Ant BAR-PPO seed (no training: the runs are barpo_ant's)",
         ("barpo_ant",)),
    Step("barpo_reliability", "studies/barpo_reliability.yaml", ("bar-ppo-nog",),
         "item 5: BARPO without guidance, 5 seeds (0-2 are barpo_hopper's), learned attacks on each (is guidance what breaks seeds?)",
         ("barpo_hopper",)),
    Step("barpo_reliability", "studies/barpo_reliability.yaml", ("bar-ppo-k1-atla",),
         "item 5: a learned SA-RL adversary in training (ATLA), 5 seeds, learned attacks on each"),
    Step("barpo_reliability", "studies/barpo_reliability.yaml", ("bar-ppo-k3",),
         "item 5: kappa 3 (guidance kept, the robust term weighted more), 5 seeds, learned attacks on each"),
    Step("barpo_wc_reliability", "studies/barpo_wc_reliability.yaml", ("bar-ppo-k3",),
         "item 5: kappa 3 on Walker2d / HalfCheetah (no Hopper seed broken at kappa 3), 3 seeds each, learned attacks on each"),
    # before more reliability knobs (session 24): the grid is a deliverable of its own (item 1) and
    # has waited since session 19 for its last 3 runs and its medians' fits
    Step("barpo_hopper", "studies/barpo_hopper_kappa.yaml", (), "item 1: the Hopper kappa grid's last runs and its medians' SA-RL fits"),
    Step("barpo_reliability", "studies/barpo_reliability.yaml", ("bar-ppo-k2",),
         "item 5: kappa 2, between kappa 1 (natural met, 1 of 5 broken) and kappa 3 (0 of 5 broken, natural 9% short), 5 seeds, learned attacks on each"),
    Step("barpo_reliability", "studies/barpo_reliability.yaml", ("bar-ppo-k1-g75",),
         "item 5: guidance for the first 75% of the run, then L_bar alone (keep the natural return, lose the breaks?), 5 seeds, learned attacks on each"),
    # session 25: the cheapest try at the quality goal on two tasks first (session 26: its seeds 3-4
    # before the baselines' last RADIAL runs, as the README names them the cheapest next try), then Table 2's last
    # baselines ("if compute allows"), then another reliability knob of our own
    Step("barpo_wc_reliability", "studies/barpo_wc_reliability.yaml", ("bar-ppo-k2",),
         "quality goal: kappa 2 on Walker2d / HalfCheetah (kappa 1 breaks 1 of 5 per task, kappa 3 none of 3 but costs a quarter of the natural return), 5 seeds each (3-4 added in session 26), learned attacks on each"),
    Step("barpo_walker_cheetah", "studies/barpo_walker_cheetah.yaml", ("wocar-ppo", "radial-ppo"), "item 2: Table 2's WocaR-PPO and RADIAL-PPO, if compute allows"),
    # session 27: RADIAL's reference bound first. The machine was replaced between sessions and
    # bar-ppo-k1-wocar's two trained seeds (never snapshotted) were lost; the one-hour step lands
    # whole this session, the 2-hour one resumes from its snapshot in the next
    Step("barpo_walker_cheetah", "studies/barpo_walker_cheetah.yaml", ("radial-ppo-corners",),
         "item 2: RADIAL-PPO with the reference code's bound (ours, the exact one, did not learn Walker2d / HalfCheetah at 2M steps), 3 seeds each"),
    Step("barpo_reliability", "studies/barpo_reliability.yaml", ("bar-ppo-k1-wocar",),
         "item 5: BAR-PPO on WocaR's worst-case-aware advantage (a term that sees the return under attack), 5 seeds, learned attacks on each"),
)  # fmt: skip


def start_from_state(directory: Path, study: str, states: Path = STATES) -> bool:
    """Seed a study directory that does not exist from its committed state (the snapshot's
    README.md left out: it describes the snapshot, not the directory). True if it copied. The copy
    is made beside it and renamed into place, so an interrupted copy never passes for a study
    (which would train its missing runs again)."""
    state = states / f"{study}_state"
    if directory.exists() or not state.is_dir():
        return False
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # an earlier copy cut short
    directory.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(state, partial, ignore=shutil.ignore_patterns("README.md"))
    os.replace(partial, directory)
    return True


def command(step: Step, directory: Path, workers: int, dry_run: bool, retry_failed: bool) -> list[str]:
    robustrl = Path(sys.executable).with_name("robustrl")  # the CLI of the environment running this script
    argv = [str(robustrl), "study", "run", str(ROOT / step.spec), "--out", str(directory), "--workers", str(workers)]
    argv += [a for label in step.only for a in ("--only", label)]
    # a study that is not there yet (a dry run, or a fresh root) has nothing to give
    argv += [a for other in step.reuse_from if (directory.parent / other / "runs").is_dir() for a in ("--reuse-from", str(directory.parent / other))]
    return argv + ["--dry-run"] * dry_run + ["--retry-failed"] * retry_failed


def run_queue(steps: tuple[Step, ...], root: Path, workers: int, *, dry_run: bool = False, retry_failed: bool = False,
              states: Path = STATES, argv_of=command) -> tuple[dict[int, int], bool]:  # fmt: skip
    """Run ``steps`` in order; return each step's exit code and whether the queue was stopped.
    SIGTERM or Ctrl-C at any moment (in a step, between steps, while a state is copied) stops it
    after the running step has saved: SIGTERM is passed on to that step, Ctrl-C reaches it directly
    (the same process group). A step that failed (exit 1, or any code but 130 and a signal's) is
    reported and the queue goes on."""
    codes: dict[int, int] = {}
    stop = {"requested": False, "child": None}

    def on_sigterm(*_: object) -> None:
        stop["requested"] = True
        if stop["child"] is not None and stop["child"].poll() is None:
            stop["child"].send_signal(signal.SIGTERM)  # the runner saves its runs on SIGTERM as on Ctrl-C

    before = signal.signal(signal.SIGTERM, on_sigterm)  # once, for the whole queue: no gap between steps
    try:
        for index, step in enumerate(steps, 1):
            try:
                if stop["requested"]:
                    break
                directory, state = root / step.study, states / f"{step.study}_state"
                if dry_run and not directory.exists() and state.is_dir():
                    print(f"[queue] {directory} would start from the committed state {state}; its plan:", flush=True)
                    directory = state  # a dry run reads, never writes: the plan from the state itself
                elif not dry_run and start_from_state(directory, step.study, states):
                    print(f"[queue] {directory}: started from the committed state {state}", flush=True)
                if stop["requested"]:
                    break
                only = " ".join(step.only) or "every run"
                print(f"[queue] step {index}/{len(steps)}: {step.study} ({only}): {step.why}", flush=True)
                stop["child"] = subprocess.Popen(argv_of(step, directory, workers, dry_run, retry_failed), cwd=ROOT)
                codes[index] = _wait(stop["child"], stop)
            except KeyboardInterrupt:  # Ctrl-C outside a step (between steps, during a copy)
                stop["requested"] = True
            finally:
                stop["child"] = None
            # 130: the runner saved and stopped; < 0: a signal ended it before it could save (its
            # runs resume from their last checkpoints)
            if stop["requested"] or codes.get(index, 0) == INTERRUPTED or codes.get(index, 0) < 0:
                stop["requested"] = True
                break
    finally:
        signal.signal(signal.SIGTERM, before)
    if stop["requested"]:
        where = f" at step {max(codes)} (its runs saved)" if codes else " before its first step"
        print(f"[queue] stopped{where}; run the queue again to resume", flush=True)
    for index, code in codes.items():
        if code == 1:
            print(f"[queue] step {index} ({steps[index - 1].study}) had failed tasks: fix the cause (its output above), "
                  "then run the queue again with --retry-failed", flush=True)  # fmt: skip
        elif code not in (0, INTERRUPTED) and code > 0:
            print(f"[queue] step {index} ({steps[index - 1].study}) exited with code {code}: see its output above", flush=True)
    return codes, stop["requested"]


def _wait(child: subprocess.Popen, stop: dict) -> int:
    """The child's exit code; a Ctrl-C reaches the child too (same process group): note it and
    wait for the child to save and exit rather than leave it running."""
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            stop["requested"] = True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT / "runs" / "studies", help="where the study directories are")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dry-run", action="store_true", help="print each step's plan; write nothing")
    parser.add_argument("--retry-failed", action="store_true", help="try failed tasks again (after fixing the cause)")
    parser.add_argument("--no-page", action="store_true", help="do not rewrite barpo_table2.md after the queue")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    codes, stopped = run_queue(QUEUE, args.root, args.workers, dry_run=args.dry_run, retry_failed=args.retry_failed)
    if stopped:
        return INTERRUPTED
    studies = [args.root / s for s in dict.fromkeys(step.study for step in QUEUE) if (args.root / s / "study.json").is_file()]
    if studies and not (args.dry_run or args.no_page):
        page = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "barpo_table2.py"), *map(str, studies)], cwd=ROOT)
        if page.returncode:
            print(f"[queue] the page (benchmarks/barpo_table2.py) failed with code {page.returncode}: see its output above")
            return page.returncode
    return 1 if any(code != 0 for code in codes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
