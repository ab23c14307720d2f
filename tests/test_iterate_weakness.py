"""benchmarks/iterate_weakness.py (issue 17, item 5): which checkpoints of a run it replays the final
iterate's adversary on, and what its report says."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from _benchmarks import load_benchmark


def _module():
    return load_benchmark("iterate_weakness")


def test_the_last_checkpoints_every_so_many_iterations_and_the_final_one(tmp_path):
    weakness = _module()
    (tmp_path / "checkpoints").mkdir()
    for iteration in (*range(0, 951, 50), 976):
        (tmp_path / "checkpoints" / f"iter_{iteration:06d}.json").write_text("{}")
    (tmp_path / "checkpoints" / "iter_000960.json.tmp").write_text("{}")  # an unfinished write: not a checkpoint
    chosen = weakness.checkpoints(tmp_path, last=300, every=100)
    assert [i for i, _ in chosen] == [700, 800, 900, 976]
    assert chosen[-1][1] == tmp_path / "checkpoints" / "iter_000976"
    with pytest.raises(SystemExit, match="no checkpoints"):
        weakness.checkpoints(tmp_path / "checkpoints", last=300, every=50)


def test_the_evaluation_settings_are_the_runs_own(tmp_path):
    weakness = _module()
    with pytest.raises(SystemExit, match="evaluate the run first"):
        weakness.eval_settings(tmp_path)
    (tmp_path / "eval-eps0.075.json").write_text(json.dumps(
        {"env_id": "Hopper-v5", "eps": 0.075, "norm": "inf", "settings": {"seed": 10000}}))  # fmt: skip
    assert weakness.eval_settings(tmp_path) == ("Hopper-v5", 0.075, "inf", 10000)


def test_the_report_counts_the_checkpoints_below_half_their_natural_return(tmp_path):
    weakness = _module()
    table = pd.DataFrame([
        {"run": "a-s0", "attack": "sa-rl", "iteration": 900, "natural": 3600.0, "attacked": 1700.0},
        {"run": "a-s0", "attack": "sa-rl", "iteration": 976, "natural": 3600.0, "attacked": 700.0},
        {"run": "b-s1", "attack": "sa-rl", "iteration": 0, "natural": -0.2, "attacked": 0.1},  # earns nothing yet: no ratio
        {"run": "b-s1", "attack": "sa-rl", "iteration": 976, "natural": 3000.0, "attacked": 1500.0},  # exactly half: not broken
    ])  # fmt: skip
    table["ratio"] = [weakness.attacked_fraction(n, a) for n, a in zip(table["natural"], table["attacked"])]
    weakness.report(table, tmp_path, episodes=20, last=300, every=50)
    text = (tmp_path / "iterate_weakness.md").read_text()
    assert "## a-s0 (sa-rl): 2 of 2 checkpoints below half their natural return" in text
    assert "## b-s1 (sa-rl): 0 of 1 checkpoints below half" in text
    assert "| 976 | 3600 | 700 | 0.19 |" in text
    assert "| 0 | -0 | 0 | - |" in text
    assert len(json.loads((tmp_path / "iterate_weakness.json").read_text())) == 4
    assert (tmp_path / "iterate_weakness.png").stat().st_size > 0
