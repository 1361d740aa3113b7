"""LightGBM LambdaRank on the same features: the boosted-tree comparison to the multi-task net.

Relevance per pair = click + purchase (0, 1 or 2), so stronger signals weigh more in the
NDCG-driven gradients. Early stopping on the validation NDCG@20; the model is persisted as
LightGBM's own text format (``model_to_string``), never as a pickle.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from coldbrew.config import RankerConfig, default_threads
from coldbrew.errors import NotFittedError
from coldbrew.ranking.base import RankingData, check_ranking_inputs, grouped_ndcg, progress_bar

__all__ = ["LambdaRankRanker"]


def _lightgbm():
    try:
        import lightgbm
    except ImportError:  # pragma: no cover - lightgbm is a core dependency
        raise ImportError("the lambdarank ranker needs LightGBM: pip install lightgbm") from None
    return lightgbm


class LambdaRankRanker:
    """``lightgbm.LGBMRanker(objective="lambdarank")`` behind the ``Ranker`` protocol.

    Parameters
    ----------
    config: the ``[ranker]`` section (``trees``, ``leaves``, ``lgbm_learning_rate``,
        ``patience``, ``random_state``).
    threads: LightGBM threads (default: the cores this process may use).
    """

    def __init__(self, config: RankerConfig | None = None, threads: int | None = None,
                 progress: bool | None = None) -> None:
        self.config = config or RankerConfig(kind="lambdarank")
        self.threads = threads or default_threads()
        self.progress = progress

    def fit(self, features: np.ndarray, labels: np.ndarray, groups: np.ndarray,
            validation: RankingData | None = None) -> Self:
        """Boost trees on grouped pairs; ``curves_`` holds NDCG@20 per boosting round.

        With ``validation``: early stopping on its NDCG@20; without: all ``config.trees``
        rounds (a refit for the rounds an earlier, validated fit chose). ``rounds_`` is the
        number of rounds kept.
        """
        lgb = _lightgbm()
        features = np.asarray(features, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        groups = np.asarray(groups, dtype=np.int64)
        check_ranking_inputs(features, labels, groups)
        if len(groups) == 0:
            raise ValueError("groups: no training groups (no hold-out request had a candidate)")
        cfg = self.config
        relevance = np.clip(labels[:, 0] + labels[:, 1] * (labels[:, 0] > 0), 0, 2)
        model = lgb.LGBMRanker(
            objective="lambdarank", n_estimators=cfg.trees, num_leaves=cfg.leaves,
            learning_rate=cfg.lgbm_learning_rate, min_child_samples=20, subsample=0.8,
            subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
            random_state=cfg.random_state, n_jobs=self.threads, verbose=-1,
        )
        val = validation if validation is not None else RankingData(features, labels, groups)
        val_relevance = np.clip(val.labels[:, 0] + val.labels[:, 1] * (val.labels[:, 0] > 0), 0, 2)
        update = progress_bar(cfg.trees, "training ranker (trees)", self.progress)
        callbacks = [lambda env: update(1)]
        if validation is not None:  # without one, all ``trees`` rounds are kept
            callbacks.insert(0, lgb.early_stopping(max(cfg.patience, 1) * 10, verbose=False))
        model.fit(
            features, relevance, group=groups,
            eval_X=(val.features,), eval_y=(val_relevance,), eval_group=[val.groups], eval_at=[20],
            callbacks=callbacks,
        )
        update(cfg.trees)  # closes the bar when early stopping ended the boosting
        self.booster_ = model.booster_
        history = model.evals_result_.get("valid_0", {}).get("ndcg@20", [])
        self.curves_: dict[str, list[float]] = {
            "epoch": [float(i + 1) for i in range(len(history))],
            "val_ndcg": [float(v) for v in history],
        }
        self.best_iteration_ = int(model.best_iteration_ or len(history) or cfg.trees)
        self.rounds_ = self.best_iteration_
        self.best_val_ndcg_ = grouped_ndcg(self.score(val.features), val.labels[:, 0], val.groups)
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        """Rank scores float32 (n_pairs,) from the best boosting round."""
        if not hasattr(self, "booster_"):
            raise NotFittedError("the LambdaRank ranker is not fitted: call fit() first")
        features = np.asarray(features, dtype=np.float32)
        expected = self.booster_.num_feature()
        if features.ndim != 2 or features.shape[1] != expected:
            raise ValueError(f"features: expected shape (n_pairs, {expected}), got {features.shape}")
        if len(features) == 0:
            return np.zeros(0, np.float32)
        return np.asarray(
            self.booster_.predict(features, num_iteration=self.best_iteration_, num_threads=self.threads),
            dtype=np.float32,
        )

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        """(metadata, arrays, texts): the booster as LightGBM text (``model_to_string``)."""
        if not hasattr(self, "booster_"):
            raise NotFittedError("the LambdaRank ranker is not fitted: call fit() first")
        meta = {"best_iteration": self.best_iteration_, "best_val_ndcg": self.best_val_ndcg_}
        return meta, {}, {"lightgbm": self.booster_.model_to_string(num_iteration=self.best_iteration_)}

    @classmethod
    def from_state(cls, config: RankerConfig, meta: dict[str, Any], arrays: dict[str, np.ndarray],
                   texts: dict[str, str]) -> LambdaRankRanker:
        """Rebuild from :meth:`state`'s output (the booster is parsed from its text)."""
        lgb = _lightgbm()
        if "lightgbm" not in texts:
            raise ValueError("LambdaRank ranker state: the LightGBM model text is missing")
        ranker = cls(config)
        ranker.booster_ = lgb.Booster(model_str=texts["lightgbm"])
        ranker.best_iteration_ = int(meta.get("best_iteration", 0)) or ranker.booster_.current_iteration()
        ranker.best_val_ndcg_ = float(meta.get("best_val_ndcg", float("nan")))
        return ranker
