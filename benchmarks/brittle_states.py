"""Issue 17, item 5: where is a broken seed brittle? On the states it trained on, or on the states a
learned adversary drives it to?

BAR-PPO's robust term (BARPO paper, eq. 10 / Algorithm 3) asks the policy to change little inside
the eps ball around the states its own rollouts visit. A learned adversary (SA-RL) steers the
agent over many steps, so it can take it to states the rollouts rarely saw, where nothing asked
the policy to be smooth. This script measures, per agent of the reliability studies:

- ``kl natural``: the ball's worst action divergence, KL(pi(.|s) || pi(.|s_hat)) maximised by MAD
  (the larger of the table's 10 SGLD steps and 50), over the clean states of natural episodes;
- ``kl sa-rl``: the same over the clean states of episodes under the agent's own worst SA-RL
  adversary (its cached fit, replayed: the ``transfer`` attack pointed at the agent itself);

the median and the 90th percentile of each, and the agent's learned-attack worst / natural
(broken below 0.5). If the broken agents differ from the others only on the SA-RL states, the
robust term was met where it was asked and the gap is the state distribution: what would close it
is training against the adversary's states (ATLA-style alternation), not a harder inner solve.

    python benchmarks/brittle_states.py runs/studies/barpo_reliability runs/studies/barpo_wc_reliability
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.progress import track

from robustrl.attacks import make_attack
from robustrl.errors import InvalidArgumentError
from robustrl.evaluate.reports import report_path
from robustrl.experiments.study import report_eps
from robustrl.policies.checkpoint import load_policy
from robustrl.policies.episodes import run_episodes
from robustrl.threads import torch_threads
from robustrl.threat.objectives import action_divergence

ROOT = Path(__file__).resolve().parents[1]
BROKEN = 0.5  # issue 17, item 5
MAD_STEPS = 50
LEARNED = ("sa-rl", "pa-ad")


def visited_states(policy, env_id: str, episodes: int, seed: int, attack=None) -> tuple[torch.Tensor, np.ndarray, float]:
    """The clean (normalised) states of ``episodes`` deterministic episodes, under ``attack`` or
    none, the KL the attack's perturbation causes at each (zeros without one), and the episodes'
    mean return. The perturbation hook sees each state before the attack does."""
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

    results = run_episodes(policy, env_id, episodes, seed=seed, perturb=record)
    return torch.cat(seen), np.concatenate(caused), results.mean


def worst_divergence(policy, env_id: str, states: torch.Tensor, eps: float, seed: int) -> np.ndarray:
    """Per state, the worst KL(pi(.|s) || pi(.|s_hat)) in the ball that MAD finds: the quantity
    BAR-PPO's robust term bounds. The larger of two solves, the table's (10 SGLD steps of eps/10)
    and a longer one (50 of eps/50): neither finds more than the other on every network (on a
    random Pendulum actor the longer one finds less)."""
    solves = []
    for steps in (10, MAD_STEPS):
        mad = make_attack("mad", eps, seed=seed, steps=steps)
        mad.bind(policy, env_id)
        found = []
        for chunk in states.split(4096):
            with torch.no_grad():
                found.append(action_divergence(policy, chunk, mad.perturb(chunk)).numpy())
        solves.append(np.concatenate(found))
    return np.maximum(*solves)


def agent_row(run_dir: Path, env_id: str, label: str, eps: float, episodes: int, seed: int) -> dict | None:
    report = json.loads(report_path(run_dir, eps).read_text())["results"]
    learned = {a: report[a]["mean"] for a in LEARNED if a in report}
    if "sa-rl" not in learned:
        return None
    policy = load_policy(run_dir)
    adversary = make_attack("transfer", eps, seed=seed, source=str(run_dir), attack="sa-rl")
    try:
        adversary.bind(policy, env_id)
    except InvalidArgumentError as error:  # a report whose fitted adversary was not kept (an older snapshot)
        print(f"skipped {run_dir.name}: {error}")
        return None
    natural_states, _, natural = visited_states(policy, env_id, episodes, seed)
    attacked_states, kl_caused, attacked = visited_states(policy, env_id, episodes, seed, adversary)
    kl_natural = worst_divergence(policy, env_id, natural_states, eps, seed)
    kl_attacked = worst_divergence(policy, env_id, attacked_states, eps, seed)
    worst = min(learned.values())
    return {
        "env": env_id, "label": label, "run": run_dir.name, "seed": int(run_dir.name.split("-s")[-1].split("-")[0]),
        "natural": report["natural"]["mean"], "learned_worst": worst, "ratio": worst / report["natural"]["mean"],
        "broken": worst < BROKEN * report["natural"]["mean"], "replayed_natural": natural, "replayed_sa_rl": attacked,
        "kl_natural_median": float(np.median(kl_natural)), "kl_natural_p90": float(np.quantile(kl_natural, 0.9)),
        "kl_sa_rl_median": float(np.median(kl_attacked)), "kl_sa_rl_p90": float(np.quantile(kl_attacked, 0.9)),
        # what the adversary uses of it: the KL its own perturbation causes, per state
        "kl_caused_median": float(np.median(kl_caused)), "kl_caused_p90": float(np.quantile(kl_caused, 0.9)),
        "states_natural": len(kl_natural), "states_sa_rl": len(kl_attacked),
    }  # fmt: skip


def plot(table: pd.DataFrame, path: Path) -> None:
    """Learned-attack worst / natural against the ball's worst KL on the adversary's states: if
    smoothness decided who breaks, the broken agents (below the dashed line) would sit right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.2, 4.8))
    markers = {"Hopper-v5": "o", "Walker2d-v5": "s", "HalfCheetah-v5": "^", "Ant-v5": "D"}
    families = {"ppo": "tab:red", "bar-ppo": "tab:blue", "ar-ppo": "tab:orange", "sa-ppo": "tab:green"}
    for row in table.itertuples():
        family = next((f for f in ("bar-ppo", "ar-ppo", "sa-ppo", "ppo") if row.label.startswith(f)), "ppo")
        axis.scatter(row.kl_sa_rl_p90, row.ratio, marker=markers.get(row.env, "o"), c=families[family], alpha=0.8)
    for name, colour in families.items():
        axis.scatter([], [], c=colour, label=name + "*" if name != "ppo" else name)
    for env, marker in markers.items():
        if env in set(table["env"]):
            axis.scatter([], [], marker=marker, c="grey", label=env)
    axis.axhline(BROKEN, ls="--", c="k", lw=0.8)
    axis.set_xscale("log")
    axis.set_xlabel("90th pct of the ball's worst KL (MAD) on states of episodes under SA-RL")
    axis.set_ylabel("learned-attack worst / natural (broken below the line)")
    axis.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("studies", nargs="+", type=Path, help="study directories whose agents hold SA-RL fits")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per condition (default 5)")
    parser.add_argument("--methods", nargs="*", help="method labels (default: all with SA-RL fits)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "brittle_states.md")
    args = parser.parse_args()
    jobs = []
    for study in args.studies:
        status = json.loads((study / "status.json").read_text())["runs"]
        spec = json.loads((study / "study.json").read_text())["spec"]
        eps = (spec.get("evaluation") or {}).get("eps")
        for name, entry in status.items():
            if entry.get("evaluate") == "done" and (not args.methods or entry["label"] in args.methods):
                jobs.append((study / "runs" / name, entry["env"], entry["label"], eps if eps is not None else report_eps(entry["env"])))
    rows = []
    with torch_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for run_dir, env_id, label, eps in track(jobs, description="brittle states"):
            row = agent_row(run_dir, env_id, label, eps, args.episodes, seed=20_000)
            if row is not None:
                rows.append(row)
    table = pd.DataFrame(rows)
    # a run two studies share (copied with --reuse-from) is one agent: its row with the most
    # fits, i.e. the lowest learned worst
    table = table.sort_values("ratio").drop_duplicates("run").reset_index(drop=True)
    rows = table.to_dict("records")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    plot(table, args.out.with_suffix(".png"))
    lines = [
        "# Where broken seeds are brittle: natural states or the adversary's (issue 17, item 5)", "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python benchmarks/brittle_states.py "
        f"{' '.join(str(s) for s in args.studies)} --episodes {args.episodes}`. Per agent: its learned-attack worst / "
        f"natural (from its report; broken below {BROKEN}), then {args.episodes} deterministic episodes natural and "
        "under its own worst SA-RL fit (replayed; returns in the 'replayed' columns), and over every clean state those "
        f"episodes visit, the worst KL(pi(.|s) || pi(.|s_hat)) in the eps ball (MAD: the larger of 10 SGLD steps of eps/10 and {MAD_STEPS} of eps/{MAD_STEPS}): median "
        "and 90th percentile. The KL is what BAR-PPO's robust term bounds on its own rollouts' states.", "",
        "| task | method | seed | natural | learned worst / natural | replayed natural / SA-RL | KL natural states (median / p90) | KL SA-RL states (median / p90) | p90 ratio | KL the SA-RL perturbation causes (median / p90) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for r in table.sort_values(["env", "label", "seed"]).itertuples():
        mark = " **broken**" if r.broken else ""
        lines.append(f"| {r.env} | {r.label} | {r.seed} | {r.natural:.0f} | {r.ratio:.2f}{mark} | {r.replayed_natural:.0f} / "
                     f"{r.replayed_sa_rl:.0f} | {r.kl_natural_median:.3f} / {r.kl_natural_p90:.3f} | "
                     f"{r.kl_sa_rl_median:.3f} / {r.kl_sa_rl_p90:.3f} | {r.kl_sa_rl_p90 / r.kl_natural_p90:.1f} | "
                     f"{r.kl_caused_median:.3f} / {r.kl_caused_p90:.3f} |")  # fmt: skip
    lines += ["", "Medians over agents:", "",
              "| agents | n | KL natural p90 | KL SA-RL p90 | p90 ratio (SA-RL / natural) | KL caused p90 |",
              "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    robust = table[~table["label"].str.fullmatch("ppo")]  # PPO's KL is two orders larger: apart
    for (ppo, broken), rows_ in [*((("robust", b), g) for b, g in robust.groupby("broken")),
                                 *((("ppo", b), g) for b, g in table[table["label"] == "ppo"].groupby("broken"))]:  # fmt: skip
        ratio = rows_["kl_sa_rl_p90"] / rows_["kl_natural_p90"]
        lines.append(f"| {ppo}, {'broken' if broken else 'not broken'} | {len(rows_)} | {rows_['kl_natural_p90'].median():.3f} | "
                     f"{rows_['kl_sa_rl_p90'].median():.3f} | {ratio.median():.1f} | {rows_['kl_caused_p90'].median():.3f} |")  # fmt: skip
    if len(robust) > 2:
        rank = robust["kl_sa_rl_p90"].corr(robust["ratio"], method="spearman")
        lines += ["", f"Robust agents ({len(robust)}): Spearman rank correlation of the SA-RL states' worst KL (p90) with "
                  f"learned worst / natural: {rank:+.2f}."]  # fmt: skip
    lines += ["", f"![worst / natural against worst KL per agent]({args.out.with_suffix('.png').name})"]
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out)
    if table.empty or math.isnan(table["kl_natural_p90"].sum()):
        raise SystemExit("no agent measured")


if __name__ == "__main__":
    main()
