"""Model versions: list them, retrain in the background (hot swap when done)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from coldbrew.service.auth import require_read, require_write
from coldbrew.service.schemas import ModelsOut, RetrainOut
from coldbrew.service.state import State

router = APIRouter(tags=["models"])


@router.post(
    "/v1/models/retrain", response_model=RetrainOut, status_code=202, dependencies=[Depends(require_write)],
    summary="retrain from every stored event and the live catalog, then swap the model in",
)
def retrain(state: State) -> JSONResponse:
    job = state.retrainer.start()
    return JSONResponse({"job_id": job["job_id"], "status": job["status"], "version": job["version"]},
                        status_code=202)


@router.get(
    "/v1/models", response_model=ModelsOut, dependencies=[Depends(require_read)],
    summary="model versions (the active one, retrained ones, a retrain in progress)",
)
def list_models(state: State) -> ModelsOut:
    retrainer = state.retrainer
    registry = retrainer.registry.read()
    active = state.model_version
    versions = []
    for entry in registry["versions"]:
        versions.append({
            "version": str(entry["version"]), "created_at": str(entry.get("created_at", "")),
            "events": int(entry.get("events", 0)), "items": int(entry.get("items", 0)),
            "status": "active" if entry["version"] == active else str(entry.get("status", "ready")),
            "message": entry.get("message"),
        })
    replicas = state.extras.get("replicas")
    if replicas is not None:  # versions other replicas trained (in their own directories)
        known = {v["version"] for v in versions}
        for shared in replicas.versions():
            if shared.version not in known:
                versions.append({
                    "version": shared.version, "created_at": shared.created_at, "events": shared.events,
                    "items": shared.items, "status": "active" if shared.version == active else "ready",
                    "message": None,
                })
    job = retrainer.job
    if job is not None and job["status"] != "done":
        versions.append({"version": job["version"], "created_at": job["created_at"], "events": 0, "items": 0,
                         "status": job["status"], "message": job.get("message")})
    return ModelsOut(active=active, versions=versions)
