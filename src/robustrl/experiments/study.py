"""Studies: many runs from one spec, on a local process pool or on Ray, resumable, with a results
store that reports read.

Layout of a study directory::

    study.json        the spec as read and its expansion (run names and configs)
    status.json       per run: train / evaluate state (pending, running, done, failed), attempts,
                      the traceback of the last failure; the runner's pid and heartbeat
    runs/<name>/      one run directory per config (robustrl.experiments.run), evaluated in place
    results/          runs, metrics, evaluations as Parquet (+ CSV): see :func:`collect_results`

Training and evaluation are separate tasks, so attacks on finished agents run while others still
train; each fit of an expensive learned attack (SA-RL, PA-AD) is a task of its own
(:func:`fit_task`), so the fits of one agent run side by side too. A run whose config hash is
already complete is skipped; an interrupted one resumes from its last checkpoint; a task that raises is recorded with its traceback and retried up to
``spec.retries`` times while the others go on; a worker process that dies (OOM, kill) is replaced
and its task resumes from its last checkpoint.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from robustrl.errors import InvalidArgumentError, RobustRLError
from robustrl.experiments.spec import RunSpec, StudySpec, load_spec
from robustrl.policies.checkpoint import atomic_write_text
from robustrl.progress import Progress

BACKENDS = ("local", "ray")
# The runner's stop request to a worker: not SIGINT, which a terminal's Ctrl-C also delivers to
# every worker (two SIGINTs would read as "abort at once" instead of "save and stop")
STOP_SIGNAL = signal.SIGUSR1


# ---- the tasks (top-level functions: they run in worker processes or Ray workers) ---------------
_STOP = None  # threading.Event: the runner asked this worker to stop (or the runner died)
_RAISE_ON_STOP = False  # an evaluation is running: a stop request interrupts it at once


def _worker_setup(threads: int = 1) -> None:
    """One torch thread per worker: two workers with torch's default threads each would fight
    over the cores (and a fixed count keeps results reproducible). A worker ignores SIGINT (a
    Ctrl-C reaches the whole process group; the runner decides): the runner's stop request is
    STOP_SIGNAL, which sets a flag a training reads after every iteration (it saves and
    returns) and interrupts an evaluation; repeats change nothing, and a request that arrives
    between tasks stops the next one before it starts."""
    global _STOP
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)
    if _STOP is not None:
        return  # set up already (the pool's initializer; tasks call this too)
    import threading

    _STOP = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(STOP_SIGNAL, _on_stop_request)
    _watch_runner(os.getppid())


def _on_stop_request(signum: int = 0, frame: Any = None) -> None:
    _STOP.set()
    if _RAISE_ON_STOP:
        raise KeyboardInterrupt


def _stop_requested() -> bool:
    return _STOP is not None and _STOP.is_set()


def _watch_runner(runner_pid: int, poll_seconds: float = 1.0) -> None:
    """A worker whose runner died (SIGKILL, a closed terminal) stops its task at a safe point and
    exits, instead of training on for nobody and racing the run's resumed copy later."""
    import threading

    def watch() -> None:
        while os.getppid() == runner_pid:
            time.sleep(poll_seconds)
        os.kill(os.getpid(), STOP_SIGNAL)  # a training saves after its iteration; an evaluation stops
        while _BUSY.is_set():
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="robustrl-runner-watch", daemon=True).start()


class _Busy:
    """Whether a task is running in this worker (the runner watch exits only between tasks)."""

    def __init__(self) -> None:
        self.count = 0

    def is_set(self) -> bool:
        return self.count > 0

    def __enter__(self) -> None:
        self.count += 1

    def __exit__(self, *exc: Any) -> None:
        self.count -= 1


_BUSY = _Busy()


def train_task(run_dir: str, config: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume, or skip if complete) one run; never raises: failures come back as data."""
    with _BUSY:
        try:
            _worker_setup()
            import warnings

            from robustrl.config import TrainConfig
            from robustrl.experiments.run import train
            from robustrl.policies.checkpoint import is_run_dir

            start = time.perf_counter()
            train_config = TrainConfig.from_dict(config)
            if train_config.ppo.compile:
                import torch

                # a worker trains many runs; each run's compiled step is guarded on its own optimiser,
                # so without a reset torch.compile hits its recompile limit after ~8 runs and silently
                # falls back to eager
                torch._dynamo.reset()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # no terminal in a worker: warnings would interleave
                if run_complete(Path(run_dir), train_config.num_iterations):
                    return {"ok": True, "skipped": True}
                if _stop_requested():
                    return {"ok": False, "error": "interrupted"}
                set_aside = _set_aside_unresumable(Path(run_dir))
                # the runner's stop request: finish the iteration and save; SIGTERM stays fatal (the
                # pool's way to end the survivors of a dead worker, whose runs resume elsewhere)
                if is_run_dir(run_dir):
                    result = train(resume=run_dir, handle_signals=False, should_stop=_stop_requested)
                else:
                    result = train(train_config, run_dir, handle_signals=False, should_stop=_stop_requested)
            return {"ok": not result.interrupted, "iterations": result.iterations, "seconds": time.perf_counter() - start,
                    "error": "interrupted" if result.interrupted else None, "set_aside": set_aside}  # fmt: skip
        except BaseException:
            return {"ok": False, "error": traceback.format_exc()}


SET_ASIDE = "set_aside"  # a study's folder for run directories it could not resume


def _set_aside_unresumable(run_dir: Path) -> str | None:
    """Move a run directory that holds files but no checkpoints/ out of the way, so its run trains
    again; returns where it went. Such a directory cannot be resumed (nothing to load) and
    ``train`` refuses to start over it, so without this the run failed on every attempt: a
    committed state lost four runs' checkpoints that way (benchmarks/results/barpo_hopper_state).
    Moved, not deleted: its progress.csv and reports are kept under ``<study>/set_aside/``."""
    from robustrl.experiments.run import _unstarted
    from robustrl.policies.checkpoint import is_run_dir

    if not run_dir.is_dir() or is_run_dir(run_dir) or _unstarted(run_dir):
        return None
    return str(_set_aside(run_dir))


def _set_aside(run_dir: Path) -> Path:
    """Move ``runs/<name>`` to ``<study>/set_aside/<name>-<time>`` (kept, not deleted); returns where."""
    folder = run_dir.parent.parent / SET_ASIDE
    folder.mkdir(exist_ok=True)
    dest = folder / f"{run_dir.name}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    os.replace(run_dir, dest)
    return dest


@contextmanager
def _interruptible() -> Any:
    """A stop request raises KeyboardInterrupt inside the block (also one that came before it)."""
    global _RAISE_ON_STOP
    if _stop_requested():
        raise KeyboardInterrupt
    _RAISE_ON_STOP = True
    try:
        yield
    finally:
        _RAISE_ON_STOP = False


def evaluate_task(
    run_dir: str, env_id: str, evaluation: dict[str, Any], attacks: list[str], sweep_done: bool = False
) -> dict[str, Any]:
    """The robustness report of one run under ``attacks`` at the table's eps, then the cheap ones
    at each eps of the sweep (each report resumes where a previous attempt stopped)."""
    start = time.perf_counter()
    with _BUSY:
        try:
            _worker_setup()
            import warnings

            import torch

            from robustrl.evaluate.reports import report_path, split_attacks
            from robustrl.evaluate.robustness import robustness_report
            from robustrl.policies.checkpoint import load_policy

            # the learned attacks train compiled PPOs and a worker evaluates many runs: start clean,
            # so torch.compile never reaches its recompile limit and silently falls back to eager
            torch._dynamo.reset()

            with warnings.catch_warnings(), _interruptible():  # a stopped report resumes from its finished attacks
                warnings.simplefilter("ignore")
                policy = load_policy(run_dir)
                main = evaluation["eps"] if evaluation["eps"] is not None else report_eps(env_id)
                worst = None
                deterministic = evaluation.get("deterministic", True)  # absent in a task queued by an older runner
                sweep = [] if sweep_done else [(eps, list(split_attacks(attacks)[0])) for eps in evaluation["eps_sweep"]]
                for eps, names in [(main, attacks), *sweep]:
                    report = robustness_report(
                        policy, env_id, attacks=names, eps=eps, norm=evaluation["norm"], episodes=evaluation["episodes"],
                        seed=evaluation["seed"], attack_options=evaluation["attack_options"],
                        budgets={k: v for k, v in evaluation["budgets"].items() if k in names}, source=run_dir,
                        fits={k: v for k, v in evaluation.get("fits", {}).items() if k in names},
                        deterministic=deterministic,
                        json_path=report_path(Path(run_dir), eps, evaluation["norm"], deterministic),
                    )  # fmt: skip
                    if eps == main:
                        worst = report.get("worst", {}).get("mean")
                if evaluation.get("certify") and not sweep_done:
                    certify_task_run(Path(run_dir), main, evaluation["norm"])
            return {"ok": True, "seconds": time.perf_counter() - start, "worst": worst}
        except KeyboardInterrupt:
            return {"ok": False, "error": "interrupted", "seconds": time.perf_counter() - start}
        except BaseException:
            return {"ok": False, "error": traceback.format_exc()}


def fit_task(run_dir: str, env_id: str, evaluation: dict[str, Any], attack: str, fit: int) -> dict[str, Any]:
    """Fit ``fit`` of learned attack ``attack`` on one run into the cache its report reads
    (robustness.prefit), evaluating nothing: an agent's fits (3 SA-RL fits and PA-AD in the BARPO
    studies, an hour on Ant) run side by side, and its median or evaluation task loads them."""
    start = time.perf_counter()
    with _BUSY:
        try:
            _worker_setup()
            import warnings

            import torch

            from robustrl.evaluate.robustness import prefit
            from robustrl.policies.checkpoint import load_policy

            torch._dynamo.reset()  # as evaluate_task: a worker fits many adversaries with compiled PPOs
            with warnings.catch_warnings(), _interruptible():  # a stopped fit starts again next time
                warnings.simplefilter("ignore")
                eps = evaluation["eps"] if evaluation["eps"] is not None else report_eps(env_id)
                seconds, cached = prefit(
                    load_policy(run_dir), env_id, attack, fit, source=run_dir, eps=eps, norm=evaluation["norm"],
                    seed=evaluation["seed"], options=evaluation["attack_options"].get(attack, {}),
                    budget=evaluation["budgets"].get(attack),
                )  # fmt: skip
            return {"ok": True, "seconds": time.perf_counter() - start, "fit_seconds": seconds, "cached": cached}
        except KeyboardInterrupt:
            return {"ok": False, "error": "interrupted", "seconds": time.perf_counter() - start}
        except BaseException:
            return {"ok": False, "error": traceback.format_exc()}


FIT = "fit:"  # a fit task's label: fit:<attack>:<j>


def fit_label(attack: str, fit: int) -> str:
    return f"{FIT}{attack}:{fit}"


def parse_fit(task: str) -> tuple[str, int]:
    attack, fit = task.removeprefix(FIT).rsplit(":", 1)
    return attack, int(fit)


CERTIFICATE = "certify.json"


def certify_task_run(run_dir: Path, eps: float, norm: str) -> dict[str, Any]:
    """Theorem 1's bound and the IBP certificate of the run's final policy at the table's eps
    ("Pruning cannot hurt robustness"; robustrl.prune.tools.certify_run), kept in the run
    directory as certify.json (computed once: the final checkpoint does not change)."""
    from robustrl.prune.tools import certify_run

    path = run_dir / CERTIFICATE
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            pass  # a write cut short: compute again
    certificate = certify_run(run_dir, eps=eps, norm=norm, episodes=2)
    atomic_write_text(path, json.dumps(certificate, indent=1))
    return certificate


def report_eps(env_id: str) -> float:
    from robustrl.config import default_eps

    return default_eps(env_id)


def run_complete(run_dir: Path, num_iterations: int) -> bool:
    from robustrl.errors import CheckpointError
    from robustrl.policies.checkpoint import is_run_dir, latest_checkpoint

    if not is_run_dir(run_dir):
        return False
    try:
        _, meta, _ = latest_checkpoint(run_dir)
    except CheckpointError:
        return False
    return int(meta.get("iteration", 0)) >= num_iterations


# ---- executors ------------------------------------------------------------------------------------
class WorkerLost(Exception):
    """The process running a task died (killed, out of memory); the task can be resubmitted."""


class LocalExecutor:
    """A process pool (spawned workers, one torch thread each); replaced when a worker dies."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = self._new_pool()

    def _new_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_setup
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._pool.submit(fn, *args)

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Any) -> dict[str, Any]:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return handle.result()
        except BrokenProcessPool:
            raise WorkerLost from None

    def recover(self) -> None:
        """After a WorkerLost: a broken pool cannot take new work; start a new one."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def interrupt(self) -> None:
        """Ask every running task to stop at a safe point (a training saves its checkpoint)."""
        # ProcessPoolExecutor has no public handle on its processes; _processes is stable since 3.2
        for process in list(getattr(self._pool, "_processes", {}).values()):
            try:
                os.kill(process.pid, STOP_SIGNAL)
            except (OSError, AttributeError):
                pass

    def shutdown(self, wait: bool = True) -> None:
        if not wait:  # a second Ctrl-C: do not wait for anything
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.kill()
        self._pool.shutdown(wait=wait, cancel_futures=True)


class RayExecutor:
    """Ray tasks (one CPU each): the same study on a laptop's local Ray or a cluster
    (``address="auto"``). Ray is an optional extra: ``pip install 'robustrl[ray]'``."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None, object_store_memory: int = 200 * 2**20):
        try:
            import ray
        except ImportError:
            raise InvalidArgumentError("--backend ray needs Ray: pip install 'robustrl[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                options["address"] = address
            else:  # a local instance: cap its memory, the object store holds only small results here
                options.update(num_cpus=num_cpus, object_store_memory=object_store_memory)
            ray.init(**options)
        self._remote = {}
        self._submitted: set[Any] = set()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if fn not in self._remote:
            self._remote[fn] = self.ray.remote(num_cpus=1, max_retries=0)(fn)
        handle = self._remote[fn].remote(*args)
        self._submitted.add(handle)
        return handle

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        done, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        return done

    def result(self, handle: Any) -> dict[str, Any]:
        from ray.exceptions import RayError, TaskCancelledError

        self._submitted.discard(handle)
        try:
            return self.ray.get(handle)
        except TaskCancelledError:  # our own interrupt(): the task resumes from its last checkpoint
            return {"ok": False, "error": "interrupted"}
        except RayError:
            raise WorkerLost from None

    def recover(self) -> None:
        pass

    def interrupt(self) -> None:
        """Cancel the running tasks (Ray raises KeyboardInterrupt in them; a training resumes
        from its last checkpoint, so up to ``checkpoint_every`` iterations are redone)."""
        for handle in list(self._submitted):
            self.ray.cancel(handle)

    def shutdown(self, wait: bool = True) -> None:
        """``wait=False`` (a second Ctrl-C): kill the tasks still running (``force=True`` ends
        their worker processes) rather than leave them training on the cluster after the runner
        has gone; they resume from their last periodic checkpoint. ``wait=True`` leaves Ray up:
        a notebook or a cluster may hold other work in it."""
        if wait:
            return
        for handle in list(self._submitted):
            try:
                self.ray.cancel(handle, force=True)
            except Exception:  # already finished, or its worker already gone
                pass
        self._submitted.clear()


STOP_GRACE_SECONDS = 600  # how long a stopped study waits for its tasks to reach a safe point
# status.json is rewritten at least this often while tasks run, so `study status` on a running study
# reads a current wall-clock (otherwise it changes only when a task starts or ends: hours apart)
HEARTBEAT_SECONDS = 60.0


@dataclass
class _StopRequests:
    """How many stop signals (Ctrl-C, SIGTERM) the runner has received; signals within a second
    of the previous one count once (one intent: ``timeout`` forwards the SIGINT ``pkill`` sent it,
    and a terminal's Ctrl-C reaches the runner as ``kill -INT`` from a script would)."""

    count: int = 0
    last: float = -math.inf  # time.monotonic() of the last signal


@contextmanager
def _stop_signals() -> Any:
    """Ctrl-C and SIGTERM (schedulers, ``timeout``, ``kill``) stop a study at its next safe point.

    Signals are only counted, and the runner's loops look every second: the first stops the study
    at its tasks' next safe point, a second (a second or more later) stops it at once (the runs
    resume from their last checkpoint). Raising KeyboardInterrupt from the handler instead could
    land inside a lock of the pool's waiting code, break it and escape as ``RuntimeError: release
    unlocked lock`` (found with two SIGINTs a few milliseconds apart: ``timeout`` forwards the one
    ``pkill`` sends it); only a third signal raises where it lands. SIGINT is taken over also when
    the study was started in the background (``robustrl study run ... &``: a shell starts
    background jobs with SIGINT ignored, and Python then never installs its Ctrl-C handler, so
    ``kill -INT`` did nothing)."""
    import threading

    requests = _StopRequests()
    if threading.current_thread() is not threading.main_thread():
        yield requests
        return

    def handler(signum: int, frame: Any) -> None:
        now = time.monotonic()
        if now - requests.last >= 1.0:
            requests.count += 1
        requests.last = now
        if requests.count > 2:  # the runner's own loops did not answer the first two: raise wherever
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield requests
    finally:
        for sig, old in previous.items():
            # None: a handler installed from C, which Python cannot reinstall
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


# ---- the scheduler ----------------------------------------------------------------------------------
def _check_same_study(directory: Path, spec: StudySpec) -> None:
    saved = directory / "study.json"
    if saved.is_file():
        previous = json.loads(saved.read_text())
        if previous.get("name") != spec.name:
            raise InvalidArgumentError(
                f"{directory} holds study {previous.get('name')!r}, not {spec.name!r}; pick another --out"
            )


class Study:
    """A study directory and its runs (see module docstring)."""

    def __init__(self, directory: Path | str, spec: StudySpec):
        self.directory, self.spec = Path(directory), spec
        self.status_path = self.directory / "status.json"
        self.status = self._read_status()

    @classmethod
    def open(cls, directory: Path | str, spec_path: Path | str | None = None) -> Study:
        """Open a study directory, creating it from ``spec_path``; an existing directory must
        hold the same expansion (or a spec that only adds runs)."""
        from robustrl.experiments.spec import parse_spec

        directory = Path(directory)
        saved = directory / "study.json"
        if spec_path is None:
            if not saved.is_file():
                raise InvalidArgumentError(f"{directory} is not a study directory (no study.json)")
            spec = parse_spec(json.loads(saved.read_text())["spec"], where=str(saved))
        else:
            spec = load_spec(spec_path)
            _check_same_study(directory, spec)
        directory.mkdir(parents=True, exist_ok=True)
        expansion = {r.name: {"label": r.label, "config": r.config.to_dict()} for r in spec.runs}
        atomic_write_text(saved, json.dumps({"name": spec.name, "spec": spec.source, "runs": expansion}, indent=1))
        return cls(directory, spec)

    @classmethod
    def inspect(cls, directory: Path | str, spec: StudySpec) -> Study:
        """The study in ``directory`` as ``study run`` with ``spec`` would find it, read only (a
        dry run): the same check as :meth:`open`, nothing created or written."""
        _check_same_study(Path(directory), spec)
        return cls(directory, spec)

    def run_dir(self, run: RunSpec) -> Path:
        return self.directory / "runs" / run.name

    def steps_trained(self, run: RunSpec) -> tuple[int, int]:
        """(env steps trained, env steps planned) of ``run``, as the progress bar counts them."""
        planned = _planned(run.config)
        state, run_dir = self.status["runs"][run.name]["train"], self.run_dir(run)
        if state not in ("done", "running") and not any((run_dir / "checkpoints").glob("*.safetensors")):
            return 0, planned  # progress without a checkpoint to resume from: it trains again from step 0
        return _steps_trained(run_dir, planned, state == "done"), planned

    # ---- status ----
    def _read_status(self) -> dict[str, Any]:
        status = {"runs": {}}
        if self.status_path.is_file():
            try:
                status = json.loads(self.status_path.read_text())
            except json.JSONDecodeError:
                pass  # rebuilt from the run directories below
        names = {run.name for run in self.spec.runs}
        for name in [n for n in status.get("retired", {}) if n in names]:  # back in the spec
            status["runs"][name] = status["retired"].pop(name)
        for run in self.spec.runs:
            entry = status["runs"].setdefault(
                run.name, {"label": run.label, "env": run.env_id, "seed": run.config.seed}
            )
            for task in ("train", "evaluate"):
                entry.setdefault(task, "pending")
                entry.setdefault(f"{task}_attempts", 0)
                if entry[task] == "running":  # a runner that died: its tasks resume
                    entry[task] = "pending"
            entry.pop("fits_running", None)  # as its fits (those done stay booked in fits_done)
            if entry["train"] == "done" and not run_complete(self.run_dir(run), run.config.num_iterations):
                entry["train"] = entry["evaluate"] = "pending"  # the directory was removed or damaged
                entry.pop("fits_done", None)  # with the agent they were fitted on
            elif entry["evaluate"] == "done" and not self._evaluated(run):
                # the spec's evaluation changed (an attack added, sampled actions, another eps): the
                # task runs again, and its report resumes, so only the missing cells are computed
                entry["evaluate"] = "pending"
        _retire_runs(status, names)
        return status

    def save_status(self, finished: bool = False) -> None:
        now = time.time()
        if getattr(self, "_started", None) is not None:
            # wall-clock the study has run, summed over invocations (a study interrupted and resumed
            # in another session still says what it cost end to end)
            self.status["wall_seconds"] = self._wall_before + now - self._started
        self.status["runner"] = {"pid": os.getpid(), "heartbeat": now, "finished": finished}
        atomic_write_text(self.status_path, json.dumps(self.status, indent=1))

    def _set(self, run: RunSpec, task: str, state: str, error: str | None = None) -> None:
        entry = self.status["runs"][run.name]
        if entry[task] == "failed" and state in ("pending", "running"):
            # a fit failed past its retries: a sibling fit stopped, lost or still running does not
            # undo it (only --retry-failed does, which resets the entry itself)
            return
        entry[task] = state
        if error is not None:
            entry[f"{task}_error"] = error
        elif state == "done":
            entry.pop(f"{task}_error", None)
        self.save_status()

    def _evaluated(self, run: RunSpec) -> bool:
        """Whether ``run``'s report at the table's eps holds every attack its evaluation task runs."""
        return self.holds(self.report(run), ["natural", *self.evaluation_tasks(run)])

    def holds(self, report: dict[str, Any] | None, attacks: Sequence[str]) -> bool:
        """Whether ``report`` holds every one of ``attacks``, each learned one fitted as often as
        the spec's ``evaluation.fits`` asks (a spec that asks for more fits evaluates again)."""
        from robustrl.evaluate.robustness import attack_done

        fits = self.spec.evaluation.fits
        return report is not None and all(attack_done(report, a, fits.get(a, 1)) for a in attacks)

    # ---- running ----
    def evaluation_tasks(self, run: RunSpec) -> list[str]:
        """Attacks of ``run``'s evaluation task: all of them, or with the median protocol the
        cheap ones (the expensive ones run on the median agent after its group is evaluated)."""
        from robustrl.evaluate.reports import split_attacks

        attacks = list(self.spec.evaluation.attacks)
        return list(split_attacks(attacks)[0]) if self.spec.evaluation.median else attacks

    def selected(self, name: str, only: Sequence[str] = ()) -> bool:
        """Whether run ``name`` is in ``only`` (shell patterns over run names and method labels,
        ``bar-ppo-k1`` or ``*Walker2d*``); everything when ``only`` is empty."""
        if not only:
            return True
        run = self.spec.run(name)
        # the spec's method label too: a method with grid axes labels its runs ``ppo-sp0.5``, and
        # ``--only ppo`` (the name the spec gives it) must select them
        return any(fnmatch.fnmatchcase(n, p) for n in (name, run.label, run.method) for p in only)

    def reuse_runs(self, other: Path | str, only: Sequence[str] = (), dry_run: bool = False) -> dict[str, list[str]]:
        """Take what study directory ``other`` has already done for runs of this spec (those ``only``
        selects): a run of the same name (so the same config: the name holds its hash) that
        ``other`` has trained to the end and this study has not (not started, or stopped partway:
        that directory is moved to ``<study>/set_aside/``, not deleted) is copied in whole, with its
        reports and fitted attacks, and its status starts afresh (marked ``reused_from``: left out
        of the study's rates); a run both have finished gets the fitted attacks only ``other``
        holds (each cached fit is checked against its victim when loaded). The runner then finds
        the training complete and the evaluations resume from what was copied. Returns the names
        of the ``runs`` copied and of the runs given ``attacks`` (``dry_run``: what it would copy,
        copying nothing). Refused while another runner works on this study. For studies that share
        runs (a reliability study attacking every seed of another study's method)."""
        import shutil

        other = Path(other)
        if not (other / "runs").is_dir():
            raise InvalidArgumentError(f"--reuse-from {other}: not a study directory (it has no runs/)")
        runner = self.status.get("runner", {})
        live = self.status_path.is_file() and runner.get("pid") not in (None, os.getpid())
        if not dry_run and live and study_status(self.directory)["runner_alive"]:
            raise InvalidArgumentError(f"{self.directory}: another runner (pid {runner['pid']}) is working on it; "
                                       "stop it before copying runs in")  # fmt: skip
        copied: dict[str, list[str]] = {"runs": [], "attacks": []}
        for run in self.spec.runs:
            source, target = other / "runs" / run.name, self.run_dir(run)
            if not self.selected(run.name, only) or not source.is_dir() or source.resolve() == target.resolve():
                continue
            planned = run.config.num_iterations
            if not run_complete(target, planned):
                if run_complete(source, planned):
                    copied["runs"].append(run.name)
                    if not dry_run:
                        self._copy_run(source, target)
                        entry = self.status["runs"][run.name]
                        for task in ("train", "evaluate"):
                            entry[task], entry[f"{task}_attempts"] = "pending", 0
                            entry.pop(f"{task}_error", None)
                        entry.pop("fit_attempts", None)
                        entry.pop("fits_done", None)  # fitted on the agent the copy replaced
                        entry["reused_from"] = str(other)
                continue
            # weights before their JSON: a cache is found by its JSON, so a copy cut short between
            # the two leaves no JSON pointing at missing weights
            files = sorted((source / "attacks").rglob("*"), key=lambda f: (f.suffix == ".json", str(f)))
            new = [f for f in files if f.is_file() and not (target / f.relative_to(source)).exists()]
            if new:
                copied["attacks"].append(run.name)
            for file in [] if dry_run else new:
                destination = target / file.relative_to(source)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, destination.with_name(destination.name + ".partial"))
                os.replace(destination.with_name(destination.name + ".partial"), destination)
        if copied["runs"] and not dry_run:
            self.save_status()
        return copied

    def _copy_run(self, source: Path, target: Path) -> None:
        """Copy run directory ``source`` to ``target`` beside it and rename it into place (never a
        half-copied run that would pass for one); a ``target`` stopped partway is set aside first."""
        import shutil

        if target.exists():
            _set_aside(target)
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)  # a copy cut short before
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, partial)
        os.replace(partial, target)

    def retry_failed(self, only: Sequence[str] = (), save: bool = True) -> int:
        """Give the failed tasks of the runs ``only`` selects their ``retries`` again (``study run
        --retry-failed``: after the cause is fixed, e.g. a damaged run directory or a full disk);
        their last error stays in the status until they succeed. Returns how many were reset."""
        reset = 0
        for name, entry in self.status["runs"].items():
            if not self.selected(name, only):
                continue
            for task in ("train", "evaluate"):
                if entry.get(task) == "failed":
                    entry[task], entry[f"{task}_attempts"] = "pending", 0
                    if task == "evaluate":
                        entry.pop("fit_attempts", None)
                    reset += 1
        if reset and save:
            self.save_status()
        return reset

    def plan(self, only: Sequence[str] = ()) -> list[tuple[str, str]]:
        """The (task, run name) pairs an invocation starts with, in order: the evaluations of trained
        runs (trained agents are attacked first), the median agents' learned attacks still missing,
        then the trainings; failed tasks past ``retries`` are left out; with ``only``, the tasks of
        the selected runs (:meth:`selected`: the method a quality goal is about first, the rest in
        a later invocation) and the learned attacks of their groups' median agents (as :meth:`run`
        queues them when a selected run completes its group). ``study run --dry-run`` prints it."""
        runs = {run.name: run for run in self.spec.runs}
        queue: list[tuple[str, str]] = []
        trainings = []
        for run in self.spec.runs:
            entry = self.status["runs"][run.name]
            if entry["train"] != "done":
                if entry["train"] != "failed" or entry["train_attempts"] <= self.spec.retries:
                    trainings.append(("train", run.name))
            elif entry["evaluate"] != "done" and (
                entry["evaluate"] != "failed"
                or (entry["evaluate_attempts"] <= self.spec.retries
                    and all(n <= self.spec.retries for n in entry.get("fit_attempts", {}).values()))  # a fit failed for good
            ):  # fmt: skip
                queue.append(("evaluate", run.name))  # trained agents are attacked first
        if self.spec.evaluation.median:  # groups evaluated before a restart whose median still lacks its attacks
            for run in self.spec.runs:
                median = self._median_ready(run)
                report = self.report(runs[median]) if median else None
                if (
                    median
                    and ("median", median) not in queue
                    and not self.holds(report, self.median_attacks())
                ):
                    queue.append(("median", median))

        def wanted(task: str, name: str) -> bool:
            if task != "median":
                return self.selected(name, only)
            # a median task is its group's, whichever seed the median is: the same rule as run()'s
            # follow-up, so a study stopped before its median's attacks resumes them under the same --only
            return any(self.selected(r.name, only) for r in self.group(runs[name]))

        return [(task, name) for task, name in queue + trainings if wanted(task, name)]

    def medians_later(self, plan: Sequence[tuple[str, str]]) -> int:
        """Median agents whose learned attacks ``plan`` leads to once it has evaluated their whole
        group: groups with a run ``plan`` trains or evaluates and no run left waiting outside it
        (with ``--only``, a group's unselected runs may wait)."""
        if not (self.spec.evaluation.median and self.median_attacks()):
            return 0
        queued = {name for task, name in plan if task in ("train", "evaluate")}
        group = lambda r: (r.label, r.env_id)  # noqa: E731
        waiting = {group(r) for r in self.spec.runs if r.name not in queued and self.status["runs"][r.name]["evaluate"] != "done"}
        return len({group(r) for r in self.spec.runs if r.name in queued} - waiting)

    def cost_left(self, only: Sequence[str] = (), workers: int | None = None) -> dict[str, Any]:
        """What :meth:`plan` (and the median agents' attacks it leads to) should take at this
        study's own rates: ``worker_hours``, ``hours`` on ``workers`` (no more than the tasks that
        can run at once), and ``unpriced``, the kinds of task nothing here has measured yet."""
        plan = self.plan(only)
        later = self.medians_later(plan)
        seconds, unpriced = self.plan_seconds(plan, later)
        # a median agent's fits are tasks of their own (with_fits): one median left still keeps
        # as many workers busy as it has fits to make
        fits = sum(self.spec.evaluation.fits.get(a, 1) for a in self.median_attacks())
        parallel = max(1, min(workers or os.cpu_count() or 1, len(self.with_fits(plan)) + later * (fits + 1)))
        return {"worker_hours": seconds / 3600, "hours": seconds / 3600 / parallel, "workers": parallel,
                "unpriced": unpriced, "tasks": len(plan) + later}  # fmt: skip

    def task_seconds(self) -> dict[str, Any]:
        """What this study's finished tasks took, per worker, to price a plan by (`study run
        --dry-run`): seconds per env step of training and mean seconds of a (cheap) evaluation, per
        method label and over the study (``"*"``), and the mean extra seconds of a median agent's
        learned attacks. Runs copied in from another study book no seconds and are left out; a
        median agent's evaluation is counted as its learned attacks (their time less a cheap
        evaluation's), not as an evaluation."""
        steps: dict[str, float] = {}
        seconds: dict[str, float] = {}
        evaluations: dict[str, list[float]] = {}
        medians: list[float] = []
        learned = self.median_attacks()
        for run in self.spec.runs:
            entry = self.status["runs"][run.name]
            if entry["train"] == "done" and entry.get("train_seconds", 0.0) > 0:
                for key in (run.label, "*"):
                    steps[key] = steps.get(key, 0.0) + self.steps_trained(run)[1]
                    seconds[key] = seconds.get(key, 0.0) + entry["train_seconds"]
            if entry.get("reused_from"):
                continue  # copied in from another study (--reuse-from): what it booked here is no evaluation's cost
            if entry.get("evaluate_seconds", 0.0) > 0:  # booked when it finished (a changed evaluation re-queues it)
                # the rates are of one fit per learned attack: plan_seconds prices the fits beyond it
                booked = max(entry["evaluate_seconds"] - self._extra_fit_seconds(run), 0.0)
                # a median agent's time is its learned attacks' once its report holds them all (not
                # its mark, which moves when a group grows, nor an attack stopped halfway)
                if self.spec.evaluation.median and learned and all(a in self._results(run) for a in learned):
                    medians.append(booked)
                elif self.spec.evaluation.median and learned and entry.get("median_agent"):
                    continue  # its learned attacks are under way: neither a cheap evaluation nor theirs
                else:
                    for key in (run.label, "*"):
                        evaluations.setdefault(key, []).append(booked)
        evaluation = {key: sum(v) / len(v) for key, v in evaluations.items()}
        median = sum(medians) / len(medians) - evaluation.get("*", 0.0) if medians else None
        return {"per_step": {k: seconds[k] / steps[k] for k in steps if steps[k]}, "evaluation": evaluation, "median": median,
                "fit": self._fit_seconds()}  # fmt: skip

    def _fit_seconds(self) -> dict[str, float]:
        """Mean seconds of one fit (fitting and its episodes) per learned attack of ``evaluation.fits``
        (key: the attack) and per attack and task (``sa-rl@Walker2d-v5``: the BARPO studies' SA-RL
        fits took 157 s on HalfCheetah, 241 s on Walker2d, 379 s on Ant on average), from the fits
        the study's reports hold with their seconds."""
        times: dict[str, list[float]] = {}
        for run in self.spec.runs:
            for name, _, seconds in self._fit_times(run):
                for key in (name, f"{name}@{run.env_id}"):
                    times.setdefault(key, []).append(seconds)
        return {key: sum(v) / len(v) for key, v in times.items()}

    def _fit_times(self, run: RunSpec) -> list[tuple[str, int, float]]:
        """(attack, fit index, seconds of fitting and its episodes) of every fit of ``evaluation.fits``'
        attacks that ``run``'s report holds and that this study made: fitted by the report itself, or
        by one of this study's fit tasks (booked in status.json's ``fits_made``; the report then
        loaded it from the cache, which kept its seconds). A cache copied from elsewhere is no cost
        of this study's."""
        from robustrl.evaluate.robustness import fit_records

        results, times = self._results(run), []
        made = self.status["runs"][run.name].get("fits_made", [])
        for name in self.spec.evaluation.fits:
            if "mean" in results.get(name, {}):
                for j, fit in enumerate(fit_records(results[name])):
                    ours = not fit.get("loaded_fitted_attack") or fit_label(name, j) in made
                    if ours and fit.get("fit_seconds", 0) > 0:
                        times.append((name, j, fit["fit_seconds"] + fit.get("eval_seconds", 0.0)))
        return times

    def _extra_fit_seconds(self, run: RunSpec) -> float:
        """Seconds ``run``'s report spent on fits beyond the first of each learned attack: booked in
        its evaluation's seconds, priced apart."""
        return sum(seconds for _, j, seconds in self._fit_times(run) if j > 0)

    def _fits_left(self, run: RunSpec | None, attacks: Sequence[str]) -> tuple[dict[str, int], bool]:
        """Fits of ``attacks`` that ``run``'s evaluation still has to make beyond one per attack,
        per attack, and whether its report already holds one of each (then only those are left)."""
        from robustrl.evaluate.robustness import fits_done

        results = self._results(run) if run is not None else {}
        whole = run is not None and all(fits_done(results.get(a)) >= 1 for a in ["natural", *attacks])
        left = {}
        for name, wanted in self.spec.evaluation.fits.items():
            if name in attacks:
                done = fits_done(results.get(name)) if whole else 1
                if wanted > done:
                    left[name] = wanted - done
        return left, whole

    def _results(self, run: RunSpec) -> dict[str, Any]:
        """The attacks ``run``'s evaluation report holds ({} without a report)."""
        return (self.report(run) or {}).get("results", {})

    def plan_seconds(self, plan: Sequence[tuple[str, str]], medians_later: int = 0) -> tuple[float, list[str]]:
        """Worker-seconds ``plan`` (:meth:`plan`, and ``medians_later`` median agents whose groups
        it completes) should take at this study's own rates (:meth:`task_seconds`: a method's own
        where it has finished tasks here, else the study's), and the kinds of task it could not
        price because nothing of that kind has finished here."""
        rates = self.task_seconds()
        runs = {run.name: run for run in self.spec.runs}
        total, unpriced = 0.0, set()
        for task, name in [*plan, *[("median", "")] * medians_later]:
            run = runs.get(name)
            costs = []
            if task == "train":
                rate = rates["per_step"].get(run.label, rates["per_step"].get("*"))
                trained, planned = self.steps_trained(run)
                costs.append(("train", None if rate is None else rate * (planned - trained)))
            attacks = self.evaluation_tasks(run) if task in ("train", "evaluate") else list(self.median_attacks())
            # fits beyond the first of each learned attack (evaluation.fits): each at the study's own
            # rate for that attack; a report that holds every attack once needs only those
            extra, whole = self._fits_left(run if task in ("evaluate", "median") else None, attacks)
            for name, count in extra.items():
                # the task's own rate where this study has fitted the attack on it, else the study's
                rate = rates["fit"].get(f"{name}@{run.env_id}" if run else "", rates["fit"].get(name))
                costs.append((f"{name} fits", None if rate is None else rate * count))
            if task in ("train", "evaluate") and not whole:  # a training is evaluated after
                costs.append(("evaluate", rates["evaluation"].get(run.label, rates["evaluation"].get("*"))))
            if task == "median" and not whole:
                costs.append(("learned attacks", rates["median"]))
            for kind, cost in costs:
                if cost is None:
                    unpriced.add(kind)
                else:
                    total += max(cost, 0.0)
        return total, sorted(unpriced)

    def run(
        self, executor: Any, progress: Progress | None = None, poll_seconds: float = 1.0, only: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Run every pending task (of the runs ``only`` selects) to completion or failure; returns
        the status."""
        evaluation = asdict(self.spec.evaluation)
        runs = {run.name: run for run in self.spec.runs}
        # (task, run name) ready to submit; follow-ups stay in the selected runs, but for the learned
        # attacks of a group a selected run completes (its median agent may be an unselected seed)
        queue = self.with_fits(self.plan(only))
        running: dict[Any, tuple[str, str]] = {}
        lost = 0
        self._started, self._wall_before = time.time(), float(self.status.get("wall_seconds", 0.0))
        self.status["invocations"] = int(self.status.get("invocations", 0)) + 1
        self.status.setdefault("workers", []).append(getattr(executor, "workers", None))

        def unbook_fit(task: str, name: str) -> None:
            """A fit task no longer running (finished, lost): out of `study status`'s running fits."""
            if task in self.status["runs"][name].get("fits_running", []):
                self.status["runs"][name]["fits_running"].remove(task)

        def submit(task: str, name: str) -> None:
            run = runs[name]
            if task == "train":
                # a training (e.g. of a directory set aside) makes a new agent: no fit of it is done
                self.status["runs"][name].pop("fits_done", None)
                handle = executor.submit(train_task, str(self.run_dir(run)), run.config.to_dict())
            elif task.startswith(FIT):
                attack, fit = parse_fit(task)
                handle = executor.submit(fit_task, str(self.run_dir(run)), run.env_id, evaluation, attack, fit)
            else:
                attacks = self.evaluation_tasks(run) if task == "evaluate" else list(self.median_attacks())
                handle = executor.submit(
                    evaluate_task, str(self.run_dir(run)), run.env_id, evaluation, attacks, task == "median"
                )
            running[handle] = (task, name)
            if task.startswith(FIT):  # `study status` shows an evaluation's fits: done, running
                fits = self.status["runs"][name].setdefault("fits_running", [])
                if task not in fits:
                    fits.append(task)
            self._set(run, "train" if task == "train" else "evaluate", "running")

        def record(handle: Any, stopping: bool = False) -> bool:
            """Book one finished task; False if its worker died (the pool was replaced)."""
            nonlocal lost
            task, name = running.pop(handle)
            run = runs[name]
            key = "train" if task == "train" else "evaluate"  # a median agent's fits and attacks are its evaluation's
            unbook_fit(task, name)
            try:
                result = executor.result(handle)
            except WorkerLost:
                if stopping:
                    self._set(run, key, "pending")
                    return True
                lost += 1
                if lost > 3 * len(runs) + 3:
                    raise RuntimeError("study workers keep dying; see status.json") from None
                executor.recover()
                # every task of the broken pool was lost with it: requeue them (they resume), but
                # not the tasks of a run a failed fit has failed
                for other in list(running):
                    lost_task = running.pop(other)
                    unbook_fit(*lost_task)
                    if self.status["runs"][lost_task[1]]["evaluate"] != "failed" or lost_task[0] == "train":
                        queue.insert(0, lost_task)
                if self.status["runs"][name][key] != "failed":
                    queue.insert(0, (task, name))
                self._set(run, key, "pending")
                return False
            except CancelledError:  # never started (submitted ahead of a free worker)
                self._set(run, key, "pending")
                return True
            entry = self.status["runs"][name]
            # each task's own seconds, summed over attempts: the per-run cost a study's plan needs
            entry[f"{key}_seconds"] = entry.get(f"{key}_seconds", 0.0) + float(result.get("seconds") or 0.0)
            if result.get("set_aside"):  # booked, so `study status` and status.json say where it went
                entry["train_set_aside"] = result["set_aside"]
            if result.get("ok") and task.startswith(FIT):
                if not result.get("cached") and task not in entry.setdefault("fits_made", []):
                    entry["fits_made"].append(task)  # this study's cost (pricing), not a cache's from elsewhere
                if task not in entry.setdefault("fits_done", []):
                    entry["fits_done"].append(task)  # cached, for the task that waits for them (until it has run)
                # one fit of a median agent, cached: its evaluation is done once the median task
                # that waits for its fits has run (a failed sibling keeps it failed)
                if entry[key] != "failed":
                    self._set(run, key, "running" if name in (n for _, n in running.values()) else "pending")
                else:
                    self.save_status()  # what it booked (_set, which saves, leaves a failed run as it is)
                return True
            if result.get("ok"):
                if task != "train":
                    entry.pop("fits_done", None)  # the report holds them now
                self._set(run, key, "done")
                # evaluations go first: they are short, and a study stopped early then still has
                # whole rows (trained and attacked) rather than many trained, unattacked agents
                if task == "train":
                    queue[0:0] = self.with_fits([("evaluate", name)])
                elif task == "evaluate" and self.spec.evaluation.median:
                    median = self._median_ready(run)
                    if median is not None:
                        queue[0:0] = self.with_fits([("median", median)])
                return True
            if result.get("error") == "interrupted":  # stopped on request, saved: not an attempt
                self._set(run, key, "pending")
                return True
            if task.startswith(FIT):  # each fit has its own retries: two fits failing once is no run failing twice
                attempts = entry.setdefault("fit_attempts", {})
                attempts[task] = attempts.get(task, 0) + 1
                retry = attempts[task] <= self.spec.retries
            else:
                entry[f"{key}_attempts"] += 1
                retry = entry[f"{key}_attempts"] <= self.spec.retries
            if retry:
                self._set(run, key, "pending", result.get("error"))
                queue.append((task, name))
            else:
                self._set(run, key, "failed", result.get("error"))
                queue[:] = [t for t in queue if t[1] != name]  # its median task and other fits: nothing to wait for
            return True

        self.save_status()
        saved = time.time()
        with _stop_signals() as stops:
            try:
                while queue or running:
                    if stops.count:
                        raise KeyboardInterrupt
                    if time.time() - saved >= HEARTBEAT_SECONDS:
                        self.save_status()
                        saved = time.time()
                    # no task submitted ahead of a free worker: one queued inside the pool would
                    # be reported as running, and a finished training's evaluation, which jumps
                    # the queue, would wait behind it (wait() returns as soon as one task ends)
                    while len(running) < getattr(executor, "workers", 10**9):
                        ready = next((i for i, t in enumerate(queue) if self._ready(t, queue, running.values())), None)
                        if ready is None:  # nothing queued, or a median task waits for its fits
                            break
                        submit(*queue.pop(ready))
                    self._report(progress)
                    done = executor.wait(list(running), timeout=poll_seconds) if running else []
                    for handle in done:
                        if not record(handle):
                            break
            except (KeyboardInterrupt, RuntimeError) as error:
                if isinstance(error, RuntimeError) and not stops.count:
                    raise  # a real error, not a third Ctrl-C that broke a lock it landed in
                # Ctrl-C or SIGTERM: every running task stops at a safe point (a training finishes its
                # iteration and saves), is booked as pending and resumes on the next `study run`; a
                # second Ctrl-C stops at once (the runs resume from their last periodic checkpoint)
                try:
                    for handle in list(running):
                        if handle.cancel() if hasattr(handle, "cancel") else False:
                            record(handle, stopping=True)
                    executor.interrupt()
                    deadline = time.time() + STOP_GRACE_SECONDS
                    while running and time.time() < deadline and stops.count < 2:
                        for handle in executor.wait(list(running), timeout=1.0):
                            record(handle, stopping=True)
                    if running:  # a second Ctrl-C, or tasks that did not stop within the grace period
                        executor.shutdown(wait=False)
                except (KeyboardInterrupt, RuntimeError):  # a third, raised wherever it landed
                    executor.shutdown(wait=False)
                for task, name in running.values():
                    self.status["runs"][name].pop("fits_running", None)
                    self._set(runs[name], "train" if task == "train" else "evaluate", "pending")
                self.save_status()
                raise KeyboardInterrupt from None
        self._report(progress)
        self.save_status(finished=True)
        return self.status

    def with_fits(self, tasks: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """``tasks`` with each task that fits expensive learned attacks (SA-RL, PA-AD: a median
        task, or an evaluation task without the median protocol) preceded by one task per fit its
        report does not hold yet (``fit:<attack>:<j>``, :func:`fit_task`): the fits run side by side
        on free workers and the task, which waits for them (:meth:`_ready`), loads them and runs
        the episodes. Fitted in one task, one after another, 3 SA-RL fits and PA-AD kept one worker
        busy for an hour on Ant while the other idled."""
        from robustrl.evaluate.reports import split_attacks
        from robustrl.evaluate.robustness import fits_held

        runs = {run.name: run for run in self.spec.runs}
        expanded: list[tuple[str, str]] = []
        for task, name in tasks:
            expensive = {"median": self.median_attacks(), "evaluate": split_attacks(self.evaluation_tasks(runs[name]))[1]}
            if task in expensive:
                results = self._results(runs[name])
                evaluation = self.spec.evaluation
                for attack in expensive[task]:
                    # as robustness_report counts them: a result under other options or another
                    # budget is fitted again, so its fits are not the report's
                    done = fits_held(results.get(attack), attack, evaluation.attack_options.get(attack, {}), evaluation.budgets.get(attack))
                    expanded += [(fit_label(attack, j), name) for j in range(done, self.spec.evaluation.fits.get(attack, 1))]
            expanded.append((task, name))
        return expanded

    @staticmethod
    def _ready(task: tuple[str, str], queue: Sequence[tuple[str, str]], running: Any) -> bool:
        """Whether a queued task can start: a median or evaluation task once no fit of its run is
        queued or running."""
        kind, name = task
        if kind not in ("median", "evaluate"):
            return True
        return not any(k.startswith(FIT) and n == name for k, n in [*queue, *running])

    def group(self, run: RunSpec) -> list[RunSpec]:
        """``run``'s (label, env) group: the seeds the median-agent protocol picks one agent of."""
        return [r for r in self.spec.runs if r.label == run.label and r.env_id == run.env_id]

    def median_attacks(self) -> tuple[str, ...]:
        """The expensive (learned) attacks the median protocol runs on each group's median agent."""
        from robustrl.evaluate.reports import split_attacks

        return split_attacks(list(self.spec.evaluation.attacks))[1]

    def _median_ready(self, finished: RunSpec) -> str | None:
        """When every run of ``finished``'s (label, env) group has its cheap report, the median
        agent (BARPO App. F.3) gets the expensive attacks."""
        from robustrl.evaluate.robustness import median_agent

        if not self.median_attacks():
            return None
        group = self.group(finished)
        if any(self.status["runs"][r.name]["evaluate"] != "done" for r in group):
            return None
        reports = [self.report(r) for r in group]
        if any(report is None for report in reports):
            return None
        median = group[median_agent(reports, self.evaluation_tasks(group[0]))]
        for run in group:  # a group that grew (more seeds) has a new median: one mark per group
            self.status["runs"][run.name].pop("median_agent", None)
        self.status["runs"][median.name]["median_agent"] = True
        return median.name

    def report(self, run: RunSpec, eps: float | None = None) -> dict[str, Any] | None:
        """The run's report at ``eps`` (default: the table's eps), or None before it exists."""
        from robustrl.evaluate.reports import report_path

        if eps is None:
            eps = self.spec.evaluation.eps if self.spec.evaluation.eps is not None else report_eps(run.env_id)
        path = report_path(self.run_dir(run), eps, self.spec.evaluation.norm, self.spec.evaluation.deterministic)
        try:
            return json.loads(path.read_text()) if path.is_file() else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None  # damaged: the evaluation runs again (its report is replaced atomically)

    def reports(self, run: RunSpec) -> list[dict[str, Any]]:
        """Every report of the run: the table's eps, then the sweep's."""
        found = [self.report(run)] + [self.report(run, eps) for eps in self.spec.evaluation.eps_sweep]
        return [r for r in found if r is not None]

    def _report(self, progress: Progress | None) -> None:
        """One progress view for the whole study: env steps trained over all runs, tasks done."""
        if progress is None:
            return
        total = steps = 0
        for run in self.spec.runs:
            planned = _planned(run.config)
            total += planned
            steps += _steps_trained(self.run_dir(run), planned, self.status["runs"][run.name]["train"] == "done")
        entries = self.status["runs"].values()
        done = sum(e["train"] == "done" for e in entries) + sum(e["evaluate"] == "done" for e in entries)
        failed = sum(e["train"] == "failed" or e["evaluate"] == "failed" for e in entries)
        progress("study steps", min(steps, total), total, label=f"{self.spec.name}: env steps")
        progress("study tasks", done, 2 * len(self.spec.runs), label=f"{self.spec.name}: tasks ({failed} failed)")


def _steps_trained(run_dir: Path, planned: int, done: bool) -> int:
    """Env steps a run has trained, as the study's progress bar and `study status` count them: all
    of its plan once its training is booked done, else its last complete progress row (capped)."""
    return planned if done else min(_last_global_step(run_dir), planned)


def _last_global_step(run_dir: Path) -> int:
    path = run_dir / "progress.csv"
    if not path.is_file():
        return 0
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 4096))  # the last rows are short; the file may be long
            text = handle.read().decode(errors="ignore")
        # complete rows only: the last one may be half written ("12,245" of "12,24576,...")
        rows = [line for line in text.split("\n")[:-1] if line[:1].isdigit()]
        return int(rows[-1].split(",")[1]) if rows else 0
    except (OSError, ValueError, IndexError):
        return 0


def make_executor(backend: str, workers: int | None, address: str | None = None) -> Any:
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"unknown backend {backend!r}; choose {' or '.join(BACKENDS)}")
    if workers is not None and workers < 1:
        raise InvalidArgumentError(f"--workers must be >= 1, got {workers}")
    if backend == "ray":
        return RayExecutor(address, workers)
    return LocalExecutor(workers or max(1, os.cpu_count() or 1))


def run_study(spec_path: Path | str, directory: Path | str, *, backend: str = "local", workers: int | None = None,
              address: str | None = None, progress: Progress | None = None, only: Sequence[str] = (),
              retry_failed: bool = False) -> Study:  # fmt: skip
    """Expand ``spec_path`` into ``directory`` and run what is not done yet (of the runs ``only``
    selects: :meth:`Study.selected`; with ``retry_failed``, failed tasks too); then write the
    results store. Returns the :class:`Study` (its ``status`` says what happened)."""
    _check_only(Study.inspect(directory, load_spec(spec_path)), only)  # a typo fails before anything is written
    study = Study.open(directory, spec_path)
    if retry_failed:
        study.retry_failed(only)
    executor = make_executor(backend, workers, address)
    try:
        study.run(executor, progress, only=only)
    finally:
        executor.shutdown()
    from robustrl.experiments.results import collect_results

    collect_results(study)
    return study


def _check_only(study: Study, only: Sequence[str]) -> None:
    """A pattern that selects no run is a typo, not an empty study: say so, name the labels."""
    for pattern in only:
        if not any(study.selected(run.name, (pattern,)) for run in study.spec.runs):
            labels = sorted({run.method or run.label for run in study.spec.runs})
            raise InvalidArgumentError(f"--only {pattern!r} selects no run of {study.spec.name}; labels: {', '.join(labels)}")


def _retire_runs(status: dict[str, Any], names: set[str]) -> None:
    """Runs of an earlier version of the spec (a method or axis changed) move from ``runs`` to
    ``retired``: kept on record (their directories and seconds too), no longer the study's work."""
    for name in [n for n in status["runs"] if n not in names]:
        entry = status["runs"].pop(name)
        for task in ("train", "evaluate"):
            if entry.get(task) == "running":
                entry[task] = "pending"
        status.setdefault("retired", {})[name] = entry


def planned_steps(config: dict[str, Any]) -> int:
    """Env steps a run of this config trains: whole iterations (TrainConfig.num_iterations), as
    the study's progress bar counts them; 0 for a config that does not load."""
    from robustrl.config import TrainConfig

    try:
        parsed = TrainConfig.from_dict(config)
    except Exception:  # an old or hand-edited config: no progress shown for it, nothing fails
        return 0
    return _planned(parsed)


def _planned(config: Any) -> int:
    """A TrainConfig's env steps in whole iterations (the last partial batch is not collected)."""
    return config.num_iterations * config.ppo.steps_per_iteration


def study_status(directory: Path | str) -> dict[str, Any]:
    """What is done, running, failed (a runner whose heartbeat is old is reported as stopped), and
    how far the trainings are: per run ``steps_done`` / ``steps_total`` and over the study
    ``train_steps`` (done, total) in env steps."""
    directory = Path(directory)
    path = directory / "status.json"
    if not (directory / "study.json").is_file():
        raise InvalidArgumentError(f"{directory} is not a study directory (no study.json)")
    status = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    current = json.loads((directory / "study.json").read_text()).get("runs", {})
    if current:
        _retire_runs(status, set(current))
    for name in current:  # runs of the spec the runner has not booked in status.json yet
        status["runs"].setdefault(name, {"train": "pending", "evaluate": "pending"})
    runner = status.get("runner", {})
    alive = False
    if runner.get("pid") and not runner.get("finished"):
        try:
            os.kill(int(runner["pid"]), 0)
            alive = time.time() - float(runner.get("heartbeat", 0)) < 24 * 3600
        except (OSError, ValueError):
            alive = False
    counts: dict[str, dict[str, int]] = {"train": {}, "evaluate": {}}
    for entry in status["runs"].values():
        for task in counts:
            state = entry.get(task, "pending")
            if state == "running" and not alive:
                state = "stopped"
            counts[task][state] = counts[task].get(state, 0) + 1
    every = [*status["runs"].values(), *status.get("retired", {}).values()]
    steps_done = steps_total = 0
    for name, entry in status["runs"].items():
        config = current.get(name, {}).get("config")
        if config is None:
            try:
                config = json.loads((directory / "runs" / name / "config.json").read_text())
            except (OSError, ValueError):
                continue
        total = planned_steps(config)
        if not total:
            continue
        done = _steps_trained(directory / "runs" / name, total, entry.get("train") == "done")
        entry["steps_done"], entry["steps_total"] = done, total
        steps_done, steps_total = steps_done + done, steps_total + total
    return {"runner_alive": alive, "counts": counts, "runs": status["runs"], "retired": status.get("retired", {}),
            "train_steps": (steps_done, steps_total),
            "wall_seconds": status.get("wall_seconds"), "invocations": status.get("invocations", 0),
            "task_seconds": sum(e.get("train_seconds", 0.0) + e.get("evaluate_seconds", 0.0) for e in every)}  # fmt: skip


# ---- snapshots ------------------------------------------------------------------------------------
SNAPSHOT_SKIP = {"tensorboard", "tb", "results", "__pycache__"}  # rebuilt or not needed to resume


def booked_but_missing(directory: Path | str) -> dict[str, list[str]]:
    """The tasks a study directory's status.json books as done that the runner, reading the
    directory as it does on resume, does not find done (a run directory, final checkpoint or
    report missing): ``{"train": [...], "evaluate": [...]}``, both empty when the directory holds
    everything it books. ``snapshot_study`` checks its copy with it before replacing anything;
    tests/test_committed_state.py checks every committed state in every clone."""
    from robustrl.experiments.spec import parse_spec

    directory = Path(directory)
    status_file = directory / "status.json"
    booked = json.loads(status_file.read_text())["runs"] if status_file.is_file() else {}  # before Study rewrites it
    spec = parse_spec(json.loads((directory / "study.json").read_text())["spec"], where=str(directory / "study.json"))
    found = Study(directory, spec).status["runs"]
    return {
        task: sorted(n for n, entry in booked.items() if entry.get(task) == "done" and found.get(n, {}).get(task) != "done")
        for task in ("train", "evaluate")
    }


def snapshot_study(source: Path | str, dest: Path | str) -> dict[str, Any]:
    """Copy a study to archive or commit it as a resumable state: study.json, status.json and
    every run's config, progress, reports and fitted attacks, with only the run's newest readable
    checkpoint (the resume point: older checkpoints and TensorBoard logs are left out; the results
    store is rebuilt from the runs by ``robustrl report`` or ``study run``). A README.md already in
    ``dest`` is kept. Refuses a study whose runner is alive (Ctrl-C saves every run: stop it
    first), and a ``dest`` holding another study. The copy is checked before it replaces ``dest``:
    every task the source books as done is done in the copy, or nothing is replaced. Returns
    ``{"runs", "bytes", "dest"}``."""
    import shutil

    from robustrl.errors import CheckpointError
    from robustrl.policies.checkpoint import latest_checkpoint

    source, dest = Path(source), Path(dest)
    status = study_status(source)  # raises for a directory that is no study
    if status["runner_alive"]:
        raise InvalidArgumentError(f"{source}: its runner is still running; stop it (Ctrl-C saves every run), then snapshot")
    saved = json.loads((source / "study.json").read_text())
    if (dest / "study.json").is_file():
        other = json.loads((dest / "study.json").read_text()).get("name")
        if other != saved.get("name"):
            raise InvalidArgumentError(f"{dest} holds study {other!r}, not {saved.get('name')!r}; pick another destination")
    elif dest.exists() and any(p.name != "README.md" for p in dest.iterdir()):
        raise InvalidArgumentError(f"{dest} exists and is not a snapshot of a study; pick another destination")
    staging = dest.with_name(dest.name + ".snapshot-tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ("study.json", "status.json"):
        if (source / name).is_file():
            shutil.copy2(source / name, staging / name)
    runs = 0
    for run_dir in sorted((source / "runs").iterdir()) if (source / "runs").is_dir() else []:
        if not run_dir.is_dir():
            continue
        try:
            _, _, newest = latest_checkpoint(run_dir)
            keep = {newest.name + ".json", newest.name + ".safetensors"}
        except CheckpointError:
            keep = set()  # not trained far enough to checkpoint: config and logs only
        shutil.copytree(
            run_dir,
            staging / "runs" / run_dir.name,
            ignore=lambda folder, names, keep=keep: {n for n in names if n in SNAPSHOT_SKIP}
            | ({n for n in names if n not in keep} if Path(folder).name == "checkpoints" else set()),
        )
        runs += 1
    for task, lost in booked_but_missing(staging).items():  # the copy's status.json is the source's
        if lost:
            shutil.rmtree(staging, ignore_errors=True)
            raise RobustRLError(f"snapshot of {source} would lose {task} of {', '.join(lost)}; {dest} left as it was")
    if (dest / "README.md").is_file():
        shutil.copy2(dest / "README.md", staging / "README.md")
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    return {"runs": runs, "bytes": size, "dest": str(dest)}
