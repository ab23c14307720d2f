"""What ATLA (robustrl.algos.atla) costs: wall-clock of BAR-PPO training with the learned adversary
in the loop against the same method without it, same process.

    python benchmarks/atla_cost.py [--env Hopper-v5] [--blocks 3] [--agent-iterations 10]

Both trainers use the fast configuration (8 EnvPool envs, compiled update), eps at its target from
the first iteration (no warm-up: the inner problem and the adversary run at full cost). They are
built first (compilation excluded), then trained in interleaved blocks of ``agent_iterations``
iterations (one ATLA phase per block), so machine noise hits both alike. The ratio of the blocks'
median times is ATLA's cost; its expectation at ATLA's 1:1 ratio is a bit under 2x (the adversary's
rollouts step the victim's numpy actor, and its updates are PPO's). Writes
benchmarks/results/atla_cost.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date
from pathlib import Path

from robustrl.algos.ppo import PPO, hooks_for
from robustrl.config import AtlaConfig, TrainConfig, ppo_defaults_for
from robustrl.threads import torch_threads

ROOT = Path(__file__).resolve().parent


def trainer(env: str, atla: bool, agent_iterations: int, blocks: int) -> PPO:
    from robustrl.algos import robust_config_for

    config = TrainConfig(
        env_id=env, algo="bar-ppo", total_steps=2048 * agent_iterations * (blocks + 2), seed=0, num_envs=8,
        backend="envpool", ppo=ppo_defaults_for(env, compile=True),
        robust=robust_config_for("bar-ppo", {"kappa": 1.0, "eps_warmup_fraction": 0.0}),
        atla=AtlaConfig(adversary="sa-rl" if atla else "none", agent_iterations=agent_iterations,
                        adversary_iterations=agent_iterations),
    )  # fmt: skip
    return PPO(config, hooks_for(config))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--blocks", type=int, default=3, help="timed blocks per trainer (after one warm-up block)")
    parser.add_argument("--agent-iterations", type=int, default=10, help="iterations per block = ATLA's phase")
    parser.add_argument("--note", default="", help="a line for the page (e.g. what else ran)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"bar-ppo": [], "bar-ppo + atla": []}
    with torch_threads(1):
        trainers = {name: trainer(args.env, "atla" in name, args.agent_iterations, args.blocks) for name in times}
        for block in range(args.blocks + 1):  # block 0 warms up (compilation, first phase)
            for name, learner in trainers.items():
                start = time.perf_counter()
                for _ in range(args.agent_iterations):
                    learner.train_iteration()
                if block:
                    times[name].append(time.perf_counter() - start)
        for learner in trainers.values():
            learner.close()
    base = statistics.median(times["bar-ppo"])
    ratio = statistics.median(times["bar-ppo + atla"]) / base
    lines = [
        "# ATLA's cost (robustrl.algos.atla)", "",
        f"{date.today()}, `python benchmarks/atla_cost.py --env {args.env} --blocks {args.blocks} --agent-iterations "
        f"{args.agent_iterations}` on {platform.processor() or platform.machine()}, one torch thread. BAR-PPO (kappa 1) "
        f"with and without an SA-RL adversary in the loop, 8 EnvPool envs, compiled update, eps at its target; "
        f"blocks of {args.agent_iterations} agent iterations ({args.agent_iterations * 2048} env steps), each ATLA block "
        f"with one phase of {args.agent_iterations} adversary iterations; blocks interleaved, compilation and the first "
        "block excluded.", "",
        *([f"- {args.note}", ""] if args.note else []),
        "| trainer | seconds per block (median) | blocks | ratio |", "|---|---:|---:|---:|",
        *[f"| {name} | {statistics.median(t):.1f} | {len(t)} | {statistics.median(t) / base:.2f}x |" for name, t in times.items()],
        "", f"ATLA costs **{ratio:.2f}x** a BAR-PPO run's wall-clock at its defaults (1:1 agent to adversary iterations).",
    ]  # fmt: skip
    out = ROOT / "results" / "atla_cost.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
