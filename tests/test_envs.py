import numpy as np
import pytest
import torch

from robustrl.envs import ObservationNormalizer, RewardScaler, RunningMeanStd, make_env
from robustrl.envs.snapshot import restore_vector_env, snapshot_vector_env
from robustrl.errors import InvalidArgumentError, UnknownEnvError
from robustrl.evaluate import run_episodes
from robustrl.policies.actor_critic import ActorCritic


def test_unknown_env_id_names_it_and_suggests():
    with pytest.raises(UnknownEnvError, match="Hoper-v5.*Hopper-v5"):
        make_env("Hoper-v5")


def test_envpool_missing_task_is_a_clear_error():
    pytest.importorskip("envpool")
    with pytest.raises(UnknownEnvError, match="envpool has no task 'CartPole-v0'|envpool has no task"):
        make_env("NoSuchTask-v1", backend="envpool")


def test_bad_num_envs_and_backend():
    with pytest.raises(InvalidArgumentError):
        make_env("Pendulum-v1", num_envs=0)
    with pytest.raises(InvalidArgumentError, match="backend"):
        make_env("Pendulum-v1", backend="nope")


@pytest.mark.parametrize("backend", ["gymnasium", "envpool"])
def test_same_step_autoreset_reports_final_observation(backend):
    if backend == "envpool":
        pytest.importorskip("envpool")
    env = make_env("Hopper-v5", num_envs=2, seed=0, backend=backend)
    env.reset(seed=[0, 1])
    seen_done = False
    for _ in range(300):
        obs, _, term, trunc, info = env.step(np.ones((2, 3), dtype=np.float32))
        done = term | trunc
        if done.any():
            i = int(np.flatnonzero(done)[0])
            final = info["final_obs"][i]
            assert info["_final_obs"][i]
            assert final.shape == obs[i].shape
            assert not np.allclose(final, obs[i])  # obs[i] is already the next episode's first obs
            seen_done = True
            break
    env.close()
    assert seen_done


def test_running_mean_std_matches_numpy():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 4))
    stats = RunningMeanStd((4,), epsilon=0.0 + 1e-12)
    for chunk in np.array_split(data, 17):
        stats.update(chunk)
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats.var, data.var(0), rtol=1e-6)


def test_observation_normalizer_clips_and_can_be_disabled():
    norm = ObservationNormalizer((2,), clip=3.0)
    norm.update(np.array([[0.0, 0.0], [2.0, 2.0]]))
    out = norm(np.array([[100.0, -100.0]]))
    np.testing.assert_allclose(out, [[3.0, -3.0]])
    identity = ObservationNormalizer((2,), enabled=False)
    np.testing.assert_allclose(identity(np.array([[5.0, -7.0]])), [[5.0, -7.0]])


def test_reward_scaler_divides_by_return_std_and_resets_on_done():
    scaler = RewardScaler(num_envs=1, gamma=0.9, clip=10.0)
    for _ in range(50):
        scaled = scaler(np.array([1.0]), np.array([False]))
    expected = 1.0 / np.sqrt(scaler.stats.var + 1e-8)
    np.testing.assert_allclose(scaled, expected)
    scaler(np.array([1.0]), np.array([True]))
    assert scaler.returns[0] == 0.0


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Pendulum-v1"])
def test_snapshot_restores_exact_future(env_id):
    env_a = make_env(env_id, num_envs=2, seed=3)
    env_a.reset(seed=[3, 4])
    rng = np.random.default_rng(0)
    shape = (2, *env_a.single_action_space.shape)
    for _ in range(25):
        env_a.step(rng.uniform(-1, 1, shape).astype(np.float32))
    snapshot = snapshot_vector_env(env_a)
    actions = [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(200)]
    future_a = [env_a.step(a)[:4] for a in actions]
    env_b = make_env(env_id, num_envs=2, seed=99)
    env_b.reset(seed=[99, 100])
    restore_vector_env(env_b, snapshot)
    future_b = [env_b.step(a)[:4] for a in actions]
    for step_a, step_b in zip(future_a, future_b):
        for x, y in zip(step_a, step_b):
            np.testing.assert_array_equal(x, y)
    env_a.close()
    env_b.close()


def test_envpool_and_gymnasium_agree_on_a_fixed_policy():
    """Same task, same fixed policy: return statistics agree across backends."""
    pytest.importorskip("envpool")
    probe = make_env("Hopper-v5")
    torch.manual_seed(0)
    policy = ActorCritic(probe.single_observation_space, probe.single_action_space)
    probe.close()
    with torch.no_grad():  # a fixed, non-trivial deterministic controller
        policy.actor[-1].weight.mul_(50.0)
    stats = {}
    for backend in ("gymnasium", "envpool"):
        result = run_episodes(policy, "Hopper-v5", episodes=40, seed=0, backend=backend)
        stats[backend] = (result.returns.mean(), result.returns.std(), result.lengths.mean())
    (mean_g, std_g, len_g), (mean_e, std_e, len_e) = stats["gymnasium"], stats["envpool"]
    # Reset noise differs between the backends' RNGs, so compare within a few standard errors.
    tolerance = 4 * np.sqrt((std_g**2 + std_e**2) / 40) + 1e-6
    assert abs(mean_g - mean_e) <= tolerance, stats
    assert abs(len_g - len_e) <= 0.25 * len_g + 2, stats


def test_mujoco_warnings_go_through_python_warnings_not_stdout(capfd):
    """Gymnasium's half_cheetah.xml uses MuJoCo's deprecated `settotalmass`: MuJoCo printed that
    to stdout at every model compile (some 500 lines a session in a HalfCheetah study). It now
    arrives as a MujocoWarning, which Python shows once and a filter can silence."""
    import warnings

    from robustrl.envs.make import MujocoWarning

    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_env("HalfCheetah-v5", 2, seed=0).close()
    out, _ = capfd.readouterr()
    assert "settotalmass" not in out
    assert caught and all(w.category is MujocoWarning and "settotalmass" in str(w.message) for w in caught)
