"""Where a PPO iteration's time goes: run a short Hopper training under py-spy and group samples.

    python benchmarks/profile_iteration.py run [--iterations 12] [--num-envs 8] [--backend envpool]
        [--compile] [--reference]           # the workload (py-spy attaches to this)
    python benchmarks/profile_iteration.py summarize PROFILE.txt   # py-spy --format raw output

Typical use (2 cores, background jobs paused):

    python benchmarks/profile_iteration.py run --compile --profile-out /tmp/prof.txt
    python benchmarks/profile_iteration.py summarize /tmp/prof.txt

``run`` prints the median rollout and update seconds per iteration (after two warm-up iterations,
which include the one-off compile); ``summarize`` splits the samples taken inside
``train_iteration`` into the parts of an iteration (first matching rule of RULES wins).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

# (label, substring of a frame "Qualified.name (path:line)"), in priority order: the first rule
# any frame of a sample matches takes the sample
RULES = [
    ("update: compiled minibatch steps", "PPO.functional_steps"),
    ("update: compiled minibatch steps", "compile_wrapper"),
    ("update: eager minibatch steps", "PPO.minibatch_loss"),
    ("update: eager minibatch steps", "backward"),
    ("update: eager minibatch steps", "Adam.step"),
    ("update: shuffles, minibatch views, metrics", "PPO.update"),
    ("rollout: old log-probs, values, GAE", "TrajectoryBuffer.batch"),
    ("rollout: env reset of finished envs (EnvPool)", "EnvPoolMixin.reset"),
    ("rollout: env stepping (EnvPool send/recv)", "EnvPoolMixin."),
    ("rollout: env wrapper (Python)", "EnvpoolVectorEnv."),
    ("rollout: policy forward + sampling", "ActorCritic.sample"),
    ("rollout: policy forward + sampling", "fast_forward"),
    ("rollout: observation normaliser (update + apply)", "ObservationNormalizer"),
    ("rollout: observation normaliser (update + apply)", "ActorCritic.normalize"),
    ("rollout: observation normaliser (update + apply)", "RunningMeanStd"),
    ("rollout: finite checks", "require_finite"),
    ("rollout: reward scaler", "RewardScaler"),
    ("rollout: episode bookkeeping", "EpisodeBook"),
    ("rollout: buffer writes", "TrajectoryBuffer.add"),
    ("rollout: other (loop, action clip, tensor conversions)", "collect"),
]


def run(args: argparse.Namespace) -> None:
    import torch

    from robustrl import TrainConfig, ppo_defaults_for
    from robustrl.algos.ppo import PPO

    torch.set_num_threads(1)
    ppo = ppo_defaults_for(args.env, compile=args.compile)
    config = TrainConfig(
        args.env, total_steps=2048 * (args.iterations + 2), num_envs=args.num_envs, backend=args.backend, ppo=ppo
    )
    if args.reference:
        from dataclasses import replace

        config = replace(config, ppo=replace(config.ppo, fast_rollout=False))
    trainer = PPO(config)
    rollout, update = [], []
    spy = None
    for i in range(args.iterations + 2):
        if i == 2 and args.profile_out:  # sample the steady state only (no compile, no imports)
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(os.getpid()), "--format", "raw",
                 "-r", "200", "-o", args.profile_out],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.5)
        start = time.perf_counter()
        stats = trainer.train_iteration()
        if i >= 2:
            rollout.append(stats.metrics["rollout_seconds"])
            update.append(stats.metrics["update_seconds"])
        print(f"iteration {i}: {time.perf_counter() - start:.3f} s", file=sys.stderr)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait()
    trainer.close()
    r, u = statistics.median(rollout), statistics.median(update)
    print(f"median rollout {r:.3f} s, update {u:.3f} s per 2048 steps: {2048 / (r + u):.0f} steps/s")


def summarize(path: str) -> None:
    counts: Counter[str] = Counter()
    total = 0
    for line in open(path):
        stack, _, n = line.rstrip().rpartition(" ")
        if "train_iteration" not in stack:
            continue
        total += int(n)
        counts[next((label for label, key in RULES if key in stack), "other")] += int(n)
    print(f"{total} samples inside train_iteration")
    for label, n in sorted(counts.items()):
        print(f"{n / total:6.1%}  {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--env", default="Hopper-v5")
    r.add_argument("--iterations", type=int, default=12)
    r.add_argument("--num-envs", type=int, default=8)
    r.add_argument("--backend", default="envpool")
    r.add_argument("--compile", action="store_true")
    r.add_argument("--profile-out", help="record the timed iterations with py-spy (raw format) into this file")
    r.add_argument("--reference", action="store_true", help="ppo.fast_rollout=False (the step-by-step reference)")
    s = sub.add_parser("summarize")
    s.add_argument("path")
    args = parser.parse_args()
    run(args) if args.command == "run" else summarize(args.path)


if __name__ == "__main__":
    main()
