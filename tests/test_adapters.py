"""Foreign-policy adapters: SB3 zips rebuilt without unpickling must act exactly as SB3 does, and
every adapter must have the face rollouts and attacks use."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal

from robustrl.errors import CheckpointError, InvalidArgumentError, RunDirectoryError
from robustrl.evaluate.rollout import run_episodes
from robustrl.policies.adapters import (
    SB3Policy,
    TorchModulePolicy,
    load_model,
    load_sb3_zip,
)
from robustrl.policies.protocol import AttackablePolicy

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

ENV = "Pendulum-v1"
# Tiny runs: enough updates that the weights are not at their initial values.
TRAIN = {
    "ppo": (sb3.PPO, {"n_steps": 64, "batch_size": 32, "n_epochs": 1}, 128),
    "ppo_relu": (sb3.PPO, {"n_steps": 64, "batch_size": 32, "n_epochs": 1,
                           "policy_kwargs": {"activation_fn": nn.ReLU, "net_arch": {"pi": [32], "vf": [16, 16]}}}, 128),
    "sac": (sb3.SAC, {"learning_starts": 50, "buffer_size": 500, "batch_size": 32}, 100),
    "td3": (sb3.TD3, {"learning_starts": 50, "buffer_size": 500, "batch_size": 32,
                      "policy_kwargs": {"net_arch": [32, 24]}}, 100),
    "ppo_discrete": (sb3.PPO, {"n_steps": 64, "batch_size": 32, "n_epochs": 1}, 128),
}
ENVS = {"ppo_discrete": "CartPole-v1"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sb3")
    out = {}
    for name, (cls, kwargs, steps) in TRAIN.items():
        model = cls("MlpPolicy", ENVS.get(name, ENV), seed=0, device="cpu", **kwargs)
        model.learn(steps)
        model.save(root / f"{name}.zip")
        out[name] = (model, root / f"{name}.zip")
    venv = VecNormalize(make_vec_env(ENV, 1, seed=0))
    model = sb3.PPO("MlpPolicy", venv, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(128)
    model.save(root / "ppo_vn.zip")
    venv.save(root / "vec_normalize.pkl")
    out["ppo_vn"] = (model, root / "ppo_vn.zip", venv, root / "vec_normalize.pkl")
    return out


def _observations(n: int = 64, env_id: str = ENV) -> np.ndarray:
    space = gym.make(env_id).observation_space
    space.seed(1)
    return np.stack([space.sample() for _ in range(n)])


@pytest.mark.parametrize("name", ["ppo", "ppo_relu", "sac", "td3", "ppo_discrete"])
def test_sb3_deterministic_actions_match_predict(models, name):
    model, path = models[name]
    env_id = ENVS.get(name, ENV)
    policy = load_model(path, env_id)
    assert isinstance(policy, SB3Policy) and isinstance(policy, AttackablePolicy)
    assert policy.algorithm == name[:3].upper()
    assert policy.perturbation_space == "raw observations (SB3 model has no normaliser)"
    obs = _observations(64, env_id)
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(policy.act(obs, deterministic=True), expected, atol=1e-5)
    # mean_action is the same deterministic action, in env units (PPO: before clipping)
    mean = policy.mean_action(policy.normalize(obs)).detach().numpy()
    np.testing.assert_allclose(policy.to_env_action(mean) if name.startswith("ppo") else mean, expected, atol=1e-5)


@pytest.mark.parametrize("name", ["ppo", "sac", "td3"])
def test_sb3_value_and_distribution(models, name):
    model, path = models[name]
    policy = load_sb3_zip(path, ENV)
    obs = policy.normalize(_observations(16)).requires_grad_(True)
    values = policy.value(obs)
    assert values.shape == (16,)
    values.sum().backward()
    assert obs.grad is not None and obs.grad.abs().sum() > 0
    x = obs.detach()
    dist = policy.distribution(x)
    with torch.no_grad():
        if name == "ppo":
            reference = model.policy.get_distribution(x).distribution
            np.testing.assert_allclose(policy.value(x), model.policy.predict_values(x).squeeze(-1), atol=1e-5)
        elif name == "sac":
            mu, log_std, _ = model.actor.get_action_dist_params(x)
            reference = Normal(mu, log_std.exp())
        else:
            reference = Normal(model.actor(x), torch.ones(16, 1))
        if name != "ppo":  # min over critics of Q(obs, deterministic action in [-1, 1])
            q = torch.cat(model.critic(x, model.actor(x, deterministic=True) if name == "sac" else model.actor(x)), 1)
            np.testing.assert_allclose(policy.value(x), q.min(1).values, atol=1e-5)
    np.testing.assert_allclose(dist.mean.detach(), reference.mean, atol=1e-5)
    np.testing.assert_allclose(dist.stddev.detach(), reference.stddev, atol=1e-5)
    samples = torch.as_tensor(policy.sample(x, np.random.default_rng(0)))
    assert policy.log_prob(dist, samples).shape == (16,) and policy.entropy(dist).shape == (16,)


@pytest.mark.parametrize("name", ["ppo", "sac", "td3", "ppo_discrete"])
def test_sb3_run_episodes(models, name):
    env_id = ENVS.get(name, ENV)
    policy = load_sb3_zip(models[name][1], env_id)
    for deterministic in (True, False):
        results = run_episodes(policy, env_id, 2, deterministic=deterministic)
        assert results.returns.shape == (2,) and np.all(np.isfinite(results.returns))


def test_vecnormalize_stats(models, tmp_path):
    model, path, venv, pkl = models["ppo_vn"]
    obs = _observations()
    expected, _ = model.predict(venv.normalize_obs(obs), deterministic=True)

    with pytest.raises(CheckpointError, match="--trust-pickle"):
        load_sb3_zip(path, ENV, vecnormalize=pkl)
    policy = load_sb3_zip(path, ENV, vecnormalize=pkl, trust_pickle=True)
    assert policy.perturbation_space == "VecNormalize space of the SB3 model"
    np.testing.assert_allclose(policy.normalize(obs), venv.normalize_obs(obs), atol=1e-6)
    np.testing.assert_allclose(policy.act(obs), expected, atol=1e-5)

    npz = tmp_path / "stats.npz"
    np.savez(npz, obs_mean=venv.obs_rms.mean, obs_var=venv.obs_rms.var, clip_obs=venv.clip_obs)
    np.testing.assert_allclose(load_model(path, ENV, vecnormalize=npz).act(obs), expected, atol=1e-5)
    as_json = tmp_path / "stats.json"
    as_json.write_text(json.dumps({"obs_mean": venv.obs_rms.mean.tolist(), "obs_var": venv.obs_rms.var.tolist()}))
    np.testing.assert_allclose(load_sb3_zip(path, ENV, vecnormalize=as_json).act(obs), expected, atol=1e-5)

    bad = tmp_path / "bad.npz"
    np.savez(bad, obs_mean=np.zeros(5), obs_var=np.ones(5))
    with pytest.raises(CheckpointError, match="shape"):
        load_sb3_zip(path, ENV, vecnormalize=bad)


def test_bad_sb3_files(models, tmp_path):
    text = tmp_path / "notes.zip"
    text.write_text("not a model")
    with pytest.raises(CheckpointError, match="not a readable zip"):
        load_model(text, ENV)

    source = models["ppo"][1]
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}

    def write_zip(name, **replace):
        target = tmp_path / name
        with zipfile.ZipFile(target, "w") as archive:
            for member, data in {**members, **replace}.items():
                if data is not None:
                    archive.writestr(member, data)
        return target

    with pytest.raises(CheckpointError, match="no 'policy.pth' member"):
        load_sb3_zip(write_zip("no_policy.zip", **{"policy.pth": None}), ENV)
    with pytest.raises(CheckpointError, match="'policy.pth' is corrupt"):
        load_sb3_zip(write_zip("corrupt.zip", **{"policy.pth": b"\x00garbage"}), ENV)
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_sb3_zip(write_zip("bad_json.zip", data=b"{oops"), ENV)
    with pytest.raises(CheckpointError, match="not a Stable-Baselines3 model"):
        load_sb3_zip(write_zip("other.zip", data=b'{"hello": 1}'), ENV)
    buffer = io.BytesIO()
    torch.save({"encoder.weight": torch.zeros(2, 3)}, buffer)
    with pytest.raises(CheckpointError, match="unsupported algorithm or policy"):
        load_sb3_zip(write_zip("unknown.zip", **{"policy.pth": buffer.getvalue()}), ENV)
    data = json.loads(members["data"])
    data["action_space"]["high"] = "[3.]"
    with pytest.raises(CheckpointError, match="action high"):
        load_sb3_zip(write_zip("bounds.zip", data=json.dumps(data)), ENV)
    with zipfile.ZipFile(models["ppo_discrete"][1]) as archive:
        data["action_space"] = json.loads(archive.read("data"))["action_space"]
    with pytest.raises(CheckpointError, match="action space is .*Discrete.*has a Box"):
        load_sb3_zip(write_zip("discrete.zip", data=json.dumps(data)), ENV)
    # A Pendulum model (3 observations) loaded for MountainCarContinuous (2 observations).
    with pytest.raises(CheckpointError, match=r"observation shape \(3,\) does not match"):
        load_sb3_zip(source, "MountainCarContinuous-v0")
    with pytest.raises(InvalidArgumentError, match="environment id"):
        load_model(source)
    with pytest.raises(RunDirectoryError, match="does not exist"):  # not ours either: our loader's error
        load_model(tmp_path / "missing_run")


def test_torch_module_policy():
    torch.manual_seed(0)
    env = gym.make(ENV)
    linear = nn.Linear(3, 1)
    policy = TorchModulePolicy(linear, env.observation_space, env.action_space, env_id=ENV)
    assert isinstance(policy, AttackablePolicy)
    assert policy.perturbation_space == "raw observations (module has no normaliser)"
    obs = _observations(8)
    with torch.no_grad():
        raw_actions = linear(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(policy.act(obs), np.clip(raw_actions, -2, 2), atol=1e-6)
    np.testing.assert_allclose(policy.sample(policy.normalize(obs), np.random.default_rng(0)), raw_actions, atol=1e-6)
    dist = policy.distribution(policy.normalize(obs))
    np.testing.assert_allclose(dist.mean.detach(), raw_actions, atol=1e-6)
    np.testing.assert_allclose(dist.stddev.detach(), np.ones_like(raw_actions))
    with pytest.raises(InvalidArgumentError, match="critic attack needs one"):
        policy.value(policy.normalize(obs))
    assert run_episodes(policy, ENV, 2).returns.shape == (2,)

    critic = nn.Linear(3, 1)
    gaussian = TorchModulePolicy(linear, env.observation_space, env.action_space, output="mean", std=0.5,
                                 normalize=lambda x: x / 8.0, value=critic)
    x = gaussian.normalize(obs).requires_grad_(True)
    gaussian.value(x).sum().backward()
    assert gaussian.value(x).shape == (8,) and x.grad is not None
    assert gaussian.perturbation_space == "observations after the given normalize function"
    rng = np.random.default_rng(0)
    assert not np.allclose(gaussian.sample(x.detach(), rng), gaussian.sample(x.detach(), rng, deterministic=True))

    class DistModule(nn.Module):
        def forward(self, o):
            return Normal(linear(o), torch.full((o.shape[0], 1), 0.3))

    stochastic = TorchModulePolicy(DistModule(), env.observation_space, env.action_space, output="distribution")
    x = stochastic.normalize(obs)
    first = stochastic.sample(x, np.random.default_rng(3))
    np.testing.assert_array_equal(first, stochastic.sample(x, np.random.default_rng(3)))  # reproducible
    np.testing.assert_allclose(stochastic.mean_action(x).detach(), raw_actions, atol=1e-6)

    with pytest.raises(InvalidArgumentError, match="needs the Gaussian's std"):
        TorchModulePolicy(linear, env.observation_space, env.action_space, output="mean")
    with pytest.raises(InvalidArgumentError, match="output must be one of"):
        TorchModulePolicy(linear, env.observation_space, gym.spaces.Discrete(3), output="action")


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_load_model_torchscript(tmp_path):
    torch.manual_seed(0)
    linear = nn.Linear(3, 1)
    path = tmp_path / "policy.pt"
    torch.jit.save(torch.jit.script(linear), str(path))
    policy = load_model(path, ENV)
    assert isinstance(policy, TorchModulePolicy)
    obs = _observations(8)
    with torch.no_grad():
        np.testing.assert_allclose(policy.act(obs), np.clip(linear(torch.as_tensor(obs)).numpy(), -2, 2), atol=1e-6)
    with pytest.raises(InvalidArgumentError, match="environment id"):
        load_model(path)
    not_script = tmp_path / "weights.pt"
    torch.save(linear.state_dict(), not_script)
    with pytest.raises(CheckpointError, match="not a TorchScript file"):
        load_model(not_script, ENV)


def test_sb3_zip_loads_without_sb3_installed(models):
    """Evaluation needs no SB3: block its import in a fresh interpreter and load a model."""
    code = (
        "import sys; sys.modules['stable_baselines3'] = None\n"
        "import numpy as np\n"
        "from robustrl.policies.adapters import load_model\n"
        f"policy = load_model({str(models['sac'][1])!r}, 'Pendulum-v1')\n"
        "print(policy.act(np.zeros((1, 3), np.float32)).shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 1)"


# ---- gSDE (issue 18) -------------------------------------------------------------------------------
# (name, class, env, kwargs, steps): full_std with several actions (SAC on Reacher), full_std=False
# with expln (A2C on Reacher), squash_output (PPO), the defaults (PPO on Pendulum).
GSDE = {
    "ppo": (sb3.PPO, ENV, {"n_steps": 64, "batch_size": 32, "n_epochs": 1}, 64),
    "ppo_squash": (sb3.PPO, ENV, {"n_steps": 64, "batch_size": 32, "n_epochs": 1,
                                  "policy_kwargs": {"squash_output": True, "net_arch": [32]}}, 64),
    "a2c_expln": (sb3.A2C, "Reacher-v5", {"policy_kwargs": {"use_expln": True, "full_std": False, "net_arch": [32, 32]}}, 20),
    "sac": (sb3.SAC, "Reacher-v5", {"learning_starts": 20, "buffer_size": 200, "batch_size": 16,
                                   "policy_kwargs": {"net_arch": [32, 32]}}, 40),
}


@pytest.fixture(scope="module")
def gsde_models(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gsde")
    out = {}
    for name, (cls, env_id, kwargs, steps) in GSDE.items():
        model = cls("MlpPolicy", env_id, use_sde=True, seed=0, device="cpu", **kwargs)
        model.learn(steps)
        model.save(root / f"{name}.zip")
        out[name] = (model, root / f"{name}.zip", env_id)
    return out


def _sb3_distribution(model, x):
    """SB3's own Normal for a gSDE model (PPO/A2C: get_distribution; SAC: the actor's action_dist)."""
    if isinstance(model, sb3.SAC):
        mean, log_std, kwargs = model.actor.get_action_dist_params(x)
        return model.actor.action_dist.proba_distribution(mean, log_std, **kwargs).distribution
    return model.policy.get_distribution(x).distribution


@pytest.mark.parametrize("name", list(GSDE))
def test_sb3_gsde_matches_sb3(gsde_models, name):
    model, path, env_id = gsde_models[name]
    policy = load_model(path, env_id)
    assert policy.gsde is not None and policy.algorithm == name[:3].upper()
    obs = _observations(32, env_id)
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(policy.act(obs, deterministic=True), expected, atol=1e-5)
    x = policy.normalize(obs)
    with torch.no_grad():
        reference = _sb3_distribution(model, x)
        dist = policy.distribution(x)
    np.testing.assert_allclose(dist.mean, reference.mean, atol=1e-5)
    np.testing.assert_allclose(dist.stddev, reference.stddev, rtol=1e-5)
    assert dist.stddev.std(0).max() > 0  # the std depends on the state
    # stochastic actions follow the same per-state law: empirical std of 4000 draws at one state
    one = x[:1].expand(4000, -1)
    draws = policy.sample(one, np.random.default_rng(0))
    np.testing.assert_allclose(draws.std(0), dist.stddev[0].numpy(), rtol=0.08)
    # differentiable in the observation through the std too (what MAD and the learned attacks use)
    x_grad = x.clone().requires_grad_(True)
    policy.distribution(x_grad).stddev.sum().backward()
    assert x_grad.grad is not None and x_grad.grad.abs().sum() > 0


def test_sb3_gsde_is_attackable(gsde_models):
    from robustrl.evaluate.robustness import robustness_report

    _, path, env_id = gsde_models["ppo"]
    report = robustness_report(load_model(path, env_id), env_id, attacks=["random", "mad"], eps=0.2, episodes=2)
    assert set(report["results"]) == {"natural", "random", "mad"}
    assert all(np.isfinite(r["mean"]) for r in report["results"].values())


# ---- CleanRL (issue 18) -----------------------------------------------------------------------------
class CleanRLAgent(nn.Module):
    """CleanRL ppo_continuous_action.py's Agent, rebuilt from its published layer shapes: critic and
    actor_mean are Linear-Tanh-Linear-Tanh-Linear (64 wide by default), actor_logstd is (1, actions)."""

    def __init__(self, obs_dim, action_dim, hidden=(64, 64)):
        super().__init__()

        def mlp(out):
            sizes, layers = [obs_dim, *hidden], []
            for a, b in zip(sizes[:-1], sizes[1:]):
                layers += [nn.Linear(a, b), nn.Tanh()]
            return nn.Sequential(*layers, nn.Linear(sizes[-1], out))

        self.critic = mlp(1)
        self.actor_mean = mlp(action_dim)
        self.actor_logstd = nn.Parameter(torch.zeros(1, action_dim))

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x):
        mean = self.actor_mean(x)
        return Normal(mean, self.actor_logstd.expand_as(mean).exp())


@pytest.mark.parametrize("hidden", [(64, 64), (32, 16, 8)])
def test_cleanrl_agent(tmp_path, hidden):
    from robustrl.policies.cleanrl import CleanRLPolicy

    torch.manual_seed(0)
    env_id = "Reacher-v5"  # 10 observations, 2 actions in [-1, 1]
    agent = CleanRLAgent(10, 2, hidden)
    with torch.no_grad():
        agent.actor_logstd.copy_(torch.tensor([[-0.5, 0.3]]))
    path = tmp_path / "ppo_continuous_action.cleanrl_model"
    torch.save(agent.state_dict(), path)
    obs = _observations(32, env_id).astype(np.float32)

    policy = load_model(path, env_id)
    assert isinstance(policy, CleanRLPolicy) and isinstance(policy, AttackablePolicy)
    assert policy.perturbation_space == "raw observations (CleanRL saves no normaliser)"
    x = torch.as_tensor(obs)
    with torch.no_grad():
        reference = agent.get_action_and_value(x)
        np.testing.assert_allclose(policy.act(obs), np.clip(reference.mean.numpy(), -1, 1), atol=1e-6)
        np.testing.assert_allclose(policy.distribution(x).stddev, reference.stddev, atol=1e-6)
        np.testing.assert_allclose(policy.value(x), agent.get_value(x).squeeze(-1), atol=1e-6)

    # with the observation statistics CleanRL's NormalizeObservation kept (clip 10, epsilon 1e-8)
    mean, var = obs.mean(0), obs.var(0) + 0.5
    stats = tmp_path / "obs_stats.npz"
    np.savez(stats, obs_mean=mean, obs_var=var)
    normalised = load_model(path, env_id, obs_stats=stats)
    assert normalised.perturbation_space.startswith("normalised observations")
    z = np.clip((obs - mean) / np.sqrt(var + 1e-8), -10, 10).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(normalised.act(obs), np.clip(agent.actor_mean(torch.as_tensor(z)).numpy(), -1, 1), atol=1e-5)
    assert run_episodes(normalised, env_id, 2).returns.shape == (2,)


def test_cleanrl_bad_files(tmp_path):
    env_id = "Reacher-v5"
    agent = CleanRLAgent(10, 2)
    wrong_env = tmp_path / "hopper.cleanrl_model"  # actor outputs 2 actions, Hopper takes 3
    torch.save(agent.state_dict(), wrong_env)
    with pytest.raises(CheckpointError, match=r"expected input size 11|outputs 2 values"):
        load_model(wrong_env, "Hopper-v5")
    unknown = tmp_path / "other.cleanrl_model"
    torch.save({"encoder.weight": torch.zeros(4, 10), "head.weight": torch.zeros(2, 4)}, unknown)
    with pytest.raises(CheckpointError, match="not a CleanRL PPO Agent state dict"):
        load_model(unknown, env_id)
    extra = tmp_path / "extra.cleanrl_model"
    torch.save({**agent.state_dict(), "actor_mean.2.weight": torch.zeros(64, 32)}, extra)  # shapes do not chain
    with pytest.raises(CheckpointError, match=r"layer actor_mean.2 has weight shape \(64, 32\), expected input size 64"):
        load_model(extra, env_id)
    with pytest.raises(InvalidArgumentError, match="environment id"):
        load_model(unknown)
    with pytest.raises(InvalidArgumentError, match="--obs-stats"):
        load_model(unknown, env_id, vecnormalize=tmp_path / "x.npz")


# ---- RL Zoo folders (issue 18) ----------------------------------------------------------------------
def _zoo_yaml(path, pairs):
    """What the Zoo writes: yaml.dump of an OrderedDict (a !!python/object/apply tag)."""
    from collections import OrderedDict

    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.dump(OrderedDict(pairs)))


@pytest.fixture(scope="module")
def zoo_folder(models, tmp_path_factory):
    """logs/ppo/Pendulum-v0_1/ as the Zoo leaves it: trained on a version Gymnasium no longer has."""
    model, path, venv, pkl = models["ppo_vn"]
    folder = tmp_path_factory.mktemp("zoo") / "ppo" / "Pendulum-v0_1"
    (folder / "Pendulum-v0").mkdir(parents=True)
    (folder / "Pendulum-v0.zip").write_bytes(path.read_bytes())
    (folder / "best_model.zip").write_bytes(models["ppo"][1].read_bytes())  # another model: must not be chosen
    (folder / "Pendulum-v0" / "vecnormalize.pkl").write_bytes(pkl.read_bytes())
    _zoo_yaml(folder / "Pendulum-v0" / "config.yml", [("n_envs", 1), ("normalize", True), ("policy", "MlpPolicy")])
    _zoo_yaml(folder / "Pendulum-v0" / "args.yml", [("algo", "ppo"), ("env", "Pendulum-v0"), ("seed", 0)])
    return folder


def test_zoo_folder(models, zoo_folder, tmp_path):
    from robustrl.policies.zoo import find_zoo_model

    model, _, venv, _ = models["ppo_vn"]
    obs = _observations()
    expected, _ = model.predict(venv.normalize_obs(obs), deterministic=True)
    with pytest.raises(CheckpointError, match="--trust-pickle"):
        load_model(zoo_folder)
    with pytest.warns(UserWarning, match="trained on Pendulum-v0, which is not installed; running it on Pendulum-v1"):
        policy = load_model(zoo_folder, trust_pickle=True)
    assert policy.env_id == "Pendulum-v1" and policy.checkpoint.endswith("Pendulum-v0.zip")
    np.testing.assert_allclose(policy.act(obs), expected, atol=1e-5)

    # an export beside the pickle is read safely, without --trust-pickle
    export = tmp_path / "export"
    export.mkdir()
    for item in zoo_folder.rglob("*"):
        target = export / item.relative_to(zoo_folder)
        target.mkdir(exist_ok=True) if item.is_dir() else target.write_bytes(item.read_bytes())
    np.savez(export / "Pendulum-v0" / "vecnormalize.npz", obs_mean=venv.obs_rms.mean, obs_var=venv.obs_rms.var,
             clip_obs=venv.clip_obs, epsilon=venv.epsilon)
    found = find_zoo_model(export, "Pendulum-v1")  # --env given: no version notice
    assert found.vecnormalize.name == "vecnormalize.npz" and found.trained_env_id == "Pendulum-v0"
    assert found.algo == "ppo" and found.env_id == "Pendulum-v1"
    np.testing.assert_allclose(load_model(export, "Pendulum-v1").act(obs), expected, atol=1e-5)


def test_zoo_hub_layout_and_bad_folders(models, tmp_path):
    from robustrl.policies.zoo import find_zoo_model

    hub = tmp_path / "ppo-Pendulum-v1"  # a Hugging Face sb3/ppo-Pendulum-v1 download
    hub.mkdir()
    (hub / "ppo-Pendulum-v1.zip").write_bytes(models["ppo"][1].read_bytes())
    _zoo_yaml(hub / "config.yml", [("normalize", False)])
    found = find_zoo_model(hub)
    assert (found.model.name, found.env_id, found.algo, found.vecnormalize) == ("ppo-Pendulum-v1.zip", "Pendulum-v1", "ppo", None)
    np.testing.assert_allclose(load_model(hub).act(_observations(4)), models["ppo"][0].predict(_observations(4), deterministic=True)[0], atol=1e-5)

    empty = tmp_path / "ppo" / "Pendulum-v1_2"  # the Zoo's folder, but the model was never saved
    _zoo_yaml(empty / "Pendulum-v1" / "config.yml", [("normalize", False)])
    with pytest.raises(CheckpointError, match="holds no model"):
        load_model(empty)
    normalised = tmp_path / "Pendulum-v1_3"  # trained with VecNormalize, statistics missing
    normalised.mkdir()
    (normalised / "Pendulum-v1.zip").write_bytes(models["ppo"][1].read_bytes())
    _zoo_yaml(normalised / "Pendulum-v1" / "config.yml", [("normalize", "{'norm_obs': True}")])
    with pytest.raises(CheckpointError, match="no vecnormalize.pkl"):
        load_model(normalised)
    several = tmp_path / "mine"
    several.mkdir()
    for name in ("a.zip", "b.zip"):
        (several / name).write_bytes(models["ppo"][1].read_bytes())
    with pytest.raises(CheckpointError, match="several models"):
        load_model(several, "Pendulum-v1")


def test_cli_foreign_policies(models, zoo_folder, tmp_path, capsys):
    """The CLI on a Zoo folder (the version notice is one warning line) and bad foreign input (one
    error line, exit 2, nothing written)."""
    from robustrl.cli import main

    def call(*args):
        capsys.readouterr()
        code = main(list(args))
        return code, *capsys.readouterr()

    code, out, err = call("evaluate", str(zoo_folder), "--trust-pickle", "--episodes", "2", "--mode", "deterministic")
    assert code == 0, err
    assert "Pendulum-v1" in out
    assert [line for line in err.splitlines() if line.strip()] == [
        "warning: the model was trained on Pendulum-v0, which is not installed; running it on Pendulum-v1"]

    no_model = tmp_path / "ppo" / "Hopper-v3_1"
    _zoo_yaml(no_model / "Hopper-v3" / "config.yml", [("normalize", False)])
    unknown = tmp_path / "agent.cleanrl_model"
    torch.save({"encoder.weight": torch.zeros(4, 3)}, unknown)
    for args, message in [
        ([str(no_model)], "holds no model"),
        ([str(unknown), "--env", ENV], "not a CleanRL PPO Agent state dict"),
        ([str(unknown), "--env", ENV, "--vecnormalize", str(unknown)], "--obs-stats"),
    ]:
        before = sorted(tmp_path.rglob("*"))
        code, out, err = call("evaluate", *args, "--attacks", "random", "--episodes", "2")
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
        assert sorted(tmp_path.rglob("*")) == before
