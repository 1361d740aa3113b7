"""Re-ranking: pure feature functions and learned rankers over the blend's top candidates.

* :mod:`coldbrew.ranking.features`: (request, candidate) pairs -> float32 feature matrix.
* :mod:`coldbrew.ranking.multitask`: a numpy multi-task MLP (click, purchase, category heads).
* :mod:`coldbrew.ranking.lambdarank`: LightGBM LambdaRank on the same features.
* :mod:`coldbrew.ranking.stage`: training at fit time on a temporal hold-out, and re-ranking.
"""

from coldbrew.ranking.base import Ranker, RankingData, grouped_ndcg
from coldbrew.ranking.features import FEATURE_NAMES, ItemTable, UserTable, pair_features

__all__ = ["FEATURE_NAMES", "ItemTable", "Ranker", "RankingData", "UserTable", "grouped_ndcg", "pair_features"]
