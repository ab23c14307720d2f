"""Drawing :mod:`robustrl.progress` reports as rich progress bars (stderr).

The library only calls ``progress(task, done, total, **fields)``; this module is the presentation
layer that turns those calls into bars, one per task: the CLI uses it, and ``train(...,
progress=True)`` uses it for scripts and notebooks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from robustrl.progress import Progress


@contextmanager
def progress_bars(console: Any = None, transient: bool = False, disable: bool = False) -> Iterator[Progress]:
    """A context whose value is a :class:`~robustrl.progress.Progress` callback drawing one bar
    per task (training: steps, rate and mean return; other tasks: done/total)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import (
        Progress as RichProgress,
    )

    console = console or Console(stderr=True)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    tasks: dict[str, Any] = {}
    with RichProgress(*columns, console=console, transient=transient, disable=disable) as bar:

        def draw(task: str, done: int, total: int, **fields: Any) -> None:
            extra = ""
            if "rate" in fields:
                extra += f"steps {fields['rate']:>6.0f} steps/s"
            if "mean_return" in fields:
                value = fields["mean_return"]
                extra += "  return " + ("-" if value is None or math.isnan(value) else f"{value:8.1f}")
            if "eval_return" in fields and not math.isnan(fields["eval_return"]):  # ppo.eval_every: the mean action's
                extra += f"  eval {fields['eval_return']:8.1f}"
            if task not in tasks:
                tasks[task] = bar.add_task(str(fields.get("label", task)), total=total, extra=extra)
            bar.update(tasks[task], completed=done, total=total, extra=extra)

        yield draw


def progress_lines(write: Any = None, every_seconds: float = 600.0, clock: Any = None) -> Progress:
    """A :class:`~robustrl.progress.Progress` callback for logs (a study run under ``nohup`` or a
    scheduler, where bars are not drawn): one timestamped line per task when its count or label changes,
    at most one per ``every_seconds`` for counts that move continuously (env steps), so a log
    shows how far a long run is without growing by a line per poll."""
    import sys
    import time
    from datetime import UTC, datetime

    write = write or (lambda line: print(line, file=sys.stderr, flush=True))
    clock = clock or time.monotonic
    last: dict[str, tuple[tuple[int, Any], float]] = {}

    def report(task: str, done: int, total: int, **fields: Any) -> None:
        previous = last.get(task)
        now = clock()
        # the label counts too: a task that fails for good changes "tasks (0 failed)", not the count
        state = (done, fields.get("label"))
        if previous is not None and (previous[0] == state or (task.endswith("steps") and now - previous[1] < every_seconds and done < total)):
            return
        last[task] = (state, now)
        share = f" ({done / total:.0%})" if total else ""
        amount = f"{done / 1e6:.2f}M of {total / 1e6:.2f}M" if total >= 1e6 else f"{done} of {total}"
        write(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC  {fields.get('label', task)}: {amount}{share}")

    return report
