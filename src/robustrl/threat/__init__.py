"""Threat models: perturbation sets and the solvers shared by attacks and defences.

- :class:`PerturbationSet` (protocol): what a perturbation set offers (project, sample, contains,
  describe).
- :class:`Ball` and the batched first-order solvers :func:`pgd`, :func:`fgsm`, :func:`sgld`
  (torch): continuous balls in observation space.
- :class:`FiniteSet` and the exact solver :func:`exhaustive` (numpy only): the admissible
  states B(s) of a tabular state-adversarial MDP.

Names are imported on first use (PEP 562), so ``import robustrl.threat.finite`` works without
torch installed.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "DEFAULT_STEPS": "solvers",
    "DEFAULT_TEMPERATURE": "solvers",
    "Ball": "ball",
    "FiniteInnerObjective": "finite",
    "FiniteSet": "finite",
    "InnerObjective": "solvers",
    "NORMS": "norms",
    "PerturbationSet": "protocol",
    "exhaustive": "finite",
    "fgsm": "solvers",
    "parse_norm": "norms",
    "pgd": "solvers",
    "sgld": "solvers",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
