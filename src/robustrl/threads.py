"""One deliberate torch thread setting for every entry point (CLI and library).

Our networks are 64-64 MLPs evaluated on batches of 1 to 2048 rows: torch's intra-op threads cost
more in hand-offs than they gain, and on a loaded machine torch's default (one thread per core)
oversubscribes it. Measured (issue 16): ``evaluate --attacks critic,mad`` on an InvertedPendulum
run took 97 s with torch's default and 21 s with one thread. So training, evaluation and the
attacks run with **one torch thread** unless the caller says otherwise:

- ``ROBUSTRL_TORCH_THREADS=<n>`` in the environment sets another count for every entry point;
- :func:`torch_threads` / :func:`with_torch_threads` set it around a block or a function and put
  the caller's setting back afterwards (nested entry points leave it alone).

Training results do not depend on the count here (every op is run on batches too small to be
split), but one thread keeps runs bit-reproducible without relying on that.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from robustrl.errors import InvalidArgumentError

ENV_VAR = "ROBUSTRL_TORCH_THREADS"
DEFAULT_THREADS = 1

F = TypeVar("F", bound=Callable[..., Any])


def default_threads() -> int:
    """``ROBUSTRL_TORCH_THREADS`` if set (a positive integer), else 1."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_THREADS
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise InvalidArgumentError(f"{ENV_VAR} must be a positive integer, got {raw!r}")
    return threads


@contextmanager
def torch_threads(threads: int | None = None, *, import_torch: bool = True) -> Iterator[int]:
    """Run the block with ``threads`` torch intra-op threads (default :func:`default_threads`),
    then restore the previous count.

    ``import_torch=False`` (the CLI, whose torch-free commands should not pay for importing torch):
    if torch is not imported yet, set ``OMP_NUM_THREADS`` instead (unless the user set it), which
    torch reads when it is first imported; the library entry points then set the count anyway.
    Without torch installed this is a no-op.
    """
    wanted = default_threads() if threads is None else int(threads)
    if not import_torch and "torch" not in sys.modules:
        os.environ.setdefault("OMP_NUM_THREADS", str(wanted))
        yield wanted
        return
    try:
        import torch
    except ImportError:  # the torch-free parts (robustrl.theory, robustrl.threat.finite)
        yield wanted
        return
    previous = torch.get_num_threads()
    if previous != wanted:
        torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def with_torch_threads(function: F) -> F:
    """Decorate a library entry point: it runs under :func:`torch_threads`."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch_threads():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
