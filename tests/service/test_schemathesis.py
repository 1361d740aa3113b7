"""Schemathesis fuzzes every operation of the app's own OpenAPI schema (issue #21, part 1).

Each operation the schema lists is called with schema-valid and schema-violating requests
(``GenerationMode.POSITIVE`` / ``NEGATIVE``) as three clients: a write key, a read key, and
no configured key (Schemathesis then sends no key, an empty one or a made-up one). Checks on
every response: no 5xx; every 4xx carries the documented JSON error shape
``{"error": {"message": str, "field": str | null}}``; and Schemathesis' checks: status code,
content type, headers and body conform to the schema, schema-violating requests are refused
(``negative_data_rejection``), a secured operation refuses a request without a valid key
(``ignored_auth``). Not run: ``positive_data_acceptance``, since the API refuses with 422
some requests the schema cannot rule out: IDs and categories that must exist, timestamps no
more than a day ahead, a retrain's or an onboarding's business rules (each such 422 is still
checked for the error shape).

Before the random cases, each client sends ``KNOWN_GOOD`` requests (real items and users:
random ones rarely name any), so that the 2xx answers of every write are checked too, and must
get the status its scope allows. The promotion copy backend is a dead loopback port, so that
selections take the LLM path and fall back to the template. Pages the schema leaves out (the
web page, its files, /docs) are checked for status and content type only, as are /metrics
(text) and the report plots (PNG).

Example counts are bounded (``EXAMPLES``) so that the file runs in about a minute on two
cores; ``benchmarks/run_fuzz.py`` runs the same fuzzing with more examples. With
``COLDBREW_FUZZ_REPORT=PATH`` (``1``: ``benchmarks/results/fuzz_schemathesis.json``) the
counts are written there as JSON. The driver (``make_fuzz_app``, ``fuzz_scenario``,
``FuzzReport``) is shared with that script, so it needs no pytest fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")

import hypothesis  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

WRITE_KEY = "fuzz-write-key-4c9d0e7a1b"
READ_KEY = "fuzz-read-key-8f21a6c3d5"
SCENARIOS: dict[str, str | None] = {"write": WRITE_KEY, "read": READ_KEY, "none": None}
DEFAULT_REPORT = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "fuzz_schemathesis.json"

# Examples per (operation, mode) in the test; slow operations get fewer (never none).
EXAMPLES = {"write": {"positive": 12, "negative": 8}, "read": {"positive": 6, "negative": 4},
            "none": {"positive": 4, "negative": 3}}
SLOW = {"POST /v1/models/retrain": 2, "POST /v1/chat": 4, "POST /v1/promotions/select": 5}
# The promotion copy backend: a loopback port nothing listens on, so that every selection
# takes the LLM path and falls back to the template (connection refused at once).
DEAD_COPY_URL = "http://127.0.0.1:9"
# Seconds one request may take (a retrain beside it shares the two cores).
CALL_TIMEOUT_S = 60
# Known-good requests, sent first and in this order (the random ones rarely name a real item,
# so without these the 2xx answers of several writes would go unchecked): (operation, what the
# case holds, the scope it needs, the statuses a client with that scope must get).
KNOWN_GOOD: list[tuple[str, dict[str, Any], str, set[int]]] = [
    ("POST /v1/events", {"body": {"user_id": "fuzz-u1", "item_id": "tea-001", "event": "purchase"}}, "write", {200}),
    ("POST /v1/events", {"body": {"events": [
        {"user_id": "fuzz-u1", "item_id": "tea-001", "timestamp": "2026-01-02T10:00:00Z", "value": 2},
        {"user_id": "fuzz-u2", "item_id": "tea-001", "timestamp": 1_767_000_000, "event": "view"}]}}, "write", {200}),
    ("POST /v1/items", {"body": {"item_id": "fuzz-new-1", "title": "Fuzz mug", "category": "Kitchen > Mugs",
                                 "price": 5.5, "tags": ["mug"]}}, "write", {201}),
    ("POST /v1/items", {"body": {"items": [{"item_id": "fuzz-new-2", "title": "Fuzz cup"}]}}, "write", {201}),
    ("PATCH /v1/items/{item_id}", {"path_parameters": {"item_id": "fuzz-new-1"},
                                   "body": {"price": 6.0, "in_stock": False}}, "write", {200}),
    ("GET /v1/items", {"query": {"q": "mug", "limit": 5}}, "read", {200}),
    ("GET /v1/items/{item_id}", {"path_parameters": {"item_id": "fuzz-new-1"}}, "read", {200}),
    ("GET /v1/items/{item_id}/similar", {"path_parameters": {"item_id": "tea-001"}, "query": {"k": 3}}, "read", {200}),
    ("GET /v1/users/{user_id}/recommendations", {"path_parameters": {"user_id": "fuzz-u1"},
                                                 "query": {"k": 5, "category": "tea", "max_price": 50}}, "read", {200}),
    ("GET /v1/users/{user_id}/profile", {"path_parameters": {"user_id": "fuzz-u1"}}, "read", {200}),
    ("POST /v1/onboarding", {"body": {"user_id": "fuzz-u3", "text": "green tea", "k": 3}}, "write", {200}),
    ("GET /v1/search", {"query": {"q": "tea", "user_id": "fuzz-u1", "k": 3}}, "read", {200}),
    ("POST /v1/chat", {"body": {"message": "green tea under 20", "user_id": "fuzz-u1", "k": 3}}, "read", {200}),
    ("POST /v1/promotions", {"body": {"promotion_id": "fuzz-p1", "item_id": "tea-001", "bid": 0.5,
                                      "budget": 100, "start": "2026-01-01T00:00:00Z"}}, "write", {201}),
    ("GET /v1/promotions", {}, "read", {200}),
    ("POST /v1/promotions/select", {"body": {"user_id": "fuzz-u2", "slots": 2}}, "read", {200}),
    ("DELETE /v1/promotions/{promotion_id}", {"path_parameters": {"promotion_id": "fuzz-p1"}}, "write", {200}),
    ("GET /v1/analytics", {"query": {"cohort": "week"}}, "read", {200}),
    ("GET /v1/analytics/users/{user_id}/churn", {"path_parameters": {"user_id": "u001"}}, "read", {200, 404, 422}),
    ("GET /v1/reports/latest", {}, "read", {200}),
    ("GET /v1/reports/files/{name}", {"path_parameters": {"name": "curve.png"}}, "read", {200}),
    ("GET /v1/models", {}, "read", {200}),
    ("DELETE /v1/items/{item_id}", {"path_parameters": {"item_id": "fuzz-new-2"}}, "write", {200}),
    ("DELETE /v1/users/{user_id}", {"path_parameters": {"user_id": "fuzz-u3"}}, "write", {200}),
]
# Non-JSON answers: status and content type only.
NON_JSON = {"GET /metrics", "GET /v1/reports/files/{name}"}


class CountingApp:
    """ASGI wrapper counting the HTTP requests that reach the app (checks' probes included)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests += 1
        await self.app(scope, receive, send)


def make_fuzz_app(model_dir: Path, events_csv: Path | None, work: Path) -> CountingApp:
    """The app under fuzzing: a copy of ``model_dir``, seeded events, a small report, keys, a
    (dead) promotion copy backend."""
    from coldbrew.service.app import create_app
    from coldbrew.service.settings import ServiceSettings

    model = Path(shutil.copytree(model_dir, work / "model"))
    reports = work / "reports" / "run1"
    reports.mkdir(parents=True)
    (reports / "report.json").write_text(json.dumps({"k": 10, "results": {"coldbrew": {"ndcg@10": 0.1}}}))
    (reports / "report.md").write_text("# Report\n")
    (reports / "curve.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)
    settings = ServiceSettings(model_dir=model, write_keys=(WRITE_KEY,), read_keys=(READ_KEY,),
                               report_dir=work / "reports", seed_events=events_csv, max_batch=50,
                               max_body_bytes=256 * 1024, copy_url=DEAD_COPY_URL)
    return CountingApp(create_app(settings))


def load_schema(app: CountingApp) -> Any:
    """The schema the running app serves (starts the app's lifespan, kept until shutdown).

    One chat message is sent first: the assistant fits its intent classifier on the first
    message (about 8 s here), a cold start that is not what the fuzzing is about.
    """
    from schemathesis.python import asgi

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # A schema-violating body may also be refused for its size (413, documented), before any field is read.
    rejection = schema.config.checks.negative_data_rejection
    schema.config.checks.negative_data_rejection = type(rejection)(
        expected_statuses=[*rejection.expected_statuses, "413"])
    with asgi.get_client(app) as client:
        warm = client.post("/v1/chat", json={"message": "hello"}, headers={"X-API-Key": READ_KEY},
                           timeout=CALL_TIMEOUT_S)
        assert warm.status_code == 200, warm.text
    return schema


def shutdown() -> None:
    """End the lifespans Schemathesis started (stores closed, background threads stopped)."""
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()


def content_type(response: Any) -> str:
    """The Content-Type of a response (Schemathesis keeps each header as a list of values)."""
    value = response.headers.get("content-type", "")
    return value[0] if isinstance(value, list) and value else str(value or "")


def check_error_shape(response: Any) -> str | None:
    """``None`` when a 4xx body is ``{"error": {"message": str, "field": str | null}}``."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return f"4xx body is not JSON: {response.content[:200]!r}"
    if not (isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], dict)):
        return f"4xx body is not {{'error': ...}}: {body!r}"[:400]
    error = body["error"]
    if set(error) != {"message", "field"} or not isinstance(error["message"], str) or not error["message"]:
        return f"4xx error is not {{'message', 'field'}}: {error!r}"[:400]
    if error["field"] is not None and not isinstance(error["field"], str):
        return f"4xx error field is not a string or null: {error!r}"[:400]
    if content_type(response).split(";")[0] != "application/json":
        return f"4xx content type {content_type(response)!r}"
    return None


@dataclass
class FuzzReport:
    """What a fuzzing run tried and found."""

    cases: Counter = field(default_factory=Counter)  # operation label -> cases sent
    statuses: dict[str, Counter] = field(default_factory=dict)  # operation label -> status -> n
    by_scenario: dict[str, Counter] = field(default_factory=dict)  # scenario -> status -> n
    failures: list[dict[str, Any]] = field(default_factory=list)
    http_requests: int = 0  # every request the app received, the checks' probes included
    seconds: Counter = field(default_factory=Counter)  # operation label -> time spent fuzzing it

    def record(self, scenario: str, label: str, status: int) -> None:
        self.cases[label] += 1
        self.statuses.setdefault(label, Counter())[str(status)] += 1
        self.by_scenario.setdefault(scenario, Counter())[str(status)] += 1

    def fail(self, scenario: str, label: str, mode: str, status: int, what: str, case: Any) -> None:
        if len(self.failures) < 200:
            self.failures.append({"scenario": scenario, "operation": label, "mode": mode, "status": status,
                                  "failure": what[:1500], "case": repr(case)[:1000]})

    def distinct_failures(self) -> list[str]:
        return sorted({f"{f['operation']} [{f['scenario']}/{f['mode']}] {f['status']}: {f['failure'].splitlines()[0]}"
                       for f in self.failures})

    def to_dict(self) -> dict[str, Any]:
        histogram: Counter = Counter()
        for counts in self.statuses.values():
            histogram.update(counts)
        return {
            "cases": sum(self.cases.values()),
            "http_requests": self.http_requests,
            "operations": len(self.cases),
            "status_histogram": dict(sorted(histogram.items())),
            "by_scenario": {k: dict(sorted(v.items())) for k, v in self.by_scenario.items()},
            "per_operation": {label: {"cases": self.cases[label], "seconds": round(self.seconds[label], 2),
                                      "statuses": dict(sorted(self.statuses[label].items()))}
                              for label in sorted(self.cases)},
            "failures": len(self.failures),
            "failure_details": self.failures[:50],
        }


def _excluded_checks() -> list[Any]:
    from schemathesis.specs.openapi import checks

    if os.environ.get("COLDBREW_FUZZ_ALL_CHECKS"):
        return []
    return [checks.positive_data_acceptance]


def fuzz_scenario(schema: Any, app: CountingApp, scenario: str, examples: Callable[[str, str], int],
                  report: FuzzReport, seed: int | None = None) -> None:
    """Fuzz every operation of ``schema`` as one client (``SCENARIOS[scenario]``).

    ``examples(label, mode)`` gives the number of cases; ``seed`` ``None``: the same cases
    every run (derandomized, as a test should be), else random cases from that seed.
    """
    key = SCENARIOS[scenario]
    headers = {"X-API-Key": key} if key else None
    excluded = _excluded_checks()
    before = app.requests
    operations = {r.ok().label: r.ok() for r in schema.get_all_operations()}
    for label, parts, scope, statuses in KNOWN_GOOD:
        if label not in operations:
            report.fail(scenario, label, "example", 0, "a known-good request names an operation the schema lacks", None)
            continue
        if scenario == "write" or (scenario == "read" and scope == "read"):
            wanted = statuses
        else:
            wanted = {403} if scenario == "read" else {401}
        case = operations[label].Case(**parts)
        status = _one_case(case, headers, scenario, label, "example", excluded, report)
        if status not in wanted:
            report.fail(scenario, label, "example", status, f"known-good request: expected {sorted(wanted)}", case)
    for result in schema.get_all_operations():
        operation = result.ok()
        label = operation.label
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            n = examples(label, mode.value)
            if n < 1:
                continue
            run = _fuzz_test(operation.as_strategy(generation_mode=mode, headers=headers), n, seed,
                             lambda case, label=label, mode=mode.value: _one_case(
                                 case, headers, scenario, label, mode, excluded, report))
            started = time.perf_counter()
            try:
                run()
            except BaseException as exc:
                if "Unable to satisfy assumptions" in str(exc) or type(exc).__name__ == "Unsatisfiable":
                    continue  # nothing schema-violating to send (an operation without parameters)
                trace = "".join(traceback.format_exception(exc)[-6:])
                report.fail(scenario, label, mode.value, 0, f"fuzzing error {type(exc).__name__}: {exc}\n{trace}", None)
            finally:
                report.seconds[label] += time.perf_counter() - started
    report.http_requests += app.requests - before


def _fuzz_test(strategy: Any, n: int, seed: int | None, body: Callable[[Any], None]) -> Callable[[], None]:
    @settings(max_examples=n, deadline=None, database=None, derandomize=seed is None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        body(case)

    return run if seed is None else hypothesis.seed(seed)(run)


def _one_case(case: Any, headers: dict[str, str] | None, scenario: str, label: str, mode: str,
              excluded: list[Any], report: FuzzReport) -> int:
    """Send one case, record its status and any failed check; returns the status."""
    response = case.call(headers=headers, timeout=CALL_TIMEOUT_S)
    status = response.status_code
    report.record(scenario, label, status)
    if status >= 500:
        report.fail(scenario, label, mode, status, f"server error: {response.text[:500]}", case)
        return status
    if 400 <= status < 500:
        problem = check_error_shape(response)
        if problem is not None:
            report.fail(scenario, label, mode, status, problem, case)
    if label in NON_JSON and status == 200:
        wanted = "text/plain" if label == "GET /metrics" else "image/png"
        if not content_type(response).startswith(wanted):
            report.fail(scenario, label, mode, status, "content type " + content_type(response), case)
        return status
    try:
        case.validate_response(response, headers=headers, excluded_checks=excluded)
    except BaseException as exc:  # a FailureGroup: one entry per failed check
        for failure in getattr(exc, "exceptions", [exc]):
            title = getattr(failure, "title", type(failure).__name__)
            report.fail(scenario, label, mode, status, f"{title}\n{failure}", case)
    return status


def examples_for(label: str, mode: str, scenario: str) -> int:
    base = EXAMPLES[scenario][mode]
    return min(base, SLOW[label]) if label in SLOW else base


# ---------------------------------------------------------------------- tests
_REPORT = FuzzReport()


@pytest.fixture(scope="module")
def fuzz(demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, CountingApp]]:
    app = make_fuzz_app(demo_model_dir, demo_model_dir.parent / "events.csv", tmp_path_factory.mktemp("fuzz"))
    try:
        yield load_schema(app), app
    finally:
        shutdown()
    target = os.environ.get("COLDBREW_FUZZ_REPORT")
    if target:
        path = DEFAULT_REPORT if target == "1" else Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        out = {"source": "tests/service/test_schemathesis.py", "examples": EXAMPLES, "slow": SLOW}
        path.write_text(json.dumps(out | _REPORT.to_dict(), indent=1) + "\n")


def test_schema_documents_the_error_shape(fuzz) -> None:
    schema, _ = fuzz
    raw = schema.raw_schema
    assert "HTTPValidationError" not in json.dumps(raw)  # FastAPI's {"detail": [...]}: never sent
    error = raw["components"]["schemas"]["ErrorDetailOut"]
    assert set(error["required"]) == {"message", "field"}
    for path, operations in raw["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            if op.get("security"):
                for status in ("401", "403", "429", "503"):
                    ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorOut"), (method, path, status)
            if "requestBody" in op:
                assert {"400", "413", "422"} <= set(responses), (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            k = [p for p in op.get("parameters", []) if p["name"] == "k"]
            if k:
                assert k[0]["schema"]["maximum"] == 1000, (method, path)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_fuzz_every_operation(fuzz, scenario: str) -> None:
    schema, app = fuzz
    report = FuzzReport()
    fuzz_scenario(schema, app, scenario, lambda label, mode: examples_for(label, mode, scenario), report)
    for label, n in report.cases.items():
        _REPORT.cases[label] += n
        _REPORT.statuses.setdefault(label, Counter()).update(report.statuses[label])
        _REPORT.seconds[label] += report.seconds[label]
    _REPORT.by_scenario.update(report.by_scenario)
    _REPORT.failures += report.failures
    _REPORT.http_requests += report.http_requests
    labels = {r.ok().label for r in schema.get_all_operations()}
    assert labels == set(report.cases), f"operations never called: {labels - set(report.cases)}"
    print(f"\nfuzz[{scenario}]: {sum(report.cases.values())} cases, {report.http_requests} HTTP requests,"
          f" statuses {dict(sorted(report.by_scenario[scenario].items()))}")
    assert not report.failures, "\n".join(report.distinct_failures()) + "\n\n" + json.dumps(report.failures[:5], indent=1)
    if scenario == "none":  # no valid key: nothing secured may answer 2xx
        secured = {f"{m.upper()} {p}" for p, ops in schema.raw_schema["paths"].items()
                   for m, op in ops.items() if op.get("security")}
        for label in secured:
            assert not any(s.startswith("2") for s in report.statuses[label]), (label, report.statuses[label])


def test_pages_and_docs_status_and_content_type(fuzz) -> None:
    """What the schema leaves out (the web page, its files, the docs): status and content type."""
    from schemathesis.python import asgi

    _, app = fuzz
    with asgi.get_client(app) as client:
        for key in SCENARIOS.values():
            headers = {"X-API-Key": key} if key else {}
            for path, kind in [("/", "text/html"), ("/static/app.js", "text/javascript"),
                               ("/static/style.css", "text/css"), ("/docs", "text/html"),
                               ("/openapi.json", "application/json")]:
                r = client.get(path, headers=headers)
                assert r.status_code == 200 and r.headers["content-type"].startswith(kind), (path, r.status_code)
            for path in ("/static/nope.js", "/static/..%2F..%2Fpyproject.toml", "/no/such/page"):
                r = client.get(path, headers=headers)
                assert r.status_code == 404 and check_error_shape(r) is None, (path, r.status_code, r.text)


# ---------------------------------------------------------------------- regressions
def test_body_that_is_not_utf8_gets_the_error_shape(make_client) -> None:
    """Found by the fuzzing: FastAPI answered 400 ``{"detail": ...}``-worded and undocumented."""
    c = make_client()
    for path in ("/v1/events", "/v1/items", "/v1/onboarding", "/v1/chat", "/v1/promotions"):
        r = c.post(path, content=b"\xbf\xa7", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json() == {
            "error": {"message": "malformed request body: it is not UTF-8 encoded JSON", "field": "body"}}, r.text
        assert "400" in c.get("/openapi.json").json()["paths"][path]["post"]["responses"]


def test_patch_title_is_not_nullable_in_the_schema(make_client) -> None:
    """Found by the fuzzing: the schema allowed ``"title": null``, which the server refuses."""
    c = make_client()
    spec = c.get("/openapi.json").json()
    assert spec["components"]["schemas"]["ItemPatch"]["properties"]["title"]["type"] == "string"
    assert spec["components"]["schemas"]["ItemPatch"]["minProperties"] == 1
    r = c.patch("/v1/items/tea-001", json={"title": None})
    assert r.status_code == 422 and r.json()["error"]["field"] == "title"
    assert c.patch("/v1/items/tea-001", json={"title": "Green tea"}).json()["title"] == "Green tea"


def test_limits_checked_at_run_time_are_in_the_schema(make_client) -> None:
    c = make_client(max_k=50)
    spec = c.get("/openapi.json").json()
    recs = spec["paths"]["/v1/users/{user_id}/recommendations"]["get"]
    assert next(p for p in recs["parameters"] if p["name"] == "k")["schema"]["maximum"] == 50
    assert spec["components"]["schemas"]["OnboardingIn"]["properties"]["k"]["maximum"] == 50
    items = spec["paths"]["/v1/items"]["get"]
    assert next(p for p in items["parameters"] if p["name"] == "limit")["schema"]["maximum"] == 500
    assert c.get("/v1/users/u/recommendations", params={"k": 51}).status_code == 422
