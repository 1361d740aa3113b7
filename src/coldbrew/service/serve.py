"""``coldbrew serve``: the command-line entry of the HTTP service (argument parsing + start).

Kept apart from ``coldbrew.cli`` so that the CLI imports no web framework: FastAPI and
uvicorn are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

from coldbrew.errors import ConfigError, ModelFormatError

__all__ = ["add_serve_command", "READ_KEYS_ENV", "WRITE_KEYS_ENV", "MaskUserIds", "mask_user_ids"]

READ_KEYS_ENV = "COLDBREW_READ_KEYS"
WRITE_KEYS_ENV = "COLDBREW_WRITE_KEYS"

_DESCRIPTION = """\
Serve a model over HTTP (FastAPI; OpenAPI docs at /docs, web page at /).

Events posted to /v1/events are stored durably (committed before the response) and folded
into the user's next recommendation without retraining. Products added with /v1/items are
recommendable in the next request; deleted or out-of-stock ones never appear again.
POST /v1/models/retrain refits from every stored event in the background and swaps the new
model in atomically; versions are kept in MODEL_DIR/versions/.

Endpoints: POST /v1/events, GET /v1/users/{id}/recommendations, GET /v1/users/{id}/profile,
DELETE /v1/users/{id}, POST /v1/onboarding, POST|GET /v1/items, GET|PATCH|DELETE
/v1/items/{id}, GET /v1/items/{id}/similar, POST /v1/models/retrain, GET /v1/models,
GET /v1/reports/latest, GET /healthz, GET /metrics (Prometheus).
"""

_EPILOG = f"""\
API keys: clients send "X-API-Key: KEY". A write key grants read too. Missing key: 401;
wrong key or read key on a write endpoint: 403. Keys can also come from the environment
(comma-separated): {READ_KEYS_ENV}, {WRITE_KEYS_ENV}; they are kept out of `ps` that way.
Without any key the API is open (a warning is printed).

Storage: --db sqlite:///path/events.db (default MODEL_DIR/events.db; WAL mode, every commit
fsynced) or --db postgresql://user@host:5432/db[?schema=NAME] (needs
pip install 'coldbrew[postgres]'). Catalog changes and onboarding profiles live in the
same database and survive restarts.

Replicas: several `coldbrew serve` processes may share one --db postgresql://... (e.g.
behind a load balancer). Events, onboarding profiles and erasures posted to one are in
every replica's next answer; product changes reach the others within about 0.3 s (each
polls the database every 0.25 s); a retrain done by one is recorded in the database and
loaded by the others from its MODEL_DIR/versions/ directory within 0.25 s plus the load
time, so that directory must be readable by all of them (one machine, or a shared volume
mounted at the same path).

Privacy: with --pseudonymise-key (or COLDBREW_PSEUDONYMISE_KEY) user IDs are stored as
HMAC-SHA256(key, user_id); clients keep using raw IDs (DELETE /v1/users/ID still works).

Rate limit: --rate-limit 20 lets each API key send 20 requests a second (bursts of
--rate-burst, default 20); requests without a valid key share one bucket per client IP.
Over the limit: 429 with a Retry-After header. /healthz and /metrics are not limited.

Example:
  coldbrew fit --catalog items.csv --events events.csv --out model
  coldbrew serve --model model --events events.csv --api-key-write s3cret --port 8000
  curl -H 'X-API-Key: s3cret' localhost:8000/v1/users/42/recommendations?k=10
"""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port between 0 and 65535, got {value}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected requests per second, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of requests per second >= 0, got {text}")
    return value


def add_serve_command(sub: argparse._SubParsersAction) -> None:
    """Register ``serve`` on the CLI's sub-command parser."""
    p = sub.add_parser(
        "serve", help="serve a model over HTTP: events, recommendations, catalog, retraining",
        description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="MODEL_DIR", help="model directory written by `coldbrew fit`")
    p.add_argument("--db", default=None, metavar="URL",
                   help="event store: sqlite:///path.db (default MODEL_DIR/events.db) or postgresql://user@host/db")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000)")
    p.add_argument("--events", default=None, metavar="FILE",
                   help="seed an EMPTY event store with this events file (e.g. the one the model was fitted on),"
                   " so that profiles and retraining start from the shop's history")
    p.add_argument("--api-key-read", action="append", default=[], metavar="KEY",
                   help=f"an API key with read scope (repeatable; also ${READ_KEYS_ENV})")
    p.add_argument("--api-key-write", action="append", default=[], metavar="KEY",
                   help=f"an API key with write (and read) scope (repeatable; also ${WRITE_KEYS_ENV})")
    p.add_argument("--pseudonymise-key", default=None, metavar="KEY",
                   help="store user IDs as HMAC-SHA256(KEY, id) (default: $COLDBREW_PSEUDONYMISE_KEY; off if unset)")
    p.add_argument("--report-dir", default=None, metavar="DIR",
                   help="evaluation report to serve at /v1/reports/latest (a `coldbrew evaluate --out` directory)")
    p.add_argument("--max-body-bytes", type=_count, default=8 * 1024 * 1024, metavar="N",
                   help="larger request bodies get 413 (default 8 MiB)")
    p.add_argument("--max-k", type=_count, default=1000, metavar="K", help="largest list length a client may ask for (default 1000)")
    p.add_argument("--max-batch", type=_count, default=10_000, metavar="N",
                   help="most events or items in one POST (default 10000)")
    p.add_argument("--history-limit", type=_count, default=200, metavar="N",
                   help="most recent events of a user folded into each recommendation (default 200)")
    p.add_argument("--copy-url", default=None, metavar="URL",
                   help="OpenAI-compatible server that phrases promotion copy (/v1/chat/completions);"
                   " templates when unset or on any error")
    p.add_argument("--keep-versions", type=_count, default=3, metavar="N",
                   help="retrained model versions kept on disk (default 3; the active one always stays)")
    p.add_argument("--scoring-process", action=argparse.BooleanOptionalAction, default=None,
                   help="score recommendation batches in a child process holding a replica of the model,"
                   " so a second core works beside the one serving HTTP (default: on with 2 or more cores)")
    p.add_argument("--rate-limit", type=_rate, default=0.0, metavar="PER_S",
                   help="requests per second allowed to each API key (token bucket; requests without a valid"
                   " key: per client IP); over it: 429 with Retry-After (default 0: no limit)")
    p.add_argument("--rate-burst", type=_count, default=None, metavar="N",
                   help="requests a client may send at once (default: one second's worth of --rate-limit)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="server log level (default info)")
    p.add_argument("--access-log", action="store_true", help="log every request (off by default; see /metrics)")
    p.set_defaults(func=_cmd_serve)


# glibc malloc arenas for the server's threads (the default is 8 per core).
_ARENAS = 2
_ARENAS_ENV = "MALLOC_ARENA_MAX"


def _few_malloc_arenas() -> None:
    """Keep the server's memory flat while products are added (glibc only; a no-op elsewhere).

    Each added product replaces the model's item arrays (the 4,635 x 512 text vectors of the
    UCI catalog are 9.5 MB) in whichever worker thread serves the POST, and glibc gives each
    new thread an arena of its own (up to 8 per core), each keeping the space its freed
    arrays held: the server grew by about 200 MB within a minute of mixed traffic
    (benchmarks/run_load.py). Two arenas bound that at no cost in speed (the threads take
    turns under the GIL anyway); a fixed mmap threshold also kept memory flat but made each
    product 40 % slower (page faults of freshly mapped arrays). The scoring process, spawned
    later, inherits the setting through the environment. An explicit ``MALLOC_ARENA_MAX`` is
    left alone.
    """
    if os.environ.get(_ARENAS_ENV) or not sys.platform.startswith("linux"):
        return
    os.environ[_ARENAS_ENV] = str(_ARENAS)
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-8, _ARENAS)  # M_ARENA_MAX, for the threads this process starts
    except (OSError, AttributeError):  # not glibc
        pass


def _env_keys(name: str) -> list[str]:
    return [k.strip() for k in os.environ.get(name, "").split(",") if k.strip()]


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise ConfigError(
            f"coldbrew serve needs the server extra ({exc.name} is not installed): pip install 'coldbrew[server]'"
        ) from None
    from coldbrew.service.app import create_app
    from coldbrew.service.settings import ServiceSettings
    from coldbrew.storage.event_store import open_store

    model_dir = Path(args.model)
    if not (model_dir / "manifest.json").is_file():
        raise ModelFormatError(f"--model {model_dir}: not a model directory (create one with `coldbrew fit`)")
    if args.events is not None and not Path(args.events).is_file():
        raise ConfigError(f"--events {args.events}: file does not exist")
    settings = ServiceSettings(
        model_dir=model_dir, db_url=args.db or "",
        read_keys=tuple(args.api_key_read + _env_keys(READ_KEYS_ENV)),
        write_keys=tuple(args.api_key_write + _env_keys(WRITE_KEYS_ENV)),
        pseudonymise_key=args.pseudonymise_key or ServiceSettings.key_from_env(),
        report_dir=Path(args.report_dir) if args.report_dir else None,
        max_body_bytes=args.max_body_bytes, max_k=args.max_k, max_batch=args.max_batch,
        history_limit=args.history_limit, keep_versions=args.keep_versions, seed_events=Path(args.events) if args.events else None,
        copy_url=args.copy_url, rate_limit=args.rate_limit, rate_burst=args.rate_burst or 0,
        scoring_process=(os.cpu_count() or 1) >= 2 if args.scoring_process is None else args.scoring_process,
    )
    open_store(settings.db_url).close()  # a bad --db fails here with one line, not a traceback
    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    if not settings.auth_enabled:
        say("coldbrew serve: warning: no API keys (--api-key-read/--api-key-write): the API is open to"
            " anyone who can reach it")
    if settings.pseudonymise_key:
        say("coldbrew serve: user IDs are pseudonymised (HMAC-SHA256) before they are stored")

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     coldbrew: %(message)s"))
    service_log = logging.getLogger("coldbrew")
    service_log.addHandler(handler)  # start-up seeding, retrains, unexpected errors
    service_log.setLevel(args.log_level.upper())
    if not any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")):
        # Requests run side by side in worker threads, each fastest on one BLAS thread: the
        # default (one per core) tripled the CPU per recommendation (benchmarks, *Service*).
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
    _few_malloc_arenas()
    app = create_app(settings)
    say(f"coldbrew serve: {model_dir} on http://{args.host}:{args.port} (docs at /docs)")
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log,
                            workers=1, timeout_graceful_shutdown=10)  # configures uvicorn's loggers
    if settings.pseudonymise_key:
        logging.getLogger("uvicorn.access").addFilter(MaskUserIds())
    uvicorn.Server(config).run()
    return 0


_USER_IN_PATH = re.compile(r"(/users/)[^/?#]+")
_USER_IN_QUERY = re.compile(r"([?&]user_id=)[^&#]*")


def mask_user_ids(path: str) -> str:
    """``path`` with the user IDs it holds (``/users/ID``, ``user_id=ID``) replaced by ``{user_id}``."""
    return _USER_IN_QUERY.sub(r"\1{user_id}", _USER_IN_PATH.sub(r"\1{user_id}", path))


class MaskUserIds(logging.Filter):
    """Takes the user IDs out of uvicorn's access log lines (``--access-log``).

    Installed when user IDs are pseudonymised: the store then never holds a raw ID, and
    neither does the log. uvicorn's record args are ``(client, method, path, http, status)``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], mask_user_ids(args[2]), *args[3:])
        return True
