"""Issue 17, item 5: where is a broken seed brittle? On the states it trained on, or on the states a
learned adversary drives it to?

BAR-PPO's robust term (BARPO paper, eq. 10 / Algorithm 3) is a surrogate at the observation in the
eps ball that maximises KL(pi(.|s) || pi(.|s_hat)), over the states its own rollouts visit. A
learned adversary (SA-RL, PA-AD) steers the agent over many steps, so it can take it to states the
rollouts rarely saw, where nothing asked the policy to be smooth. This script measures, per agent
of the given studies that holds a fitted learned adversary:

- ``kl natural``: the ball's worst action divergence found by MAD (the larger of the table's 10
  SGLD steps and 50), over the clean states of natural episodes;
- ``kl attacked``: the same over the clean states of episodes under the agent's own strongest
  learned adversary (the attack of its report's learned worst, its cached fit replayed: the
  ``transfer`` attack pointed at the agent itself);
- ``kl caused``: the KL that adversary's own perturbations cause, per state;

the median and the 90th percentile of each, and the agent's learned-attack worst / natural
(broken below 0.5). If the broken agents differ from the others only on the attacked states, the
robust term was met where it was asked and the gap is the state distribution (training against
the adversary's states would close it); if they differ nowhere, smoothness in KL does not decide
who breaks.

    python benchmarks/brittle_states.py runs/studies/barpo_reliability runs/studies/barpo_wc_reliability
"""

from __future__ import annotations

import argparse
import json
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.progress import track

from robustrl.attacks import make_attack
from robustrl.config import learned_adversary_on
from robustrl.errors import InvalidArgumentError
from robustrl.evaluate.reports import report_path
from robustrl.experiments.spec import parse_evaluation
from robustrl.experiments.study import report_eps
from robustrl.policies.checkpoint import load_policy
from robustrl.policies.episodes import run_episodes
from robustrl.threads import torch_threads
from robustrl.threat.objectives import action_divergence

ROOT = Path(__file__).resolve().parents[1]
BROKEN = 0.5  # issue 17, item 5
MAD_STEPS = 50
LEARNED = ("sa-rl", "pa-ad")
TINY_KL = 1e-4  # below this a p90 is float noise (a policy whose actions barely depend on the state)


def visited_states(policy, env_id: str, episodes: int, seed: int, attack=None) -> tuple[torch.Tensor, np.ndarray, float]:
    """The clean (normalised) states of ``episodes`` deterministic episodes, under ``attack`` or
    none, the KL the attack's perturbation causes at each (zeros without one), and the episodes'
    mean return. The perturbation hook sees each state before the attack does. One env, episodes
    one after another: a vector env keeps stepping the envs that met their quota, whose extra
    (mostly early) states would dilute the attacked episodes'."""
    seen: list[torch.Tensor] = []
    caused: list[np.ndarray] = []

    def record(obs: torch.Tensor) -> torch.Tensor:
        seen.append(obs.clone())
        if attack is None:
            caused.append(np.zeros(len(obs)))
            return obs
        perturbed = attack.perturb(obs)
        caused.append(action_divergence(policy, obs, perturbed).numpy())
        return perturbed

    results = run_episodes(policy, env_id, episodes, seed=seed, perturb=record, num_envs=1)
    return torch.cat(seen), np.concatenate(caused), results.mean


def worst_divergence(policy, env_id: str, states: torch.Tensor, eps: float, norm: str, seed: int) -> np.ndarray:
    """Per state, the worst KL(pi(.|s) || pi(.|s_hat)) in the ball that MAD finds: the inner
    objective of BAR-PPO's robust term. The larger of two solves, the table's (10 SGLD steps of eps/10)
    and a longer one (50 of eps/50): neither finds more than the other on every network (on a
    random Pendulum actor the longer one finds less)."""
    solves = []
    for steps in (10, MAD_STEPS):
        mad = make_attack("mad", eps, norm, seed=seed, steps=steps)
        mad.bind(policy, env_id)
        found = []
        for chunk in states.split(4096):
            with torch.no_grad():
                found.append(action_divergence(policy, chunk, mad.perturb(chunk)).numpy())
        solves.append(np.concatenate(found))
    return np.maximum(*solves)


def agent_row(run_dir: Path, env_id: str, label: str, seed: int, eps: float, norm: str, episodes: int,
              episode_seed: int) -> dict | None:  # fmt: skip
    report = json.loads(report_path(run_dir, eps, norm).read_text())["results"]
    learned = {a: report[a]["mean"] for a in LEARNED if a in report}
    if not learned:
        return None
    strongest = min(learned, key=learned.get)  # the attack of the agent's learned worst
    policy = load_policy(run_dir)
    adversary = make_attack("transfer", eps, norm, seed=episode_seed, source=str(run_dir), attack=strongest)
    try:
        adversary.bind(policy, env_id)
    except InvalidArgumentError as error:  # a report whose fitted adversary was not kept (an older snapshot)
        print(f"skipped {run_dir.name}: {error}")
        return None
    natural_states, _, natural = visited_states(policy, env_id, episodes, episode_seed)
    attacked_states, kl_caused, attacked = visited_states(policy, env_id, episodes, episode_seed, adversary)
    kl_natural = worst_divergence(policy, env_id, natural_states, eps, norm, episode_seed)
    kl_attacked = worst_divergence(policy, env_id, attacked_states, eps, norm, episode_seed)
    worst, clean = learned[strongest], report["natural"]["mean"]
    return {
        "env": env_id, "label": label, "family": family(run_dir), "run": run_dir.name, "seed": seed, "natural": clean,
        "adversary": strongest,
        "learned_worst": worst, "ratio": worst / clean, "broken": worst < BROKEN * clean,
        # the replay's own episodes (fewer, other starts): whether they show the break the report has
        "replayed_natural": natural, "replayed_attacked": attacked,
        "kl_natural_median": float(np.median(kl_natural)), "kl_natural_p90": float(np.quantile(kl_natural, 0.9)),
        "kl_attacked_median": float(np.median(kl_attacked)), "kl_attacked_p90": float(np.quantile(kl_attacked, 0.9)),
        # what the adversary uses of it: the KL its own perturbation causes, per state
        "kl_caused_median": float(np.median(kl_caused)), "kl_caused_p90": float(np.quantile(kl_caused, 0.9)),
        "states_natural": len(kl_natural), "states_attacked": len(kl_attacked),
        # the width of the trained Gaussian, mean over action dims (exp(log_std); nan without one): a
        # wide policy was trained on its own large action deviations (ARPO w/o g ends at ~0.9 on Hopper)
        "action_std": float(policy.log_std.exp().mean()) if hasattr(policy, "log_std") else float("nan"),
    }  # fmt: skip


FAMILIES = {"bar-ppo": "tab:blue", "bar-ppo+atla": "tab:olive", "bar-ppo-wocar": "tab:cyan", "ar-ppo": "tab:orange",
            "sa-ppo": "tab:green", "wocar-ppo": "tab:purple", "radial-ppo": "tab:brown", "ppo": "tab:red"}  # family -> colour
MARKERS = {"Hopper-v5": "o", "Walker2d-v5": "s", "HalfCheetah-v5": "^", "Ant-v5": "D"}


def family(run_dir: Path) -> str:
    """The agent's training method from its saved config, not its label: a label is the study's
    name for a setting, and ``bar-ppo-k1-atla`` (a learned adversary in training) or
    ``bar-ppo-wocar`` (another objective) begin like BAR-PPO's kappa and guidance variants, which
    a label prefix lumped together with them. Variants of one objective (kappa, guidance, inner
    steps, warm-up) stay one family; a learned adversary in the loop is its own (``+atla``)."""
    config = json.loads((run_dir / "config.json").read_text())
    return config["algo"] + ("+atla" if learned_adversary_on(config.get("atla")) else "")


def plot(table: pd.DataFrame, path: Path) -> None:
    """Learned-attack worst / natural against the ball's worst KL on the attacked states: if
    smoothness decided who breaks, the broken agents (below the dashed line) would sit right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.2, 4.8))
    for row in table.itertuples():
        axis.scatter(max(row.kl_attacked_p90, TINY_KL), row.ratio, marker=MARKERS.get(row.env, "o"),
                     c=FAMILIES.get(row.family, "grey"), alpha=0.8)  # fmt: skip
    for name in dict.fromkeys(table["family"]):
        axis.scatter([], [], c=FAMILIES.get(name, "grey"), label=name)
    for env in dict.fromkeys(table["env"]):
        axis.scatter([], [], marker=MARKERS.get(env, "o"), c="grey", label=env)
    axis.axhline(BROKEN, ls="--", c="k", lw=0.8)
    axis.set_xscale("log")
    axis.set_xlabel("90th pct of the ball's worst KL (MAD) on the states of episodes under the agent's learned adversary")
    axis.set_ylabel("learned-attack worst / natural (broken below the line)")
    axis.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _ratio(attacked: float, natural: float) -> str:
    """The p90 of the attacked states over the natural ones; "-" where both are float noise."""
    return "-" if max(attacked, natural) < TINY_KL else f"{attacked / max(natural, TINY_KL):.1f}"


def summary_lines(table: pd.DataFrame) -> list[str]:
    """Per task (the KL scales differ by task), the medians of broken and unbroken robust agents
    (PPO's KL is two orders larger: its own row), and the rank correlation over robust agents."""
    lines = ["| task | agents | n | KL natural p90 | KL attacked p90 | KL caused p90 | action std |", "|---|---|---:|---:|---:|---:|---:|"]
    # PPO by its family where the table has one (a PPO run labelled otherwise is still PPO)
    is_ppo = table["family"] == "ppo" if "family" in table else table["label"] == "ppo"
    for env, here in table.groupby("env", sort=False):
        ppo = is_ppo[here.index]
        groups = [("robust, broken", here[~ppo & here["broken"]]), ("robust, not broken", here[~ppo & ~here["broken"]]),
                  ("ppo", here[ppo])]  # fmt: skip
        for name, rows in groups:
            if len(rows):
                std = rows["action_std"].median() if "action_std" in rows else float("nan")  # older tables lack it
                lines.append(f"| {env} | {name} | {len(rows)} | {rows['kl_natural_p90'].median():.3f} | "
                             f"{rows['kl_attacked_p90'].median():.3f} | {rows['kl_caused_p90'].median():.3f} | {std:.2f} |")  # fmt: skip
    robust = table[~is_ppo]
    if len(robust) > 2:
        rank = robust["kl_attacked_p90"].corr(robust["ratio"], method="spearman")
        lines += ["", f"Robust agents ({len(robust)}, every task): Spearman rank correlation of the attacked states' worst "
                  f"KL (p90) with learned worst / natural: {rank:+.2f}."]  # fmt: skip
        if "action_std" in robust:
            # per task and within BAR-PPO: width is mostly a method's trait (ARPO w/o g ends ~0.9 wide
            # on Hopper, BAR-PPO ~0.3), so a correlation over methods would rank methods
            cells = []
            for env, here in robust[robust["family"] == "bar-ppo"].groupby("env", sort=False):
                here = here.dropna(subset=["action_std"])
                if len(here) > 2 and here["action_std"].nunique() > 1:
                    cells.append(f"{env} {here['action_std'].corr(here['ratio'], method='spearman'):+.2f} ({len(here)} agents)")
            if cells:
                lines.append("BAR-PPO agents, per task: Spearman rank correlation of the action std with learned worst / "
                             f"natural: {'; '.join(cells)} (positive if a wider policy, trained on larger deviations of its "
                             "own actions, were what keeps a seed unbroken).")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("studies", nargs="+", type=Path, help="study directories whose agents hold learned-attack fits")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per condition (default 5)")
    parser.add_argument("--methods", nargs="*", help="method labels (default: every agent with a learned fit)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "brittle_states.md")
    args = parser.parse_args()
    jobs = []
    for study in args.studies:
        status = json.loads((study / "status.json").read_text())["runs"]
        # the study's own evaluation (eps may be a list: the table's first; its norm)
        evaluation = parse_evaluation(json.loads((study / "study.json").read_text())["spec"].get("evaluation") or {})
        for name, entry in status.items():
            if entry.get("evaluate") == "done" and (not args.methods or entry["label"] in args.methods):
                eps = evaluation.eps if evaluation.eps is not None else report_eps(entry["env"])
                jobs.append((study / "runs" / name, entry["env"], entry["label"], int(entry["seed"]), eps, evaluation.norm))
    rows = []
    with torch_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for run_dir, env_id, label, seed, eps, norm in track(jobs, description="brittle states"):
            row = agent_row(run_dir, env_id, label, seed, eps, norm, args.episodes, episode_seed=20_000)
            if row is not None:
                rows.append(row)
    if not rows:
        raise SystemExit("no agent measured: none of these studies' evaluated agents holds a fitted learned attack")
    # a run two studies share (copied with --reuse-from) is one agent: its row with the most
    # fits, i.e. the lowest learned worst
    table = pd.DataFrame(rows).sort_values("ratio").drop_duplicates("run").reset_index(drop=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(table.to_dict("records"), indent=1))
    plot(table, args.out.with_suffix(".png"))
    lines = [
        "# Where broken seeds are brittle: natural states or the adversary's (issue 17, item 5)", "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python benchmarks/brittle_states.py "
        f"{' '.join(str(s) for s in args.studies)} --episodes {args.episodes}`. Per agent: its learned-attack worst / "
        f"natural (from its report; broken below {BROKEN}) and the attack that gave it; then {args.episodes} deterministic "
        "episodes natural and under that attack's cached adversary (replayed: other starts, fewer episodes than the "
        "report's, so they may not show the break; 'replay' column), and over every clean state those episodes visit, "
        "the worst KL(pi(.|s) || pi(.|s_hat)) in the eps ball (MAD: the larger of 10 SGLD steps of eps/10 and "
        f"{MAD_STEPS} of eps/{MAD_STEPS}; the inner objective of BAR-PPO's robust term), median and 90th percentile, "
        "and the KL the adversary's own perturbations cause; and the trained policy's action std (exp(log_std), mean over "
        "action dimensions).", "",
        "| task | method | seed | natural | learned worst / natural (attack) | replay: natural / attacked | "
        "KL natural states (median / p90) | KL attacked states (median / p90) | p90 attacked / natural | KL caused (median / p90) | action std |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for r in table.sort_values(["env", "label", "seed"]).itertuples():
        mark = " **broken**" if r.broken else ""
        lines.append(f"| {r.env} | {r.label} | {r.seed} | {r.natural:.0f} | {r.ratio:.2f}{mark} ({r.adversary}) | "
                     f"{r.replayed_natural:.0f} / {r.replayed_attacked:.0f} | {r.kl_natural_median:.3f} / {r.kl_natural_p90:.3f} | "
                     f"{r.kl_attacked_median:.3f} / {r.kl_attacked_p90:.3f} | {_ratio(r.kl_attacked_p90, r.kl_natural_p90)} | "
                     f"{r.kl_caused_median:.3f} / {r.kl_caused_p90:.3f} | {r.action_std:.2f} |")  # fmt: skip
    lines += ["", "Medians per task:", "", *summary_lines(table)]
    lines += ["", f"![worst / natural against worst KL per agent]({args.out.with_suffix('.png').name})"]
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
