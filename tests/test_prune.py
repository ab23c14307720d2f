"""Pruning (issue 12): masks, strategies, schedule, the certified bound of Theorem 1 ("Pruning cannot
hurt robustness"), the IBP certificate, resume, and the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from robustrl import TrainConfig, ppo_defaults_for, train
from robustrl.algos import PPOHooks
from robustrl.algos.hooks import Callback
from robustrl.algos.ppo import PPO, hooks_for
from robustrl.cli import main
from robustrl.config import PruneConfig
from robustrl.errors import InvalidArgumentError
from robustrl.policies.actor_critic import ActorCritic
from robustrl.policies.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from robustrl.prune.callback import PruneCallback
from robustrl.prune.lipschitz import (
    SOFTMAX_C,
    alpha,
    certified_bound,
    exact_tv,
    ibp_tv_bound,
    lipschitz_surrogate,
    tv_constant,
)
from robustrl.prune.masks import erk_densities, kept_counts, masks_from_scores, sparsity_of, top_k_mask
from robustrl.prune.schedule import cubic_sparsity, schedule_steps

compiler = pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile needs a C++ compiler")


def tiny_ppo(**changes):
    values = {"steps_per_iteration": 256, "num_minibatches": 4, "policy_epochs": 2, "value_epochs": 2, **changes}
    return dataclasses.replace(ppo_defaults_for("Pendulum-v1"), **values)


def tiny_config(iterations=4, prune=None, **ppo):
    return TrainConfig(
        "Pendulum-v1", total_steps=256 * iterations, seed=3, ppo=tiny_ppo(**ppo),
        prune=prune or PruneConfig(strategy="magnitude", sparsity=0.5, prune_every=2, burn_in=0.25),
    )  # fmt: skip


def random_policy(obs_dim, hidden, action, activation, seed) -> ActorCritic:
    torch.manual_seed(seed)
    space = gym.spaces.Box(-1.0, 1.0, (obs_dim,), np.float32)
    actions = gym.spaces.Box(-1.0, 1.0, (action,), np.float32) if action > 0 else gym.spaces.Discrete(-action)
    policy = ActorCritic(space, actions, hidden, activation, initial_std=0.7)
    with torch.no_grad():  # weights of a trained size, not the 0.01-gain output layer
        for p in policy.actor.parameters():
            p.normal_(0.0, 0.5)
    return policy


# ---- Theorem 1: L~ and the bound never increase under element-wise masks --------------------------------
mlp_shapes = st.tuples(
    st.integers(1, 6), st.lists(st.integers(1, 8), min_size=1, max_size=3), st.sampled_from(["tanh", "relu"])
)


@given(mlp_shapes, st.integers(0, 10_000), st.floats(0.0, 1.0))
def test_masks_never_increase_the_lipschitz_surrogate_nor_the_certified_bound(shape, seed, keep):
    obs_dim, hidden, activation = shape
    policy = random_policy(obs_dim, hidden, 2, activation, seed)
    before_l = lipschitz_surrogate(policy.actor)
    before = certified_bound(policy, 0.1, "inf", 0.99, 1.0)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in policy.actor:
            if isinstance(layer, nn.Linear):
                layer.weight.mul_((torch.rand(layer.weight.shape, generator=generator) < keep).float())
    after = certified_bound(policy, 0.1, "inf", 0.99, 1.0)
    assert lipschitz_surrogate(policy.actor) <= before_l * (1 + 1e-6)
    assert after["lipschitz"] <= before["lipschitz"] * (1 + 1e-6)
    assert after["bound"] <= before["bound"] * (1 + 1e-6)


@given(mlp_shapes, st.integers(0, 10_000))
def test_lipschitz_surrogate_bounds_the_network_s_actual_slope(shape, seed):
    obs_dim, hidden, activation = shape
    policy = random_policy(obs_dim, hidden, 3, activation, seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, obs_dim, generator=generator, dtype=torch.float64)
    y = torch.randn(64, obs_dim, generator=generator, dtype=torch.float64)
    actor = policy.actor.double()  # in float64: a one-unit ReLU net meets the bound with equality
    with torch.no_grad():
        slope = (actor(x) - actor(y)).norm(dim=-1) / (x - y).norm(dim=-1)
    assert float(slope.max()) <= lipschitz_surrogate(actor) * (1 + 1e-9)


def test_certify_on_a_hand_built_two_layer_network_equals_the_hand_value(tmp_path, capsys):
    # Pendulum: 3 observations, 1 action; one hidden layer of 2 tanh units.
    config = TrainConfig(
        "Pendulum-v1", total_steps=256, ppo=tiny_ppo(hidden_sizes=(2,), gamma=0.9), prune=PruneConfig()
    )
    trainer = PPO(config, hooks_for(config))
    with torch.no_grad():
        trainer.policy.actor[0].weight.copy_(torch.tensor([[3.0, 0.0, 0.0], [4.0, 0.0, 0.0]]))
        trainer.policy.actor[2].weight.copy_(torch.tensor([[1.0, 2.0]]))
        trainer.policy.log_std.fill_(math.log(0.5))
    run = tmp_path / "hand"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    from robustrl.policies.checkpoint import save_checkpoint

    save_checkpoint(run / "checkpoints" / "iter_000000", *trainer.state())
    trainer.close()
    # W1: ||.||_F = 5, ||.||_1 = 7 (column), ||.||_inf = 4 (row): min(5, sqrt 28) = 5.
    # W2 = [1 2]: ||.||_F = sqrt 5, ||.||_1 = 2, ||.||_inf = 3: min(sqrt 5, sqrt 6) = sqrt 5. tanh: 1.
    lipschitz = 5 * math.sqrt(5)
    c = 1 / (math.sqrt(2 * math.pi) * 0.5)
    eps_l2 = 0.1 * math.sqrt(3)  # l_inf ball of radius 0.1 in 3 dimensions
    hand_alpha = 2 * (1 + 0.9 / 0.1**2) * 1.0  # R_max = 1
    out = tmp_path / "certificate.json"
    code = main(["certify", str(run), "--eps", "0.1", "--r-max", "1", "--episodes", "1", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["global"]["lipschitz"] == pytest.approx(lipschitz, rel=1e-6)
    assert result["global"]["c"] == pytest.approx(c, rel=1e-6)
    assert result["checkpoints"][0]["alpha"] == pytest.approx(hand_alpha, rel=1e-9)
    assert result["global"]["bound"] == pytest.approx(hand_alpha * c * lipschitz * eps_l2, rel=1e-6)
    assert result["r_max_source"] == "given (--r-max)"
    assert result["ibp"]["mean_tv_bound"] <= result["ibp"]["max_tv_bound"] <= 1.0


def test_alpha_and_the_constants():
    assert alpha(0.99, 2.0) == pytest.approx(2 * (1 + 0.99 / 0.01**2) * 2.0)
    policy = random_policy(3, [4], 2, "tanh", 0)
    with torch.no_grad():
        policy.log_std.copy_(torch.log(torch.tensor([0.1, 0.4])))
    assert tv_constant(policy) == pytest.approx(1 / (math.sqrt(2 * math.pi) * 0.1))  # smallest std
    assert tv_constant(random_policy(3, [4], -3, "tanh", 0)) == SOFTMAX_C


def test_the_softmax_constant_holds_where_the_paper_s_quarter_does_not():
    # two actions, logits (t, -t) / sqrt 2 against (0, 0): ||dz||_2 = t, TV = sigmoid(sqrt(2) t) - 1/2
    def tv(t):
        return 1 / (1 + math.exp(-math.sqrt(2) * t)) - 0.5

    for t in (1e-3, 0.1, 1.0, 5.0):
        assert tv(t) <= SOFTMAX_C * t
    assert tv(1e-3) > 1e-3 / 4  # the paper's 1/4 is not a bound
    assert tv(1e-6) / 1e-6 == pytest.approx(SOFTMAX_C, rel=1e-6)  # and 1 / (2 sqrt 2) is tight


# ---- the IBP certificate ----------------------------------------------------------------------------------
@given(mlp_shapes, st.integers(0, 10_000), st.floats(0.001, 0.5), st.sampled_from([2, -3]))
def test_ibp_certificate_is_never_below_a_sampled_tv(shape, seed, eps, action):
    obs_dim, hidden, activation = shape
    policy = random_policy(obs_dim, hidden, action, activation, seed)
    generator = torch.Generator().manual_seed(seed)
    states = torch.randn(16, obs_dim, generator=generator)
    bound = ibp_tv_bound(policy, states, eps, "inf")
    assert torch.all(bound <= 1.0 + 1e-6)
    for _ in range(20):  # random points and corners of the l_inf ball
        uniform = (torch.rand(states.shape, generator=generator) * 2 - 1) * eps
        corner = (torch.randint(0, 2, states.shape, generator=generator).float() * 2 - 1) * eps
        for step in (uniform, corner):
            assert torch.all(exact_tv(policy, states, states + step) <= bound + 1e-6)
    # and below the global bound c L~ eps_2 (the IBP box is the l_inf ball itself)
    global_tv = tv_constant(policy) * lipschitz_surrogate(policy.actor) * eps * math.sqrt(obs_dim)
    assert torch.all(bound <= global_tv + 1e-6) or not policy.continuous


# ---- masks, allocation, schedule ---------------------------------------------------------------------------
@given(
    st.lists(st.tuples(st.integers(1, 80), st.integers(1, 80)), min_size=1, max_size=5),
    st.floats(0.0, 0.99),
    st.sampled_from(["erk", "layer"]),
)
def test_allocation_hits_the_target_sparsity_exactly(shapes, sparsity, allocation):
    counts = kept_counts(shapes, sparsity, allocation)
    total = sum(a * b for a, b in shapes)
    assert sum(counts) == round((1 - sparsity) * total)
    assert all(0 <= k <= a * b for k, (a, b) in zip(counts, shapes))
    scores = {f"l{i}": torch.rand(shape) for i, shape in enumerate(shapes)}
    masks = masks_from_scores(scores, sparsity, allocation)
    assert sum(int(m.sum()) for m in masks.values()) == round((1 - sparsity) * total)


@given(st.lists(st.integers(0, 4), min_size=1, max_size=60), st.integers(0, 60))
def test_top_k_mask_keeps_what_a_stable_descending_sort_keeps(values, k):
    scores = torch.tensor(values, dtype=torch.float32)  # many ties
    k = min(k, len(values))
    expected = torch.zeros(len(values))
    expected[torch.sort(scores, descending=True, stable=True).indices[:k]] = 1.0
    assert torch.equal(top_k_mask(scores, k), expected)


def test_erk_densities_follow_fan_in_plus_fan_out_and_cap_at_one():
    shapes = [(64, 11), (64, 64), (3, 64)]
    densities = erk_densities(shapes, 0.3)
    raw = [sum(s) / (s[0] * s[1]) for s in shapes]
    uncapped = [i for i, d in enumerate(densities) if d < 1.0]
    ratios = {round(densities[i] / raw[i], 9) for i in uncapped}
    assert len(ratios) == 1  # the same scale for every layer that is not dense
    assert sum(d * s[0] * s[1] for d, s in zip(densities, shapes)) == pytest.approx(0.3 * sum(a * b for a, b in shapes))
    assert max(densities) <= 1.0


@given(st.integers(0, 500), st.integers(1, 500), st.floats(0.0, 0.99))
def test_cubic_schedule_hits_its_endpoints_and_is_monotone(start, length, final):
    end = start + length
    assert cubic_sparsity(start, start, end, final) == 0.0
    assert cubic_sparsity(max(0, start - 1), start, end, final) == 0.0
    assert cubic_sparsity(end, start, end, final) == final
    assert cubic_sparsity(end + 10, start, end, final) == final
    values = [cubic_sparsity(t, start, end, final) for t in range(end + 2)]
    assert all(a <= b for a, b in zip(values, values[1:]))
    midpoint = start + length / 2
    assert cubic_sparsity(midpoint, start, end, final) == pytest.approx(final * (1 - 0.5**3))


def test_schedule_steps_and_one_shot():
    assert schedule_steps(1000, 0.25, 1.0) == (250, 1000)
    assert cubic_sparsity(0, 0, 0, 0.7) == 0.7  # burn_in = end = 0: one-shot at step 0


class MaskChecker(Callback):
    """After every optimiser step: every pruned weight is zero (forces one step per compiled call)."""

    name = "checker"
    step_interval = 1

    def __init__(self, prune: PruneCallback):
        self.prune, self.checked = prune, 0

    def on_step(self, clock):
        for name, mask in self.prune.masks.items():
            assert torch.all(self.prune.weights[name][mask == 0] == 0), (name, clock)
        self.checked += 1


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=compiler)])
@pytest.mark.parametrize("strategy", ["magnitude", "magnitude-ste", "saliency", "random"])
def test_masks_hold_after_every_optimizer_step(compiled, strategy):
    config = tiny_config(3, PruneConfig(strategy=strategy, sparsity=0.6, prune_every=2, burn_in=0.0), compile=compiled)
    prune = PruneCallback(config.prune, seed=config.seed)
    checker = MaskChecker(prune)
    trainer = PPO(config, PPOHooks(callbacks=[prune, checker]))
    trainer.learn()
    trainer.close()
    assert checker.checked == trainer.optimizer_step == 3 * 2 * 4
    assert sparsity_of(prune.masks) == pytest.approx(0.6, abs=1e-3)
    for name, weight in prune.weights.items():
        assert torch.all(weight[prune.masks[name] == 0] == 0)
    for name, p in trainer.policy.named_parameters():  # biases and log-std are never pruned
        if p.ndim == 1:
            assert name not in prune.masks


@compiler
def test_compiled_and_eager_pruned_training_agree_with_several_steps_per_call(aot_eager_compile):
    """Masks applied inside the compiled step, two steps per call: our graph (dynamo and AOT
    autograd; Inductor's numerics are the reference PPO test's) equals eager training."""
    results = {}
    for compiled in (False, True):
        config = tiny_config(3, compile=compiled)
        trainer = PPO(config, hooks_for(config))
        if compiled:
            calls, original = [], trainer.functional_steps

            def counting(minibatches, *args, calls=calls, original=original):
                calls.append(len(minibatches))
                return original(minibatches, *args)

            trainer.functional_steps = counting
        trainer.learn()
        trainer.close()
        results[compiled] = {n: p.detach().clone() for n, p in trainer.policy.named_parameters()}
        if compiled:
            assert set(calls) == {2}  # prune_every 2: two steps per call, never across a prune step
    for name in results[False]:
        torch.testing.assert_close(results[True][name], results[False][name], rtol=1e-4, atol=1e-5)
        assert torch.equal(results[True][name] == 0, results[False][name] == 0) or "weight" not in name


def test_ste_passes_dense_gradients_to_pruned_weights():
    """One optimiser step (one minibatch, one epoch) equals Adam on the dense weights with the
    gradient taken at the masked weights; pruned weights stay zero in the policy but move in the
    dense shadow."""
    config = tiny_config(
        1, PruneConfig(strategy="magnitude-ste", sparsity=0.5, burn_in=0.0, end=0.0),
        num_minibatches=1, policy_epochs=1, value_epochs=1, normalize_advantages=False,
    )  # fmt: skip
    prune = PruneCallback(config.prune, seed=config.seed)
    trainer = PPO(config, PPOHooks(callbacks=[prune]))
    dense_before = {n: d.clone() for n, d in prune.dense.items()}
    for name, weight in prune.weights.items():
        assert torch.equal(weight.detach(), dense_before[name] * prune.masks[name])  # one-shot at bind
    batch, _ = trainer.collect_rollout()
    trainer._loss_callbacks = []  # set by update(); this run has no loss callbacks
    loss, _ = trainer.minibatch_loss(batch, True, True, 0.0)
    names = list(prune.weights)
    gradients = dict(zip(names, torch.autograd.grad(loss, [prune.weights[n] for n in names])))
    cfg = config.ppo
    trainer.update(batch, 0.0)
    for name in names:
        mask, grad = prune.masks[name], gradients[name]
        assert float(grad[mask == 0].abs().sum()) > 0  # pruned weights receive gradient
        # Adam's first step: lr * g / (|g| + eps) (bias corrections cancel)
        lr = cfg.policy_lr if name.startswith("actor.") else cfg.value_lr
        expected = dense_before[name] - lr * grad / (grad.abs() + cfg.adam_eps)
        torch.testing.assert_close(prune.dense[name], expected, rtol=1e-5, atol=1e-7)
        assert torch.all(prune.weights[name][mask == 0] == 0)
        assert torch.equal(prune.weights[name].detach(), prune.dense[name] * mask)


def test_ste_lets_pruned_weights_come_back():
    config = tiny_config(1, PruneConfig(strategy="magnitude-ste", sparsity=0.5, burn_in=0.0, end=0.0))
    prune = PruneCallback(config.prune)
    trainer = PPO(config, PPOHooks(callbacks=[prune]))
    name = "actor.2.weight"
    pruned = (prune.masks[name] == 0).nonzero()[0]
    with torch.no_grad():
        prune.dense[name][tuple(pruned)] = 100.0  # its dense magnitude overtakes every kept weight
    prune.on_step(trainer.clock())
    assert prune.masks[name][tuple(pruned)] == 1 and prune.weights[name][tuple(pruned)] == 100.0
    trainer.close()


def test_random_strategy_masks_nest_as_sparsity_grows():
    config = tiny_config(1, PruneConfig(strategy="random", sparsity=0.9, burn_in=0.0))
    prune = PruneCallback(config.prune, seed=1)
    trainer = PPO(config, PPOHooks(callbacks=[prune]))
    previous = {n: m.clone() for n, m in prune.masks.items()}
    for sparsity in (0.3, 0.5, 0.7, 0.9):
        prune.prune_to(sparsity)
        assert sparsity_of(prune.masks) == pytest.approx(sparsity, abs=1e-3)
        for name, mask in prune.masks.items():
            assert torch.all(mask <= previous[name])  # a weight once pruned stays pruned
        previous = {n: m.clone() for n, m in prune.masks.items()}
    trainer.close()


def test_training_logs_sparsity_and_bound_and_ends_at_the_target(tmp_path):
    config = tiny_config(4, PruneConfig(strategy="magnitude", sparsity=0.7, prune_every=3, burn_in=0.25))
    result = train(config, tmp_path / "run")
    import csv

    rows = list(csv.DictReader((tmp_path / "run" / "progress.csv").open()))
    sparsity = [float(r["sparsity"]) for r in rows]
    assert sparsity[0] == 0.0  # burn-in: the first quarter of the steps
    assert all(a <= b for a, b in zip(sparsity, sparsity[1:]))
    assert sparsity[-1] == pytest.approx(0.7, abs=1e-3)
    assert all(float(r["lipschitz"]) > 0 and float(r["certified_bound"]) > 0 for r in rows)
    _, meta, _ = latest_checkpoint(result.run_dir)
    state = meta["trainer"]["callbacks"]["prune"]
    assert set(state["layer_sparsity"]) == {"actor.0.weight", "actor.2.weight", "actor.4.weight",
                                            "critic.0.weight", "critic.2.weight", "critic.4.weight"}  # fmt: skip
    assert all(v == pytest.approx(0.7, abs=0.02) for v in state["layer_sparsity"].values())  # per-layer default


def test_resume_with_masks_equals_an_uninterrupted_run(tmp_path):
    config = tiny_config(4, PruneConfig(strategy="magnitude-ste", sparsity=0.6, prune_every=3, burn_in=0.25))
    train(config, tmp_path / "full")

    def interrupt_after_second(stats):
        if stats.iteration == 2:
            os.kill(os.getpid(), signal.SIGINT)

    part = train(config, tmp_path / "part", hooks=PPOHooks(on_iteration=[interrupt_after_second]))
    assert part.interrupted and part.iterations == 2
    train(resume=tmp_path / "part")  # the pruning callback comes back from config.json
    full, _, _ = latest_checkpoint(tmp_path / "full")
    resumed, _, _ = latest_checkpoint(tmp_path / "part")
    assert {"callback/prune/mask/actor_0_weight", "callback/prune/dense/actor_0_weight"} <= full.keys()
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


def test_pruning_composes_with_a_robust_method(tmp_path):
    config = dataclasses.replace(tiny_config(2), algo="bar-ppo")
    hooks = hooks_for(config)
    assert hooks.objective is not None and [c.name for c in hooks.callbacks] == ["prune"]
    result = train(config, tmp_path / "run")
    _, meta, _ = latest_checkpoint(result.run_dir)
    assert meta["trainer"]["callbacks"]["prune"]["measured_sparsity"] == pytest.approx(0.5, abs=1e-3)


def test_configs_without_the_prune_key_still_load():
    data = TrainConfig("Pendulum-v1").to_dict()
    del data["prune"]
    config = TrainConfig.from_dict(data)
    assert config.prune == PruneConfig() and config.prune.strategy == "none"
    assert hooks_for(config).callbacks == []
    with pytest.raises(InvalidArgumentError, match="unknown prune config keys"):
        TrainConfig.from_dict({**data, "prune": {"sparsty": 0.5}})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"strategy": "magnitude", "sparsity": 1.0}, r"sparsity must be in \[0, 1\)"),
        ({"strategy": "magnitude", "sparsity": -0.1}, r"sparsity must be in \[0, 1\)"),
        ({"strategy": "lottery"}, "unknown pruning strategy 'lottery'"),
        ({"strategy": "magnitude", "prune_every": 0}, "prune_every"),
        ({"strategy": "magnitude", "burn_in": 1.5}, "burn_in"),
        ({"strategy": "none", "sparsity": 0.5}, "needs a pruning strategy"),
        ({"strategy": "magnitude", "allocation": "uniform"}, "allocation"),
    ],
)
def test_prune_config_validation(changes, message):
    with pytest.raises(InvalidArgumentError, match=message):
        PruneConfig(**changes).validate()


# ---- the CLI ----------------------------------------------------------------------------------------------
def call(capsys, *args):
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(code, err):
    lines = [line for line in err.splitlines() if line.strip()]
    return code == 2 and len(lines) == 1 and lines[0].startswith("error:")


TINY_TRAIN = ["--env", "Pendulum-v1", "--steps", "512", "--set", "steps_per_iteration=256", "--no-progress"]


@pytest.mark.parametrize(
    "args",
    [
        ["--prune", "magnitude", "--sparsity", "1.0"],
        ["--prune", "magnitude", "--sparsity", "-0.2"],
        ["--prune", "lottery", "--sparsity", "0.5"],
        ["--prune", "magnitude", "--sparsity", "0.5", "--prune-every", "0"],
        ["--prune", "magnitude"],
        ["--sparsity", "0.5"],
    ],
)
def test_train_bad_pruning_input_is_one_error_line_and_writes_nothing(capsys, tmp_path, args):
    out = tmp_path / "run"
    code, _, err = call(capsys, "train", *TINY_TRAIN, *args, "--out", str(out))
    assert one_error_line(code, err), err
    assert not out.exists()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("prune-cli")
    config = TrainConfig("Pendulum-v1", total_steps=512, seed=0, ppo=tiny_ppo())
    return train(config, root / "source").run_dir


@pytest.mark.parametrize(
    "args",
    [
        ["--sparsity", "1"],
        ["--sparsity", "0.5", "--strategy", "lottery"],
        ["--sparsity", "0.5", "--prune-every", "0", "--finetune", "256"],
        ["--sparsity", "0.5", "--strategy", "saliency"],  # one-shot saliency needs gradients
        ["--sparsity", "0.5", "--finetune", "0"],
    ],
)
def test_prune_bad_input_is_one_error_line_and_writes_nothing(capsys, trained_run, args):
    before = sorted(p.name for p in trained_run.parent.iterdir())
    out = trained_run.parent / "pruned"
    code, _, err = call(capsys, "prune", str(trained_run), *args, "--out", str(out))
    assert one_error_line(code, err), err
    assert sorted(p.name for p in trained_run.parent.iterdir()) == before


def test_certify_on_a_directory_that_is_not_a_run(capsys, tmp_path):
    out = tmp_path / "certificate.json"
    code, _, err = call(capsys, "certify", str(tmp_path), "--json", str(out))
    assert one_error_line(code, err) and "not a robustrl run directory" in err
    assert not out.exists()


def test_one_shot_prune_writes_a_run_that_loads_and_leaves_the_source_alone(capsys, trained_run):
    source_files = {p: p.read_bytes() for p in sorted((trained_run / "checkpoints").iterdir())}
    out = trained_run.parent / "oneshot"
    code, _, err = call(
        capsys, "prune", str(trained_run), "--sparsity", "0.5", "--strategy", "magnitude", "--out", str(out)
    )
    assert code == 0, err
    assert {p: p.read_bytes() for p in sorted((trained_run / "checkpoints").iterdir())} == source_files
    source, _, _ = latest_checkpoint(trained_run)
    pruned, meta = load_checkpoint(list_checkpoints(out)[-1])
    for layer in ("actor.0.weight", "actor.2.weight", "critic.4.weight"):
        weight, original = pruned[f"policy/{layer}"], source[f"policy/{layer}"]
        assert float((weight == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
        kept = weight != 0
        assert torch.equal(weight[kept], original[kept])  # kept weights unchanged
        assert original[~kept].abs().max() <= original[kept].abs().min()  # the smallest were removed
    for name in ("actor.0.bias", "log_std"):
        assert torch.equal(pruned[f"policy/{name}"], source[f"policy/{name}"])
    from robustrl.policies.checkpoint import load_policy

    assert load_policy(out).actor[0].weight.shape == (64, 3)
    code, _, err = call(capsys, "certify", str(out), "--episodes", "1")
    assert code == 0, err


def test_one_shot_prune_with_finetune_keeps_the_masks_while_training(capsys, trained_run):
    out = trained_run.parent / "finetuned"
    code, _, err = call(
        capsys, "prune", str(trained_run), "--sparsity", "0.7", "--strategy", "saliency", "--finetune", "512",
        "--prune-every", "2", "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["prune"]["strategy"] == "saliency" and config["prune"]["initial_checkpoint"]
    first, _ = load_checkpoint(list_checkpoints(out)[0])
    source, _, _ = latest_checkpoint(trained_run)
    assert torch.equal(first["obs_normalizer/mean"], source["obs_normalizer/mean"])  # started from the source
    last, meta = load_checkpoint(list_checkpoints(out)[-1])
    assert meta["iteration"] == 2
    for layer in ("actor.0.weight", "actor.2.weight", "critic.2.weight"):
        mask = last[f"callback/prune/mask/{layer.replace('.', '_')}"]
        assert float((mask == 0).float().mean()) == pytest.approx(0.7, abs=0.02)
        assert torch.all(last[f"policy/{layer}"][mask == 0] == 0)
        assert not torch.equal(last[f"policy/{layer}"][mask == 1], source[f"policy/{layer}"][mask == 1])  # trained
