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
