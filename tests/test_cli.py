"""Command-line interface: bad input is one ``error:`` line and exit code 2, nothing already on disk
is damaged, ``--debug`` shows the traceback, and the first Ctrl-C saves a resumable checkpoint.

Most cases call ``robustrl.cli.main`` in-process (fast); the console script is run as a subprocess
where real stderr, exit codes and signals matter. Budgets are tiny (Pendulum-v1, 4096 steps).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from robustrl.cli import main
from robustrl.errors import UnknownEnvError

ENV = "Pendulum-v1"
OTHER_ENV = "InvertedPendulum-v5"
TINY = ["--steps", "4096", "--no-progress"]

_SCRIPT = Path(sys.executable).parent / "robustrl"
ROBUSTRL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "robustrl.cli"]


# ---- helpers ------------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    """Subprocess environment: the caller's, at the usual 80-column width unless set otherwise."""
    env = dict(os.environ)
    env.setdefault("COLUMNS", "80")
    env.pop("FORCE_COLOR", None)
    return env


def _default_sigint() -> None:  # runs in the child before exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ROBUSTRL, *args], capture_output=True, text=True, cwd=cwd, env=_env(), timeout=timeout,
        preexec_fn=_default_sigint,
    )


def assert_one_error_line(code: int, out: str, err: str) -> str:
    """Exit code 2, exactly one non-empty stderr line starting with ``error:``, no traceback."""
    assert "Traceback" not in out and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit code {code}, stderr:\n{err}"
    assert len(lines) == 1, f"expected one non-empty stderr line, got {len(lines)}:\n{err}"
    assert lines[0].startswith("error:"), err
    assert lines[0][len("error:"):].strip(), "empty error message"
    return lines[0]


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop anything printed earlier
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and directory (None) under ``folder``."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def assert_unchanged(folder: Path, before: dict[str, bytes | None]) -> None:
    after = snapshot(folder)
    assert sorted(after) == sorted(before), f"paths added/removed: {sorted(set(after) ^ set(before))}"
    changed = [name for name in before if after[name] != before[name]]
    assert not changed, f"files modified: {changed}"


def checkpoint_stems(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob("iter_*.json"))


def truncate(path: Path, keep: int = 100) -> None:
    data = path.read_bytes()
    assert len(data) > keep
    path.write_bytes(data[:keep])


def progress_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "progress.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def complete_data_rows(run: Path) -> int:
    """Data rows of progress.csv that are fully written (tolerates a half-written last line)."""
    try:
        text = (run / "progress.csv").read_text()
    except FileNotFoundError:
        return 0
    return max(0, text.count("\n") - 1)


def flat(text: str) -> str:
    """Whitespace-normalised text (so assertions do not depend on terminal wrapping)."""
    return " ".join(text.split())


# ---- a tiny trained run, shared by the evaluate tests ----------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    code = main(["train", "--env", ENV, *TINY, "--seed", "0", "--checkpoint-every", "1", "--out", str(run)])
    assert code == 0
    names = [p.name for p in checkpoint_stems(run)]
    assert names == ["iter_000000.json", "iter_000001.json", "iter_000002.json"], names
    return run


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    """A private copy of the trained run, safe to corrupt."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


# ---- 1. bad input: one line, exit code 2 -------------------------------------------------------
TRAIN_BAD_INPUT = {
    "unknown-env": ["--env", "NoSuchEnv-v0", *TINY],
    "negative-steps": ["--env", ENV, "--steps", "-5", "--no-progress"],
    "zero-steps": ["--env", ENV, "--steps", "0", "--no-progress"],
    "fractional-steps": ["--env", ENV, "--steps", "4096.5", "--no-progress"],
    "non-numeric-steps": ["--env", ENV, "--steps", "abc", "--no-progress"],
    "non-numeric-seed": ["--env", ENV, *TINY, "--seed", "x"],
    "negative-seed": ["--env", ENV, *TINY, "--seed", "-1"],
    "zero-num-envs": ["--env", ENV, *TINY, "--num-envs", "0"],
    "num-envs-not-dividing-batch": ["--env", ENV, *TINY, "--num-envs", "3"],
    "unknown-algo": ["--env", ENV, *TINY, "--algo", "nope"],
    "unknown-backend": ["--env", ENV, *TINY, "--backend", "nope"],
    "zero-checkpoint-every": ["--env", ENV, *TINY, "--checkpoint-every", "0"],
    "set-unknown-key": ["--env", ENV, *TINY, "--set", "no_such_key=1"],
    "set-without-equals": ["--env", ENV, *TINY, "--set", "policy_lr"],
    "set-bad-json-value": ["--env", ENV, *TINY, "--set", "policy_lr=abc"],
    "set-invalid-value": ["--env", ENV, *TINY, "--set", "gamma=2"],
    "no-env": [*TINY],
    "unknown-option": ["--env", ENV, *TINY, "--no-such-option"],
    # values are checked against the config fields' types (issue 10, item 8)
    "set-int-for-list": ["--env", ENV, *TINY, "--set", "hidden_sizes=64"],
    "set-null-for-float": ["--env", ENV, *TINY, "--set", "clip_eps=null"],
    "set-string-for-float": ["--env", ENV, *TINY, "--set", 'policy_lr="1e-4"'],
    "set-nan": ["--env", ENV, *TINY, "--set", "policy_lr=NaN"],
    "set-float-for-int": ["--env", ENV, *TINY, "--set", "policy_epochs=2.5"],
    "set-robust-word-for-float": ["--env", ENV, *TINY, "--algo", "bar-ppo", "--set-robust", "eps=abc"],
    "set-robust-list-for-float": ["--env", ENV, *TINY, "--algo", "bar-ppo", "--set-robust", "kappa=[1]"],
    "set-robust-string-for-float": ["--env", ENV, *TINY, "--algo", "bar-ppo", "--set-robust", 'eps="0.1"'],
    "set-robust-unknown-key": ["--env", ENV, *TINY, "--algo", "bar-ppo", "--set-robust", "nope=1"],
    # a knob the method does not read is refused, not silently ignored (objective.knobs)
    "ppo-with-robust-option": ["--env", ENV, *TINY, "--eps", "0.1"],
    "radial-with-kappa": ["--env", ENV, *TINY, "--algo", "radial-ppo", "--kappa", "1"],
    "radial-with-inner-steps": ["--env", ENV, *TINY, "--algo", "radial-ppo", "--set-robust", "inner_steps=3"],
    "bar-ppo-with-solver": ["--env", ENV, *TINY, "--algo", "bar-ppo", "--solver", "ibp"],
    "sa-ppo-with-no-guidance": ["--env", ENV, *TINY, "--algo", "sa-ppo", "--no-guidance"],
    "steps-beyond-1e10": ["--env", ENV, "--steps", "1e99", "--no-progress"],
    # ATLA (robustrl.algos.atla): an unknown adversary, a knob without --atla, an unknown knob, a bad value
    "atla-unknown-adversary": ["--env", ENV, *TINY, "--atla", "mad"],
    "set-atla-without-atla": ["--env", ENV, *TINY, "--set-atla", "fraction=0.5"],
    "set-atla-unknown-key": ["--env", ENV, *TINY, "--atla", "sa-rl", "--set-atla", "ratio=2"],
    "set-atla-fraction-zero": ["--env", ENV, *TINY, "--atla", "sa-rl", "--set-atla", "fraction=0"],
    "ppo-with-kappa-and-atla": ["--env", ENV, *TINY, "--atla", "sa-rl", "--kappa", "1"],  # ATLA reads eps, not kappa
    "steps-infinite": ["--env", ENV, "--steps", "inf", "--no-progress"],
}


@pytest.mark.parametrize("args", list(TRAIN_BAD_INPUT.values()), ids=list(TRAIN_BAD_INPUT))
def test_train_bad_input_is_one_error_line(capsys, tmp_path, args):
    out_dir = tmp_path / "new" / "run"
    code, out, err = call(capsys, "train", *args, "--out", str(out_dir))
    assert_one_error_line(code, out, err)
    # a run that fails validation writes nothing at all
    assert not out_dir.exists()
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--set", "hidden_sizes=64"], ["hidden_sizes", "list", "64"]),
        (["--set", "clip_eps=null"], ["clip_eps", "number", "null"]),
        (["--set", 'policy_lr="1e-4"'], ["policy_lr", "number", '"1e-4"']),
        (["--algo", "bar-ppo", "--set-robust", 'eps="abc"'], ["eps", "number", '"abc"']),
        (["--algo", "bar-ppo", "--set-robust", "kappa=[1]"], ["kappa", "number", "[1]"]),
        (["--algo", "radial-ppo", "--kappa", "1"], ["radial-ppo", "kappa", "radial_mix"]),
        (["--steps", "1e99"], ["--steps", "1e10"]),
    ],
)
def test_bad_value_message_names_key_type_and_value(capsys, tmp_path, args, words):
    code, out, err = call(capsys, "train", "--env", ENV, "--no-progress", *args, "--out", str(tmp_path / "run"))
    line = assert_one_error_line(code, out, err)
    for word in words:
        assert word in line, line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--algo", "wocar-ppo"], id="wocar-ppo"),
        pytest.param(["--algo", "sa-ppo", "--solver", "ibp"], id="sa-ppo-ibp"),
    ],
)
def test_objective_needing_continuous_actions_refuses_discrete_env(capsys, tmp_path, args):
    """Checked before the run directory exists (it used to be a traceback after a half-made run)."""
    out_dir = tmp_path / "run"
    code, out, err = call(capsys, "train", "--env", "CartPole-v1", *TINY, *args, "--out", str(out_dir))
    line = assert_one_error_line(code, out, err)
    assert "continuous actions" in line and "CartPole-v1" in line
    assert not out_dir.exists()
    assert not (tmp_path / "runs").exists()


def test_sa_ppo_with_sgld_still_trains_on_a_discrete_env(capsys, tmp_path):
    code, out, err = call(
        capsys, "train", "--env", "CartPole-v1", "--steps", "2048", "--no-progress", "--algo", "sa-ppo",
        "--set-robust", "inner_steps=2", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert code == 0, err


def test_train_out_is_an_existing_file(capsys, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("precious\n")
    before = snapshot(tmp_path)
    for out in (target, target / "run"):
        code, stdout, err = call(capsys, "train", "--env", ENV, *TINY, "--out", str(out))
        line = assert_one_error_line(code, stdout, err)
        assert "is a file" in line
    assert_unchanged(tmp_path, before)


def test_resume_with_run_options_is_refused(capsys, run_copy):
    """--seed/--num-envs/--algo (typer defaults) were silently ignored on --resume; now every
    explicitly passed setting is named."""
    before = snapshot(run_copy)
    code, out, err = call(
        capsys, "train", "--resume", str(run_copy), "--seed", "5", "--num-envs", "4", "--algo", "bar-ppo", "--no-progress"
    )
    line = assert_one_error_line(code, out, err)
    for option in ("--seed", "--num-envs", "--algo"):
        assert option in line
    assert_unchanged(run_copy, before)


def test_train_help_lists_algorithms_and_where_keys_are(capsys):
    from robustrl.algos import ALGORITHMS

    code, out, err = call(capsys, "train", "--help")
    assert code == 0, err
    text = flat(out.replace("│", " "))  # rich draws the options in a box
    for name in ALGORITHMS:
        assert name in text, name
    assert "PPOConfig" in text and "RobustConfig" in text and "--list-knobs" in text
    assert "normalised observations" in text  # --eps
    assert "rounded down to whole iterations" in text  # --steps
    assert "Seed of the run" in text  # --seed
    code, out, err = call(capsys, "evaluate", "--help")
    assert code == 0 and "Episodes per mode" in flat(out.replace("│", " "))


def test_list_knobs(capsys):
    code, out, err = call(capsys, "train", "--list-knobs")
    assert code == 0, err
    text = flat(out)
    for key in ("policy_lr", "hidden_sizes", "kappa", "radial_mix", "q_weight", "temperature"):
        assert key in text, key
    radial_row = next(line for line in out.splitlines() if "radial_mix" in line)
    assert "radial-ppo" in radial_row


def test_unknown_env_message_names_the_env(capsys, tmp_path):
    code, out, err = call(capsys, "train", "--env", "NoSuchEnv-v0", *TINY, "--out", str(tmp_path / "run"))
    line = assert_one_error_line(code, out, err)
    assert "NoSuchEnv-v0" in line


def test_misspelt_env_suggests_the_right_one(capsys, tmp_path):
    code, out, err = call(capsys, "train", "--env", "Pendulum-v2", *TINY, "--out", str(tmp_path / "run"))
    line = assert_one_error_line(code, out, err)
    assert "Pendulum-v1" in line


def test_unknown_env_console_script(tmp_path):
    """The real console script: stderr, exit code, no traceback, no run directory."""
    out_dir = tmp_path / "run"
    result = run_cli("train", "--env", "NoSuchEnv-v0", *TINY, "--out", str(out_dir), cwd=tmp_path)
    assert_one_error_line(result.returncode, result.stdout, result.stderr)
    assert not out_dir.exists()
    assert not (tmp_path / "runs").exists()  # nor the default run directory


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(["--steps", "-5"], id="negative-steps"),
        pytest.param(["--seed", "x"], id="non-numeric-seed"),
        pytest.param(["--set", "nope=1"], id="set-unknown-key"),
    ],
)
def test_bad_input_console_script(tmp_path, bad):
    out_dir = tmp_path / "run"
    result = run_cli("train", "--env", ENV, "--steps", "4096", "--no-progress", *bad, "--out", str(out_dir))
    assert_one_error_line(result.returncode, result.stdout, result.stderr)
    assert not out_dir.exists()


def test_train_out_dir_not_empty(capsys, run_copy):
    before = snapshot(run_copy)
    code, out, err = call(capsys, "train", "--env", ENV, *TINY, "--out", str(run_copy))
    line = assert_one_error_line(code, out, err)
    assert "--resume" in line
    assert_unchanged(run_copy, before)


def test_train_out_dir_not_empty_unrelated_files(capsys, tmp_path):
    """Any non-empty directory is refused, not only run directories."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious\n")
    (folder / "progress.csv").write_text("mine too\n")
    before = snapshot(folder)
    code, out, err = call(capsys, "train", "--env", ENV, *TINY, "--out", str(folder))
    assert_one_error_line(code, out, err)
    assert_unchanged(folder, before)


def test_train_into_existing_empty_dir_is_allowed(capsys, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    code, out, err = call(capsys, "train", "--env", ENV, "--steps", "2048", "--no-progress", "--out", str(folder))
    assert code == 0, err
    assert (folder / "config.json").is_file()


def test_resume_non_run_directory(capsys, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    before = snapshot(tmp_path)
    code, out, err = call(capsys, "train", "--resume", str(tmp_path), "--no-progress")
    line = assert_one_error_line(code, out, err)
    assert "run directory" in line
    assert_unchanged(tmp_path, before)
    assert not (tmp_path / "progress.csv").exists()


def test_resume_nonexistent_directory(capsys, tmp_path):
    missing = tmp_path / "missing"
    code, out, err = call(capsys, "train", "--resume", str(missing), "--no-progress")
    assert_one_error_line(code, out, err)
    assert not missing.exists()


def test_resume_with_settings_is_refused(capsys, run_copy):
    before = snapshot(run_copy)
    code, out, err = call(capsys, "train", "--resume", str(run_copy), "--env", ENV, "--no-progress")
    assert_one_error_line(code, out, err)
    assert_unchanged(run_copy, before)


def test_evaluate_not_a_run_directory(capsys, tmp_path):
    (tmp_path / "something.txt").write_text("x")
    code, out, err = call(capsys, "evaluate", str(tmp_path), "--episodes", "2")
    line = assert_one_error_line(code, out, err)
    assert "run directory" in line


def test_evaluate_nonexistent_path(capsys, tmp_path):
    missing = tmp_path / "nope"
    code, out, err = call(capsys, "evaluate", str(missing), "--episodes", "2")
    line = assert_one_error_line(code, out, err)
    assert "nope" in line


def test_evaluate_file_that_is_not_a_checkpoint(capsys, run_copy):
    code, out, err = call(capsys, "evaluate", str(run_copy / "config.json"), "--episodes", "2")
    assert_one_error_line(code, out, err)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(["--episodes", "0"], id="zero-episodes"),
        pytest.param(["--episodes", "x"], id="non-numeric-episodes"),
        pytest.param(["--mode", "greedy"], id="unknown-mode"),
        pytest.param(["--seed", "-3"], id="negative-seed"),
    ],
)
def test_evaluate_bad_options(capsys, trained_run, bad):
    code, out, err = call(capsys, "evaluate", str(trained_run), *bad)
    assert_one_error_line(code, out, err)


def test_evaluate_wrong_env_damages_nothing(capsys, run_copy):
    old_json = run_copy / "eval.json"
    old_json.write_text('{"earlier": "results"}\n')
    markdown = run_copy / "eval.md"
    before = snapshot(run_copy)
    code, out, err = call(
        capsys, "evaluate", str(run_copy), "--episodes", "2", "--env", OTHER_ENV,
        "--json", str(old_json), "--markdown", str(markdown),
    )
    line = assert_one_error_line(code, out, err)
    assert ENV in line and OTHER_ENV in line
    assert_unchanged(run_copy, before)
    assert not markdown.exists()


def test_evaluate_wrong_env_on_checkpoint_file(capsys, run_copy):
    before = snapshot(run_copy)
    stem = run_copy / "checkpoints" / "iter_000001.safetensors"
    code, out, err = call(capsys, "evaluate", str(stem), "--episodes", "2", "--env", OTHER_ENV)
    assert_one_error_line(code, out, err)
    assert_unchanged(run_copy, before)


@pytest.mark.parametrize("older", ["deleted", "truncated"])
def test_evaluate_truncated_checkpoint_without_fallback(capsys, run_copy, older):
    stems = [p.with_suffix("") for p in checkpoint_stems(run_copy)]
    newest, earlier = stems[-1], stems[:-1]
    truncate(newest.with_suffix(".safetensors"))
    for stem in earlier:
        if older == "deleted":
            stem.with_suffix(".json").unlink()
            stem.with_suffix(".safetensors").unlink()
        else:
            truncate(stem.with_suffix(".safetensors"))
    before = snapshot(run_copy)
    code, out, err = call(capsys, "evaluate", str(run_copy), "--episodes", "2")
    line = assert_one_error_line(code, out, err)
    assert "checkpoint" in line
    assert_unchanged(run_copy, before)


def test_evaluate_truncated_checkpoint_file_directly(capsys, run_copy):
    newest = checkpoint_stems(run_copy)[-1].with_suffix(".safetensors")
    truncate(newest)
    code, out, err = call(capsys, "evaluate", str(newest), "--episodes", "2")
    assert_one_error_line(code, out, err)


def test_evaluate_truncated_newest_falls_back_with_warning(capsys, run_copy):
    newest = checkpoint_stems(run_copy)[-1].with_suffix(".safetensors")
    truncate(newest)
    report = run_copy.parent / "report.json"
    code, out, err = call(
        capsys, "evaluate", str(run_copy), "--episodes", "2", "--mode", "deterministic", "--json", str(report)
    )
    assert code == 0, err
    assert "Traceback" not in out + err
    assert "error:" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning:"), err  # one line, not Python's two
    assert newest.name in lines[0] and "iter_000001" in lines[0]  # what was skipped, what is used
    result = json.loads(report.read_text())
    assert result["env_id"] == ENV
    assert result["results"]["deterministic"]["episodes"] == 2
    # the report and the printed table say which checkpoint was evaluated
    assert result["checkpoint"] == str(run_copy / "checkpoints" / "iter_000001")
    assert "iter_000001" in flat(out)


def test_evaluate_with_attacks_records_the_checkpoint_used(capsys, run_copy):
    truncate(checkpoint_stems(run_copy)[-1].with_suffix(".safetensors"))
    code, out, err = call(capsys, "evaluate", str(run_copy), "--episodes", "1", "--attacks", "random", "--eps", "0.1")
    assert code == 0, err
    assert err.startswith("warning:") and len(err.strip().splitlines()) == 1, err
    report = json.loads((run_copy / "eval-eps0.1.json").read_text())
    assert report["checkpoint"].endswith("iter_000001")
    assert "iter_000001" in flat(out)


def test_evaluate_skips_a_checkpoint_holding_nan(capsys, run_copy):
    """A checkpoint with NaN weights (a diverged run) is never loaded: the newest finite one is,
    with a warning naming the tensor."""
    from robustrl.policies.checkpoint import load_checkpoint

    stem = checkpoint_stems(run_copy)[-1].with_suffix("")
    tensors, meta = load_checkpoint(stem)
    tensors["policy/actor.0.weight"][0, 0] = float("nan")
    from safetensors.torch import save as to_bytes

    blob = to_bytes(tensors)
    stem.with_suffix(".safetensors").write_bytes(blob)
    import hashlib

    meta["tensors_sha256"] = hashlib.sha256(blob).hexdigest()
    stem.with_suffix(".json").write_text(json.dumps(meta))
    code, out, err = call(capsys, "evaluate", str(run_copy), "--episodes", "1", "--mode", "deterministic")
    assert code == 0, err
    assert err.startswith("warning:") and "policy/actor.0.weight" in err and "NaN" in err, err
    assert "iter_000001" in flat(out)


# ---- evaluate: outputs checked before any work; reports never lost ---------------------------------
def test_evaluate_json_naming_a_directory(capsys, trained_run, tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    before = snapshot(tmp_path)
    code, out, err = call(capsys, "evaluate", str(trained_run), "--episodes", "1", "--json", str(folder))
    line = assert_one_error_line(code, out, err)
    assert "directory" in line
    assert_unchanged(tmp_path, before)  # no stray runs.tmp
    code, out, err = call(capsys, "evaluate", str(trained_run), "--episodes", "1", "--json", str(tmp_path / "no" / "r.json"))
    assert_one_error_line(code, out, err)


@pytest.mark.parametrize(
    "option",
    ["mad.steps=-1", "mad.step_size=-0.5", 'mad.steps="x"', "random.nope=1", "critic.steps=0"],
)
def test_bad_attack_option_leaves_the_report_untouched(capsys, run_copy, option):
    """Attacks are built (and tried on one observation) before the report is read or written: a bad
    option used to fail only after the report of other settings had been replaced."""
    code, out, err = call(capsys, "evaluate", str(run_copy), "--episodes", "1", "--attacks", "random", "--eps", "0.1")
    assert code == 0, err
    before = snapshot(run_copy)
    name = option.split(".")[0]
    code, out, err = call(
        capsys, "evaluate", str(run_copy), "--episodes", "2", "--attacks", name, "--eps", "0.1", "--attack-option", option
    )
    line = assert_one_error_line(code, out, err)
    assert name in line
    assert_unchanged(run_copy, before)


def test_l2_report_does_not_overwrite_the_linf_report(capsys, run_copy):
    args = ["evaluate", str(run_copy), "--episodes", "1", "--attacks", "random", "--eps", "0.1"]
    assert call(capsys, *args)[0] == 0
    linf = run_copy / "eval-eps0.1.json"
    before = linf.read_bytes()
    code, out, err = call(capsys, *args, "--norm", "2")
    assert code == 0, err
    assert linf.read_bytes() == before
    assert json.loads((run_copy / "eval-eps0.1-l2.json").read_text())["norm"] == "2"


def test_sb3_zip_with_bogus_weights_is_one_line(capsys, tmp_path):
    """torch's weights-only refusal is a page of advice (re-run with weights_only=False...); we
    never unpickle, so one line says what is wrong."""
    import fractions
    import io
    import zipfile

    import torch

    buffer = io.BytesIO()
    torch.save({"w": fractions.Fraction(1, 2)}, buffer)
    model = tmp_path / "model.zip"
    with zipfile.ZipFile(model, "w") as archive:
        archive.writestr("data", json.dumps({"observation_space": {}, "action_space": {}}))
        archive.writestr("policy.pth", buffer.getvalue())
    code, out, err = call(capsys, "evaluate", str(model), "--env", ENV, "--episodes", "1")
    line = assert_one_error_line(code, out, err)
    assert "policy.pth" in line and "Fraction" in line
    assert "weights_only" not in line and "\x1b" not in line


# ---- 3. --debug -------------------------------------------------------------------------------
def test_debug_shows_traceback(tmp_path):
    out_dir = tmp_path / "run"
    result = run_cli("--debug", "train", "--env", "NoSuchEnv-v0", *TINY, "--out", str(out_dir))
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "UnknownEnvError" in result.stderr
    assert not out_dir.exists()


def test_debug_reraises_in_process(tmp_path):
    with pytest.raises(UnknownEnvError):
        main(["--debug", "train", "--env", "NoSuchEnv-v0", *TINY, "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


# ---- 5. Ctrl-C --------------------------------------------------------------------------------
def _start_training(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*ROBUSTRL, "train", *args, "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), preexec_fn=_default_sigint,
    )


def _interrupt_after(proc: subprocess.Popen[str], run: Path, rows: int, timeout: float = 120) -> tuple[str, str]:
    """Wait until progress.csv has ``rows`` complete data rows, send one SIGINT, wait for exit."""
    deadline = time.monotonic() + timeout
    while complete_data_rows(run) < rows:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training exited early with {proc.returncode}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"progress.csv did not reach {rows} rows within {timeout}s")
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=60)


def _newest_checkpoint_iteration(run: Path) -> int:
    meta = json.loads(checkpoint_stems(run)[-1].read_text())
    return int(meta["iteration"])


def test_first_ctrl_c_saves_a_resumable_checkpoint(capsys, tmp_path):
    run = tmp_path / "run"
    procs: list[subprocess.Popen[str]] = []
    try:
        # the reference profile (1 env, eager): no 10-40 s compile before the first row, which on a
        # loaded 2-core machine outlasted the wait (the fast path's Ctrl-C is the same code)
        procs.append(_start_training(["--env", ENV, "--steps", "200000", "--profile", "reference", "--out", str(run)]))
        out, err = _interrupt_after(procs[-1], run, rows=2)
        # saved, but not finished: a non-zero exit, so `train && evaluate` stops here
        assert procs[-1].returncode == 130, f"stdout:\n{out}\nstderr:\n{err}"
        assert "Traceback" not in out + err
        assert "interrupted" in out and "aborted" not in err
        match = re.search(r"interrupted at iteration (\d+)", flat(out))
        assert match, out
        stopped_at = int(match.group(1))

        rows = progress_rows(run)
        assert [int(r["iteration"]) for r in rows] == list(range(1, len(rows) + 1))
        assert stopped_at == int(rows[-1]["iteration"]) >= 2
        assert _newest_checkpoint_iteration(run) == stopped_at
        assert stopped_at < 200000 // 2048  # it really stopped early
        assert not list(run.rglob("*.tmp")), "temporary files left behind"

        # the interrupted run evaluates
        code, eval_out, eval_err = call(capsys, "evaluate", str(run), "--episodes", "2", "--mode", "deterministic")
        assert code == 0, eval_err
        assert "warning" not in eval_err

        # ... and resumes, and a resumed run can be interrupted the same way
        procs.append(_start_training(["--resume", str(run)]))
        out2, err2 = _interrupt_after(procs[-1], run, rows=stopped_at + 1)
        assert procs[-1].returncode == 130, f"stdout:\n{out2}\nstderr:\n{err2}"
        assert "Traceback" not in out2 + err2
        match = re.search(r"interrupted at iteration (\d+)", flat(out2))
        assert match, out2
        resumed_to = int(match.group(1))
        rows = progress_rows(run)
        assert [int(r["iteration"]) for r in rows] == list(range(1, len(rows) + 1))
        assert resumed_to == int(rows[-1]["iteration"]) > stopped_at
        assert _newest_checkpoint_iteration(run) == resumed_to

        # the hint is printed as one copy-pasteable line
        assert f"continue with: robustrl train --resume {run}" in out.splitlines(), out
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_second_ctrl_c_aborts_with_nonzero_exit(capsys, tmp_path):
    """Second Ctrl-C: abort at once, exit code 130 with an 'aborted' message; earlier checkpoints
    stay loadable."""
    run = tmp_path / "run"
    # Long updates (60 epochs, several seconds) so the second Ctrl-C surely lands in the same
    # iteration as the first; with short iterations the run could finish and save in between.
    slow = ["--set", "policy_epochs=60", "--set", "value_epochs=60"]
    proc = _start_training(["--env", ENV, "--steps", "200000", "--profile", "reference", "--out", str(run), *slow])
    stderr_lines: list[str] = []
    warned = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr_lines.append(line)
            if "finishing this iteration" in line:  # the first Ctrl-C's warning
                warned.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while complete_data_rows(run) < 1:
            assert proc.poll() is None, "training exited early"
            assert time.monotonic() < deadline, "training did not start within 60s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert warned.wait(30), "no warning after the first Ctrl-C:\n" + "".join(stderr_lines)
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=60)  # may take stderr lines the reader thread did not
        reader.join(10)
        err = "".join(stderr_lines) + (rest or "")
        assert "Traceback" not in out + err, err
        assert "interrupted at iteration" not in out, "second Ctrl-C did not abort"
        assert proc.returncode == 130, f"exit code {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
        assert "aborted" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # whatever was saved before the abort is intact
    code, _, eval_err = call(capsys, "evaluate", str(run), "--episodes", "1", "--mode", "deterministic")
    assert code == 0, eval_err
    assert "warning" not in eval_err


def test_fast_settings_by_default_for_long_runs_with_one_line_fallbacks(monkeypatch):
    """Issue 16: the fast configuration is the default from FAST_MIN_STEPS on; short runs keep the
    reference setting; a missing C++ compiler or EnvPool falls back with a notice."""
    import importlib.util
    import shutil

    from robustrl.config import FAST_MIN_STEPS, fast_settings

    assert fast_settings("Hopper-v5", FAST_MIN_STEPS - 1) == ({"num_envs": 1, "backend": "gymnasium", "compile": False}, [])
    settings, notices = fast_settings("Hopper-v5", 2_000_000)
    assert settings["num_envs"] == 8 and settings["compile"] is (shutil.which("c++") is not None or shutil.which("g++") is not None)
    if importlib.util.find_spec("envpool") is not None:
        assert settings["backend"] == "envpool" and not notices
    assert fast_settings("Hopper-v5", 2_000_000, steps_per_iteration=1020)[0]["num_envs"] == 4  # 8 must divide the batch
    monkeypatch.setattr(shutil, "which", lambda name: None)
    settings, notices = fast_settings("Hopper-v5", 2_000_000)
    assert settings["compile"] is False and any("no C++ compiler" in n for n in notices)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "envpool" else real(name, *a))
    settings, notices = fast_settings("Hopper-v5", 2_000_000)
    assert settings["backend"] == "gymnasium" and any("EnvPool is not installed" in n for n in notices)


def test_reference_flag_and_the_configuration_line(tmp_path, capsys):
    code, out, err = call(capsys, "train", "--env", ENV, *TINY, "--profile", "reference", "--out", str(tmp_path / "run"))
    assert code == 0 and "configuration: 1 gymnasium env, eager update" in err
    code, out, err = call(capsys, "train", "--resume", str(tmp_path / "run"), "--profile", "fast")
    assert code == 2 and "drop --profile" in err
    code, out, err = call(capsys, "train", "--env", ENV, *TINY, "--profile", "quick", "--out", str(tmp_path / "other"))
    assert code == 2 and "--profile must be fast or reference" in err and not (tmp_path / "other").exists()
