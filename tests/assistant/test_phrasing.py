"""The optional generative phrasing, against a local stub of an OpenAI-compatible server."""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from coldbrew.assistant import Assistant
from coldbrew.assistant.phrasing import ChatCompletionPhraser
from coldbrew.errors import ConfigError


class _Stub(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Stub.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if self.path.startswith("/broken"):
            self.send_response(500)
            self.end_headers()
            return
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        if self.path.startswith("/empty"):
            payload = {"choices": [{"message": {"content": "  "}}]}
        else:
            payload = {"choices": [{"message": {"content": "  Some lovely candles,\n picked for you!  "}}]}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def stub_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_server_words_the_answer_products_stay(shop_model, hashing_classifier, stub_url):
    _Stub.requests.clear()
    plain = Assistant(shop_model, classifier=hashing_classifier).reply("p", "show me candles")
    phraser = ChatCompletionPhraser(stub_url, model="tiny", api_key="secret")
    worded = Assistant(shop_model, classifier=hashing_classifier, phraser=phraser).reply("p", "show me candles")
    assert worded.text == "Some lovely candles, picked for you!" and worded.text_source == "llm"
    assert [i.item_id for i in worded.items] == [i.item_id for i in plain.items]
    sent = _Stub.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer secret"
    assert sent["body"]["model"] == "tiny"
    prompt = sent["body"]["messages"][-1]["content"]
    assert plain.text in prompt and plain.items[0].title in prompt and "show me candles" in prompt
    assert "English" in sent["body"]["messages"][0]["content"]
    assert plain.text_source == "template" and phraser.last_error is None


def test_chinese_answers_ask_for_chinese(shop_model, hashing_classifier, stub_url):
    _Stub.requests.clear()
    assistant = Assistant(shop_model, classifier=hashing_classifier, phraser=ChatCompletionPhraser(stub_url + "/v1"))
    assistant.reply("z", "给我看看蜡烛")
    assert "Simplified Chinese" in _Stub.requests[-1]["body"]["messages"][0]["content"]


@pytest.mark.parametrize("path", ["/broken", "/empty", "/slow"])
def test_falls_back_to_the_template(shop_model, hashing_classifier, stub_url, path):
    phraser = ChatCompletionPhraser(stub_url + path, timeout=0.3)
    reply = Assistant(shop_model, classifier=hashing_classifier, phraser=phraser).reply("f", "show me candles")
    template = Assistant(shop_model, classifier=hashing_classifier).reply("f", "show me candles")
    assert reply.text == template.text and reply.text_source == "template"
    assert phraser.last_error


def test_unreachable_server_falls_back():
    phraser = ChatCompletionPhraser("http://127.0.0.1:9", timeout=0.5)
    assert phraser.phrase("Here are 3 candles.", "candles", "en", []) == ("Here are 3 candles.", "template")


@pytest.mark.parametrize(("url", "timeout"), [("ftp://x", 5.0), ("", 5.0), ("http://x", 0.0)])
def test_bad_backend_settings(url, timeout):
    with pytest.raises(ConfigError, match="phrasing backend"):
        ChatCompletionPhraser(url, timeout=timeout)


def test_cli_phrase_url(shop_model, stub_url, tmp_path, monkeypatch, capsys):
    from coldbrew.cli import main
    from coldbrew.storage import save_model

    save_model(shop_model, tmp_path / "model")
    monkeypatch.setattr("sys.stdin", io.StringIO("show me candles\n"))
    assert main(["chat", "--model", str(tmp_path / "model"), "--json", "--phrase-url", stub_url]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["text_source"] == "llm" and reply["items"]
