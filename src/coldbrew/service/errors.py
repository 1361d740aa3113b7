"""JSON errors: one shape for every 4xx (``{"error": {"message", "field"}}``), never a 500.

Routers raise :class:`ApiError` (or library errors: ``UnknownIdError`` becomes 404,
``DataError``/``ConfigError`` 422); validation errors name the field as a path such as
``events[3].timestamp``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from coldbrew.errors import ConfigError, DataError, UnknownIdError
from coldbrew.storage.event_store import StorageError

__all__ = ["ApiError", "install_error_handlers", "error_body", "BodyLimitMiddleware"]

log = logging.getLogger("coldbrew.service")
# Union tags of the "one or a batch" bodies: not part of the path a client sees.
_TAGS = {"event-batch", "one-event", "item-batch", "one-item"}


class ApiError(Exception):
    """An error for the client: HTTP status, a message naming the field, the field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def error_body(message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "field": field}}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if len(parts) > 1 and parts[0] == "body" and parts[1] in _TAGS:
        del parts[1]
    if parts and parts[0] in ("body", "query", "path", "header"):
        source, parts = parts[0], parts[1:]
        if not parts:
            return source
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def _validation_message(err: dict[str, Any], field: str) -> str:
    kind = err.get("type", "")
    msg = err.get("msg", "invalid value")
    if field == "body" and kind in ("model_attributes_type", "dict_type", "model_type"):
        return "the body must be a JSON object (send Content-Type: application/json)"
    if kind == "missing":
        return f"field '{field}' is required"
    if kind == "extra_forbidden":
        return f"unknown field '{field}'"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return f"field '{field}': {msg}"


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    loc = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        field = "body"
        where = f" at character {loc[1]}" if len(loc) > 1 and isinstance(loc[1], int) else ""
        detail = (first.get("ctx") or {}).get("error", "")
        message = f"malformed JSON body{where}" + (f": {detail}" if detail else "")
    else:
        field = _field_path(loc)
        message = _validation_message(first, field)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return JSONResponse(error_body(message, field), status_code=422)


async def _on_api_error(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(error_body(exc.message, exc.field), status_code=exc.status)


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail
    if isinstance(detail, dict) and "message" in detail:
        body = error_body(str(detail["message"]), detail.get("field"))
    elif exc.status_code == 404:
        body = error_body(f"no such endpoint: {request.method} {request.url.path}", "path")
    elif exc.status_code == 405:
        body = error_body(f"method {request.method} is not allowed on {request.url.path}", "method")
    else:
        body = error_body(str(detail))
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _on_unknown_id(request: Request, exc: UnknownIdError) -> JSONResponse:
    return JSONResponse(error_body(str(exc), "item_id"), status_code=404)


async def _on_data_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_body(str(exc)), status_code=422)


async def _on_storage(request: Request, exc: Exception) -> JSONResponse:
    log.warning("event store unavailable on %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(error_body(f"storage unavailable, nothing was stored; retry later ({exc})", "db"),
                        status_code=503, headers={"Retry-After": "1"})


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body(f"internal error ({type(exc).__name__}); see the server log"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(UnknownIdError, _on_unknown_id)
    app.add_exception_handler(DataError, _on_data_error)
    app.add_exception_handler(ConfigError, _on_data_error)
    app.add_exception_handler(StorageError, _on_storage)
    app.add_exception_handler(Exception, _on_unexpected)


class _TooLarge(HTTPException):
    """Raised while a body streams in past the limit (FastAPI re-raises HTTP exceptions)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, {"message": _too_large(max_bytes), "field": "body"})


def _too_large(max_bytes: int) -> str:
    return f"request body too large: the limit is {max_bytes:,} bytes; send smaller batches"


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, by header or while streaming."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(send)
                    return
        seen = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(error_body(_too_large(self.max_bytes), "body")).encode("utf-8")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
