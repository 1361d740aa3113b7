"""API keys and rate limits: FastAPI dependencies for the read and write scopes.

Clients send ``X-API-Key: KEY``. A write key also grants read. With no key configured the
API is open (``coldbrew serve`` warns). Missing key: 401; a key that is unknown or lacks the
scope: 403.

Keys are compared in constant time: the SHA-256 digests of the sent key and of *every*
configured key (read and write) are compared with :func:`hmac.compare_digest`, whatever the
key sent, so neither the time taken nor an early exit tells which key (or how long a key) is
close. Keys are never logged nor echoed in an error body.

With ``settings.rate_limit`` set, each API key has a token bucket (``rate_limit`` requests per
second, ``rate_burst`` at once); requests without a valid key (the open API, a missing or
wrong key) share one bucket per client IP, so that guessing keys is limited too. Over the
limit: 429 with ``Retry-After`` (seconds) and the JSON error shape.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

__all__ = ["require_read", "require_write", "API_KEY_HEADER", "TokenBuckets"]

API_KEY_HEADER = "X-API-Key"
# Declared for the OpenAPI page ("Authorize" button); checked by the functions below.
_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="read or write API key")
_LIMITER = "rate_limiter"
_LIMITER_LOCK = threading.Lock()


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _matches(key: str, keys: tuple[str, ...]) -> bool:
    # compare_digest of equal-length digests against every key, no early exit: the time taken
    # reveals neither which key is close nor the length of any key
    sent = _digest(key)
    found = False
    for candidate in keys:
        found |= hmac.compare_digest(sent, _digest(candidate))
    return found


class TokenBuckets:
    """One token bucket per client identity: ``rate`` tokens a second, at most ``burst``.

    ``take(identity)`` returns ``0.0`` when a request may go, else the seconds until a token
    is back. Idle buckets (full again) are dropped once more than ``max_clients`` are kept.
    """

    def __init__(self, rate: float, burst: int, max_clients: int = 10_000) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # identity -> (tokens, updated at)
        self._lock = threading.Lock()

    def take(self, identity: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, updated = self._buckets.get(identity, (self.burst, now))
            tokens = min(self.burst, tokens + (now - updated) * self.rate)
            if tokens >= 1.0:
                self._buckets[identity] = (tokens - 1.0, now)
                if len(self._buckets) > self.max_clients:
                    self._prune(now)
                return 0.0
            self._buckets[identity] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = [k for k, (t, u) in self._buckets.items() if t + (now - u) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]


def _limiter(request: Request) -> TokenBuckets | None:
    state = request.app.state.coldbrew
    settings = state.settings
    if not settings.rate_limit:
        return None
    limiter = state.extras.get(_LIMITER)
    if limiter is None:
        with _LIMITER_LOCK:
            limiter = state.extras.setdefault(_LIMITER, TokenBuckets(settings.rate_limit, settings.rate_burst))
    return limiter


def _limit(request: Request, identity: str) -> None:
    limiter = _limiter(request)
    if limiter is None:
        return
    wait = limiter.take(identity)
    if wait > 0:
        retry = max(1, math.ceil(wait))
        who = "this API key" if identity.startswith("key:") else "this client"
        raise HTTPException(
            status_code=429,
            detail={"message": f"rate limit exceeded: {who} may send {limiter.rate:g} requests per second"
                    f" (bursts of {limiter.burst:g}); retry in {retry} s", "field": API_KEY_HEADER},
            headers={"Retry-After": str(retry)},
        )


def _client_identity(request: Request) -> str:
    client = request.client
    return f"ip:{client.host if client is not None else 'unknown'}"


def _check(request: Request, key: str | None, write: bool) -> None:
    settings = request.app.state.coldbrew.settings
    if not settings.auth_enabled:
        _limit(request, _client_identity(request))
        return
    scope = "write" if write else "read"
    if not key:
        _limit(request, _client_identity(request))
        raise HTTPException(
            status_code=401,
            detail={"message": f"missing API key: send a {scope} key in the {API_KEY_HEADER} header",
                    "field": API_KEY_HEADER},
        )
    # both sets always compared: the time taken does not depend on the key's scope either
    is_write = _matches(key, settings.write_keys)
    is_read = _matches(key, settings.read_keys)
    if is_write or (is_read and not write):
        # the bucket is named by a digest: the key itself is kept nowhere new
        _limit(request, "key:" + _digest(key).hex()[:32])
        return
    _limit(request, "key:" + _digest(key).hex()[:32] if is_read else _client_identity(request))
    raise HTTPException(
        status_code=403,
        detail={"message": "this API key has read access only; this request needs a write key"
                if is_read else f"invalid API key in the {API_KEY_HEADER} header",
                "field": API_KEY_HEADER},
    )


async def require_read(request: Request, key: str | None = Security(_scheme)) -> None:
    """Dependency: the request carries a read or write key (or the API is open)."""
    _check(request, key, write=False)


async def require_write(request: Request, key: str | None = Security(_scheme)) -> None:
    """Dependency: the request carries a write key (or the API is open)."""
    _check(request, key, write=True)
