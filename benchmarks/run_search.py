"""Search quality and latency on UCI Online Retail: lexical, semantic, hybrid, hybrid+personalised.

    python benchmarks/run_search.py                       # 2,000 queries, the table in RESULTS.md
    python benchmarks/run_search.py --max-queries 300     # quicker

Protocol. ``temporal_split(events, 0.8)``: the model (``Recommender()`` defaults, including
its fit-time tuning on the training events) is fitted on the earlier 80 % with the catalog of
the products seen there, then told about the other products with ``add_items``. Queries come
from invoices after the cutoff with at least two distinct purchased products known to the
model (even invoice numbers; ``--grid`` tunes on the odd ones): one line of the invoice is drawn at random (seeded), and the query is that product's
title with one of its words dropped at random when the title has three or more words (a
shopper rarely types a full catalog title, and an exact title would make BM25 trivially find
the product itself). Relevant = the invoice's *other* products. The query's own product is
removed from every result list (it is the trivial answer and not relevant), then NDCG@10 is
computed with ``coldbrew.evaluation.metrics``. For hybrid+personalised, the user's history is
every event of that user before the invoice's timestamp (the last 200); invoices of users
with no earlier event are searched anonymously (as in plain hybrid), and the table also
reports the subset of queries whose user has history.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from coldbrew.data import load_catalog, load_events
from coldbrew.errors import ModelFormatError
from coldbrew.evaluation.metrics import hit_rate_at_k, ndcg_at_k, per_user_ndcg_at_k
from coldbrew.evaluation.protocol import fit_catalog
from coldbrew.evaluation.splits import temporal_split
from coldbrew.pipeline import Recommender
from coldbrew.requests import HistoryEvent
from coldbrew.search import SearchConfig, SearchIndex
from coldbrew.storage import load_model, save_model

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci_online_retail"
ROWS = (
    ("lexical (BM25)", "lexical", False),
    ("semantic (text vectors)", "semantic", False),
    ("hybrid (RRF)", "hybrid", False),
    ("hybrid + personalised", "hybrid", True),
)


def make_queries(raw: pd.DataFrame, model: Recommender, cutoff: int, n: int, seed: int, half: str) -> pd.DataFrame:
    """One query per sampled test invoice: (user, timestamp, source item, query text, relevant).

    ``half``: ``"test"`` draws from even invoice numbers, ``"validation"`` from odd ones, so
    search settings chosen on one are measured on invoices they never saw.
    """
    rng = np.random.default_rng(seed)
    test = raw[(raw.timestamp >= cutoff) & (raw.event_type == "purchase")]
    parity = pd.to_numeric(test.invoice_id.str.extract(r"(\d+)$")[0], errors="coerce") % 2
    test = test[parity == (0 if half == "test" else 1)]
    test = test[test.item_id.isin(set(model.item_map_.ids()))]
    baskets = test.groupby("invoice_id").agg(
        user_id=("user_id", "first"), timestamp=("timestamp", "min"), items=("item_id", lambda s: sorted(set(s)))
    )
    baskets = baskets[baskets["items"].map(len) >= 2]
    baskets = baskets.iloc[rng.permutation(len(baskets))[:n]]
    titles = dict(zip(model.catalog_.item_ids, model.catalog_.titles))
    rows = []
    for invoice, b in baskets.iterrows():
        titled = [i for i in b["items"] if str(titles[i]).strip()]
        if not titled:
            continue
        source = titled[int(rng.integers(len(titled)))]
        words = str(titles[source]).split()
        if len(words) >= 3:
            words.pop(int(rng.integers(len(words))))
        rows.append((invoice, str(b.user_id), int(b.timestamp), source, " ".join(words),
                     set(b["items"]) - {source}))
    return pd.DataFrame(rows, columns=["invoice", "user_id", "timestamp", "source", "query", "relevant"])


def histories(events, queries: pd.DataFrame, limit: int = 200) -> list[tuple[HistoryEvent, ...]]:
    """Each query's user history: that user's events strictly before the invoice (the last ``limit``)."""
    order = np.lexsort((events.timestamps, events.user_ids.astype(str)))
    users = events.user_ids.astype(str)[order]
    starts = {}
    for i, u in enumerate(users):
        starts.setdefault(u, i)
    out = []
    for user, ts in zip(queries.user_id, queries.timestamp):
        if user not in starts:
            out.append(())
            continue
        lo = starts[user]
        hi = lo + int(np.searchsorted(users[lo:], user, side="right"))
        times = events.timestamps[order[lo:hi]]
        stop = lo + int(np.searchsorted(times, ts, side="left"))
        picked = order[max(lo, stop - limit):stop]
        out.append(tuple(
            HistoryEvent(str(events.item_ids[j]), int(events.timestamps[j]), str(events.events[j]),
                         None if np.isnan(events.values[j]) else float(events.values[j]))
            for j in picked
        ))
    return out


def ranked(index: SearchIndex, queries: pd.DataFrame, mode: str, hist, k: int, batch: int = 256) -> list[list[str]]:
    """Top-k item ids per query with the query's own product removed."""
    out: list[list[str]] = []
    texts = queries["query"].tolist()
    for start in range(0, len(texts), batch):
        part = slice(start, start + batch)
        results = index.search(texts[part], k + 1, mode, hist[part] if hist is not None else None)
        for hits, source in zip(results, queries.source.iloc[part]):
            out.append([h.item_id for h in hits if h.item_id != source][:k])
    return out


def latency(setups: dict[str, tuple], queries: pd.DataFrame, hist, k: int, n: int) -> dict[str, dict[str, float]]:
    """Milliseconds per single-query call (median, p95) of each setup over ``n`` queries.

    ``setups``: name -> (index, mode, personalised). The setups take turns query by query, so
    the load of a shared machine falls on all of them alike.
    """
    times: dict[str, list[float]] = {name: [] for name in setups}
    for q in range(min(n, len(queries))):
        for name, (index, mode, personal) in setups.items():
            started = time.perf_counter()
            index.search([queries["query"].iloc[q]], k, mode, [hist[q]] if personal else None)
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: {"median_ms": float(np.median(t)), "p95_ms": float(np.percentile(t, 95))} for name, t in times.items()}


def grid(model, queries, hist, relevant, has_history, k: int) -> None:
    """NDCG@k of hybrid (+ personalised) search for each point of a small configuration grid."""
    print(f"| rrf_k | semantic_weight | personal_weight | hybrid NDCG@{k} | hybrid + personalised NDCG@{k} (with history) |")
    print("|---|---|---|---|---|")
    for rrf_k in (10.0, 60.0):
        for semantic in (0.5, 1.0):
            plain = None
            for personal in (0.5, 1.0, 2.0):
                index = SearchIndex.build(model, SearchConfig(rrf_k=rrf_k, semantic_weight=semantic, personal_weight=personal))
                if plain is None:
                    plain = ndcg_at_k(ranked(index, queries, "hybrid", None, k), relevant, k)
                per_query = per_user_ndcg_at_k(ranked(index, queries, "hybrid", hist, k), relevant, k)
                print(f"| {rrf_k:g} | {semantic:g} | {personal:g} | {plain:.4f} | {np.nanmean(per_query):.4f}"
                      f" ({np.nanmean(per_query[has_history]):.4f}) |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--max-queries", type=int, default=2000)
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--personal-weights", type=float, nargs="*", default=[],
                        help="extra rows: hybrid+personalised with these personal_weight values")
    parser.add_argument("--grid", action="store_true",
                        help="instead of the table: hybrid and hybrid+personalised over a small grid of"
                        " rrf_k, semantic_weight and personal_weight, on the validation invoices (odd numbers)")
    parser.add_argument("--model-cache", type=Path, default=None,
                        help="save the fitted model here, or load it when present (same split, same defaults)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "search_uci.json")
    args = parser.parse_args()

    catalog, _ = load_catalog(args.data / "items.csv.gz")
    events, _ = load_events(args.data / "interactions.csv.gz")
    raw = pd.read_csv(args.data / "interactions.csv.gz", usecols=["user_id", "item_id", "event_type", "invoice_id", "timestamp"],
                      dtype={"user_id": str, "item_id": str, "invoice_id": str})
    split = temporal_split(events, 0.8)
    started = time.perf_counter()
    model = None
    if args.model_cache is not None and (args.model_cache / "manifest.json").is_file():
        try:
            model = load_model(args.model_cache)
            print(f"loaded the fitted model from {args.model_cache}", flush=True)
        except ModelFormatError as exc:  # written by another code version: fit again
            print(f"refitting: {exc}", flush=True)
    if model is None:
        seen, rest = fit_catalog(split, catalog)
        model = Recommender().fit(seen, split.train)
        model.add_items(rest)
        if args.model_cache is not None:
            save_model(model, args.model_cache)
    model_s = time.perf_counter() - started
    started = time.perf_counter()
    index = SearchIndex.build(model)
    build_s = time.perf_counter() - started
    cutoff = int(split.cutoff)
    queries = make_queries(raw, model, cutoff, args.max_queries, args.seed, "validation" if args.grid else "test")
    hist = histories(events, queries)
    has_history = np.array([any(e.item_id in model.item_map_ for e in h) for h in hist])
    relevant = queries.relevant.tolist()
    print(f"model ready (fit + add-items, or loaded) in {model_s:.1f} s, index built in {build_s:.2f} s; {len(queries)} queries,"
          f" {has_history.sum()} with user history", flush=True)

    if args.grid:
        grid(model, queries, hist, relevant, has_history, args.k)
        return
    rows = [(name, mode, personal, None) for name, mode, personal in ROWS]
    rows += [(f"hybrid + personalised (personal_weight {w:g})", "hybrid", True, w) for w in args.personal_weights]
    results = {}
    per_query_ndcg = {}
    setups = {}
    for name, mode, personal, weight in rows:
        idx = index if weight is None else SearchIndex.build(model, SearchConfig(personal_weight=weight))
        h = hist if personal else None
        started = time.perf_counter()
        lists = ranked(idx, queries, mode, h, args.k)
        batch_s = time.perf_counter() - started
        per_query = per_user_ndcg_at_k(lists, relevant, args.k)
        per_query_ndcg[name] = per_query
        results[name] = {
            f"ndcg@{args.k}": ndcg_at_k(lists, relevant, args.k),
            f"ndcg@{args.k}_with_history": float(np.nanmean(per_query[has_history])),
            f"hit_rate@{args.k}": hit_rate_at_k(lists, relevant, args.k),
            "batch_queries_per_s": len(queries) / batch_s,
        }
        setups[name] = (idx, mode, personal)
        r = results[name]
        print(f"{name:<48} ndcg@{args.k} {r[f'ndcg@{args.k}']:.4f}  with history {r[f'ndcg@{args.k}_with_history']:.4f}"
              f"  hit@{args.k} {r[f'hit_rate@{args.k}']:.3f}  batch {r['batch_queries_per_s']:.0f} q/s", flush=True)
    for name, timing in latency(setups, queries, hist, args.k, args.latency_queries).items():
        results[name].update(timing)

    # paired bootstrap over queries: the NDCG difference of each mode to hybrid
    rng = np.random.default_rng(args.seed)
    base = per_query_ndcg["hybrid (RRF)"]
    samples = rng.integers(0, len(base), size=(1000, len(base)))
    for name, per_query in per_query_ndcg.items():
        diff = np.nan_to_num(per_query - base)[samples].mean(axis=1)
        results[name]["vs_hybrid_ci95"] = [float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))]

    print()
    print(f"| mode | NDCG@{args.k} (all {len(queries)} queries) | NDCG@{args.k} ({int(has_history.sum())} with user history) |"
          f" HitRate@{args.k} | − hybrid, 95% CI | batch queries/s | one query: median / p95 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        lo, hi = r["vs_hybrid_ci95"]
        print(f"| {name} | {r[f'ndcg@{args.k}']:.4f} | {r[f'ndcg@{args.k}_with_history']:.4f} | {r[f'hit_rate@{args.k}']:.3f} |"
              f" {lo:+.4f} … {hi:+.4f} |"
              f" {r['batch_queries_per_s']:.0f} | {r['median_ms']:.1f} / {r['p95_ms']:.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "k": args.k, "queries": len(queries), "with_history": int(has_history.sum()), "seed": args.seed,
        "model_ready_s": model_s, "index_build_s": build_s, "items": len(model.item_map_), "results": results,
        "examples": queries.head(10).assign(relevant=queries.relevant.head(10).map(sorted)).to_dict("records"),
    }, indent=2, ensure_ascii=False, default=str))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
