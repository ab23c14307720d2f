import json

import numpy as np
import pytest
import torch

from robustrl.envs import make_env
from robustrl.errors import CheckpointError
from robustrl.experiments.run import load_policy
from robustrl.policies.actor_critic import ActorCritic
from robustrl.policies.checkpoint import load_checkpoint, save_policy


@pytest.fixture
def trained_like_policy():
    env = make_env("Hopper-v5")
    torch.manual_seed(1)
    policy = ActorCritic(env.single_observation_space, env.single_action_space, initial_std=0.7)
    policy.normalizer.update(np.random.default_rng(0).normal(size=(100, 11)) * 3 + 1)
    env.close()
    return policy


def test_round_trip_is_bit_exact(tmp_path, trained_like_policy):
    save_policy(tmp_path / "ckpt", trained_like_policy, "Hopper-v5")
    loaded = load_policy(tmp_path / "ckpt.json", env_id="Hopper-v5")
    original, restored = trained_like_policy.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    np.testing.assert_array_equal(loaded.normalizer.stats.mean, trained_like_policy.normalizer.stats.mean)
    np.testing.assert_array_equal(loaded.normalizer.stats.var, trained_like_policy.normalizer.stats.var)
    assert loaded.normalizer.stats.count == trained_like_policy.normalizer.stats.count
    obs = np.random.default_rng(1).normal(size=(8, 11))
    np.testing.assert_array_equal(loaded.act(obs), trained_like_policy.act(obs))
    meta = json.loads((tmp_path / "ckpt.json").read_text())
    assert meta["env_id"] == "Hopper-v5" and meta["versions"]["torch"]
    assert meta["architecture"]["initial_std"] == 0.7


def test_no_pickle_in_checkpoint(tmp_path, trained_like_policy):
    save_policy(tmp_path / "ckpt", trained_like_policy, "Hopper-v5")
    blob = (tmp_path / "ckpt.safetensors").read_bytes()
    assert b"\x80\x04\x95" not in blob[:16]  # not a pickle stream
    json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])  # safetensors header is JSON


def test_wrong_env_is_refused(tmp_path, trained_like_policy):
    save_policy(tmp_path / "ckpt", trained_like_policy, "Hopper-v5")
    with pytest.raises(CheckpointError, match="trained on 'Hopper-v5', not 'Walker2d-v5'"):
        load_policy(tmp_path / "ckpt", env_id="Walker2d-v5")


def test_truncated_tensor_file_is_refused(tmp_path, trained_like_policy):
    save_policy(tmp_path / "ckpt", trained_like_policy, "Hopper-v5")
    path = tmp_path / "ckpt.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="corrupt, truncated or replaced"):
        load_checkpoint(tmp_path / "ckpt")


def test_corrupt_json_is_refused(tmp_path, trained_like_policy):
    save_policy(tmp_path / "ckpt", trained_like_policy, "Hopper-v5")
    path = tmp_path / "ckpt.json"
    path.write_text(path.read_text()[:50])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "ckpt")


def test_shape_mismatch_is_refused(tmp_path, trained_like_policy):
    save_policy(tmp_path / "ckpt", trained_like_policy, "Hopper-v5")
    path = tmp_path / "ckpt.json"
    meta = json.loads(path.read_text())
    meta["architecture"]["hidden_sizes"] = [32, 32]
    path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="shape"):
        load_policy(tmp_path / "ckpt")


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "nothing")


def test_random_bytes_are_refused(tmp_path, trained_like_policy):
    save_policy(tmp_path / "ckpt", trained_like_policy, "Hopper-v5")
    (tmp_path / "ckpt.safetensors").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "ckpt")


# ---- non-finite tensors are never saved nor loaded -----------------------------------------------
def _write_unchecked(stem, tensors, meta):
    """A checkpoint written the way save_checkpoint would, but without its finiteness check (what a
    diverged run of an older robustrl left behind, or a file edited by hand)."""
    import hashlib

    from safetensors.torch import save as save_tensors_to_bytes

    from robustrl.policies.checkpoint import FORMAT, FORMAT_VERSION

    blob = save_tensors_to_bytes({k: v.contiguous() for k, v in tensors.items()})
    stem.with_suffix(".safetensors").write_bytes(blob)
    full = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        **meta,
    }
    stem.with_suffix(".json").write_text(json.dumps(full))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_tensor_is_never_saved(tmp_path, trained_like_policy, bad):
    with torch.no_grad():
        trained_like_policy.actor[0].weight[3, 2] = bad
    with pytest.raises(CheckpointError, match=r"refusing to save .*policy/actor\.0\.weight.* NaN or inf"):
        save_policy(tmp_path / "ckpt", trained_like_policy, "Hopper-v5")
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file


def test_non_finite_tensor_is_never_loaded(tmp_path, trained_like_policy):
    from robustrl.policies.checkpoint import policy_meta, policy_tensors

    tensors = policy_tensors(trained_like_policy)
    tensors["policy/log_std"] = torch.full_like(tensors["policy/log_std"], float("nan"))
    _write_unchecked(tmp_path / "ckpt", tensors, policy_meta(trained_like_policy, "Hopper-v5"))
    with pytest.raises(CheckpointError, match=r"policy/log_std holds NaN or inf"):
        load_checkpoint(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match=r"policy/log_std"):
        load_policy(tmp_path / "ckpt")


def test_integer_tensors_are_not_checked(tmp_path):
    from robustrl.policies.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "ints", {"steps": torch.tensor([1, 2, 3])}, {})
    tensors, _ = load_checkpoint(tmp_path / "ints")
    assert tensors["steps"].tolist() == [1, 2, 3]


def test_real_training_checkpoint_round_trips(tmp_path):
    """Everything PPO saves (policy, normalisers, reward scaler, optimiser, objective state) is
    finite after real training: the check never refuses a healthy run. WocaR-PPO saves the most."""
    from robustrl.config import RobustConfig, TrainConfig, ppo_defaults_for
    from robustrl.experiments.run import train
    from robustrl.policies.checkpoint import latest_checkpoint, save_checkpoint

    config = TrainConfig(
        "Pendulum-v1", algo="wocar-ppo", total_steps=2048, seed=0,
        ppo=ppo_defaults_for("Pendulum-v1", steps_per_iteration=1024, num_minibatches=4, policy_epochs=1, value_epochs=1),
        robust=RobustConfig(eps=0.1, eps_warmup_fraction=0.0, q_epochs=1),
    )  # fmt: skip
    result = train(config, tmp_path / "run", progress=False)
    tensors, meta, stem = latest_checkpoint(result.run_dir)
    assert any(k.startswith("objective/") for k in tensors) and any(k.startswith("reward_scaler/") for k in tensors)
    save_checkpoint(
        tmp_path / "again",
        tensors,
        {k: v for k, v in meta.items() if k not in ("format", "format_version", "tensors_sha256")},
    )
    again, _ = load_checkpoint(tmp_path / "again")
    assert again.keys() == tensors.keys() and all(torch.equal(again[k], tensors[k]) for k in tensors)
    assert load_policy(result.run_dir).checkpoint == str(stem)
