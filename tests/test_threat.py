"""Threat module: balls (projection, sampling, membership, bounds), the PGD/FGSM/SGLD solvers and
interval bound propagation.

Property-based (hypothesis) over eps, norm, batch shapes, optional boxes and random objectives;
plus solvers recovering known optima of linear objectives, and bad inputs raising
:class:`InvalidArgumentError`. Everything is float32, as attacks use it.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from robustrl.errors import InvalidArgumentError
from robustrl.policies.ibp import interval_bounds
from robustrl.threat import Ball, PerturbationSet, fgsm, parse_norm, pgd, sgld

SOLVERS = {"pgd": pgd, "fgsm": fgsm, "sgld": sgld}

SETTINGS = settings(max_examples=max(40, settings.default.max_examples // 2), deadline=None)

# ---- strategies ---------------------------------------------------------------------------------
norms = st.sampled_from(["inf", "2"])
epsilons = st.one_of(st.just(0.0), st.floats(1e-3, 3.0, allow_nan=False))
positive_eps = st.floats(0.01, 2.0, allow_nan=False)
# batch first; 2-D (batch, dim) and 3-D (batch, a, b) observations
shapes = st.one_of(
    st.tuples(st.integers(1, 8), st.integers(1, 6)),
    st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3)),
)
# (low, high): no box, both sides, or one side only
boxes = st.one_of(
    st.just((None, None)),
    st.tuples(st.floats(-4.0, -0.5), st.floats(0.5, 4.0)),
    st.tuples(st.floats(-4.0, -0.5), st.none()),
    st.tuples(st.none(), st.floats(0.5, 4.0)),
)
objective_kinds = st.sampled_from(["linear", "quadratic", "mlp"])
seeds = st.integers(0, 2**31 - 1)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _points(shape, box, seed) -> torch.Tensor:
    """Points inside the box (if any), else N(0, 3^2)."""
    g = _gen(seed)
    low, high = box
    if low is None and high is None:
        return 3.0 * torch.randn(shape, generator=g)
    lo = low if low is not None else high - 6.0
    hi = high if high is not None else low + 6.0
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def _objective(kind: str, shape, seed: int):
    """Random per-sample objective: linear w.x, concave/indefinite quadratic, or a tanh MLP."""
    g = _gen(seed + 1)
    dim = math.prod(shape[1:])
    if kind == "linear":
        w = torch.randn(shape, generator=g)
        return lambda z: (z * w).reshape(z.shape[0], -1).sum(-1)
    if kind == "quadratic":
        a = torch.randn(dim, dim, generator=g)
        c = torch.randn(dim, generator=g)
        return lambda z: (
            torch.einsum("bi,ij,bj->b", z.reshape(z.shape[0], -1), a, z.reshape(z.shape[0], -1))
            + z.reshape(z.shape[0], -1) @ c
        )
    w1, w2 = torch.randn(dim, 16, generator=g), torch.randn(16, generator=g)
    return lambda z: torch.tanh(z.reshape(z.shape[0], -1) @ w1) @ w2


def _assert_in_ball_and_box(ball: Ball, out: torch.Tensor, x: torch.Tensor) -> None:
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()
    assert ball.contains(out, x).all(), f"outside {ball.describe()}: max |delta| {(out - x).abs().max():.3g}"
    if ball.low is not None:
        assert (out >= ball.low - 1e-6).all()
    if ball.high is not None:
        assert (out <= ball.high + 1e-6).all()


# ---- balls --------------------------------------------------------------------------------------
@SETTINGS
@given(eps=epsilons, norm=norms, shape=shapes, box=boxes, seed=seeds, scale=st.floats(0.0, 20.0))
def test_project_lands_in_ball_and_box_is_idempotent(eps, norm, shape, box, seed, scale):
    ball = Ball(eps, norm, *box)
    x = _points(shape, box, seed)
    far = x + scale * torch.randn(shape, generator=_gen(seed + 7))
    projected = ball.project(far, x)
    _assert_in_ball_and_box(ball, projected, x)
    torch.testing.assert_close(ball.project(projected, x), projected, atol=1e-5, rtol=0)


@SETTINGS
@given(eps=positive_eps, norm=norms, shape=shapes, box=boxes, seed=seeds)
def test_project_is_identity_inside(eps, norm, shape, box, seed):
    ball = Ball(eps, norm, *box)
    x = _points(shape, box, seed)
    inside = ball.clip(x + 0.9 * (ball.sample(x, _gen(seed)) - x))  # strictly inside the ball, in the box
    assert ball.contains(inside, x).all()
    torch.testing.assert_close(ball.project(inside, x), inside, atol=1e-5, rtol=0)
    torch.testing.assert_close(ball.project(x, x), x, atol=0, rtol=0)


@SETTINGS
@given(eps=epsilons, norm=norms, shape=shapes, box=boxes, seed=seeds)
def test_sample_is_in_ball_and_box(eps, norm, shape, box, seed):
    ball = Ball(eps, norm, *box)
    x = _points(shape, box, seed)
    _assert_in_ball_and_box(ball, ball.sample(x, _gen(seed)), x)
    # same generator seed, same sample
    torch.testing.assert_close(ball.sample(x, _gen(seed)), ball.sample(x, _gen(seed)), atol=0, rtol=0)


@pytest.mark.parametrize("dim", [1, 2, 3, 8])
def test_l2_sample_is_uniform_in_the_ball(dim):
    """Uniform in a d-ball: (r / eps)^d ~ U(0, 1) and the direction is isotropic."""
    n, eps = 20_000, 0.7
    x = torch.full((n, dim), 2.0)
    delta = Ball(eps, "2").sample(x, _gen(0)) - x
    u = (delta.norm(dim=-1) / eps) ** dim
    assert u.max() <= 1 + 1e-5
    assert abs(u.mean().item() - 0.5) < 0.015  # std of the mean: 0.29 / sqrt(n) = 0.002
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):  # empirical CDF of U(0, 1)
        assert abs((u <= q).float().mean().item() - q) < 0.015, q
    direction = delta / delta.norm(dim=-1, keepdim=True)
    assert direction.mean(0).abs().max() < 0.03
    # the radius is not concentrated at the boundary only: the half-radius ball holds 2^-d of the mass
    assert abs((delta.norm(dim=-1) <= eps / 2).float().mean().item() - 0.5**dim) < 0.015


def test_linf_sample_is_uniform_per_coordinate():
    n, eps = 20_000, 0.3
    x = torch.zeros(n, 4)
    delta = Ball(eps, "inf").sample(x, _gen(1)) - x
    assert delta.abs().max() <= eps
    assert delta.mean(0).abs().max() < 0.01
    torch.testing.assert_close(delta.var(0), torch.full((4,), eps**2 / 3), atol=2e-3, rtol=0)


@SETTINGS
@given(eps=epsilons, norm=norms, shape=shapes, box=boxes, seed=seeds)
def test_bounds_enclose_the_ball(eps, norm, shape, box, seed):
    ball = Ball(eps, norm, *box)
    x = _points(shape, box, seed)
    low, high = ball.bounds(x)
    assert (low <= high).all()
    for i in range(5):
        point = ball.sample(x, _gen(seed + i))
        assert (point >= low - 1e-6).all() and (point <= high + 1e-6).all()


def test_contains_measures_the_right_norm():
    x = torch.zeros(2, 2)
    corner = torch.tensor([[0.1, 0.1], [0.1, -0.1]])
    assert Ball(0.1, "inf").contains(corner, x).all()
    assert not Ball(0.1, "2").contains(corner, x).any()  # ||(0.1, 0.1)||_2 = 0.141
    assert Ball(0.1415, "2").contains(corner, x).all()


@pytest.mark.parametrize(
    "text,expected",
    [
        ("inf", "inf"),
        ("linf", "inf"),
        ("l_inf", "inf"),
        (math.inf, "inf"),
        ("2", "2"),
        ("l2", "2"),
        ("L_2", "2"),
        (2, "2"),
    ],
)
def test_parse_norm_spellings(text, expected):
    assert parse_norm(text) == expected


def test_ball_is_a_perturbation_set():
    ball = Ball(0.1)
    assert isinstance(ball, PerturbationSet)
    x = torch.zeros(3, 2)
    assert ball.contains(ball.project(x + 1.0, x), x).all() and ball.contains(ball.sample(x, _gen(0)), x).all()


# ---- solvers: inside the ball ---------------------------------------------------------------------
@SETTINGS
@given(
    eps=epsilons,
    norm=norms,
    shape=shapes,
    box=boxes,
    seed=seeds,
    kind=objective_kinds,
    maximize=st.booleans(),
    random_start=st.booleans(),
    steps=st.integers(1, 8),
    step_scale=st.one_of(st.none(), st.floats(0.0, 3.0)),
    step_rule=st.sampled_from(["auto", "sign", "normalized"]),
)
def test_every_solver_stays_in_ball_and_box(
    eps, norm, shape, box, seed, kind, maximize, random_start, steps, step_scale, step_rule
):
    ball = Ball(eps, norm, *box)
    x = _points(shape, box, seed)
    f = _objective(kind, shape, seed)
    step_size = None if step_scale is None else step_scale * eps  # may overshoot the ball: projection must hold
    common = dict(maximize=maximize, step_rule=step_rule, generator=_gen(seed))
    outs = {
        "pgd": pgd(f, x, ball, steps=steps, step_size=step_size, random_start=random_start, **common),
        "fgsm": fgsm(f, x, ball, random_start=random_start, **common),
        "sgld": sgld(f, x, ball, steps=steps, step_size=step_size, temperature=1e-2, **common),
    }
    for name, out in outs.items():
        assert not out.requires_grad, name
        _assert_in_ball_and_box(ball, out, x)


# ---- solvers: known optima -------------------------------------------------------------------------
def _linear(shape, seed):
    w = torch.randn(shape, generator=_gen(seed + 3))
    return w, (lambda z: (z * w).reshape(z.shape[0], -1).sum(-1))


def _unit(w):
    flat = w.reshape(w.shape[0], -1)
    return (flat / flat.norm(dim=-1, keepdim=True)).reshape(w.shape)


@SETTINGS
@given(eps=positive_eps, shape=shapes, seed=seeds)
def test_linf_linear_optimum_is_the_sign_corner(eps, shape, seed):
    x = _points(shape, (None, None), seed)
    w, f = _linear(shape, seed)
    ball = Ball(eps, "inf")
    best, worst = x + eps * w.sign(), x - eps * w.sign()
    tol = dict(atol=1e-4, rtol=0)
    torch.testing.assert_close(pgd(f, x, ball, random_start=False), best, **tol)
    torch.testing.assert_close(fgsm(f, x, ball), best, **tol)
    torch.testing.assert_close(pgd(f, x, ball, random_start=False, maximize=False), worst, **tol)
    torch.testing.assert_close(fgsm(f, x, ball, maximize=False), worst, **tol)
    # from a random start PGD still reaches the corner with enough sign steps of eps/steps
    torch.testing.assert_close(pgd(f, x, ball, steps=25, step_size=eps / 10, generator=_gen(seed)), best, **tol)


@SETTINGS
@given(eps=positive_eps, seed=seeds, low=st.floats(-3.0, -0.5), high=st.floats(0.5, 3.0))
def test_linf_linear_optimum_with_a_box_is_the_clipped_corner(eps, seed, low, high):
    shape = (6, 4)
    x = _points(shape, (low, high), seed)
    w, f = _linear(shape, seed)
    ball = Ball(eps, "inf", low, high)
    torch.testing.assert_close(
        pgd(f, x, ball, random_start=False), (x + eps * w.sign()).clamp(low, high), atol=1e-4, rtol=0
    )


@SETTINGS
@given(eps=positive_eps, shape=shapes, seed=seeds)
def test_l2_linear_optimum_is_along_w(eps, shape, seed):
    x = _points(shape, (None, None), seed)
    w, f = _linear(shape, seed)
    ball = Ball(eps, "2")
    best, worst = x + eps * _unit(w), x - eps * _unit(w)
    tol = dict(atol=1e-4, rtol=0)
    torch.testing.assert_close(pgd(f, x, ball, steps=20, random_start=False, step_rule="normalized"), best, **tol)
    torch.testing.assert_close(pgd(f, x, ball, steps=20, random_start=False), best, **tol)  # auto = normalized for l_2
    torch.testing.assert_close(fgsm(f, x, ball), best, **tol)
    torch.testing.assert_close(pgd(f, x, ball, steps=20, random_start=False, maximize=False), worst, **tol)
    torch.testing.assert_close(fgsm(f, x, ball, maximize=False), worst, **tol)
    # from a random start: 60 steps of eps/4 slide along the sphere to the optimum
    found = pgd(f, x, ball, steps=60, step_size=eps / 4, generator=_gen(seed))
    assert ((f(found) - f(best)).abs() <= 1e-3 * (1 + f(best).abs())).all()


@SETTINGS
@given(
    eps=positive_eps,
    norm=norms,
    shape=shapes,
    box=boxes,
    seed=seeds,
    kind=objective_kinds,
    maximize=st.booleans(),
    random_start=st.booleans(),
)
def test_pgd_is_never_worse_than_its_start(eps, norm, shape, box, seed, kind, maximize, random_start):
    ball = Ball(eps, norm, *box)
    x = _points(shape, box, seed)
    f = _objective(kind, shape, seed)
    # pgd's first draw from its generator is the random start: replay it
    start = ball.sample(x, _gen(seed)) if random_start else x
    out = pgd(f, x, ball, random_start=random_start, maximize=maximize, generator=_gen(seed))
    sign = 1.0 if maximize else -1.0
    with torch.no_grad():
        gain = sign * (f(out) - f(start))
    assert (gain >= -1e-5 * (1 + f(start).abs())).all(), gain


@SETTINGS
@given(eps=st.floats(0.02, 0.3), norm=norms, seed=seeds, batch=st.integers(64, 128), dim=st.integers(2, 6))
def test_sgld_escapes_a_zero_gradient_start(eps, norm, seed, batch, dim):
    """A KL-like objective ||tanh(Az) - tanh(Ax)||^2 is 0 with zero gradient at z = x: PGD from x
    cannot move, SGLD's noisy start does (the reason MAD uses it)."""
    x = 0.5 * torch.randn(batch, dim, generator=_gen(seed))  # keep tanh out of saturation
    a = torch.randn(dim, dim, generator=_gen(seed + 5)) / math.sqrt(dim) + torch.eye(dim)
    clean = torch.tanh(x @ a)

    def f(z):
        return ((torch.tanh(z @ a) - clean) ** 2).sum(-1)

    ball = Ball(eps, norm)
    out = sgld(f, x, ball, generator=_gen(seed))
    _assert_in_ball_and_box(ball, out, x)
    with torch.no_grad():
        assert (f(out) > 0).all()
        torch.testing.assert_close(pgd(f, x, ball, random_start=False), x)  # stuck: sign(0) = 0
        # SGLD's first iterate is x + (eps / steps) * dir(noise); the ascent that follows must gain on it
        noise = torch.randn(x.shape, generator=_gen(seed))
        direction = noise.sign() if norm == "inf" else noise / noise.norm(dim=-1, keepdim=True)
        start = ball.project(x + eps / 10 * direction, x)
        assert f(out).mean() > 2 * f(start).mean()


@SETTINGS
@given(eps=st.floats(0.1, 1.0), norm=norms, seed=seeds)
def test_sgld_improves_a_nonconvex_objective(eps, norm, seed):
    x = _points((32, 4), (None, None), seed)
    g = _gen(seed + 11)
    w1, w2 = torch.randn(4, 16, generator=g), torch.randn(16, generator=g)

    def f(z):  # tanh MLP plus a ripple: many local optima
        return torch.tanh(z @ w1) @ w2 + torch.sin(3 * z).sum(-1)

    for maximize in (True, False):
        out = sgld(f, x, Ball(eps, norm), maximize=maximize, temperature=1e-3, generator=_gen(seed))
        sign = 1.0 if maximize else -1.0
        with torch.no_grad():
            assert sign * (f(out).mean() - f(x).mean()) > 0


def test_eps_zero_returns_x_exactly():
    x = torch.randn(5, 3, generator=_gen(0))
    f = _objective("mlp", (5, 3), 0)
    for norm in ("inf", "2"):
        ball = Ball(0, norm)
        assert torch.equal(ball.project(x + 1.0, x), x)
        assert torch.equal(ball.sample(x, _gen(1)), x)
        for name, solver in SOLVERS.items():
            out = solver(f, x, ball)
            assert torch.equal(out, x), name
            assert out is not x, name  # a copy: callers may write into it


def test_solvers_do_not_touch_parameter_gradients():
    """Defences call solvers inside their loss: no .grad may accumulate on the network."""
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(4, 3, generator=_gen(0))
    for solver in SOLVERS.values():
        solver(lambda z: net(z).squeeze(-1), x, Ball(0.1))
    assert all(p.grad is None for p in net.parameters())


# ---- bad inputs ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: Ball(-0.1),
        lambda: Ball(float("nan")),
        lambda: Ball(float("inf")),
        lambda: Ball("0.1"),
        lambda: Ball(0.1, "1"),
        lambda: Ball(0.1, "fro"),
        lambda: Ball(0.1, low=1.0, high=-1.0),
    ],
    ids=["negative", "nan", "inf", "string", "l1", "fro", "empty-box"],
)
def test_bad_ball_raises(make):
    with pytest.raises(InvalidArgumentError):
        make()


def _sum(z):
    return z.sum(-1)


@pytest.mark.parametrize(
    "call",
    [
        lambda x, b: pgd(_sum, x, b, steps=0),
        lambda x, b: pgd(_sum, x, b, steps=-3),
        lambda x, b: pgd(_sum, x, b, steps=2.5),
        lambda x, b: sgld(_sum, x, b, steps=0),
        lambda x, b: pgd(_sum, x, b, step_size=-0.1),
        lambda x, b: pgd(_sum, x, b, step_size=float("nan")),
        lambda x, b: pgd(_sum, x, b, step_rule="newton"),
        lambda x, b: sgld(_sum, x, b, temperature=-1.0),
        lambda x, b: sgld(_sum, x, b, temperature=float("inf")),
        # objectives returning the wrong shape: a scalar, (batch, 1), (batch, dim)
        lambda x, b: pgd(lambda z: z.sum(), x, b),
        lambda x, b: pgd(lambda z: z.sum(-1, keepdim=True), x, b),
        lambda x, b: fgsm(lambda z: z * 2, x, b),
        lambda x, b: sgld(lambda z: z.sum(), x, b),
    ],
)
def test_bad_solver_input_raises(call):
    with pytest.raises(InvalidArgumentError):
        call(torch.zeros(4, 3), Ball(0.1))


@pytest.mark.parametrize("solver", [fgsm, sgld])
def test_fgsm_and_sgld_reject_unknown_step_rule(solver):
    with pytest.raises(InvalidArgumentError):
        solver(_sum, torch.zeros(4, 3), Ball(0.1), step_rule="newton")


# ---- interval bound propagation ----------------------------------------------------------------
ACTIVATIONS = [nn.Tanh, nn.ReLU, nn.Sigmoid, nn.Identity, nn.ELU, nn.LeakyReLU, nn.Softplus]


def _network(seed, in_dim, widths, activation_index, nested):
    torch.manual_seed(seed)
    layers, size = [], in_dim
    for width in widths:
        layers += [nn.Linear(size, width), ACTIVATIONS[activation_index]()]
        size = width
    layers.append(nn.Linear(size, 2))
    if nested and len(layers) > 2:
        return nn.Sequential(nn.Sequential(*layers[:2]), *layers[2:])
    return nn.Sequential(*layers)


@SETTINGS
@given(
    seed=seeds,
    in_dim=st.integers(1, 5),
    widths=st.lists(st.integers(1, 12), min_size=0, max_size=3),
    activation=st.integers(0, len(ACTIVATIONS) - 1),
    nested=st.booleans(),
    radius=st.floats(0.0, 2.0),
)
def test_ibp_bounds_contain_every_output(seed, in_dim, widths, activation, nested, radius):
    net = _network(seed % 10_000, in_dim, widths, activation, nested)
    g = _gen(seed)
    center = torch.randn(3, in_dim, generator=g)
    lower, upper = interval_bounds(net, center - radius, center + radius)
    assert lower.shape == upper.shape == (3, 2)
    assert (lower <= upper + 1e-6).all()
    corners = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=in_dim)))
    with torch.no_grad():
        for i in range(3):
            inside = center[i] + radius * (2 * torch.rand(300, in_dim, generator=g) - 1)
            points = torch.cat([inside, center[i] + radius * corners])
            out = net(points)
            slack = 1e-5 * (1 + out.abs())
            assert (out >= lower[i] - slack).all() and (out <= upper[i] + slack).all()


@SETTINGS
@given(
    seed=seeds,
    in_dim=st.integers(1, 6),
    out_dim=st.integers(1, 5),
    radius=st.floats(0.0, 3.0),
    activation=st.sampled_from([None, nn.Tanh, nn.ReLU]),
)
def test_ibp_is_exact_for_one_linear_layer(seed, in_dim, out_dim, radius, activation):
    """One Linear (then optionally a monotone activation): the box image's bounds are attained at
    corners of the input box."""
    torch.manual_seed(seed % 10_000)
    layer = nn.Linear(in_dim, out_dim)
    net = layer if activation is None else nn.Sequential(layer, activation())
    center = torch.randn(2, in_dim, generator=_gen(seed))
    lower, upper = interval_bounds(net, center - radius, center + radius)
    corners = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=in_dim)))
    with torch.no_grad():
        for i in range(2):
            out = net(center[i] + radius * corners)
            torch.testing.assert_close(lower[i], out.min(0).values, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(upper[i], out.max(0).values, atol=1e-5, rtol=1e-5)


def test_ibp_of_a_point_is_the_output_and_is_differentiable():
    net = _network(0, 3, [8, 8], 0, False)
    x = torch.randn(4, 3, generator=_gen(2))
    lower, upper = interval_bounds(net, x, x)
    torch.testing.assert_close(lower, net(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(upper, net(x), atol=1e-6, rtol=0)
    lower, upper = interval_bounds(net, x - 0.1, x + 0.1)
    (upper - lower).sum().backward()  # the bound width is a training loss (RS, IBP defences)
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad and p.ndim == 2)


def test_ibp_rejects_non_monotone_layers():
    with pytest.raises(TypeError, match="unsupported layer"):
        interval_bounds(nn.Sequential(nn.Linear(2, 2), nn.Dropout()), torch.zeros(1, 2), torch.ones(1, 2))


@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("step_size", [None, 0.03])
def test_sgld_with_its_draws_outside_equals_sgld(norm, step_size):
    """SA-PPO's solve inside the compiled step (sgld_with_noise, torch-written input gradient,
    draws made beforehand by draw_sgld_noise) takes sgld's iterates from the same generator."""
    import gymnasium as gym

    from robustrl.policies.actor_critic import ActorCritic
    from robustrl.threat.objectives import divergence_input_grad, divergence_objective
    from robustrl.threat.solvers import draw_sgld_noise, sgld_with_noise

    torch.manual_seed(0)
    policy = ActorCritic(gym.spaces.Box(-1, 1, (11,)), gym.spaces.Box(-1, 1, (3,)))
    for parameter in policy.actor.parameters():
        parameter.data.normal_(0, 0.5)  # far from the near-zero initial output layer
    x = torch.randn(64, 11)
    eps = torch.full((64,), 0.2)
    eps[:8] = 0.05  # a per-row radius, as the batch column of the compiled step
    reference = torch.cat([
        sgld(divergence_objective(policy, x[rows], scale=2.0), x[rows], Ball(radius, norm), steps=10,
             step_size=step_size, temperature=1e-5, generator=torch.Generator().manual_seed(3))
        for rows, radius in ((slice(0, 8), 0.05), (slice(8, 64), 0.2))
    ])  # fmt: skip
    noise = torch.cat([draw_sgld_noise(x[rows].shape, 10, torch.Generator().manual_seed(3), x.dtype)
                       for rows in (slice(0, 8), slice(8, 64))], dim=1)  # fmt: skip
    solved = sgld_with_noise(divergence_input_grad(policy, x), x, eps, noise, norm=norm, step_size=step_size, temperature=1e-5)
    assert (reference - x).abs().max() > 0.04  # the solve moved
    torch.testing.assert_close(solved, reference, rtol=0, atol=1e-4)
