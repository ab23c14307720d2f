"""The study states committed under benchmarks/results/*_state/ are resumable as committed: every
run their status.json books as trained (or evaluated) has, in this checkout, the directory, final
checkpoint and report that booking needs. A snapshot once booked seven runs whose directories
git had silently ignored; a fresh clone then had to train them again."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from robustrl.experiments.study import booked_but_missing

ROOT = Path(__file__).resolve().parent.parent
STATES = sorted(p.parent for p in (ROOT / "benchmarks" / "results").glob("*_state/status.json"))


@pytest.mark.parametrize("state", STATES, ids=[p.name for p in STATES])
def test_a_committed_study_state_holds_every_run_it_books(state):
    lost = booked_but_missing(state)  # what the runner finds: a booked run that is missing reads pending
    for task, names in lost.items():
        assert not names, f"{state.name}: {task} booked done but missing from the checkout: {names}"
    # in the checkout that makes the snapshot its runs are all on disk, ignored or not: ask git too,
    # or the test passes there and fails only in the next clone
    ignored = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--others", "--ignored", "--exclude-standard", "--", str(state)],
                             capture_output=True, text=True)  # fmt: skip
    if ignored.returncode == 0:  # not a git checkout (an unpacked archive): nothing to ask
        assert not ignored.stdout, f"{state.name}: files git ignores, left out of the snapshot:\n{ignored.stdout[:2000]}"
