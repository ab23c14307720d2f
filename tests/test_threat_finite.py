"""Finite perturbation sets B(s) (the threat model of a tabular SA-MDP) and the exact solver.

- the package imports without torch (subprocess with ``sys.modules["torch"] = None``), and the
  lazy top-level names still resolve as before;
- validation: empty B(s), out-of-range / duplicate / non-integer indices, bad points, bad JSON;
- the PerturbationSet face (candidates, contains, sample, project) and the JSON round trip;
- ``exhaustive`` against a hand-computed adversary and against a brute-force loop.

numpy only: nothing here imports torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from robustrl.errors import InvalidArgumentError
from robustrl.threat.finite import FiniteSet, exhaustive
from robustrl.threat.protocol import PerturbationSet

# five points on a line, B(s) = {s, s-1, s+1} (within distance 1), each point listed first
LINE = FiniteSet.within(np.arange(5.0)[:, None], 1.0)


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


# ---- imports --------------------------------------------------------------------------------------
def test_finite_sets_import_without_torch():
    """A numpy-only analysis can use the finite sets: with torch unimportable, importing the
    package, the finite module and the torch-free public names works and loads no torch."""
    out = _run(
        """
        import sys
        sys.modules["torch"] = None  # any "import torch" now raises ImportError
        import robustrl.threat.finite
        import robustrl
        from robustrl import TrainConfig, PPOConfig, ppo_defaults_for
        from robustrl.threat import FiniteSet, PerturbationSet, exhaustive, parse_norm
        assert isinstance(FiniteSet([[0]]), PerturbationSet)
        try:
            from robustrl.threat import Ball
        except ImportError:
            print("ball needs torch")
        print(sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "gymnasium")))
        """
    )
    assert out.splitlines() == ["ball needs torch", "['torch']"]  # only the blocked placeholder


def test_lazy_public_names_resolve_as_before():
    """``robustrl.evaluate`` stays the function even after the subpackage of that name is
    imported (Python binds a subpackage to its parent's attribute), and every public name of
    ``robustrl`` and ``robustrl.threat`` resolves."""
    out = _run(
        """
        import robustrl.evaluate.rollout  # binds the subpackage first
        from robustrl import PPOConfig, TrainConfig, evaluate, load_policy, ppo_defaults_for, train
        import robustrl, robustrl.threat
        assert callable(evaluate) and robustrl.evaluate is evaluate, robustrl.evaluate
        assert all(callable(getattr(robustrl, name)) for name in robustrl.__all__)
        assert all(hasattr(robustrl.threat, name) for name in robustrl.threat.__all__)
        from robustrl.threat import DEFAULT_STEPS, DEFAULT_TEMPERATURE, Ball, fgsm, pgd, sgld
        for missing in ("solve", "SOLVERS", "nope"):
            assert not hasattr(robustrl.threat, missing), missing
        print("ok")
        """
    )
    assert out.strip() == "ok"


# ---- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "admissible,points,message",
    [
        ([], None, "non-empty list"),
        ("01", None, "non-empty list"),
        ([[0], []], None, r"B\(1\) is empty"),
        ([[0, 2], [1]], None, r"B\(0\) holds index 2, outside the points 0..1"),
        ([[-1]], None, "holds index -1"),
        ([[0, 0]], None, "twice"),
        ([[0.0]], None, "integer indices"),
        ([[True]], None, "integer indices"),
        ([3], None, r"B\(0\) must be a list"),
        ([[0], [1]], [[0.0]], r"shape \(2, d\)"),
        ([[0], [1]], [0.0, 1.0], r"shape \(2, d\)"),
        ([[0], [1]], [[0.0], [np.nan]], "finite"),
    ],
)
def test_bad_finite_sets_raise(admissible, points, message):
    with pytest.raises(InvalidArgumentError, match=message):
        FiniteSet(admissible, points)


def test_bad_indices_in_queries_raise():
    for call in (
        lambda: LINE.contains(0, 5),
        lambda: LINE.contains(-1, 0),
        lambda: LINE.sample(np.array([0, 7]), np.random.default_rng(0)),
        lambda: LINE.project(1.5, 1),
        lambda: LINE.candidates(np.array([0, 1])),
        lambda: LINE.sample(0, "seed"),
        lambda: FiniteSet.within(np.zeros((2, 1)), -1.0),
        lambda: FiniteSet.within(np.zeros((2, 1)), 1.0, norm="1"),
    ):
        with pytest.raises(InvalidArgumentError):
            call()


# ---- the PerturbationSet face -------------------------------------------------------------------
def test_within_builds_the_balls_of_a_line():
    assert isinstance(LINE, PerturbationSet)
    assert LINE.admissible == ((0, 1), (1, 0, 2), (2, 1, 3), (3, 2, 4), (4, 3))
    assert LINE.candidates(2).tolist() == [2, 1, 3]
    l2 = FiniteSet.within([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]], 1.0, norm="2")
    assert l2.admissible == ((0, 2), (1, 2), (2, 0, 1))  # the diagonal point is sqrt(2) away
    assert FiniteSet.within([[0.0, 0.0], [1.0, 1.0]], 1.0, norm="inf").admissible == ((0, 1), (1, 0))
    assert "5 points" in LINE.describe()


def test_contains_matches_the_lists_and_broadcasts():
    s, s_hat = np.meshgrid(np.arange(5), np.arange(5), indexing="ij")
    expected = np.array([[t in LINE.admissible[u] for t in range(5)] for u in range(5)])
    np.testing.assert_array_equal(LINE.contains(s_hat, s), expected)
    assert LINE.contains(1, 0) and not LINE.contains(2, 0)
    np.testing.assert_array_equal(LINE.contains(np.array([0, 1, 2]), 1), [True, True, True])


def test_sample_is_uniform_on_each_b_s_and_seeded():
    s = np.repeat(np.arange(5), 3000)
    draws = LINE.sample(s, np.random.default_rng(0))
    assert draws.shape == s.shape and LINE.contains(draws, s).all()
    for state in range(5):
        counts = np.bincount(draws[s == state], minlength=5)[list(LINE.admissible[state])]
        np.testing.assert_allclose(counts / 3000, 1 / len(counts), atol=0.03)
    np.testing.assert_array_equal(LINE.sample(s, np.random.default_rng(0)), draws)
    assert isinstance(LINE.sample(2, np.random.default_rng(1)).item(), int)


def test_project_keeps_admissible_points_and_picks_the_nearest_otherwise():
    s = np.arange(5)
    np.testing.assert_array_equal(LINE.project(s, s), s)
    # with coordinates: the admissible point nearest to s_hat
    np.testing.assert_array_equal(LINE.project(np.array([4, 4, 0, 0, 0]), s), [1, 2, 1, 2, 3])
    # without coordinates every outside point is equally far: s itself if admissible, else B(s)[0]
    bare = FiniteSet([[1, 0], [2], [2, 1]])
    np.testing.assert_array_equal(bare.project(np.array([2, 0, 0]), np.arange(3)), [0, 2, 2])


@pytest.mark.parametrize("finite_set", [LINE, FiniteSet([[1, 0], [2], [2, 1]])], ids=["points", "bare"])
def test_json_round_trip(finite_set):
    data = json.loads(json.dumps(finite_set.to_dict()))
    again = FiniteSet.from_dict(data)
    assert again == finite_set and again.admissible == finite_set.admissible
    assert again != FiniteSet([[0]])


@pytest.mark.parametrize(
    "data",
    [
        [[0]],
        {"admissible": [[0], []]},
        {"kind": "ball", "admissible": [[0]]},
        {"points": None},
        {"admissible": [[0]], "eps": 1},
    ],
    ids=["list", "empty-row", "other-kind", "no-admissible", "unknown-key"],
)
def test_from_dict_rejects_what_is_not_a_finite_set(data):
    with pytest.raises(InvalidArgumentError):
        FiniteSet.from_dict(data)


# ---- the exact solver ---------------------------------------------------------------------------
def test_exhaustive_finds_the_known_strongest_adversary():
    """A one-step SA-MDP on the line: the agent takes action (s_hat mod 2) and is rewarded 1 when
    that equals (s mod 2). Every s has a neighbour of the other parity in B(s), so the strongest
    adversary (argmin) always shows one, the first listed: 1, 0, 1, 2, 3; the weakest (argmax)
    shows s itself. Values: 0 for every s under the strongest, 1 under the weakest."""
    s = np.arange(5)
    calls = []

    def reward(s_hat):
        calls.append(s_hat)
        assert LINE.contains(s_hat, s).all()  # row i is a candidate of s[i]
        return (s_hat % 2 == s % 2).astype(float)

    strongest = exhaustive(reward, s, LINE, maximize=False)
    np.testing.assert_array_equal(strongest, [1, 0, 1, 2, 3])
    np.testing.assert_array_equal(reward(strongest), np.zeros(5))
    assert len(calls) == 4  # max |B(s)| = 3 calls, plus the check above
    weakest = exhaustive(reward, s, LINE)
    np.testing.assert_array_equal(weakest, s)
    np.testing.assert_array_equal(reward(weakest), np.ones(5))


def test_exhaustive_equals_a_brute_force_loop():
    rng = np.random.default_rng(0)
    n = 12
    admissible = [list(rng.choice(n, size=rng.integers(1, n + 1), replace=False)) for _ in range(n)]
    finite_set = FiniteSet(admissible)
    table = rng.integers(0, 4, size=(n, n)).astype(float)  # small integers: many ties
    s = rng.integers(0, n, size=(3, 7))
    for maximize in (True, False):
        got = exhaustive(lambda s_hat, s=s.reshape(-1): table[s, s_hat], s, finite_set, maximize=maximize)
        pick = max if maximize else min
        expected = np.vectorize(lambda u, pick=pick: pick(admissible[u], key=lambda t: table[u, t]))(s)  # first of ties
        np.testing.assert_array_equal(got, expected)
        assert got.shape == s.shape
    assert exhaustive(lambda s_hat: table[3, s_hat], 3, finite_set) == max(admissible[3], key=lambda t: table[3, t])


@pytest.mark.parametrize(
    "objective",
    [lambda s_hat: np.zeros((len(s_hat), 1)), lambda s_hat: 0.0, lambda s_hat: np.full(len(s_hat), np.nan)],
    ids=["column", "scalar", "nan"],
)
def test_exhaustive_rejects_bad_objectives(objective):
    with pytest.raises(InvalidArgumentError):
        exhaustive(objective, np.arange(5), LINE)
    with pytest.raises(InvalidArgumentError, match="FiniteSet"):
        exhaustive(lambda s_hat: s_hat, np.arange(5), [[0]])
