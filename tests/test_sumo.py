"""The sumo arena (envs/sumo.py) and its learners (games/sumo.py): PettingZoo's API test, the
composed model against Ant-v5, the rules by scripted physics, win / loss / draw bookkeeping, the
partial-control seat, exact resume of two-player runs, matches and the CLI.

PartialControl's coin rate and the stealth measures on known distributions are tested in
tests/test_games.py (not repeated here)."""

from __future__ import annotations

import csv
import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # read when mujoco is imported: offscreen rendering without a display
import mujoco
import numpy as np
import pytest
import torch

from robustrl.envs.sumo import AGENTS, OBS_DIM, SumoEnv, SumoSettings, ant_xml_path

TINY = {
    "num_envs": 2,
    "steps_per_iteration": 128,
    "settings": {"max_steps": 40},
    "ppo": {"num_minibatches": 4, "policy_epochs": 2, "value_epochs": 2},
}
ZERO = {a: np.zeros(8) for a in AGENTS}


def place(
    env: SumoEnv, p0: tuple[float, float], p1: tuple[float, float], vx0: float = 0.0, flip1: bool = False
) -> None:
    """Put the torsos at (x, y) standing pose (z 0.8), optionally player_0 moving at vx0 and
    player_1 upside down."""
    q = env.data.qpos.copy()
    q[0:3] = [*p0, 0.8]
    q[15:18] = [*p1, 0.8]
    q[3:7] = [1, 0, 0, 0]
    q[18:22] = [0, 1, 0, 0] if flip1 else [1, 0, 0, 0]
    v = np.zeros(env.model.nv)
    v[0] = vx0
    env.data.qpos[:], env.data.qvel[:] = q, v
    mujoco.mj_forward(env.model, env.data)


# ---- the env ------------------------------------------------------------------------------------------
def test_passes_pettingzoo_parallel_api_test():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(SumoEnv(SumoSettings(max_steps=30)), num_cycles=60)


def test_each_player_is_ant_v5_with_its_options_and_contacts_between_players_only():
    env = SumoEnv()
    model, ant = env.model, mujoco.MjModel.from_xml_path(ant_xml_path())
    assert model.opt.timestep == ant.opt.timestep == 0.01
    assert model.opt.integrator == ant.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    assert model.nu == 2 * ant.nu and model.njnt == 2 * ant.njnt
    for k in range(2):
        bodies = slice(env._torso[k], env._torso[k] + 13)
        np.testing.assert_allclose(model.body_mass[bodies], ant.body_mass[1:])
        np.testing.assert_allclose(model.body_inertia[bodies], ant.body_inertia[1:])
        joints = slice(model.body_jntadr[env._torso[k]], model.body_jntadr[env._torso[k]] + 9)
        np.testing.assert_allclose(model.jnt_range[joints], ant.jnt_range)
        actuators = slice(8 * k, 8 * k + 8)
        np.testing.assert_allclose(model.actuator_gear[actuators], ant.actuator_gear)
        # the unnamed actuators keep Ant's order: they drive the same joints
        names = [model.joint(j).name.removeprefix(f"p{k}_") for j in model.actuator_trnid[actuators, 0]]
        assert names == [ant.joint(j).name for j in ant.actuator_trnid[:, 0]]
    env.reset(seed=0)
    place(env, (0.0, 0.0), (0.3, 0.0))  # overlapping torsos
    touching = {
        (model.geom_bodyid[c.geom1] >= env._torso[1], model.geom_bodyid[c.geom2] >= env._torso[1])
        for c in env.data.contact[: env.data.ncon]
    }
    assert (False, True) in touching or (True, False) in touching  # ant-ant contacts exist
    assert (False, False) not in touching and (True, True) not in touching  # no self-collision


def test_observations_and_seeding():
    env = SumoEnv()
    obs, _ = env.reset(seed=3)
    assert set(obs) == set(AGENTS) and all(o.shape == (OBS_DIM,) for o in obs.values())
    # player_0's view of the opponent is player_1's own qpos, and vice versa
    np.testing.assert_array_equal(obs["player_0"][107:122], obs["player_1"][:15])
    assert obs["player_0"][-1] == 1.0  # all the time is left
    again, _ = SumoEnv().reset(seed=3)
    for a in AGENTS:
        np.testing.assert_array_equal(obs[a], again[a])


def test_scripted_push_out_gives_the_pusher_the_win():
    """Player_0 runs at 8 m/s into player_1 standing 0.5 m from the edge: the physics pushes
    player_1 off the ring, player_0 stays on it, and the bookkeeping says so."""
    env = SumoEnv(SumoSettings(init_noise=0.0))
    env.reset(seed=0)
    place(env, (0.6, 0.0), (2.0, 0.0), vx0=8.0)
    for _ in range(100):
        obs, rewards, terminations, truncations, infos = env.step(ZERO)
        if terminations["player_0"]:
            break
    assert infos["player_0"]["outcome"] == "win" and infos["player_1"]["outcome"] == "loss"
    xy = env.torso_xy()
    assert np.linalg.norm(xy[1]) > 2.5 > np.linalg.norm(xy[0])
    assert rewards["player_0"] > 1900 and rewards["player_1"] < -1900
    assert env.agents == [] and not any(truncations.values())


def test_win_loss_draw_bookkeeping():
    s = SumoSettings(init_noise=0.0, max_steps=3)
    env = SumoEnv(s)
    # out of the ring -> loss, exactly +-win_reward plus shaping
    env.reset(seed=0)
    place(env, (0.0, 0.0), (2.6, 0.0))
    _, rewards, terminations, _, infos = env.step(ZERO)
    assert [infos[a]["outcome"] for a in AGENTS] == ["win", "loss"] and all(terminations.values())
    for a in AGENTS:
        shaping = sum(infos[a][k] for k in ("move_to_opponent", "push_out", "control"))
        main = s.win_reward if infos[a]["outcome"] == "win" else -s.win_reward
        assert rewards[a] == pytest.approx(main + shaping)
    # torso on the ground (upside down inside the ring) -> loss
    env.reset(seed=0)
    place(env, (-1.0, 0.0), (1.0, 0.0), flip1=True)
    env.data.qpos[17] = 0.2 + 0.24  # the torso sphere (radius 0.25) resting on the platform
    mujoco.mj_forward(env.model, env.data)
    _, _, _, _, infos = env.step(ZERO)
    assert infos["player_1"]["outcome"] == "loss" and infos["player_0"]["outcome"] == "win"
    # both out in the same step -> draw
    env.reset(seed=0)
    place(env, (-2.7, 0.0), (2.7, 0.0))
    _, rewards, _, _, infos = env.step(ZERO)
    assert [infos[a]["outcome"] for a in AGENTS] == ["draw", "draw"]
    # nobody out after max_steps -> draw, with the draw penalty, as a termination
    env.reset(seed=0)
    outcomes = []
    for _t in range(3):
        _, rewards, terminations, truncations, infos = env.step(ZERO)
        outcomes.append(infos["player_0"].get("outcome"))
    assert outcomes == [None, None, "draw"] and terminations["player_0"] and not truncations["player_0"]
    assert rewards["player_0"] == pytest.approx(
        s.draw_penalty + sum(infos["player_0"][k] for k in ("move_to_opponent", "push_out", "control"))
    )
    with pytest.raises(RuntimeError, match="reset"):
        env.step(ZERO)


def test_snapshot_restores_the_arena_exactly():
    rng = np.random.default_rng(0)
    actions = [{a: 0.3 * rng.uniform(-1, 1, 8) for a in AGENTS} for _ in range(30)]
    env = SumoEnv()
    env.reset(seed=1)
    for t in range(5):
        env.step(actions[t])
    state = json.loads(json.dumps(env.get_state()))
    expected = [env.step(actions[t])[0]["player_0"] for t in range(5, 20)]
    other = SumoEnv()
    other.reset(seed=9)
    other.set_state(state)
    for t, want in zip(range(5, 20), expected):
        np.testing.assert_array_equal(other.step(actions[t])[0]["player_0"], want)


# ---- the partial-control seat -----------------------------------------------------------------------
class Constant:
    def __init__(self, value):
        self.value, self.rng = value, np.random.default_rng(0)

    def act(self, obs):
        return np.full(8, self.value)

    def reset(self, seed=None):
        pass


@pytest.mark.parametrize("eps_pi", [0.0, 1.0])
def test_partial_control_seat_at_the_extremes(eps_pi):
    """eps_pi = 0: the seat's own actions never matter (the benign agent plays every step);
    eps_pi = 1: the wrapper changes nothing."""
    from robustrl.games.sumo import PartialControlSeat

    def run(seat_action, wrapped):
        env = SumoEnv()
        if wrapped:
            env = PartialControlSeat(env, "player_1", Constant(0.5), eps_pi)
        env.reset(seed=4)
        return np.concatenate(
            [env.step({"player_0": np.zeros(8), "player_1": np.full(8, seat_action)})[0]["player_0"] for _ in range(10)]
        )

    if eps_pi == 0.0:
        np.testing.assert_array_equal(run(-1.0, True), run(0.5, False))
    else:
        np.testing.assert_array_equal(run(-1.0, True), run(-1.0, False))


# ---- learners -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def benign_run(tmp_path_factory):
    from robustrl.experiments.run import train
    from robustrl.games.sumo import SumoLearner

    out = tmp_path_factory.mktemp("sumo") / "benign"
    train(learner=SumoLearner({**TINY, "method": "self-play", "total_steps": 128}), out=out)
    return out


@pytest.mark.parametrize("method", ["two-timescale", "fictitious"])
def test_two_player_resume_equals_an_uninterrupted_run(tmp_path, benign_run, method):
    from robustrl.experiments.run import train
    from robustrl.games.sumo import SumoLearner
    from robustrl.policies.checkpoint import latest_checkpoint

    config = {**TINY, "method": method, "eps_pi": 0.5, "init": str(benign_run), "total_steps": 3 * 128}
    train(learner=SumoLearner(config), out=tmp_path / "full")
    part = SumoLearner(config)
    part.num_iterations = 1  # stop after one iteration, as an interrupted run
    train(learner=part, out=tmp_path / "part")
    result = train(resume=tmp_path / "part")  # rebuilt from config.json through LEARNERS
    assert result.iterations == 3
    full, meta_full, _ = latest_checkpoint(tmp_path / "full")
    resumed, meta_resumed, _ = latest_checkpoint(tmp_path / "part")
    assert full.keys() == resumed.keys() and any(k.startswith("attacker/") for k in full)
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    assert meta_full["collectors"] == meta_resumed["collectors"]
    rows = []
    for run in ("full", "part"):
        with open(tmp_path / run / "progress.csv") as handle:  # every column but the clock's
            rows.append([{k: v for k, v in r.items() if "second" not in k} for r in csv.DictReader(handle)])
    assert {"gradient_norm", "score", "attacker_score"} <= set(rows[0][0])
    assert rows[0] == rows[1]


def test_attack_learner_logs_win_rates_and_deploys_with_partial_control(tmp_path, benign_run):
    from robustrl.attacks.action import PartialControl
    from robustrl.experiments.run import train
    from robustrl.games.sumo import SumoAttackLearner, deployed_attacker, play_matches, wilson_interval

    config = {**TINY, "victim": str(benign_run), "eps_pi": 0.7, "total_steps": 256}
    train(learner=SumoAttackLearner(config), out=tmp_path / "attack")
    header = open(tmp_path / "attack" / "progress.csv").read().splitlines()[0].split(",")
    assert {"win_rate", "non_loss_rate", "draw_rate", "matches"} <= set(header)
    opponent = deployed_attacker(tmp_path / "attack")
    assert isinstance(opponent, PartialControl) and opponent.eps_pi == 0.7
    from robustrl.games.sumo import load_sumo_policy

    result = play_matches(
        load_sumo_policy(benign_run), opponent, episodes=3, settings={"max_steps": 40}, record_observations=True
    )
    assert result["victim_wins"] + result["draws"] + result["victim_losses"] == 3
    assert result["observations"].shape == (sum(result["lengths"]), OBS_DIM)
    assert 0.0 <= result["controlled_fraction"] <= 1.0
    low, high = wilson_interval(190, 200)
    assert low < 0.95 < high and 0.9 < low


def test_learner_settings_are_checked():
    from robustrl.errors import InvalidArgumentError
    from robustrl.games.sumo import SumoLearner

    with pytest.raises(InvalidArgumentError, match="method"):
        SumoLearner({"method": "nash"})
    with pytest.raises(InvalidArgumentError, match="init"):
        SumoLearner({"method": "two-timescale"})
    with pytest.raises(InvalidArgumentError, match="eps_pi"):
        SumoLearner({"method": "self-play", "eps_pi": 2.0})
    with pytest.raises(InvalidArgumentError, match="unknown"):
        SumoLearner({"steps": 3})


# ---- rendering and the CLI ------------------------------------------------------------------------------
def _renderer_works() -> bool:
    try:
        env = SumoEnv(render_mode="rgb_array", width=64, height=48)
        env.reset(seed=0)
        frame = env.render()
        env.close()
        return frame is not None and frame.shape == (48, 64, 3)
    except Exception:
        return False


def test_cli_train_attack_stealth_and_bad_input(tmp_path, benign_run):
    from robustrl.cli import main

    assert main(["sumo", "train", "--steps", "128", "--num-envs", "2", "--steps-per-iteration", "128",
                 "--max-steps", "30", "--out", str(tmp_path / "sp")]) == 0  # fmt: skip
    assert (tmp_path / "sp" / "progress.csv").is_file()
    assert main(["sumo", "attack", str(tmp_path / "sp"), "--eps-pi", "0.3", "--steps", "128", "--num-envs", "2",
                 "--steps-per-iteration", "128", "--out", str(tmp_path / "att")]) == 0  # fmt: skip
    assert main(["sumo", "stealth", str(tmp_path / "sp"), str(tmp_path / "att"), "--episodes", "2",
                 "--json", str(tmp_path / "stealth.json")]) == 0  # fmt: skip
    report = json.loads((tmp_path / "stealth.json").read_text())
    assert set(report["attacks"]) == {str(tmp_path / "att")} and "w2" in report["attacks"][str(tmp_path / "att")]
    assert main(["sumo", "attack", str(tmp_path / "sp"), "--eps-pi", "1.5", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
    assert main(["sumo", "defend", str(tmp_path / "sp"), "--method", "nash", "--out", str(tmp_path / "y")]) == 2
    assert main(["sumo", "train", "--steps", "-3", "--out", str(tmp_path / "z")]) == 2


@pytest.mark.skipif(not _renderer_works(), reason="no offscreen OpenGL renderer (EGL) here")
def test_render_writes_a_gif(tmp_path, benign_run):
    from robustrl.cli import main

    out = tmp_path / "episode.gif"
    assert main(["sumo", "render", str(benign_run), "--out", str(out), "--max-steps", "5", "--size", "64x48"]) == 0
    assert out.stat().st_size > 0 and out.read_bytes()[:3] == b"GIF"
