"""Element-wise pruning of policies for robustness ("Pruning cannot hurt robustness: certified
trade-offs in reinforcement learning"): masks, strategies, the cubic schedule with burn-in and
micro-pruning, the Lipschitz surrogate L~ and the certified bound of Theorem 1, a per-state IBP
certificate, one-shot pruning of a trained run and ``certify``.

Training with pruning is ``TrainConfig(prune=PruneConfig(strategy="magnitude", sparsity=0.5))``
(or ``robustrl train --prune magnitude --sparsity 0.5``): ``algos.ppo.hooks_for`` adds one
:class:`~robustrl.prune.callback.PruneCallback`, so it composes with every ``--algo``.
"""

from robustrl.prune.callback import PruneCallback, prune_callback_for
from robustrl.prune.lipschitz import certified_bound, ibp_tv_bound, lipschitz_surrogate
from robustrl.prune.schedule import cubic_sparsity

__all__ = [
    "PruneCallback",
    "certified_bound",
    "cubic_sparsity",
    "ibp_tv_bound",
    "lipschitz_surrogate",
    "prune_callback_for",
]
