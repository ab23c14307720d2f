"""Training throughput of robustrl PPO against Stable-Baselines3 PPO and the raw simulator, one run.

    python benchmarks/throughput.py [--env Hopper-v5] [--iterations 6] [--repeats 2]

Measured in one process, interleaved ``--repeats`` times (the best of the repeats is reported, so a
burst of load from elsewhere on this noisy 2-core machine penalises no contender in particular):

- raw MuJoCo: ``mujoco.mj_step`` x frame_skip on the task's model, no Python env around it
  (the physical limit of this machine);
- Gymnasium env and EnvPool env stepping with random actions (the simulator as users get it);
- SB3 PPO with the same hyperparameters (64-64 tanh, 2048 x 10 epochs x 64, 1 env, VecNormalize
  for observations and returns; SB3 always uses one optimiser and clips gradients);
- robustrl PPO: gymnasium backend with 1 env, envpool backend with 1 and 8 envs, and 8 and 16 envs
  with ``ppo.compile`` (the whole minibatch step compiled; its one-off compile is in the warm-up);
  all with the default ``ppo.fast_rollout`` (numpy actor in the rollout), and 8 envs + compile also
  with ``fast_rollout=false`` (the step-by-step torch reference).
  The batch is always 2048 steps (16 envs x 128); benchmarks/results/ppo_reference_16envs_compile.md
  shows whether returns change.

Also the peak resident memory of a robustrl Hopper training process (separate subprocess).
Writes benchmarks/results/throughput.md.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent


def raw_mujoco_rate(env_id: str, steps: int = 20000) -> float:
    env = gym.make(env_id)
    env.reset(seed=0)
    base = env.unwrapped
    import mujoco

    start = time.perf_counter()
    for _ in range(steps):
        mujoco.mj_step(base.model, base.data, nstep=base.frame_skip)
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def gymnasium_env_rate(env_id: str, steps: int = 10000) -> float:
    env = gym.make(env_id)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, *env.action_space.shape)).astype(np.float32)
    start = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def envpool_env_rate(env_id: str, num_envs: int, steps: int = 10000) -> float:
    from robustrl.envs import make_env

    env = make_env(env_id, num_envs, 0, "envpool")
    env.reset()
    shape = (num_envs, *env.single_action_space.shape)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps // num_envs):
        env.step(rng.uniform(-1, 1, shape))
    rate = (steps // num_envs) * num_envs / (time.perf_counter() - start)
    env.close()
    return rate


def sb3_rate(env_id: str, iterations: int, threads: int) -> float:
    """SB3 as users run it uses torch's default thread count; with 1 thread it is faster here."""
    torch.set_num_threads(threads)
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env = VecNormalize(
        make_vec_env(env_id, n_envs=1, seed=0), norm_obs=True, norm_reward=True, clip_obs=10.0, clip_reward=10.0
    )
    model = PPO(
        "MlpPolicy", env, n_steps=2048, batch_size=64, n_epochs=10, learning_rate=3e-4, gamma=0.99, gae_lambda=0.95,
        clip_range=0.2, ent_coef=0.0, seed=0, device="cpu",
        policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh, log_std_init=0.0),
    )  # fmt: skip
    model.learn(2048)  # warm-up iteration (allocations, first-call overheads)
    start = time.perf_counter()
    model.learn(2048 * iterations, reset_num_timesteps=False)
    rate = 2048 * iterations / (time.perf_counter() - start)
    env.close()
    torch.set_num_threads(1)
    return rate


def robustrl_rate(
    env_id: str, iterations: int, backend: str, num_envs: int, compile_loss: bool = False, fast: bool = True
) -> float:
    from robustrl import TrainConfig, ppo_defaults_for
    from robustrl.algos.ppo import PPO

    ppo = ppo_defaults_for(env_id, compile=compile_loss, fast_rollout=fast)
    config = TrainConfig(env_id, total_steps=2048 * (iterations + 1), num_envs=num_envs, backend=backend, ppo=ppo)
    trainer = PPO(config)
    trainer.train_iteration()  # warm-up, as for SB3 (and, with compile, the one-off compilation)
    start = time.perf_counter()
    trainer.learn()
    rate = 2048 * iterations / (time.perf_counter() - start)
    trainer.close()
    return rate


def peak_memory_mib(env_id: str, iterations: int) -> float:
    """Peak RSS of a separate process that runs a robustrl training loop with logging."""
    code = f"""
import resource, tempfile, torch
from robustrl import TrainConfig, ppo_defaults_for, train
with tempfile.TemporaryDirectory() as d:
    train(TrainConfig({env_id!r}, total_steps={2048 * iterations}, ppo=ppo_defaults_for({env_id!r})), d + '/run', progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--memory-iterations", type=int, default=50)
    parser.add_argument("--out", default=str(ROOT / "results" / "throughput.md"))
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    contenders = {
        "raw MuJoCo mj_step (physics limit)": lambda: raw_mujoco_rate(args.env),
        "Gymnasium env, random actions": lambda: gymnasium_env_rate(args.env),
        "EnvPool env (1 env), random actions": lambda: envpool_env_rate(args.env, 1),
        "EnvPool env (8 envs), random actions": lambda: envpool_env_rate(args.env, 8),
        f"SB3 PPO (1 env, torch default {default_threads} threads)": lambda: sb3_rate(
            args.env, args.iterations, default_threads
        ),
        "SB3 PPO (1 env, 1 thread)": lambda: sb3_rate(args.env, args.iterations, 1),
        "robustrl PPO, gymnasium, 1 env": lambda: robustrl_rate(args.env, args.iterations, "gymnasium", 1),
        "robustrl PPO, envpool, 1 env": lambda: robustrl_rate(args.env, args.iterations, "envpool", 1),
        "robustrl PPO, envpool, 8 envs": lambda: robustrl_rate(args.env, args.iterations, "envpool", 8),
        "robustrl PPO, envpool, 8 envs, ppo.compile": lambda: robustrl_rate(
            args.env, args.iterations, "envpool", 8, True
        ),
        "robustrl PPO, envpool, 8 envs, ppo.compile, fast_rollout=false (reference rollout)": lambda: robustrl_rate(
            args.env, args.iterations, "envpool", 8, True, fast=False
        ),
        "robustrl PPO, envpool, 16 envs, ppo.compile": lambda: robustrl_rate(
            args.env, args.iterations, "envpool", 16, True
        ),
    }
    best: dict[str, float] = {}
    for repeat in range(args.repeats):
        for name, measure in contenders.items():
            rate = measure()
            best[name] = max(best.get(name, 0.0), rate)
            print(f"[{repeat}] {name}: {rate:.0f} steps/s", flush=True)
    memory = peak_memory_mib(args.env, args.memory_iterations)
    print(f"peak RSS of a {args.memory_iterations}-iteration training process: {memory:.0f} MiB")
    write_results(args, best, memory)


def write_results(args: argparse.Namespace, best: dict[str, float], memory: float) -> None:
    sb3 = best["SB3 PPO (1 env, 1 thread)"]
    raw = best["raw MuJoCo mj_step (physics limit)"]
    lines = [
        f"# Training throughput on {args.env}",
        "",
        f"Machine: {platform.processor() or platform.machine()}, 2 cores, no GPU, {platform.platform()}, "
        f"torch {torch.__version__}, {datetime.now():%Y-%m-%d %H:%M}.",
        f"PPO rates: {args.iterations} iterations of 2048 steps after one warm-up iteration; best of "
        f"{args.repeats} interleaved repeats; 1 torch thread. Other jobs may have been running: compare rows, "
        "not absolute values.",
        "",
        "| what | env-steps/s | vs SB3 PPO (1 thread) | vs raw MuJoCo |",
        "|---|---:|---:|---:|",
    ]
    for name, rate in best.items():
        lines.append(f"| {name} | {rate:.0f} | {rate / sb3:.2f}x | {rate / raw:.0%} |")
    lines += [
        "",
        f"Peak resident memory of a robustrl {args.env} training process ({args.memory_iterations} iterations, "
        f"with CSV and TensorBoard logging and checkpoints): **{memory:.0f} MiB** (target < 1024 MiB).",
    ]
    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
