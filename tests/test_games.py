"""robustrl.games (issue 14): exact answers first (brute force, finite differences, closed forms,
OpenSpiel's own numbers), thresholds only where the claim is about dynamics."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from robustrl.cli import main
from robustrl.errors import InvalidArgumentError
from robustrl.games import stealth
from robustrl.games.markov import PartialControlMarkovGame, TabularMarkovGame, random_game
from robustrl.games.matrix import LEARNERS, MatrixGame, run_learner
from robustrl.games.simplex import mixture, project_simplex, random_policy
from robustrl.games.training import METHODS, AdversarialTraining, train_curve

pyspiel = pytest.importorskip("pyspiel")
from robustrl.games.kuhn import KuhnGame


def _markov(seed: int, eps_pi: float, **kwargs) -> PartialControlMarkovGame:
    game = random_game(seed, **kwargs)
    benign = random_policy(np.random.default_rng(seed + 100), game.opponent_shape)
    return PartialControlMarkovGame(game, benign, eps_pi)


# ---- simplex ------------------------------------------------------------------------------------
def test_projection_is_the_euclidean_projection():
    rng = np.random.default_rng(0)
    for _ in range(50):
        v = rng.normal(size=4) * 3
        p = project_simplex(v)
        assert p.min() >= 0 and math.isclose(p.sum(), 1.0)
        # obtuse-angle characterisation: (v - p) . (q - p) <= 0 for every q in the simplex
        for q in rng.dirichlet(np.ones(4), size=20):
            assert (v - p) @ (q - p) <= 1e-12
    point = rng.dirichlet(np.ones(3))
    np.testing.assert_allclose(project_simplex(point), point, atol=1e-15)
    masked = project_simplex(np.array([5.0, 0.2, 0.1]), mask=[False, True, True])
    np.testing.assert_allclose(masked, [0.0, 0.55, 0.45])


# ---- matrix games: Appendix C ------------------------------------------------------------------
def test_rps_gamin_reaches_near_zero_exploitability_single_timescale_learners_do_not():
    game = MatrixGame.named("rps")
    assert game.robust_value()[0] == pytest.approx(0.0, abs=1e-9)
    for seed in range(3):
        runs = {name: run_learner(game, name, iterations=1000, step_size=0.01, seed=seed) for name in LEARNERS}
        tail = {name: max(r["exploitability"][-100:]) for name, r in runs.items()}
        assert tail["gamin"] < 0.05, tail
        for name in ("sgda", "agda", "sibr", "aibr"):
            assert tail[name] > 0.2, (name, tail)
        assert tail["sibr"] == tail["aibr"] == 1.0  # cycling through pure strategies


def test_matrix_robust_value_equals_a_grid_search_under_partial_control():
    rng = np.random.default_rng(1)
    payoff = rng.uniform(-1, 1, (2, 3))
    for eps_pi in (0.0, 0.4, 1.0):
        game = MatrixGame(payoff, eps_pi=eps_pi, benign=[0.2, 0.5, 0.3])
        value, x = game.robust_value()
        grid = max(-game.exploitability([p, 1 - p]) for p in np.linspace(0, 1, 20001))
        assert value == pytest.approx(grid, abs=1e-4)
        assert -game.exploitability(x) == pytest.approx(value, abs=1e-9)


# ---- tabular Markov games ----------------------------------------------------------------------
def test_markov_game_json_round_trip_and_validation(tmp_path):
    game = random_game(3, states=2)
    again = TabularMarkovGame.load(game.save(tmp_path / "g.json"))
    np.testing.assert_array_equal(again.transitions, game.transitions)
    assert again.gamma == game.gamma
    bad = game.to_dict()
    bad["transitions"][0][0][0] = [0.7, 0.7]
    with pytest.raises(InvalidArgumentError, match="transitions"):
        TabularMarkovGame.from_dict(bad)
    with pytest.raises(InvalidArgumentError, match="gamma"):
        TabularMarkovGame.from_dict({**game.to_dict(), "gamma": 1.0})
    with pytest.raises(InvalidArgumentError, match="eps_pi"):
        PartialControlMarkovGame(game, np.full((2, 2), 0.5), 1.5)


def test_markov_best_response_equals_brute_force():
    for seed in range(5):
        for eps_pi in (0.3, 1.0):
            game = _markov(seed, eps_pi, states=3)
            nu = random_policy(np.random.default_rng(seed), game.victim_shape)
            best = game.best_response(nu)
            pure = [np.eye(2)[list(choice)] for choice in itertools.product(range(2), repeat=3)]
            brute = min(game.value(nu, alpha) for alpha in pure)
            assert game.value(nu, best) == pytest.approx(brute, abs=1e-12)
            # no stochastic adversarial part beats it, in any state
            values = game.game.state_values(nu, game.deployed(best))
            for alpha in (random_policy(np.random.default_rng(k), (3, 2)) for k in range(20)):
                assert np.all(game.game.state_values(nu, game.deployed(alpha)) >= values - 1e-12)


def _finite_difference(function, table: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(table)
    for index in np.ndindex(table.shape):
        up, down = table.copy(), table.copy()
        up[index] += h
        down[index] -= h
        grad[index] = (function(up) - function(down)) / (2 * h)
    return grad


def test_exact_gradients_equal_finite_differences_markov_and_kuhn():
    game = _markov(7, 0.6, states=3, victim_actions=3)
    rng = np.random.default_rng(7)
    nu, alpha = random_policy(rng, game.victim_shape), random_policy(rng, game.attacker_shape)
    g_nu, g_alpha = game.gradients(nu, alpha)
    np.testing.assert_allclose(g_nu, _finite_difference(lambda t: game.value(t, alpha), nu), atol=1e-7)
    np.testing.assert_allclose(g_alpha, _finite_difference(lambda t: game.value(nu, t), alpha), atol=1e-7)
    kuhn = KuhnGame(0.7)
    nu, alpha = random_policy(rng, kuhn.victim_shape), random_policy(rng, kuhn.attacker_shape)
    g_nu, g_alpha = kuhn.gradients(nu, alpha)
    np.testing.assert_allclose(g_nu, _finite_difference(lambda t: kuhn.value(t, alpha), nu), atol=1e-8)
    np.testing.assert_allclose(g_alpha, _finite_difference(lambda t: kuhn.value(nu, t), alpha), atol=1e-8)


def test_eps_pi_zero_is_no_attack_and_one_is_full_control():
    rng = np.random.default_rng(2)
    for game in (_markov(2, 0.0), KuhnGame(0.0)):
        nu = random_policy(rng, game.victim_shape, game.victim_mask)
        values = {
            round(game.value(nu, random_policy(rng, game.attacker_shape, game.attacker_mask)), 12) for _ in range(5)
        }
        assert len(values) == 1  # the attacker's part has no effect
        assert game.exploitability(nu) == pytest.approx(-game.value(nu, game.benign), abs=1e-12)
    markov = _markov(2, 1.0)
    alpha = random_policy(rng, markov.attacker_shape)
    np.testing.assert_array_equal(markov.deployed(alpha), alpha)  # the benign policy is gone
    nu = random_policy(rng, markov.victim_shape)
    assert markov.value(nu, alpha) == pytest.approx(markov.game.value(nu, alpha), abs=1e-15)
    # exploitability grows with the budget (the feasible opponents grow)
    kuhn_nu = random_policy(rng, (6, 2))
    expl = [KuhnGame(e).exploitability(kuhn_nu) for e in (0.0, 0.3, 0.7, 1.0)]
    assert expl == sorted(expl)


def test_partial_control_acts_adversarially_at_rate_eps_pi():
    """PartialControl (attacks/action.py) hands n = 20000 steps to the attacker ~ Binomial(n, eps_pi).
    Acceptance region: within 5 standard deviations, a false-alarm rate of 5.7e-7 per check for a
    correct coin (four checks: < 2.3e-6); the coins are seeded, so the test is deterministic."""
    from robustrl.attacks.action import PartialControl

    class Constant:
        def __init__(self, action):
            self.action = action

        def act(self, obs):
            return self.action

        def reset(self, seed=None):
            pass

    n = 20_000
    for eps_pi, seed in ((0.0, 1), (0.3, 2), (0.7, 3), (1.0, 4)):
        opponent = PartialControl(Constant(0), Constant(1), eps_pi, seed=seed)
        actions = np.array([opponent.act(None) for _ in range(n)])
        assert opponent.controlled_steps == actions.sum()
        sigma = math.sqrt(n * eps_pi * (1 - eps_pi))
        assert abs(actions.sum() - n * eps_pi) <= 5 * sigma, (eps_pi, actions.sum())
        if eps_pi in (0.0, 1.0):
            assert actions.sum() == n * eps_pi  # exactly never / always
    np.testing.assert_allclose(mixture([1.0, 0.0], [0.0, 1.0], 0.3), [0.7, 0.3])


def test_propositions_3_1_and_3_2_bounds_hold_on_random_games():
    for seed in range(30):
        eps_pi = float(np.random.default_rng(seed).uniform(0, 1))
        game = _markov(seed, eps_pi, states=4, gamma=[0.5, 0.9, 0.99][seed % 3])
        rng = np.random.default_rng(seed + 1)
        nu = random_policy(rng, game.victim_shape)
        for alpha in (random_policy(rng, game.attacker_shape), game.best_response(nu)):
            deployed = game.deployed(alpha)
            assert 0.5 * np.abs(deployed - game.benign).sum(axis=1).max() <= eps_pi + 1e-12
            gap = abs(game.game.value(nu, game.benign) - game.game.value(nu, deployed))
            assert gap <= stealth.value_bound(eps_pi, game.game.gamma) + 1e-12
            shift = np.abs(game.game.occupancy(nu, game.benign) - game.game.occupancy(nu, deployed)).sum()
            assert shift <= stealth.occupancy_bound(eps_pi, game.game.gamma) + 1e-12
            # Proposition 3.3 (f = TV): the victim's marginal transitions move no more than the opponent's policy
            for s in range(4):
                for a in range(2):
                    p_new = deployed[s] @ game.game.transitions[s, a]
                    p_old = game.benign[s] @ game.game.transitions[s, a]
                    assert 0.5 * np.abs(p_new - p_old).sum() <= 0.5 * np.abs(deployed[s] - game.benign[s]).sum() + 1e-12


def test_markov_robust_value_is_the_minimum_exploitability():
    game = _markov(4, 0.5, states=2)
    value, nu_star = game.robust_value()
    assert game.exploitability(nu_star) == pytest.approx(-value, abs=1e-7)
    rng = np.random.default_rng(4)
    assert all(game.exploitability(random_policy(rng, game.victim_shape)) >= -value - 1e-9 for _ in range(200))
    run = train_curve(game, "min-oracle", 3000, eta_nu=0.05, seed=0, eval_every=100)
    assert run["final_exploitability"] == pytest.approx(-value, abs=5e-3)


# ---- Kuhn Poker against OpenSpiel ---------------------------------------------------------------
def test_kuhn_uniform_policy_matches_open_spiel():
    """Our Expl is one-sided (the attacker's best-response gain against one seat). OpenSpiel's
    nash_conv of the uniform joint policy, 11/12, is Expl(seat 0) + Expl(seat 1) at eps_pi = 1;
    its exploitability, 11/24, is half of that."""
    from open_spiel.python import policy as policy_lib
    from open_spiel.python.algorithms import exploitability

    seat0, seat1 = KuhnGame(1.0, victim_seat=0), KuhnGame(1.0, victim_seat=1)
    uniform0, uniform1 = seat0.victim_mask / 2, seat1.victim_mask / 2
    ours = seat0.exploitability(uniform0) + seat1.exploitability(uniform1)
    game = pyspiel.load_game("kuhn_poker")
    assert ours == pytest.approx(11 / 12, abs=1e-12)
    assert ours == pytest.approx(exploitability.nash_conv(game, policy_lib.UniformRandomPolicy(game)), abs=1e-12)
    assert ours / 2 == pytest.approx(11 / 24, abs=1e-12)
    # a random policy: each seat's number is OpenSpiel's best-response value against it
    rng = np.random.default_rng(0)
    nu0, nu1 = random_policy(rng, (6, 2)), random_policy(rng, (6, 2))
    joint = seat0.to_open_spiel_policy(nu0, nu1)
    assert seat0.exploitability(nu0) == pytest.approx(
        exploitability.best_response(game, joint, 1)["best_response_value"], abs=1e-12
    )
    assert seat1.exploitability(nu1) == pytest.approx(
        exploitability.best_response(game, joint, 0)["best_response_value"], abs=1e-12
    )
    assert seat0.exploitability(nu0) + seat1.exploitability(nu1) == pytest.approx(
        exploitability.nash_conv(game, joint), abs=1e-12
    )
    # the game's value: -1/18 for seat 0, by our sequence-form LP
    assert seat0.robust_value()[0] == pytest.approx(-1 / 18, abs=1e-9)
    assert seat1.robust_value()[0] == pytest.approx(1 / 18, abs=1e-9)


def test_kuhn_best_response_equals_brute_force_under_partial_control():
    rng = np.random.default_rng(5)
    for eps_pi in (0.3, 0.7, 1.0):
        game = KuhnGame(eps_pi)
        nu = random_policy(rng, game.victim_shape)
        pure = (np.eye(2)[list(c)] for c in itertools.product(range(2), repeat=6))
        brute = min(game.value(nu, alpha) for alpha in pure)
        assert -game.exploitability(nu) == pytest.approx(brute, abs=1e-12)
        value, nu_star = game.robust_value()
        assert game.exploitability(nu_star) == pytest.approx(-value, abs=1e-8)


def test_kuhn_min_oracle_approaches_the_lp_optimum_and_single_timescale_oscillates():
    game = KuhnGame(1.0)
    best = -game.robust_value()[0]
    oracle = train_curve(game, "min-oracle", 1500, eta_nu=0.1, seed=0, eval_every=10)
    single = train_curve(game, "single", 1500, eta_nu=0.1, seed=0, eval_every=10)
    assert oracle["final_exploitability"] - best < 0.01
    tail = lambda run: np.ptp(run["exploitability"][-30:])  # noqa: E731
    assert tail(single) > 10 * tail(oracle) and single["final_exploitability"] - best > 0.05


def test_every_method_runs_on_both_exact_games_and_is_seeded():
    for game in (KuhnGame(0.7), _markov(1, 0.7)):
        for method in METHODS:
            a = train_curve(game, method, 20, seed=3, eval_every=5)
            b = train_curve(game, method, 20, seed=3, eval_every=5)
            assert a["exploitability"] == b["exploitability"] and len(a["steps"]) == 5
            assert all(np.isfinite(a["exploitability"]))
    with pytest.raises(InvalidArgumentError, match="method"):
        AdversarialTraining(KuhnGame(0.7), "sgd")


def test_games_learner_gets_a_run_directory_and_resumes_exactly(tmp_path):
    from robustrl.experiments.run import train
    from robustrl.games.learner import GamesLearner

    settings = {"method": "two-timescale", "eps_pi": 0.7, "iterations": 12, "checkpoint_every": 4}
    full = train(learner=GamesLearner(settings), out=tmp_path / "full")
    header = (tmp_path / "full" / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"exploitability", "score", "gradient_norm"} <= set(header)
    part = GamesLearner(settings)
    part.add_iteration_callback(lambda stats: part.request_stop() if stats.iteration == 5 else None)
    assert train(learner=part, out=tmp_path / "part").interrupted
    resumed = train(resume=tmp_path / "part")
    assert resumed.iterations == 12
    np.testing.assert_array_equal(resumed.learner.policy, full.learner.policy)


# ---- stealth measures --------------------------------------------------------------------------
def test_gaussian_measures_equal_closed_forms():
    m1, m2 = np.array([0.0, 1.0]), np.array([1.0, -1.0])
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 0.25])
    # commuting covariances: W2^2 = |dm|^2 + sum (sigma1 - sigma2)^2
    assert stealth.gaussian_w2(m1, s1, m2, s2) == pytest.approx(math.sqrt(5 + (1 - 3) ** 2 + (2 - 0.5) ** 2))
    # product of independent 1-d Gaussians: KL adds up; 1-d KL = ln(s2/s1) + (s1^2 + dm^2) / (2 s2^2) - 1/2
    kl_1d = lambda a, sa, b, sb: math.log(sb / sa) + (sa**2 + (a - b) ** 2) / (2 * sb**2) - 0.5  # noqa: E731
    assert stealth.gaussian_kl(m1, s1, m2, s2) == pytest.approx(kl_1d(0, 1, 1, 3) + kl_1d(1, 2, -1, 0.5))
    # Hellinger: Bhattacharyya coefficients multiply; check the 1-d case by numerical integration
    grid = np.linspace(-30, 30, 600_001)
    p = np.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi)
    q = np.exp(-0.5 * ((grid - 1) / 3) ** 2) / (3 * math.sqrt(2 * math.pi))
    numeric = math.sqrt(1 - np.trapezoid(np.sqrt(p * q), grid))
    assert stealth.gaussian_hellinger([0.0], [[1.0]], [1.0], [[9.0]]) == pytest.approx(numeric, abs=1e-8)
    assert stealth.gaussian_w2(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-7)
    assert stealth.gaussian_kl(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-12)
    # fitted from samples: close to the closed form
    rng = np.random.default_rng(0)
    x = rng.multivariate_normal(m1, s1, 4000)
    y = rng.multivariate_normal(m2, s2, 4000)
    report = stealth.stealth_report(x, y, exact_w2=False)
    assert report["gaussian_w2"] == pytest.approx(stealth.gaussian_w2(m1, s1, m2, s2), rel=0.02)
    assert report["gaussian_kl"] == pytest.approx(stealth.gaussian_kl(m2, s2, m1, s1), rel=0.05)


def test_sample_wasserstein_exact_in_one_dimension_and_split_half_baseline():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=300), rng.normal(size=300) + 0.5
    closed = math.sqrt(np.mean((np.sort(x) - np.sort(y)) ** 2))  # 1-d W2 between equal-size samples
    assert stealth.wasserstein2(x, y) == pytest.approx(closed, rel=1e-9)
    baseline = stealth.split_half_baseline(x)
    assert 0 < baseline < stealth.wasserstein2(x, y)
    order, variances = stealth.feature_importance(np.column_stack([x, 10 * x, 0.1 * y]))
    assert order.tolist() == [1, 0, 2] and variances[0] == pytest.approx(100 * np.var(x))
    with pytest.raises(InvalidArgumentError, match="same state dimension"):
        stealth.wasserstein2(np.zeros((3, 2)), np.zeros((3, 3)))


# ---- CLI ----------------------------------------------------------------------------------------
def test_cli_games_matrix_writes_figure_and_json(tmp_path, capsys):
    figure, data = tmp_path / "rps.png", tmp_path / "rps.json"
    assert (
        main(["games", "matrix", "--game", "rps", "--out", str(figure), "--json", str(data), "--iterations", "200"])
        == 0
    )
    result = json.loads(data.read_text())
    assert set(result["methods"]) == set(LEARNERS) and figure.stat().st_size > 1000
    for entry in result["methods"].values():
        assert len(entry["exploitability"]) == 201 and entry["final_exploitability"] == entry["exploitability"][-1]


@pytest.mark.parametrize(
    "args, words",
    [
        (["matrix", "--game", "chess"], "unknown --game"),
        (["matrix", "--eps-pi", "2"], "eps_pi"),
        (["matrix", "--step-size", "-1"], "--step-size"),
        (["kuhn", "--method", "gda", "--eps-pi", "0.7"], "unknown --method"),
        (["kuhn", "--method", "single", "--eps-pi", "-0.1"], "eps_pi"),
        (["kuhn", "--method", "single", "--eps-pi", "0.5", "--ratio", "0"], "--ratio"),
    ],
)
def test_cli_games_bad_input_is_one_error_line_and_writes_nothing(tmp_path, capsys, args, words):
    out = ["--out", str(tmp_path / ("fig.png" if args[0] == "matrix" else "run"))]
    code = main(["games", *args, *out])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and words in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_games_kuhn_writes_a_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["games", "kuhn", "--method", "min-oracle", "--eps-pi", "0.7", "--iterations", "30", "--out", str(run)])
    assert code == 0
    summary = json.loads((run / "exploitability.json").read_text())
    assert len(summary["exploitability"]) == 31 and summary["min_exploitability"] == pytest.approx(-0.0388888, abs=1e-6)
    assert (run / "progress.csv").exists() and (run / "config.json").exists() and (run / "exploitability.png").exists()
