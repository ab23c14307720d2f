"""Two-player MuJoCo sumo: two Gymnasium Ants on a round raised ring (Robosumo in spirit,
Al-Shedivat et al. 2018; used by "Rethinking adversarial policies", Sec. 7 and App. E).

The arena is composed in code with :class:`mujoco.MjSpec`: Gymnasium's bundled ``ant.xml`` is
attached twice (bodies, joints, actuators and default classes come with it; names are prefixed
``p0_`` / ``p1_``). Three facts of that file matter and are handled here:

- its geoms have ``conaffinity=0`` (an Ant only needs to touch the floor), so two composed Ants
  pass through each other. :func:`sumo_model` gives each player its own contact bit: player k's
  geoms have ``contype = 2 << k`` and ``conaffinity = 1 | (2 << (1 - k))`` and the arena has
  ``contype = conaffinity = 1``, so each Ant touches the arena and the other Ant, not itself
  (as the single Ant, which has no self-collision).
- its actuators are unnamed; their order (hip_4, ankle_4, hip_1, ...) is kept per player, so each
  player's 8 actions mean what they mean in Ant-v5.
- ``attach`` keeps the parent's ``<option>``: the arena sets Ant's timestep 0.01 and RK4, and the
  env steps ``frame_skip = 5`` times per action (dt = 0.05 s), as Ant-v5.

Rules (Robosumo's): a player loses when its torso leaves the ring (horizontal distance from the
centre beyond ``ring_radius``) or touches the ground (the platform or the floor: it fell or
flipped); if both happen in one step, or nobody lost after ``max_steps`` steps, the episode is a
draw. The outcome is reported in ``info["outcome"]`` ("win" / "loss" / "draw" from that player's
side) at the last step, apart from the reward. The reward is Robosumo's: +win_reward / -win_reward
to the winner / loser, draw_penalty to both on a draw, plus shaping each step (moving towards the
opponent, pushing the opponent away from the centre, a control cost); ``shaping_weight`` scales
the shaping (Robosumo anneals it to 0).

The episode's end at ``max_steps`` is a *termination* (the game is over: a draw), not a
truncation; the observation carries the fraction of time left, so the state stays Markov.

Each player observes (Robosumo's choice of parts): its own ``qpos`` (15: torso position,
orientation quaternion, 8 joint angles), ``qvel`` (14), the external contact forces on its 13
bodies clipped to [-1, 1] (78, as Ant-v5), the opponent's ``qpos`` (15), both torsos' distances to
the ring's edge (2) and the fraction of time left (1): 125 numbers, in world coordinates.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from robustrl.errors import InvalidArgumentError

AGENTS = ("player_0", "player_1")
OBS_DIM = 125
ACTION_DIM = 8
PLATFORM_HEIGHT = 0.2  # top of the ring above the floor (m)


@dataclass(frozen=True)
class SumoSettings:
    """The arena's knobs (recorded in run directories). Defaults follow Robosumo's Ant vs Ant,
    scaled to Gymnasium's Ant (its legs reach 1.13 m from the torso)."""

    ring_radius: float = 2.5  # m; Robosumo's tatami is 2.0 for its smaller Ant
    start_distance: float = 1.25  # each torso's distance from the centre at reset (Robosumo: 1.15)
    max_steps: int = 500  # Robosumo's timestep_limit
    frame_skip: int = 5
    win_reward: float = 2000.0  # Robosumo WIN_REWARD
    draw_penalty: float = -1000.0  # Robosumo DRAW_PENALTY
    move_to_opponent_coef: float = 0.1  # Robosumo MOVE_TO_OPP_COEF
    push_out_coef: float = 10.0  # Robosumo PUSH_OUT_COEF
    control_cost: float = 0.1  # per squared action (our choice; Robosumo's Ant: its ctrl cost)
    shaping_weight: float = 1.0
    init_noise: float = 0.1  # uniform qpos noise and Gaussian qvel noise at reset (Robosumo: 0.1)

    def validate(self) -> None:
        if not 0 < self.start_distance < self.ring_radius:
            raise InvalidArgumentError(
                f"start_distance must be in (0, ring_radius={self.ring_radius}), got {self.start_distance}"
            )
        if self.max_steps < 1 or self.frame_skip < 1:
            raise InvalidArgumentError("max_steps and frame_skip must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ant_xml_path() -> str:
    import gymnasium.envs.mujoco as mujoco_envs

    return os.path.join(os.path.dirname(mujoco_envs.__file__), "assets", "ant.xml")


@functools.lru_cache(maxsize=8)
def _compiled(ring_radius: float) -> Any:
    import mujoco

    spec = mujoco.MjSpec()
    spec.option.timestep = 0.01  # Ant's; attach would keep MjSpec's default 0.002 otherwise
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_RK4
    world = spec.worldbody
    world.add_light(
        pos=[0, 0, 6], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL, diffuse=[0.8, 0.8, 0.8]
    )
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[12, 12, 0.1], rgba=[0.35, 0.4, 0.45, 1])
    world.add_geom(
        name="ring",
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[ring_radius, PLATFORM_HEIGHT / 2, 0],
        pos=[0, 0, PLATFORM_HEIGHT / 2],
        rgba=[0.85, 0.8, 0.65, 1],
    )
    for k in range(len(AGENTS)):
        ant = mujoco.MjSpec.from_file(ant_xml_path())
        frame = world.add_frame(pos=[0, 0, 0])
        frame.attach_body(ant.body("torso"), f"p{k}_", "")
    # contact bits in the spec, before compiling: the compiler also derives per-body bits from
    # them (body_contype / body_conaffinity) that the broad phase filters on
    colours = ([0.85, 0.25, 0.2, 1], [0.2, 0.4, 0.85, 1])
    for geom in spec.geoms:
        if geom.name in ("floor", "ring"):
            geom.contype, geom.conaffinity = 1, 1
            continue
        k = int(geom.name[1]) if geom.name[:1] == "p" and geom.name[2:3] == "_" else None
        if k is None:
            raise RuntimeError(f"sumo arena: geom {geom.name!r} belongs to no player")
        geom.contype, geom.conaffinity = 2 << k, 1 | (2 << (1 - k))
        geom.rgba = colours[k]
        geom.material = ""
    model = spec.compile()
    return model


def sumo_model(settings: SumoSettings | None = None) -> Any:
    """A fresh copy of the arena's compiled :class:`mujoco.MjModel`."""
    import copy

    return copy.copy(_compiled(float((settings or SumoSettings()).ring_radius)))


class SumoEnv:
    """Two Ants on a ring, behind the PettingZoo parallel API (``reset``, ``step`` with dicts keyed
    by ``player_0`` / ``player_1``). See the module docstring for rules, rewards and observations.

    Args:
        settings: the arena's knobs (:class:`SumoSettings`).
        render_mode: ``"rgb_array"`` for :meth:`render` (offscreen; EGL without a display).
        width, height: the rendered frame's size in pixels.
    """

    metadata = {"render_modes": ["rgb_array"], "name": "sumo_ant_v0", "is_parallelizable": True}

    def __init__(
        self, settings: SumoSettings | None = None, render_mode: str | None = None, width: int = 320, height: int = 240
    ):
        import mujoco

        self.settings = settings or SumoSettings()
        self.settings.validate()
        self.render_mode, self.width, self.height = render_mode, width, height
        self.model = sumo_model(self.settings)
        self.data = mujoco.MjData(self.model)
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self._observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float64)
        self._action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        m = self.model
        self._torso = [m.body(f"p{k}_torso").id for k in range(2)]
        self._torso_geom = [m.geom(f"p{k}_torso_geom").id for k in range(2)]
        self._arena_geoms = {m.geom("floor").id, m.geom("ring").id}
        # each player's slices of qpos / qvel / bodies (a free joint first: 7 qpos, 6 qvel)
        self._qpos = [slice(m.jnt_qposadr[m.body_jntadr[t]], m.jnt_qposadr[m.body_jntadr[t]] + 15) for t in self._torso]
        self._qvel = [slice(m.jnt_dofadr[m.body_jntadr[t]], m.jnt_dofadr[m.body_jntadr[t]] + 14) for t in self._torso]
        self._bodies = [slice(t, t + 13) for t in self._torso]
        self._init_qpos = np.tile(np.array([0.0, 0.0, 0.75, 1, 0, 0, 0, 0, 1, 0, -1, 0, -1, 0, 1]), 2)
        self.np_random = np.random.default_rng()
        self._elapsed_steps = 0  # the names envs/snapshot.py reads, so it captures this env exactly
        self._max_episode_steps = self.settings.max_steps
        self._renderer: Any = None

    # ---- spaces ---------------------------------------------------------------------------------
    def observation_space(self, agent: str) -> gym.spaces.Box:
        return self._observation_space

    def action_space(self, agent: str) -> gym.spaces.Box:
        return self._action_space

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def max_num_agents(self) -> int:
        return 2

    @property
    def unwrapped(self) -> SumoEnv:
        return self

    def state(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel])

    # ---- episode --------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        import mujoco

        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        s, rng = self.settings, self.np_random
        mujoco.mj_resetData(self.model, self.data)
        qpos = self._init_qpos.copy()
        phi = rng.uniform(0.0, 2 * np.pi)  # the line between the two starting points
        for k in range(2):
            angle = phi + k * np.pi
            qpos[15 * k : 15 * k + 3] = [
                s.start_distance * np.cos(angle),
                s.start_distance * np.sin(angle),
                0.6 + PLATFORM_HEIGHT,
            ]
        qpos = qpos + rng.uniform(-s.init_noise, s.init_noise, size=qpos.shape)
        qvel = s.init_noise * rng.standard_normal(self.model.nv)
        for k in range(2):  # a unit quaternion after the noise
            q = qpos[15 * k + 3 : 15 * k + 7]
            qpos[15 * k + 3 : 15 * k + 7] = q / np.linalg.norm(q)
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)
        self._elapsed_steps = 0
        self.agents = list(self.possible_agents)
        obs = self._observations()
        return obs, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        import mujoco

        if not self.agents:
            raise RuntimeError("step() after the episode ended; call reset()")
        s = self.settings
        control = np.zeros(2 * ACTION_DIM)
        for k, agent in enumerate(AGENTS):
            action = np.asarray(actions[agent], dtype=np.float64).reshape(ACTION_DIM)
            control[ACTION_DIM * k : ACTION_DIM * (k + 1)] = np.clip(action, -1.0, 1.0)
        before = self.torso_xy()
        self.data.ctrl[:] = control
        mujoco.mj_step(self.model, self.data, nstep=s.frame_skip)
        self._elapsed_steps += 1
        after = self.torso_xy()
        lost = self.lost()
        dt = self.model.opt.timestep * s.frame_skip
        rewards, infos = {}, {}
        over_time = self._elapsed_steps >= s.max_steps
        for k, agent in enumerate(AGENTS):
            o = 1 - k
            direction = after[o] - before[k]
            velocity = (after[k] - before[k]) / dt
            move = s.move_to_opponent_coef * max(
                float(velocity @ direction) / max(np.linalg.norm(direction), 1e-8), 0.0
            )
            push = -s.push_out_coef * float(np.exp(-np.linalg.norm(after[o])))
            ctrl = -s.control_cost * float(np.sum(control[ACTION_DIM * k : ACTION_DIM * (k + 1)] ** 2))
            shaping = s.shaping_weight * (move + push + ctrl)
            infos[agent] = {"move_to_opponent": move, "push_out": push, "control": ctrl}
            rewards[agent] = float(shaping)
        if lost[0] != lost[1]:
            winner = 1 if lost[0] else 0
            outcome = {AGENTS[winner]: "win", AGENTS[1 - winner]: "loss"}
        elif any(lost) or over_time:
            outcome = dict.fromkeys(AGENTS, "draw")
        else:
            outcome = None
        main = {"win": s.win_reward, "loss": -s.win_reward, "draw": s.draw_penalty}
        if outcome is not None:
            for agent in AGENTS:
                rewards[agent] += main[outcome[agent]]
                infos[agent]["outcome"] = outcome[agent]
        done = outcome is not None
        obs = self._observations()
        terminations = dict.fromkeys(AGENTS, done)
        truncations = dict.fromkeys(AGENTS, False)
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    # ---- what the rules read --------------------------------------------------------------------
    def torso_xy(self) -> np.ndarray:
        """(2, 2): each torso's horizontal position (the ring's centre is the origin), read from
        the free joints' ``qpos``: after an RK4 ``mj_step`` ``xpos`` still holds the last stage's
        kinematics, which a restored snapshot (recomputed by ``mj_forward``) would not reproduce."""
        return np.stack([self.data.qpos[q][:2] for q in self._qpos]).copy()

    def lost(self) -> tuple[bool, bool]:
        """Per player: torso out of the ring, or touching the floor or the platform."""
        outside = [bool(np.linalg.norm(xy) > self.settings.ring_radius) for xy in self.torso_xy()]
        touching = [False, False]
        data = self.data
        for i in range(data.ncon):
            pair = {int(data.contact[i].geom1), int(data.contact[i].geom2)}
            for k in range(2):
                if self._torso_geom[k] in pair and pair & self._arena_geoms:
                    touching[k] = True
        return outside[0] or touching[0], outside[1] or touching[1]

    def _observations(self) -> dict[str, np.ndarray]:
        data, s = self.data, self.settings
        xy = self.torso_xy()
        edge = s.ring_radius - np.linalg.norm(xy, axis=1)
        time_left = 1.0 - self._elapsed_steps / s.max_steps
        forces = np.clip(data.cfrc_ext, -1.0, 1.0)
        obs = {}
        for k, agent in enumerate(AGENTS):
            o = 1 - k
            obs[agent] = np.concatenate(
                [
                    data.qpos[self._qpos[k]],
                    data.qvel[self._qvel[k]],
                    forces[self._bodies[k]].ravel(),
                    data.qpos[self._qpos[o]],
                    [edge[k], edge[o], time_left],
                ]
            )
        return obs

    # ---- exact state (resume) -------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """JSON: the simulator's integration state, the random stream, the step counter and who is
        still playing (via :mod:`robustrl.envs.snapshot`'s single-env snapshot)."""
        from robustrl.envs.snapshot import _snapshot_single

        return {**_snapshot_single(self), "agents": list(self.agents)}

    def set_state(self, state: dict[str, Any]) -> None:
        from robustrl.envs.snapshot import _restore_single

        _restore_single(self, state)
        self.agents = list(state["agents"])

    # ---- pictures -------------------------------------------------------------------------------
    def render(self) -> np.ndarray | None:
        """An RGB frame (height, width, 3) seen from above and to the side of the ring."""
        if self.render_mode != "rgb_array":
            return None
        import mujoco

        if self._renderer is None:
            if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
                os.environ["MUJOCO_GL"] = "egl"
                os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
            self._renderer = mujoco.Renderer(self.model, self.height, self.width)
            self._camera = mujoco.MjvCamera()
            self._camera.lookat[:] = [0, 0, 0.3]
            self._camera.distance = 2.6 * self.settings.ring_radius
            self._camera.elevation = -40
            self._camera.azimuth = 90
        self._renderer.update_scene(self.data, self._camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def make_sumo(settings: SumoSettings | dict[str, Any] | None = None, **kwargs: Any) -> SumoEnv:
    """A :class:`SumoEnv` from settings (a :class:`SumoSettings` or its dict)."""
    if isinstance(settings, dict):
        settings = SumoSettings(**settings)
    return SumoEnv(settings, **kwargs)
