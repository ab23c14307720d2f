"""The results store of a study: tidy tables that reports (and users) read.

``<study>/results/`` holds three tables, each as Parquet (pyarrow) and CSV::

    runs.parquet         one row per run: run, label, method (the spec's label), algo, env, seed, total_steps, num_envs,
                         kappa, eps_train, guidance, prune_strategy, sparsity (the target),
                         prune_every, config_hash, train_status, evaluate_status, median_agent;
                         with ``evaluation.certify``: measured_sparsity (all pruned weights),
                         lipschitz (Theorem 1's L~ of the actor), tv_bound (c L~ eps),
                         certified_bound (alpha c L~ eps, NaN without R_max) and ibp_mean_tv_bound
                         (the per-state IBP certificate, mean over visited states)
    metrics.parquet      one row per run and iteration: run, label, env, seed, then every column of
                         the run's progress.csv (iteration, global_step, mean_return, losses, ...)
    evaluations.parquet  one row per run and attack: run, label, env, seed, attack ("natural" for
                         the clean return), eps, norm, mode (deterministic or stochastic: how actions were
                         taken), mean, std, episodes, budget, checkpoint

Read one with ``pandas.read_parquet("study/results/evaluations.parquet")``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from robustrl.experiments.spec import config_hash
from robustrl.policies.checkpoint import atomic_write_text

TABLES = ("runs", "metrics", "evaluations")


def collect_results(study: Any) -> dict[str, Path]:
    """Gather every run's config, progress.csv and report into ``study.directory / "results"``."""
    runs, metrics, evaluations = [], [], []
    for run in study.spec.runs:
        entry = study.status["runs"].get(run.name, {})
        config = run.config
        keys = {"run": run.name, "label": run.label, "env": config.env_id, "seed": config.seed}
        runs.append({
            **keys, "method": run.method or run.label, "algo": config.algo, "total_steps": config.total_steps, "num_envs": config.num_envs,
            "kappa": config.robust.kappa, "eps_train": config.robust.eps, "guidance": config.robust.guidance,
            "guidance_until": config.robust.guidance_until,
            "prune_strategy": config.prune.strategy, "sparsity": config.prune.sparsity, "prune_every": config.prune.prune_every,
            "config_hash": config_hash(config), "grid_key": grid_key(config), "train_status": entry.get("train", "pending"),
            "evaluate_status": entry.get("evaluate", "pending"), "median_agent": bool(entry.get("median_agent", False)),
            **_certificate_columns(study.run_dir(run)),
        })  # fmt: skip
        progress = study.run_dir(run) / "progress.csv"
        if progress.is_file() and progress.stat().st_size:
            frame = pd.read_csv(progress)
            for key, value in reversed(keys.items()):
                frame.insert(0, key, value)
            metrics.append(frame)
        for report in study.reports(run):
            for attack, result in report.get("results", {}).items():
                if "mean" not in result:
                    continue
                evaluations.append({
                    **keys, "attack": attack, "eps": report.get("eps"), "norm": report.get("norm"),
                    "mode": report.get("mode", "deterministic"),
                    "mean": result["mean"], "std": result.get("std"), "episodes": len(result.get("returns", [])) or report.get("episodes"),
                    "budget": result.get("budget"), "fits": int(result.get("fits_used", 1)),
                    "checkpoint": report.get("checkpoint"),
                })  # fmt: skip
    tables = {
        "runs": pd.DataFrame(runs),
        "metrics": pd.concat(metrics, ignore_index=True)
        if metrics
        else pd.DataFrame(columns=["run", "label", "env", "seed"]),
        "evaluations": pd.DataFrame(
            evaluations,
            columns=[
                "run",
                "label",
                "env",
                "seed",
                "attack",
                "eps",
                "norm",
                "mode",
                "mean",
                "std",
                "episodes",
                "budget",
                "fits",
                "checkpoint",
            ],
        ),
    }
    folder = Path(study.directory) / "results"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, frame in tables.items():
        written[name] = _replace(folder / f"{name}.csv", lambda tmp, f=frame: f.to_csv(tmp, index=False))
        try:
            written[name] = _replace(folder / f"{name}.parquet", lambda tmp, f=frame: f.to_parquet(tmp, index=False))
        except ImportError:  # pyarrow missing: CSV only (pip install pyarrow)
            pass
    atomic_write_text(
        folder / "README.json", json.dumps({"tables": list(TABLES), "see": "robustrl.experiments.results"}, indent=1)
    )
    return written


def _replace(path: Path, write: Any) -> Path:
    """Write through a temporary file and rename: a Ctrl-C while the store is rebuilt leaves the
    previous table whole (a truncated Parquet file would break every later `robustrl report`)."""
    # one temporary name per process: `robustrl report` rebuilds the store of a study whose runner
    # (or another report) may be rebuilding it too, and a shared name would mix their writes
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _certificate_columns(run_dir: Path) -> dict[str, float]:
    from robustrl.experiments.study import CERTIFICATE

    path = run_dir / CERTIFICATE
    if not path.is_file():
        return {}
    try:
        certificate = json.loads(path.read_text())
        bound = certificate["global"].get("bound")
        return {
            "measured_sparsity": float(certificate["layer_sparsity"]["all"]),
            "lipschitz": float(certificate["global"]["lipschitz"]),
            "tv_bound": float(certificate["global"]["tv_bound"]),
            "certified_bound": float("nan") if bound is None else float(bound),
            "ibp_mean_tv_bound": float(certificate["ibp"]["mean_tv_bound"]),
        }
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return {}  # a damaged certificate is recomputed by the next evaluation


def grid_key(config: Any) -> str:
    """The config's hash with its seed and kappa set aside: runs that share it differ in seed or
    kappa only, so their labels are points of one kappa grid (:func:`robustrl.report.study.kappa_grid`);
    a label that also changes the inner solve, the warm-up or the budget is another method."""
    from dataclasses import replace

    return config_hash(replace(config, seed=0, robust=replace(config.robust, kappa=0.0)))


def refresh_results(directory: Path | str) -> dict[str, Path]:
    """Rebuild a study directory's results store from what its runs hold now: a snapshot (which
    leaves the store out), a copied-in run, or a running study's finished rows.
    ``write_study_report`` (hence ``robustrl report``) calls it first; scripts that read the
    store's tables themselves (benchmarks/held_out.py, arpo_stochastic.py) call it before."""
    from robustrl.experiments.study import Study

    return collect_results(Study.open(directory))


def read_results(directory: Path | str, table: str) -> pd.DataFrame:
    """One table of a study's results store (Parquet if present, else CSV)."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; choose from {TABLES}")
    folder = Path(directory) / "results"
    parquet, csv = folder / f"{table}.parquet", folder / f"{table}.csv"
    if parquet.is_file():
        return pd.read_parquet(parquet)
    if csv.is_file():
        return pd.read_csv(csv)
    from robustrl.errors import InvalidArgumentError

    raise InvalidArgumentError(f"{directory} has no results yet (run `robustrl study run` first)")
