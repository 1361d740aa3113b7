"""The app factory: ``create_app(settings)`` assembles the routers; resources load in lifespan.

Nothing happens at import. Start-up (in ``lifespan``): open the event store, load the active
model version, seed an empty store from ``settings.seed_events``, replay the catalog changes
made through the API (added, patched, deleted items survive restarts). On a shared
PostgreSQL store, a :class:`~coldbrew.service.replicas.ReplicaFollower` then keeps this
process in line with the other replicas (their catalog changes and retrained versions).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from coldbrew.service.settings import ServiceSettings

__all__ = ["create_app", "seed_store"]

log = logging.getLogger("coldbrew.service")
_SEED_BATCH = 50_000


def seed_store(state: Any, path: Any) -> int:
    """Load an events file into the store (user IDs pseudonymised if configured); returns count."""
    import numpy as np

    from coldbrew.data import load_events
    from coldbrew.storage.event_store import StoredEvent

    events, report = load_events(path, state.model.config.columns, on_bad_rows="skip")
    log.info("%s", report.summary())
    total = 0
    for start in range(0, len(events), _SEED_BATCH):
        part = events.take(np.arange(start, min(start + _SEED_BATCH, len(events))))
        rows = [
            StoredEvent(state.user_key(str(u)), str(i), int(t), str(e), None if v != v else float(v))
            for u, i, t, e, v in zip(part.user_ids, part.item_ids, part.timestamps, part.events, part.values)
        ]
        total += state.store.append(rows)
    return total


def create_app(settings: ServiceSettings, model: Any = None) -> Any:
    """Build the FastAPI app.

    Parameters
    ----------
    settings: the service settings.
    model: an already loaded ``Recommender`` to serve as version ``v0`` (tests); default:
        load the active version of ``settings.model_dir``.
    """
    from fastapi import FastAPI

    from coldbrew import __version__
    from coldbrew.service.errors import BodyLimitMiddleware, document_errors, install_error_handlers
    from coldbrew.service.metrics import MetricsMiddleware, ServiceMetrics
    from coldbrew.service.routers import ROUTER_MODULES

    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = _start(settings, model, metrics)
        app.state.coldbrew = state
        try:
            yield
        finally:
            replicas = state.extras.get("replicas")
            if replicas is not None:
                replicas.close()
            state.batcher.close()  # queued requests are answered before the store closes
            state.extras["closing"] = True
            if state.scorer is not None:
                state.scorer.close()
            state.store.close()

    docs_assets = _offline_docs_assets()
    app = FastAPI(
        title="coldbrew",
        version=__version__,
        description="Cold-start-first product recommendations: events in, recommendations out."
        " Send an API key in the X-API-Key header (read or write scope) when the server has keys.",
        lifespan=lifespan,
        docs_url=None if docs_assets else "/docs",
        redoc_url=None,
    )
    if docs_assets is not None:
        _add_offline_docs(app, docs_assets)
    install_error_handlers(app)
    for name in ROUTER_MODULES:
        module_name = f"coldbrew.service.routers.{name}"
        if importlib.util.find_spec(module_name) is None:  # a router still being written
            log.warning("router module %s is listed but missing; skipped", module_name)
            continue
        app.include_router(importlib.import_module(module_name).router)
    document_errors(app, extra=_ERRORS_WITHOUT_PATH_PARAMETER, maxima={"k": settings.max_k, "limit": _MAX_PAGE})
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


# 404s of operations without a path parameter (those with one all declare 404).
_ERRORS_WITHOUT_PATH_PARAMETER = {
    ("POST", "/v1/events"): {404: "an event names an unknown or deleted item"},
    ("GET", "/v1/reports/latest"): {404: "no report directory configured, or no report in it"},
}
_MAX_PAGE = 500  # the largest catalog page (routers/items.py)


def _offline_docs_assets() -> Any:
    """Swagger UI's files from the ``fastapi-offline`` package, if installed (else ``None``).

    FastAPI's default /docs page loads Swagger UI from a CDN, which a shop's offline server
    cannot reach; served from the package, /docs works without internet.
    """
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    from pathlib import Path

    static = Path(spec.origin).parent / "static"
    return static if (static / "swagger-ui-bundle.js").is_file() else None


def _add_offline_docs(app: Any, assets: Any) -> None:
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse, HTMLResponse

    files = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title="coldbrew API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js", swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
        )

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Any:
        from coldbrew.service.errors import ApiError

        if name not in files:
            raise ApiError(404, f"no such documentation file {name!r}", "name")
        return FileResponse(assets / name, media_type=files[name])


def _start(settings: ServiceSettings, model: Any, metrics: Any) -> Any:
    from coldbrew.service.batching import RecommendBatcher
    from coldbrew.service.replicas import ReplicaFollower, model_base
    from coldbrew.service.retrain import Retrainer, VersionRegistry, load_active_model
    from coldbrew.service.state import ServiceState, freeze_heap, prepare_model
    from coldbrew.storage.event_store import ReplicatedStore, open_store

    registry = VersionRegistry(settings.model_dir, settings.versions_dir)
    loaded = model is None
    store = open_store(settings.db_url)
    try:
        replicated = isinstance(store, ReplicatedStore)
        base = model_base(settings.model_dir) if replicated else ""
        seq, directory = 0, registry.directory("v0")
        if model is not None:
            version = "v0"
        elif replicated:  # the version the other replicas serve, when it descends from this model
            model, version, directory, seq = _load_start_version(registry, store, base)
        else:
            model, version = load_active_model(registry)
        state = ServiceState(settings=settings, store=store, model=model, model_version=version, metrics=metrics)
        if replicated:  # created before the snapshot below: no item write in between is missed
            state.extras["replicas"] = ReplicaFollower(state, store, base, seq, directory)
        # Replicas starting together on an empty database: one seeds it, the others wait and
        # then find it seeded (a shared store offers a lock for this; SQLite needs none).
        exclusive = getattr(store, "exclusive", None)
        with exclusive("seed") if exclusive is not None else contextlib.nullcontext():
            snapshot = store.snapshot(with_events=False)
            if settings.seed_events is not None and snapshot.n_events == 0:
                count = seed_store(state, settings.seed_events)
                log.info("seeded the empty event store with %d events from %s", count, settings.seed_events)
        with state.lock.write():
            state.apply_items(state.model, snapshot.items)
        prepare_model(state.model)  # encoder loaded, scoring caches built: no slow first request
        freeze_heap()
        state.retrainer = Retrainer(state, registry)
        state.batcher = RecommendBatcher(state, pipelined=settings.scoring_process)
        metrics.set_model(version, len(state.model.item_map_))
        if settings.scoring_process and loaded:
            state.extras["restart_scorer"] = lambda: _supervise_scorer(state, registry)
            _supervise_scorer(state, registry)
        if replicated:
            state.extras["replicas"].start()
    except BaseException:
        store.close()
        raise
    return state


def _load_start_version(registry: Any, store: Any, base: str) -> tuple[Any, str, Any, int]:
    """Load the version a replica starts with: ``(model, name, directory, activation number)``.

    Falls back to the local registry's active version when the shared one cannot be loaded.
    """
    from coldbrew.service.replicas import start_version
    from coldbrew.storage import load_model

    version, directory, seq = start_version(store, registry, base)
    try:
        return load_model(directory), version, directory, seq
    except Exception as exc:
        local = str(registry.read()["active"])
        if directory == registry.directory(local):
            raise
        log.warning("cannot load the shared active model version %s from %s (%s); serving %s", version,
                    directory, exc, local)
        return load_model(registry.directory(local)), local, registry.directory(local), seq


# A scoring process that died is started again at most this often (seconds).
RESTART_AFTER_S = 30.0


def _supervise_scorer(state: Any, registry: Any) -> None:
    """Start the scoring process in the background, or start it again after it died.

    Called at start-up and whenever a batch finds no live scoring process; attempts are at
    least ``RESTART_AFTER_S`` apart, one at a time. Until one is up, the server scores.
    """
    guard = state.extras.setdefault("scorer_guard", threading.Lock())
    with guard:
        if state.extras.get("closing") or state.extras.get("scorer_starting"):
            return
        last = state.extras.get("scorer_started_at")
        if last is not None and time.monotonic() - last < RESTART_AFTER_S:
            return
        state.extras["scorer_starting"] = True
        state.extras["scorer_started_at"] = time.monotonic()

    def run() -> None:
        try:
            _attach_scorer(state, registry)
        finally:
            state.extras["scorer_starting"] = False

    threading.Thread(target=run, name="coldbrew-scorer-start", daemon=True).start()


def _attach_scorer(state: Any, registry: Any) -> None:
    """Start a scoring process for the active version and use it.

    The replica starts from the active version and the store's item overlay; changes made
    while it was starting are replayed under the write lock before it takes any batch.
    """
    from coldbrew.service.scoring import ScoringProcess

    version = state.model_version
    replicas = state.extras.get("replicas")  # it knows where a version another replica trained lives
    directory = replicas.directory if replicas is not None else registry.directory(version)
    try:
        scorer = ScoringProcess(state.settings, directory,
                                state.store.snapshot(with_events=False).items)
    except Exception as exc:
        log.warning("no scoring process (%s); recommendations are scored in the server process", exc)
        return
    with state.lock.write():
        if state.extras.get("closing") or state.model_version != version:
            scorer.close()  # shut down, or a retrain swapped the model meanwhile (the next batch retries)
            state.extras["scorer_started_at"] = None
            return
        try:
            scorer.apply(state.store.snapshot(with_events=False).items)
        except Exception as exc:
            log.warning("the scoring process could not catch up (%s); scoring in the server process", exc)
            scorer.close()
            return
        previous, state.scorer = state.scorer, scorer
    if previous is not None:
        previous.close()
    log.info("scoring process %d serves recommendation batches", scorer.pid)
