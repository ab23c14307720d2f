"""The robustness table of the BARPO paper (Table 2) for any attackable policy.

For one policy: natural return, return under each attack (mean ± std over ``episodes``
deterministic episodes), the **worst** attack and the **worst-case robustness**
(worst - natural) / |natural|. Learned attacks are fitted once and cached next to the policy
(``<run dir>/attacks/<eps>-l<norm>/``), and the report is written after every attack, so an
interrupted evaluation resumes where it stopped and loses nothing. A learned attack can be fitted
several times with other seeds (``fits``): its cell is then the worst fit's, since one fit of an
adversary can miss a weakness that another finds (benchmarks/results/sa_rl_refit.md: one agent
at 0.40, 0.99 and 0.31 of its natural return under three SA-RL fits). Every attack is built with its
options (and the cheap ones tried on one observation) before the report file is read or written,
so a bad option never costs earlier results.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustrl.attacks import ATTACKS, make_attack
from robustrl.attacks.base import policy_fingerprint
from robustrl.config import check_field_value, default_eps
from robustrl.errors import CheckpointError, InvalidArgumentError
from robustrl.evaluate.reports import labelled, report_path, split_attacks
from robustrl.evaluate.rollout import run_episodes
from robustrl.policies.checkpoint import atomic_write_text
from robustrl.progress import Progress
from robustrl.threads import with_torch_threads
from robustrl.threat import parse_norm

REPORT_FORMAT = "robustrl-robustness-report"
# Fit j > 0 of a learned attack trains with the attack seed plus j times this, far from any other
# evaluation's attack seed (those differ by small offsets of the evaluation seed).
FIT_SEED_STRIDE = 100_000


def worst_case_robustness(natural: float, worst: float) -> float:
    """(worst - natural) / |natural| (BARPO paper, Table 2): 0 = no loss, -1 = everything lost."""
    return (worst - natural) / abs(natural) if natural != 0 else math.nan


def attack_directory(source: Path | None, eps: float, norm: str) -> Path | None:
    """Where fitted attacks of a run are cached; None for in-memory policies."""
    if source is None:
        return None
    base = source if source.is_dir() else source.parent
    return base / "attacks" / f"eps{eps:g}-l{norm}"


def check_attacks(
    names: list[str],
    eps: float,
    norm: str = "inf",
    attack_options: dict[str, dict[str, Any]] | None = None,
    policy: Any = None,
    env_id: str | None = None,
) -> None:
    """Refuse bad attack names and options before any work: each option is checked against its
    field's type, each attack is built with its options, and, given the ``policy``, each attack
    that learns nothing perturbs one observation (its solver checks its step counts and sizes)."""
    attack_options = attack_options or {}
    unknown = [a for a in [*names, *attack_options] if a not in ATTACKS]
    if unknown:
        raise InvalidArgumentError(f"unknown attack(s) {sorted(set(unknown))}: choose from {sorted(ATTACKS)}")
    for name in names:
        cls, options = ATTACKS[name], attack_options.get(name, {})
        known = {f.name for f in dataclasses.fields(cls.Options)}
        options = {
            key: check_field_value(cls.Options, key, value, f"attack option {name}.") if key in known else value
            for key, value in options.items()
        }
        attack = make_attack(name, eps, norm, seed=0, **options)  # unknown options: a clear error here
        if policy is not None and not cls.learned and eps > 0:
            attack.fit(policy, env_id)
            try:
                attack.perturb(torch.zeros(1, policy.obs_dim))
            except InvalidArgumentError as error:
                raise InvalidArgumentError(f"attack {name} with options {options}: {error}") from None


def check_fits(fits: dict[str, int] | None) -> dict[str, int]:
    """Fits per learned attack, checked: each name a learned attack, each count an integer >= 1."""
    checked = {}
    for name, count in (fits or {}).items():
        if name not in ATTACKS or not ATTACKS[name].learned:
            raise InvalidArgumentError(
                f"fits: {name!r} is not a learned attack; only these are fitted: {sorted(n for n, c in ATTACKS.items() if c.learned)}"
            )
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidArgumentError(f"fits: {name} needs a whole number of fits >= 1, got {count!r}")
        checked[name] = count
    return checked


def fits_done(result: dict[str, Any] | None) -> int:
    """How many fits of a learned attack a report's result holds (one for a result written before
    fits were kept, or for an attack that learns nothing; none before it ran)."""
    if not result or "mean" not in result:
        return 0
    return len(result.get("fits") or [None])


def fits_held(result: dict[str, Any] | None, name: str, options: dict[str, Any], budget: int | None) -> int:
    """The fits a report's result holds that :func:`robustness_report` keeps for attack ``name``
    asked with ``options`` and ``budget`` (a result under other options or another budget is
    fitted again: none)."""
    if not result or "mean" not in result:
        return 0
    learned = ATTACKS[name].learned
    budget = int(budget) if learned and budget is not None else None
    if result.get("options") != _effective_options(name, options) or result.get("budget") != budget:
        return 0
    return fits_done(result)


def _fits_used(result: dict[str, Any] | None) -> int:
    """How many fits a result's cell is the worst of (``fits_done`` unless fewer were asked for)."""
    return int((result or {}).get("fits_used", fits_done(result)))


def attack_done(report: dict[str, Any] | None, name: str, fits: int = 1) -> bool:
    """Whether ``report`` holds attack ``name`` as the worst of ``fits`` fits (1: any result)."""
    result = (report or {}).get("results", {}).get(name)
    return fits_done(result) >= fits and (fits == 1 or _fits_used(result) == fits)


def _cached_report(json_path: Path | None, settings: dict[str, Any]) -> dict[str, Any] | None:
    """A previous (possibly partial) report with the same settings, to resume from."""
    if json_path is None or not json_path.is_file():
        return None
    try:
        previous = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # unreadable: start again (the file is replaced atomically at the next write)
    if not isinstance(previous, dict) or previous.get("format") != REPORT_FORMAT:
        return None
    # compare through JSON, where tuples (e.g. a grid option) have become lists
    previous_settings = previous.get("settings")
    if not isinstance(previous_settings, dict):
        return None
    # Reports written before per-attack budgets kept the budgets (and options) of the whole call
    # in the settings; move each budget onto its attack's result so those results stay reusable.
    legacy_budgets = previous_settings.pop("budgets", None)
    previous_settings.pop("attack_options", None)  # per-attack "options" are already in each result
    if isinstance(legacy_budgets, dict):
        for name, result in previous.get("results", {}).items():
            if name != "natural" and isinstance(result, dict):
                result.setdefault("budget", legacy_budgets.get(name))
    if previous_settings != json.loads(json.dumps(settings)):
        return None
    return previous


@with_torch_threads
def robustness_report(
    policy: Any,
    env_id: str,
    *,
    attacks: list[str],
    eps: float | None = None,
    norm: str = "inf",
    episodes: int = 50,
    seed: int = 10_000,
    deterministic: bool = True,
    attack_options: dict[str, dict[str, Any]] | None = None,
    budgets: dict[str, int] | None = None,
    fits: dict[str, int] | None = None,
    source: Path | str | None = None,
    attack_dir: Path | None = None,
    refit: bool = False,
    json_path: Path | str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Evaluate ``policy`` clean and under each attack; returns (and writes) the report.

    ``eps`` defaults to the papers' value for the env (see :func:`robustrl.config.default_eps`),
    in the policy's perturbation space (``policy.perturbation_space``). ``attack_options`` and
    ``budgets`` are per attack name; ``fits`` (per learned attack, default 1) fits that attack as
    many times, with attack seeds ``FIT_SEED_STRIDE`` apart, on the same evaluation episodes: its
    result is the worst fit's (mean, std, returns) and lists every fit under ``"fits"``; fit j > 0
    is cached in ``<attack dir>/fit<j>/``. With ``json_path``, a previous report with the same settings
    is resumed: finished attacks are not run again. ``progress`` (:mod:`robustrl.progress`) hears
    ``("episodes <attack>", done, episodes)`` and the fits of learned attacks
    (``("fit <attack>", env steps done, total)``). The report's ``checkpoint`` is the file the
    policy was loaded from (``policy.checkpoint``, set by the loaders), when known.
    """
    eps = default_eps(env_id) if eps is None else eps
    norm = parse_norm(norm)
    if eps < 0 or not math.isfinite(eps):
        raise InvalidArgumentError(f"eps must be a finite number >= 0, got {eps}")
    check_attacks(attacks, eps, norm, attack_options, policy, env_id)  # before the report file is touched
    fits = check_fits(fits)
    attack_options = attack_options or {}
    budgets = budgets or {}
    json_path = Path(json_path) if json_path is not None else None
    source_path = Path(source) if source is not None else None
    attack_dir = attack_dir or attack_directory(source_path, eps, norm)
    # What every result of the file shares; each attack's options and budget sit on its own result,
    # so asking for another attack (or another budget for one) does not rerun the others.
    settings = {
        "env_id": env_id, "eps": eps, "norm": norm, "episodes": episodes, "seed": seed,
        "deterministic": deterministic, "victim_fingerprint": policy_fingerprint(policy),
    }
    report = _cached_report(json_path, settings) or {
        "format": REPORT_FORMAT,
        "settings": settings,
        "source": str(source) if source is not None else "<policy object>",
        "env_id": env_id,
        "eps": eps,
        "norm": norm,
        "perturbation_space": getattr(policy, "perturbation_space", "unknown"),
        "episodes": episodes,
        "mode": "deterministic" if deterministic else "stochastic",
        "results": {},
        "returns": {},
    }

    report["checkpoint"] = getattr(policy, "checkpoint", None)

    def save() -> None:
        _summarise(report)
        if json_path is not None:
            atomic_write_text(json_path, json.dumps(report, indent=1))

    def episodes_under(name: str, perturb: Any) -> tuple[dict[str, Any], list[float]]:
        callback = None
        if progress is not None:
            count = [0]

            def callback(episode_return: float) -> None:
                count[0] += 1
                progress(f"episodes {name}", count[0], episodes, episode_return=episode_return)

        start = time.perf_counter()
        result = run_episodes(policy, env_id, episodes, deterministic=deterministic, seed=seed, perturb=perturb, on_episode=callback)
        seconds = time.perf_counter() - start
        summary = result.summary() | {"eval_seconds": round(seconds, 2), "steps_per_second": round(float(result.lengths.sum()) / seconds, 1)}
        return summary, result.returns.tolist()

    if "natural" not in report["results"]:
        report["results"]["natural"], report["returns"]["natural"] = episodes_under("natural", None)
        save()
    for name in attacks:
        options_used = _effective_options(name, attack_options.get(name, {}))
        if options_used is not None:  # what else decides the result (transfer: the adversary it replays)
            options_used |= json.loads(json.dumps(make_attack(name, eps, norm, seed=seed, **attack_options.get(name, {})).inputs()))
        # only learned attacks are fitted, so only their budget can change a result
        learned = ATTACKS[name].learned
        budget = int(budgets[name]) if learned and budgets.get(name) is not None else None
        previous = report["results"].get(name, {})
        same = options_used is not None and previous.get("options") == options_used and previous.get("budget") == budget
        done = fit_records(previous, report["returns"].get(name), seed + 50_000) if "mean" in previous and same else []
        # not asked: the cell stays what the file has (the worst of its fits), as attack_done(..., 1) reads it
        wanted = fits[name] if name in fits else max(1, _fits_used(previous)) if done else 1
        if len(done) >= wanted:  # resumed: done in an earlier call with the same options (defaults included) and budget
            if _fits_used(previous) != wanted:  # fitted more often before: the cell is over the fits asked for
                _set_worst_fit(report, name, options_used, budget, done[:wanted], keep=done, learned=learned)
                save()
            continue
        for j in range(len(done), wanted):
            fit_dir, fit_seed = fit_location(attack_dir, seed, j)
            attack, fit_seconds, loaded = _fitted_attack(
                name, eps, norm, policy, env_id, attack_options.get(name, {}), budgets.get(name), fit_dir, refit,
                progress if wanted == 1 else labelled(progress, f"fit {j + 1}/{wanted}"), fit_seed,
            )
            attack.generator.manual_seed(attack.seed)  # same solver noise whether just fitted or loaded
            summary, returns = episodes_under(name, attack.perturb)
            # the seed the adversary was trained with (a cached one may come from another evaluation seed)
            done.append({"seed": attack.seed, "fit_seconds": round(fit_seconds, 2), "loaded_fitted_attack": loaded,
                         **summary, "returns": returns})  # fmt: skip
            _set_worst_fit(report, name, options_used, budget, done, learned=learned)
            save()  # after every fit: an interrupted evaluation keeps the fits it finished
    # The file keeps every attack ever run with these settings; the caller gets the ones asked for.
    view = {**report, "results": {k: v for k, v in report["results"].items() if k == "natural" or k in attacks}}
    view["returns"] = {k: v for k, v in report["returns"].items() if k in view["results"]}
    _summarise(view)
    return view


def prefit(
    policy: Any,
    env_id: str,
    name: str,
    fit: int = 0,
    *,
    source: Path | str,
    eps: float | None = None,
    norm: str = "inf",
    seed: int = 10_000,
    options: dict[str, Any] | None = None,
    budget: int | None = None,
    refit: bool = False,
    progress: Progress | None = None,
) -> tuple[float, bool]:
    """Fit ``fit`` (0-based) of learned attack ``name`` into the cache the report of ``source``
    reads (:func:`fit_location`), without evaluating it or touching any report: fits of one agent
    can then run side by side (a study's fit tasks) and :func:`robustness_report`, called with the
    same settings, loads them. Returns (the fit's seconds, whether it was cached already); with
    ``refit``, a cached fit is made again."""
    eps = default_eps(env_id) if eps is None else eps
    norm = parse_norm(norm)
    check_attacks([name], eps, norm, {name: options or {}}, policy, env_id)
    if not ATTACKS[name].learned:
        raise InvalidArgumentError(f"attack {name!r} learns nothing: there is no fit to make ahead")
    fit_dir, fit_seed = fit_location(attack_directory(Path(source), eps, norm), seed, fit)
    _, seconds, loaded = _fitted_attack(name, eps, norm, policy, env_id, options or {}, budget, fit_dir, refit, progress, fit_seed)
    return seconds, loaded


def prefit_parallel(
    sources: list[Path | str],
    env_id: str | None,
    attacks: list[str],
    *,
    workers: int,
    eps: float | None = None,
    norm: str = "inf",
    seed: int = 10_000,
    attack_options: dict[str, dict[str, Any]] | None = None,
    budgets: dict[str, int] | None = None,
    fits: dict[str, int] | None = None,
    refit: bool = False,
    load_options: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> float:
    """Make every fit of the expensive learned attacks among ``attacks`` (SA-RL, PA-AD; ``fits``
    per attack) of every source, ``workers`` at a time, each in a process of its own with one torch
    thread, into the caches :func:`robustness_report` reads (:func:`prefit`): the reports then load
    them and run the episodes. One SA-RL fit is minutes of one core and a table fits several per
    agent, one after another. Sources are loaded in the workers with
    :func:`robustrl.policies.adapters.load_model` (``load_options``: its keyword arguments).
    ``progress`` hears ``("fits", done, total)``. Returns the seconds of fitting made (cached fits:
    0). A fit that raises stops the others and raises; the finished ones stay cached."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    fits = check_fits(fits)
    expensive = split_attacks(attacks)[1]
    jobs = [(str(source), env_id, name, j) for source in sources for name in expensive for j in range(fits.get(name, 1))]
    if not jobs:
        return 0.0
    attack_options, budgets = attack_options or {}, budgets or {}
    made = 0.0
    # spawn: a forked copy of a process that has run torch (threads, compiled kernels) can hang
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(_prefit_job, source, env, name, j, eps, norm, seed, attack_options.get(name, {}),
                        budgets.get(name), refit, load_options or {})
            for source, env, name, j in jobs
        ]
        try:
            if progress is not None:
                progress("fits", 0, len(futures))
            for done, future in enumerate(as_completed(futures), 1):
                made += future.result()
                if progress is not None:
                    progress("fits", done, len(futures))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return made


def _prefit_job(source, env_id, name, fit, eps, norm, seed, options, budget, refit, load_options) -> float:
    """One fit of :func:`prefit_parallel`, in a worker process (one torch thread: N workers, N cores)."""
    from robustrl.policies.adapters import load_model

    torch.set_num_threads(1)
    policy = load_model(source, env_id, **load_options)
    seconds, cached = prefit(policy, env_id or policy.env_id, name, fit, source=source, eps=eps, norm=norm, seed=seed,
                             options=options, budget=budget, refit=refit)  # fmt: skip
    return 0.0 if cached else seconds


def fit_location(attack_dir: Path | None, seed: int, fit: int) -> tuple[Path | None, int]:
    """Where fit ``fit`` (0-based) of a learned attack is cached and the seed it trains with, for
    an evaluation with ``seed``: offset from the evaluation seed, so a learned attack never trains
    on the evaluation episodes' start states; fit j > 0 adds j strides and has its own folder."""
    folder = attack_dir if fit == 0 or attack_dir is None else attack_dir / f"fit{fit}"
    return folder, seed + 50_000 + FIT_SEED_STRIDE * fit


def fit_records(result: dict[str, Any], returns: list[float] | None = None, attack_seed: int = 0) -> list[dict[str, Any]]:
    """The fits an attack's result holds (copies), each with its seed, fit seconds and returns; a
    result written before fits were kept is its one fit (with ``returns`` and ``attack_seed``)."""
    if "fits" in result:
        return [dict(fit) for fit in result["fits"]]
    legacy = {k: v for k, v in result.items() if k not in ("options", "budget")}
    return [{"seed": attack_seed, **legacy, "returns": list(returns or [])}]


def _set_worst_fit(
    report: dict[str, Any], name: str, options: Any, budget: int | None, fits: list[dict[str, Any]],
    keep: list[dict[str, Any]] | None = None, learned: bool = True,
) -> None:
    """The attack's result: the summary and returns of its worst (lowest mean) fit among ``fits``,
    every fit kept (``keep``, default ``fits``) under ``"fits"`` for learned attacks."""
    worst = min(range(len(fits)), key=lambda j: fits[j]["mean"])
    summary = {k: v for k, v in fits[worst].items() if k not in ("seed", "returns")}
    result = {**summary, "options": options, "budget": budget}
    if learned:
        result |= {"fits": keep or fits, "fits_used": len(fits), "worst_fit": worst}
    report["results"][name] = result
    report["returns"][name] = list(fits[worst]["returns"])


def _effective_options(name: str, options: dict[str, Any]) -> dict[str, Any] | None:
    """The attack's options with its defaults filled in, as JSON: a result computed under other
    defaults (an older robustrl) is not reused."""
    try:
        return json.loads(json.dumps(dataclasses.asdict(ATTACKS[name].Options(**options))))
    except TypeError:
        return None  # unknown option: make_attack raises the clear error


def _fitted_attack(name, eps, norm, policy, env_id, options, budget, attack_dir, refit, progress, seed):
    """Load a cached fitted attack if there is one for this victim, else fit (and cache) it."""
    cls = ATTACKS[name]
    if cls.learned and attack_dir is not None and not refit and (attack_dir / f"{name}.json").is_file():
        try:
            attack = cls.load(attack_dir, policy, env_id)
            same_ball = attack.eps == float(eps) and attack.ball.norm == norm
            same_budget = attack.fit_budget == (None if budget is None else int(budget))
            # compared as JSON: a spec's options come with lists where a loaded attack has tuples
            # (SA-RL's grid), and a cached fit must still be found
            same_options = _effective_options(name, dataclasses.asdict(attack.options)) == _effective_options(name, options)
            if same_options and same_budget and same_ball:
                # a partial state left beside a cached fit (cut between the cache's save and its
                # removal, or of another budget) is of no use now
                shutil.rmtree(attack_dir / f"{name}.partial", ignore_errors=True)
                # the seconds its fit took when it was made (0 if not kept): a fit made ahead by a
                # study's fit task (prefit) is priced as the fit it is
                return attack, float(attack.fit_seconds or 0.0), True
        except CheckpointError:
            pass  # another victim or a damaged file: fit again (the new fit replaces it atomically)
    attack = make_attack(name, eps, norm, seed=seed, **options)
    start = time.perf_counter()
    # a learned fit keeps its training state beside its cache while it trains: a fit cut short
    # (Ctrl-C, a stopped study) resumes there; it is removed once the fit is cached
    partial = attack_dir / f"{name}.partial" if cls.learned and attack_dir is not None else None
    if refit and partial is not None:
        shutil.rmtree(partial, ignore_errors=True)  # asked for a new fit: not the rest of an old one
    attack.fit(policy, env_id, budget=budget, progress=progress, resume_dir=partial)  # progress("fit <name>", done, total, **fields)
    seconds = time.perf_counter() - start + attack.resumed_seconds
    if cls.learned and attack_dir is not None:
        attack.save(attack_dir)
        shutil.rmtree(partial, ignore_errors=True)
    return attack, seconds, False


def _summarise(report: dict[str, Any]) -> None:
    """Add the worst attack and the worst-case robustness over the attacks evaluated so far."""
    results = report["results"]
    natural = results.get("natural", {}).get("mean")
    attacked = {name: r["mean"] for name, r in results.items() if name != "natural" and "mean" in r}
    if natural is None or not attacked:
        report.pop("worst", None)
        return
    worst_name = min(attacked, key=attacked.get)
    report["worst"] = {"attack": worst_name, "mean": attacked[worst_name]}
    report["worst_case_robustness"] = worst_case_robustness(natural, attacked[worst_name])


def median_agent(reports: list[dict[str, Any]], attacks: list[str] | tuple[str, ...] | None = None) -> int:
    """The median agent of BARPO Appendix F.3: agents are ranked by natural return and by their
    worst return under the cheap attacks; the agent whose mean rank is the median is kept (our
    reading of "the median agent by considering the natural and robust returns"; ties go to the
    lower robust return, the conservative choice)."""
    if not reports:
        raise InvalidArgumentError("median_agent needs at least one report")
    natural = np.array([r["results"]["natural"]["mean"] for r in reports])

    def robust_return(report: dict[str, Any]) -> float:
        # ``attacks``: rank on these only (the cheap ones), so a rerun that finds the expensive
        # attacks already in the median's report picks the same agent.
        if attacks is None:
            return report.get("worst", {}).get("mean", report["results"]["natural"]["mean"])
        names = [n for n in report["results"] if n != "natural" and (attacks is None or n in attacks)]
        means = [report["results"][n]["mean"] for n in names if "mean" in report["results"][n]]
        return min(means) if means else report["results"]["natural"]["mean"]

    robust = np.array([robust_return(r) for r in reports])
    rank = (natural.argsort().argsort() + robust.argsort().argsort()) / 2.0
    order = sorted(range(len(reports)), key=lambda i: (rank[i], robust[i]))
    return order[(len(order) - 1) // 2]


@with_torch_threads
def eps_sweep(
    policy: Any, env_id: str, eps_values: list[float], *, attacks: list[str], **options: Any
) -> list[dict[str, Any]]:
    """One robustness report per eps (learned attacks are fitted for each eps). ``options`` go to
    :func:`robustness_report`; ``json_path`` becomes one file per eps (``<stem>-eps<e>.json``)."""
    if not eps_values:
        raise InvalidArgumentError("eps sweep needs at least one eps")
    json_path = options.pop("json_path", None)
    reports = []
    for eps in eps_values:
        path = None if json_path is None else Path(json_path).with_name(f"{Path(json_path).stem}-eps{eps:g}.json")
        reports.append(robustness_report(policy, env_id, attacks=attacks, eps=eps, json_path=path, **options))
    return reports


@with_torch_threads
def median_agent_protocol(
    sources: list[Path | str],
    env_id: str | None = None,
    *,
    cheap_attacks: tuple[str, ...] | None = None,
    expensive_attacks: tuple[str, ...] | None = None,
    load: Callable[[Path | str, str | None], Any] | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> dict[str, Any]:
    """BARPO Appendix F.3: run the cheap attacks on every seed's agent, pick the median agent
    (:func:`median_agent`), run the expensive (learned-adversary) attacks on it. The attacks
    default to the papers' six, split by :func:`robustrl.evaluate.reports.split_attacks`. Each
    agent's report is written to :func:`robustrl.evaluate.reports.report_path` (resumable);
    ``progress`` tasks are prefixed with the run's name. Returns ``{"reports", "median_index",
    "median_source", "median_report"}``."""
    from robustrl.attacks import ALL
    from robustrl.evaluate.reports import run_label
    from robustrl.policies.checkpoint import load_policy

    default_cheap, default_expensive = split_attacks(ALL)
    cheap_attacks = default_cheap if cheap_attacks is None else tuple(cheap_attacks)
    expensive_attacks = default_expensive if expensive_attacks is None else tuple(expensive_attacks)
    load = load or load_policy
    if not sources:
        raise InvalidArgumentError("the median-agent protocol needs at least one run")
    norm = options.get("norm", "inf")
    loaded = []
    for source in sources:  # every policy, and every attack's options, before any report is touched
        policy = load(source, env_id)
        env = env_id or policy.env_id
        eps = options.get("eps") if options.get("eps") is not None else default_eps(env)
        check_attacks([*cheap_attacks, *expensive_attacks], eps, norm, options.get("attack_options"), policy, env)
        loaded.append((policy, env, report_path(source, eps, norm)))
    reports = [
        robustness_report(
            policy, env, attacks=list(cheap_attacks), source=source, json_path=json_path,
            progress=labelled(progress, run_label(source)), **options,
        )
        for source, (policy, env, json_path) in zip(sources, loaded)
    ]  # fmt: skip
    index = median_agent(reports, cheap_attacks)
    policy, env, json_path = loaded[index]
    median_report = robustness_report(
        policy, env, attacks=list(cheap_attacks) + list(expensive_attacks), source=sources[index], json_path=json_path,
        progress=labelled(progress, f"{run_label(sources[index])} (median)"), **options,
    )  # fmt: skip
    return {"reports": reports, "median_index": index, "median_source": str(sources[index]), "median_report": median_report}
