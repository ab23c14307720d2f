"""benchmarks/barpo_table2_queue.py: issue 17's studies as one resumable queue. The steps are
stand-in commands here (the queue's logic: order, stop, go on, start from a state, pass SIGTERM
on); the real steps are `robustrl study run`, tested in test_study.py."""

import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from _benchmarks import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def queue():
    yield load_benchmark("barpo_table2_queue")
    sys.modules.pop("barpo_table2_queue", None)


def _steps(queue, *studies):
    return tuple(queue.Step(study, "studies/smoke.yaml", (f"label-{i}",), "why") for i, study in enumerate(studies))


def _stand_in(exit_codes: dict[str, int], log: Path):
    """A step's command: append its study and directory to ``log``, exit with its code."""

    def argv_of(step, directory, workers, dry_run, retry_failed):
        line = f"{step.study} {directory.name} {workers} {dry_run} {retry_failed}"
        script = f"open({str(log)!r}, 'a').write({line!r} + '\\n'); raise SystemExit({exit_codes.get(step.study, 0)})"
        return [sys.executable, "-c", script]

    return argv_of


def test_the_queue_runs_every_step_in_order_and_goes_on_past_a_failed_one(queue, tmp_path, capsys):
    log = tmp_path / "log"
    steps = _steps(queue, "a", "b", "c")
    codes, stopped = queue.run_queue(steps, tmp_path / "root", 2, states=tmp_path / "none", argv_of=_stand_in({"b": 1}, log))
    assert codes == {1: 0, 2: 1, 3: 0} and not stopped
    assert log.read_text().splitlines() == ["a a 2 False False", "b b 2 False False", "c c 2 False False"]
    out = capsys.readouterr().out
    assert "step 2 (b) had failed tasks: fix the cause (its output above), then run the queue again with --retry-failed" in out


def test_an_interrupted_step_stops_the_queue(queue, tmp_path, capsys):
    log = tmp_path / "log"
    codes, stopped = queue.run_queue(_steps(queue, "a", "b", "c"), tmp_path / "root", 1, states=tmp_path / "none",
                                     argv_of=_stand_in({"b": queue.INTERRUPTED}, log))  # fmt: skip
    assert codes == {1: 0, 2: 130} and stopped
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["a", "b"]
    assert "stopped at step 2 (its runs saved)" in capsys.readouterr().out


def test_a_missing_study_directory_starts_from_its_committed_state(queue, tmp_path):
    states, root = tmp_path / "results", tmp_path / "root"
    (states / "a_state" / "runs" / "r1").mkdir(parents=True)
    (states / "a_state" / "status.json").write_text("{}")
    (states / "a_state" / "README.md").write_text("describes the snapshot")
    (root / "b").mkdir(parents=True)
    (root / "b" / "mine").write_text("kept")
    (states / "b_state").mkdir()
    (states / "b_state" / "theirs").write_text("not copied over a directory that exists")
    log = tmp_path / "log"
    queue.run_queue(_steps(queue, "a", "b"), root, 1, states=states, argv_of=_stand_in({}, log))
    assert (root / "a" / "status.json").read_text() == "{}" and (root / "a" / "runs" / "r1").is_dir()
    assert not (root / "a" / "README.md").exists()
    assert sorted(p.name for p in (root / "b").iterdir()) == ["mine"]
    # a dry run writes nothing: its plan is read from the state itself
    queue.run_queue(_steps(queue, "c"), root, 1, dry_run=True, states=states, argv_of=_stand_in({}, log))
    (states / "c_state").mkdir()
    queue.run_queue(_steps(queue, "c"), root, 1, dry_run=True, states=states, argv_of=_stand_in({}, log))
    assert not (root / "c").exists()
    assert log.read_text().splitlines()[-2:] == ["c c 1 True False", "c c_state 1 True False"]


@pytest.mark.parametrize("saves", [True, False])
def test_sigterm_to_the_queue_reaches_the_running_step_and_stops_the_queue(queue, tmp_path, saves):
    """`kill -TERM <queue>` (how a background queue is stopped) must reach the runner, which saves
    its runs on SIGTERM and exits 130; the queue then stops instead of starting the next study. A
    step that a SIGTERM ends before its handler is up (exit -15) stops the queue all the same."""
    started, log = tmp_path / "started", tmp_path / "log"
    handler = "signal.signal(signal.SIGTERM, lambda *_: sys.exit(130)); " if saves else ""
    runner = f"import signal, sys, time; {handler}open({str(started)!r}, 'w').close(); time.sleep(60)"

    def argv_of(step, directory, workers, dry_run, retry_failed):
        with open(log, "a") as f:
            f.write(step.study + "\n")
        return [sys.executable, "-c", runner]

    def terminate_once_started():
        for _ in range(600):
            if started.exists():
                os.kill(os.getpid(), signal.SIGTERM)
                return
            threading.Event().wait(0.05)

    before = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=terminate_once_started, daemon=True).start()
    codes, stopped = queue.run_queue(_steps(queue, "a", "b"), tmp_path / "root", 1, states=tmp_path / "none", argv_of=argv_of)
    assert codes == {1: 130 if saves else -signal.SIGTERM} and stopped and log.read_text().split() == ["a"]
    assert signal.getsignal(signal.SIGTERM) is before  # the queue's handler is gone once it returns


def test_an_interrupted_copy_of_a_state_is_not_taken_for_a_study(queue, tmp_path):
    states, root = tmp_path / "results", tmp_path / "root"
    (states / "a_state").mkdir(parents=True)
    (states / "a_state" / "status.json").write_text("{}")
    (root / "a.partial").mkdir(parents=True)  # a copy cut short earlier
    (root / "a.partial" / "half").write_text("")
    assert queue.start_from_state(root / "a", "a", states)
    assert sorted(p.name for p in (root / "a").iterdir()) == ["status.json"] and not (root / "a.partial").exists()


def test_a_step_runs_the_study_cli_of_this_environment(queue, tmp_path):
    step = queue.Step("barpo_ant", "studies/barpo_ant.yaml", ("bar-ppo", "ppo"))
    argv = queue.command(step, tmp_path / "barpo_ant", 2, dry_run=True, retry_failed=True)
    assert Path(argv[0]) == Path(sys.executable).with_name("robustrl") and argv[1:3] == ["study", "run"]
    assert argv[3:] == [str(ROOT / "studies" / "barpo_ant.yaml"), "--out", str(tmp_path / "barpo_ant"), "--workers", "2",
                        "--only", "bar-ppo", "--only", "ppo", "--dry-run", "--retry-failed"]  # fmt: skip


def test_every_step_names_a_spec_and_a_committed_state_or_a_new_study(queue):
    from robustrl.experiments.spec import load_spec

    for step in queue.QUEUE:
        assert load_spec(ROOT / step.spec).name == step.study, step  # the directory is the study's own
    states = {step.study for step in queue.QUEUE if (queue.STATES / f"{step.study}_state").is_dir()}
    assert {"barpo_hopper", "barpo_walker_cheetah", "barpo_reliability", "barpo_wc_reliability"} <= states


def test_a_step_reuses_the_runs_of_the_studies_it_names_that_exist(queue, tmp_path):
    """reuse_from: `--reuse-from <root>/<study>` for each named study directory that has runs/."""
    (tmp_path / "other" / "runs").mkdir(parents=True)
    step = queue.Step("barpo_ant", "studies/barpo_ant.yaml", (), reuse_from=("other", "missing"))
    argv = queue.command(step, tmp_path / "barpo_ant", 2, dry_run=False, retry_failed=False)
    assert argv[-2:] == ["--reuse-from", str(tmp_path / "other")] and "missing" not in " ".join(argv)
