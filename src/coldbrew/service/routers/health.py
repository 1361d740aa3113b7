"""Liveness and metrics: ``GET /healthz``, ``GET /metrics`` (no API key needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from coldbrew.service.state import State

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="liveness and the active model")
def healthz(state: State) -> dict[str, Any]:
    retraining = state.retrainer.running if state.retrainer is not None else None
    return {
        "status": "ok",
        "model_version": state.model_version,
        "items": len(state.model.item_map_),
        "store": type(state.store).__name__,
        "retraining": retraining is not None,
        # "starting" until the scoring process has loaded its replica, "off" when disabled or gone
        "scoring_process": ("on" if state.scorer is not None and state.scorer.alive else
                            "starting" if state.extras.get("scorer_starting") else "off"),
    }


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"description": "the Prometheus text exposition format",
                             "content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics(state: State) -> Response:
    body, content_type = state.metrics.render()
    return Response(content=body, media_type=content_type)
