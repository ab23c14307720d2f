"""Pruning in study specs (grid axes prune.<knob>, per-method pruning and grids, one shared
unpruned baseline) and the sweet-spot report against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from robustrl.experiments.spec import StudySpecError, parse_spec
from robustrl.report.sweet_spot import bound_correlation, claims, normalised_runs, sweep_table, sweet_spots

TINY = {"steps_per_iteration": 256, "num_minibatches": 4, "policy_epochs": 2, "value_epochs": 2}


def spec(**changes):
    base = {
        "name": "p", "methods": {"ppo": {"algo": "ppo"}}, "envs": ["Pendulum-v1"], "seeds": [0, 1], "steps": 512,
        "set": dict(TINY), "grid": {"prune.strategy": ["magnitude", "random"], "prune.sparsity": [0.0, 0.5]},
    }  # fmt: skip
    base.update(changes)
    return base


def test_the_unpruned_run_is_shared_by_every_strategy_and_interval():
    parsed = parse_spec(spec(methods={
        "ppo": {"algo": "ppo"},
        "interval": {"algo": "ppo", "prune": {"strategy": "magnitude", "sparsity": 0.5}, "grid": {"prune.prune_every": [1, 20]}},
    }))  # fmt: skip
    labels = sorted({r.label for r in parsed.runs})
    assert labels == ["interval-k1", "interval-k20", "ppo-magnitude-sp0.5", "ppo-random-sp0.5", "ppo-unpruned"]
    assert len(parsed.runs) == 2 * 5  # two seeds; magnitude and random at 0 are one run
    by_label = {r.label: r.config.prune for r in parsed.runs if r.config.seed == 0}
    assert by_label["ppo-unpruned"].strategy == "none" and by_label["ppo-unpruned"].sparsity == 0.0
    assert by_label["ppo-random-sp0.5"].strategy == "random" and by_label["ppo-random-sp0.5"].sparsity == 0.5
    assert by_label["interval-k1"].prune_every == 1 and by_label["interval-k1"].strategy == "magnitude"
    assert {r.method for r in parsed.runs} == {"ppo", "interval"}
    # the interval method's k20 run is the ppo method's magnitude 50% run under another name: same config
    same = [r for r in parsed.runs if r.config.seed == 0 and r.label in ("interval-k20", "ppo-magnitude-sp0.5")]
    assert same[0].config.to_dict() == same[1].config.to_dict()


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"grid": {"prune.sparsty": [0.5]}}, r"grid.prune.sparsty: not a pruning knob"),
        ({"grid": {"sparsity": [0.5]}}, r"grid.sparsity: not a robust knob.*prune.sparsity"),
        ({"prune": {"stratgy": "magnitude"}}, r"prune: unknown pruning knob\(s\) \['stratgy'\]"),
        ({"grid": {"prune.strategy": ["magnitud"], "prune.sparsity": [0.5]}}, r"unknown pruning strategy 'magnitud'"),
        ({"grid": {"prune.strategy": ["magnitude"], "prune.sparsity": [1.0]}}, r"sparsity must be in \[0, 1\)"),
        ({"methods": {"x": {"algo": "ppo", "prune": {"prune_every": 0, "strategy": "random", "sparsity": 0.5}}}, "grid": {}},
         r"methods.x on Pendulum-v1: prune_every must be"),
        ({"methods": {"x": {"algo": "ppo", "grid": {"prune.nope": [1]}}}}, r"methods.x.grid.prune.nope: not a pruning knob"),
        ({"evaluation": {"certify": "yes"}}, r"evaluation.certify must be true or false"),
    ],
)  # fmt: skip
def test_pruning_spec_errors_name_the_bad_key(changes, message):
    with pytest.raises(StudySpecError, match=message):
        parse_spec(spec(**changes))


def _fixture():
    """Two seeds; unpruned natural (100, 200), worst (50, 100); magnitude 50% natural (110, 180),
    worst (60, 120); random 50% natural (50, 100), worst (50, 100)."""
    rows = []  # run, seed, strategy, sparsity, natural, random, mad
    rows += [("u0", 0, "none", 0.0, 100, 80, 50), ("u1", 1, "none", 0.0, 200, 150, 100)]
    rows += [("m0", 0, "magnitude", 0.5, 110, 90, 60), ("m1", 1, "magnitude", 0.5, 180, 130, 120)]
    rows += [("r0", 0, "random", 0.5, 50, 50, 55), ("r1", 1, "random", 0.5, 100, 100, 100)]
    runs = pd.DataFrame(
        [{"run": r, "env": "Hopper-v5", "algo": "ppo", "kappa": 0.3, "eps_train": math.nan, "guidance": True,
          "total_steps": 1000, "seed": s, "method": "ppo", "prune_strategy": st, "sparsity": sp, "prune_every": 20,
          "lipschitz": 10.0 * (1 - sp) + s, "ibp_mean_tv_bound": 0.5 * (1 - sp)} for r, s, st, sp, *_ in rows]
    )  # fmt: skip
    per_run = pd.DataFrame(
        [{"run": r, "label": r, "env": "Hopper-v5", "seed": s, "natural": n, "random": a, "mad": b,
          "worst": min(a, b), "worst_case_robustness": 0.0} for r, s, _, _, n, a, b in rows]
    )  # fmt: skip
    return runs, per_run


def test_sweet_spot_report_matches_hand_values():
    runs, per_run = _fixture()
    normalised = normalised_runs(runs, per_run, ["random", "mad"]).set_index("run")
    # m0: clean 110/100 = 1.1, worst 60/50 = 1.2, score 1.15; m1: 0.9, 1.2, 1.05
    assert normalised.loc["m0", "norm_natural"] == pytest.approx(1.1)
    assert normalised.loc["m0", "norm_worst"] == pytest.approx(1.2)
    assert normalised.loc["m1", "score"] == pytest.approx(1.05)
    # r0: clean 0.5, worst 50/50 = 1.0 (the min over attacks is random's 50), score 0.75
    assert normalised.loc["r0", "norm_worst"] == pytest.approx(1.0) and normalised.loc["r0", "score"] == pytest.approx(0.75)
    table = sweep_table(normalised.reset_index(), ["random", "mad"])
    magnitude = table[(table["strategy"] == "magnitude") & (table["sparsity"] == 0.5)].iloc[0]
    assert magnitude["score"] == pytest.approx(1.10) and magnitude["seeds"] == "0,1"
    assert magnitude["score_se"] == pytest.approx(math.sqrt(((1.15 - 1.1) ** 2 + (1.05 - 1.1) ** 2) / 1) / math.sqrt(2))
    assert magnitude["natural"] == pytest.approx(145)
    spots = sweet_spots(table).set_index("strategy")
    assert spots.loc["magnitude", "sparsity"] == 0.5  # 1.10 > the unpruned 1.00
    assert spots.loc["random", "sparsity"] == 0.0  # 0.75 < 1.00
    lines = claims(sweet_spots(table), table)
    assert "sweet spot at 30-50% sparsity: **holds** (50%)" in lines[2]
    assert "1.1x-1.6x at the sweet spot: **holds" in lines[3]  # worst 1.2 on both seeds
    assert "clean return >= 95% of unpruned at the sweet spot: **holds (within noise" in lines[4]  # 1.00 ± 0.10
    assert "the largest worst-case gain with clean >= 95%: 50% sparsity" in lines[5]
    correlation = bound_correlation(normalised.reset_index())
    assert correlation["runs"] == 6 and -1 <= correlation["L~"] <= 1


def test_a_pruning_study_end_to_end_writes_the_sweet_spot_report(tmp_path):
    import json

    from robustrl.experiments.results import read_results
    from robustrl.experiments.study import run_study
    from robustrl.report.study import write_study_report

    path = tmp_path / "p.json.yaml"
    path.write_text(json.dumps(spec(
        seeds=[0], grid={"prune.strategy": ["magnitude"], "prune.sparsity": [0.0, 0.5]}, prune={"burn_in": 0.0},
        evaluation={"attacks": ["random", "mad"], "episodes": 1, "eps": 0.1, "certify": True},
    )))  # fmt: skip
    study = run_study(path, tmp_path / "study", workers=1)
    assert all(e["train"] == e["evaluate"] == "done" for e in study.status["runs"].values())
    runs = read_results(tmp_path / "study", "runs").set_index("label")
    # the schedule reaches its target at the end of the run; the certificate reads the final masks
    assert runs.loc["ppo-magnitude-sp0.5", "measured_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert runs.loc["ppo-unpruned", "measured_sparsity"] == 0.0
    # two iterations leave the weights near their shared initialisation: 50% magnitude pruning shows in L~
    assert runs.loc["ppo-magnitude-sp0.5", "lipschitz"] < runs.loc["ppo-unpruned", "lipschitz"]
    written = write_study_report(tmp_path / "study")
    assert {"prune_sweep", "prune_frontier", "prune_attacks", "prune_bound"} <= set(written)
    text = written["prune_sweep"].read_text()
    assert "## magnitude, masks every 20 steps" in text and "| 50% | 0 |" in text
