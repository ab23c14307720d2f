"""Robustness reports of several policies: where each report lives, which attacks are expensive,
how reports of several runs are combined into one file.

The CLI (``robustrl evaluate``) calls :func:`evaluate_robustness` and draws what it returns; the
rules live here so scripts (``benchmarks/robust_reproduction.py``) follow the same ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from robustrl.config import default_eps
from robustrl.errors import InvalidArgumentError
from robustrl.policies.checkpoint import atomic_write_text
from robustrl.progress import Progress
from robustrl.threads import with_torch_threads
from robustrl.threat import parse_norm

MERGED_FORMAT = "robustrl-robustness-reports"


def report_directory(source: Path | str) -> Path:
    """Reports and fitted attacks live next to the policy: in the run directory, or in the folder
    of a checkpoint / model file."""
    source = Path(source)
    return source if source.is_dir() else source.parent


def report_path(source: Path | str, eps: float, norm: str = "inf", deterministic: bool = True) -> Path:
    """``<run dir>/eval-eps<e>.json`` for l_inf (the name every earlier report has), and
    ``eval-eps<e>-l2.json`` for l_2, so the two balls of one eps never overwrite each other;
    ``-sampled`` before ``.json`` for episodes with sampled actions (a study's
    ``evaluation.deterministic: false``), so they never replace the deterministic report."""
    mode = "" if deterministic else "-sampled"
    return report_directory(source) / f"eval-eps{eps:g}{_norm_suffix(norm)}{mode}.json"


def sweep_paths(source: Path | str, norm: str = "inf") -> tuple[Path, Path]:
    """(report stem, plot) of an eps sweep: ``eps-sweep[-l2].json`` (one file per eps,
    ``eps-sweep-eps<e>.json``) and ``eps_sweep[-l2].png``, next to the policy."""
    base, suffix = report_directory(source), _norm_suffix(norm)
    return base / f"eps-sweep{suffix}.json", base / f"eps_sweep{suffix}.png"


def _norm_suffix(norm: str) -> str:
    norm = parse_norm(norm)
    return "" if norm == "inf" else f"-l{norm}"


def run_label(source: Path | str) -> str:
    """A short row label: the run directory's name (or the file's)."""
    source = Path(source)
    return source.parent.parent.name if source.parent.name == "checkpoints" else source.name


def is_expensive(name: str) -> bool:
    """Whether attack ``name`` trains an adversary policy with RL (SA-RL, PA-AD): the "expensive"
    attacks of the median-agent protocol (BARPO App. F.3), run on the median agent only. An attack
    class says so with its ``expensive`` attribute. (``learned`` alone is not the rule: Robust
    Sarsa learns a Q function in seconds and is one of the cheap attacks.)"""
    from robustrl.attacks import ATTACKS

    if name not in ATTACKS:
        raise InvalidArgumentError(f"unknown attack {name!r}: choose from {sorted(ATTACKS)}")
    cls = ATTACKS[name]
    return bool(cls.expensive)


def split_attacks(names: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(cheap, expensive) attacks of ``names``, each in the given order (see :func:`is_expensive`)."""
    names = list(names)
    return tuple(n for n in names if not is_expensive(n)), tuple(n for n in names if is_expensive(n))


def merge_reports(reports: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    """The reports of several policies as one JSON document (``--json`` with several paths)."""
    return {"format": MERGED_FORMAT, "reports": reports, "labels": labels}


def labelled(progress: Progress | None, label: str) -> Progress | None:
    """``progress`` with each task prefixed by ``label`` (which policy the bar belongs to)."""
    if progress is None:
        return None

    def report(task: str, done: int, total: int, **fields: Any) -> None:
        progress(f"{label} {task}", done, total, **fields)

    return report


@with_torch_threads
def evaluate_robustness(
    sources: list[Path | str],
    env_id: str | None = None,
    *,
    attacks: list[str],
    eps: float | None = None,
    norm: str = "inf",
    median: bool = False,
    json_path: Path | str | None = None,
    load: Callable[[Path | str, str | None], Any] | None = None,
    progress: Progress | None = None,
    workers: int = 1,
    load_options: dict[str, Any] | None = None,
    **options: Any,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The robustness report of each source (run directory, checkpoint, model file), written next
    to it (:func:`report_path`; one source with ``json_path``: there), or with ``median`` the
    median-agent protocol (BARPO App. F.3: cheap attacks on every agent, expensive ones on the
    median). Every policy is loaded and every attack built with its options before any report is
    read or written, so bad input damages nothing. With several sources, ``json_path`` receives
    :func:`merge_reports`. Returns ``(reports, labels)``; ``options`` go to
    :func:`~robustrl.evaluate.robustness.robustness_report`. ``workers`` > 1 (not with ``median``)
    makes the SA-RL / PA-AD fits that many at a time in processes of their own first
    (:func:`~robustrl.evaluate.robustness.prefit_parallel`, loading each source with
    :func:`~robustrl.policies.adapters.load_model` and ``load_options``); the reports load them."""
    from robustrl.evaluate.robustness import check_attacks, median_agent_protocol, prefit_parallel, robustness_report

    if workers < 1:
        raise InvalidArgumentError(f"workers must be a whole number >= 1, got {workers}")
    if workers > 1 and median:
        raise InvalidArgumentError("workers > 1 parallelises the fits of plain reports, not of the median-agent protocol")

    if load is None:
        from robustrl.policies.adapters import load_model

        def load(source: Path | str, env: str | None) -> Any:
            return load_model(source, env)

    if not sources:
        raise InvalidArgumentError("no policy to evaluate")
    policies = []
    for source in sources:
        policy = load(source, env_id)
        env = env_id or policy.env_id
        if env is None:
            raise InvalidArgumentError(f"{source}: pass the env id (--env); the model file does not record its env")
        check_attacks(
            attacks, default_eps(env) if eps is None else eps, norm, options.get("attack_options"), policy, env
        )
        policies.append((policy, env))
    if median:
        cheap, expensive = split_attacks(attacks)
        loaded = {str(source): policy for source, (policy, _) in zip(sources, policies)}
        result = median_agent_protocol(
            sources,
            env_id,
            cheap_attacks=cheap,
            expensive_attacks=expensive,
            eps=eps,
            norm=norm,
            load=lambda source, _env: loaded[str(source)],
            progress=progress,
            **options,
        )
        reports = result["reports"]
        reports[result["median_index"]] = result["median_report"]
        labels = [run_label(s) + (" (median)" if i == result["median_index"] else "") for i, s in enumerate(sources)]
    else:
        if workers > 1:
            prefit_parallel(
                sources, env_id, attacks, workers=workers, eps=eps, norm=norm, seed=options.get("seed", 10_000),
                attack_options=options.get("attack_options"), budgets=options.get("budgets"), fits=options.get("fits"),
                refit=options.get("refit", False), load_options=load_options, progress=progress,
            )  # fmt: skip
            options = {**options, "refit": False}  # made just now: the reports load them
        reports, labels = [], []
        for source, (policy, env) in zip(sources, policies):
            path = json_path if json_path is not None and len(sources) == 1 else None
            path = path or report_path(source, default_eps(env) if eps is None else eps, norm)
            reports.append(
                robustness_report(
                    policy,
                    env,
                    attacks=attacks,
                    eps=eps,
                    norm=norm,
                    source=source,
                    json_path=path,
                    progress=labelled(progress, run_label(source)),
                    **options,
                )
            )
            labels.append(run_label(source))
    if json_path is not None and len(sources) > 1:
        atomic_write_text(Path(json_path), json.dumps(merge_reports(reports, labels), indent=1))
    return reports, labels
