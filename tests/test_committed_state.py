"""The study states committed under benchmarks/results/*_state/ are resumable as committed: every
run their status.json books as trained (or evaluated) has, in this checkout, the directory, final
checkpoint and report that booking needs. A snapshot once booked seven runs whose directories
git had silently ignored; a fresh clone then had to train them again."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from robustrl.experiments.spec import parse_spec
from robustrl.experiments.study import Study

ROOT = Path(__file__).resolve().parent.parent
STATES = sorted(p.parent for p in (ROOT / "benchmarks" / "results").glob("*_state/status.json"))


@pytest.mark.parametrize("state", STATES, ids=[p.name for p in STATES])
def test_a_committed_study_state_holds_every_run_it_books(state):
    saved = json.loads((state / "status.json").read_text())["runs"]
    spec = parse_spec(json.loads((state / "study.json").read_text())["spec"], where=str(state / "study.json"))
    checked = Study(state, spec).status["runs"]  # what the runner finds: a booked run that is missing reads pending
    for task in ("train", "evaluate"):
        booked = sorted(name for name, entry in saved.items() if entry.get(task) == "done")
        found = sorted(name for name in booked if checked.get(name, {}).get(task) == "done")
        assert booked == found, f"{state.name}: {task} booked done but missing from the checkout: {sorted(set(booked) - set(found))}"
    # in the checkout that makes the snapshot its runs are all on disk, ignored or not: ask git too,
    # or the test passes there and fails only in the next clone
    ignored = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--others", "--ignored", "--exclude-standard", "--", str(state)],
                             capture_output=True, text=True)  # fmt: skip
    if ignored.returncode == 0:  # not a git checkout (an unpacked archive): nothing to ask
        assert not ignored.stdout, f"{state.name}: files git ignores, left out of the snapshot:\n{ignored.stdout[:2000]}"
