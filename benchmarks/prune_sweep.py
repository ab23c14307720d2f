"""The sweet-spot study of "Pruning cannot hurt robustness" (Sec. 4.5, Figures 2-5, Table 2) with
the options of a script: a thin wrapper over the study runner. `studies/pruning_hopper.yaml` is
the committed study; this script builds the same kind of spec from its options.

    python benchmarks/prune_sweep.py [--env Hopper-v5] [--steps 1e6] [--seeds 0 1 2]
        [--strategies magnitude random] [--sparsities 0 0.3 0.5 0.7 0.9] [--num-envs 8]
        [--episodes 10] [--prune-every 20] [--intervals 1 2000] [--compile] [--sa --kappa 0.3]
        [--paper-architecture] [--workers 2] [--report-only] [--out benchmarks/results/prune_sweep]

The spec goes to benchmarks/runs/studies/<name>.yaml and its runs to benchmarks/runs/studies/<name>/
(named by their config hash; re-run the same command to resume). Evaluation: random, critic, MAD
and RS at the env's eps, plus Theorem 1's bound and the IBP certificate of every run. The report
(`robustrl report`: robustrl.report.sweet_spot) goes to ``--out``'s folder: prune_sweep.md/.csv,
prune_sweet_spots.csv, prune_frontier, prune_attacks, prune_interval (with --intervals),
prune_sa_vs_plain (with --sa), prune_bound (PNG + SVG).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from robustrl.config import default_eps
from robustrl.experiments.study import run_study
from robustrl.report.study import write_study_report

ROOT = Path(__file__).resolve().parent


def build_spec(args: argparse.Namespace) -> dict:
    sets = {"compile": args.compile}
    if args.paper_architecture:  # the paper's 256-256 MLPs with a fixed-looking small std
        sets.update(hidden_sizes=[256, 256], initial_std=0.1)
    methods = {"ppo": {"algo": "ppo"}}
    if args.sa:  # the paper's Figure 4: SA-regularised training, pruned alike
        methods["sa-ppo"] = {"algo": "sa-ppo", "kappa": args.kappa}
    if args.intervals:  # the paper's Figure 5: the interval ablation at 50% magnitude
        methods["ppo-interval"] = {
            "algo": "ppo", "prune": {"strategy": "magnitude", "sparsity": 0.5},
            "grid": {"prune.prune_every": list(args.intervals)},
        }  # fmt: skip
    name = f"prune_sweep-{args.env}-{args.steps}" + ("-sa" if args.sa else "") + ("-paper" if args.paper_architecture else "")
    return {
        "name": name, "methods": methods, "envs": [args.env], "seeds": list(args.seeds), "steps": args.steps,
        "num_envs": args.num_envs, "set": sets, "prune": {"prune_every": args.prune_every, "burn_in": args.burn_in},
        "grid": {"prune.strategy": list(args.strategies), "prune.sparsity": sorted({0.0, *args.sparsities})},
        "evaluation": {"attacks": ["random", "critic", "mad", "rs"], "eps": default_eps(args.env),
                       "episodes": args.episodes, "certify": True},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--steps", type=lambda t: int(float(t)), default=1_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=["magnitude", "random"])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.7, 0.9])
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--prune-every", type=int, default=20)
    parser.add_argument("--intervals", type=int, nargs="*", default=[], help="micro-pruning ablation intervals")
    parser.add_argument("--burn-in", type=float, default=0.25)
    parser.add_argument("--compile", action="store_true", help="ppo.compile (the fast configuration)")
    parser.add_argument("--sa", action="store_true", help="add SA-PPO (kappa * max-KL regulariser), pruned alike")
    parser.add_argument("--kappa", type=float, default=0.3)
    parser.add_argument("--paper-architecture", action="store_true", help="256-256 MLPs, initial std 0.1")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--report-only", action="store_true", help="no training or attacks: report what exists")
    parser.add_argument("--out", default=str(ROOT / "results" / "prune_sweep"))
    args = parser.parse_args()
    spec = build_spec(args)
    folder = ROOT / "runs" / "studies"
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / f"{spec['name']}.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    directory = folder / spec["name"]
    if not args.report_only:
        run_study(spec_path, directory, workers=args.workers)
    out = Path(args.out)
    written = write_study_report(directory, out.parent / out.name)
    print("\n".join(f"{name}: {path}" for name, path in written.items()))


if __name__ == "__main__":
    main()
