"""Run directories: a training run on disk, its checkpoints, logs, and resume, for any learner.

Layout of ``runs/<name>/``::

    config.json        the learner's config (written once; resume reads it). PPO runs: the
                       TrainConfig; other learners add ``"learner": <name>`` (see algos.learner)
    versions.json      Python, package versions and platform
    progress.csv       one row per iteration; the columns are the metrics the learner reports
    tensorboard/       TensorBoard event files
    checkpoints/       iter_000050.safetensors + iter_000050.json, ... (see policies.checkpoint)

Every file is written atomically or appended, so Ctrl-C, SIGTERM, a crash or a full disk never
leaves an earlier checkpoint unreadable. The library reports progress through a callback
(:mod:`robustrl.progress`) and warnings through :mod:`warnings`; it never prints.
"""

from __future__ import annotations

import csv
import json
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from robustrl.algos.learner import LEARNERS, IterationStats, Learner
from robustrl.algos.ppo import PPO, PPOHooks, hooks_for
from robustrl.config import TrainConfig
from robustrl.errors import RunDirectoryError
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
from robustrl.progress import Progress
from robustrl.threads import with_torch_threads

# Columns every run has, first; then the learner's metrics in the order it reports them.
# steps_per_second: the average since this process started the run (a compile or a slow first
# iteration included); iteration_steps_per_second: this iteration's own rate (its env steps over
# the wall time since the previous row, logging and checkpoints included).
LEADING_FIELDS = ("iteration", "global_step", "wall_seconds", "steps_per_second", "iteration_steps_per_second")


@dataclass
class RunResult:
    run_dir: Path
    policy: Any  # the learner's policy (PPO: an ActorCritic), or None if it has none
    iterations: int
    global_step: int
    interrupted: bool
    envs_restored: bool | None = None  # on resume: whether mid-episode env state was restored
    learner: Learner | None = None


def default_run_name(config: TrainConfig) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{config.algo}-{config.env_id.replace('/', '_')}-s{config.seed}-{stamp}"


class _ProgressLog:
    """progress.csv + TensorBoard, one row per iteration. The header grows when a learner reports
    a metric it had not reported before (the file is rewritten once with the new column), so no
    metric is ever dropped."""

    def __init__(self, run_dir: Path, start_iteration: int):
        self.path = run_dir / "progress.csv"
        self.fields: list[str] = list(LEADING_FIELDS)
        rows = self._rows_up_to(start_iteration)
        self._rewrite(rows)
        from torch.utils.tensorboard import SummaryWriter

        self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_iteration or None)

    def _rows_up_to(self, iteration: int) -> list[dict[str, str]]:
        """On resume, drop rows logged after the checkpoint we restart from."""
        if not self.path.exists():
            return []
        with open(self.path, newline="") as handle:
            reader = csv.DictReader(handle)
            self.fields += [f for f in reader.fieldnames or () if f not in self.fields]
            return [row for row in reader if _iteration_of(row) <= iteration]

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        lines = [",".join(self.fields)] + [",".join(_cell(row.get(f)) for f in self.fields) for row in rows]
        atomic_write_text(self.path, "\n".join(lines) + "\n")
        self.handle = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.handle, fieldnames=self.fields)

    def log(self, stats: IterationStats, row: dict[str, Any]) -> None:
        new = [name for name in row if name not in self.fields]
        if new:
            self.handle.close()
            with open(self.path, newline="") as handle:
                rows = list(csv.DictReader(handle))
            self.fields += new
            self._rewrite(rows)
        self.writer.writerow(row)
        self.handle.flush()
        for name, value in row.items():
            if name not in ("iteration", "global_step") and isinstance(value, float) and math.isfinite(value):
                self.tensorboard.add_scalar(name, value, stats.global_step)

    def close(self) -> None:
        self.handle.close()
        self.tensorboard.close()


def _iteration_of(row: dict[str, Any]) -> float:
    """A row's iteration; a row cut short by a kill mid-write (no number, missing cells) counts as
    after the checkpoint, so it is dropped on resume instead of failing it."""
    try:
        if None in row.values():
            return math.inf
        return int(row["iteration"])
    except (TypeError, ValueError, KeyError):
        return math.inf


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


@contextmanager
def _first_signal_requests_stop(request_stop: Callable[[], None], enabled: bool | Collection[int] = True) -> Iterator[None]:
    """First Ctrl-C (SIGINT) or SIGTERM (what ``timeout``, schedulers and ``docker stop`` send):
    finish the iteration and save. A second one: abort at once (earlier checkpoints stay intact
    because every write is atomic). ``enabled``: True (both), False (neither) or the signals."""
    signals = (signal.SIGINT, signal.SIGTERM) if enabled is True else tuple(enabled or ())
    if not signals or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in signals}

    def abort(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def handler(signum: int, frame: Any) -> None:
        for other in previous:
            signal.signal(other, abort)
        warnings.warn(
            f"{signal.Signals(signum).name}: finishing this iteration and saving a checkpoint (send it again to abort)",
            stacklevel=2,
        )
        request_stop()

    for signum in previous:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@with_torch_threads  # one torch thread (ROBUSTRL_TORCH_THREADS overrides): 64-unit MLPs gain nothing from more
def train(
    config: TrainConfig | None = None,
    out: Path | str | None = None,
    *,
    resume: Path | str | None = None,
    hooks: PPOHooks | None = None,
    learner: Learner | None = None,
    progress: bool | Progress | None = None,
    handle_signals: bool | Collection[int] = True,
    runs_root: Path | str = "runs",
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Train into a run directory; or continue one (``resume``).

    Args:
        config: a PPO-family run (``config.algo`` names the method); PPO is built from it.
        out: the run directory (default ``runs/<algo>-<env>-s<seed>-<time>``).
        resume: continue this run directory from its newest readable checkpoint.
        hooks: callbacks, an objective or an eps schedule added to the method's own.
        learner: any :class:`~robustrl.algos.learner.Learner`, built by the caller (a PPO on an
            env factory, self-play, a tabular learner); with ``resume``, it must be built with the
            run's settings and its state is loaded from the checkpoint.
        progress: a :mod:`robustrl.progress` callback (``progress("train", steps, total,
            mean_return=...)``); True draws a rich bar on stderr (for notebooks and scripts).
        handle_signals: SIGINT/SIGTERM finish the iteration and save (default). False, or only
            some signals, where a supervisor owns the process (a study's worker saves on SIGINT,
            the runner's stop request, but dies on SIGTERM: the pool terminates the survivors of
            a dead worker that way and resumes their runs elsewhere, and a worker that kept
            training would race the resumed run).
        should_stop: asked after every iteration; True stops and saves, as a first Ctrl-C does
            (a supervisor's stop request that no number of repeats turns into an abort).

    A resumed run ends in the same state as an uninterrupted run with the same seed (for envs
    whose state :mod:`robustrl.envs.snapshot` can capture; others restart their episodes).
    """
    envs_restored: bool | None = None
    if resume is not None:
        run_dir = require_run_dir(resume)
        try:
            saved = json.loads((run_dir / "config.json").read_text())
        except (json.JSONDecodeError, OSError) as error:
            raise RunDirectoryError(f"{run_dir}/config.json is unreadable: {error}") from None
        # A run killed before its first checkpoint (between writing config.json and saving the
        # initial policy) has nothing to resume: it starts again from its saved config.
        fresh = not list_checkpoints(run_dir)
        if not fresh:
            tensors, meta, stem = latest_checkpoint(run_dir)
        if learner is None:
            name = saved.get("learner", "ppo") if isinstance(saved, dict) else None
            if name not in LEARNERS:
                raise RunDirectoryError(
                    f"{run_dir} was trained by learner {name!r}, which is not registered here; "
                    "build it and pass it as train(resume=..., learner=...)"
                )
            try:
                learner = LEARNERS[name](saved, hooks)
            except (TypeError, KeyError) as error:
                raise RunDirectoryError(f"{run_dir}/config.json is not a valid {name} config: {error}") from None
        if fresh:
            warnings.warn(f"{run_dir} has no checkpoint yet: training it from the beginning", stacklevel=2)
        else:
            envs_restored = learner.load_state(tensors, meta, str(stem))
        if not fresh and not envs_restored:
            warnings.warn(
                f"{learner.label}: mid-episode state cannot be restored; resuming with fresh episodes", stacklevel=2
            )
    else:
        if learner is None:
            if config is None:
                raise ValueError("train() needs a config, a learner, or resume=RUN_DIR")
            config.validate()
            from robustrl.algos import check_env_support

            check_env_support(config)  # e.g. WocaR-PPO on discrete actions: refused before anything is written
            hooks = hooks_for(config, hooks)
        name_hint = (
            default_run_name(config)
            if config is not None
            else f"{learner.label.replace(' ', '-')}-{datetime.now():%Y%m%d-%H%M%S}"
        )
        run_dir = Path(out) if out is not None else Path(runs_root) / name_hint
        if run_dir.exists() and (not run_dir.is_dir() or not _unstarted(run_dir)):
            what = "is a file" if not run_dir.is_dir() else "already exists and is not empty"
            raise RunDirectoryError(f"{run_dir} {what}; pick another --out or --resume it")
        if learner is None:
            learner = PPO(config, hooks)  # builds the env first: a bad env id fails before any file is written
        saved = learner.config_dict()
        if learner.learner_name != "ppo":
            saved = {"learner": learner.learner_name, **saved}
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.json", json.dumps(saved, indent=2))
        atomic_write_text(run_dir / "versions.json", json.dumps(package_versions(), indent=2))
    return _run(learner, run_dir, saved, progress, envs_restored, handle_signals, should_stop)


def _unstarted(run_dir: Path) -> bool:
    """Empty, or holding only what a start killed before its config.json leaves (the empty
    checkpoints/ made first, a config.json.tmp): nothing of a run to lose (seen in studies: a
    pool worker killed in that instant left a directory the retry refused)."""
    for entry in run_dir.iterdir():
        if entry.name == "checkpoints" and entry.is_dir() and not any(entry.iterdir()):
            continue
        if entry.name == "config.json.tmp" and entry.is_file():
            continue
        return False
    return True


def _run(
    learner: Learner,
    run_dir: Path,
    saved_config: dict[str, Any],
    progress: Any,
    envs_restored: bool | None,
    handle_signals: bool | Collection[int] = True,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """The loop of a run directory: iterations, progress.csv, checkpoints, signals, progress."""
    checkpoint_every = int(saved_config.get("checkpoint_every", 50))
    log = _ProgressLog(run_dir, learner.iteration)
    start_time, start_step = time.perf_counter(), learner.global_step
    previous_time, previous_step = start_time, start_step
    last_saved = -1

    def save() -> None:
        nonlocal last_saved
        if learner.iteration != last_saved:
            tensors, meta = learner.state()
            save_checkpoint(run_dir / "checkpoints" / f"iter_{learner.iteration:06d}", tensors, meta)
            last_saved = learner.iteration

    if learner.iteration == 0:
        save()  # the initial policy, so a run directory always holds a loadable checkpoint
    else:
        last_saved = learner.iteration
    report = _progress_callback(progress)

    last_eval: dict[str, float] = {}  # the latest ppo.eval_every evaluation, shown until the next

    def on_iteration(stats: IterationStats) -> None:
        nonlocal previous_time, previous_step
        now = time.perf_counter()
        elapsed = now - start_time
        rate = (stats.global_step - start_step) / max(elapsed, 1e-9)
        iteration_rate = (stats.global_step - previous_step) / max(now - previous_time, 1e-9)
        row = {
            "iteration": stats.iteration,
            "global_step": stats.global_step,
            "wall_seconds": round(elapsed, 3),
            "steps_per_second": round(rate, 1),
            "iteration_steps_per_second": round(iteration_rate, 1),
            **stats.metrics,
        }
        previous_time, previous_step = now, stats.global_step
        log.log(stats, row)
        if stats.iteration % checkpoint_every == 0:
            save()
        if "eval_return" in stats.metrics:
            last_eval["eval_return"] = stats.metrics["eval_return"]
        if report is not None:
            report("train", stats.global_step, learner.total_steps, label=learner.label, rate=iteration_rate,
                   mean_return=stats.metrics.get("mean_return", math.nan), **last_eval)  # fmt: skip

    learner.add_iteration_callback(on_iteration)
    learner.clear_stop_request()  # before the signal handlers are installed, so no request is lost
    interrupted = False
    try:
        with _first_signal_requests_stop(learner.request_stop, handle_signals), _drawn(progress) as drawer:
            if drawer is not None:
                report = drawer
            if report is not None:
                report(
                    "train",
                    learner.global_step,
                    learner.total_steps,
                    label=learner.label,
                    rate=0.0,
                    mean_return=math.nan,
                )
            while not learner.done and not learner.stop_requested and not (should_stop and should_stop()):
                learner.train_iteration()
        interrupted = not learner.done
        save()
    finally:
        log.close()
        learner.close()
    policy = getattr(learner, "policy", None)
    return RunResult(run_dir, policy, learner.iteration, learner.global_step, interrupted, envs_restored, learner)


def _progress_callback(progress: Any) -> Progress | None:
    return progress if callable(progress) and progress is not True else None


@contextmanager
def _drawn(progress: Any) -> Iterator[Progress | None]:
    """``progress=True``: a rich bar on stderr (the presentation layer draws it, not this module)."""
    if progress is not True:
        yield None
        return
    from robustrl.report.console import progress_bars

    with progress_bars() as draw:
        yield draw
