"""ChatClient against a real local HTTP server imitating /v1/chat/completions: the request it sends,
the reply it reads, and every failure mode as an LLMError naming the endpoint; from_env; ask() with
and without an LLM for open questions."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from medglip.context import context_from_result
from medglip.errors import MedglipError
from medglip.core.pipeline import InputConfig
from medglip.infer.results import GroundingResult, PhraseGrounding
from medglip.vqa import ChatClient, LLMError, LLMNotConfigured, ask
from medglip.vqa.llm import completions_url


class FakeLLM(BaseHTTPRequestHandler):
    """Records each request; replies as the server's ``mode`` says."""

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        srv = self.server
        srv.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        mode = srv.mode
        if mode == "slow":
            time.sleep(1.5)
        status, payload = 200, json.dumps({"choices": [{"message": {"role": "assistant", "content": srv.reply}}]})
        if mode == "500":
            status, payload = 500, '{"error": "model crashed"}'
        elif mode == "garbage":
            payload = "<html>not json"
        elif mode == "no_choices":
            payload = json.dumps({"choices": []})
        data = payload.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeLLM)
    srv.requests, srv.mode, srv.reply = [], "ok", "The tumour is in box 1."
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def fake(server):
    server.requests.clear()
    server.mode, server.reply = "ok", "The tumour is in box 1."
    return server


def base(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def context():
    g = [PhraseGrounding("brain tumor", np.array([[30, 20, 60, 50]], np.float32), np.array([0.9], np.float32)),
         PhraseGrounding("liver", np.zeros((0, 4), np.float32), np.zeros(0, np.float32))]
    return context_from_result(GroundingResult(("brain tumor", "liver"), g, (80, 120), "MR"))


@pytest.mark.parametrize("endpoint", ["http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/",
                                      "http://h:8000/v1/chat/completions"])
def test_endpoint_forms(endpoint):
    assert completions_url(endpoint) == "http://h:8000/v1/chat/completions"
    assert completions_url("https://api.x.org/openai/v2") == "https://api.x.org/openai/v2/chat/completions"
    with pytest.raises(MedglipError, match="not an http"):
        completions_url("localhost:8000")


def test_answer_sends_question_boxes_and_image(fake):
    client = ChatClient(endpoint=base(fake) + "/v1", model="qwen-vl", api_key="sk-test")
    ctx = context()
    image = Image.fromarray(np.zeros((80, 120, 3), np.uint8))
    assert client.answer("Where is the tumour?", ctx, image) == "The tumour is in box 1."
    (req,) = fake.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-test"
    body = json.loads(req["body"])
    assert body["model"] == "qwen-vl"
    system, user = body["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    text = next(p["text"] for p in user["content"] if p["type"] == "text")
    assert "Where is the tumour?" in text and ctx.text_block("qwen") in text and "box 1" in text
    url = next(p["image_url"]["url"] for p in user["content"] if p["type"] == "image_url")
    assert url.startswith("data:image/png;base64,")
    png = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert png.format == "PNG" and png.size == (120, 80)


def test_rewrite_report_and_no_key(fake):
    fake.reply = "Prose report."
    client = ChatClient(endpoint=base(fake), model="m")
    assert client.rewrite_report("# Findings\n- brain tumor (box 1)", context()) == "Prose report."
    (req,) = fake.requests
    assert "Authorization" not in req["headers"]
    body = json.loads(req["body"])
    assert "brain tumor (box 1)" in body["messages"][-1]["content"]


@pytest.mark.parametrize("mode, words", [("500", "HTTP 500"), ("garbage", "not JSON"), ("no_choices", "no choices")])
def test_server_errors_name_the_endpoint(fake, mode, words):
    fake.mode = mode
    client = ChatClient(endpoint=base(fake), model="m")
    with pytest.raises(LLMError, match=words) as exc:
        client.chat([{"role": "user", "content": "hi"}])
    assert client.url in str(exc.value) and isinstance(exc.value, MedglipError)


def test_timeout(fake):
    fake.mode = "slow"
    client = ChatClient(endpoint=base(fake), model="m", timeout=0.3)
    with pytest.raises(LLMError, match="timeout") as exc:
        client.chat([{"role": "user", "content": "hi"}])
    assert client.url in str(exc.value)


def test_connection_refused_names_the_endpoint():
    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ChatClient(endpoint=f"http://127.0.0.1:{port}/v1", model="m", timeout=5)
    with pytest.raises(LLMError, match="cannot connect") as exc:
        client.chat([{"role": "user", "content": "hi"}])
    assert f"127.0.0.1:{port}/v1/chat/completions" in str(exc.value)


def test_from_env(monkeypatch):
    for var in ("MEDGLIP_LLM_ENDPOINT", "MEDGLIP_LLM_MODEL", "MEDGLIP_LLM_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert ChatClient.from_env() is None
    monkeypatch.setenv("MEDGLIP_LLM_ENDPOINT", "http://gpu:8000/v1")
    with pytest.raises(LLMNotConfigured, match="MEDGLIP_LLM_MODEL"):
        ChatClient.from_env()
    monkeypatch.setenv("MEDGLIP_LLM_MODEL", "qwen")
    monkeypatch.setenv("MEDGLIP_LLM_API_KEY", "sk-1")
    c = ChatClient.from_env()
    assert (c.url, c.model, c.api_key) == ("http://gpu:8000/v1/chat/completions", "qwen", "sk-1")
    assert "sk-1" not in repr(c)


def test_not_configured_message_says_how():
    msg = str(LLMNotConfigured())
    for words in ("--llm-endpoint", "--llm-model", "--llm-key", "MEDGLIP_LLM_ENDPOINT", "MEDGLIP_LLM_MODEL",
                  "MEDGLIP_LLM_API_KEY"):
        assert words in msg


class BoxGrounder:
    """Fake grounder: one fixed box per phrase, on an 80 × 120 picture (``ground_file``, as ask uses)."""

    input_config = InputConfig()

    def threshold_for(self, phrase):
        return 0.3

    def __init__(self):
        self.calls = []

    def ground_file(self, image, phrases, *, modality=None, masks=False, score_threshold=None, top_k=None):
        self.calls.append(list(phrases))
        g = [PhraseGrounding(p, np.array([[30, 20, 60, 50]], np.float32), np.array([0.9], np.float32)) for p in phrases]
        return GroundingResult(tuple(phrases), g, (80, 120), modality or "MR", pixels=np.zeros((80, 120), np.uint8))


def test_ask_open_question_with_and_without_llm(fake):
    fake.reply = "Box 1 looks like a glioma; boxes 1 and 7 are not both real."
    img = np.zeros((80, 120), np.uint8)
    llm = ChatClient(endpoint=base(fake), model="m")
    r = ask(BoxGrounder(), img, "Is the brain tumor enhancing?", modality="MR", llm=llm)
    assert r.question.kind == "open" and r.answer.via == "llm" and r.answer.text == fake.reply
    assert r.answer.evidence == [1]  # box 7 does not exist
    body = json.loads(fake.requests[-1]["body"])
    assert "Is the brain tumor enhancing?" in body["messages"][1]["content"][0]["text"]
    json.dumps(r.to_json())
    bare = ask(BoxGrounder(), img, "Is the brain tumor enhancing?", modality="MR")
    assert bare.answer.via == "unanswered" and "MEDGLIP_LLM_ENDPOINT" in bare.answer.text
    nothing = ask(BoxGrounder(), img, "Describe this image.", modality="MR")  # no phrase: nothing grounded
    assert nothing.answer.via == "unanswered" and nothing.context.findings == []


def test_closed_questions_never_call_the_llm():
    llm = ChatClient(endpoint="http://127.0.0.1:9/v1", model="m", timeout=0.5)  # would fail if called
    g = BoxGrounder()
    r = ask(g, np.zeros((80, 120), np.uint8), "Is there a tumor in the brain?", modality="MR", llm=llm)
    assert r.answer.via == "grounding" and r.answer.value is True and g.calls == [["brain tumor", "brain"]]
