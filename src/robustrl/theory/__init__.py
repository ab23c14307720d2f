"""Exact theory lab: tabular ISA-MDPs (numpy only; importing this needs no torch).

- :class:`TabularISAMDP`: values, Q-values, the strongest adversary nu*(pi), adversarial values,
  robustness, the optimal and optimal robust policies, JSON load/save.
- :mod:`~robustrl.theory.gradients`: exact SPO / ARPO / BARPO policy gradients under direct
  parameterisation, projected gradient ascent on the simplex.
- :mod:`~robustrl.theory.landscape`: two-parameter policy slices, value landscapes, basins of
  gradient ascent (which FOSP each start ends at).
- :mod:`~robustrl.theory.toy`: the BARPO paper's Appendix D example and its published numbers.
- :func:`random_isa_mdp`: seeded random ISA-MDPs.

The Gymnasium bridge to the deep-RL code lives in :mod:`robustrl.envs.tabular` (not imported
here: it needs gymnasium).
"""

from robustrl.theory.generate import random_isa_mdp
from robustrl.theory.gradients import (
    OBJECTIVES,
    adversary_for,
    objective_value,
    policy_gradient,
    project_to_simplex,
    projected_gradient_ascent,
)
from robustrl.theory.landscape import BasinResult, PolicySlice, ascend, basins, landscape_grid
from robustrl.theory.mdp import TabularISAMDP, check_policy
from robustrl.theory.toy import PAPER, TOY_NAMES, toy_isa_mdp, toy_policy, toy_slice, toy_summary, toy_threshold

__all__ = [
    "OBJECTIVES",
    "PAPER",
    "TOY_NAMES",
    "BasinResult",
    "PolicySlice",
    "TabularISAMDP",
    "adversary_for",
    "ascend",
    "basins",
    "check_policy",
    "landscape_grid",
    "objective_value",
    "policy_gradient",
    "project_to_simplex",
    "projected_gradient_ascent",
    "random_isa_mdp",
    "toy_isa_mdp",
    "toy_policy",
    "toy_slice",
    "toy_summary",
    "toy_threshold",
]
