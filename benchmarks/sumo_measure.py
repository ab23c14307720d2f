"""Sumo measurements (issue 15; Rethinking adversarial policies, Sec. 7, App. E) at the budget one
niced core allows, staged and resumable: re-running skips every finished stage and resumes a run
that was cut short.

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sumo_measure.py [--stage NAME]

Stages (in order): rate (step rate against one Ant-v5), benign (self-play), benign_eval (against a
random policy), attacks (eps_pi 0.3 / 0.7 / 1 against the benign agent), stealth (victim
observations, equal-win-rate comparison), defences (four methods at defence budget eps_pi 0.7),
post_attacks (a fresh attacker per defended victim and attack budget), defence_eval, render.
Results: runs/sumo/ (run directories), benchmarks/results/sumo.json, sumo.md and figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "sumo"
RESULTS = ROOT / "benchmarks" / "results"
STORE = RESULTS / "sumo.json"

# ---- the budget -------------------------------------------------------------------------------------
BENIGN_STEPS = 300_000  # joint env steps of self-play (the paper's agents: Robosumo's pretrained ones)
ATTACK_STEPS = 61_440  # 30 iterations  # per attack on the benign agent (the paper: 2e7)
DEFENCE_STEPS = 61_440  # per defence method (the paper: 3e7)
DEFENCE_EPS = 0.7  # the defence budget
POST_ATTACK_STEPS = 20_480  # 10 iterations: the fresh attacker against each defended victim
EPS_VALUES = (0.3, 0.7, 1.0)
METHODS = ("two-timescale", "single", "self-play", "fictitious")
MATCHES = 100  # evaluation matches (victim stochastic, attacker deterministic)
POST_MATCHES = 40
NUM_ENVS = 4
ATTACK_CHECKPOINT_EVERY = 5


def load_store() -> dict:
    return json.loads(STORE.read_text()) if STORE.exists() else {}


def save_store(store: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = STORE.with_suffix(".tmp")
    tmp.write_text(json.dumps(store, indent=1))
    os.replace(tmp, STORE)


def timed(store: dict, name: str, fn) -> None:
    """Run ``fn()`` once (its result stored under ``name`` with CPU and wall seconds)."""
    if name in store:
        print(f"[{name}] done", flush=True)
        return
    print(f"[{name}] ...", flush=True)
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    result["cpu_seconds"] = round(time.process_time() - cpu, 1)
    result["wall_seconds"] = round(time.perf_counter() - wall, 1)
    store[name] = result
    save_store(store)
    print(f"[{name}] {result['cpu_seconds']} s CPU", flush=True)


def run(learner_fn, out: Path) -> dict:
    """Train into ``out``, or resume it; returns steps and the CPU seconds this call took."""
    from robustrl.experiments.run import train

    start = 0
    if (out / "config.json").exists():
        from robustrl.policies.checkpoint import latest_checkpoint

        start = int(latest_checkpoint(out)[1].get("global_step", 0))
        result = train(resume=out)
    else:
        result = train(learner=learner_fn(), out=out)
    if result.interrupted:  # Ctrl-C: saved; stop the script, the stage is not done
        raise KeyboardInterrupt
    return {"run": str(out), "steps": result.global_step, "steps_this_call": result.global_step - start}


def rates(victim_policy, opponent, matches, seed, deterministic: bool = True) -> dict:
    from robustrl.games.sumo import play_matches, wilson_interval

    played = play_matches(victim_policy, opponent, episodes=matches, seed=seed, deterministic=deterministic)
    n = played["episodes"]
    out = {k: played[k] for k in ("episodes", "victim_wins", "draws", "victim_losses")}
    out["victim_win_rate"] = played["victim_win_rate"]
    out["victim_win_ci"] = wilson_interval(played["victim_wins"], n)
    out["attacker_win_rate"] = played["win_rate"]
    out["attacker_win_ci"] = wilson_interval(played["victim_losses"], n)
    out["attacker_non_loss_rate"] = played["non_loss_rate"]
    out["attacker_score"] = played["attacker_score"]
    out["mean_length"] = float(np.mean(played["lengths"]))
    out["joint_steps"] = int(sum(played["lengths"]))
    if "controlled_fraction" in played:
        out["controlled_fraction"] = played["controlled_fraction"]
    return out


# ---- stages ----------------------------------------------------------------------------------------
def stage_rate() -> dict:
    import gymnasium as gym

    from robustrl.envs.sumo import SumoEnv

    rng = np.random.default_rng(0)
    out = {"ant_v5": [], "sumo": []}
    for _ in range(3):  # alternate, so load changes hit both
        env = gym.make("Ant-v5")
        env.reset(seed=0)
        cpu = time.process_time()
        for _ in range(2000):
            _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 8))
            if term or trunc:
                env.reset()
        out["ant_v5"].append(2000 / (time.process_time() - cpu))
        sumo = SumoEnv()
        sumo.reset(seed=0)
        cpu = time.process_time()
        for _ in range(2000):
            _, _, term, _, _ = sumo.step({a: rng.uniform(-1, 1, 8) for a in sumo.possible_agents})
            if term["player_0"]:
                sumo.reset()
        out["sumo"].append(2000 / (time.process_time() - cpu))
    out["ant_v5_steps_per_cpu_second"] = float(np.median(out["ant_v5"]))
    out["sumo_joint_steps_per_cpu_second"] = float(np.median(out["sumo"]))
    out["ratio"] = out["ant_v5_steps_per_cpu_second"] / out["sumo_joint_steps_per_cpu_second"]
    return out


def stage_benign() -> dict:
    from robustrl.games.sumo import SumoLearner

    config = {"method": "self-play", "total_steps": BENIGN_STEPS, "num_envs": NUM_ENVS, "victim_lr": 3e-4, "seed": 0,
              "checkpoint_every": 10}  # fmt: skip
    return run(lambda: SumoLearner(config), RUNS / "benign")


def stage_benign_eval() -> dict:
    from robustrl.envs.multiagent import RandomOpponent
    from robustrl.envs.sumo import SumoEnv
    from robustrl.games.sumo import load_sumo_policy

    space = SumoEnv().action_space("player_1")
    benign = load_sumo_policy(RUNS / "benign")
    initial = load_sumo_policy(RUNS / "benign" / "checkpoints" / "iter_000000")
    return {
        "benign_vs_random": rates(benign, RandomOpponent(space, seed=1), MATCHES, 30_000),
        "benign_sampling_vs_random": rates(benign, RandomOpponent(space, seed=1), MATCHES, 30_000, deterministic=False),
        "untrained_vs_random": rates(initial, RandomOpponent(space, seed=1), MATCHES, 30_000),
    }


def stage_attack(eps: float) -> dict:
    from robustrl.games.sumo import SumoAttackLearner

    config = {"victim": str(RUNS / "benign"), "init": str(RUNS / "benign"), "eps_pi": eps, "total_steps": ATTACK_STEPS, "num_envs": NUM_ENVS,
              "seed": 0, "lr": 3e-4, "checkpoint_every": ATTACK_CHECKPOINT_EVERY}  # fmt: skip
    return run(lambda: SumoAttackLearner(config), RUNS / f"attack-eps{eps:g}")


def stage_attack_eval() -> dict:
    from robustrl.envs.multiagent import FrozenPolicy
    from robustrl.games.sumo import deployed_attacker, load_sumo_policy

    victim = load_sumo_policy(RUNS / "benign")
    out = {
        "no_attack": rates(
            victim, FrozenPolicy(load_sumo_policy(RUNS / "benign"), deterministic=True, seed=1), MATCHES, 40_000
        )
    }
    for eps in EPS_VALUES:
        out[f"{eps:g}"] = rates(victim, deployed_attacker(RUNS / f"attack-eps{eps:g}", seed=1), MATCHES, 40_000)
    return out


def stage_stealth(store: dict) -> dict:
    """Stealth at the final attackers, and at equal strength: the eps_pi = 1 checkpoint whose
    attacker score (wins + draws / 2) is closest to the final eps_pi = 0.3 attacker's (the paper
    matches win rates; here the attackers mostly force draws, so the score is what moves)."""
    from robustrl.games.sumo import deployed_attacker, load_sumo_policy, stealth_study
    from robustrl.policies.checkpoint import list_checkpoints

    finals = stealth_study(RUNS / "benign", [str(RUNS / f"attack-eps{e:g}") for e in EPS_VALUES], episodes=MATCHES)
    target = finals["attacks"][str(RUNS / "attack-eps0.3")]["attacker_score"]
    victim = load_sumo_policy(RUNS / "benign")
    candidates = {}
    for stem in list_checkpoints(RUNS / "attack-eps1")[1:-1:2]:  # the final one is measured above
        opponent = deployed_attacker(RUNS / "attack-eps1", seed=1, checkpoint=stem)
        candidates[stem.name] = rates(victim, opponent, 40, 50_000)["attacker_score"]
    candidates["final"] = finals["attacks"][str(RUNS / "attack-eps1")]["attacker_score"]
    best = min(candidates, key=lambda name: abs(candidates[name] - target))
    if best == "final":
        entry = finals["attacks"][str(RUNS / "attack-eps1")]
        matched = {
            k: entry[k]
            for k in (
                "w2",
                "w2_split_half",
                "gaussian_kl",
                "gaussian_hellinger",
                "sliced_w2",
                "win_rate",
                "non_loss_rate",
                "attacker_score",
            )
        }
    else:
        matched = _stealth_at(RUNS / "attack-eps1", RUNS / "attack-eps1" / "checkpoints" / best, finals)
    return {"finals": finals, "equal_win_rate": {"target": target, "candidates": candidates, "chosen": best, **matched}}


def _stealth_at(run_dir: Path, stem: Path, finals: dict) -> dict:
    from robustrl.envs.multiagent import FrozenPolicy
    from robustrl.games.stealth import stealth_report
    from robustrl.games.sumo import deployed_attacker, load_sumo_policy, play_matches

    victim = load_sumo_policy(RUNS / "benign")
    keep = finals["features"]
    seed = 20_000
    reference = play_matches(victim, FrozenPolicy(load_sumo_policy(RUNS / "benign"), deterministic=True, seed=seed), episodes=MATCHES,
                             seed=seed, record_observations=True)  # fmt: skip
    played = play_matches(victim, deployed_attacker(run_dir, seed=seed, checkpoint=stem), episodes=MATCHES, seed=seed,
                          record_observations=True)  # fmt: skip
    from robustrl.games.sumo import subsample

    report = stealth_report(
        subsample(reference["observations"][:, keep], 2000, seed),
        subsample(played["observations"][:, keep], 2000, seed + 1),
        seed=seed,
    )
    report["win_rate"] = played["win_rate"]
    report["non_loss_rate"] = played["non_loss_rate"]
    report["attacker_score"] = played["attacker_score"]
    return report


def stage_defence(method: str) -> dict:
    from robustrl.games.sumo import SumoLearner

    config = {"method": method, "eps_pi": DEFENCE_EPS, "total_steps": DEFENCE_STEPS, "num_envs": NUM_ENVS, "seed": 0,
              "victim_lr": 1e-4, "ratio": 10.0, "init": str(RUNS / "benign"), "attacker_init": str(RUNS / "benign"), "checkpoint_every": 10}  # fmt: skip
    return run(lambda: SumoLearner(config), RUNS / f"defend-{method}")


def stage_post_attack(method: str, eps: float) -> dict:
    from robustrl.games.sumo import SumoAttackLearner

    config = {"victim": str(RUNS / f"defend-{method}"), "benign": str(RUNS / "benign"), "init": str(RUNS / "benign"), "eps_pi": eps,
              "total_steps": POST_ATTACK_STEPS, "num_envs": NUM_ENVS, "seed": 0, "lr": 3e-4, "checkpoint_every": 5}  # fmt: skip
    result = run(lambda: SumoAttackLearner(config), RUNS / f"post-{method}-eps{eps:g}")
    from robustrl.games.sumo import deployed_attacker, load_sumo_policy

    victim = load_sumo_policy(RUNS / f"defend-{method}")
    result["eval"] = rates(victim, deployed_attacker(RUNS / f"post-{method}-eps{eps:g}", seed=1), POST_MATCHES, 60_000)
    return result


def stage_post_attack_undefended(eps: float) -> dict:
    """The no-defence row at the same attacker budget: the 20-iteration checkpoint of the attack on
    the benign agent (no learning-rate annealing, same seed: the first 20 iterations of a longer
    run are exactly a 20-iteration run)."""
    from robustrl.games.sumo import deployed_attacker, load_sumo_policy

    stem = RUNS / f"attack-eps{eps:g}" / "checkpoints" / f"iter_{POST_ATTACK_STEPS // 2048:06d}"
    victim = load_sumo_policy(RUNS / "benign")
    return {
        "eval": rates(
            victim, deployed_attacker(RUNS / f"attack-eps{eps:g}", seed=1, checkpoint=stem), POST_MATCHES, 60_000
        )
    }


def stage_defence_eval() -> dict:
    from robustrl.envs.multiagent import FrozenPolicy
    from robustrl.games.sumo import load_sumo_policy

    out = {}
    for method in METHODS:
        victim = load_sumo_policy(RUNS / f"defend-{method}")
        out[method] = rates(
            victim, FrozenPolicy(load_sumo_policy(RUNS / "benign"), deterministic=True, seed=1), POST_MATCHES, 70_000
        )
    return out


def stage_render() -> dict:
    from robustrl.games.sumo import render_matches

    path = render_matches(RUNS / "benign", [str(RUNS / f"attack-eps{e:g}") for e in EPS_VALUES],
                          RESULTS / "sumo_attacks.gif", seed=20_000, max_steps=300, size=(240, 180))  # fmt: skip
    return {"gif": str(path)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stage", default=None, help="Run only this stage (default: all, in order).")
    parser.add_argument("--report", action="store_true", help="Only write the report from the store.")
    parser.add_argument("--smoke", action="store_true", help="Tiny budgets into /tmp/sumo_smoke (checks the script).")
    args = parser.parse_args()
    if args.smoke:
        global \
            ATTACK_CHECKPOINT_EVERY, \
            RUNS, \
            RESULTS, \
            STORE, \
            BENIGN_STEPS, \
            ATTACK_STEPS, \
            DEFENCE_STEPS, \
            POST_ATTACK_STEPS, \
            MATCHES, \
            POST_MATCHES
        RESULTS = Path("/tmp/sumo_smoke")
        RUNS, STORE = RESULTS / "runs", RESULTS / "sumo.json"
        BENIGN_STEPS, ATTACK_STEPS, DEFENCE_STEPS, POST_ATTACK_STEPS = 2048, 2 * 2048, 2048, 2048
        MATCHES, POST_MATCHES = 4, 2
        ATTACK_CHECKPOINT_EVERY = 1
    if args.report:
        print(f"report -> {write_report(load_store())}")
        return
    import torch

    torch.set_num_threads(1)
    store = load_store()
    stages = [
        ("rate", stage_rate),
        ("benign", stage_benign),
        ("benign_eval", stage_benign_eval),
        *[(f"attack_{e:g}", lambda e=e: stage_attack(e)) for e in (1.0, 0.3, 0.7)],
        ("attack_eval", stage_attack_eval),
        ("stealth", lambda: stage_stealth(store)),
        *[(f"defence_{m}", lambda m=m: stage_defence(m)) for m in METHODS],
        *[(f"post_none_{e:g}", lambda e=e: stage_post_attack_undefended(e)) for e in EPS_VALUES],
        *[(f"post_{m}_{e:g}", lambda m=m, e=e: stage_post_attack(m, e)) for m in METHODS for e in EPS_VALUES],
        ("defence_eval", stage_defence_eval),
        ("render", stage_render),
    ]
    for name, fn in stages:
        if args.stage is None or args.stage == name:
            try:
                timed(store, name, fn)
            except Exception as error:  # record and go on: later stages may not need this one
                print(f"[{name}] failed: {type(error).__name__}: {error}", flush=True)
                if args.stage is not None:
                    raise
    print(f"report -> {write_report(load_store())}", flush=True)


# ---- the report ------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


def _ci(ci) -> str:
    return f"[{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]%"


def write_report(store: dict) -> Path:
    """benchmarks/results/sumo.md and the figures, from what the store holds (partial is fine)."""
    from robustrl.report.sumo import plot_attack_curves, plot_defence_curves, plot_stealth, read_progress

    lines = ["# Sumo: partial-control adversarial policies, stealth and defence (issue 15)", ""]
    lines += [
        "Generated by `benchmarks/sumo_measure.py` (resumable; `nice -n 19`, `OMP_NUM_THREADS=1`, one core shared "
        "with other jobs). Paper: *Rethinking adversarial policies* (ICLR 2024), Sec. 7 and App. E; its agents "
        "train 3e7 (defence) and 2e7 (attack) steps. "
        f"**Ours train {BENIGN_STEPS:.1e} (self-play), {ATTACK_STEPS:.1e} (each attack), {DEFENCE_STEPS:.1e} (each defence) "
        f"and {POST_ATTACK_STEPS:.1e} (each post-defence attacker) joint steps: 1/100 to 1/1500 of the paper's budget.** Every number "
        "below is one seed.",
        "",
    ]
    cpu_total = sum(v.get("cpu_seconds", 0) for v in store.values() if isinstance(v, dict))
    lines.append(f"CPU time of all stages so far: {cpu_total / 60:.0f} min.")
    lines.append("")
    if "rate" in store:
        r = store["rate"]
        lines += [
            "## Cost",
            "",
            f"- Ant-v5 (random actions): {r['ant_v5_steps_per_cpu_second']:.0f} steps per CPU second; the sumo arena "
            f"(two Ants, contacts between them): {r['sumo_joint_steps_per_cpu_second']:.0f} joint steps per CPU second "
            f"({r['ratio']:.1f}x an Ant step).",
        ]
        for name in ("benign", "attack_1", "defence_two-timescale", "defence_fictitious", "post_two-timescale_1"):
            entry = store.get(name)
            if entry and entry.get("steps"):
                steps = entry.get("steps_this_call", entry["steps"])
                lines.append(
                    f"- {name}: {1e3 * entry['cpu_seconds'] / steps:.2f} ms CPU per joint step over the whole stage "
                    f"(env, every policy's forward passes, PPO updates, checkpoints; {steps} steps in "
                    f"{entry['cpu_seconds'] / 60:.1f} CPU min)"
                )
        lines.append("")
    if "benign_eval" in store:
        b = store["benign_eval"]
        lines += ["## Benign agents (self-play)", ""]
        for key, label in (
            ("benign_vs_random", f"self-play agent ({BENIGN_STEPS:.1e} steps), mean action"),
            ("benign_sampling_vs_random", "the same agent sampling its actions"),
            ("untrained_vs_random", "untrained policy, mean action"),
        ):
            e = b[key]
            lines.append(
                f"- {label} vs a uniformly random policy, {e['episodes']} matches: wins {_pct(e['victim_win_rate'])} "
                f"(95% Wilson {_ci(e['victim_win_ci'])}), draws {e['draws']}, losses {e['victim_losses']}; mean length {e['mean_length']:.0f} steps"
            )
        lines.append("")
    if "attack_eval" in store:
        a = store["attack_eval"]
        lines += [f"## Attacks on the benign agent ({ATTACK_STEPS:.1e} steps each, {MATCHES} matches)", "",
                  "| opponent | attacker win rate (95% CI) | non-loss rate | attacker score | share of steps controlled |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for key, label in [("no_attack", "benign agent (no attack)")] + [
            (f"{e:g}", f"eps_pi = {e:g}") for e in EPS_VALUES
        ]:
            e = a[key]
            lines.append(
                f"| {label} | {_pct(e['attacker_win_rate'])} {_ci(e['attacker_win_ci'])} | {_pct(e['attacker_non_loss_rate'])} | "
                f"{e['attacker_score']:.2f} | {e.get('controlled_fraction', float('nan')):.2f} |"
            )
        lines += ["", "Training curves (Figure 6 in spirit): `sumo_attack_curves.png`.", ""]
        plot_attack_curves(
            {f"eps_pi={e:g}": RUNS / f"attack-eps{e:g}" for e in EPS_VALUES}, RESULTS / "sumo_attack_curves.png"
        )
    if "stealth" in store:
        s = store["stealth"]
        finals = s["finals"]
        lines += ["## Stealth (victim observations; the 10 highest-variance features of the unattacked play)", "",
                  f"Features compared (indices into the 125-number observation): {finals['features']}.", "",
                  "| attacker | attacker score | win rate | W2 (split-half baseline) | Gaussian KL | Hellinger | sliced W2 |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for e in finals["attacks"].values():
            lines.append(
                f"| eps_pi = {e['eps_pi']:g}, final | {e['attacker_score']:.2f} | {_pct(e['win_rate'])} | {e['w2']:.3f} ({e['w2_split_half']:.3f}) | "
                f"{e['gaussian_kl']:.3f} | {e['gaussian_hellinger']:.3f} | {e['sliced_w2']:.3f} |"
            )
        m = s["equal_win_rate"]
        lines.append(
            f"| eps_pi = 1 at {m['chosen']} (closest attacker score to eps_pi = 0.3's {m['target']:.2f}) | {m['attacker_score']:.2f} | {_pct(m['win_rate'])} | "
            f"{m['w2']:.3f} ({m['w2_split_half']:.3f}) | {m['gaussian_kl']:.3f} | {m['gaussian_hellinger']:.3f} | {m['sliced_w2']:.3f} |"
        )
        lines += ["", f"Candidates for the equal-win-rate comparison (40 matches each; final: {MATCHES}): {m['candidates']}.", "",
                  "Figure: `sumo_stealth.png` (feature means; distances).", ""]  # fmt: skip
        plot_stealth(finals, RESULTS / "sumo_stealth.png")
    defended = [m for m in METHODS if f"defence_{m}" in store]
    if defended:
        lines += [f"## Defences (eps_pi = {DEFENCE_EPS:g} in training, {DEFENCE_STEPS:.1e} joint steps, victim lr 1e-4, ratio 10)", "",
                  "| method | mean score, 2nd half (std) | mean gradient norm, 2nd half |", "|---|---|---|"]  # fmt: skip
        curves = {}
        for method in defended:
            p = read_progress(RUNS / f"defend-{method}")
            half = len(p["score"]) // 2
            score, grad = p["score"][half:], p["gradient_norm"][half:]
            lines.append(f"| {method} | {np.nanmean(score):.3f} ({np.nanstd(score):.3f}) | {np.nanmean(grad):.3f} |")
            curves[method] = RUNS / f"defend-{method}"
        plot_defence_curves(curves, RESULTS / "sumo_defence_curves.png")
        lines += ["", "Self-play's score is against itself (no attacker): not comparable with the others'. Fictitious play's "
                  "gradient norm is estimated on half the batch (its victim collects half the iteration's steps), "
                  "so it is noisier and larger by construction. Curves "
                  "(Figures 4a, 4b): `sumo_defence_curves.png`.", ""]  # fmt: skip
    rows = [("no defence", "none")] + [(m, m) for m in METHODS]
    if any(f"post_{key}_{e:g}" in store for _, key in rows for e in EPS_VALUES):
        lines += [f"## Attacker score against each victim (fresh PPO attacker, {POST_ATTACK_STEPS:.1e} steps, {POST_MATCHES} matches; Table 4 / Figure 4c in spirit)", "",
                  "Attacker score = (wins + draws / 2) / matches; a lower score is a more robust victim.", "",
                  "| victim | " + " | ".join(f"attack eps_pi = {e:g}" for e in EPS_VALUES) + " | mean |", "|---" * 5 + "|"]  # fmt: skip
        for label, key in rows:
            cells, values = [], []
            for e in EPS_VALUES:
                entry = store.get(f"post_{key}_{e:g}")
                if entry is None:
                    cells.append("-")
                    continue
                v = entry["eval"]
                values.append(v["attacker_score"])
                cells.append(f"{v['attacker_score']:.2f} (win {_pct(v['attacker_win_rate'])})")
            mean = f"{np.mean(values):.2f}" if len(values) == len(EPS_VALUES) else "-"
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {mean} |")
        lines += ["| paper, Table E.4: no defence | 0.59 | 0.78 | 0.90 | 0.76 |",
                  "| paper, Table E.4: two-timescale, defence budget 0.7 | 0.41 | 0.43 | 0.53 | 0.46 |", ""]  # fmt: skip
    if "defence_eval" in store:
        lines += [f"Defended victims against the benign agent ({POST_MATCHES} matches): " + ", ".join(
            f"{m} wins {_pct(v['victim_win_rate'])}" for m, v in store["defence_eval"].items() if isinstance(v, dict)) + ".", ""]  # fmt: skip
    if "render" in store:
        lines += [f"Side-by-side GIF of the three attacks (same seed): `{Path(store['render']['gif']).name}`.", ""]
    lines += claims(store)
    path = RESULTS / "sumo.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def claims(store: dict) -> list[str]:
    """Each claim marked holds / does not hold / not measurable, by the rule stated beside it."""
    out = ["## The claims, marked", ""]
    if "benign_eval" in store:
        e = store["benign_eval"]["benign_vs_random"]
        ok = e["victim_win_rate"] >= 0.9 and e["victim_win_ci"][0] >= 0.85
        out.append(
            f"- Benign agents beat a random policy nearly always (issue; rule: win rate >= 90% and the CI's lower end >= 85%): "
            f"**{'holds' if ok else 'does not hold'}** ({_pct(e['victim_win_rate'])}, CI {_ci(e['victim_win_ci'])})"
            + (
                f"; **but the test is uninformative here**: the untrained policy acting by its mean action (near zero "
                f"torques: it stands still) wins {_pct(u['victim_win_rate'])}, because a random Ant falls or walks off "
                "the ring by itself within about 40-70 steps. It does not show that self-play learned to fight: against a random opponent the self-play agent is no better than standing still."
                if (u := store["benign_eval"]["untrained_vs_random"])["victim_win_rate"] >= e["victim_win_rate"]
                else "."
            )
        )
    if "stealth" in store:
        m = store["stealth"]["equal_win_rate"]
        local = store["stealth"]["finals"]["attacks"][str(RUNS / "attack-eps0.3")]
        gap = abs(m["attacker_score"] - local["attacker_score"])
        keys = ("w2", "gaussian_kl", "gaussian_hellinger")
        smaller = [local[k] < m[k] for k in keys]
        base = store.get("attack_eval", {}).get("no_attack", {}).get("attacker_score", 0.0)
        if local["attacker_score"] - base < 0.1:
            verdict = "not measurable at this budget (the eps_pi = 0.3 attacker's score is within 0.1 of no attack)"
        elif gap > 0.1:
            verdict = f"not measurable at this budget (no eps_pi = 1 checkpoint within 0.1 of its attacker score; gap {gap:.2f})"
        elif all(smaller):
            verdict = "holds"
        elif not any(smaller):
            verdict = "does not hold"
        else:
            verdict = "does not hold (the measures disagree)"
        out.append(
            "- Q1, a constrained attack (eps_pi = 0.3) shifts the victim's observations less than an unconstrained one "
            "(eps_pi = 1) of equal strength (rule: W2, Gaussian KL and Hellinger all smaller; attacker scores within 0.1 "
            "(the paper matches win rates; our attackers force draws, not wins)): "
            f"**{verdict}** (W2 {local['w2']:.3f} vs {m['w2']:.3f}, split-half baseline {local['w2_split_half']:.3f}; "
            f"KL {local['gaussian_kl']:.3f} vs {m['gaussian_kl']:.3f}; Hellinger {local['gaussian_hellinger']:.3f} vs "
            f"{m['gaussian_hellinger']:.3f}; attacker scores {local['attacker_score']:.2f} vs {m['attacker_score']:.2f}, "
            f"win rates {_pct(local['win_rate'])} vs {_pct(m['win_rate'])})."
        )
    if "defence_two-timescale" in store and "defence_single" in store:
        from robustrl.report.sumo import read_progress

        stats = {}
        for method in ("two-timescale", "single"):
            p = read_progress(RUNS / f"defend-{method}")
            half = len(p["score"]) // 2
            grad = p["gradient_norm"][half:]
            stats[method] = (np.nanmean(grad), np.nanstd(p["score"][half:]), np.nanstd(grad) / math.sqrt(len(grad)))
        difference = stats["single"][0] - stats["two-timescale"][0]
        two_se = 2 * math.hypot(stats["single"][2], stats["two-timescale"][2])
        if difference <= 0:
            grad_verdict = "does not hold"
        elif difference < two_se:
            grad_verdict = f"does not hold beyond noise (smaller by {difference:.3f} < 2 SE = {two_se:.3f})"
        else:
            grad_verdict = "holds"
        std_ok = stats["two-timescale"][1] < stats["single"][1]
        out.append(
            "- Q2, two timescales give a smaller gradient norm than a single timescale (Figure 4b; rule: mean over the "
            f"second half of training, smaller by more than two standard errors): **{grad_verdict}** ({stats['two-timescale'][0]:.3f} vs "
            f"{stats['single'][0]:.3f}); and a steadier score (Figure 4a; rule: smaller std of the per-iteration score over "
            f"the second half; one seed, no test of significance): **{'holds nominally' if std_ok else 'does not hold'}** "
            f"({stats['two-timescale'][1]:.3f} vs {stats['single'][1]:.3f})."
        )
    means = {}
    for key in ("none", *METHODS):
        values = [
            store[f"post_{key}_{e:g}"]["eval"]["attacker_score"] for e in EPS_VALUES if f"post_{key}_{e:g}" in store
        ]
        if len(values) == len(EPS_VALUES):
            means[key] = float(np.mean(values))
    if set(METHODS) <= set(means):
        best = min(METHODS, key=means.get)
        others = sorted(means[m] for m in METHODS if m != "two-timescale")
        margin = others[0] - means["two-timescale"]
        se = 0.5 / math.sqrt(POST_MATCHES * len(EPS_VALUES))  # the largest standard error of a mean score
        if best != "two-timescale":
            verdict = f"does not hold ({best} is lowest)"
        elif margin < 2 * se:
            verdict = f"does not hold beyond noise (lowest by {margin:.3f} < 2 SE = {2 * se:.3f})"
        else:
            verdict = "holds"
        out.append(
            "- Q3, two-timescale training gives the most robust victim (Figure 4c; rule: lowest mean attacker score over "
            f"attack budgets 0.3 / 0.7 / 1, by more than two standard errors): **{verdict}** ("
            + ", ".join(f"{k} {v:.3f}" for k, v in means.items())
            + ")."
        )
        if "none" in means:
            ok = means["two-timescale"] < means["none"] - 2 * se
            out.append(
                "- Table E.4: a defended victim (two-timescale, defence budget 0.7) is more robust than the undefended one "
                f"(rule: lower mean attacker score by more than two SE): **{'holds' if ok else 'does not hold'}** "
                f"({means['two-timescale']:.3f} vs {means['none']:.3f})."
            )
    else:
        out.append("- Q3 (most robust victim) and Table E.4: not measured yet (post-defence attacks incomplete).")
    out.append(
        "- Robustness under a mismatch of defence and attack budgets (Table E.4's other rows): not measured (one defence budget, 0.7)."
    )
    out.append("")
    return out


if __name__ == "__main__":
    sys.exit(main())
