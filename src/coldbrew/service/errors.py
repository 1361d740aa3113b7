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

__all__ = ["ApiError", "install_error_handlers", "error_body", "BodyLimitMiddleware", "document_errors"]

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


def route_of(request: Request) -> str:
    """The route template of a request (``/v1/users/{user_id}/profile``), for logs.

    Never the path itself: it holds user IDs, which must not reach the log in the clear when
    they are pseudonymised in the store.
    """
    route = request.scope.get("route")
    return str(getattr(route, "path", None) or "(no route)")


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
    elif exc.status_code == 400 and detail == _UNPARSABLE:  # FastAPI's answer to a body that is not UTF-8
        body = error_body("malformed request body: it is not UTF-8 encoded JSON", "body")
    elif exc.status_code == 404:
        body = error_body(f"no such endpoint: {request.method} {request.url.path}", "path")
    elif exc.status_code == 405:
        body = error_body(f"method {request.method} is not allowed on {request.url.path}", "method")
    else:
        body = error_body(str(detail))
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


_UNPARSABLE = "There was an error parsing the body"


async def _on_unknown_id(request: Request, exc: UnknownIdError) -> JSONResponse:
    return JSONResponse(error_body(str(exc), "item_id"), status_code=404)


async def _on_data_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_body(str(exc)), status_code=422)


async def _on_storage(request: Request, exc: Exception) -> JSONResponse:
    status = int(getattr(exc, "status", 503))
    retry_after = int(getattr(exc, "retry_after", 1))
    log.warning("event store unavailable on %s %s: %s", request.method, route_of(request), exc)
    what = "storage full" if status == 507 else "storage unavailable"
    return JSONResponse(error_body(f"{what}, nothing was stored; retry later ({exc})", "db"),
                        status_code=status, headers={"Retry-After": str(retry_after)})


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, route_of(request))
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


# ---------------------------------------------------------------------- OpenAPI
_ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}


def document_errors(app: FastAPI, extra: dict[tuple[str, str], dict[int, str]] | None = None,
                    maxima: dict[str, int] | None = None) -> None:
    """Declare every error an operation can answer in ``app``'s OpenAPI schema, with ``ErrorOut``.

    FastAPI documents a 422 as ``HTTPValidationError`` (``{"detail": [...]}``), which this
    service never sends, and nothing else. Here: 422 (invalid field) with ``ErrorOut``; 400
    (body not UTF-8) and 413 (body too large) on operations with a body; 401, 403, 429
    (rate limit) and 503 (event store unavailable) on those that need an API key, and 507
    (event store full) on those of them that write; 404 on
    those with path parameters; ``extra[(METHOD, path)]`` adds more (status -> description).
    ``maxima`` (name -> largest value) declares the limits the routers check at run time (such
    as ``k`` up to ``settings.max_k``) as ``maximum`` on query parameters and body fields.
    """
    from fastapi.openapi.utils import get_openapi

    from coldbrew.service.schemas import ErrorDetailOut, ErrorOut

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        components["ErrorOut"] = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
        components["ErrorOut"].pop("$defs", None)
        components["ErrorDetailOut"] = ErrorDetailOut.model_json_schema()
        for path, operations in spec.get("paths", {}).items():
            for method, op in operations.items():
                responses = op.setdefault("responses", {})
                declared: dict[int, str] = {}
                if "422" in responses or op.get("parameters") or "requestBody" in op:
                    declared[422] = "invalid field (the message and `field` name it)"
                if "requestBody" in op:
                    declared[400] = "malformed body (not UTF-8)"
                    declared[413] = "request body too large, or too many events/items in one batch"
                if op.get("security"):
                    declared[401] = "missing API key (X-API-Key header)"
                    declared[403] = "invalid API key, or a read key on a write endpoint"
                    declared[429] = "rate limit exceeded (see the Retry-After header)"
                    declared[503] = "event store unavailable, nothing was stored (see Retry-After)"
                    if method.lower() != "get":
                        declared[507] = "event store full, nothing was stored (see Retry-After)"
                if "{" in path:
                    declared[404] = "no such resource"
                declared.update((extra or {}).get((method.upper(), path), {}))
                for status, description in declared.items():
                    # a router's own description is kept, except FastAPI's generic one for 422
                    current = responses.get(str(status), {}).get("description") if status != 422 else None
                    responses[str(status)] = _error_response(current or description)
        _declare_maxima(spec, maxima or {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _declare_maxima(spec: dict[str, Any], maxima: dict[str, int]) -> None:
    components = spec.get("components", {}).get("schemas", {})
    bodies: set[str] = set()

    def refs(schema: Any) -> None:
        if isinstance(schema, dict):
            ref = schema.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in bodies:
                    bodies.add(name)
                    refs(components.get(name))
            for value in schema.values():
                refs(value)
        elif isinstance(schema, list):
            for value in schema:
                refs(value)

    for operations in spec.get("paths", {}).values():
        for op in operations.values():
            for param in op.get("parameters", []):
                schema = param.get("schema", {})
                if param.get("in") == "query" and param.get("name") in maxima and schema.get("type") == "integer":
                    schema["maximum"] = maxima[param["name"]]
            refs(op.get("requestBody"))
    for name in bodies:
        for prop, schema in (components.get(name) or {}).get("properties", {}).items():
            if prop in maxima and schema.get("type") == "integer":
                schema["maximum"] = maxima[prop]
