"""A multi-task ranker in plain numpy: one shared trunk, three heads, trained jointly.

Architecture (per (request, candidate) pair, inputs standardised with training moments)::

    x (F) -> Dense(hidden) -> ReLU -> Dense(hidden // 2) -> ReLU = h
    click    = h . w_click + b + x . w_skip     (listwise softmax over the request's candidates)
    purchase = h . w_purchase + b               (binary cross-entropy)
    category = h @ W_category + b               (softmax over the top categories; -1 = ignored)

Loss = ``click_weight`` x click + ``purchase_weight`` x purchase + ``category_weight`` x
category, minimised with Adam over mini-batches of whole requests (``batch_groups``), with
L2 ``weight_decay`` on the weight matrices. After each epoch the validation NDCG@20 of the
rank score (click logit + ``purchase_blend`` x purchase logit) is measured; training stops
after ``patience`` epochs without improvement and the best epoch's weights are kept.

The linear skip on the click head lets the network start from (and fall back to) a linear
re-weighting of the features, the blend score among them; the trunk learns the interactions
(e.g. trust the text similarity more for users with one event, CF more for warm users).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from coldbrew.config import RankerConfig
from coldbrew.errors import NotFittedError
from coldbrew.ranking.base import (
    RankingData,
    check_ranking_inputs,
    grouped_ndcg,
    pad_groups,
    progress_bar,
)

__all__ = ["MultiTaskRanker"]

_SCORE_BLOCK = 8192  # rows per block when scoring (see MultiTaskRanker.score)
_PARAMS = ("w1", "b1", "w2", "b2", "w_click", "b_click", "w_skip", "w_purchase", "b_purchase",
           "w_category", "b_category")


def _flat(a: np.ndarray) -> np.ndarray:
    """(B, C, F) -> (B * C, F): gradient sums over pairs as one BLAS matrix product."""
    return a.reshape(-1, a.shape[-1])


def _log_softmax(x: np.ndarray, mask: np.ndarray, axis: int) -> np.ndarray:
    x = np.where(mask, x, -np.inf)
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    shifted = x - top
    return shifted - np.log(np.sum(np.where(mask, np.exp(shifted), 0.0), axis=axis, keepdims=True))


class MultiTaskRanker:
    """Shared MLP trunk with click, purchase and category heads (numpy, CPU).

    Parameters
    ----------
    config: the ``[ranker]`` section (epochs, hidden, learning rate, head weights, ...).
    n_categories: classes of the category head (0 or 1: the head is skipped).
    progress: show a tqdm bar over epochs (``None``: only on a terminal).
    """

    def __init__(self, config: RankerConfig | None = None, n_categories: int = 0, progress: bool | None = None) -> None:
        self.config = config or RankerConfig(kind="multitask")
        self.n_categories = int(n_categories)
        self.progress = progress

    # ------------------------------------------------------------------ model
    def _init(self, n_features: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        h1 = self.config.hidden
        h2 = max(h1 // 2, 1)
        k = max(self.n_categories, 1)

        def glorot(a: int, b: int) -> np.ndarray:
            return rng.normal(0.0, np.sqrt(2.0 / (a + b)), size=(a, b))

        return {
            "w1": glorot(n_features, h1), "b1": np.zeros(h1),
            "w2": glorot(h1, h2), "b2": np.zeros(h2),
            "w_click": glorot(h2, 1)[:, 0] * 0.1, "b_click": np.zeros(1),
            "w_skip": np.zeros(n_features),
            "w_purchase": glorot(h2, 1)[:, 0] * 0.1, "b_purchase": np.zeros(1),
            "w_category": glorot(h2, k) * 0.1, "b_category": np.zeros(k),
        }

    @staticmethod
    def _forward(p: dict[str, np.ndarray], x: np.ndarray, category: bool = True) -> dict[str, np.ndarray]:
        """Hidden layers and head outputs; ``category=False`` skips the category head (scoring)."""
        a1 = x @ p["w1"] + p["b1"]
        h1 = np.maximum(a1, 0.0)
        a2 = h1 @ p["w2"] + p["b2"]
        h2 = np.maximum(a2, 0.0)
        out = {
            "h1": h1, "h2": h2,
            "click": h2 @ p["w_click"] + p["b_click"][0] + x @ p["w_skip"],
            "purchase": h2 @ p["w_purchase"] + p["b_purchase"][0],
        }
        if category:
            out["category"] = h2 @ p["w_category"] + p["b_category"]
        return out

    def _loss_and_grads(self, p: dict[str, np.ndarray], x: np.ndarray, mask: np.ndarray,
                        y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """x (B, C, F), mask (B, C), y (B, C, 3) -> total loss and gradients."""
        cfg = self.config
        out = self._forward(p, x)
        h1, h2 = out["h1"], out["h2"]
        grads = {name: np.zeros_like(value) for name, value in p.items()}
        d_h2 = np.zeros_like(h2)
        loss = 0.0

        # Click: listwise softmax cross-entropy against the request's clicked candidates.
        clicks = np.where(mask, y[..., 0], 0).astype(x.dtype)
        n_pos = clicks.sum(axis=1, keepdims=True)
        has = n_pos[:, 0] > 0
        d_click = np.zeros_like(out["click"])
        if has.any():
            target = np.divide(clicks, n_pos, out=np.zeros_like(clicks), where=n_pos > 0)
            log_p = _log_softmax(out["click"], mask, axis=1)
            # Padding slots have log_p = -inf: zero them before the product (0 * -inf is NaN).
            loss += cfg.click_weight * float(-np.sum(target * np.where(mask, log_p, 0.0)) / has.sum())
            prob = np.where(mask, np.exp(log_p), 0.0)
            d_click = np.where(has[:, None] & mask, prob - target, 0.0) * (cfg.click_weight / has.sum())
        grads["w_click"] = _flat(h2).T @ d_click.reshape(-1)
        grads["b_click"] = np.array([d_click.sum()])
        grads["w_skip"] = _flat(x).T @ d_click.reshape(-1)
        d_h2 += d_click[..., None] * p["w_click"]

        # Purchase: binary cross-entropy on every candidate.
        n_pairs = max(int(mask.sum()), 1)
        if cfg.purchase_weight > 0:
            logit = out["purchase"]
            label = y[..., 1].astype(x.dtype)
            bce = np.logaddexp(0.0, logit) - label * logit
            loss += cfg.purchase_weight * float(np.sum(np.where(mask, bce, 0.0)) / n_pairs)
            with np.errstate(over="ignore"):  # exp(-logit) = inf for very negative logits: sigmoid 0
                d_p = np.where(mask, 1.0 / (1.0 + np.exp(-logit)) - label, 0.0) * (cfg.purchase_weight / n_pairs)
            grads["w_purchase"] = _flat(h2).T @ d_p.reshape(-1)
            grads["b_purchase"] = np.array([d_p.sum()])
            d_h2 += d_p[..., None] * p["w_purchase"]

        # Category: softmax over the top categories, for candidates that have one.
        if cfg.category_weight > 0 and self.n_categories > 1:
            cls = y[..., 2]
            known = mask & (cls >= 0)
            n_known = int(known.sum())
            if n_known:
                logits = out["category"]
                log_p = _log_softmax(logits, np.ones(logits.shape, bool), axis=2)
                picked = np.take_along_axis(log_p, np.maximum(cls, 0)[..., None], axis=2)[..., 0]
                loss += cfg.category_weight * float(-np.sum(np.where(known, picked, 0.0)) / n_known)
                d_k = np.exp(log_p)
                np.put_along_axis(d_k, np.maximum(cls, 0)[..., None],
                                  np.take_along_axis(d_k, np.maximum(cls, 0)[..., None], axis=2) - 1.0, axis=2)
                d_k = np.where(known[..., None], d_k, 0.0) * (cfg.category_weight / n_known)
                grads["w_category"] = _flat(h2).T @ _flat(d_k)
                grads["b_category"] = d_k.sum(axis=(0, 1))
                d_h2 += d_k @ p["w_category"].T

        d_a2 = d_h2 * (h2 > 0)
        grads["w2"] = _flat(h1).T @ _flat(d_a2)
        grads["b2"] = d_a2.sum(axis=(0, 1))
        d_a1 = (d_a2 @ p["w2"].T) * (h1 > 0)
        grads["w1"] = _flat(x).T @ _flat(d_a1)
        grads["b1"] = d_a1.sum(axis=(0, 1))
        for name in ("w1", "w2", "w_category"):
            grads[name] += cfg.weight_decay * p[name]
        return loss, grads

    # ------------------------------------------------------------------ Ranker
    def fit(self, features: np.ndarray, labels: np.ndarray, groups: np.ndarray,
            validation: RankingData | None = None) -> Self:
        """Train on grouped pairs (see :mod:`coldbrew.ranking.base`); returns ``self``.

        With ``validation``: early stopping on its NDCG@20, the best epoch's weights are kept.
        Without: exactly ``config.epochs`` epochs, the last one's weights are kept (how a
        ranker is refitted for the epochs an earlier, validated fit chose). ``rounds_`` is
        the number of epochs behind the kept weights. Per-epoch ``loss`` (mean training loss)
        and ``val_ndcg`` (NDCG@20 on ``validation``; when none is given, on the training groups
        after the last epoch only, NaN before it) are kept in ``curves_``.
        """
        features = np.asarray(features, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        groups = np.asarray(groups, dtype=np.int64)
        check_ranking_inputs(features, labels, groups)
        if len(groups) == 0:
            raise ValueError("groups: no training groups (no hold-out request had a candidate)")
        cfg = self.config
        rng = np.random.default_rng(cfg.random_state)
        self.mean_ = features.mean(axis=0).astype(np.float64)
        std = features.std(axis=0).astype(np.float64)
        self.scale_ = np.where(std > 1e-6, std, 1.0)
        # Trained in float32 (twice the speed of float64 on BLAS); see score().
        x, mask = pad_groups(((features - self.mean_) / self.scale_).astype(np.float32), groups)
        y, _ = pad_groups(labels, groups, fill=0)
        y[..., 2] = np.where(mask, y[..., 2], -1)
        val = validation if validation is not None else RankingData(features, labels, groups)

        params = {n: v.astype(np.float32) for n, v in self._init(features.shape[1], rng).items()}
        moments = {n: (np.zeros_like(v), np.zeros_like(v)) for n, v in params.items()}
        beta1, beta2, eps, step = 0.9, 0.999, 1e-8, 0
        self.params_ = params
        best, best_params, waited = -np.inf, {n: v.copy() for n, v in params.items()}, 0
        self.curves_: dict[str, list[float]] = {"epoch": [], "loss": [], "val_ndcg": []}
        update = progress_bar(cfg.epochs, "training ranker", self.progress)
        for epoch in range(1, cfg.epochs + 1):
            order = rng.permutation(len(groups))
            total, batches = 0.0, 0
            for start in range(0, len(order), cfg.batch_groups):
                idx = order[start : start + cfg.batch_groups]
                loss, grads = self._loss_and_grads(params, x[idx], mask[idx], y[idx])
                step += 1
                for name, g in grads.items():
                    m, v = moments[name]
                    m *= beta1
                    m += (1 - beta1) * g
                    v *= beta2
                    v += (1 - beta2) * g * g
                    m_hat = m / (1 - beta1**step)
                    v_hat = v / (1 - beta2**step)
                    params[name] -= cfg.learning_rate * m_hat / (np.sqrt(v_hat) + eps)
                total += loss
                batches += 1
            # Without validation (a refit for a fixed number of epochs) nothing depends on the
            # per-epoch score: only the last epoch's is measured, for the curve.
            score = (grouped_ndcg(self.score(val.features), val.labels[:, 0], val.groups)
                     if validation is not None or epoch == cfg.epochs else float("nan"))
            self.curves_["epoch"].append(float(epoch))
            self.curves_["loss"].append(total / max(batches, 1))
            self.curves_["val_ndcg"].append(score)
            update(1)
            if validation is None:  # no early stopping: the last epoch is kept
                best, best_params, self.rounds_ = score, params, epoch
            elif score > best + 1e-6:
                best, best_params, waited = score, {n: v.copy() for n, v in params.items()}, 0
                self.rounds_ = epoch
            else:
                waited += 1
                if waited > cfg.patience:
                    update(cfg.epochs - epoch)
                    break
        self.params_ = best_params
        self.best_val_ndcg_ = float(best)
        return self

    def _check(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError("the multi-task ranker is not fitted: call fit() first")

    def _inputs(self, features: np.ndarray, dtype=np.float64) -> np.ndarray:
        self._check()
        x = np.asarray(features, dtype=dtype)
        if x.ndim != 2 or x.shape[1] != len(self.mean_):
            raise ValueError(f"features: expected shape (n_pairs, {len(self.mean_)}), got {x.shape}")
        return (x - self.mean_.astype(dtype)) / self.scale_.astype(dtype)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Rank scores float32 (n_pairs,): click logit + ``purchase_blend`` x purchase logit.

        Computed in float32 (the precision the network was trained in; twice the speed of
        float64 at serving time), from float32 copies of the weights, so a fitted and a
        saved-and-loaded ranker score alike.
        """
        self._check()
        features = np.asarray(features)
        params = {n: v.astype(np.float32) for n, v in self.params_.items()}  # small: copied per call
        score = np.empty(len(features), dtype=np.float32)
        # In blocks of rows: a block's inputs and hidden layers stay in the CPU cache (3x
        # faster than one pass over a chunk's 150k pairs; each row's arithmetic is the same).
        for start in range(0, max(len(features), 1), _SCORE_BLOCK):
            x = self._inputs(features[start : start + _SCORE_BLOCK], np.float32)
            out = self._forward(params, x, category=False)
            block = out["click"]
            if self.config.purchase_blend:
                block = block + self.config.purchase_blend * out["purchase"]
            score[start : start + _SCORE_BLOCK] = block
        return score

    def heads(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """All head outputs: click and purchase logits (n_pairs,), category probabilities (n_pairs, K)."""
        x = self._inputs(features)
        out = self._forward(self.params_, x)
        logits = out["category"]
        prob = np.exp(logits - logits.max(axis=1, keepdims=True))
        return {"click": out["click"].astype(np.float32), "purchase": out["purchase"].astype(np.float32),
                "category": (prob / prob.sum(axis=1, keepdims=True)).astype(np.float32)}

    # ------------------------------------------------------------------ persistence
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        """(metadata, arrays, texts) to persist; see :meth:`from_state`."""
        self._check()
        arrays = {f"mt_{n}": self.params_[n].astype(np.float64) for n in _PARAMS}
        arrays.update(mt_mean=self.mean_, mt_scale=self.scale_)
        return {"n_categories": self.n_categories, "best_val_ndcg": self.best_val_ndcg_}, arrays, {}

    @classmethod
    def from_state(cls, config: RankerConfig, meta: dict[str, Any], arrays: dict[str, np.ndarray],
                   texts: dict[str, str]) -> MultiTaskRanker:
        """Rebuild a fitted ranker from :meth:`state`'s output."""
        ranker = cls(config, n_categories=int(meta.get("n_categories", 0)))
        try:
            ranker.params_ = {n: np.asarray(arrays[f"mt_{n}"], dtype=np.float64) for n in _PARAMS}
            ranker.mean_ = np.asarray(arrays["mt_mean"], dtype=np.float64)
            ranker.scale_ = np.asarray(arrays["mt_scale"], dtype=np.float64)
        except KeyError as exc:
            raise ValueError(f"multi-task ranker state: array {exc} is missing") from None
        ranker.best_val_ndcg_ = float(meta.get("best_val_ndcg", float("nan")))
        return ranker
