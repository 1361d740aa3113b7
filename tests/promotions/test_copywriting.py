"""Promotion copy: bilingual templates; the chat-completions backend against a local stub."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from coldbrew.errors import ConfigError, DataError
from coldbrew.promotions import ChatCompletionCopywriter, ProductFacts, TemplateCopywriter

FACTS = ProductFacts("TRAIL RUNNING SHOES", "Sport>Running", 50.0, 20, ("running",))


def test_english_templates_use_the_facts() -> None:
    text, source = TemplateCopywriter().write(FACTS, "en", seed="p1:u1")
    assert source == "template"
    assert "Trail running shoes" in text and "running" in text.lower()
    assert "20% off" in text and "£40.00" in text and "£50.00" in text
    plain, _ = TemplateCopywriter().write(ProductFacts("Tea pot", "Food>Tea", 20.0), "en", seed="x")
    assert "Tea pot" in plain and "£20.00" in plain and "off" not in plain


def test_chinese_templates() -> None:
    text, _ = TemplateCopywriter().write(ProductFacts("跑鞋", "运动>跑步", 50.0, 25, ("跑步",)), "zh", seed="a")
    assert "跑鞋" in text and "7.5折" in text and "£37.50" in text and "跑步" in text
    text, _ = TemplateCopywriter().write(ProductFacts("茶壶", "食品>茶", 20.0), "zh", seed="b")
    assert "茶壶" in text and "£20.00" in text
    with pytest.raises(DataError, match="language"):
        TemplateCopywriter().write(FACTS, "de")


def test_templates_are_stable_per_seed_and_vary_across_seeds() -> None:
    writer = TemplateCopywriter()
    assert writer.write(FACTS, "en", "s")[0] == writer.write(FACTS, "en", "s")[0]
    assert len({writer.write(FACTS, "en", f"s{i}")[0] for i in range(30)}) > 1


class _Stub(BaseHTTPRequestHandler):
    mode = "ok"
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Stub.received.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if _Stub.mode == "slow":
            time.sleep(1.0)
        if _Stub.mode == "error":
            self.send_response(500)
            self.end_headers()
            return
        payload = {"choices": [{"message": {"role": "assistant", "content": "  Run further in  comfort!  "}}]}
        if _Stub.mode == "garbage":
            payload = {"unexpected": True}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Stub.mode, _Stub.received = "ok", []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_generative_backend_phrases_the_copy(stub: str) -> None:
    writer = ChatCompletionCopywriter(stub, model="tiny", api_key="k", timeout=5)
    text, source = writer.write(FACTS, "en", seed="p")
    assert (text, source) == ("Run further in comfort!", "llm")
    sent = _Stub.received[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer k"
    assert sent["body"]["model"] == "tiny"
    prompt = sent["body"]["messages"][-1]["content"]
    assert "TRAIL RUNNING SHOES" in prompt and "£50.00" in prompt and "20%" in prompt and "running" in prompt
    zh = ChatCompletionCopywriter(stub + "/v1")
    zh.write(FACTS, "zh")
    assert _Stub.received[1]["path"] == "/v1/chat/completions"
    assert "Chinese" in _Stub.received[1]["body"]["messages"][0]["content"]


@pytest.mark.parametrize("mode", ["error", "garbage", "slow"])
def test_any_backend_failure_falls_back_to_the_template(stub: str, mode: str) -> None:
    _Stub.mode = mode
    writer = ChatCompletionCopywriter(stub, timeout=0.3)
    text, source = writer.write(FACTS, "en", seed="p1:u1")
    assert source == "template"
    assert text == TemplateCopywriter().write(FACTS, "en", seed="p1:u1")[0]
    assert writer.last_error


def test_unreachable_backend_falls_back() -> None:
    writer = ChatCompletionCopywriter("http://127.0.0.1:9", timeout=0.5)
    assert writer.write(FACTS, "zh")[1] == "template"
    with pytest.raises(ConfigError, match="url"):
        ChatCompletionCopywriter("ftp://x")
