"""Observation attacks behind one protocol (see :mod:`robustrl.attacks.base`)."""

from robustrl.attacks import gradient, pa_ad, robust_sarsa, sa_rl  # noqa: F401  (registers the attacks)
from robustrl.attacks.base import (
    ALL,
    ATTACKS,
    Attack,
    make_attack,
    parse_attacks,
    policy_fingerprint,
)

__all__ = ["ALL", "ATTACKS", "Attack", "make_attack", "parse_attacks", "policy_fingerprint"]
