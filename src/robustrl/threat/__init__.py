"""Threat models: perturbation sets and the batched solvers shared by attacks and defences."""

from robustrl.threat.ball import NORMS, Ball, parse_norm
from robustrl.threat.solvers import (
    DEFAULT_STEPS,
    DEFAULT_TEMPERATURE,
    SOLVERS,
    fgsm,
    pgd,
    sgld,
    solve,
)

__all__ = ["DEFAULT_STEPS", "DEFAULT_TEMPERATURE", "NORMS", "SOLVERS", "Ball", "fgsm", "parse_norm", "pgd", "sgld", "solve"]
