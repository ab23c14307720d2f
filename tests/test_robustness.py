"""The robustness report (BARPO Table 2): fields, worst attack and worst-case robustness,
resumability, cached fitted attacks, the median-agent protocol, the eps sweep and its plot, the
markdown/rich tables, and the ``evaluate --attacks`` command line.

Victims are tiny Pendulum-v1 PPO runs (1-2 iterations of 512 steps); only the cheap attacks and a
Sarsa fit of one 256-step iteration are run. Tests that write into a run directory use a copy.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from robustrl import TrainConfig, ppo_defaults_for, train
from robustrl.attacks import policy_fingerprint
from robustrl.cli import main
from robustrl.errors import InvalidArgumentError
from robustrl.evaluate import robustness as robustness_module
from robustrl.evaluate import run_episodes
from robustrl.evaluate.robustness import (
    REPORT_FORMAT,
    eps_sweep,
    median_agent,
    median_agent_protocol,
    robustness_report,
    worst_case_robustness,
)
from robustrl.evaluate.rollout import EpisodeResults
from robustrl.policies.actor_critic import ActorCritic
from robustrl.report import plots as plots_module
from robustrl.report.plots import plot_eps_sweep, plot_method_comparison
from robustrl.report.table import robustness_markdown, robustness_table

ENV = "Pendulum-v1"
CHEAP = ["random", "critic", "mad"]
RS_TINY = {"steps_per_iteration": 256, "epochs": 1, "num_minibatches": 4, "num_envs": 2, "attack_steps": 3}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _train(directory: Path, seed: int, iterations: int):
    torch.set_num_threads(1)
    cfg = ppo_defaults_for(ENV, steps_per_iteration=512, num_minibatches=8, policy_epochs=2, value_epochs=2)
    return train(TrainConfig(ENV, total_steps=512 * iterations, seed=seed, ppo=cfg), directory, progress=False)


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("runs") / "victim", seed=0, iterations=2)


@pytest.fixture
def run_copy(pendulum_run, tmp_path) -> Path:
    """A private copy of the run directory (reports and cached attacks are written into it)."""
    return Path(shutil.copytree(pendulum_run.run_dir, tmp_path / "run"))


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    return [_train(root / f"s{seed}", seed=seed, iterations=1).run_dir for seed in range(3)]


class Spy:
    """Wraps ``run_episodes`` in the robustness module; records which perturbation each call used."""

    def __init__(self, monkeypatch, fake=None):
        self.calls: list[str] = []
        self.fake = fake
        self.real = robustness_module.run_episodes
        monkeypatch.setattr(robustness_module, "run_episodes", self)

    def __call__(self, policy, env_id, episodes, **kwargs):
        perturb = kwargs.get("perturb")
        name = "natural" if perturb is None else perturb.__self__.name
        self.calls.append(name)
        if self.fake is not None:
            return self.fake(policy, name, episodes)
        return self.real(policy, env_id, episodes, **kwargs)


# ---- the report --------------------------------------------------------------------------------
def test_report_fields_worst_and_worst_case_robustness(pendulum_run, run_copy, tmp_path):
    policy = pendulum_run.policy
    path = tmp_path / "report.json"
    report = robustness_report(policy, ENV, attacks=CHEAP, eps=0.2, episodes=3, json_path=path, source=run_copy)

    assert report["format"] == REPORT_FORMAT
    assert (report["env_id"], report["eps"], report["norm"], report["episodes"], report["mode"]) == (ENV, 0.2, "inf", 3, "deterministic")
    assert report["perturbation_space"] == policy.perturbation_space
    assert report["source"] == str(run_copy)
    assert report["settings"]["victim_fingerprint"] == policy_fingerprint(policy)
    assert list(report["results"]) == ["natural", *CHEAP]
    for name, summary in report["results"].items():
        assert {"mean", "std", "min", "max", "episodes", "mean_length", "eval_seconds", "steps_per_second"} <= set(summary), name
        assert summary["episodes"] == 3 and summary["mean_length"] == 200
        assert summary["min"] <= summary["mean"] <= summary["max"]
        assert len(report["returns"][name]) == 3
        assert summary["mean"] == pytest.approx(np.mean(report["returns"][name]))
        if name != "natural":
            assert summary["loaded_fitted_attack"] is False and summary["fit_seconds"] >= 0
    # worst attack and worst-case robustness
    means = {name: report["results"][name]["mean"] for name in CHEAP}
    worst = min(means, key=means.get)
    natural = report["results"]["natural"]["mean"]
    assert report["worst"] == {"attack": worst, "mean": means[worst]}
    assert report["worst_case_robustness"] == pytest.approx((means[worst] - natural) / abs(natural))
    assert report["worst_case_robustness"] == worst_case_robustness(natural, means[worst])
    # the attacks change what the agent does; natural matches a plain evaluation on the same seeds
    assert any(report["returns"][name] != report["returns"]["natural"] for name in CHEAP)
    np.testing.assert_allclose(report["returns"]["natural"], run_episodes(policy, ENV, 3, seed=10_000).returns)
    # the file holds the same report
    assert json.loads(path.read_text()) == json.loads(json.dumps(report))


def test_worst_case_robustness_formula():
    assert worst_case_robustness(100.0, 25.0) == -0.75
    assert worst_case_robustness(-200.0, -300.0) == -0.5  # negative returns: divide by |natural|
    assert worst_case_robustness(50.0, 50.0) == 0.0
    assert math.isnan(worst_case_robustness(0.0, -1.0))


def test_report_rejects_bad_arguments(pendulum_run):
    for kwargs in ({"eps": -0.1}, {"eps": float("inf")}, {"attacks": ["foo"]}, {"norm": "3"}):
        with pytest.raises(InvalidArgumentError):
            robustness_report(pendulum_run.policy, ENV, **{"attacks": ["random"], "episodes": 1, **kwargs})


# ---- resumability ------------------------------------------------------------------------------
def test_second_call_does_not_rerun_finished_attacks(pendulum_run, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    path = tmp_path / "report.json"
    kwargs = dict(attacks=CHEAP, eps=0.1, episodes=2, json_path=path)
    first = robustness_report(pendulum_run.policy, ENV, **kwargs)
    assert spy.calls == ["natural", *CHEAP]
    written = path.read_bytes()

    spy.calls.clear()
    second = robustness_report(pendulum_run.policy, ENV, **kwargs)
    assert spy.calls == []
    assert second["results"] == first["results"] and second["returns"] == first["returns"]
    assert path.read_bytes() == written

    # an interrupted evaluation: the file lacks the last attack -> only that one runs
    partial = json.loads(written)
    del partial["results"]["mad"], partial["returns"]["mad"]
    path.write_text(json.dumps(partial))
    third = robustness_report(pendulum_run.policy, ENV, **kwargs)
    assert spy.calls == ["mad"]
    assert third["returns"] == first["returns"]  # MAD is seeded: the same episodes again
    assert third["worst"] == first["worst"]

    # a result recorded under other attack defaults (an older robustrl) is computed again
    spy.calls.clear()
    stale = json.loads(path.read_text())
    stale["results"]["critic"]["options"] = {**stale["results"]["critic"]["options"], "steps": 3}
    path.write_text(json.dumps(stale))
    robustness_report(pendulum_run.policy, ENV, **kwargs)
    assert spy.calls == ["critic"]

    # other settings (episodes, eps, another victim): nothing is resumed
    spy.calls.clear()
    robustness_report(pendulum_run.policy, ENV, **{**kwargs, "episodes": 1})
    assert spy.calls == ["natural", *CHEAP]


def test_report_with_a_grid_option_is_resumed(pendulum_run, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    kwargs = dict(attacks=["random"], eps=0.1, episodes=1, json_path=tmp_path / "report.json",
                  attack_options={"rs": {"grid": ((0.02, 0.1), (0.05, 1.0))}})  # the CLI passes every --attack-option
    robustness_report(pendulum_run.policy, ENV, **kwargs)
    spy.calls.clear()
    robustness_report(pendulum_run.policy, ENV, **kwargs)
    assert spy.calls == []


@pytest.mark.parametrize("garbage", [b'{"format": "robustrl-robustness-rep', b"\xff\xfe\x00binary", b"", b'{"format": "other", "results": {}}'])
def test_corrupt_report_is_replaced(pendulum_run, tmp_path, monkeypatch, garbage):
    spy = Spy(monkeypatch)
    path = tmp_path / "report.json"
    path.write_bytes(garbage)
    report = robustness_report(pendulum_run.policy, ENV, attacks=["random"], eps=0.1, episodes=1, json_path=path)
    assert spy.calls == ["natural", "random"]
    assert json.loads(path.read_text())["results"] == report["results"]
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


@pytest.mark.parametrize("content", ["[]", "null"])
def test_valid_json_that_is_not_a_report_is_replaced(pendulum_run, tmp_path, content):
    path = tmp_path / "report.json"
    path.write_text(content)
    robustness_report(pendulum_run.policy, ENV, attacks=["random"], eps=0.1, episodes=1, json_path=path)
    assert json.loads(path.read_text())["format"] == REPORT_FORMAT


# ---- cached fitted attacks -----------------------------------------------------------------------
def test_fitted_learned_attack_is_cached_in_the_run_dir_and_reused(pendulum_run, run_copy):
    policy = pendulum_run.policy
    kwargs = dict(attacks=["rs"], eps=0.2, episodes=2, attack_options={"rs": RS_TINY}, budgets={"rs": 256}, source=run_copy)
    first = robustness_report(policy, ENV, **kwargs)
    cache = run_copy / "attacks" / "eps0.2-linf"
    assert (cache / "rs.json").is_file() and (cache / "rs.safetensors").is_file()
    assert first["results"]["rs"]["loaded_fitted_attack"] is False
    saved = (cache / "rs.safetensors").read_bytes()

    second = robustness_report(policy, ENV, **kwargs)  # no json_path: only the attack cache is reused
    assert second["results"]["rs"]["loaded_fitted_attack"] is True
    # a cached fit keeps the seconds it took when it was made (a study prices fits from them)
    assert second["results"]["rs"]["fit_seconds"] == pytest.approx(first["results"]["rs"]["fit_seconds"], abs=0.05)
    assert second["returns"]["rs"] == first["returns"]["rs"]  # the same Q, the same (deterministic) PGD
    assert (cache / "rs.safetensors").read_bytes() == saved

    assert robustness_report(policy, ENV, **kwargs, refit=True)["results"]["rs"]["loaded_fitted_attack"] is False
    other_budget = robustness_report(policy, ENV, **{**kwargs, "budgets": {"rs": 512}})
    assert other_budget["results"]["rs"]["loaded_fitted_attack"] is False
    other_options = robustness_report(policy, ENV, **{**kwargs, "attack_options": {"rs": {**RS_TINY, "sarsa_reg": 0.5}}})
    assert other_options["results"]["rs"]["loaded_fitted_attack"] is False
    # another victim finds the cache but refuses it (fingerprint), fits again and replaces it
    torch.manual_seed(1)
    stranger = ActorCritic(policy.observation_space, policy.action_space)
    assert robustness_report(stranger, ENV, **kwargs)["results"]["rs"]["loaded_fitted_attack"] is False
    assert json.loads((cache / "rs.json").read_text())["victim_fingerprint"] == policy_fingerprint(stranger)
    # another eps gets its own cache directory
    robustness_report(policy, ENV, **{**kwargs, "eps": 0.3})
    assert (run_copy / "attacks" / "eps0.3-linf" / "rs.json").is_file()


def test_fitting_a_learned_attack_reports_progress(pendulum_run, tmp_path):
    """The report's progress callback sees the learned attack's fit and its episodes, both complete.
    Guards the seam between the report and ``Attack.fit(progress=...)``, whose calls follow
    robustrl.progress (``progress("fit rs", done, total, **fields)``): a callback of another shape
    raises here. Accepts the report's (stage, name, done, total) and the one signature."""
    calls = []
    robustness_report(
        pendulum_run.policy, ENV, attacks=["rs"], eps=0.2, episodes=2, attack_options={"rs": RS_TINY},
        budgets={"rs": 256}, attack_dir=tmp_path, progress=lambda *args, **fields: calls.append(args),
    )
    fits = [args for args in calls if isinstance(args[0], str) and args[0].startswith("fit")]
    assert fits, calls
    assert fits[-1][-2:] == (256, 256) and "rs" in " ".join(a for a in fits[-1] if isinstance(a, str))
    episodes = [args for args in calls if isinstance(args[0], str) and args[0].startswith("episodes")]
    assert episodes and episodes[-1][-2:] == (2, 2)


def test_budget_of_one_attack_does_not_invalidate_the_others(pendulum_run, run_copy, monkeypatch):
    """Each result carries its own options and budget: a call that adds a learned attack with a
    budget (the reproduction's second pass) reruns nothing else, and another budget for RS reruns
    RS only. Reports written before this kept the call's budgets in the settings: still resumed."""
    policy, path = pendulum_run.policy, run_copy / "report.json"
    base = dict(eps=0.2, episodes=1, attack_options={"rs": RS_TINY}, source=run_copy, json_path=path)
    spy = Spy(monkeypatch)
    robustness_report(policy, ENV, attacks=["random"], **base)
    robustness_report(policy, ENV, attacks=["random", "rs"], budgets={"rs": 256}, **base)
    assert spy.calls == ["natural", "random", "rs"]
    assert json.loads(path.read_text())["results"]["rs"]["budget"] == 256

    spy.calls.clear()
    report = robustness_report(policy, ENV, attacks=["random", "rs"], budgets={"rs": 512}, **base)
    assert spy.calls == ["rs"] and report["results"]["rs"]["loaded_fitted_attack"] is False

    # the older layout: budgets and options of the whole call in "settings", no per-result budget
    legacy = json.loads(path.read_text())
    legacy["settings"] |= {"budgets": {"rs": 512}, "attack_options": {"rs": RS_TINY}}
    for result in legacy["results"].values():
        result.pop("budget", None)
    path.write_text(json.dumps(legacy))
    spy.calls.clear()
    resumed = robustness_report(policy, ENV, attacks=["random", "rs"], budgets={"rs": 512}, **base)
    assert spy.calls == [] and resumed["results"]["rs"]["mean"] == report["results"]["rs"]["mean"]
    # a misspelt option is an error even when the file holds a result for that attack
    with pytest.raises(InvalidArgumentError, match="no_such_option"):
        robustness_report(policy, ENV, attacks=["random"], **{**base, "attack_options": {"random": {"no_such_option": 1}}})


def test_fits_keep_the_worst_of_several_fits_and_resume(pendulum_run, run_copy, monkeypatch):
    """``fits``: a learned attack fitted K times with attack seeds FIT_SEED_STRIDE apart, on the
    same evaluation episodes; the cell is the worst fit's (mean and returns), every fit is kept.
    Asking for more fits later fits only the missing ones (the first is the one-fit result already
    in the file, also when that file predates fits); asking for fewer reads the cell over the first
    ones without fitting; fit j > 0 has its own cache. Bad counts and cheap attacks are refused."""
    policy, path = pendulum_run.policy, run_copy / "report.json"
    base = dict(attacks=["rs"], eps=0.2, episodes=2, attack_options={"rs": RS_TINY}, budgets={"rs": 256},
                source=run_copy, json_path=path)  # fmt: skip
    spy = Spy(monkeypatch)
    one = robustness_report(policy, ENV, **base)["results"]["rs"]
    assert spy.calls == ["natural", "rs"] and len(one["fits"]) == 1 and one["fits_used"] == 1
    # an older file: no "fits" on the result; it counts as the first fit
    legacy = json.loads(path.read_text())
    for key in ("fits", "fits_used", "worst_fit"):
        legacy["results"]["rs"].pop(key)
    path.write_text(json.dumps(legacy))

    spy.calls.clear()
    report = robustness_report(policy, ENV, **base, fits={"rs": 3})
    result = report["results"]["rs"]
    assert spy.calls == ["rs", "rs"]  # fits 2 and 3 only
    seeds = [fit["seed"] for fit in result["fits"]]
    assert seeds == [10_000 + 50_000 + robustness_module.FIT_SEED_STRIDE * j for j in range(3)]
    assert result["fits"][0]["mean"] == one["mean"] and result["fits_used"] == 3
    means = [fit["mean"] for fit in result["fits"]]
    assert result["mean"] == min(means) and result["worst_fit"] == int(np.argmin(means))
    assert report["returns"]["rs"] == result["fits"][result["worst_fit"]]["returns"]
    assert report["worst"]["mean"] <= min(means)
    cache = run_copy / "attacks" / "eps0.2-linf"
    assert all((cache / f"fit{j}" / "rs.json").is_file() for j in (1, 2)) and (cache / "rs.json").is_file()
    assert len({(cache / d / "rs.safetensors").read_bytes() for d in (".", "fit1", "fit2")}) == 3  # three fits, three Q's

    spy.calls.clear()
    assert robustness_report(policy, ENV, **base, fits={"rs": 3})["results"]["rs"] == result  # resumed
    fewer = robustness_report(policy, ENV, **base, fits={"rs": 2})["results"]["rs"]
    assert spy.calls == [] and fewer["mean"] == min(means[:2]) and fewer["fits_used"] == 2 and len(fewer["fits"]) == 3
    assert robustness_module.attack_done(json.loads(path.read_text()), "rs", 2)
    assert not robustness_module.attack_done(json.loads(path.read_text()), "rs", 3)  # the file's cell is over 2 now
    with pytest.raises(InvalidArgumentError, match="'random' is not a learned attack"):
        robustness_report(policy, ENV, **{**base, "attacks": ["random"]}, fits={"random": 2})
    with pytest.raises(InvalidArgumentError, match="whole number of fits"):
        robustness_report(policy, ENV, **base, fits={"rs": 0})
    assert json.loads(path.read_text())["results"]["rs"]["fits_used"] == 2  # refused calls wrote nothing


def test_pictures_show_the_fit_the_table_measured(pendulum_run, run_copy, monkeypatch):
    """`--render` / `--figures` after `--fits`: the traces replay the report's worst fit, loaded
    from that fit's own cache folder with its own seed, not the first fit (nothing is refitted)."""
    from robustrl.evaluate.render import write_attack_pictures

    kwargs = dict(eps=0.2, attack_options={"rs": RS_TINY}, budgets={"rs": 256}, source=run_copy)
    report = robustness_report(pendulum_run.policy, ENV, attacks=["rs"], episodes=1, fits={"rs": 2}, **kwargs)
    report["results"]["rs"]["worst_fit"] = 1  # whichever fit the tiny run found worst, the pictures follow the report
    real, loaded = robustness_module._fitted_attack, []

    def spy(name, eps, norm, policy, env_id, options, budget, attack_dir, refit, progress, seed):
        attack, seconds, from_cache = real(name, eps, norm, policy, env_id, options, budget, attack_dir, refit, progress, seed)
        loaded.append((attack_dir.name, seed, from_cache))
        return attack, seconds, from_cache

    monkeypatch.setattr(robustness_module, "_fitted_attack", spy)
    write_attack_pictures(pendulum_run.policy, ENV, ["rs"], figures=run_copy / "figures", report=report, **kwargs)
    assert loaded == [("fit1", 10_000 + 50_000 + robustness_module.FIT_SEED_STRIDE, True)]
    assert (run_copy / "figures" / "perturbation-rs.png").is_file()


def test_cached_attack_with_a_grid_is_reused(pendulum_run, run_copy):
    """The grid goes through JSON (tuples -> lists) and must still match the requested options."""
    options = {**RS_TINY, "grid": ((0.02, 0.1),)}  # what --attack-option rs.grid=[[0.02,0.1]] passes
    kwargs = dict(attacks=["rs"], eps=0.2, episodes=1, attack_options={"rs": options}, budgets={"rs": 256}, source=run_copy)
    robustness_report(pendulum_run.policy, ENV, **kwargs)
    assert robustness_report(pendulum_run.policy, ENV, **kwargs)["results"]["rs"]["loaded_fitted_attack"] is True


def test_cached_attack_for_another_eps_is_not_reused(pendulum_run, tmp_path):
    shared = tmp_path / "attacks"
    reports = eps_sweep(
        pendulum_run.policy, ENV, [0.1, 0.5], attacks=["rs"], episodes=1, attack_options={"rs": RS_TINY},
        budgets={"rs": 256}, attack_dir=shared,
    )
    assert reports[1]["eps"] == 0.5
    assert reports[1]["results"]["rs"]["loaded_fitted_attack"] is False  # fitted for eps 0.1: must not be reused


def test_cached_pa_ad_reproduces_the_fitting_evaluation(pendulum_run, run_copy):
    kwargs = dict(attacks=["pa-ad"], eps=0.3, episodes=2, budgets={"pa-ad": 2048}, attack_options={"pa-ad": {"num_envs": 2}},
                  source=run_copy)
    first = robustness_report(pendulum_run.policy, ENV, **kwargs)
    second = robustness_report(pendulum_run.policy, ENV, **kwargs)
    if not second["results"]["pa-ad"]["loaded_fitted_attack"]:
        raise RuntimeError("precondition: the second evaluation should load the cached PA-AD")
    assert second["returns"]["pa-ad"] == first["returns"]["pa-ad"]


# ---- the median agent ----------------------------------------------------------------------------
def _report(natural: float, worst: float | None = None) -> dict:
    report = {"results": {"natural": {"mean": natural}}}
    if worst is not None:
        report["worst"] = {"attack": "mad", "mean": worst}
    return report


def test_median_agent_on_hand_made_reports():
    # ranks agree: the middle agent by both
    assert median_agent([_report(10, 5), _report(30, 25), _report(20, 15)]) == 2
    # natural ranks [0, 1, 2], robust ranks [2, 0, 1]: mean ranks [1, 0.5, 1.5] -> order 1, 0, 2
    assert median_agent([_report(10, 90), _report(20, 10), _report(30, 50)]) == 0
    # tie on mean rank (1 and 0 both 0.5, see the median-protocol test below): lower robust return first
    assert median_agent([_report(100, 50), _report(200, -1000), _report(300, 250)]) == 0
    # five agents, one outlier in each direction
    reports = [_report(n, w) for n, w in [(500, 400), (-50, -100), (300, 250), (1000, 900), (200, 150)]]
    assert median_agent(reports) == 2
    # even count: the lower median
    assert median_agent([_report(1, 1), _report(2, 2), _report(3, 3), _report(4, 4)]) == 1
    # no attack yet: the natural return stands in for the robust one
    assert median_agent([_report(5), _report(1), _report(3)]) == 2
    assert median_agent([_report(7, 3)]) == 0
    with pytest.raises(InvalidArgumentError):
        median_agent([])


@pytest.mark.slow
def test_median_agent_protocol_runs_expensive_attacks_only_on_the_median(three_runs, tmp_path, monkeypatch):
    copies = [Path(shutil.copytree(run, tmp_path / run.name)) for run in three_runs]
    spy = Spy(monkeypatch)
    result = median_agent_protocol(copies, cheap_attacks=("random",), expensive_attacks=("mad",), eps=0.1, episodes=2)
    index = result["median_index"]
    assert result["median_source"] == str(copies[index])
    assert index == median_agent(result["reports"])
    # natural + cheap on every agent, then only the expensive attack on the median (its cheap results resumed)
    assert spy.calls == ["natural", "random"] * 3 + ["mad"]
    for i, (run, report) in enumerate(zip(copies, result["reports"])):
        assert set(report["results"]) == {"natural", "random"}
        written = json.loads((run / "eval-eps0.1.json").read_text())
        assert ("mad" in written["results"]) == (i == index)
    median = result["median_report"]
    assert set(median["results"]) == {"natural", "random", "mad"}
    assert median["returns"]["random"] == result["reports"][index]["returns"]["random"]
    assert median["worst"]["mean"] == min(median["results"][n]["mean"] for n in ("random", "mad"))


def _fake_protocol_run(tmp_path, monkeypatch):
    """Three agents with scripted returns: natural 100/200/300, random 50/150/250, mad -1000."""
    runs, policies = [], {}
    for i in range(3):
        run = tmp_path / f"run{i}"
        run.mkdir()
        torch.manual_seed(i)
        policies[str(run)] = ActorCritic(*_pendulum_spaces())
        runs.append(run)
    index_of = {id(p): i for i, p in enumerate(policies.values())}
    table = {"natural": [100, 200, 300], "random": [50, 150, 250], "mad": [-1000] * 3}

    def fake(policy, name, episodes):
        value = table[name][index_of[id(policy)]]
        return EpisodeResults(np.full(episodes, float(value)), np.full(episodes, 200))

    spy = Spy(monkeypatch, fake)
    kwargs = dict(env_id=ENV, cheap_attacks=("random",), expensive_attacks=("mad",), eps=0.1, episodes=2,
                  load=lambda source, env: policies[str(source)])
    return runs, spy, kwargs


def _pendulum_spaces():
    import gymnasium as gym

    env = gym.make(ENV)
    env.close()
    return env.observation_space, env.action_space


def test_median_agent_protocol_with_scripted_returns(tmp_path, monkeypatch):
    runs, spy, kwargs = _fake_protocol_run(tmp_path, monkeypatch)
    result = median_agent_protocol(runs, **kwargs)
    assert result["median_index"] == 1
    assert spy.calls == ["natural", "random"] * 3 + ["mad"]
    assert result["median_report"]["worst"] == {"attack": "mad", "mean": -1000.0}
    assert result["median_report"]["worst_case_robustness"] == pytest.approx(-6.0)


def test_median_agent_protocol_is_idempotent(tmp_path, monkeypatch):
    runs, spy, kwargs = _fake_protocol_run(tmp_path, monkeypatch)
    first = median_agent_protocol(runs, **kwargs)
    spy.calls.clear()
    second = median_agent_protocol(runs, **kwargs)
    assert second["median_index"] == first["median_index"]
    assert spy.calls == []


# ---- eps sweep and plot --------------------------------------------------------------------------
def test_eps_sweep_and_plot(pendulum_run, tmp_path):
    reports = eps_sweep(pendulum_run.policy, ENV, [0.0, 0.1, 0.5], attacks=["random"], episodes=2, json_path=tmp_path / "sweep.json")
    assert [r["eps"] for r in reports] == [0.0, 0.1, 0.5]
    for eps in ("0", "0.1", "0.5"):
        assert json.loads((tmp_path / f"sweep-eps{eps}.json").read_text())["eps"] == float(eps)
    # eps = 0: the attack is the identity, so the episodes are the natural ones
    assert reports[0]["returns"]["random"] == reports[0]["returns"]["natural"]
    png = plot_eps_sweep(reports, tmp_path / "plots" / "sweep.png")
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    with pytest.raises(InvalidArgumentError):
        eps_sweep(pendulum_run.policy, ENV, [], attacks=["random"])


def test_method_comparison_plot_shows_mean_bars_seed_dots_and_paper(tmp_path, monkeypatch):
    def report(natural, worst):
        return {"env_id": "Hopper-v5", "eps": 0.075, "episodes": 20, "mode": "deterministic",
                "results": {"natural": {"mean": natural}}, "worst": {"attack": "sa-rl", "mean": worst}}

    reports = {"PPO": [report(3000, 100), report(2000, 300)], "BAR-PPO": [report(3300, 1500)], "empty": []}
    figures = []
    monkeypatch.setattr(plots_module.plt, "close", figures.append)  # keep the figure to inspect it
    png = plot_method_comparison(reports, tmp_path / "cmp.png", paper={"PPO": (3081, 79)})
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    ax = figures[0].axes[0]
    heights = sorted(round(bar.get_height()) for bar in ax.patches)
    assert heights == sorted([2500, 200, 3300, 1500])  # means over seeds; the empty method is left out
    assert [t.get_text() for t in ax.get_xticklabels()] == ["PPO", "BAR-PPO"]
    dots = np.concatenate([c.get_offsets() for c in ax.collections])[:, 1]
    assert {3000, 2000, 100, 300, 3081, 79} <= set(np.round(dots).astype(int))
    with pytest.raises(ValueError, match="no reports"):
        plot_method_comparison({"PPO": []}, tmp_path / "none.png")
    natural_only = report(3000, 0)
    del natural_only["worst"]  # no attack evaluated yet: a natural dot, no worst-case bar
    assert plot_method_comparison({"PPO": [natural_only]}, tmp_path / "natural.png").is_file()


# ---- tables ----------------------------------------------------------------------------------------
def _table_report(results: dict, worst=None, robustness=None) -> dict:
    report = {"env_id": ENV, "eps": 0.1, "norm": "inf", "perturbation_space": "normalised observations",
              "episodes": 2, "mode": "deterministic", "source": "run", "results": results}
    if worst is not None:
        report["worst"], report["worst_case_robustness"] = worst, robustness
    return report


def _summary(mean, std=1.0):
    return {"mean": mean, "std": std}


def test_markdown_table_columns_and_cells():
    full = _table_report(
        {"natural": _summary(-150.0, 2.0), "random": _summary(-160.0), "critic": _summary(-170.0), "mad": _summary(-300.0, 12.5)},
        worst={"attack": "mad", "mean": -300.0}, robustness=-1.0,
    )
    text = robustness_markdown([full], ["agent-0"])
    lines = text.strip().splitlines()
    assert lines[0].startswith("**Pendulum-v1: return under attack, eps=0.1 (l_inf ball in normalised observations)")
    assert lines[2] == "| policy | Natural | Random | Critic | MAD | Worst | Worst-case robustness |"
    assert lines[3] == "|---|---:|---:|---:|---:|---:|---:|"
    assert lines[4] == "| agent-0 | -150.0 ± 2.0 | -160.0 ± 1.0 | -170.0 ± 1.0 | -300.0 ± 12.5 | -300.0 (MAD) | -100.0% |"


def test_table_column_order_and_missing_cells():
    """Columns follow the papers' order whatever the report order; attacks missing from a row are '-'."""
    a = _table_report({"pa-ad": _summary(1.0), "natural": _summary(9.0), "custom": _summary(2.0), "rs": _summary(3.0)},
                      worst={"attack": "pa-ad", "mean": 1.0}, robustness=-8 / 9)
    b = _table_report({"natural": _summary(5.0)})
    header = robustness_markdown([a, b], ["a", "b"]).strip().splitlines()[2]
    assert header == "| policy | Natural | RS | PA-AD | custom | Worst | Worst-case robustness |"
    row_b = robustness_markdown([a, b], ["a", "b"]).strip().splitlines()[5]
    assert row_b == "| b | 5.0 ± 1.0 | - | - | - | - | - |"
    table = robustness_table([a, b], ["a", "b"])
    assert [str(c.header) for c in table.columns] == ["policy", "Natural", "RS", "PA-AD", "custom", "Worst", "Worst-case robustness"]
    assert table.row_count == 2


def test_markdown_of_a_real_report(pendulum_run, tmp_path):
    report = robustness_report(pendulum_run.policy, ENV, attacks=CHEAP, eps=0.1, episodes=1)
    header = robustness_markdown([report]).splitlines()[2]
    assert header == "| policy | Natural | Random | Critic | MAD | Worst | Worst-case robustness |"
    row = robustness_markdown([report]).splitlines()[4]
    assert row.endswith(f"| {report['worst_case_robustness']:+.1%} |")


# ---- command line ------------------------------------------------------------------------------
def call(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(code: int, out: str, err: str) -> str:
    assert "Traceback" not in out + err, err
    assert code == 2, f"exit code {code}; stderr:\n{err}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and lines[0][6:].strip(), err
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_cli_evaluate_with_attacks_writes_json_and_markdown(capsys, run_copy, tmp_path):
    json_file, markdown_file = tmp_path / "out" / "report.json", tmp_path / "report.md"
    json_file.parent.mkdir()
    code, out, err = call(capsys, "evaluate", str(run_copy), "--attacks", "random,mad", "--episodes", "2",
                          "--json", str(json_file), "--markdown", str(markdown_file))
    assert code == 0, err
    report = json.loads(json_file.read_text())
    assert list(report["results"]) == ["natural", "random", "mad"]
    assert report["eps"] == 0.05 and report["episodes"] == 2  # the fallback eps for tasks outside the papers
    assert report["worst"]["attack"] in ("random", "mad")
    markdown = markdown_file.read_text()
    assert "| policy | Natural | Random | MAD | Worst | Worst-case robustness |" in markdown
    assert any(line.startswith(f"| {run_copy.name} | ") for line in markdown.splitlines())  # row label: the run's name
    assert "Worst" in out
    # the same command again resumes from the JSON: identical numbers
    code, _, err = call(capsys, "evaluate", str(run_copy), "--attacks", "random,mad", "--episodes", "2",
                        "--json", str(json_file), "--markdown", str(markdown_file))
    assert code == 0, err
    assert json.loads(json_file.read_text())["returns"] == report["returns"]


def test_cli_fits_keeps_the_worst_fit(capsys, run_copy, tmp_path):
    """`--fits rs=2`: RS fitted twice (the worst kept), the markdown table as usual."""
    json_file = tmp_path / "report.json"
    options = [f"--attack-option=rs.{k}={v}" for k, v in RS_TINY.items()]
    code, _, err = call(capsys, "evaluate", str(run_copy), "--attacks", "rs", "--episodes", "1", "--eps", "0.1",
                        "--budget", "rs=256", "--fits", "rs=2", *options, "--json", str(json_file))
    assert code == 0, err
    result = json.loads(json_file.read_text())["results"]["rs"]
    assert len(result["fits"]) == 2 and result["mean"] == min(f["mean"] for f in result["fits"])


def test_cli_workers_make_the_fits_side_by_side_and_the_report_loads_them(capsys, run_copy, tmp_path):
    """`--workers 2 --fits sa-rl=2`: both SA-RL fits are made in worker processes into the run's
    cache (fit 1 in its own folder) before the episodes; the report loads both (each keeps the
    seconds its fit took) and keeps the worst; with --median, --workers is refused by name."""
    json_file = tmp_path / "report.json"
    tiny = json.dumps([{"steps_per_iteration": 256, "num_minibatches": 4, "policy_epochs": 1, "value_epochs": 1}])
    options = [f"--attack-option=sa-rl.grid={tiny}", "--attack-option=sa-rl.num_envs=2", "--attack-option=sa-rl.selection_episodes=1"]
    code, _, err = call(capsys, "evaluate", str(run_copy), "--attacks", "random,sa-rl", "--episodes", "1", "--eps", "0.1",
                        "--budget", "sa-rl=512", "--fits", "sa-rl=2", *options, "--workers", "2", "--json", str(json_file))  # fmt: skip
    assert code == 0, err
    cache = run_copy / "attacks" / "eps0.1-linf"
    assert (cache / "sa-rl.json").is_file() and (cache / "fit1" / "sa-rl.json").is_file()
    result = json.loads(json_file.read_text())["results"]["sa-rl"]
    assert [f["loaded_fitted_attack"] for f in result["fits"]] == [True, True]
    assert all(f["fit_seconds"] > 0 for f in result["fits"]) and result["mean"] == min(f["mean"] for f in result["fits"])
    code, _, err = call(capsys, "evaluate", str(run_copy), "--attacks", "random,sa-rl", "--median", "--workers", "2")
    assert code != 0 and "--workers" in err


def test_cli_default_report_lives_in_the_run_dir(capsys, run_copy):
    code, _, err = call(capsys, "evaluate", str(run_copy), "--attacks", "random", "--episodes", "1", "--eps", "0.1")
    assert code == 0, err
    assert json.loads((run_copy / "eval-eps0.1.json").read_text())["results"]["random"]["episodes"] == 1


@pytest.mark.parametrize(
    "bad",
    [
        ["--attacks", "foo"],
        ["--attacks", "random,foo"],
        ["--eps", "-1"],
        ["--eps", "nan"],
        ["--eps", "abc"],
        ["--budget", "foo=3"],
        ["--budget", "random=3"],  # not a learned attack
        ["--budget", "sa-rl=-5"],
        ["--budget", "sa-rl"],
        ["--fits", "random=2"],  # nothing to fit
        ["--fits", "sa-rl=0"],
        ["--fits", "sa-rl"],
        ["--fits", "rs=2"],  # not among --attacks
        ["--fits", "rs=\u00b3"],  # a superscript is no count
        ["--attack-option", "rs.nope=1"],
        ["--attack-option", "foo.steps=1"],
        ["--attack-option", "mad=1"],
        ["--attack-option", "rs.grid=[[0.02,"],
        ["--eps-sweep", "0,-1"],
        ["--eps-sweep", "a,b"],
        ["--norm", "3"],
        ["--mode", "both"],
        ["--median", "--eps-sweep", "0,0.1"],
    ],
)
def test_cli_bad_attack_options_are_one_error_line(capsys, run_copy, tmp_path, bad):
    before = snapshot(run_copy)
    json_file = tmp_path / "report.json"
    code, out, err = call(capsys, "evaluate", str(run_copy), "--attacks", "random", "--episodes", "1", "--json", str(json_file), *bad)
    assert_one_error_line(code, out, err)
    assert snapshot(run_copy) == before
    assert not json_file.exists()


def test_cli_eps_sweep_writes_a_png(capsys, run_copy, tmp_path):
    plot = tmp_path / "sweep.png"
    code, out, err = call(capsys, "evaluate", str(run_copy), "--eps-sweep", "0,0.1", "--attacks", "random",
                          "--episodes", "2", "--plot", str(plot))
    assert code == 0, err
    data = plot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    assert "eps=0.1" in out
    assert (run_copy / "eps-sweep-eps0.json").is_file() and (run_copy / "eps-sweep-eps0.1.json").is_file()


@pytest.mark.slow
def test_cli_median_protocol(capsys, three_runs, tmp_path):
    copies = [str(shutil.copytree(run, tmp_path / run.name)) for run in three_runs]
    markdown = tmp_path / "median.md"
    code, _, err = call(capsys, "evaluate", *copies, "--median", "--attacks", "random", "--episodes", "1",
                          "--eps", "0.1", "--markdown", str(markdown))
    assert code == 0, err
    rows = [line for line in markdown.read_text().splitlines() if line.startswith("| s")]
    assert [row.split(" | ")[0].removeprefix("| ").removesuffix(" (median)") for row in rows] == ["s0", "s1", "s2"]
    assert sum("(median)" in row for row in rows) == 1
    median_row = next(row for row in rows if "(median)" in row)
    assert median_row.count(" ± ") == 2  # natural and random (no expensive attack in the list)
