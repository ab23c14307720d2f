"""The pruning study's report ("Pruning cannot hurt robustness", Sec. 4.4-4.5, Figures 2-5 and
Table 2), read from a study's results store like every study report.

Each pruned run is compared with the *unpruned run of the same family and seed*: a family is the
runs that differ only in their pruning (same env, algo, robust knobs, steps), so SA-PPO's pruned
runs are normalised to unpruned SA-PPO and PPO's to unpruned PPO (the paper's Figure 4 compares
the two). Per run:

- normalised clean = natural / natural of the unpruned run; normalised <attack> likewise;
- normalised worst = (min over the attacks) / (the unpruned run's min over the attacks);
- score = (normalised clean + normalised worst) / 2.

A strategy's *sweet spot* is the sparsity maximising the mean score over seeds (Sec. 4.4). Every
cell is the mean ± standard error over the seeds that have both the pruned and the unpruned run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustrl.report.study import save_figure  # one figure writer (PNG + SVG) for every study report

# Table 2 of the paper (Appendix C), Hopper rows: sweet-spot sparsity, normalised clean, normalised
# robust (worst), normalised robust (average over attacks). 256-256 MLPs, sigma 0.1, 50M steps, SA on.
PAPER_TABLE2 = {
    "Hopper": {
        "magnitude": (0.30, 1.00, 1.63, 1.26),
        "magnitude-ste": (0.90, 0.95, 1.53, 1.22),
        "random": (0.90, 1.00, 1.51, 1.33),
        "saliency": (0.85, 1.00, 1.66, 1.28),
    }
}
FAMILY = ["env", "algo", "kappa", "eps_train", "guidance", "guidance_until", "total_steps"]
CERTIFICATE = ["measured_sparsity", "lipschitz", "tv_bound", "ibp_mean_tv_bound"]


def is_pruning_study(runs: pd.DataFrame) -> bool:
    return "prune_strategy" in runs and bool((runs["prune_strategy"] != "none").any())


def normalised_runs(runs: pd.DataFrame, per_run: pd.DataFrame, attacks: list[str]) -> pd.DataFrame:
    """One row per run with its pruning knobs, raw returns, normalised returns and score."""
    keep = ["run", *FAMILY, "seed", "method", "prune_strategy", "sparsity", "prune_every"]
    keep += [c for c in CERTIFICATE if c in runs]
    frame = runs[[c for c in keep if c in runs]].merge(per_run.drop(columns=["label", "env", "seed"]), on="run")
    frame = frame.copy()
    frame["worst"] = frame[attacks].min(axis=1)
    family = [c for c in FAMILY if c in frame] + ["seed"]
    base = frame[frame["prune_strategy"] == "none"].drop_duplicates(family).set_index(family)
    rows = []
    for _, row in frame.iterrows():
        key = tuple(row[c] for c in family)
        if key not in base.index:
            continue  # no unpruned run of this family and seed (yet)
        unpruned = base.loc[key]
        out = row.to_dict()
        for name in ["natural", *attacks, "worst"]:
            out[f"norm_{name}"] = row[name] / unpruned[name] if unpruned[name] > 0 else math.nan
        out["norm_attack_average"] = float(np.mean([out[f"norm_{a}"] for a in attacks]))
        out["score"] = (out["norm_natural"] + out["norm_worst"]) / 2
        rows.append(out)
    return pd.DataFrame(rows)


def _mean_se(values: pd.Series) -> tuple[float, float]:
    values = values.dropna().astype(float)
    if values.empty:
        return math.nan, math.nan
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    return float(values.mean()), se


def sweep_table(normalised: pd.DataFrame, attacks: list[str]) -> pd.DataFrame:
    """Mean ± s.e. over seeds per (family, strategy, interval, sparsity); the unpruned run is
    every strategy's and interval's sparsity 0."""
    strategies = sorted(set(normalised["prune_strategy"]) - {"none"})
    intervals = sorted(set(normalised.loc[normalised["prune_strategy"] != "none", "prune_every"]))
    family = [c for c in FAMILY if c in normalised]
    values = ["natural", "worst", *[f"norm_{k}" for k in ["natural", *attacks, "worst", "attack_average"]], "score"]
    values += [c for c in CERTIFICATE if c in normalised]
    rows = []
    for keys, group in normalised.groupby(family, dropna=False, sort=False):
        unpruned = group[group["prune_strategy"] == "none"]
        for strategy in strategies:
            for interval in intervals:
                pruned = group[(group["prune_strategy"] == strategy) & (group["prune_every"] == interval)]
                if pruned.empty:
                    continue
                for sparsity, runs in [(0.0, unpruned), *pruned.groupby("sparsity")]:
                    row = dict(zip(family, keys if isinstance(keys, tuple) else (keys,)))
                    row.update(strategy=strategy, prune_every=interval, sparsity=float(sparsity),
                               seeds=",".join(str(s) for s in sorted(runs["seed"])))  # fmt: skip
                    for value in values:
                        row[value], row[f"{value}_se"] = _mean_se(runs[value]) if value in runs else (math.nan, math.nan)
                    rows.append(row)
    return pd.DataFrame(rows)


def sweet_spots(table: pd.DataFrame) -> pd.DataFrame:
    """Per (family, strategy, interval): the sparsity of the best mean score, and its row."""
    family = [c for c in FAMILY if c in table]
    best = table.dropna(subset=["score"]).sort_values("score", ascending=False)
    return best.drop_duplicates([*family, "strategy", "prune_every"]).sort_values([*family, "strategy", "prune_every"])


def _cell(mean: float, se: float, digits: int = 2, percent: bool = False) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if percent:
        return f"{mean:.0%}"
    return f"{mean:.{digits}f}" + ("" if se is None or math.isnan(se) else f" ± {se:.{digits}f}")


def _family_title(row: pd.Series | dict[str, Any]) -> str:
    kappa = f", kappa {row['kappa']:g}" if row.get("algo") not in ("ppo",) and not pd.isna(row.get("kappa")) else ""
    return f"{row['env']}, {row['algo']}{kappa}, {int(row['total_steps']):,} steps"


def format_markdown(table: pd.DataFrame, spots: pd.DataFrame, attacks: list[str]) -> str:
    family = [c for c in FAMILY if c in table]
    lines = [
        "Normalised = divided by the unpruned run of the same family and seed, then mean ± standard error "
        "over seeds. Worst = min over the attacks. Score = (normalised clean + normalised worst) / 2; "
        "the sweet spot maximises it.",
        "",
    ]
    certificate = [c for c in ("lipschitz", "tv_bound", "ibp_mean_tv_bound") if c in table]
    for keys, group in table.groupby([*family, "strategy", "prune_every"], dropna=False, sort=False):
        head = dict(zip([*family, "strategy", "prune_every"], keys))
        scored = group.dropna(subset=["score"])
        where = f"{scored.loc[scored['score'].idxmax(), 'sparsity']:.0%}" if len(scored) else "-"
        lines += [
            f"## {head['strategy']}, masks every {head['prune_every']} steps: {_family_title(head)} (sweet spot {where})",
            "",
            "| sparsity | seeds | natural | worst | norm. clean | "
            + " | ".join(f"norm. {a}" for a in attacks)
            + " | norm. worst | score | "
            + " | ".join({"lipschitz": "L~ (actor)", "tv_bound": "TV bound c L~ eps", "ibp_mean_tv_bound": "IBP mean TV bound"}[c] for c in certificate)
            + " |",
            "|---:|---|---:|---:|" + "---:|" * (len(attacks) + 3 + len(certificate)),
        ]
        for _, row in group.sort_values("sparsity").iterrows():
            cells = [f"{row['sparsity']:.0%}", row["seeds"], _cell(row["natural"], row["natural_se"], 0), _cell(row["worst"], row["worst_se"], 0)]
            cells += [_cell(row[f"norm_{k}"], row[f"norm_{k}_se"]) for k in ["natural", *attacks, "worst"]]
            cells += [_cell(row["score"], row["score_se"])]
            cells += [_cell(row[c], row[f"{c}_se"], 3) for c in certificate]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Sweet spots next to the paper (its Table 2)", ""]
    lines += [
        "| family | strategy | masks every | ours: sweet spot | ours: norm. clean | ours: norm. worst | ours: norm. attack avg "
        "| paper: sweet spot | paper: norm. clean | paper: norm. worst | paper: norm. attack avg |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for _, row in spots.iterrows():
        paper = PAPER_TABLE2.get(str(row["env"]).split("-")[0], {}).get(row["strategy"])
        theirs = f"{paper[0]:.0%} | {paper[1]:.2f} | {paper[2]:.2f} | {paper[3]:.2f}" if paper else "- | - | - | -"
        lines.append(
            f"| {_family_title(row)} | {row['strategy']} | {row['prune_every']} | {row['sparsity']:.0%} | "
            f"{_cell(row['norm_natural'], row['norm_natural_se'])} | {_cell(row['norm_worst'], row['norm_worst_se'])} | "
            f"{_cell(row['norm_attack_average'], row['norm_attack_average_se'])} | {theirs} |"
        )
    lines += ["", *claims(spots, table)]
    lines += [
        "",
        "The paper's Table 2: 256-256 networks, fixed std 0.1, 50M steps on GPUs, SA-regularised training, 5 seeds, "
        "normalised to the unpruned SA-trained policy; its text puts Hopper's magnitude sweet spot at 30-50% and the "
        "normalised robust gain at 1.1x-1.6x.",
        "",
    ]
    return "\n".join(lines)


def _same_family(frame: pd.DataFrame, row: pd.Series) -> np.ndarray:
    """Rows of ``frame`` in ``row``'s family (missing values, None or NaN, equal each other)."""
    keep = np.ones(len(frame), dtype=bool)
    for column in (c for c in FAMILY if c in frame):
        values, wanted = frame[column], row[column]
        keep &= (values.isna() & pd.isna(wanted)).to_numpy() | (values == wanted).to_numpy()
    return keep


def claims(spots: pd.DataFrame, table: pd.DataFrame | None = None) -> list[str]:
    """The paper's Hopper claims (Sec. 4.5: magnitude's sweet spot at 30-50% sparsity, normalised
    robust gain 1.1x-1.6x there, clean return >= 95% of the unpruned policy), each marked holds /
    does not hold for every Hopper family of the study with magnitude pruning at the default
    interval; "within noise" where the mean's standard error straddles the threshold."""
    rows = spots[(spots["strategy"] == "magnitude") & spots["env"].astype(str).str.startswith("Hopper")]
    if rows.empty:
        return []
    rows = rows[rows["prune_every"] == rows["prune_every"].mode().iloc[0]]
    lines = ["## The paper's claims (Hopper, magnitude pruning)", ""]

    def mark(mean: float, se: float, low: float, high: float = math.inf) -> str:
        if low <= mean <= high:
            inside = "holds"
            if not math.isnan(se) and (mean - se < low or mean + se > high):
                inside += " (within noise: one standard error reaches outside)"
            return inside
        if not math.isnan(se) and mean + se >= low and mean - se <= high:
            return "does not hold, within noise"
        return "does not hold"

    for _, row in rows.iterrows():
        where = f"{_family_title(row)}, seeds {row['seeds']}"
        sweet = float(row["sparsity"])
        lines.append(f"- {where}: sweet spot at 30-50% sparsity: **{'holds' if 0.3 <= sweet <= 0.5 else 'does not hold'}** ({sweet:.0%})")
        lines.append(
            f"- {where}: normalised worst-case return 1.1x-1.6x at the sweet spot: "
            f"**{mark(row['norm_worst'], row['norm_worst_se'], 1.1, 1.6)}** ({_cell(row['norm_worst'], row['norm_worst_se'])})"
        )
        lines.append(
            f"- {where}: clean return >= 95% of unpruned at the sweet spot: "
            f"**{mark(row['norm_natural'], row['norm_natural_se'], 0.95)}** ({_cell(row['norm_natural'], row['norm_natural_se'])})"
        )
        if table is not None:  # the paper's reading of a sweet spot: robustness gained at no clean cost
            same = table[(table["strategy"] == "magnitude") & (table["prune_every"] == row["prune_every"])]
            same = same[_same_family(same, row)]
            keep = same[(same["norm_natural"] >= 0.95) & (same["sparsity"] > 0)]
            if len(keep):
                best = keep.loc[keep["norm_worst"].idxmax()]
                lines.append(
                    f"- {where}: the largest worst-case gain with clean >= 95%: {best['sparsity']:.0%} sparsity, worst "
                    f"{_cell(best['norm_worst'], best['norm_worst_se'])}x, clean {_cell(best['norm_natural'], best['norm_natural_se'])}"
                )
            else:
                lines.append(f"- {where}: no pruned sparsity keeps clean >= 95%")
    return lines


def write_sweet_spot_report(runs: pd.DataFrame, per_run: pd.DataFrame, attacks: list[str], out: Path) -> dict[str, Path]:
    """Tables (Markdown, CSV) and figures (PNG + SVG) of a pruning study into ``out``."""
    normalised = normalised_runs(runs, per_run, attacks)
    if normalised.empty:
        return {}
    table = sweep_table(normalised, attacks)
    spots = sweet_spots(table)
    normalised.to_csv(out / "prune_per_run.csv", index=False)
    table.to_csv(out / "prune_sweep.csv", index=False)
    spots.to_csv(out / "prune_sweet_spots.csv", index=False)
    text = "# Pruning sweet spots\n\n" + format_markdown(table, spots, attacks)
    correlation = bound_correlation(normalised)
    if correlation:
        text += (
            "\n## Does the certificate predict the measured robustness?\n\nSpearman rank correlation over "
            f"{correlation['runs']} runs between each certificate and the measured worst-case drop "
            "(1 - worst / natural): " + ", ".join(f"{k} {v:+.2f}" for k, v in correlation.items() if k != "runs")
            + " (prune_bound.png).\n"
        )
    (out / "prune_sweep.md").write_text(text)
    written = {"prune_sweep": out / "prune_sweep.md"}
    written |= _plot_frontier(table, out)
    written |= _plot_attacks(table, attacks, out)
    written |= _plot_families(table, out)
    written |= _plot_intervals(table, out)
    if "lipschitz" in normalised:
        written |= _plot_bound(normalised, out)
    return written


def bound_correlation(normalised: pd.DataFrame) -> dict[str, float]:
    """Spearman rank correlation of Theorem 1's L~ and of the IBP certificate with the measured
    worst-case drop, over runs (positive: a larger certificate goes with a larger drop)."""
    if "lipschitz" not in normalised or len(normalised) < 3:
        return {}
    drop = 1 - normalised["worst"] / normalised["natural"].where(normalised["natural"] > 0)
    found: dict[str, float] = {"runs": int(drop.notna().sum())}
    for column, name in (("lipschitz", "L~"), ("ibp_mean_tv_bound", "IBP mean TV")):
        if column in normalised:
            found[name] = float(normalised[column].rank().corr(drop.rank()))
    return found


# ---- figures ---------------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _band(axis: Any, frame: pd.DataFrame, value: str, label: str, style: str = "-", color: Any = None) -> Any:
    frame = frame.sort_values("sparsity")
    xs = 100 * frame["sparsity"].to_numpy()
    mean = frame[value].to_numpy(dtype=float)
    se = np.nan_to_num(frame[f"{value}_se"].to_numpy(dtype=float))
    line = axis.plot(xs, mean, style, marker="o", label=label, color=color)[0]
    axis.fill_between(xs, mean - se, mean + se, alpha=0.2, color=line.get_color())
    return line.get_color()


def _default_interval(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of each family's most common interval (the ablation's other intervals apart)."""
    counts = table.groupby("prune_every")["sparsity"].count()
    return table[table["prune_every"] == counts.idxmax()]


def _plot_frontier(table: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Normalised clean and worst-case return vs sparsity, and the clean-robust frontier (Figure 2)."""
    plt = _pyplot()
    rows = _default_interval(table)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for (algo, strategy), group in rows.groupby(["algo", "strategy"]):
        color = _band(axes[0], group, "norm_natural", f"{algo} {strategy}: clean")
        _band(axes[0], group, "norm_worst", f"{algo} {strategy}: worst case", "--", color)
        group = group.sort_values("sparsity")
        axes[1].plot(group["norm_natural"], group["norm_worst"], marker="o", label=f"{algo} {strategy}")
        for x, y, s in zip(group["norm_natural"], group["norm_worst"], group["sparsity"]):
            axes[1].annotate(f"{s:.0%}", (x, y), fontsize=7)
    axes[0].axhline(1.0, color="grey", lw=0.6)
    axes[0].set(xlabel="sparsity (%)", ylabel="normalised return", title="return vs sparsity (normalised to unpruned)")
    axes[1].set(xlabel="normalised clean return", ylabel="normalised worst-case return", title="clean-robust frontier")
    for axis in axes:
        axis.legend(fontsize=7)
    return save_figure(figure, out, "prune_frontier")


def _plot_attacks(table: pd.DataFrame, attacks: list[str], out: Path) -> dict[str, Path]:
    """Return vs sparsity under each attack (Figure 3)."""
    plt = _pyplot()
    rows = _default_interval(table)
    names = ["natural", *attacks]
    figure, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4), sharey=True, squeeze=False)
    for axis, name in zip(axes[0], names):
        for (algo, strategy), group in rows.groupby(["algo", "strategy"]):
            _band(axis, group, f"norm_{name}", f"{algo} {strategy}")
        axis.axhline(1.0, color="grey", lw=0.6)
        axis.set(title=name, xlabel="sparsity (%)")
    axes[0][0].set_ylabel("normalised return (mean ± s.e.)")
    axes[0][0].legend(fontsize=7)
    return save_figure(figure, out, "prune_attacks")


def _plot_families(table: pd.DataFrame, out: Path) -> dict[str, Path]:
    """SA vs no SA (Figure 4): normalised worst case vs sparsity per training method."""
    rows = _default_interval(table)
    if rows["algo"].nunique() < 2:
        return {}
    plt = _pyplot()
    strategies = sorted(rows["strategy"].unique())
    figure, axes = plt.subplots(1, len(strategies), figsize=(5 * len(strategies), 4), squeeze=False)
    for axis, strategy in zip(axes[0], strategies):
        for algo, group in rows[rows["strategy"] == strategy].groupby("algo"):
            color = _band(axis, group, "norm_worst", f"{algo}: worst case")
            _band(axis, group, "norm_natural", f"{algo}: clean", "--", color)
        axis.set(title=strategy, xlabel="sparsity (%)", ylabel="normalised return")
        axis.legend(fontsize=7)
    return save_figure(figure, out, "prune_sa_vs_plain")


def _plot_intervals(table: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Micro-pruning ablation (Figure 5): score, clean and worst vs the mask interval at each
    sparsity that was run with several intervals."""
    pruned = table[table["sparsity"] > 0]
    ablated = pruned.groupby(["algo", "strategy", "sparsity"]).filter(lambda g: g["prune_every"].nunique() > 1)
    if ablated.empty:
        return {}
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for (algo, strategy, sparsity), group in ablated.groupby(["algo", "strategy", "sparsity"]):
        group = group.sort_values("prune_every")
        for value, style in (("score", "-"), ("norm_natural", "--"), ("norm_worst", ":")):
            axis.errorbar(group["prune_every"], group[value], yerr=np.nan_to_num(group[f"{value}_se"]), fmt=style,
                          marker="o", capsize=3, label=f"{algo} {strategy} {sparsity:.0%}: {value}")  # fmt: skip
    axis.set(xscale="log", xlabel="optimiser steps between mask updates", ylabel="normalised to unpruned",
             title="micro-pruning interval")  # fmt: skip
    axis.legend(fontsize=7)
    return save_figure(figure, out, "prune_interval")


def _plot_bound(normalised: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Does the certificate predict the measured robustness? Theorem 1's L~ and the IBP
    certificate against the measured worst-case drop, one point per run."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    drop = 1 - normalised["worst"] / normalised["natural"].where(normalised["natural"] > 0)
    for strategy, group in normalised.groupby("prune_strategy"):
        index = group.index
        axes[0].scatter(group["lipschitz"], drop[index], label=strategy, s=14)
        axes[1].scatter(group["ibp_mean_tv_bound"], drop[index], label=strategy, s=14)
    axes[0].set(xlabel="L~ of the actor (Theorem 1)", ylabel="measured worst-case drop (1 - worst / natural)")
    axes[1].set(xlabel="IBP certificate: mean TV bound over visited states", ylabel="measured worst-case drop")
    for axis in axes:
        axis.legend(fontsize=7)
    return save_figure(figure, out, "prune_bound")
