"""Pictures of attacks: one episode clean and the same episode (same seed) under each attack,
side by side, with the return so far drawn on each panel; and the traces behind the figures of
observation perturbations (benign versus perturbed observations over an episode, per dimension).

Rendering is offscreen. MuJoCo envs use EGL when ``MUJOCO_GL`` is unset and there is no display
(Debian: ``libegl1 libegl-mesa0 libgl1-mesa-dri`` give a software renderer); where no renderer
works, :func:`check_renderer` raises :class:`RendererUnavailableError` before anything is written.
Videos are written with imageio: ``.gif`` (Pillow), ``.mp4`` (needs ``imageio-ffmpeg``); both are
in the ``render`` extra.

An episode here is the first episode :func:`robustrl.policies.episodes.run_episodes` runs with the
same ``seed`` (env reset with ``seed``, policy draws from ``numpy.random.default_rng(seed)``), so
the clean panel is episode 0 of the report's natural column.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robustrl.envs.make import check_env_id, require_finite
from robustrl.errors import InvalidArgumentError, RendererUnavailableError
from robustrl.policies.protocol import AttackablePolicy

VIDEO_SUFFIXES = (".gif", ".mp4")
PANEL_SIZE = (240, 200)  # width, height of each panel (pixels)


@dataclass
class EpisodeTrace:
    """One episode step by step: ``observations`` are the clean ones in the policy's perturbation
    space, ``perturbed`` what the policy acted on (equal when clean), ``rewards`` per step, and
    ``frames`` (RGB, one per rendered step) when rendered."""

    label: str
    observations: np.ndarray
    perturbed: np.ndarray
    rewards: np.ndarray
    frames: list[np.ndarray] = field(default_factory=list)
    frame_steps: list[int] = field(default_factory=list)  # steps taken when each frame was drawn

    @property
    def episode_return(self) -> float:
        return float(self.rewards.sum())


def _default_gl_backend() -> None:
    """MuJoCo reads ``MUJOCO_GL`` when a renderer is made: EGL unless the user chose, or a display exists."""
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def _make_render_env(env_id: str, size: tuple[int, int]) -> gym.Env:
    _default_gl_backend()
    check_env_id(env_id)
    try:
        env = gym.make(env_id, render_mode="rgb_array", width=size[0], height=size[1])
    except TypeError:  # envs without width/height arguments (classic control)
        return gym.make(env_id, render_mode="rgb_array")
    quality = getattr(getattr(getattr(env.unwrapped, "model", None), "vis", None), "quality", None)
    if quality is not None:  # MuJoCo: a software renderer spends most of a frame on 4096^2 shadows and 4x MSAA
        quality.shadowsize, quality.offsamples = min(int(quality.shadowsize), 512), 0
    return env


def _first_frame(env: gym.Env) -> np.ndarray:
    """Render once (which makes MuJoCo's offscreen viewer), then switch off floor reflections (a
    second scene pass: ~3x the cost of a frame under software rendering)."""
    frame = env.render()
    try:
        import mujoco

        viewer = env.unwrapped.mujoco_renderer._get_viewer("rgb_array")
        viewer.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        # Gymnasium's default camera is free: a Hopper or Walker walks out of the picture in a
        # few seconds. Track the torso (the root body if there is none) at the same distance.
        model = env.unwrapped.model
        torso = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso")
        viewer.cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        viewer.cam.trackbodyid = torso if torso >= 0 else 1
        if env.unwrapped.mujoco_renderer.camera_id == -1:
            env.unwrapped.mujoco_renderer.camera_id = None  # -1 makes every render reset the camera to free
        frame = env.render()
    except (AttributeError, ImportError, TypeError):  # not MuJoCo, or another Gymnasium version: keep defaults
        pass
    return frame


def open_render_env(env_id: str, size: tuple[int, int] = PANEL_SIZE) -> gym.Env:
    """An ``rgb_array`` env of ``env_id`` that has rendered one frame offscreen, or
    :class:`RendererUnavailableError` (one line saying what is missing)."""
    import gc
    import sys

    env, frame, message = None, None, None
    # A failed GL set-up leaves Gymnasium's half-built viewer behind, whose __del__ then fails
    # too ("Exception ignored in ..."); it says nothing our one-line error does not, so it is
    # silenced while the failed attempt is torn down.
    previous_hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        try:
            env = _make_render_env(env_id, size)
            env.reset(seed=0)
            frame = _first_frame(env)
        except (ImportError, OSError, RuntimeError, AttributeError, ValueError, gym.error.Error) as error:
            backend = os.environ.get("MUJOCO_GL", "default")
            first = " ".join(str(error).split())[:160] or type(error).__name__
            message = (
                f"cannot render {env_id} offscreen (MUJOCO_GL={backend}: {type(error).__name__}: {first}); on "
                "Debian install libegl1 libegl-mesa0 libgl1-mesa-dri (classic-control envs need pygame)"
            )
        if message is not None and env is not None:
            try:
                env.close()
            except Exception:  # a half-made GL context may fail to close; the message says why
                pass
            env = None
        if message is not None:
            gc.collect()
    finally:
        sys.unraisablehook = previous_hook
    if message is not None:
        raise RendererUnavailableError(message)
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        env.close()
        raise RendererUnavailableError(f"{env_id} rendered no RGB frame offscreen (got {type(frame).__name__})")
    return env


def check_renderer(env_id: str, size: tuple[int, int] = PANEL_SIZE) -> None:
    """Render one frame of ``env_id`` offscreen, or raise :class:`RendererUnavailableError`."""
    open_render_env(env_id, size).close()


def check_video_path(path: Path | str) -> Path:
    """Refuse a video name we cannot write before any work: ``.gif``, or ``.mp4`` with imageio-ffmpeg."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise InvalidArgumentError(f"--render writes {' or '.join(VIDEO_SUFFIXES)}, got {path.name!r}")
    try:
        import imageio  # noqa: F401
    except ImportError:
        raise InvalidArgumentError("--render needs imageio: pip install 'robustrl[render]'") from None
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise InvalidArgumentError(
                "an .mp4 needs imageio-ffmpeg (pip install 'robustrl[render]'); or write a .gif"
            ) from None
    if path.is_dir():
        raise InvalidArgumentError(f"--render {path} is a directory; give a file name ending in .gif or .mp4")
    return path


def record_episode(
    policy: AttackablePolicy,
    env_id: str,
    *,
    perturb: Callable[[torch.Tensor], torch.Tensor] | None = None,
    seed: int = 10_000,
    deterministic: bool = True,
    render: bool = False,
    max_steps: int | None = None,
    frame_every: int = 1,
    size: tuple[int, int] = PANEL_SIZE,
    label: str = "natural",
    env: gym.Env | None = None,
) -> EpisodeTrace:
    """One episode of ``policy`` (optionally under ``perturb``, as in ``run_episodes``), recorded
    step by step; ``render`` keeps every ``frame_every``-th frame (and the last). ``env``: an env
    of ``env_id`` to reuse (from :func:`open_render_env` when rendering; the caller closes it)."""
    if frame_every < 1:
        raise InvalidArgumentError(f"frame_every must be >= 1, got {frame_every}")
    owned = env is None
    if env is None:
        env = open_render_env(env_id, size) if render else gym.make(env_id)
    if env.observation_space.shape != policy.observation_space.shape:
        if owned:
            env.close()
        raise InvalidArgumentError(
            f"policy expects observations of shape {policy.observation_space.shape}, {env_id} gives {env.observation_space.shape}"
        )
    rng = np.random.default_rng(seed)
    clean, seen, rewards, frames, frame_steps = [], [], [], [], []
    try:
        obs, _ = env.reset(seed=seed)
        if render:
            frames.append(env.render())
            frame_steps.append(0)
        step, done = 0, False
        while not done and (max_steps is None or step < max_steps):
            require_finite(obs[None], env_id)
            with torch.no_grad():
                normalized = policy.normalize(obs[None])
                acted_on = perturb(normalized) if perturb is not None else normalized
                action = policy.to_env_action(policy.sample(acted_on, rng, deterministic))[0]
            clean.append(normalized[0].numpy())
            seen.append(acted_on[0].numpy())
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            done = bool(terminated or truncated)
            step += 1
            if render and (step % frame_every == 0 or done):
                frames.append(env.render())
                frame_steps.append(step)
    finally:
        if owned:
            env.close()
    return EpisodeTrace(
        label,
        np.array(clean, dtype=np.float32),
        np.array(seen, dtype=np.float32),
        np.array(rewards),
        frames,
        frame_steps,
    )


def attack_traces(
    policy: AttackablePolicy,
    env_id: str,
    attacks: list[str],
    *,
    eps: float | None = None,
    norm: str = "inf",
    seed: int = 10_000,
    deterministic: bool = True,
    attack_options: dict[str, dict[str, Any]] | None = None,
    budgets: dict[str, int] | None = None,
    source: Path | str | None = None,
    render: bool = False,
    max_steps: int | None = None,
    frame_every: int = 2,
    size: tuple[int, int] = PANEL_SIZE,
    worst_fits: dict[str, int] | None = None,
) -> list[EpisodeTrace]:
    """The clean episode and the same episode under each attack (fitted attacks come from the
    run's cache when :func:`~robustrl.evaluate.robustness.robustness_report` left them there;
    ``worst_fits``: per learned attack fitted several times, the fit its report's cell is, so the
    pictures show the adversary the table measured)."""
    from robustrl.config import default_eps
    from robustrl.evaluate.robustness import _fitted_attack, attack_directory, check_attacks, fit_location
    from robustrl.threat import parse_norm

    eps = default_eps(env_id) if eps is None else eps
    norm = parse_norm(norm)
    check_attacks(attacks, eps, norm, attack_options, policy, env_id)
    attack_dir = attack_directory(Path(source), eps, norm) if source is not None else None
    env = open_render_env(env_id, size) if render else gym.make(env_id)  # one GL context for every episode
    common = dict(
        seed=seed,
        deterministic=deterministic,
        render=render,
        max_steps=max_steps,
        frame_every=frame_every,
        size=size,
        env=env,
    )
    try:
        traces = [record_episode(policy, env_id, label="natural", **common)]
        for name in attacks:
            fit_dir, fit_seed = fit_location(attack_dir, seed, (worst_fits or {}).get(name, 0))
            attack, _, _ = _fitted_attack(
                name, eps, norm, policy, env_id, (attack_options or {}).get(name, {}), (budgets or {}).get(name),
                fit_dir, False, None, fit_seed,
            )  # fmt: skip
            attack.generator.manual_seed(attack.seed)
            traces.append(record_episode(policy, env_id, perturb=attack.perturb, label=name, **common))
    finally:
        env.close()
    return traces


def _annotate(frame: np.ndarray, lines: list[str], dim: bool) -> np.ndarray:
    from PIL import Image, ImageDraw

    image = Image.fromarray(np.ascontiguousarray(frame[..., :3]).astype(np.uint8))
    if dim:  # the episode of this panel has ended: its last frame, greyed
        image = Image.fromarray((np.asarray(image) * 0.55 + 255 * 0.45).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    width = max(draw.textlength(line) for line in lines) + 8
    draw.rectangle([0, 0, width, 12 * len(lines) + 4], fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((4, 2 + 12 * i), line, fill=(255, 255, 255))
    return np.asarray(image)


def side_by_side(traces: list[EpisodeTrace]) -> list[np.ndarray]:
    """One video frame per recorded step: the panels of ``traces`` left to right, each labelled
    with its name and return so far; a panel whose episode ended holds its last frame, greyed."""
    if not traces or any(not t.frames for t in traces):
        raise InvalidArgumentError("side_by_side needs traces recorded with render=True")
    length = max(len(t.frames) for t in traces)
    out = []
    for k in range(length):
        panels = []
        for trace in traces:
            index = min(k, len(trace.frames) - 1)
            steps = trace.frame_steps[index]
            ended = k >= len(trace.frames) - 1
            so_far = float(trace.rewards[:steps].sum())
            lines = [trace.label, f"return {so_far:.1f}", f"step {steps}" + (" (end)" if ended else "")]
            panels.append(_annotate(trace.frames[index], lines, dim=ended and k > len(trace.frames) - 1))
        height = max(p.shape[0] for p in panels)
        panels = [np.pad(p, ((0, height - p.shape[0]), (0, 2), (0, 0)), constant_values=255) for p in panels]
        out.append(np.concatenate(panels, axis=1)[:, :-2])
    return out


def write_video(frames: list[np.ndarray], path: Path | str, fps: float = 25.0) -> Path:
    """Write frames as ``.gif`` or ``.mp4`` (atomically: a temporary file, then a rename)."""
    import imageio.v3 as iio

    path = check_video_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        if path.suffix.lower() == ".gif":
            iio.imwrite(temporary, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)
        else:
            _write_mp4(temporary, frames, fps)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def _write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> None:
    import imageio.v2 as imageio

    h, w = frames[0].shape[:2]  # H.264 in yuv420p needs even sizes
    frames = [f[: h - h % 2, : w - w % 2] for f in frames]
    with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(frame)


def render_attacks(traces: list[EpisodeTrace], path: Path | str, fps: float = 25.0) -> Path:
    """:func:`side_by_side` of ``traces`` written to ``path`` (``.gif``/``.mp4``)."""
    return write_video(side_by_side(traces), path, fps)


def write_attack_pictures(
    policy: AttackablePolicy,
    env_id: str,
    attacks: list[str],
    *,
    video: Path | str | None = None,
    figures: Path | str | None = None,
    report: dict[str, Any] | None = None,
    frame_every: int = 2,
    fps: float = 25.0,
    **options: Any,
) -> dict[str, Path]:
    """What ``robustrl evaluate --render/--figures`` writes: ``video`` (the clean episode and the
    same seed under each attack side by side, :func:`side_by_side`), and in the folder ``figures``
    ``returns.png`` (:func:`~robustrl.report.plots.plot_return_distributions` of ``report``) and
    ``perturbation-<attack>.png`` per attack (:func:`~robustrl.report.plots.plot_perturbation`).
    ``options`` go to :func:`attack_traces` (eps, norm, seed, deterministic, attack_options,
    budgets, source, max_steps). Returns the written paths by name."""
    from robustrl.report.plots import plot_perturbation, plot_return_distributions

    if video is not None:
        check_video_path(video)
    worst_fits = {n: r["worst_fit"] for n, r in (report or {}).get("results", {}).items() if "worst_fit" in r}
    traces = attack_traces(
        policy, env_id, attacks, render=video is not None, frame_every=frame_every, worst_fits=worst_fits, **options
    )
    written: dict[str, Path] = {}
    if video is not None:
        written["video"] = render_attacks(traces, video, fps)
    if figures is not None:
        figures = Path(figures)
        figures.mkdir(parents=True, exist_ok=True)
        if report is not None:
            written["returns"] = plot_return_distributions(report, figures / "returns.png")
        space = getattr(policy, "perturbation_space", "")
        for trace in traces[1:]:
            written[f"perturbation-{trace.label}"] = plot_perturbation(
                trace, figures / f"perturbation-{trace.label}.png", space
            )
    return written
