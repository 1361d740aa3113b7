"""Service fixtures: a small model of the bundled demo shop, clients, a PostgreSQL schema.

The model is fitted once per session with the tiny ``hashing`` encoder; each test gets its
own copy of the model directory (the service writes events.db and versions/ into it).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PG_URLS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory fitted on the demo shop (52 products, 160 shoppers), hashing encoder."""
    from coldbrew.config import BlendConfig, EncoderConfig, FitConfig
    from coldbrew.data import load_catalog
    from coldbrew.data.events import events_from_frame
    from coldbrew.demo import demo_events, demo_paths
    from coldbrew.pipeline import Recommender
    from coldbrew.storage import save_model

    catalog_path, _ = demo_paths()
    catalog, _ = load_catalog(catalog_path)
    frame = demo_events(list(catalog.item_ids))
    events, _ = events_from_frame(frame)
    root = tmp_path_factory.mktemp("demo_model")
    frame.drop(columns=["taste"]).to_csv(root / "events.csv", index=False)
    config = FitConfig(encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False))
    model = Recommender(config).fit(catalog, events, progress=False)
    save_model(model, root / "model")
    return root / "model"


@pytest.fixture
def model_dir(demo_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the demo model directory."""
    return Path(shutil.copytree(demo_model_dir, tmp_path / "model"))


@pytest.fixture
def demo_events_csv(demo_model_dir: Path) -> Path:
    """The events the demo model was fitted on (CSV: user_id, item_id, timestamp, event)."""
    return demo_model_dir.parent / "events.csv"


@pytest.fixture
def make_client(model_dir: Path) -> Iterator[Callable[..., Any]]:
    """``make_client(**settings)`` -> a started ``TestClient`` (closed after the test)."""
    from fastapi.testclient import TestClient

    from coldbrew.service.app import create_app
    from coldbrew.service.settings import ServiceSettings

    clients: list[Any] = []

    def make(**overrides: Any) -> Any:
        settings = ServiceSettings(model_dir=overrides.pop("model_dir", model_dir), **overrides)
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    """A client of an open (no API keys) service on a fresh copy of the demo model."""
    return make_client()


def _reachable_pg() -> str | None:
    try:
        import psycopg
    except ImportError:
        return None
    for url in PG_URLS:
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.OperationalError:
            continue
    return None


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    """URL of the local PostgreSQL test database; skips when unreachable (fails under CI)."""
    url = _reachable_pg()
    if url is None:
        message = "PostgreSQL is not reachable at 127.0.0.1:5432 (database 'test', trust auth)"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: the PostgreSQL tests must run)")
        pytest.skip(message)
    return url


@pytest.fixture
def pg_url(pg_base_url: str) -> Iterator[str]:
    """A ``postgresql://...?schema=...`` URL with a schema of its own, dropped afterwards."""
    import psycopg

    schema = f"coldbrew_test_{uuid.uuid4().hex[:12]}"
    yield f"{pg_base_url}?schema={schema}"
    with psycopg.connect(pg_base_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each event-store backend in turn: a fresh SQLite file, a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return request.getfixturevalue("pg_url")
