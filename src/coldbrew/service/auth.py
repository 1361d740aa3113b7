"""API keys: FastAPI dependencies for the read and write scopes.

Clients send ``X-API-Key: KEY``. A write key also grants read. With no key configured the
API is open (``coldbrew serve`` warns). Missing key: 401; a key that is unknown or lacks the
scope: 403.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

__all__ = ["require_read", "require_write", "API_KEY_HEADER"]

API_KEY_HEADER = "X-API-Key"
# Declared for the OpenAPI page ("Authorize" button); checked by the functions below.
_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="read or write API key")


def _matches(key: str, keys: tuple[str, ...]) -> bool:
    # compare_digest against every key: the time taken does not reveal which key is close
    found = False
    for candidate in keys:
        found |= hmac.compare_digest(key.encode("utf-8"), candidate.encode("utf-8"))
    return found


def _check(request: Request, key: str | None, write: bool) -> None:
    settings = request.app.state.coldbrew.settings
    if not settings.auth_enabled:
        return
    scope = "write" if write else "read"
    if not key:
        raise HTTPException(
            status_code=401,
            detail={"message": f"missing API key: send a {scope} key in the {API_KEY_HEADER} header",
                    "field": API_KEY_HEADER},
        )
    if _matches(key, settings.write_keys):
        return
    if not write and _matches(key, settings.read_keys):
        return
    known = _matches(key, settings.read_keys)
    raise HTTPException(
        status_code=403,
        detail={"message": "this API key has read access only; this request needs a write key"
                if known else f"invalid API key in the {API_KEY_HEADER} header",
                "field": API_KEY_HEADER},
    )


async def require_read(request: Request, key: str | None = Security(_scheme)) -> None:
    """Dependency: the request carries a read or write key (or the API is open)."""
    _check(request, key, write=False)


async def require_write(request: Request, key: str | None = Security(_scheme)) -> None:
    """Dependency: the request carries a write key (or the API is open)."""
    _check(request, key, write=True)
