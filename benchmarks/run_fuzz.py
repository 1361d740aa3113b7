"""Schemathesis fuzzing of the service's OpenAPI schema, with more examples than the test.

    python benchmarks/run_fuzz.py [--examples 100] [--seed 21] [--out benchmarks/results/fuzz_schemathesis.json]

Fits the demo shop with the tiny ``hashing`` encoder (as the service tests do), serves it
in-process with a write key, a read key, the demo events and a small report, and fuzzes every
operation of its ``/openapi.json`` with the driver of ``tests/service/test_schemathesis.py``
(same checks: no 5xx, the JSON error shape on every 4xx, Schemathesis' conformance checks,
``negative_data_rejection``, ``ignored_auth``). Per operation and generation mode (positive,
negative): ``--examples`` cases with the write key, half as many with the read key, a quarter
with no key; the retrain gets 3, the chat a quarter (it is the slowest operation).

Writes per-operation case counts, timings and status histograms, the total of HTTP requests
the app received (the checks' probes included) and the failures (0 expected) to ``--out``,
prints a summary; exits 1 when anything failed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "fuzz_schemathesis.json"


def _demo_model(work: Path) -> tuple[Path, Path]:
    from coldbrew.config import BlendConfig, EncoderConfig, FitConfig
    from coldbrew.data import load_catalog
    from coldbrew.data.events import events_from_frame
    from coldbrew.demo import demo_events, demo_paths
    from coldbrew.pipeline import Recommender
    from coldbrew.storage import save_model

    catalog, _ = load_catalog(demo_paths()[0])
    frame = demo_events(list(catalog.item_ids))
    events, _ = events_from_frame(frame)
    frame.drop(columns=["taste"]).to_csv(work / "events.csv", index=False)
    config = FitConfig(encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False))
    model = Recommender(config).fit(catalog, events, progress=False)
    save_model(model, work / "fitted")
    return work / "fitted", work / "events.csv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="cases per operation and mode with the write key")
    parser.add_argument("--seed", type=int, default=21, help="Hypothesis seed (the cases are random from it)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / "tests"))
    from service.test_schemathesis import (  # the test's driver: one definition of the checks
        SCENARIOS,
        FuzzReport,
        load_schema,
        make_fuzz_app,
        shutdown,
    )
    from service.test_schemathesis import fuzz_scenario as fuzz

    n = args.examples
    share = {"write": 1.0, "read": 0.5, "none": 0.25}
    slow = {"POST /v1/models/retrain": 3, "POST /v1/chat": max(1, n // 4)}

    def examples(scenario: str):
        def count(label: str, mode: str) -> int:
            base = max(1, round(n * share[scenario]))
            return min(base, slow[label]) if label in slow else base
        return count

    report = FuzzReport()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="coldbrew-fuzz-") as tmp:
        work = Path(tmp)
        model_dir, events_csv = _demo_model(work)
        app = make_fuzz_app(model_dir, events_csv, work)
        schema = load_schema(app)
        try:
            for scenario in SCENARIOS:
                t0 = time.perf_counter()
                fuzz(schema, app, scenario, examples(scenario), report, seed=args.seed)
                print(f"{scenario}: {sum(report.by_scenario.get(scenario, {}).values())} cases in"
                      f" {time.perf_counter() - t0:.0f} s, statuses {dict(sorted(report.by_scenario[scenario].items()))}",
                      flush=True)
        finally:
            shutdown()
    result = {
        "command": "python benchmarks/run_fuzz.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "examples": {"write": n, "read": round(n * share["read"]), "none": round(n * share["none"]), "slow": slow},
        "seed": args.seed,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.machine()}, {platform.python_version()}",
    } | report.to_dict()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"{result['cases']} cases ({result['http_requests']} HTTP requests) over {result['operations']} operations"
          f" in {result['seconds']} s: statuses {result['status_histogram']}, failures {result['failures']}")
    for line in report.distinct_failures():
        print("FAILED", line)
    print(f"wrote {args.out}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
