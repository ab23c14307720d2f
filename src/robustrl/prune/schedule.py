"""The cubic sparsity schedule of gradual pruning (Zhu & Gupta 2017, eq. 1), as "Pruning cannot
hurt robustness" uses it (Sec. 4.4, Algorithm 1): no pruning during a burn-in, then

    s_t = s_f (1 - (1 - (t - t0) / (T - t0))^3)      for t0 <= t <= T,

and s_f after T. Steps are optimiser steps; masks are updated only every ``prune_every`` of them
(micro-pruning), so the sparsity actually applied is this schedule read at those steps.
"""

from __future__ import annotations


def cubic_sparsity(step: int, start: int, end: int, final: float) -> float:
    """s_t of the cubic schedule at optimiser step ``step``: 0 up to ``start`` (t0), ``final`` from
    ``end`` (T) on; ``start == end`` is one-shot pruning at that step."""
    if step < start:
        return 0.0
    if step >= end:
        return final
    progress = (step - start) / (end - start)
    return final * (1.0 - (1.0 - progress) ** 3)


def schedule_steps(total_steps: int, burn_in: float, end: float) -> tuple[int, int]:
    """(t0, T) in optimiser steps for a run of ``total_steps`` steps."""
    return round(burn_in * total_steps), round(end * total_steps)
