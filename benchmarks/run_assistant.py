"""Shopping assistant: intent accuracy and slot F1 on a held-out set of utterances.

The evaluation set (``benchmarks/data/assistant_eval.jsonl``, 324 utterances, half English and
half Chinese, 18 per intent and language) was written before the assistant's rules and
independently of its training examples (``src/coldbrew/assistant/data/train.jsonl``; no
sentence is shared). Gold slots refer to the bundled demo catalog (``demo_data/catalog.csv``):

* ``min_price`` / ``max_price`` (numbers), ``relative_price`` ("lower" / "higher");
* ``colour`` (canonical English name), ``category`` (a catalog category path);
* ``product`` (product nouns, English singular, Chinese translated);
* ``ordinal`` (1-based positions, -1 = last), ``item`` (item IDs named by a title fragment);
* ``attribute`` (price, brand, category, stock, colour, description).

Slots are extracted with the *predicted* intent (end to end) and, separately, with the gold
intent. Slot F1 is micro-averaged over (type, value) pairs.

    python benchmarks/run_assistant.py [--encoder use-multilingual-v3|hashing] [--json OUT]
        [--latency-data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from coldbrew.assistant import (
    INTENTS,
    CatalogVocabulary,
    IntentClassifier,
    SlotExtractor,
    load_examples,
)
from coldbrew.config import EncoderConfig
from coldbrew.data import load_catalog
from coldbrew.demo import demo_paths
from coldbrew.text import make_encoder

EVAL = Path(__file__).resolve().parent / "data" / "assistant_eval.jsonl"
SLOT_TYPES = ("min_price", "max_price", "relative_price", "colour", "category", "product",
              "ordinal", "item", "attribute")


def read_eval(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            for key in ("text", "lang", "intent", "slots"):
                if key not in row:
                    raise SystemExit(f"{path}: line {n}: field '{key}' is missing")
            rows.append(row)
    return rows


def pairs(slots: dict) -> set[tuple[str, str]]:
    """Gold-format slots -> {(type, value)}; lists give one pair per element."""
    out = set()
    for key, value in slots.items():
        if key not in SLOT_TYPES or value is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            out.add((key, f"{float(v):g}" if isinstance(v, (int, float)) and key.endswith("price") else str(v)))
    return out


def predicted_pairs(extracted: dict) -> set[tuple[str, str]]:
    renamed = {{"ordinals": "ordinal", "items": "item"}.get(k, k): v for k, v in extracted.items()}
    return pairs(renamed)


def f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def slot_scores(golds: list[set], preds: list[set]) -> dict:
    counts = defaultdict(lambda: [0, 0, 0])
    for gold, pred in zip(golds, preds):
        for t, _ in gold & pred:
            counts[t][0] += 1
        for t, _ in pred - gold:
            counts[t][1] += 1
        for t, _ in gold - pred:
            counts[t][2] += 1
    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    out = {"micro": dict(zip(("precision", "recall", "f1"), f1(*total)), support=total[0] + total[2])}
    for t in SLOT_TYPES:
        c = counts.get(t, [0, 0, 0])
        out[t] = dict(zip(("precision", "recall", "f1"), f1(*c)), support=c[0] + c[2])
    return out


SCRIPT = ("show me candles", "cheaper ones", "only red ones", "how much is the second one?",
          "similar to the first one", "compare the first and the second", "start over",
          "给我看看蜡烛", "便宜点的", "第二个多少钱", "recommend something for me")


def latency(data_dir: Path, conversations: int = 5) -> dict:
    """Per-turn latency of a scripted conversation over a model fitted on uci_online_retail."""
    import numpy as np

    from coldbrew.assistant import Assistant
    from coldbrew.assistant.cli import format_reply
    from coldbrew.config import BlendConfig, FitConfig
    from coldbrew.data import load_events
    from coldbrew.pipeline import Recommender
    from coldbrew.requests import HistoryEvent

    catalog, _ = load_catalog(data_dir / "uci_online_retail" / "items.csv.gz")
    events, _ = load_events(data_dir / "uci_online_retail" / "interactions.csv.gz")
    started = time.perf_counter()
    model = Recommender(FitConfig(blend=BlendConfig(tune=False))).fit(catalog, events, progress=False)
    fitted = time.perf_counter() - started
    assistant = Assistant(model)
    history = tuple(HistoryEvent(str(i), int(t), "purchase") for i, t in
                    zip(events.item_ids[:20], events.timestamps[:20]))
    started = time.perf_counter()
    assistant.reply("warm-up", "hello")
    first = time.perf_counter() - started
    times, transcript = [], []
    for c in range(conversations):
        for message in SCRIPT:
            started = time.perf_counter()
            reply = assistant.reply(f"c{c}", message, user_history=history if "recommend" in message else None)
            times.append(time.perf_counter() - started)
            if c == 0:
                transcript.append(f"> {message}\n{format_reply(reply)}")
    ms = 1000 * np.asarray(times)
    return {"items": len(catalog), "fit_seconds": fitted, "first_reply_seconds": first, "turns": len(times),
            "median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()),
            "transcript": transcript}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="use-multilingual-v3", help="text encoder of the intent classifier")
    parser.add_argument("--eval", default=str(EVAL), help="evaluation set (JSON Lines)")
    parser.add_argument("--json", default=None, help="also write the figures as JSON here")
    parser.add_argument("--latency-data", default=None, metavar="DIR",
                        help="also time a scripted conversation over a model fitted on DIR/uci_online_retail")
    args = parser.parse_args(argv)

    rows = read_eval(Path(args.eval))
    catalog, _ = load_catalog(demo_paths()[0])
    started = time.perf_counter()
    classifier = IntentClassifier(make_encoder(EncoderConfig(name=args.encoder))).fit(load_examples())
    trained = time.perf_counter() - started
    started = time.perf_counter()
    predicted, _ = classifier.predict([r["text"] for r in rows])
    extractor = SlotExtractor(CatalogVocabulary.from_catalog(catalog))
    end_to_end = [predicted_pairs(extractor.extract(r["text"], p).to_dict()) for r, p in zip(rows, predicted)]
    oracle = [predicted_pairs(extractor.extract(r["text"], r["intent"]).to_dict()) for r in rows]
    per_utterance = (time.perf_counter() - started) / len(rows)
    gold = [pairs(r["slots"]) for r in rows]

    correct = [p == r["intent"] for p, r in zip(predicted, rows)]
    by_lang = {lang: [c for c, r in zip(correct, rows) if r["lang"] == lang] for lang in ("en", "zh")}
    by_intent = {i: [c for c, r in zip(correct, rows) if r["intent"] == i] for i in INTENTS}
    confusion = Counter((r["intent"], p) for r, p in zip(rows, predicted))
    slots_e2e = slot_scores(gold, end_to_end)
    slots_oracle = slot_scores(gold, oracle)
    slots_lang = {lang: slot_scores([g for g, r in zip(gold, rows) if r["lang"] == lang],
                                    [p for p, r in zip(end_to_end, rows) if r["lang"] == lang])["micro"]["f1"]
                  for lang in ("en", "zh")}
    result = {
        "utterances": len(rows), "encoder": classifier.encoder.name, "training_examples": len(load_examples()),
        "intent_accuracy": sum(correct) / len(correct),
        "intent_accuracy_by_language": {k: sum(v) / len(v) for k, v in by_lang.items()},
        "intent_recall_by_intent": {k: sum(v) / len(v) for k, v in by_intent.items() if v},
        "confusion": {f"{g}->{p}": n for (g, p), n in sorted(confusion.items()) if g != p},
        "slots_end_to_end": slots_e2e, "slots_gold_intent": slots_oracle, "slot_f1_by_language": slots_lang,
        "train_seconds": trained, "ms_per_utterance": 1000 * per_utterance,
        "errors": [{"text": r["text"], "gold": r["intent"], "predicted": p}
                   for r, p, c in zip(rows, predicted, correct) if not c],
        "slot_errors": [{"text": r["text"], "missing": sorted(map(list, g - e)), "extra": sorted(map(list, e - g))}
                        for r, g, e in zip(rows, gold, end_to_end) if g != e],
    }
    print(f"## Shopping assistant ({len(rows)} held-out utterances, encoder {classifier.encoder.name})\n")
    print(f"intent accuracy {result['intent_accuracy']:.3f} (en {result['intent_accuracy_by_language']['en']:.3f},"
          f" zh {result['intent_accuracy_by_language']['zh']:.3f}); slot micro-F1 {slots_e2e['micro']['f1']:.3f}"
          f" end to end (en {slots_lang['en']:.3f}, zh {slots_lang['zh']:.3f}), {slots_oracle['micro']['f1']:.3f} with gold intents\n")
    print("| intent | recall |\n|---|---|")
    for k, v in result["intent_recall_by_intent"].items():
        print(f"| {k} | {v:.3f} |")
    print("\n| slot | support | precision | recall | F1 (end to end) | F1 (gold intent) |\n|---|---|---|---|---|---|")
    for t in ("micro",) + SLOT_TYPES:
        e, o = slots_e2e[t], slots_oracle[t]
        print(f"| {t} | {e['support']} | {e['precision']:.3f} | {e['recall']:.3f} | {e['f1']:.3f} | {o['f1']:.3f} |")
    print("\nconfusions (gold->predicted: count): " + ", ".join(f"{k}: {v}" for k, v in result["confusion"].items()))
    print(f"\nclassifier trained in {trained:.1f} s (incl. loading the encoder); {result['ms_per_utterance']:.1f} ms per utterance")
    if args.latency_data:
        result["latency"] = lat = latency(Path(args.latency_data))
        print(f"\nlatency on uci_online_retail ({lat['items']:,} items; model fitted in {lat['fit_seconds']:.0f} s):"
              f" first reply {lat['first_reply_seconds']:.1f} s (loads the encoder, trains the intent head);"
              f" then {lat['turns']} scripted turns: median {lat['median_ms']:.0f} ms, p95 {lat['p95_ms']:.0f} ms,"
              f" max {lat['max_ms']:.0f} ms per turn\n")
        print("\n".join(lat["transcript"]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
