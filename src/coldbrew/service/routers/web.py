"""The web page: ``GET /`` and its static files (``/static/<name>``), plain files from the package.

The page (``static/index.html``, ``app.js``, ``style.css``) is built on the public ``/v1`` API
only and loads nothing from outside the server. The files need no API key: what they show
comes from API calls the page makes with the key the shopper types in.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

__all__ = ["router", "STATIC_FILES"]

router = APIRouter(tags=["web"])

# The only files served: a fixed map, so a request path can never reach other files.
STATIC_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

# The page talks to the API of the same origin and embeds nothing from elsewhere.
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


def _static_dir() -> Path:
    return Path(str(files("coldbrew") / "service" / "static"))


def _file_response(name: str) -> Response:
    content_type = STATIC_FILES.get(name)
    path = _static_dir() / name
    if content_type is None or not path.is_file():
        return JSONResponse(
            {"error": {"message": f"static file {name!r} does not exist (known: {', '.join(sorted(STATIC_FILES))})",
                       "field": "name"}},
            status_code=404,
        )
    return Response(path.read_bytes(), media_type=content_type, headers=_HEADERS)


@router.get("/", include_in_schema=False)
def index() -> Response:
    """The web page."""
    return _file_response("index.html")


@router.get("/static/{name}", include_in_schema=False)
def static_file(name: str) -> Response:
    """One of the page's own files (``app.js``, ``style.css``, ``index.html``)."""
    return _file_response(name)
