"""robustrl: adversarially robust deep reinforcement learning.

Library entry points (the CLI is a thin layer over these)::

    from robustrl import train, evaluate, load_policy, TrainConfig
"""

from robustrl.config import PPOConfig, TrainConfig, ppo_defaults_for
from robustrl.evaluate import evaluate
from robustrl.experiments.run import train
from robustrl.policies.checkpoint import load_policy

__version__ = "0.1.0"
__all__ = ["PPOConfig", "TrainConfig", "evaluate", "load_policy", "ppo_defaults_for", "train"]
