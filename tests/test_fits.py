"""Learned attacks fitted several times (``fits``), the worst fit kept: the report's resume
semantics (a file from before fits, an interruption between fits, fewer, more, changed options),
a call that does not ask for fits, and the study's pricing of fits. The fits and their episodes
are faked (fit j's episodes return FIT_MEANS[j]): nothing trains; the real fits run in
tests/test_robustness.py and tests/test_study.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robustrl.evaluate import robustness as R
from robustrl.evaluate.robustness import FIT_SEED_STRIDE, attack_done, robustness_report
from robustrl.evaluate.rollout import EpisodeResults
from robustrl.experiments.spec import parse_spec
from robustrl.experiments.study import Study
from robustrl.policies.actor_critic import ActorCritic

ENV = "Pendulum-v1"
BASE_SEED = 10_000 + 50_000
# the mean return each fit j of "rs" gives (fit 1 is the worst)
FIT_MEANS = {0: -100.0, 1: -300.0, 2: -200.0, 3: -250.0}


def _policy():
    import gymnasium as gym

    env = gym.make(ENV)
    env.close()
    torch.manual_seed(0)
    return ActorCritic(env.observation_space, env.action_space)


class FakeAttack:
    def __init__(self, name, seed):
        self.name, self.seed = name, seed
        self.generator = torch.Generator()

    def perturb(self, obs):
        return obs


class Fakes:
    """Replaces _fitted_attack and run_episodes: fit j's episodes return FIT_MEANS[j]."""

    def __init__(self, monkeypatch, interrupt_at_fit=None):
        self.fits: list[int] = []
        self.interrupt_at_fit = interrupt_at_fit
        monkeypatch.setattr(R, "_fitted_attack", self.fitted)
        monkeypatch.setattr(R, "run_episodes", self.episodes)

    def fitted(self, name, eps, norm, policy, env_id, options, budget, attack_dir, refit, progress, seed):
        j = (seed - BASE_SEED) // FIT_SEED_STRIDE
        if j == self.interrupt_at_fit:
            raise KeyboardInterrupt
        if name == "rs":
            self.fits.append(j)
        return FakeAttack(name, seed), 1.0, False

    def episodes(self, policy, env_id, episodes, **kwargs):
        perturb = kwargs.get("perturb")
        if perturb is None:
            value = 0.0
        else:
            attack = perturb.__self__
            value = FIT_MEANS[(attack.seed - BASE_SEED) // FIT_SEED_STRIDE] if attack.name == "rs" else -50.0
        # two episodes that differ, so the returns identify the fit
        return EpisodeResults(np.array([value - 1.0, value + 1.0]), np.array([200, 200]))  # mean: value


def _report(policy, path, tmp_path, **kwargs):
    return robustness_report(policy, ENV, attacks=kwargs.pop("attacks", ["rs"]), eps=0.2, episodes=2, json_path=path,
                             attack_dir=tmp_path / "attacks", **kwargs)  # fmt: skip


def _consistent(path: Path, name: str = "rs") -> dict:
    """The file's cell is the worst of its first fits_used fits, and its returns are that fit's."""
    report = json.loads(path.read_text())
    result = report["results"][name]
    used = result["fits"][: result["fits_used"]]
    worst = min(range(len(used)), key=lambda j: used[j]["mean"])
    assert result["worst_fit"] == worst and result["mean"] == used[worst]["mean"]
    assert report["returns"][name] == used[worst]["returns"]
    return result


def test_fits_resume_from_an_old_file_an_interruption_fewer_more_and_new_options(tmp_path, monkeypatch):
    policy, path = _policy(), tmp_path / "report.json"
    fakes = Fakes(monkeypatch)
    _report(policy, path, tmp_path)
    assert fakes.fits == [0]
    # make it a pre-change file
    legacy = json.loads(path.read_text())
    for key in ("fits", "fits_used", "worst_fit"):
        legacy["results"]["rs"].pop(key)
    path.write_text(json.dumps(legacy))
    assert attack_done(legacy, "rs", 1) and not attack_done(legacy, "rs", 2)

    # interrupted in the third fit: the second is kept
    fakes.fits.clear()
    fakes.interrupt_at_fit = 2
    with pytest.raises(KeyboardInterrupt):
        _report(policy, path, tmp_path, fits={"rs": 3})
    assert fakes.fits == [1]
    result = _consistent(path)
    assert result["fits_used"] == 2 and result["mean"] == FIT_MEANS[1]
    assert not attack_done(json.loads(path.read_text()), "rs", 3)

    fakes.interrupt_at_fit = None
    fakes.fits.clear()
    _report(policy, path, tmp_path, fits={"rs": 3})
    assert fakes.fits == [2]
    assert _consistent(path)["fits_used"] == 3
    # fewer: no fit, the cell over fits 0 (and its returns)
    fakes.fits.clear()
    _report(policy, path, tmp_path, fits={"rs": 1})
    result = _consistent(path)
    assert fakes.fits == [] and result["mean"] == FIT_MEANS[0] and len(result["fits"]) == 3
    # more than ever: only fit 3
    _report(policy, path, tmp_path, fits={"rs": 4})
    assert fakes.fits == [3] and _consistent(path)["fits_used"] == 4
    # changed options: every fit again
    fakes.fits.clear()
    _report(policy, path, tmp_path, fits={"rs": 2}, attack_options={"rs": {"attack_steps": 3}})
    assert fakes.fits == [0, 1] and len(_consistent(path)["fits"]) == 2


def test_a_call_that_does_not_ask_for_fits_keeps_the_worst_of_the_files_fits(tmp_path, monkeypatch):
    """A worst-of-3 cell is done for a caller that does not ask for fits (attack_done(..., 1)),
    and robustness_report agrees: an unrelated attack added (or `robustrl evaluate` without
    --fits) leaves the cell the worst of 3, not fit 0's."""
    policy, path = _policy(), tmp_path / "report.json"
    fakes = Fakes(monkeypatch)
    _report(policy, path, tmp_path, fits={"rs": 3})
    assert json.loads(path.read_text())["results"]["rs"]["mean"] == FIT_MEANS[1]
    assert attack_done(json.loads(path.read_text()), "rs", 1)  # the study: nothing to do for rs
    # an unrelated attack added (or the CLI without --fits): rs is "done", yet its cell changes
    fakes.fits.clear()
    _report(policy, path, tmp_path, attacks=["rs", "random"])
    assert fakes.fits == []
    assert json.loads(path.read_text())["results"]["rs"]["mean"] == FIT_MEANS[1]
    _consistent(path)


def test_fits_are_priced_once_when_the_evaluation_rate_was_measured_with_them(tmp_path):
    """A study that fits SA-RL 3 times from the start: run A's evaluation took 30 s of cheap
    attacks + 3 fits of 50 s = 180 s, and its report holds the 3 fits. The evaluation rate is of
    one fit (80 s) and the two more are priced apart (100 s): run B's evaluation, 180 s."""
    from robustrl.evaluate.reports import report_path

    parsed = parse_spec({
        "name": "t", "methods": {"ppo": {"algo": "ppo"}}, "envs": ["Pendulum-v1"], "seeds": [0, 1], "steps": 512,
        "set": {"steps_per_iteration": 256, "num_minibatches": 4, "policy_epochs": 2, "value_epochs": 2},
        "evaluation": {"attacks": ["random", "sa-rl"], "eps": 0.1, "episodes": 2, "fits": {"sa-rl": 3}},
    })  # fmt: skip
    study = Study(tmp_path, parsed)
    first, second = parsed.runs
    study.status["runs"][first.name].update(train="done", evaluate="done", evaluate_seconds=180.0)
    study.status["runs"][second.name].update(train="done")
    fit = {"fit_seconds": 40.0, "eval_seconds": 10.0, "loaded_fitted_attack": False}
    results = {"natural": {"mean": 1.0}, "random": {"mean": 1.0},
               "sa-rl": {"mean": 0.5, "fits_used": 3, "worst_fit": 0,
                         "fits": [{"mean": 0.5, **fit}, {"mean": 0.6, **fit}, {"mean": 0.7, **fit}]}}  # fmt: skip
    study.run_dir(first).mkdir(parents=True)
    path = report_path(study.run_dir(first), 0.1, parsed.evaluation.norm, parsed.evaluation.deterministic)
    path.write_text(json.dumps({"results": results}))
    seconds, unpriced = study.plan_seconds([("evaluate", second.name)])
    assert unpriced == []
    assert seconds == pytest.approx(180.0)
    assert study.task_seconds()["evaluation"]["ppo"] == pytest.approx(80.0)


def test_fits_are_priced_per_task_where_the_study_has_fitted_on_it(tmp_path):
    """A study over two tasks whose SA-RL fits (with their episodes) took 50 s on one and 110 s on
    the other: a fit left on a task is priced at that task's own mean, not the study's 80 s."""
    from robustrl.evaluate.reports import report_path

    parsed = parse_spec({
        "name": "t", "methods": {"ppo": {"algo": "ppo"}}, "envs": ["Pendulum-v1", "MountainCarContinuous-v0"], "seeds": [0, 1],
        "steps": 512, "set": {"steps_per_iteration": 256, "num_minibatches": 4, "policy_epochs": 2, "value_epochs": 2},
        "evaluation": {"attacks": ["random", "sa-rl"], "eps": 0.1, "episodes": 2, "fits": {"sa-rl": 2}},
    })  # fmt: skip
    study = Study(tmp_path, parsed)
    runs = {(r.env_id, r.config.seed): r for r in parsed.runs}
    for (env, seed), fit_seconds in [(("Pendulum-v1", 0), 40.0), (("MountainCarContinuous-v0", 0), 100.0)]:
        run = runs[(env, seed)]
        fit = {"fit_seconds": fit_seconds, "eval_seconds": 10.0}
        results = {"natural": {"mean": 1.0}, "random": {"mean": 1.0},
                   "sa-rl": {"mean": 0.5, "fits_used": 2, "worst_fit": 0, "fits": [{"mean": 0.5, **fit}, {"mean": 0.6, **fit}]}}  # fmt: skip
        study.run_dir(run).mkdir(parents=True)
        report_path(study.run_dir(run), 0.1, parsed.evaluation.norm, parsed.evaluation.deterministic).write_text(
            json.dumps({"results": results})
        )
    rates = study.task_seconds()["fit"]
    assert rates == {"sa-rl": 80.0, "sa-rl@Pendulum-v1": 50.0, "sa-rl@MountainCarContinuous-v0": 110.0}
    # seed 1 of each: a report holding one fit of each attack, so only the second SA-RL fit is left
    for env in ("Pendulum-v1", "MountainCarContinuous-v0"):
        run = runs[(env, 1)]
        study.status["runs"][run.name].update(train="done")
        study.run_dir(run).mkdir(parents=True)
        one = {"natural": {"mean": 1.0}, "random": {"mean": 1.0}, "sa-rl": {"mean": 0.5, "fits": [{"mean": 0.5}]}}
        report_path(study.run_dir(run), 0.1, parsed.evaluation.norm, parsed.evaluation.deterministic).write_text(
            json.dumps({"results": one})
        )
    assert study.plan_seconds([("evaluate", runs[("Pendulum-v1", 1)].name)])[0] == pytest.approx(50.0)
    assert study.plan_seconds([("evaluate", runs[("MountainCarContinuous-v0", 1)].name)])[0] == pytest.approx(110.0)
