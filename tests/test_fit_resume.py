"""A learned attack's fit cut short resumes from its last saved state (robustrl.attacks.adversary.
FitCheckpoint): SA-RL's and PA-AD's 1M-step fits take 5-15 min, and a study stopped mid-fit used
to start them over. The state is kept only for the same victim, attack, ball, seed and budget; a
finished adversary is reused without training; the evaluation removes the state once it cached
the fit."""

from __future__ import annotations

import json
import time

import pytest
import torch

from robustrl.algos.ppo import PPO
from robustrl.attacks import make_attack
from robustrl.attacks.adversary import LearnedAdversaryAttack
from robustrl.evaluate.robustness import _fitted_attack
from test_attacks import PENDULUM, TINY_PPO, random_victim

ITERATION = TINY_PPO["steps_per_iteration"]  # 256 env steps
BUDGET = 8 * ITERATION


@pytest.fixture
def iterations(monkeypatch):
    """Counts the PPO iterations trained (adversaries included), and saves every 2 iterations."""
    counter = {"n": 0}
    original = PPO.train_iteration

    def counted(self):
        counter["n"] += 1
        return original(self)

    monkeypatch.setattr(PPO, "train_iteration", counted)
    monkeypatch.setattr(LearnedAdversaryAttack, "checkpoint_every", 2)
    return counter


def _attack(name: str = "sa-rl", seed: int = 3):
    return make_attack(name, 0.1, seed=seed, grid=(TINY_PPO,), num_envs=2)


def _cut_after(steps: int):
    """A progress callback that stops the fit (as Ctrl-C would) once ``steps`` env steps are done."""

    def progress(task, done, total, **fields):
        if done >= steps:
            raise KeyboardInterrupt

    return progress


@pytest.mark.parametrize("name", ["sa-rl", "pa-ad"])
def test_a_fit_cut_short_resumes_from_its_last_save_and_matches_a_fresh_fits_result_shape(name, iterations, tmp_path):
    torch.set_num_threads(1)
    victim = random_victim()
    partial = tmp_path / f"{name}.partial"
    with pytest.raises(KeyboardInterrupt):
        _attack(name).fit(victim, PENDULUM, budget=BUDGET, progress=_cut_after(5 * ITERATION), resume_dir=partial)
    assert iterations["n"] == 5
    saved = json.loads((partial / "candidate0.json").read_text())
    assert saved["global_step"] == 4 * ITERATION and not saved["finished"]  # the save at iteration 4
    iterations["n"] = 0
    calls = []
    start = time.perf_counter()
    attack = _attack(name).fit(victim, PENDULUM, budget=BUDGET, progress=lambda *a, **f: calls.append(a), resume_dir=partial)
    elapsed = time.perf_counter() - start
    assert iterations["n"] == 4  # iterations 5-8 only
    assert attack.fitted and calls[-1][1:] == (BUDGET, BUDGET)
    # the time before the cut is counted, once
    assert saved["fit_seconds_so_far"] < attack.fit_seconds <= saved["fit_seconds_so_far"] + elapsed + 0.01
    finished = json.loads((partial / "candidate0.json").read_text())
    assert finished["finished"] and finished["global_step"] == BUDGET
    # a finished adversary is loaded, not trained again: the same weights and observation normaliser
    # (PA-AD's perturbation itself draws a random start, so the perturbations are not compared)
    iterations["n"] = 0
    again = _attack(name).fit(victim, PENDULUM, budget=BUDGET, resume_dir=partial)
    assert iterations["n"] == 0
    torch.testing.assert_close(again.adversary.state_dict(), attack.adversary.state_dict(), rtol=0, atol=0)
    torch.testing.assert_close(again.adversary.normalizer.state_dict(), attack.adversary.normalizer.state_dict())


def test_a_saved_state_of_another_fit_or_a_damaged_one_is_not_resumed(iterations, tmp_path):
    torch.set_num_threads(1)
    victim = random_victim()
    partial = tmp_path / "sa-rl.partial"
    with pytest.raises(KeyboardInterrupt):
        _attack().fit(victim, PENDULUM, budget=BUDGET, progress=_cut_after(3 * ITERATION), resume_dir=partial)
    for other in (dict(seed=4), dict(victim=random_victim(seed=1)), dict(budget=BUDGET + 2 * ITERATION)):
        iterations["n"] = 0
        with pytest.raises(KeyboardInterrupt):  # cut again, before a save: the first fit's state stays
            _attack(seed=other.get("seed", 3)).fit(other.get("victim", victim), PENDULUM, budget=other.get("budget", BUDGET),
                                                   progress=_cut_after(ITERATION), resume_dir=partial)  # fmt: skip
        assert iterations["n"] == 1, other  # started from the first iteration
    # saved by an older robustrl (no robust.guidance_until yet) on a machine without a C++ compiler
    # (compile off): the same training, resumed
    stem = partial / "candidate0.json"
    meta = json.loads(stem.read_text())
    legacy = json.loads(json.dumps(meta))
    legacy["config"]["robust"].pop("guidance_until")
    legacy["config"]["ppo"]["compile"] = not legacy["config"]["ppo"]["compile"]
    stem.write_text(json.dumps(legacy))
    iterations["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        _attack().fit(victim, PENDULUM, budget=BUDGET, progress=_cut_after(3 * ITERATION), resume_dir=partial)
    assert iterations["n"] == 1  # resumed at the save of iteration 2: one more iteration to reach 3
    stem.write_text(json.dumps(meta))
    # the same identity, but saved under other PPO defaults (another robustrl): not resumed
    meta["config"]["ppo"]["policy_lr"] *= 2
    stem.write_text(json.dumps(meta))
    iterations["n"] = 0
    with pytest.warns(UserWarning, match="another adversary configuration"), pytest.raises(KeyboardInterrupt):
        _attack().fit(victim, PENDULUM, budget=BUDGET, progress=_cut_after(ITERATION), resume_dir=partial)
    assert iterations["n"] == 1
    (partial / "candidate0.safetensors").write_bytes(b"not a checkpoint")
    iterations["n"] = 0
    with pytest.warns(UserWarning, match="trains from the start"):
        _attack().fit(victim, PENDULUM, budget=BUDGET, resume_dir=partial)
    assert iterations["n"] == 8


def test_the_evaluation_removes_the_saved_state_once_the_fit_is_cached(iterations, tmp_path):
    torch.set_num_threads(1)
    victim = random_victim()
    options = {"grid": (TINY_PPO,), "num_envs": 2}
    with pytest.raises(KeyboardInterrupt):
        _fitted_attack("sa-rl", 0.1, "inf", victim, PENDULUM, options, BUDGET, tmp_path, False, _cut_after(3 * ITERATION), 3)
    assert (tmp_path / "sa-rl.partial" / "candidate0.json").is_file() and not (tmp_path / "sa-rl.json").exists()
    iterations["n"] = 0
    attack, seconds, cached = _fitted_attack("sa-rl", 0.1, "inf", victim, PENDULUM, options, BUDGET, tmp_path, False, None, 3)
    assert iterations["n"] == 6 and not cached and seconds >= attack.fit_seconds - 1.0
    assert (tmp_path / "sa-rl.json").is_file() and not (tmp_path / "sa-rl.partial").exists()
