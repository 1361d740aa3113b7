"""Retrieval at catalog scale: index build, memory, recall, single-request latency, add-items, load.

    .venv/bin/python benchmarks/run_retrieval_scale.py --sizes 10000 100000 1000000 \\
        [--out benchmarks/results/retrieval_scale.json]

For each size a synthetic shop is made with ``benchmarks/synthetic_shop.py`` (seeded: 400
categories, Zipf popularity, users with 1-3 favourite categories; ``--events-per-item``
events per product, 20 events per user on average) and a ``Recommender`` is fitted on it
with a light configuration, so that 1M products fit on a 2-core machine: the ``hashing``
text encoder (512-d, lexical: titles that share words and categories get close vectors, so
the text vectors are clustered by category, not uniform noise), ALS (64 factors), no
tuning, no LightGCN, no learned ranker, a linear bridge with a fixed ridge (no k-NN part:
its brute-force text neighbours cost n_cold x n_warm at fit, >4 min at 100k) and no lexical
bridge features. The retrieval settings are the defaults (``dense_limit`` 50,000, ``index`` auto:
exact below 50,000 vectors, faiss IVF from there on), so 10k is served by the dense path.

Measured per size (medians and p99 over single requests on this machine's cores):

* fit seconds, index build seconds and bytes (faiss file) per index, and per 1M products;
* recall@20 of each index against ``ExactIndex`` on 200 requests' own queries (user CF
  factors and text profiles, history excluded): ``strict`` (the index's top 20 against the
  exact top 20) and ``in pool`` (exact top 20 found among the ``per_source`` = 200
  candidates the retrieval path takes from that index);
* ``Recommender.recommend([request], 10)`` latency over ``--requests`` requests: warm users
  (5 to 10 events of a user of the shop), new users with text only, users with one viewed item;
* ``add_items`` of 1,000 new products: seconds, and that the indexes were appended to (the
  same faiss objects, 1,000 vectors more) rather than rebuilt; the next request's latency;
* ``save_model`` / ``load_model`` seconds (indexes read from files, not rebuilt) and the
  first request after loading.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_shop import make_catalog, make_events  # noqa: E402

from coldbrew.config import (  # noqa: E402
    ALSConfig,
    BlendConfig,
    BridgeConfig,
    EncoderConfig,
    FitConfig,
    GraphConfig,
    RankerConfig,
    default_threads,
)
from coldbrew.data import catalog_from_frame, events_from_frame  # noqa: E402
from coldbrew.pipeline import Recommender  # noqa: E402
from coldbrew.requests import HistoryEvent, Request  # noqa: E402
from coldbrew.retrieval import ExactIndex, FaissIndex  # noqa: E402
from coldbrew.retrieval.ranked import index_of  # noqa: E402
from coldbrew.storage import load_model, save_model  # noqa: E402

_WORDS = "leather bag ceramic mug wooden chair silk scarf steel kettle cotton towel glass vase wool blanket".split()


def light_config() -> FitConfig:
    """The fit configuration of this benchmark (see the module docstring)."""
    return FitConfig(
        encoder=EncoderConfig(name="hashing"),
        als=ALSConfig(factors=64, iterations=10),
        bridge=BridgeConfig(ridge=10.0, lexical_dim=0, knn_share=0.0),
        blend=BlendConfig(tune=False),
        graph=GraphConfig(enabled=False),
        ranker=RankerConfig(kind="none"),
    )


def _requests(events, n: int, rng: np.random.Generator) -> list[Request]:
    """A third each: warm users (their last 5-10 events), text-only new users, one viewed item."""
    users = events.user_ids
    order = np.argsort(users, kind="stable")
    bounds = np.flatnonzero(np.r_[True, users[order][1:] != users[order][:-1], True])
    active = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1) if bounds[i + 1] - bounds[i] >= 5]
    out = []
    for r in range(n):
        kind = r % 3
        if kind == 0:
            lo, hi = active[int(rng.integers(len(active)))]
            rows = order[lo:hi][-int(rng.integers(5, 11)):]
            history = tuple(HistoryEvent(str(events.item_ids[j]), int(events.timestamps[j]), str(events.events[j]))
                            for j in rows)
            out.append(Request(f"w{r}", str(users[order[lo]]), history))
        elif kind == 1:
            words = " ".join(rng.choice(_WORDS, size=2, replace=False))
            out.append(Request(f"t{r}", "", text=words))
        else:
            j = int(rng.integers(len(events)))
            out.append(Request(f"v{r}", "", (HistoryEvent(str(events.item_ids[j]), int(events.timestamps[j]), "view"),)))
    return out


def _latency(model: Recommender, requests: list[Request], k: int = 10) -> dict[str, float]:
    for req in requests[:5]:  # warm-up: caches, BLAS threads
        model.recommend([req], k)
    times = []
    for req in requests:
        started = time.perf_counter()
        model.recommend([req], k)
        times.append(time.perf_counter() - started)
    ms = np.asarray(times) * 1000
    return {"p50_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
            "requests": len(ms)}


def _index_bytes(index) -> int:
    inner = getattr(index, "inner", index)
    if isinstance(inner, FaissIndex):
        import faiss

        return int(len(faiss.serialize_index(inner.faiss_index)))
    return int(len(inner) * inner.dim * 4)  # ExactIndex: its float32 copy of the vectors


def _describe(index) -> str:
    inner = getattr(index, "inner", index)
    if isinstance(inner, FaissIndex) and inner.kind == "ivf":
        return f"IVF{inner.nlist},{'SQ8' if inner.codec == 'sq8' else 'Flat'} nprobe={inner.nprobe}"
    return type(inner).__name__ if not isinstance(inner, FaissIndex) else f"faiss {inner.kind}"


def _recall(model: Recommender, requests: list[Request], k: int = 20) -> dict[str, dict[str, float]]:
    """Recall@k of each index against exact search, on the requests' own queries."""
    batch = model.batch(requests, dense=False)
    user_factors, _, profile = model._profiles(batch)
    blocked = []
    for req in requests:
        ids = model.item_map_.lookup([h.item_id for h in req.history])
        blocked.append(np.unique(ids[ids >= 0]))
    m = model.config.retrieval.per_source
    out = {}
    for name, queries, vectors in (("cf", user_factors, model.item_factors_), ("content", profile, model.text_vectors_)):
        rows = np.flatnonzero(np.linalg.norm(queries, axis=1) > 0)  # a zero query has no top-k
        exact = ExactIndex(vectors.shape[1])
        exact.add(vectors)
        excl = [blocked[r] for r in rows]
        truth_scores, truth = exact.search(queries[rows], k, excl)
        _, found = index_of(model, name).search(queries[rows], m, excl)
        strict = np.mean([len(set(t) & set(f[:k])) / k for t, f in zip(truth, found)])
        pool = np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found)])
        # by score: a returned item counts when its exact score reaches the exact k-th score
        # (many bridged new items share a vector: ids in a tie are interchangeable)
        got = np.einsum("nd,nkd->nk", queries[rows].astype(np.float64), vectors[np.maximum(found[:, :k], 0)])
        kth = truth_scores[:, k - 1:k].astype(np.float64)
        by_score = np.mean(((got >= kth - 1e-5 * np.maximum(np.abs(kth), 1e-6)) & (found[:, :k] >= 0)).sum(axis=1) / k)
        n_tied = np.mean([len(np.unique(np.round(ts, 5))) for ts in truth_scores])
        out[name] = {"strict": float(strict), "in_pool": float(pool), "by_score": float(by_score),
                     "distinct_scores_in_exact_top": float(n_tied), "queries": int(len(rows))}
    return out


def run_size(n_items: int, events_per_item: float, n_requests: int, seed: int, workdir: Path) -> dict:
    result: dict = {"items": n_items}
    t0 = time.perf_counter()
    catalog_frame = make_catalog(n_items, seed)
    n_events = int(n_items * events_per_item)
    events_frame = make_events(catalog_frame, n_events, seed=seed)
    catalog, _ = catalog_from_frame(catalog_frame)
    events, _ = events_from_frame(events_frame)
    result["events"] = n_events
    result["shop_seconds"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model = Recommender(light_config()).fit(catalog, events, progress=False)
    result["fit_seconds"] = time.perf_counter() - t0
    result["warm_items"] = int(model.item_warm_.sum())
    retrieved = n_items > model.config.retrieval.dense_limit
    result["path"] = "retrieve-then-rank" if retrieved else "dense (every item scored)"

    indexes = {}
    for name in ("cf", "content"):
        t0 = time.perf_counter()
        index = index_of(model, name)
        seconds = time.perf_counter() - t0
        size = _index_bytes(index)
        indexes[name] = {"structure": _describe(index), "dim": int(index.dim), "build_seconds": seconds,
                         "bytes": size, "mb_per_1m": size / n_items * 1e6 / 1e6}
    result["indexes"] = indexes
    result["index_mb_per_1m_total"] = sum(v["mb_per_1m"] for v in indexes.values())

    rng = np.random.default_rng(seed)
    requests = _requests(events, n_requests, rng)
    recall = _recall(model, requests[:200])
    for name in indexes:
        indexes[name]["recall@20"] = recall[name]
    result["latency"] = _latency(model, requests)

    new_frame = make_catalog(1000, seed + 99)
    new_frame["item_id"] = "N" + new_frame["item_id"]
    new, _ = catalog_from_frame(new_frame)
    before = {name: getattr(model._indexes[name], "inner", model._indexes[name]) for name in ("cf", "content")}
    raw_before = {name: getattr(i, "faiss_index", i) for name, i in before.items()}
    t0 = time.perf_counter()
    added = model.add_items(new)
    add_seconds = time.perf_counter() - t0
    req = Request("after-add", "", text=str(new.titles[0]))
    t0 = time.perf_counter()
    rec = model.recommend([req], 10)[0]
    first_ms = (time.perf_counter() - t0) * 1000
    after = {name: getattr(model._indexes[name], "inner", model._indexes[name]) for name in ("cf", "content")}
    appended = all(after[name] is before[name] and getattr(after[name], "faiss_index", after[name]) is raw_before[name]
                   for name in after) if retrieved else None
    _, ids = index_of(model, "content").search(model.query_vectors([new.texts()[0]]), 20)
    result["add_items"] = {
        "added": added, "seconds": add_seconds, "first_request_ms": first_ms,
        "indexes_appended_not_rebuilt": appended,
        "index_sizes": {name: len(after[name]) for name in after},
        "new_item_found_by_text_index": bool(model.item_map_.index(str(new.item_ids[0])) in ids[0]),
        "new_item_recommended_for_its_title": str(new.item_ids[0]) in rec.items,
    }

    directory = workdir / f"model-{n_items}"
    t0 = time.perf_counter()
    save_model(model, directory)
    result["save_seconds"] = time.perf_counter() - t0
    result["model_dir_mb"] = sum(p.stat().st_size for p in directory.iterdir() if p.is_file()) / 1e6
    result["index_files_mb"] = {p.name: p.stat().st_size / 1e6 for p in directory.glob("index_*")}
    probe = requests[:20]
    expected = [r.items for r in model.recommend(probe, 10)]
    del model
    t0 = time.perf_counter()
    loaded = load_model(directory)
    result["load_seconds"] = time.perf_counter() - t0
    result["loaded_indexes"] = sorted(getattr(loaded, "_indexes", {}))
    t0 = time.perf_counter()
    got = [r.items for r in loaded.recommend(probe[:1], 10)]
    result["first_request_after_load_ms"] = (time.perf_counter() - t0) * 1000
    got += [r.items for r in loaded.recommend(probe[1:], 10)]
    result["loaded_same_recommendations"] = got == expected
    result["latency_after_load"] = _latency(loaded, requests)
    del loaded
    shutil.rmtree(directory, ignore_errors=True)
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return result


def _table(results: list[dict]) -> str:
    lines = [
        "| products | path | index (cf / content) | build s (cf / content) | index MB per 1M (cf + content) "
        "| recall@20 strict (cf / content) | by score (cf / content) | in 200-pool (cf / content) | p50 / p99 ms | add 1k s (appended) "
        "| save s | load s | 1st req after load ms | fit s |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ix = r["indexes"]
        rec = {name: ix[name]["recall@20"] for name in ix}
        lines.append(
            f"| {r['items']:,} | {r['path']} | {ix['cf']['structure']} / {ix['content']['structure']} "
            f"| {ix['cf']['build_seconds']:.1f} / {ix['content']['build_seconds']:.1f} "
            f"| {ix['cf']['mb_per_1m']:.0f} + {ix['content']['mb_per_1m']:.0f} = {r['index_mb_per_1m_total']:.0f} "
            f"| {rec['cf']['strict']:.3f} / {rec['content']['strict']:.3f} "
            f"| {rec['cf']['by_score']:.3f} / {rec['content']['by_score']:.3f} "
            f"| {rec['cf']['in_pool']:.3f} / {rec['content']['in_pool']:.3f} "
            f"| {r['latency']['p50_ms']:.1f} / {r['latency']['p99_ms']:.1f} "
            f"| {r['add_items']['seconds']:.2f} ({r['add_items']['indexes_appended_not_rebuilt']}) "
            f"| {r['save_seconds']:.1f} | {r['load_seconds']:.1f} | {r['first_request_after_load_ms']:.0f} "
            f"| {r['fit_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--events-per-item", type=float, default=2.0)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/retrieval_scale.json"))
    parser.add_argument("--workdir", type=Path, default=None, help="where model directories are written (default: a temp dir)")
    args = parser.parse_args(argv)
    machine = {"cores": default_threads(), "cpu": platform.processor() or platform.machine(),
               "python": platform.python_version()}
    print(f"machine: {machine['cores']} cores ({machine['cpu']}), python {machine['python']}", flush=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="coldbrew-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for n in args.sizes:
        started = time.perf_counter()
        results.append(run_size(n, args.events_per_item, args.requests, args.seed, workdir))
        results[-1]["total_seconds"] = time.perf_counter() - started
        print(json.dumps(results[-1], indent=1), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine, "config": light_config().to_dict(), "results": results},
                                       indent=1), encoding="utf-8")
    print(_table(results))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
