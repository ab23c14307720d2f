"""Names of the norms a perturbation set can be measured in (numpy- and torch-free)."""

from __future__ import annotations

from robustrl.errors import InvalidArgumentError

NORMS = ("inf", "2")


def parse_norm(norm: str | float) -> str:
    """Accept ``inf``/``linf``/``l_inf``/``math.inf`` and ``2``/``l2``/``l_2``."""
    text = str(norm).lower().replace("_", "").lstrip("l")
    if text in ("inf", "infinity"):
        return "inf"
    if text in ("2", "2.0"):
        return "2"
    raise InvalidArgumentError(f"unknown norm {norm!r}: use 'inf' (l_inf, default) or '2' (l_2)")
