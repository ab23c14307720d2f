import os

import pytest
import torch
from hypothesis import settings

from robustrl.algos import ppo as robustrl_ppo

# Property tests: CI replays the same examples every run (a red CI must mean a regression, not an
# unlucky draw); locally they explore fresh examples. ROBUSTRL_HYPOTHESIS=stress multiplies them.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.register_profile("stress", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("ROBUSTRL_HYPOTHESIS", "ci" if os.environ.get("CI") else "dev"))

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _single_thread():
    # The library uses one thread for its tiny MLPs; tests match so results are reproducible.
    torch.set_num_threads(1)
    yield


# The compiled update unrolls STEPS_PER_COMPILED_CALL minibatch steps into one graph, and Inductor's
# (or AOT autograd's) compile time grows with it: 4 steps (what users run) take ~59 s where 2 take
# ~33 s for the reference PPO step on a cold cache (2026-12-03, both cores shared). Tests compile
# with 2, still several steps per call (the loop, the hooks between calls, masks changing every
# second call); test_compiled_update_equals_eager_update[reference] compiles the users' 4.
USERS_STEPS_PER_COMPILED_CALL = robustrl_ppo.STEPS_PER_COMPILED_CALL


@pytest.fixture(autouse=True)
def _two_steps_per_compiled_call(monkeypatch):
    monkeypatch.setattr(robustrl_ppo, "STEPS_PER_COMPILED_CALL", 2)
    yield


@pytest.fixture
def users_steps_per_compiled_call(monkeypatch):
    """The library's own steps per compiled call (4), for the tests that check that setting."""
    monkeypatch.setattr(robustrl_ppo, "STEPS_PER_COMPILED_CALL", USERS_STEPS_PER_COMPILED_CALL)
    yield USERS_STEPS_PER_COMPILED_CALL


@pytest.fixture
def aot_eager_compile(monkeypatch):
    """``torch.compile`` with the ``aot_eager`` backend: dynamo's tracing and guards and AOT
    autograd's functional graph (what our compiled steps rely on: torch.func gradients, the
    functional Adam, masks, the inner solves traced in), without Inductor's C++ code generation,
    which takes 40-130 s per compiled step on a cold cache on 2 cores. Tests of compiled-vs-eager
    equality that check *our* graph (a config variant, one more objective) use it; the reference
    PPO step, BAR-PPO and SA-PPO (SGLD in the graph) keep Inductor, what users run."""
    original = torch.compile
    monkeypatch.setattr(torch, "compile", lambda *args, **options: original(*args, **{**options, "backend": "aot_eager"}))
