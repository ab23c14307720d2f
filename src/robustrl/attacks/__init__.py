"""Observation attacks behind one protocol (see :mod:`robustrl.attacks.base`)."""

# importing a module registers its attacks; random first, so ATTACKS lists them in ALL's order
from robustrl.attacks import random, gradient, robust_sarsa, sa_rl, pa_ad, transfer, action  # noqa: F401, I001
from robustrl.attacks.base import (
    ALL,
    ATTACKS,
    Attack,
    make_attack,
    parse_attacks,
    policy_fingerprint,
)

__all__ = ["ALL", "ATTACKS", "Attack", "make_attack", "parse_attacks", "policy_fingerprint"]
