"""Environments: vector envs across backends, normalisation, exact state snapshots."""

from robustrl.envs.make import check_env_id, make_env
from robustrl.envs.normalization import (
    ObservationNormalizer,
    RewardScaler,
    RunningMeanStd,
)

__all__ = ["ObservationNormalizer", "RewardScaler", "RunningMeanStd", "check_env_id", "make_env"]
