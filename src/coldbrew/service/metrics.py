"""Prometheus metrics of one app (its own registry, never the process-global one).

Exposed at ``GET /metrics``: request counts and latency histograms by route template,
events ingested, items written, and the active model version.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["ServiceMetrics", "MetricsMiddleware"]

# Latency buckets in seconds: fine below 50 ms, where recommendations should live.
_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServiceMetrics:
    """The service's Prometheus collectors in a private ``CollectorRegistry``."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "coldbrew_http_requests", "HTTP requests by method, route template and status",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "coldbrew_http_request_duration_seconds", "time to answer, by method and route template",
            ["method", "route"], buckets=_BUCKETS, registry=self.registry,
        )
        self.events = Counter(
            "coldbrew_events_ingested", "events stored durably", registry=self.registry,
        )
        self.items = Counter(
            "coldbrew_items_written", "catalog writes by kind (added, updated, deleted)",
            ["kind"], registry=self.registry,
        )
        self.model_info = Info("coldbrew_model", "the active model version", registry=self.registry)
        self.model_items = Gauge("coldbrew_model_items", "items in the active model", registry=self.registry)
        self.model_swaps = Counter("coldbrew_model_swaps", "model hot swaps after a retrain", registry=self.registry)
        self.batch_size = Histogram(
            "coldbrew_recommend_batch_size", "requests answered by one batched model call",
            buckets=(1, 2, 4, 8, 16, 32), registry=self.registry,
        )
        self.retrains = Counter(
            "coldbrew_retrains", "finished retrain jobs by outcome", ["outcome"], registry=self.registry,
        )

    def set_model(self, version: str, n_items: int) -> None:
        self.model_info.info({"version": version})
        self.model_items.set(n_items)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Count and time every HTTP request by its route template (``/v1/users/{user_id}/...``)."""

    def __init__(self, app: Any, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def tracking_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("unmatched" if status == 404 else "other")
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
