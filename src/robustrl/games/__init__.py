"""Two-player zero-sum games with exact answers for adversarial policies under partial control
and adversarial training with timescale separation (Rethinking adversarial policies, ICLR 2024):
matrix games (:mod:`.matrix`), tabular Markov games (:mod:`.markov`), Kuhn Poker via OpenSpiel
(:mod:`.kuhn`), the learners (:mod:`.training`; as a run-directory Learner: :mod:`.learner`) and
stealth measures (:mod:`.stealth`). numpy + scipy only, except Kuhn (OpenSpiel) and the exact W2
(POT): ``pip install 'robustrl[games]'``.

The deployed opponent of a simulated env is :class:`robustrl.attacks.action.PartialControl`;
here the same mixture is computed exactly (:func:`.simplex.mixture`).
"""

from robustrl.games.markov import PartialControlMarkovGame, TabularMarkovGame, random_game
from robustrl.games.matrix import LEARNERS as MATRIX_LEARNERS
from robustrl.games.matrix import MATRIX_GAMES, MatrixGame, run_learner
from robustrl.games.simplex import mixture, project_simplex
from robustrl.games.training import METHODS, AdversarialTraining, train_curve

__all__ = [
    "MATRIX_GAMES",
    "MATRIX_LEARNERS",
    "METHODS",
    "AdversarialTraining",
    "MatrixGame",
    "PartialControlMarkovGame",
    "TabularMarkovGame",
    "mixture",
    "project_simplex",
    "random_game",
    "run_learner",
    "train_curve",
]
