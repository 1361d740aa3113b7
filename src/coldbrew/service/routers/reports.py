"""The latest evaluation report (``coldbrew evaluate --out DIR``), served from ``--report-dir``.

``GET /v1/reports/latest``: the ``report.json`` content plus ``plots`` (URLs) and
``markdown``; the newest report in the directory or its sub-directories. Plot images are
served without an API key so that ``<img src>`` works in a browser.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from coldbrew.service.auth import require_read
from coldbrew.service.errors import ApiError
from coldbrew.service.state import ServiceState, State

router = APIRouter(tags=["reports"])

_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}\.png$")


def _latest(state: ServiceState) -> Path:
    root = state.settings.report_dir
    if root is None:
        raise ApiError(404, "no report directory configured: start the server with --report-dir DIR", "report_dir")
    found = [p for p in [root / "report.json", *root.glob("*/report.json")] if p.is_file()]
    if not found:
        raise ApiError(404, f"no evaluation report in {root.name}/: run `coldbrew evaluate --out DIR`", "report_dir")
    return max(found, key=lambda p: p.stat().st_mtime).parent


@router.get("/v1/reports/latest", dependencies=[Depends(require_read)],
            summary="the latest evaluation report (report.json + plot URLs + markdown)")
def latest(state: State) -> dict[str, Any]:
    directory = _latest(state)
    try:
        report = json.loads((directory / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ApiError(404, f"the latest report is unreadable ({exc})", "report_dir") from None
    if not isinstance(report, dict):
        report = {"report": report}
    md = directory / "report.md"
    plots = sorted(p.name for p in directory.glob("*.png") if _FILE.match(p.name))
    return {**report, "plots": [f"/v1/reports/files/{name}" for name in plots],
            "markdown": md.read_text(encoding="utf-8") if md.is_file() else None}


@router.get("/v1/reports/files/{name}", summary="a plot of the latest report (PNG)", response_class=FileResponse,
            dependencies=[Depends(require_read)],
            responses={200: {"description": "the plot", "content": {"image/png": {"schema": {"type": "string",
                                                                                          "format": "binary"}}}}})
def report_file(state: State, name: Annotated[str, PathParam(max_length=204)]) -> FileResponse:
    if not _FILE.match(name):
        raise ApiError(404, f"no such plot {name!r}: plot names end in .png", "name")
    path = _latest(state) / name
    if not path.is_file():
        raise ApiError(404, f"no such plot {name!r} in the latest report", "name")
    return FileResponse(path, media_type="image/png")
