"""robustrl: adversarially robust deep reinforcement learning.

Library entry points (the CLI is a thin layer over these)::

    from robustrl import train, evaluate, load_policy, TrainConfig

The names are imported on first use (PEP 562), so ``import robustrl`` and the torch-free modules
(:mod:`robustrl.threat.finite`, :mod:`robustrl.config`) do not load torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

_WHERE = {
    "PPOConfig": "robustrl.config",
    "TrainConfig": "robustrl.config",
    "evaluate": "robustrl.evaluate",
    "load_policy": "robustrl.policies.checkpoint",
    "ppo_defaults_for": "robustrl.config",
    "train": "robustrl.experiments.run",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """``robustrl.evaluate`` is the *function* (as it was when this module imported it eagerly).
    Importing the subpackage ``robustrl.evaluate`` makes Python bind the subpackage to that name
    on this module; keep the function instead (the subpackage stays in ``sys.modules``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "evaluate" and isinstance(value, types.ModuleType):
            return  # __getattr__ gives the function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
