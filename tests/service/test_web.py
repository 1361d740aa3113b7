"""The web router: the page and its static files, served from the package, nothing external."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("fastapi", reason="the service needs the server extra: pip install 'coldbrew[server]'")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from coldbrew.service.routers import ROUTER_MODULES, web  # noqa: E402


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.include_router(web.router)
    return TestClient(app)


def test_web_is_a_router_module() -> None:
    assert "web" in ROUTER_MODULES


def test_page_and_static_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/static/app.js"' in page.text and '<link rel="stylesheet" href="/static/style.css">' in page.text
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css"), ("index.html", "text/html")):
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind), name
        assert len(answer.content) > 1000


@pytest.mark.parametrize("name", ["missing.js", "..%2Fweb.py", "__init__.py", "web.py"])
def test_other_files_are_not_served(client: TestClient, name: str) -> None:
    answer = client.get(f"/static/{name}")
    assert answer.status_code == 404
    assert "APIRouter" not in answer.text
    if "%2F" not in name:  # an encoded slash never reaches the route at all
        assert answer.json()["error"]["field"] == "name"


def test_page_loads_nothing_from_outside(client: TestClient) -> None:
    external = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import|fetch\(\s*["']https?:""")
    for name in web.STATIC_FILES:
        text = client.get(f"/static/{name}").text
        assert not external.search(text), (name, external.search(text))
    script = client.get("/static/app.js").text
    # server text is only ever inserted as text, never parsed as markup
    assert not re.search(r"\.(?:inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", script)
