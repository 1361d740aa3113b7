"""LoRA on its own terms: the next-item validation curve of `train_lora`, as `fit` trains it.

    python benchmarks/lora_curve.py ../shared/data/uci_online_retail
    python benchmarks/lora_curve.py ../shared/data/movielens_latest_small

Runs :func:`coldbrew.text.lora.fit_lora`, the call ``Recommender.fit`` makes, with the default
``[lora]`` settings on the training part of the temporal split at 0.8 (so without the tuning
hold-out at its end). Prints one JSON object: pairs, kept epoch, the curve, seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from coldbrew.config import FitConfig
from coldbrew.data import load_catalog, load_events
from coldbrew.evaluation.protocol import fit_catalog
from coldbrew.evaluation.splits import temporal_split
from coldbrew.text.lora import MiniLMEncoder, fit_lora


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with items.csv.gz and interactions.csv.gz")
    parser.add_argument("--quantile", type=float, default=0.8)
    args = parser.parse_args(argv)
    catalog, _ = load_catalog(args.data / "items.csv.gz")
    events, _ = load_events(args.data / "interactions.csv.gz")
    split = temporal_split(events, args.quantile)
    seen, _ = fit_catalog(split, catalog)
    config = FitConfig.from_dict({"encoder": {"name": "minilm-l6-v2"}, "lora": {"enabled": True}})
    started = time.perf_counter()
    result = fit_lora(MiniLMEncoder(), config, seen, split.train, progress=False)
    if result is None:
        raise SystemExit("too few (history -> next item) pairs to train on")
    print(json.dumps({"data": args.data.resolve().name, "seconds": time.perf_counter() - started,
                      "pairs": result.pairs, "best_epoch": result.best_epoch,
                      "kept": result.encoder is not None, "curve": result.curve}))


if __name__ == "__main__":
    main()
