"""Service settings: one frozen dataclass, filled by ``coldbrew serve`` (or a test)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from coldbrew.errors import ConfigError

__all__ = ["ServiceSettings", "PSEUDONYMISE_KEY_ENV"]

PSEUDONYMISE_KEY_ENV = "COLDBREW_PSEUDONYMISE_KEY"


@dataclass(frozen=True)
class ServiceSettings:
    """Everything the HTTP service is configured with.

    Parameters
    ----------
    model_dir: the model directory written by ``coldbrew fit`` (retrained versions go to
        ``model_dir/versions/``).
    db_url: event store URL, ``sqlite:///path`` or ``postgresql://...``; default
        ``sqlite:///<model_dir>/events.db``.
    read_keys, write_keys: API keys (header ``X-API-Key``). A write key also grants read.
        With no key at all the API is open.
    pseudonymise_key: when set, user IDs are stored as HMAC-SHA256(key, user_id); read from
        the environment variable ``COLDBREW_PSEUDONYMISE_KEY`` by ``serve`` when not given.
    report_dir: directory with an evaluation report (``report.json`` + PNG plots) to serve.
    max_body_bytes: larger request bodies are refused with 413.
    max_k: largest list length a client may ask for (larger: 422).
    max_batch: most events or items in one POST.
    history_limit: most recent events of a user folded into each recommendation.
    seed_events: events file loaded into an empty store at start-up.
    copy_url: an OpenAI-compatible server (``/v1/chat/completions``) that phrases promotion
        copy; ``None`` (default): templates only. Any error falls back to the template.
    keep_versions: retrained version directories kept on disk (the oldest are removed after
        a successful retrain; the active one and ``v0``, the model directory, always stay).
    scoring_process: score recommendation batches in a child process holding a replica of
        the model (:mod:`coldbrew.service.scoring`), so that a second core works beside the
        one serving HTTP; ``serve`` turns it on when the machine has two cores or more.
    rate_limit: requests per second allowed to each API key (a token bucket per key; with no
        keys, or for requests without a valid key, one bucket per client IP). ``0`` (default):
        no limit, as a shop's own backend is usually the only client. Over the limit: 429 with
        a ``Retry-After`` header. ``/healthz``, ``/metrics`` and the web page are never limited.
    rate_burst: the bucket's size, requests a client may send at once after being idle;
        ``0`` (default): one second's worth, ``max(1, ceil(rate_limit))``.
    """

    model_dir: Path
    db_url: str = ""
    read_keys: tuple[str, ...] = ()
    write_keys: tuple[str, ...] = ()
    pseudonymise_key: str | None = None
    report_dir: Path | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_k: int = 1000
    max_batch: int = 10_000
    history_limit: int = 200
    seed_events: Path | None = None
    copy_url: str | None = None
    keep_versions: int = 3
    scoring_process: bool = False
    rate_limit: float = 0.0
    rate_burst: int = 0
    versions_dir: Path = field(default=Path(""))

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_dir", Path(self.model_dir))
        if not self.db_url:
            object.__setattr__(self, "db_url", f"sqlite:///{self.model_dir / 'events.db'}")
        if self.versions_dir == Path(""):
            object.__setattr__(self, "versions_dir", self.model_dir / "versions")
        if self.report_dir is not None:
            object.__setattr__(self, "report_dir", Path(self.report_dir))
        if self.seed_events is not None:
            object.__setattr__(self, "seed_events", Path(self.seed_events))
        object.__setattr__(self, "read_keys", tuple(self.read_keys))
        object.__setattr__(self, "write_keys", tuple(self.write_keys))
        for name in ("max_body_bytes", "max_k", "max_batch", "history_limit", "keep_versions"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"service setting {name} must be at least 1, got {getattr(self, name)}")
        rate = float(self.rate_limit)
        if not math.isfinite(rate) or rate < 0:
            raise ConfigError(f"service setting rate_limit must be a number >= 0 (0: off), got {self.rate_limit}")
        if int(self.rate_burst) < 0:
            raise ConfigError(f"service setting rate_burst must be >= 0 (0: one second's worth), got {self.rate_burst}")
        object.__setattr__(self, "rate_limit", rate)
        if self.rate_burst == 0 and rate > 0:
            object.__setattr__(self, "rate_burst", max(1, math.ceil(rate)))
        if any(not k for k in self.read_keys + self.write_keys):
            raise ConfigError("service setting read_keys/write_keys: an API key must not be empty")
        if self.pseudonymise_key is not None and len(self.pseudonymise_key) < 16:
            raise ConfigError("service setting pseudonymise_key: use at least 16 characters")

    @property
    def auth_enabled(self) -> bool:
        """Whether any API key is configured (otherwise the API is open)."""
        return bool(self.read_keys or self.write_keys)

    @staticmethod
    def key_from_env() -> str | None:
        """The pseudonymisation key from ``COLDBREW_PSEUDONYMISE_KEY`` (``None`` when unset)."""
        return os.environ.get(PSEUDONYMISE_KEY_ENV) or None
