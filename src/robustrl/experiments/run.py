"""Run directories: a training run on disk, its checkpoints, logs, and resume.

Layout of ``runs/<name>/``::

    config.json        the TrainConfig (written once; resume reads it)
    versions.json      Python, package versions and platform
    progress.csv       one row per iteration
    tensorboard/       TensorBoard event files
    checkpoints/       iter_000050.safetensors + iter_000050.json, ... (see policies.checkpoint)

Every file is written atomically or appended, so Ctrl-C, a crash or a full disk never leaves an
earlier checkpoint unreadable.
"""

from __future__ import annotations

import csv
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from robustrl.algos.ppo import PPO, IterationStats, PPOHooks
from robustrl.config import TrainConfig
from robustrl.errors import CheckpointError, RunDirectoryError
from robustrl.policies.actor_critic import ActorCritic
from robustrl.policies.checkpoint import (  # noqa: F401  (run-directory lookup re-exported for callers)
    atomic_write_text,
    is_run_dir,
    latest_checkpoint,
    list_checkpoints,
    load_policy,
    package_versions,
    require_run_dir,
    save_checkpoint,
)

PROGRESS_FIELDS = (
    "iteration", "global_step", "wall_seconds", "steps_per_second", "mean_return", "episodes",
    "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance",
    "policy_lr", "eps", "robust_term", "rollout_seconds", "update_seconds",
)  # fmt: skip


@dataclass
class RunResult:
    run_dir: Path
    policy: ActorCritic
    iterations: int
    global_step: int
    interrupted: bool
    envs_restored: bool | None = None  # on resume: whether mid-episode env state was restored


def _hooks_for(config: TrainConfig) -> PPOHooks:
    from robustrl.algos import ALGORITHMS

    if config.algo not in ALGORITHMS:
        raise RunDirectoryError(f"unknown algorithm {config.algo!r}; available: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[config.algo](config)


def _hooks_with(config: TrainConfig, extra: PPOHooks | None) -> PPOHooks:
    """The algorithm's hooks (its objective and eps schedule) plus the caller's: callbacks are
    added, and a field the caller sets replaces the algorithm's. (Replacing the whole object would
    silently train plain PPO whenever a caller only wanted a progress callback.)"""
    hooks = _hooks_for(config)
    if extra is None:
        return hooks
    for name in ("objective", "eps_schedule", "after_optimizer_step"):
        if getattr(extra, name) is not None:
            setattr(hooks, name, getattr(extra, name))
    hooks.on_iteration.extend(extra.on_iteration)
    return hooks


def default_run_name(config: TrainConfig) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{config.algo}-{config.env_id.replace('/', '_')}-s{config.seed}-{stamp}"


def _warn(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(f"[yellow]warning:[/] {message}", highlight=False)


class _ProgressLog:
    """progress.csv + TensorBoard, one row per iteration."""

    def __init__(self, run_dir: Path, start_iteration: int):
        self.path = run_dir / "progress.csv"
        self._keep_rows_up_to(start_iteration)
        new_file = not self.path.exists()
        self.handle = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.handle, fieldnames=PROGRESS_FIELDS, extrasaction="ignore")
        if new_file:
            self.writer.writeheader()
        from torch.utils.tensorboard import SummaryWriter

        self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_iteration or None)

    def _keep_rows_up_to(self, iteration: int) -> None:
        """On resume, drop rows logged after the checkpoint we restart from."""
        if not self.path.exists():
            return
        with open(self.path, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if int(row["iteration"]) <= iteration]
        text_rows = [",".join(PROGRESS_FIELDS)] + [",".join(row.get(f, "") or "" for f in PROGRESS_FIELDS) for row in rows]
        atomic_write_text(self.path, "\n".join(text_rows) + "\n")

    def log(self, stats: IterationStats, row: dict[str, float]) -> None:
        self.writer.writerow(row)
        self.handle.flush()
        for name, value in row.items():
            if name not in ("iteration", "global_step") and isinstance(value, float) and math.isfinite(value):
                self.tensorboard.add_scalar(name, value, stats.global_step)

    def close(self) -> None:
        self.handle.close()
        self.tensorboard.close()


@contextmanager
def _first_interrupt_requests_stop(request_stop: Callable[[], None]) -> Iterator[None]:
    """First Ctrl-C: finish the iteration and save. Second: abort at once (earlier checkpoints
    stay intact because every write is atomic)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, previous if callable(previous) else signal.default_int_handler)
        _warn("interrupted: finishing this iteration and saving a checkpoint (Ctrl-C again to abort)")
        request_stop()

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def train(
    config: TrainConfig | None = None,
    out: Path | str | None = None,
    *,
    resume: Path | str | None = None,
    hooks: PPOHooks | None = None,
    progress: bool = True,
    runs_root: Path | str = "runs",
) -> RunResult:
    """Train a policy and keep everything in a run directory; or continue one (``resume``).

    A resumed run ends in the same state as an uninterrupted run with the same seed (for envs
    whose state :mod:`robustrl.envs.snapshot` can capture; others restart their episodes).
    """
    torch.set_num_threads(1)  # 64-unit MLPs: threading costs more than it gains, and breaks exactness
    envs_restored: bool | None = None
    if resume is not None:
        run_dir = require_run_dir(resume)
        try:
            config = TrainConfig.from_json((run_dir / "config.json").read_text())
        except (json.JSONDecodeError, TypeError) as error:
            raise RunDirectoryError(f"{run_dir}/config.json is unreadable: {error}") from None
        tensors, meta, stem = latest_checkpoint(run_dir)
        trainer = PPO(config, _hooks_with(config, hooks))
        envs_restored = trainer.load_state(tensors, meta, str(stem))
        if not envs_restored:
            _warn(f"{config.env_id}: mid-episode state cannot be restored; resuming with fresh episodes")
    else:
        if config is None:
            raise ValueError("train() needs a config, or resume=RUN_DIR")
        config.validate()
        hooks = _hooks_with(config, hooks)
        run_dir = Path(out) if out is not None else Path(runs_root) / default_run_name(config)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunDirectoryError(f"{run_dir} already exists and is not empty; pick another --out or --resume it")
        trainer = PPO(config, hooks)  # builds the env first: a bad env id fails before any file is written
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.json", config.to_json())
        atomic_write_text(run_dir / "versions.json", json.dumps(package_versions(), indent=2))

    log = _ProgressLog(run_dir, trainer.iteration)
    start_time, start_step = time.perf_counter(), trainer.global_step
    last_saved = -1

    def save() -> None:
        nonlocal last_saved
        if trainer.iteration != last_saved:
            tensors, meta = trainer.state()
            save_checkpoint(run_dir / "checkpoints" / f"iter_{trainer.iteration:06d}", tensors, meta)
            last_saved = trainer.iteration

    if trainer.iteration == 0:
        save()  # the initial policy, so a run directory always holds a loadable checkpoint
    else:
        last_saved = trainer.iteration

    def on_iteration(stats: IterationStats) -> None:
        elapsed = time.perf_counter() - start_time
        row = {
            "iteration": stats.iteration,
            "global_step": stats.global_step,
            "wall_seconds": round(elapsed, 3),
            "steps_per_second": round((stats.global_step - start_step) / max(elapsed, 1e-9), 1),
            **stats.metrics,
        }
        log.log(stats, row)
        if stats.iteration % config.checkpoint_every == 0:
            save()

    trainer.hooks.on_iteration.append(on_iteration)
    trainer.clear_stop_request()  # before the Ctrl-C handler is installed, so no request is lost
    interrupted = False
    try:
        with _first_interrupt_requests_stop(trainer.request_stop), _progress_bar(progress, trainer) as advance:
            trainer.hooks.on_iteration.append(advance)
            trainer.learn()
        interrupted = not trainer.done
        save()
    finally:
        log.close()
        trainer.close()
    return RunResult(run_dir, trainer.policy, trainer.iteration, trainer.global_step, interrupted, envs_restored)


@contextmanager
def _progress_bar(enabled: bool, trainer: PPO) -> Iterator[Callable[[IterationStats], None]]:
    if not enabled:
        yield lambda stats: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    total = trainer.num_iterations * trainer.config.ppo.steps_per_iteration
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TextColumn("{task.fields[rate]:>6.0f} steps/s"),
        TextColumn("return {task.fields[ret]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    start, start_step = time.perf_counter(), trainer.global_step
    with Progress(*columns) as bar:
        task = bar.add_task(
            f"{trainer.config.algo} {trainer.config.env_id}", total=total, completed=trainer.global_step, rate=0.0, ret="-"
        )

        def advance(stats: IterationStats) -> None:
            rate = (stats.global_step - start_step) / max(time.perf_counter() - start, 1e-9)
            mean_return = stats.metrics.get("mean_return", math.nan)
            ret = "-" if math.isnan(mean_return) else f"{mean_return:8.1f}"
            bar.update(task, completed=stats.global_step, rate=rate, ret=ret)

        yield advance
