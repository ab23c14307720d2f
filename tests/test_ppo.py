import os
import signal

import numpy as np
import pytest
import torch

from robustrl import TrainConfig, load_policy, ppo_defaults_for, train
from robustrl.algos.ppo import PPO, Batch, PPOHooks, compute_gae, hooks_for
from robustrl.config import PPOConfig
from robustrl.errors import InvalidArgumentError, NonFiniteObservationError, RunDirectoryError
from robustrl.experiments.run import list_checkpoints
from robustrl.policies.checkpoint import load_checkpoint

SMALL = dict(steps_per_iteration=512, num_minibatches=8, policy_epochs=3, value_epochs=3)


def small_config(env_id="Pendulum-v1", iterations=3, seed=0, num_envs=1, **ppo):
    cfg = ppo_defaults_for(env_id, **{**SMALL, **ppo})
    return TrainConfig(env_id, total_steps=cfg.steps_per_iteration * iterations, seed=seed, num_envs=num_envs, ppo=cfg)


def test_gae_matches_direct_sum():
    rng = np.random.default_rng(0)
    T, E, gamma, lam = 12, 3, 0.97, 0.9
    rewards, values = rng.normal(size=(T, E)), rng.normal(size=(T, E))
    dones = rng.random((T, E)) < 0.2
    next_values = np.concatenate([values[1:], rng.normal(size=(1, E))])
    next_values[dones] = 0.0
    adv, returns = compute_gae(rewards, values, next_values, dones.astype(float), gamma, lam)
    deltas = rewards + gamma * next_values - values
    for e in range(E):
        for t in range(T):
            expected, factor = 0.0, 1.0
            for k in range(t, T):
                expected += factor * deltas[k, e]
                if dones[k, e]:
                    break
                factor *= gamma * lam
            assert adv[t, e] == pytest.approx(expected, abs=1e-10)
    np.testing.assert_allclose(returns, adv + values)


def test_ppo_learns_inverted_pendulum():
    config = TrainConfig("InvertedPendulum-v5", total_steps=2048 * 12, seed=0, ppo=ppo_defaults_for("InvertedPendulum-v5"))
    trainer = PPO(config)
    first = trainer.train_iteration()
    last = first
    while not trainer.done:
        last = trainer.train_iteration()
    trainer.close()
    first_mean, last_mean = np.mean(first.episode_returns), np.mean(last.episode_returns)
    # A random policy balances ~8 steps; after 12 iterations PPO should be far beyond that.
    assert first_mean < 15
    assert last_mean > 5 * first_mean and last_mean > 60, (first_mean, last_mean)


def _final_state(run_dir):
    return load_checkpoint(list_checkpoints(run_dir)[-1])


def _assert_same_state(a, b):
    (tensors_a, meta_a), (tensors_b, meta_b) = a, b
    assert tensors_a.keys() == tensors_b.keys()
    for key in tensors_a:
        assert torch.equal(tensors_a[key], tensors_b[key]), key
    for key in ("rng", "obs", "episode_return", "recent_returns", "env_snapshot", "global_step", "iteration"):
        assert meta_a["trainer"][key] == meta_b["trainer"][key], key


def test_same_seed_same_run_and_other_seed_differs(tmp_path):
    runs = [train(small_config(seed=s), tmp_path / f"run{i}", progress=False) for i, s in enumerate((5, 5, 6))]
    state = [_final_state(r.run_dir) for r in runs]
    _assert_same_state(state[0], state[1])
    assert not torch.equal(state[0][0]["policy/actor.0.weight"], state[2][0]["policy/actor.0.weight"])


def test_deterministic_evaluation_is_logged_and_does_not_change_training(tmp_path):
    """ppo.eval_every: progress.csv gains eval_return (the mean action's return) at every
    eval_every-th iteration and the last, blank on the others; the run trains exactly as without
    it (same final state), and keeps its study run name."""
    import csv

    from robustrl.experiments.spec import config_hash

    plain = train(small_config(iterations=5), tmp_path / "plain", progress=False)
    watched_config = small_config(iterations=5, eval_every=2, eval_episodes=2)
    shown = []  # a progress display gets the latest evaluation from its iteration on
    watched = train(watched_config, tmp_path / "watched", progress=lambda task, done, total, **f: shown.append(f.get("eval_return")))
    _assert_same_state(_final_state(plain.run_dir), _final_state(watched.run_dir))
    rows = list(csv.DictReader(open(tmp_path / "watched" / "progress.csv")))
    evaluated = [r["iteration"] for r in rows if r.get("eval_return")]
    assert evaluated == ["2", "4", "5"]
    assert shown[:2] == [None, None] and shown[2] == float(rows[1]["eval_return"]) == shown[3]  # start, it 1, it 2, it 3
    assert all(-2000 < float(r["eval_return"]) < 0 for r in rows if r.get("eval_return"))  # Pendulum's range
    assert "eval_return" not in open(tmp_path / "plain" / "progress.csv").readline()
    assert config_hash(watched_config) == config_hash(small_config(iterations=5))
    with pytest.raises(InvalidArgumentError, match="ppo.eval_every must be >= 0"):
        small_config(eval_every=-1).validate()
    from robustrl.envs.make import make_env

    built = make_env("Pendulum-v1", 1, 0)  # e.g. a learned attack's adversary MDP: nothing to evaluate on
    with pytest.raises(InvalidArgumentError, match="eval_every needs envs of its own"):
        PPO(small_config(eval_every=1), env=built)
    built.close()


@pytest.mark.parametrize("env_id,num_envs", [("Hopper-v5", 1), ("Pendulum-v1", 2)])
def test_resume_equals_uninterrupted(tmp_path, env_id, num_envs):
    config = small_config(env_id, iterations=4, num_envs=num_envs)
    full = train(config, tmp_path / "full", progress=False)
    assert not full.interrupted

    def interrupt_after_second(stats):  # a real Ctrl-C, delivered mid-run
        if stats.iteration == 2:
            os.kill(os.getpid(), signal.SIGINT)

    part = train(config, tmp_path / "part", hooks=PPOHooks(on_iteration=[interrupt_after_second]), progress=False)
    assert part.interrupted and part.iterations == 2
    resumed = train(resume=tmp_path / "part", progress=False)
    assert resumed.envs_restored and resumed.iterations == 4 and not resumed.interrupted
    _assert_same_state(_final_state(full.run_dir), _final_state(resumed.run_dir))
    rows = (tmp_path / "part" / "progress.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]


def test_a_start_killed_before_its_config_is_written_starts_again(tmp_path):
    """A kill between the checkpoints/ directory and config.json (seen in studies) leaves a
    directory that is not a run; starting the run there again works, while a directory holding
    anything else is still refused."""
    config = small_config(iterations=1)
    unstarted = tmp_path / "unstarted"
    (unstarted / "checkpoints").mkdir(parents=True)
    (unstarted / "config.json.tmp").write_text("{")
    assert train(config, unstarted, progress=False).iterations == 1
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="not empty"):
        train(config, other, progress=False)
    assert (other / "notes.txt").read_text() == "mine"


def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_beginning(tmp_path):
    """A kill between config.json and the initial checkpoint (seen in studies: a pool worker
    killed just after starting a run) leaves a run directory with nothing to load; resuming it
    trains from the beginning and ends as an uninterrupted run, each iteration logged once."""
    import shutil

    config = small_config(iterations=2)
    full = train(config, tmp_path / "full", progress=False)
    killed = tmp_path / "killed"
    train(config, killed, progress=False)
    shutil.rmtree(killed / "checkpoints")
    (killed / "checkpoints").mkdir()
    (killed / "progress.csv").write_text("iteration,global_step\n1,512\n")  # a row logged before the kill
    with pytest.warns(UserWarning, match="no checkpoint yet"):
        resumed = train(resume=killed, progress=False)
    assert resumed.iterations == 2 and not resumed.interrupted
    _assert_same_state(_final_state(full.run_dir), _final_state(killed))
    rows = (killed / "progress.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


def test_run_directory_contents(tmp_path):
    result = train(small_config(iterations=2), tmp_path / "run", progress=False)
    names = {p.name for p in result.run_dir.iterdir()}
    assert {"config.json", "versions.json", "progress.csv", "tensorboard", "checkpoints"} <= names
    assert any((result.run_dir / "tensorboard").iterdir())
    policy = load_policy(result.run_dir)
    assert policy.env_id == "Pendulum-v1"
    assert TrainConfig.from_json((result.run_dir / "config.json").read_text()) == small_config(iterations=2)


def test_config_validation():
    with pytest.raises(InvalidArgumentError, match="num_envs"):
        TrainConfig("Hopper-v5", num_envs=3).validate()  # does not divide 2048
    with pytest.raises(InvalidArgumentError, match="gamma"):
        TrainConfig("Hopper-v5", ppo=PPOConfig(gamma=1.5)).validate()
    with pytest.raises(InvalidArgumentError, match="total steps"):
        TrainConfig("Hopper-v5", total_steps=-1).validate()


def test_reference_defaults_per_env():
    assert ppo_defaults_for("Walker2d-v5").policy_lr == 4e-4
    assert ppo_defaults_for("HalfCheetah-v5").initial_std == 0.5
    assert ppo_defaults_for("Ant-v5").value_lr == 1e-5
    cfg = PPOConfig()
    assert (cfg.steps_per_iteration, cfg.num_minibatches, cfg.policy_epochs, cfg.clip_eps) == (2048, 32, 10, 0.2)


class _ConstantTerm:
    """An objective whose term is a fixed multiple of the mean log-std: its gradient is known."""

    def __init__(self, kappa, guidance):
        self.kappa, self.guidance, self.prepared = kappa, guidance, 0

    def prepare(self, batch, policy, eps):
        self.prepared += 1

    def loss(self, minibatch: Batch, policy, eps):
        return policy.log_std.sum() * 0.0 + eps * policy.log_std.mean(), {"seen_eps": eps}


def test_objective_hook_kappa_zero_equals_ppo_and_eps_schedule_flows():
    config = small_config(iterations=2)
    plain = PPO(config)
    plain.learn()
    objective = _ConstantTerm(kappa=0.0, guidance=True)
    seen = []
    hooked = PPO(config, PPOHooks(objective=objective, eps_schedule=lambda i, n: 0.1 * (i + 1), on_iteration=[seen.append]))
    hooked.learn()
    for (name, a), b in zip(plain.policy.state_dict().items(), hooked.policy.state_dict().values()):
        assert torch.equal(a, b), name
    assert objective.prepared == 2
    assert [round(s.metrics["seen_eps"], 6) for s in seen] == [0.1, 0.2]


def test_after_optimizer_step_hook_is_called_every_step():
    calls = []
    config = small_config(iterations=1)
    trainer = PPO(config, PPOHooks(after_optimizer_step=lambda policy: calls.append(1)))
    trainer.learn()
    assert len(calls) == max(config.ppo.policy_epochs, config.ppo.value_epochs) * config.ppo.num_minibatches


def test_non_finite_observation_is_reported():
    trainer = PPO(small_config(iterations=1))
    original_step = trainer.env.step

    def nan_step(actions):
        obs, *rest = original_step(actions)
        return np.full_like(obs, np.nan), *rest

    trainer.env.step = nan_step
    with pytest.raises(NonFiniteObservationError, match="non-finite observation"):
        trainer.train_iteration()


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_fast_log_prob_and_entropy_match_torch_distributions(env_id):
    """The update's closed-form Gaussian log-likelihood and entropy equal torch.distributions',
    values and gradients (categorical policies go through torch.distributions directly)."""
    import gymnasium as gym

    from robustrl.policies.actor_critic import ActorCritic

    env = gym.make(env_id)
    policy = ActorCritic(env.observation_space, env.action_space, initial_std=0.7)
    obs = torch.randn(32, policy.obs_dim)
    if policy.continuous:
        with torch.no_grad():
            policy.log_std.add_(torch.linspace(-0.3, 0.3, policy.action_dim))
        actions = torch.randn(32, policy.action_dim)
    else:
        actions = torch.randint(0, policy.action_dim, (32,)).float()
    fast_lp, fast_ent = policy.log_prob_and_entropy(obs, actions)
    grads_fast = torch.autograd.grad(fast_lp.sum() + fast_ent, list(policy.parameters()), allow_unused=True)
    dist = policy.distribution(obs)
    slow_lp, slow_ent = policy.log_prob(dist, actions), policy.entropy(dist).mean()
    grads_slow = torch.autograd.grad(slow_lp.sum() + slow_ent, list(policy.parameters()), allow_unused=True)
    torch.testing.assert_close(fast_lp, slow_lp)
    torch.testing.assert_close(fast_ent, slow_ent)
    for fast, slow in zip(grads_fast, grads_slow):
        if slow is None:
            assert fast is None or not fast.any()
        else:
            torch.testing.assert_close(fast, slow)


def test_clip_grad_norm_matches_torch():
    from robustrl.algos.ppo import clip_grad_norm

    for scale in (0.01, 100.0):
        params = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(7))]
        reference = [torch.nn.Parameter(p.detach().clone()) for p in params]
        for p, q in zip(params, reference):
            p.grad = scale * torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape)
            q.grad = p.grad.clone()
        clip_grad_norm(params, 0.5)
        torch.nn.utils.clip_grad_norm_(reference, 0.5)
        for p, q in zip(params, reference):
            torch.testing.assert_close(p.grad, q.grad)


@pytest.mark.skipif(__import__("shutil").which("c++") is None, reason="torch.compile needs a C++ compiler")
@pytest.mark.parametrize(
    "settings",
    [{}, {"policy_epochs": 2, "value_epochs": 3, "max_grad_norm": None}, {"policy_epochs": 3, "value_epochs": 1}],
    ids=["reference", "more-value-epochs-no-clip", "more-policy-epochs"],
)
def test_compiled_update_equals_eager_update(settings, request):
    """ppo.compile=True (one compiled functional step: torch.func gradients, clipping, functional
    Adam) is a speed switch: the same run up to float rounding, the same Adam state (so checkpoints
    of either mode resume in the other), also when one network trains for more epochs than the
    other (the idle network must not take Adam steps on zero gradients). The reference settings
    compile with Inductor; the variants check our graph through dynamo and AOT autograd only."""
    if settings:
        request.getfixturevalue("aot_eager_compile")
    else:  # the users' steps per call (the other tests compile 2: tests/conftest.py)
        request.getfixturevalue("users_steps_per_compiled_call")
    params, optimizer_states = [], []
    for compile_step in (False, True):
        trainer = PPO(small_config("Pendulum-v1", iterations=2, compile=compile_step, **settings))
        trainer.learn()
        params.append(torch.cat([p.detach().flatten() for p in trainer.policy.parameters()]))
        optimizer_states.append(trainer.optimizer.state_dict()["state"])
        trainer.close()
    assert not torch.equal(params[0], torch.cat([p.detach().flatten() for p in PPO(small_config()).policy.parameters()]))
    torch.testing.assert_close(params[1], params[0], rtol=1e-4, atol=1e-5)
    assert optimizer_states[0].keys() == optimizer_states[1].keys()
    for index, eager in optimizer_states[0].items():
        compiled = optimizer_states[1][index]
        assert float(compiled["step"]) == float(eager["step"])  # idle epochs took no step
        torch.testing.assert_close(compiled["exp_avg"], eager["exp_avg"], rtol=1e-3, atol=1e-6)
        torch.testing.assert_close(compiled["exp_avg_sq"], eager["exp_avg_sq"], rtol=1e-3, atol=1e-9)


# the robust steps compiled with Inductor, as users run them, in the test below; the others trace
# the same way through dynamo and AOT autograd (the aot_eager_compile fixture)
INDUCTOR_ROBUST_CASES = {("bar-ppo", None, None), ("sa-ppo", None, None)}


@pytest.mark.skipif(__import__("shutil").which("c++") is None, reason="torch.compile needs a C++ compiler")
@pytest.mark.parametrize(
    "algo,inner_solve,solver",
    [("bar-ppo", None, None), ("ar-ppo", None, None), ("minimax-kl", None, None), ("sa-ppo", None, None),
     ("bar-ppo", "minibatch", None), ("ar-ppo", "minibatch", None), ("radial-ppo", None, None), ("sa-ppo", None, "ibp"),
     ("wocar-ppo", None, None)],
)  # fmt: skip
def test_compiled_robust_update_equals_eager(algo, inner_solve, solver, request):
    """AR-PPO, BAR-PPO and minimax-KL solve their inner problem once per iteration, so their
    minibatch term is pure and ppo.compile traces it too; SA-PPO solves it inside the compiled
    step (SGLD, its random draws made before the call) and BAR-PPO with inner_solve=minibatch
    before each compiled step, with that step's parameters: the same update as eager up to float
    rounding. (One iteration: from the second on, the sign steps
    of the inner solvers turn rounding differences of the parameters into different inner
    solutions, so runs drift apart as any two float orders would.)"""
    from robustrl.algos import robust_config_for
    from robustrl.algos.objectives import OBJECTIVES

    if (algo, inner_solve, solver) not in INDUCTOR_ROBUST_CASES:
        request.getfixturevalue("aot_eager_compile")  # our graph, without Inductor's C++ compile
    params, critics = [], []
    for compile_step in (False, True):
        config = small_config("Pendulum-v1", iterations=1, compile=compile_step)
        config = TrainConfig(
            config.env_id, algo=algo, total_steps=config.total_steps, ppo=config.ppo,
            robust=robust_config_for(algo, {"eps": 0.2, **({"kappa": 1.0} if algo != "radial-ppo" else {}),
                                            **({"inner_solve": inner_solve} if inner_solve else {}),
                                            **({"solver": solver} if solver else {}),
                                            # SGLD in the graph is unrolled step by step: 3 steps
                                            # check it as 10 would, at a third of the compile time
                                            **({"inner_steps": 3} if algo in ("sa-ppo", "wocar-ppo") else {})}),
        )
        objective = OBJECTIVES[algo](config)
        assert objective.compilable
        trainer = PPO(config, hooks=PPOHooks(objective=objective, eps_schedule=lambda i, n: 0.2))
        # SA-PPO's SGLD runs inside the compiled step (its draws made before each call)
        assert getattr(objective, "solves_in_graph", lambda p: False)(trainer.policy) == (algo in ("sa-ppo", "wocar-ppo") and solver is None)
        trainer.learn()
        params.append(torch.cat([p.detach().flatten() for p in trainer.policy.parameters()]))
        if algo == "wocar-ppo":  # its worst-case critic's regression steps are compiled too
            critics.append(torch.cat([p.detach().flatten() for p in [*objective.q_network.parameters(),
                                                                     *objective.target_network.parameters()]]))  # fmt: skip
        trainer.close()
    # IBP's interval bounds pass rounding through every layer's |W|: measured on this VM (session
    # 10, the same at the session's first commit) one weight of 8963 off by 3.0e-5 on a value near 0
    torch.testing.assert_close(params[1], params[0], rtol=1e-4, atol=5e-5 if solver == "ibp" else 1e-5)
    if critics:
        assert objective._critic_step is not None
        torch.testing.assert_close(critics[1], critics[0], rtol=1e-4, atol=1e-5)
    # plain PPO, eager: it equals the compiled PPO step to float rounding (test_compiled_update_equals_
    # eager_update), far below the margins here, and skips a 15-20 s compile per case
    plain = PPO(small_config("Pendulum-v1", iterations=1, compile=False))
    plain.learn()
    plain_params = torch.cat([p.detach().flatten() for p in plain.policy.parameters()])
    # the robust term is in the compiled step (the KL regularisers move the near-zero initial
    # output layer little in one small iteration, but far beyond float rounding, ~1e-7)
    assert (plain_params - params[1]).abs().max() > (1e-3 if algo in ("bar-ppo", "ar-ppo") else 5e-6)


@pytest.mark.skipif(__import__("shutil").which("c++") is None, reason="torch.compile needs a C++ compiler")
def test_compiled_update_calls_the_step_hook_after_every_step():
    """The compiled update runs several minibatch steps per call, except when an after-step hook
    (pruning re-applies its masks there) must see each one: then one step per call."""
    seen = []
    trainer = PPO(small_config("Pendulum-v1", iterations=1, compile=True))
    trainer.hooks.after_optimizer_step = lambda policy: seen.append(int(trainer.optimizer.state[trainer.policy.log_std]["step"]))
    trainer.learn()
    cfg = trainer.config.ppo
    assert seen == list(range(1, cfg.policy_epochs * cfg.num_minibatches + 1))


def test_non_boolean_switch_is_rejected():
    with pytest.raises(InvalidArgumentError, match="ppo.compile must be true or false"):
        ppo_defaults_for("Pendulum-v1", compile="yes").validate()


@pytest.mark.parametrize("algo", ["wocar-ppo", "bar-ppo"])
def test_robust_resume_equals_uninterrupted(tmp_path, algo):
    """Robust runs resume exactly too: WocaR's worst-attack critic, target and optimiser travel in
    the checkpoint; BAR-PPO's solver noise is reseeded from the batch."""
    import dataclasses

    from robustrl.config import RobustConfig

    config = dataclasses.replace(small_config("Pendulum-v1", iterations=4), algo=algo, robust=RobustConfig(eps=0.1))
    full = train(config, tmp_path / "full", progress=False)

    def interrupt_after_second(stats):
        if stats.iteration == 2:
            os.kill(os.getpid(), signal.SIGINT)

    part = train(config, tmp_path / "part", hooks=PPOHooks(on_iteration=[interrupt_after_second]), progress=False)
    assert part.interrupted and part.iterations == 2
    if algo == "wocar-ppo":
        tensors, _ = load_checkpoint(list_checkpoints(tmp_path / "part")[-1])
        assert any(key.startswith("objective/q/") for key in tensors)
    resumed = train(resume=tmp_path / "part", progress=False)
    assert resumed.iterations == 4
    _assert_same_state(_final_state(full.run_dir), _final_state(resumed.run_dir))


@pytest.mark.skipif(__import__("shutil").which("c++") is None, reason="torch.compile needs a C++ compiler")
def test_fixed_std_stays_at_its_initial_value_eager_and_compiled(tmp_path, aot_eager_compile):
    """ppo.learn_std=False (the pruning paper's fixed std 0.1): the log-std is never optimised,
    eager or compiled (our graph through dynamo and AOT autograd: which parameters the functional
    step updates is decided there, not by Inductor), the other weights train, and a resumed run
    keeps it fixed too."""
    for compile_step in (False, True):
        trainer = PPO(small_config("Pendulum-v1", iterations=2, compile=compile_step, initial_std=0.1, learn_std=False))
        actor_before = trainer.policy.actor[0].weight.detach().clone()
        trainer.learn()
        torch.testing.assert_close(trainer.policy.log_std.detach(), torch.full((1,), float(np.log(0.1))), rtol=0, atol=0)
        assert not torch.equal(trainer.policy.actor[0].weight.detach(), actor_before)
        trainer.close()
    learned = PPO(small_config("Pendulum-v1", iterations=2, initial_std=0.1))
    learned.learn()
    assert not torch.equal(learned.policy.log_std.detach(), torch.full((1,), float(np.log(0.1))))
    learned.close()
    config = small_config("Pendulum-v1", iterations=2, initial_std=0.1, learn_std=False)

    def interrupt_after_first(stats):
        if stats.iteration == 1:
            os.kill(os.getpid(), signal.SIGINT)

    part = train(config, tmp_path / "run", hooks=PPOHooks(on_iteration=[interrupt_after_first]), progress=False)
    assert part.interrupted
    assert train(resume=tmp_path / "run", progress=False).iterations == 2
    policy = load_policy(tmp_path / "run")
    torch.testing.assert_close(policy.log_std.detach(), torch.full((1,), float(np.log(0.1))), rtol=0, atol=0)


@pytest.mark.skipif(__import__("shutil").which("c++") is None, reason="torch.compile needs a C++ compiler")
@pytest.mark.parametrize("case", ["ppo-more-value-epochs", "pruned-with-burn-in", "bar-ppo-eps-ramp"])
def test_skipping_guards_of_repeated_compiled_calls_changes_nothing(case, aot_eager_compile):
    """ppo.skip_guards runs the repeated calls of the compiled step without dynamo's guard checks
    (GuardSkipper; guards are dynamo's, so the aot_eager backend checks them as Inductor would,
    without its C++ compile): bit-identical to checking every call, over iterations that anneal the rate,
    switch between policy-and-value and value-only epochs, ramp eps, and grow pruning masks
    mid-update (burn-in) and change them every eight steps (every second call). (WocaR's critic
    steps skip them too: test_compiled_robust_update_equals_eager covers them, 320 calls.)"""
    import dataclasses

    from robustrl.algos import robust_config_for
    from robustrl.config import PruneConfig

    params, skipped = {}, {}
    for skip in (False, True):
        config = small_config("Pendulum-v1", iterations=3, compile=True, skip_guards=skip,
                              **({"policy_epochs": 2, "value_epochs": 3} if case == "ppo-more-value-epochs" else {}))  # fmt: skip
        if case == "pruned-with-burn-in":
            config = dataclasses.replace(
                config, prune=PruneConfig(strategy="magnitude", sparsity=0.5, prune_every=8, burn_in=0.4)
            )
        if case == "bar-ppo-eps-ramp":
            config = dataclasses.replace(config, algo="bar-ppo", robust=robust_config_for("bar-ppo", {"eps": 0.2, "kappa": 1.0}))
        trainer = PPO(config, hooks_for(config))
        trainer.learn()
        params[skip] = [p.detach().clone() for p in trainer.policy.parameters()]
        skipped[skip] = trainer._guards.skipped
        trainer.close()
    assert skipped[False] == 0 and skipped[True] > 0
    for with_guards, without in zip(params[False], params[True]):
        assert torch.equal(with_guards, without)
    if case == "pruned-with-burn-in":
        assert any(float((p == 0).float().mean()) > 0.4 for p in params[True] if p.ndim == 2)
