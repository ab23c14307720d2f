"""Exact theory lab (robustrl.theory): tabular ISA-MDPs, the BARPO paper's toy example, basins.

Each test checks an exact answer or an independent computation of it:
- values and adversarial values against Monte-Carlo rollouts (a 5-sigma bound from the sample
  spread plus the truncation bias; the simulator is independent of the linear solve);
- the strongest adversary against brute force over every deterministic adversary, the optimal
  policy against brute force over every deterministic policy, on small random ISA-MDPs;
- gradients against central finite differences, and the toy's closed forms (26)-(31);
- Appendix D's published numbers: equation (32), beta~ ~ 0.777 of (33), the robust region, and
  Proposition 3.1 (the FOSPs and the inequality); where gradient ascent ends under SPO / ARPO /
  BARPO;
- bad input: one clear InvalidArgumentError; the CLI exits 2 and writes nothing.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from robustrl.errors import InvalidArgumentError
from robustrl.theory import (
    PAPER,
    TOY_NAMES,
    PolicySlice,
    TabularISAMDP,
    basins,
    objective_value,
    policy_gradient,
    project_to_simplex,
    projected_gradient_ascent,
    random_isa_mdp,
    toy_isa_mdp,
    toy_policy,
    toy_slice,
    toy_summary,
    toy_threshold,
)
from robustrl.theory.landscape import batch_gradient, batch_kl_adversary, batch_strongest_adversary


def _random_policy(mdp: TabularISAMDP, rng: np.random.Generator) -> np.ndarray:
    return rng.dirichlet(np.ones(mdp.num_actions), mdp.num_states)


def _all_adversaries(mdp: TabularISAMDP):
    return (np.array(choice) for choice in itertools.product(*mdp.perturbation_sets.admissible))


# ---- imports ----------------------------------------------------------------------------------------
def test_theory_imports_without_torch():
    code = """
        import sys
        sys.modules["torch"] = None
        import robustrl.theory
        from robustrl.theory import toy_summary, basins, toy_slice
        toy_summary()
        basins(toy_slice(), "arpo", 2, 0.1, 3)
        print(sorted(n for n in sys.modules if n.split(".")[0] in ("torch", "gymnasium", "matplotlib")))
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['torch']"  # only the blocked placeholder


# ---- values -----------------------------------------------------------------------------------------
def _monte_carlo(mdp: TabularISAMDP, effective: np.ndarray, episodes: int, horizon: int, seed: int):
    """Discounted returns of ``episodes`` rollouts of the policy ``effective`` (already composed
    with any adversary), started from mu0, truncated after ``horizon`` steps."""
    rng = np.random.default_rng(seed)
    cumulative_mu0 = np.cumsum(mdp.initial_distribution)
    cumulative_pi = np.cumsum(effective, -1)
    cumulative_p = np.cumsum(mdp.transitions, -1)
    state = np.minimum(np.searchsorted(cumulative_mu0, rng.random(episodes), side="right"), mdp.num_states - 1)
    start = state.copy()
    returns = np.zeros(episodes)
    for t in range(horizon):
        u = rng.random(episodes)[:, None]
        action = np.minimum((u > cumulative_pi[state]).sum(-1), mdp.num_actions - 1)
        returns += mdp.gamma**t * mdp.rewards[state, action]
        u = rng.random(episodes)[:, None]
        state = np.minimum((u > cumulative_p[state, action]).sum(-1), mdp.num_states - 1)
    return start, returns


@pytest.mark.parametrize("seed", [0, 1])
def test_values_match_monte_carlo_rollouts(seed):
    mdp = random_isa_mdp(4, 3, seed=seed, gamma=0.8, perturbation_size=3)
    rng = np.random.default_rng(100 + seed)
    pi = _random_policy(mdp, rng)
    horizon, episodes = 120, 40_000
    bias = np.abs(mdp.rewards).max() * mdp.gamma**horizon / (1 - mdp.gamma)
    for effective, exact in (
        (pi, mdp.value(pi)),
        (pi[mdp.strongest_adversary(pi)], mdp.adversarial_value(pi)),
    ):
        start, returns = _monte_carlo(mdp, effective, episodes, horizon, seed=seed)
        bound = 5 * returns.std() / np.sqrt(episodes) + bias
        assert abs(returns.mean() - mdp.expected(exact)) <= bound
        for s in range(mdp.num_states):  # per start state as well
            mine = returns[start == s]
            assert abs(mine.mean() - exact[s]) <= 5 * mine.std() / np.sqrt(len(mine)) + bias
    # Q^pi(s, a) = r(s, a) + gamma E V^pi(s') and V^pi(s) = sum_a pi(a|s) Q^pi(s, a)
    q = mdp.q_value(pi)
    np.testing.assert_allclose((pi * q).sum(-1), mdp.value(pi), rtol=0, atol=1e-12)
    # the discounted visitation sums to 1 / (1 - gamma) and gives V(mu0) = d . r_pi
    d = mdp.occupancy(pi)
    assert d.sum() == pytest.approx(1 / (1 - mdp.gamma), abs=1e-12)
    assert d @ (pi * mdp.rewards).sum(-1) == pytest.approx(mdp.expected(mdp.value(pi)), abs=1e-12)


# ---- the strongest adversary and optimal policies ----------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_strongest_adversary_is_the_brute_force_minimum_in_every_state(seed):
    mdp = random_isa_mdp(4, 2, seed=seed, perturbation_size=3, include_self=seed % 2 == 0)
    rng = np.random.default_rng(seed)
    for pi in (_random_policy(mdp, rng), np.eye(2)[rng.integers(0, 2, 4)]):
        every = np.array([mdp.value(pi[nu]) for nu in _all_adversaries(mdp)])  # [adversary, s]
        assert len(every) == np.prod(mdp.perturbation_sets.sizes)
        nu = mdp.strongest_adversary(pi)
        assert mdp.perturbation_sets.contains(nu, np.arange(4)).all()
        np.testing.assert_allclose(mdp.adversarial_value(pi), every.min(0), rtol=0, atol=1e-12)
        assert mdp.is_robust(pi) == bool(np.allclose(mdp.value(pi), every.min(0), rtol=0, atol=1e-9))
        # the batched version used by the landscapes agrees exactly
        np.testing.assert_array_equal(batch_strongest_adversary(mdp, pi[None]), nu[None])


@pytest.mark.parametrize("seed", range(4))
def test_optimal_policy_is_the_brute_force_best_deterministic_policy(seed):
    mdp = random_isa_mdp(4, 3, seed=seed)
    eye = np.eye(3)
    every = np.array([mdp.value(eye[list(actions)]) for actions in itertools.product(range(3), repeat=4)])
    np.testing.assert_allclose(mdp.optimal_value(), every.max(0), rtol=0, atol=1e-12)
    optimal = mdp.optimal_policy()
    assert set(np.unique(optimal)) <= {0.0, 1.0}
    robust = mdp.optimal_robust_policy()
    if robust is not None:  # then it reaches V* against its own strongest adversary
        np.testing.assert_allclose(mdp.adversarial_value(robust), every.max(0), rtol=0, atol=1e-9)


def test_optimal_robust_policy_exists_only_under_the_isa_condition():
    toy = toy_isa_mdp()
    np.testing.assert_array_equal(toy.optimal_robust_policy(), toy_policy(1, 1))  # a1 everywhere (Appendix D)
    # two states whose best actions differ, each may be shown the other: no policy keeps V*
    conflict = TabularISAMDP(
        rewards=[[1.0, 0.0], [0.0, 1.0]],
        transitions=[[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]],
        gamma=0.5,
        perturbation_sets=[[0, 1], [1, 0]],
        initial_distribution=[0.5, 0.5],
    )
    assert conflict.optimal_robust_policy() is None
    np.testing.assert_array_equal(conflict.optimal_policy(), np.eye(2))
    assert not conflict.is_robust(np.eye(2))


# ---- gradients --------------------------------------------------------------------------------------------
def _finite_difference(function, pi, step=1e-6):
    gradient = np.zeros_like(pi)
    for index in np.ndindex(pi.shape):
        up, down = pi.copy(), pi.copy()
        up[index] += step
        down[index] -= step
        gradient[index] = (function(up) - function(down)) / (2 * step)
    return gradient


@pytest.mark.parametrize("objective", ["spo", "arpo", "barpo"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradients_match_finite_differences(objective, seed):
    mdp = random_isa_mdp(4, 3, seed=seed, perturbation_size=3)
    pi = _random_policy(mdp, np.random.default_rng(seed))
    gradient = policy_gradient(mdp, pi, objective)
    nu = {"spo": np.arange(4), "arpo": mdp.strongest_adversary(pi), "barpo": mdp.kl_adversary(pi)}[objective]

    def held(p):  # the objective with its adversary held at nu (raw entries, off the simplex too)
        return mdp.expected(mdp._evaluate(p[nu]))

    np.testing.assert_allclose(gradient, _finite_difference(held, pi), rtol=1e-6, atol=1e-7)
    # the adversary is piecewise constant: where it is unique, the true objective has the same gradient
    tangent = np.zeros_like(pi)
    tangent[0] = [1.0, -1.0, 0.0]  # a direction inside the simplex
    slope = (
        objective_value(mdp, pi + 1e-6 * tangent, objective) - objective_value(mdp, pi - 1e-6 * tangent, objective)
    ) / 2e-6
    assert slope == pytest.approx(float((gradient * tangent).sum()), rel=1e-6, abs=1e-7)
    batched, value = batch_gradient(mdp, pi[None], objective)
    np.testing.assert_allclose(batched[0], gradient, rtol=1e-12, atol=1e-12)
    assert value[0] == pytest.approx(objective_value(mdp, pi, objective), abs=1e-12)


def test_kl_adversary_maximises_the_divergence_and_keeps_the_true_state_on_ties():
    mdp = random_isa_mdp(5, 3, seed=3, perturbation_size=4)
    pi = _random_policy(mdp, np.random.default_rng(0))
    nu = mdp.kl_adversary(pi)
    for s, row in enumerate(mdp.perturbation_sets.admissible):
        kl = [float(np.sum(pi[s] * np.log(pi[s] / pi[t]))) for t in row]
        assert nu[s] == row[int(np.argmax(kl))]
    np.testing.assert_array_equal(batch_kl_adversary(mdp, pi[None])[0], nu)
    same = np.tile(pi[:1], (5, 1))  # every state acts alike: KL = 0 everywhere, nobody is moved
    np.testing.assert_array_equal(mdp.kl_adversary(same), np.arange(5))


def test_toy_gradients_match_the_closed_forms_of_appendix_d():
    """Equations (26)-(31): V and its (alpha, beta) derivatives in closed form."""
    mdp, plane = toy_isa_mdp(), toy_slice()
    for a, b in [(0.3, 0.6), (0.9, 0.1), (0.5, 0.5)]:
        p = (0.991 - 0.711 * b) * (0.261 * a + 0.109) + (0.261 * a + 0.009) * (0.711 * b - 0.891)
        big_a = 0.1305 * a + (0.35 * a + 0.1) * (0.711 * b - 0.991) + 0.0045
        big_b = 0.1305 * a + (0.35 * a + 0.1) * (0.711 * b - 0.891) + 0.0545
        np.testing.assert_allclose(mdp.value(toy_policy(a, b)), [big_a / p, big_b / p], rtol=1e-12)
        # per-state derivatives: put all initial mass on one state
        for state, numerator, offset in ((0, big_a, 0.21635), (1, big_b, 0.18135)):
            single = TabularISAMDP(**{**_toy_kwargs(), "initial_distribution": np.eye(2)[state]})
            slope, _ = PolicySlice.build(single).gradient(np.array([[a, b]]), "spo")
            d_alpha = (0.24885 * b - offset) / p - 0.0261 * numerator / p**2
            d_beta = (0.24885 * a + 0.0711) / p + 0.0711 * numerator / p**2
            np.testing.assert_allclose(slope[0], [d_alpha, d_beta], rtol=1e-10)
    assert plane.mdp.gamma == 0.9


def test_projected_gradient_ascent_reaches_the_optimal_value_under_spo():
    """Direct parameterisation has no spurious FOSPs for SPO (Agarwal et al. 2021): from the
    uniform policy, projected ascent reaches V*."""
    mdp = random_isa_mdp(3, 2, seed=5)
    start = np.full((3, 2), 0.5)
    final, path = projected_gradient_ascent(mdp, start, "spo", lr=0.5, steps=400, keep_path=True)
    assert len(path) == 401 and np.array_equal(path[0], start)
    assert mdp.expected(mdp.value(final)) == pytest.approx(mdp.expected(mdp.optimal_value()), abs=1e-9)
    x = np.array([[0.2, 0.9, -0.4], [3.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    projected = project_to_simplex(x)
    np.testing.assert_allclose(projected.sum(-1), 1.0)
    np.testing.assert_allclose(projected, [[0.15, 0.85, 0.0], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])


# ---- the toy example (Appendix D) ---------------------------------------------------------------------------------------
def test_toy_values_match_equation_32():
    mdp = toy_isa_mdp()
    for name, expected in PAPER["values"].items():
        pi = toy_policy(int(name[3]), int(name[4]))
        np.testing.assert_array_equal(np.round(mdp.value(pi), 2), expected)
    values = [mdp.value(toy_policy(int(n[3]), int(n[4]))) for n in ("pi_11", "pi_01", "pi_00", "pi_10")]
    assert all((values[i] >= values[i + 1]).all() for i in range(3))  # the ordering of (32)
    # pi_11 is the Bellman optimal policy and the optimal robust policy
    np.testing.assert_array_equal(mdp.optimal_policy(), toy_policy(1, 1))


def test_toy_threshold_of_equation_33():
    mdp = toy_isa_mdp()
    thresholds = [toy_threshold(0), toy_threshold(1)]
    assert thresholds[0] == pytest.approx(thresholds[1], abs=1e-12)  # the same for s1 and s2
    assert round(thresholds[0], 3) == PAPER["threshold"]
    for beta in np.linspace(0, 1, 101):
        f = mdp.value(toy_policy(1, beta)) - mdp.value(toy_policy(0, beta))
        assert (np.sign(f) == np.sign(beta - thresholds[0])).all()  # (33), both states
        g = mdp.value(toy_policy(beta, 1)) - mdp.value(toy_policy(beta, 0))
        assert (g >= 0).all()  # g(alpha, s) >= 0 (used for (35))


def test_toy_robust_region_is_the_papers():
    """Theta_Robust = {alpha = beta} U {beta <= min(alpha, beta~)} (proof of property (1))."""
    mdp, threshold = toy_isa_mdp(), toy_threshold(0)
    axis = np.linspace(0, 1, 41)
    for a in axis:
        for b in axis:
            expected = a == b or b <= min(a, threshold)
            assert mdp.is_robust(toy_policy(a, b)) == expected, (a, b)
    values = toy_slice().evaluate(np.array([(a, b) for a in axis for b in axis]))
    assert values["robust"].tolist() == [bool(a == b or b <= min(a, threshold)) for a in axis for b in axis]


def test_proposition_3_1_on_the_toy():
    mdp, plane = toy_isa_mdp(), toy_slice()
    corners = np.array([[0.0, 0.0], [1.0, 1.0]])
    # (0, 0) is a FOSP of ARPO but not of SPO (nor of BARPO); (1, 1) is one of all three
    assert (plane.steepest_slope(corners, "arpo") <= 1e-6).tolist() == [True, True]
    assert (plane.steepest_slope(corners, "spo") <= 1e-6).tolist() == [False, True]
    assert (plane.steepest_slope(corners, "barpo") <= 1e-6).tolist() == [False, True]
    # V^- = min_pi V^pi(mu0), computed as minus the optimal value of the negated MDP
    negated = TabularISAMDP(**{**_toy_kwargs(), "rewards": -mdp.rewards})
    worst = -negated.expected(negated.optimal_value())
    spo, arpo = (mdp.expected(mdp.value(toy_policy(x, x))) for x in (1, 0))
    assert (round(spo, 2), round(arpo, 2), round(worst, 2)) == (
        PAPER["value_spo_fosp"],
        PAPER["value_arpo_fosp"],
        PAPER["worst_value"],
    )
    assert round(spo - worst, 2) == 3.12 and round(arpo - worst, 2) == 1.44  # as printed
    assert mdp.is_robust(toy_policy(0, 0)) and arpo - worst < 0.5 * (spo - worst)
    summary = toy_summary()
    assert summary["proposition_3_1"]["holds"] and summary["proposition_3_1"]["worst_value"] == pytest.approx(worst)


def test_where_gradient_ascent_ends_on_the_toy():
    """SPO and BARPO end at the optimum (1, 1) from every start; ARPO leaves some starts at the
    deceptive FOSP (0, 0) and none anywhere else. (The paper: about one third under ARPO, none
    under BARPO; the fraction is measured in benchmarks/results/theory_basins.md.)"""
    plane = toy_slice()
    for objective in ("spo", "barpo"):
        result = basins(plane, objective, grid=8, lr=0.1, steps=300, names=TOY_NAMES)
        assert result.fractions == {"optimal (1.00, 1.00)": 1.0}
    result = basins(plane, "arpo", grid=8, lr=0.1, steps=300, names=TOY_NAMES)
    assert set(result.fractions) == {"optimal (1.00, 1.00)", "deceptive (0.00, 0.00)"}
    assert 0 < result.fractions["deceptive (0.00, 0.00)"] < 1
    deceptive = result.classes["deceptive (0.00, 0.00)"]
    assert deceptive["robust"] and deceptive["value"] == pytest.approx(-0.646)
    assert len(result.starts) == 64 and {
        "alpha0",
        "beta0",
        "alpha",
        "beta",
        "value",
        "adversarial_value",
        "class",
    } <= set(result.starts[0])
    # a start inside the robust region below the diagonal, near (0, 0), is pulled into it
    ends = {(s["alpha0"], s["beta0"]): s["class"] for s in result.starts}
    assert ends[(0.1875, 0.0625)] == "deceptive (0.00, 0.00)"
    assert ends[(0.9375, 0.9375)] == "optimal (1.00, 1.00)"


# ---- validation and JSON -----------------------------------------------------------------------------------
def _toy_kwargs():
    return {k: v for k, v in toy_isa_mdp().to_dict().items() if k != "kind"}


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"transitions": [[[0.7, 0.2], [0.99, 0.01]], [[0.2, 0.8], [0.99, 0.01]]]},
            r"transitions\[s=0, a=0\] sums to 0.9, not 1",
        ),
        ({"transitions": [[[1.2, -0.2], [0.99, 0.01]], [[0.2, 0.8], [0.99, 0.01]]]}, "is negative"),
        ({"transitions": [[0.5, 0.5], [0.5, 0.5]]}, "transitions must be 3-d"),
        ({"rewards": [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]}, r"transitions must have shape \(S, A, S\) = \(2, 3, 2\)"),
        ({"rewards": [[1.0, float("nan")], [0.0, 0.0]]}, "NaN or infinite"),
        ({"gamma": 1.0}, r"gamma must be in \[0, 1\)"),
        ({"gamma": -0.1}, r"gamma must be in \[0, 1\)"),
        ({"gamma": "0.9"}, "gamma must be a number"),
        ({"perturbation_sets": [[0, 1], []]}, r"B\(1\) is empty"),
        ({"perturbation_sets": [[0, 2], [1]]}, r"B\(0\) holds index 2, outside the points 0..1"),
        ({"perturbation_sets": [[0, 1]]}, "perturbation_sets must be a list of 2 lists"),
        ({"initial_distribution": [0.5, 0.6]}, r"initial_distribution sums to 1.1, not 1"),
        ({"initial_distribution": [1.0]}, r"initial_distribution must have shape \(2,\)"),
    ],
)
def test_invalid_mdps_get_one_clear_error(change, message):
    with pytest.raises(InvalidArgumentError, match=message):
        TabularISAMDP(**{**_toy_kwargs(), **change})


def test_json_round_trip_and_bad_files(tmp_path):
    mdp = random_isa_mdp(3, 2, seed=1)
    path = mdp.save(tmp_path / "mdp.json")
    again = TabularISAMDP.load(path)
    assert again.to_dict() == mdp.to_dict()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidArgumentError, match="bad.json is not valid JSON"):
        TabularISAMDP.load(bad)
    for data, message in (
        ([1, 2], "an ISA-MDP is a JSON object"),
        ({"rewards": [[0.0]]}, "missing transitions, gamma, perturbation_sets, initial_distribution"),
        ({**mdp.to_dict(), "extra": 1}, r"unknown keys \['extra'\]"),
    ):
        bad.write_text(json.dumps(data))
        with pytest.raises(InvalidArgumentError, match=message):
            TabularISAMDP.load(bad)
    with pytest.raises(InvalidArgumentError, match=r"policy must have shape \(3, 2\)"):
        mdp.value(np.ones((2, 2)) / 2)
    with pytest.raises(InvalidArgumentError, match=r"policy\[s=1\] sums to 2"):
        mdp.value([[0.5, 0.5], [1.0, 1.0], [0.5, 0.5]])
    with pytest.raises(InvalidArgumentError, match="must be one of spo, arpo, barpo"):
        policy_gradient(mdp, np.full((3, 2), 0.5), "minimax")


# ---- the CLI ---------------------------------------------------------------------------------------------------
def _cli(capsys, *args):
    from robustrl.cli import main

    capsys.readouterr()
    code = main(["theory", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_toy_basins_landscape_solve(tmp_path, capsys):
    code, out, _ = _cli(capsys, "toy", "--json", str(tmp_path / "toy.json"))
    assert code == 0 and "0.777175" in out and "holds" in out
    summary = json.loads((tmp_path / "toy.json").read_text())
    assert [round(v, 2) for v in summary["policies"]["pi_00"]["value"]] == [-0.95, -0.35]

    code, out, _ = _cli(
        capsys,
        "basins",
        "--objective",
        "barpo",
        "--grid",
        "4",
        "--lr",
        "0.1",
        "--steps",
        "200",
        "--json",
        str(tmp_path / "b.json"),
    )
    assert code == 0 and "optimal (1.00, 1.00)" in out
    result = json.loads((tmp_path / "b.json").read_text())
    assert result["fractions"] == {"optimal (1.00, 1.00)": 1.0} and len(result["starts"]) == 16
    assert result["settings"] | {"mdp": None} == {
        "objective": "barpo",
        "grid": 4,
        "lr": 0.1,
        "steps": 200,
        "round_decimals": 2,
        "mdp": None,
    }
    assert set(result["starts"][0]) >= {"alpha0", "beta0", "alpha", "beta", "value", "adversarial_value", "class"}

    for name in ("land.png", "land.svg"):
        code, out, _ = _cli(
            capsys, "landscape", "--out", str(tmp_path / name), "--resolution", "11", "--paths", "1", "--steps", "20"
        )
        assert code == 0 and "arpo: FOSPs at (0.00, 0.00), (1.00, 1.00)" in out
    assert (tmp_path / "land.png").read_bytes()[:4] == b"\x89PNG" and b"<svg" in (tmp_path / "land.svg").read_bytes()[
        :1000
    ]

    code, _, _ = _cli(capsys, "random", "--out", str(tmp_path / "mdp.json"), "--states", "3", "--seed", "2")
    assert code == 0
    mdp = TabularISAMDP.load(tmp_path / "mdp.json")
    pi = np.full((3, 2), 0.5)
    (tmp_path / "pi.json").write_text(json.dumps({"policy": pi.tolist()}))
    code, out, _ = _cli(
        capsys,
        "solve",
        str(tmp_path / "mdp.json"),
        "--policy",
        str(tmp_path / "pi.json"),
        "--json",
        str(tmp_path / "s.json"),
    )
    assert code == 0
    solved = json.loads((tmp_path / "s.json").read_text())
    assert solved["strongest_adversary"] == mdp.strongest_adversary(pi).tolist()
    np.testing.assert_allclose(solved["adversarial_value"], mdp.adversarial_value(pi), rtol=0, atol=1e-12)


def _mdp_file(tmp_path, name="mdp.json", **change):
    data = {**toy_isa_mdp().to_dict(), **change}
    path = tmp_path / "in" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("syntax", "is not valid JSON"),
        ("sums", r"transitions\[s=1, a=0\] sums to 1.1, not 1"),
        ("gamma", r"gamma must be in \[0, 1\)"),
        ("empty", r"B\(0\) is empty"),
        ("range", r"B\(1\) holds index 5"),
        ("policy", r"pi.json: policy\[s=0\] sums to 0.5"),
        ("suffix", "must end in .json"),
        ("folder", "does not exist"),
        ("objective", "objective must be one of spo, arpo, barpo"),
        ("landscape-suffix", "must end in .png or .svg"),
        ("slice", "alpha_state and beta_state must differ"),
        ("grid", "grid must be an integer >= 1"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, case, message):
    good = _mdp_file(tmp_path)
    out_json = str(tmp_path / "out" / "r.json")
    (tmp_path / "out").mkdir()
    policy_file = tmp_path / "in" / "pi.json"
    policy_file.write_text(json.dumps([[0.25, 0.25], [0.5, 0.5]]))
    bad_transitions = [[[0.7, 0.3], [0.99, 0.01]], [[0.3, 0.8], [0.99, 0.01]]]
    commands = {
        "syntax": lambda: ["solve", str(_mdp_file(tmp_path, "syntax.json")), "--json", out_json],
        "sums": lambda: [
            "solve",
            str(_mdp_file(tmp_path, "sums.json", transitions=bad_transitions)),
            "--json",
            out_json,
        ],
        "gamma": lambda: ["solve", str(_mdp_file(tmp_path, "gamma.json", gamma=1.5)), "--json", out_json],
        "empty": lambda: [
            "basins",
            "--mdp",
            str(_mdp_file(tmp_path, "empty.json", perturbation_sets=[[], [0, 1]])),
            "--json",
            out_json,
        ],
        "range": lambda: [
            "solve",
            str(_mdp_file(tmp_path, "range.json", perturbation_sets=[[0, 1], [5]])),
            "--json",
            out_json,
        ],
        "policy": lambda: ["solve", str(good), "--policy", str(policy_file), "--json", out_json],
        "suffix": lambda: ["toy", "--json", str(tmp_path / "out" / "r.txt")],
        "folder": lambda: ["toy", "--json", str(tmp_path / "nowhere" / "r.json")],
        "objective": lambda: ["basins", "--objective", "minimax", "--json", out_json],
        "landscape-suffix": lambda: ["landscape", "--out", str(tmp_path / "out" / "x.pdf")],
        "slice": lambda: [
            "landscape",
            "--mdp",
            str(good),
            "--beta-state",
            "0",
            "--out",
            str(tmp_path / "out" / "x.png"),
        ],
        "grid": lambda: ["basins", "--grid", "0", "--json", out_json],
    }
    args = commands[case]()
    if case == "syntax":
        (tmp_path / "in" / "syntax.json").write_text('{"rewards": [[0.0, ')
    before = sorted(p.name for p in (tmp_path / "out").iterdir())
    code, out, err = _cli(capsys, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in err + out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == before == []


# ---- the Gymnasium bridge (torch) ------------------------------------------------------------------------------
def test_bridge_env_follows_the_mdp_and_reads_policies_back():
    gym = pytest.importorskip("gymnasium")
    pytest.importorskip("torch")
    from robustrl import TrainConfig, ppo_defaults_for
    from robustrl.algos import PPO
    from robustrl.attacks import make_attack
    from robustrl.envs.tabular import (
        TOY_CONTINUOUS_ENV_ID,
        TOY_ENV_ID,
        TabularISAEnv,
        attack_as_adversary,
        tabular_policy,
    )

    mdp = toy_isa_mdp()
    # the env's transitions and rewards are the MDP's (empirical frequencies within 5 sigma)
    env = gym.make(TOY_ENV_ID).unwrapped
    env.reset(seed=0)
    counts = np.zeros((2, 2, 2))
    rng = np.random.default_rng(0)
    for _ in range(4000):
        s, a = env.state, int(rng.integers(2))
        _, reward, terminated, _, info = env.step(a)
        assert reward == mdp.rewards[s, a] and not terminated
        counts[s, a, info["state"]] += 1
        if env.t >= env.horizon:
            env.reset()
    n = counts.sum(-1, keepdims=True)
    assert (
        np.abs(counts / n - mdp.transitions) <= 5 * np.sqrt(mdp.transitions * (1 - mdp.transitions) / n) + 1e-12
    ).all()
    with pytest.raises(InvalidArgumentError, match=r"holds states \[0\], but B\(0\) = \[0, 1\]"):
        TabularISAEnv(mdp, points=[[0.0], [1.0]], eps=0.5)

    for env_id in (TOY_ENV_ID, TOY_CONTINUOUS_ENV_ID):
        ppo = ppo_defaults_for(
            "CartPole-v1", gamma=0.9, normalize_observations=False, steps_per_iteration=256, num_minibatches=2
        )
        trainer = PPO(TrainConfig(env_id=env_id, total_steps=256, seed=0, num_envs=2, ppo=ppo))
        trainer.learn()
        trainer.close()
        policy = trainer.policy
        pi = tabular_policy(policy)
        np.testing.assert_allclose(pi.sum(-1), 1.0, atol=1e-12)
        # pi[s, a] is the probability that the policy's sampled action is a in state s
        import torch

        obs = policy.normalize(np.repeat(np.array([[0.0], [1.0]], dtype=np.float32), 20000, 0))
        with torch.no_grad():
            sampled = policy.distribution(obs).sample().numpy().reshape(2, 20000, -1)
        index = (sampled[..., 0] > 0).astype(int) if policy.continuous else sampled[..., 0].astype(int)
        frequency = np.stack([(index == a).mean(1) for a in range(2)], -1)
        assert (np.abs(frequency - pi) <= 5 * np.sqrt(pi * (1 - pi) / 20000) + 1e-9).all()
        attack = make_attack("random", 1.0, seed=0).fit(policy, env_id)
        result = attack_as_adversary(attack, policy, mdp)
        assert mdp.perturbation_sets.contains(result["snapped"], np.arange(2)).all()
        assert (np.abs(result["perturbed"] - [[0.0], [1.0]]) <= 1.0 + 1e-6).all()
