"""The one progress-callback signature of the library.

Long work (training, fitting a learned attack, evaluation episodes, a study) reports through a
callable ``progress(task, done, total, **fields)``: ``task`` names what advances (``"train"``,
``"fit sa-rl"``, ``"episodes mad"``), ``done``/``total`` count its units (env steps, episodes),
and keyword ``fields`` carry extras a display may show (``mean_return``, ``rate``). The library
never prints; the CLI turns these calls into rich progress bars (:mod:`robustrl.cli`).
"""

from __future__ import annotations

from typing import Any, Protocol


class Progress(Protocol):
    def __call__(self, task: str, done: int, total: int, **fields: Any) -> None: ...


def no_progress(task: str, done: int, total: int, **fields: Any) -> None:
    """A :class:`Progress` that ignores every report."""
