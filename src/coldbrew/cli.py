"""The ``coldbrew`` command: thin commands over the library.

User errors (bad files, unknown IDs, bad options) end with exit code 2 and one line on
stderr starting with ``coldbrew: error:``; never a traceback.

Size (about 570 lines): one short function per command (13 commands) beside the one
parser they share (``--config``, ``--engine``, the error handling); each command only
calls the library.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from coldbrew.errors import ColdbrewError, ConfigError

__all__ = ["main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1 or value > 10_000:
        raise argparse.ArgumentTypeError(f"expected an integer between 1 and 10000, got {value}")
    return value


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cmd_fit(args: argparse.Namespace) -> int:
    from coldbrew.config import load_config
    from coldbrew.data import load_catalog, load_events
    from coldbrew.engine import encode_for_fit
    from coldbrew.pipeline import Recommender
    from coldbrew.storage import reuse_embedding_cache, save_model

    config = load_config(args.config)
    _check_engine_options(args)
    started = time.perf_counter()
    catalog, report = load_catalog(args.catalog, config.columns, config.data.on_bad_rows)
    _say(report.summary())
    events, report = load_events(args.events, config.columns, config.data.on_bad_rows)
    _say(report.summary())
    model = Recommender(config)
    if reuse_embedding_cache(model, args.out):  # refitting: only changed texts are encoded
        _say(f"reusing the embedding cache of {args.out}")
    with _engine(args) as engine:  # batch encoding on the engine; training below, in this process
        encoded = encode_for_fit(engine, model, catalog)
        if encoded is not None:
            _say(_encoded_summary(encoded, engine))
    if encoded is None:
        _say("the catalog is encoded in this process during fit ([lora] fine-tunes the encoder first)")
    model.fit(catalog, events)
    save_model(model, args.out)
    fr = model.fit_report_
    _say(
        f"fitted {len(model.item_map_):,} items ({fr['warm_items']:,} with interactions),"
        f" {fr['users']:,} users; {fr['unknown_item_events']:,} events on items missing from"
        f" the catalog were ignored; {fr['duplicate_events']:,} duplicate events counted once"
    )
    weighting = model.config.weighting
    decay = "no decay" if not weighting.half_life_days else f"a {weighting.half_life_days:g}-day half-life"
    _say(
        f"time scales: events weigh with {decay}, the trend with a"
        f" {weighting.trend_half_life_days:g}-day half-life"
        + (" (set from the pace of these events: the spans of their newest 50 % and 2.5 %)"
           if model.tuning_ else " (from [weighting])")
    )
    ridge = model.config.bridge.ridge
    _say(
        f"new-product bridge (text -> CF): ridge penalty {fr['bridge_ridge']:g}"
        + (" (chosen by leave-one-out on the products with interactions)" if ridge == "auto" else " (from [bridge])")
    )
    lora = fr.get("lora")
    if lora is not None:
        _say(
            f"LoRA: {lora['pairs']:,} (history -> next item) pairs, {lora['seconds']:.0f} s;"
            + (f" next-item NDCG@20 {lora['val_ndcg_base']:.4f} -> {lora['val_ndcg']:.4f}"
               f" (epoch {lora['best_epoch']} kept)" if lora["kept"] else
               f" no epoch beat the base encoder (next-item NDCG@20 {lora['val_ndcg_base']:.4f}): it is kept")
        )
    _say(f"model written to {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


def _cmd_add_items(args: argparse.Namespace) -> int:
    from coldbrew.data import load_catalog
    from coldbrew.storage import load_model, save_items

    started = time.perf_counter()
    model = load_model(args.model)
    catalog, report = load_catalog(args.catalog, model.config.columns, model.config.data.on_bad_rows)
    _say(report.summary())
    added = model.add_items(catalog)
    if added:
        save_items(model, args.model, model.manifest_)
    known = len(catalog) - added
    _say(
        f"added {added:,} new items to {args.model}"
        + (f" ({known:,} already in the model were left unchanged)" if known else "")
        + f" in {time.perf_counter() - started:.2f} s"
    )
    return 0


def _cmd_recommend(args: argparse.Namespace) -> int:
    from coldbrew.engine import recommend_batch
    from coldbrew.requests import read_requests, write_recommendations

    _check_engine_options(args)
    requests = list(read_requests(args.requests))  # validate everything before any work
    started = time.perf_counter()
    with _engine(args) as engine:  # each worker loads the model once
        recs = recommend_batch(engine, args.model, requests, args.k)
        where = _engine_words(engine)
    write_recommendations(args.out, recs)
    elapsed = time.perf_counter() - started
    rate = len(requests) / elapsed if elapsed > 0 else float("inf")
    _say(f"wrote {len(recs):,} recommendation lists to {args.out} ({rate:,.0f} requests/s {where},"
         " loading the model included)")
    return 0


def _cmd_encode(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from coldbrew.config import load_config
    from coldbrew.data import load_catalog
    from coldbrew.engine import encode_catalog
    from coldbrew.errors import ColdbrewError
    from coldbrew.storage.artifacts import EMBEDDING_CACHE_FILE  # the file `fit --out DIR` reuses
    from coldbrew.text import EmbeddingCache

    config = load_config(args.config)
    _check_engine_options(args)
    if args.vectors is not None and not args.vectors.endswith(".npz"):
        raise ConfigError(f"--vectors: expected a file name ending in .npz, got {args.vectors!r}")
    catalog, report = load_catalog(args.catalog, config.columns, config.data.on_bad_rows)
    _say(report.summary())
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is a file, expected a directory (a model directory or a new one)")
    cache = None
    if (out / EMBEDDING_CACHE_FILE).is_file():
        try:
            cache = EmbeddingCache.load(out / EMBEDDING_CACHE_FILE)
            _say(f"reusing the embedding cache of {out} ({len(cache):,} texts)")
        except (ColdbrewError, OSError, ValueError):
            _say(f"{out / EMBEDDING_CACHE_FILE} is damaged: encoding everything again")
    with _engine(args) as engine:
        result = encode_catalog(engine, catalog, config, cache=cache)
        _say(_encoded_summary(result, engine))
    out.mkdir(parents=True, exist_ok=True)
    result.cache.save(out / EMBEDDING_CACHE_FILE)
    _say(f"embedding cache ({len(result.cache):,} texts, {result.encoder_name}) written to {out / EMBEDDING_CACHE_FILE}:"
         f" `coldbrew fit --out {out}` re-encodes none of them")
    if config.lora.enabled:
        _say("note: with [lora] enabled, fit encodes again with the fine-tuned encoder when an epoch is kept")
    if args.vectors:
        np.savez(args.vectors, item_ids=np.asarray(catalog.item_ids, dtype=str), vectors=result.vectors,
                 encoder=np.array(result.encoder_name))
        _say(f"vectors {result.vectors.shape[0]:,} x {result.vectors.shape[1]} (float32, catalog order) and"
             f" item_ids written to {args.vectors}")
    return 0


def _check_engine_options(args: argparse.Namespace) -> None:
    """Refuse engine options that make no sense, before any file is read."""
    from coldbrew.engine import check_ray_address

    if args.engine != "ray" and args.ray_address is not None:
        raise ConfigError("--ray-address: only with --engine ray")
    check_ray_address(args.ray_address)


def _engine(args: argparse.Namespace):
    """The engine of ``--engine`` as a context manager (a Ray it started is shut down on exit)."""
    from contextlib import closing

    from coldbrew.engine import make_engine

    return closing(make_engine(args.engine, address=args.ray_address))


def _engine_words(engine) -> str:
    if engine.name == "local":
        return "in this process"
    return f"on Ray, {engine.workers} worker{'s' if engine.workers != 1 else ''}"


def _encoded_summary(result, engine) -> str:
    rate = f", {result.rate:,.0f} texts/s" if result.encoded else ""
    return (f"encoded {result.encoded:,} distinct product texts ({result.reused:,} from the cache)"
            f" {_engine_words(engine)} in {result.seconds:.1f} s{rate}")


def _cmd_similar(args: argparse.Namespace) -> int:
    from coldbrew.storage import load_model

    model = load_model(args.model)
    print(json.dumps(model.similar(args.item, args.k).to_dict(), ensure_ascii=False))
    return 0


def _cmd_onboard(args: argparse.Namespace) -> int:
    from coldbrew.storage import load_model

    model = load_model(args.model)
    print(json.dumps(model.onboard(args.text, args.k).to_dict(), ensure_ascii=False))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import shlex

    from coldbrew.config import load_config
    from coldbrew.data import load_catalog, load_events
    from coldbrew.evaluation.reporting import ReportConfig, parse_reveal, run_report

    if args.training_curves:
        return _plot_saved_curves(args.training_curves, args.out)
    if not args.catalog or not args.events:
        raise ConfigError("evaluate needs --catalog and --events (or --training-curves MODEL_DIR)")
    fit = load_config(args.config)
    config = ReportConfig(
        split=args.split, quantile=args.quantile, cold_share=args.cold_share, reveal=parse_reveal(args.reveal), baselines=tuple(args.baselines),
        k=args.k, max_users=args.max_users, seed=args.seed, fit=fit,
    )
    catalog, report = load_catalog(args.catalog, fit.columns, fit.data.on_bad_rows)
    _say(report.summary())
    events, report = load_events(args.events, fit.columns, fit.data.on_bad_rows)
    _say(report.summary())
    started = time.perf_counter()
    command = "coldbrew " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = run_report(catalog, events, args.out, config, command=command)
    _say(f"report written to {args.out}/report.md (+ report.json and the plots) in"
         f" {time.perf_counter() - started:.0f} s")
    k = result["k"]
    for model, values in result["results"].items():
        _say(f"  {model:<11} " + "  ".join(f"{s} {v[f'ndcg@{k}']:.4f}" for s, v in values.items()))
    return 0


def _plot_saved_curves(model_dir: str, out: str) -> int:
    from pathlib import Path

    from coldbrew.evaluation.reporting import plot_training_curves
    from coldbrew.storage import load_training_curves

    curves = load_training_curves(model_dir)
    Path(out).mkdir(parents=True, exist_ok=True)
    target = Path(out) / "training_curves.png"
    if not plot_training_curves(curves, target):
        raise ConfigError(f"{model_dir}: the model has no training curves (no trained component is enabled)")
    _say(f"training curves of {', '.join(curves)} written to {target}")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from coldbrew.requests import HistoryEvent
    from coldbrew.search import SearchIndex
    from coldbrew.storage import load_model

    model = load_model(args.model)
    history = tuple(HistoryEvent(i, model.now_, "purchase") for i in args.user_history or ())
    index = SearchIndex.build(model)
    results = index.search(args.query, args.k, args.mode, [history] * len(args.query) if history else None)
    for query, hits in zip(args.query, results):
        print(json.dumps({"query": query, "mode": args.mode, "items": index.describe(hits)}, ensure_ascii=False))
    return 0


def _cmd_analytics(args: argparse.Namespace) -> int:
    from coldbrew.analytics.churn import ChurnConfig
    from coldbrew.analytics.report import AnalyticsConfig, write_report
    from coldbrew.config import load_config
    from coldbrew.data import load_events

    fit = load_config(args.config)
    events, report = load_events(args.events, fit.columns, fit.data.on_bad_rows)
    _say(report.summary())
    config = AnalyticsConfig(cohort=args.cohort, conversion_days=args.conversion_days,
                             churn=ChurnConfig(horizon_days=args.churn_days, model=args.churn_model))
    summary = write_report(events, args.out, config)
    churn = summary.get("churn", {})
    auc = f"churn AUC {churn['auc']:.3f} (recency alone {churn['recency_auc']:.3f})" if "auc" in churn else "churn not evaluated"
    rate = summary["repeat_purchase"]["rate"]
    _say(f"report written to {args.out}/report.md (+ analytics.json and PNG plots);"
         f" repeat-purchase rate {rate if rate is None else f'{100 * rate:.1f}%'}; {auc}")
    return 0


def _read_user(path: str, user_id: str):
    from pathlib import Path

    from coldbrew.errors import DataError
    from coldbrew.requests import request_from_dict

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: user history file does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}: line {exc.lineno}: malformed JSON ({exc.msg})") from None
    if isinstance(data, list):  # a bare list of history events
        data = {"history": data}
    if isinstance(data, dict):
        data = {"request_id": "promote", "user_id": user_id, **data}
    return request_from_dict(data, str(p))


def _cmd_promote(args: argparse.Namespace) -> int:
    from pathlib import Path

    from coldbrew.promotions import (
        CALIBRATION_FILE,
        ChatCompletionCopywriter,
        CTRCalibrator,
        InMemoryLedger,
        PromotionPlanner,
        load_promotions,
    )
    from coldbrew.storage import load_model

    model = load_model(args.model)
    promotions = load_promotions(args.promotions)
    request = _read_user(args.user_history, args.user_id)
    calibration = Path(args.calibration) if args.calibration else Path(args.model) / CALIBRATION_FILE
    calibrator = CTRCalibrator.load(calibration) if calibration.is_file() else None
    if calibrator is None:
        _say(f"no {calibration}: pCTR is an uncalibrated prior (run coldbrew calibrate-ctr)")
    ledger = InMemoryLedger.load(args.ledger) if args.ledger else InMemoryLedger()
    copywriter = ChatCompletionCopywriter(args.copy_url, args.copy_model) if args.copy_url else None
    planner = PromotionPlanner(model, promotions, calibrator, ledger, copywriter)
    placements = planner.select(request, args.slots, now=args.now, language=args.language)
    if args.ledger:
        ledger.save(args.ledger)
    print(json.dumps({"user_id": request.user_id, "placements": [p.to_dict() for p in placements],
                      "skipped": planner.skipped_}, ensure_ascii=False, indent=2))
    return 0


def _cmd_calibrate_ctr(args: argparse.Namespace) -> int:
    from pathlib import Path

    from coldbrew.data import load_catalog, load_events
    from coldbrew.promotions import CALIBRATION_FILE, calibrate_ctr
    from coldbrew.storage import load_model

    model = load_model(args.model)
    catalog, report = load_catalog(args.catalog, model.config.columns, model.config.data.on_bad_rows)
    _say(report.summary())
    events, report = load_events(args.events, model.config.columns, model.config.data.on_bad_rows)
    _say(report.summary())
    started = time.perf_counter()
    calibrator, info = calibrate_ctr(catalog, events, model.config, args.horizon_days, args.max_users)
    out = Path(args.model) / CALIBRATION_FILE
    calibrator.save(out)
    _say(f"pCTR calibration from {info['users']:,} users, {info['pairs']:,} pairs"
         f" ({info['positives']:,} interactions in the last {args.horizon_days} days) written to {out}"
         f" in {time.perf_counter() - started:.0f} s")
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    from coldbrew.assistant.cli import run_chat

    return run_chat(args.model, k=args.k, as_json=args.json, conversation_id=args.conversation,
                    phrase_url=args.phrase_url, phrase_model=args.phrase_model)


def _cmd_demo(args: argparse.Namespace) -> int:
    from coldbrew.demo import run_demo

    return run_demo(data_dir=args.data_dir, quick=args.quick)


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="where batch encoding / recommendation runs: this process (default) or Ray"
                   " (pip install 'coldbrew[ray]')")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="with --engine ray: 'auto', 'ray://HOST:PORT' or 'HOST:PORT' of a running cluster"
                   " (default: start a local Ray in this process, on every core)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coldbrew",
        description="Cold-start-first recommendations: text encoders + collaborative filtering.",
    )
    from coldbrew import __version__

    parser.add_argument("--version", action="version", version=f"coldbrew {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fit", help="fit a model on a catalog and an events file",
                       description="Fit a model. ITEMS and EVENTS are CSV (optionally .gz), Parquet or JSON Lines.")
    p.add_argument("--catalog", required=True, metavar="ITEMS", help="products: item_id, title, [description, category, brand, price, tags]")
    p.add_argument("--events", required=True, metavar="EVENTS", help="events: user_id, item_id, timestamp, [event, value]")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="directory to write the model to")
    p.add_argument("--config", metavar="FILE", help="TOML or JSON config (column mapping, hyper-parameters)")
    _add_engine_options(p)
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("encode", help="encode a catalog's product texts into an embedding cache (and a vectors file)",
                       description="Encode the text of every product with the configured encoder, as fit"
                       " would, into MODEL_DIR/embedding_cache.npz: a later `coldbrew fit --out MODEL_DIR`"
                       " re-encodes none of them. Texts already in that cache are not encoded again.")
    p.add_argument("--catalog", required=True, metavar="ITEMS", help="products (as for fit)")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="directory for embedding_cache.npz (created if needed)")
    p.add_argument("--vectors", metavar="FILE.npz", default=None,
                   help="also write item_ids and their vectors (float32, catalog order) to this .npz file")
    p.add_argument("--config", metavar="FILE", help="coldbrew config (column mapping, [encoder])")
    _add_engine_options(p)
    p.set_defaults(func=_cmd_encode)

    p = sub.add_parser("add-items", help="add new products (text only) to a saved model, without retraining")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("--catalog", required=True, metavar="NEW_ITEMS")
    p.set_defaults(func=_cmd_add_items)

    p = sub.add_parser("recommend", help="recommend for a file of requests (JSON Lines)")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("--requests", required=True, metavar="REQUESTS.jsonl")
    p.add_argument("--k", type=_positive_int, default=10, metavar="K", help="list length (default 10)")
    p.add_argument("--out", required=True, metavar="RECS.jsonl")
    _add_engine_options(p)
    p.set_defaults(func=_cmd_recommend)

    p = sub.add_parser("similar", help="items similar to one item (JSON on stdout)")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("--item", required=True, metavar="ITEM_ID")
    p.add_argument("--k", type=_positive_int, default=10, metavar="K")
    p.set_defaults(func=_cmd_similar)

    p = sub.add_parser("onboard", help="recommendations for a new user from free text (JSON on stdout)")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("--text", required=True, help="the user's interests, in their own words (English, Chinese, ...)")
    p.add_argument("--k", type=_positive_int, default=10, metavar="K")
    p.set_defaults(func=_cmd_onboard)

    p = sub.add_parser(
        "evaluate", help="compare coldbrew with baselines on a temporal split; write a report",
        description="Fit coldbrew and baselines on the events before a time cutoff, add the"
        " products first seen after it as new items, and score every model with the same metric"
        " code on warm users, new items and new users with n revealed events. Writes"
        " REPORT_DIR/report.md, report.json and the plots cold_start_curve.png (metric by events"
        " known per user), item_warmth_curve.png (recall by events known per item) and"
        " training_curves.png (coldbrew's per-epoch training curves, when it trained any)."
        " With --training-curves MODEL_DIR it only plots a saved model's training curves.",
    )
    p.add_argument("--catalog", metavar="ITEMS", help="products file (as for fit); required unless --training-curves")
    p.add_argument("--events", metavar="EVENTS", help="events file (as for fit); required unless --training-curves")
    p.add_argument("--training-curves", metavar="MODEL_DIR", default=None,
                   help="plot the training curves saved in a model directory to REPORT_DIR/training_curves.png, then stop")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="directory for the report files")
    p.add_argument("--config", metavar="FILE", help="coldbrew config used for coldbrew and the column mapping")
    p.add_argument("--split", choices=["temporal", "cold-item", "cold-user", "leave-last-out"], default="temporal",
                   help="temporal: cut at a timestamp quantile (warm users, new users by n, new items);"
                   " cold-item: hold out a random share of items with all their events;"
                   " cold-user: hold out a random share of users, reveal their first n events;"
                   " leave-last-out: each user's last event is the test (default temporal)")
    p.add_argument("--quantile", type=float, default=0.8,
                   help="temporal split: train on events before this timestamp quantile (default 0.8)")
    p.add_argument("--cold-share", type=float, default=0.2,
                   help="cold-item / cold-user split: share of items / users held out (default 0.2)")
    p.add_argument("--reveal", nargs="+", default=["0", "1", "3", "5"], metavar="N",
                   help="new-user segments with the first N events revealed (default: 0 1 3 5)")
    p.add_argument("--baselines", nargs="*", default=["popularity", "itemknn", "als", "text"], metavar="NAME",
                   help="baselines to compare: popularity itemknn als lightfm text (default: all but lightfm)")
    p.add_argument("--k", type=_positive_int, default=20, metavar="K", help="list length (default 20)")
    p.add_argument("--max-users", type=_positive_int, default=None, metavar="N",
                   help="sample at most N users per segment (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of that sample (default 0)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("search", help="search products: BM25 + text vectors, optionally personalised (JSON on stdout)",
                       description="Hybrid product search. Prints one JSON object per query:"
                       " {query, mode, items: [{item_id, title, category, price, score, reason}]}.")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("--query", required=True, action="append", help="search text (English, Chinese, ...); repeat for a batch")
    p.add_argument("--user-history", nargs="+", metavar="ITEM_ID", help="products the user bought: re-ranks the results for them")
    p.add_argument("--mode", choices=["hybrid", "lexical", "semantic"], default="hybrid", help="default hybrid")
    p.add_argument("--k", type=_positive_int, default=10, metavar="K", help="results per query (default 10)")
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("analytics", help="engagement report: retention, repeat purchases, activity, conversion, churn",
                       description="Write REPORT_DIR/report.md, analytics.json, retention.png and activity.png.")
    p.add_argument("--events", required=True, metavar="EVENTS", help="events file (as for fit)")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="directory for the report files")
    p.add_argument("--config", metavar="FILE", help="coldbrew config (column mapping)")
    p.add_argument("--cohort", choices=["week", "month"], default="month", help="retention cohorts by first-seen week or month (default month)")
    p.add_argument("--conversion-days", type=_positive_int, default=7, metavar="N", help="new-user conversion window in days (default 7)")
    p.add_argument("--churn-days", type=_positive_int, default=90, metavar="D", help="churned = no activity for D days (default 90)")
    p.add_argument("--churn-model", choices=["logistic", "lightgbm"], default="logistic")
    p.set_defaults(func=_cmd_analytics)

    p = sub.add_parser("promote", help="choose and order promotions for one user's slots (JSON on stdout)")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("--promotions", required=True, metavar="FILE", help="JSON list (or {\"promotions\": [...]}) or JSON Lines")
    p.add_argument("--user-history", required=True, metavar="FILE",
                   help="JSON: a list of events {item_id, timestamp, event?} or {user_id, history, text?}")
    p.add_argument("--user-id", default="cli-user", help="user ID when the file has none (frequency caps count per user)")
    p.add_argument("--slots", type=_positive_int, default=3, metavar="N")
    p.add_argument("--language", choices=["en", "zh"], default="en", help="language of the promotion copy")
    p.add_argument("--ledger", metavar="FILE", help="JSON impressions/spend ledger, read and updated (caps and budgets across runs)")
    p.add_argument("--calibration", metavar="FILE", help="pCTR calibration (default MODEL_DIR/ctr_calibration.json)")
    p.add_argument("--now", type=int, default=None, metavar="UNIX_SECONDS", help="time for schedules and daily caps (default: now)")
    p.add_argument("--copy-url", default=None, metavar="URL", help="OpenAI-compatible server to phrase the copy (falls back to templates)")
    p.add_argument("--copy-model", default="default", help="model name sent to --copy-url")
    p.set_defaults(func=_cmd_promote)

    p = sub.add_parser("calibrate-ctr", help="fit the pCTR calibration of a model on a temporal hold-out of events")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("--catalog", required=True, metavar="ITEMS")
    p.add_argument("--events", required=True, metavar="EVENTS")
    p.add_argument("--horizon-days", type=_positive_int, default=30, metavar="H", help="hold-out window (default 30)")
    p.add_argument("--max-users", type=_positive_int, default=1000, metavar="N")
    p.set_defaults(func=_cmd_calibrate_ctr)

    from coldbrew.service.serve import add_serve_command  # argparse only; FastAPI loads on use

    add_serve_command(sub)

    p = sub.add_parser("chat", help="talk to the shopping assistant (one message per line on stdin)",
                       description="An interactive shopping assistant in English or Chinese: find products,"
                       " recommend, similar, compare, filter by price/colour/category, ask about a product,"
                       " reset. Reads one message per line from stdin (a terminal or a pipe); 'quit' ends.")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("--k", type=_positive_int, default=5, metavar="K", help="products per answer (default 5)")
    p.add_argument("--json", action="store_true", help="print each reply as one JSON line")
    p.add_argument("--conversation", default="cli", metavar="ID", help="conversation ID (default 'cli')")
    p.add_argument("--phrase-url", default=None, metavar="URL",
                   help="OpenAI-compatible server that rewords the answers (falls back to the templates)")
    p.add_argument("--phrase-model", default="default", help="model name sent to --phrase-url")
    p.set_defaults(func=_cmd_chat)

    p = sub.add_parser("demo", help="run the offline demo on the bundled shop (and real data if present)")
    p.add_argument("--data-dir", default=None, help="folder with uci_online_retail/ (default: ../shared/data if present)")
    p.add_argument("--quick", action="store_true", help="skip the real-data evaluation")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ColdbrewError as exc:
        print(f"coldbrew: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("coldbrew: interrupted", file=sys.stderr)
        return 130
    except (OSError, MemoryError) as exc:
        print(f"coldbrew: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
