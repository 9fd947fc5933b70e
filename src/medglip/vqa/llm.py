"""A small client for OpenAI-compatible chat endpoints (vLLM, llama.cpp server, Ollama, OpenAI, ...).

Endpoint rule: the client POSTs to ``<base>/chat/completions``, where ``<base>`` is the endpoint
given, with a trailing ``/chat/completions`` dropped and, when the path does not already end in
a version segment (``/v1``, ``/v2``, ...), ``/v1`` appended. So ``http://host:8000``,
``http://host:8000/v1`` and ``http://host:8000/v1/chat/completions`` all reach
``http://host:8000/v1/chat/completions``.

Configuration: ``--llm-endpoint / --llm-model / --llm-key`` on the command line, or the environment
variables ``MEDGLIP_LLM_ENDPOINT``, ``MEDGLIP_LLM_MODEL`` and ``MEDGLIP_LLM_API_KEY``
(:meth:`ChatClient.from_env`).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import MedglipError

if TYPE_CHECKING:
    from PIL import Image

    from ..context import GroundedContext

ENV_ENDPOINT = "MEDGLIP_LLM_ENDPOINT"
ENV_MODEL = "MEDGLIP_LLM_MODEL"
ENV_KEY = "MEDGLIP_LLM_API_KEY"

HOW_TO_CONFIGURE = (
    "configure an OpenAI-compatible chat endpoint: pass --llm-endpoint URL --llm-model NAME [--llm-key KEY] "
    f"on the command line, or set {ENV_ENDPOINT} (e.g. http://localhost:8000/v1), {ENV_MODEL} "
    f"(e.g. Qwen/Qwen2.5-VL-7B-Instruct) and, if the server needs one, {ENV_KEY}"
)

SYSTEM_ANSWER = (
    "You are a careful radiology assistant. You answer questions about one medical image. A grounding "
    "model has located findings on it: they are drawn on the image as numbered boxes and listed in "
    "the text with their coordinates and sizes. Base your answer on the image and those findings; "
    "cite findings as 'box N'. If the image and findings do not allow an answer, say so. Be brief. "
    "This is not a diagnosis."
)
SYSTEM_REPORT = (
    "You are a radiology assistant. Rewrite the draft findings report below into concise, readable "
    "radiology prose. Keep every finding, measurement, side and box number exactly as given; do not "
    "add findings, diagnoses or measurements that are not in the draft; keep the statements of what "
    "was not found. Answer with the rewritten report only."
)

_VERSION = re.compile(r"/v\d+$")


class LLMNotConfigured(MedglipError):
    """A language model is needed (open question, prose report) but no endpoint is configured."""

    def __init__(self, what: str = "this request", *, reason: str = "none is configured") -> None:
        super().__init__(f"{what} needs a language model, but {reason}: {HOW_TO_CONFIGURE}")


class LLMError(MedglipError):
    """The chat endpoint could not be reached or answered with an error or an unreadable reply."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        self.url = url
        self.status = status
        self.reason = reason
        where = f"LLM endpoint {url}" + (f" (HTTP {status})" if status is not None else "")
        super().__init__(f"{where}: {reason}")


def completions_url(endpoint: str) -> str:
    """The ``/chat/completions`` URL of an endpoint (see the module docstring for the rule)."""
    url = str(endpoint).strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url, re.IGNORECASE):
        raise MedglipError(f"LLM endpoint {endpoint!r} is not an http(s) URL (e.g. http://localhost:8000/v1)")
    if url.endswith("/chat/completions"):
        url = url[: -len("/chat/completions")]
    if not _VERSION.search(url):
        url += "/v1"
    return url + "/chat/completions"


def image_data_url(image: Any) -> str:
    """A PIL image (or uint8 array) as a ``data:image/png;base64,...`` URL."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class ChatClient:
    """OpenAI-compatible ``/chat/completions`` client (see the module docstring).

    Args:
        endpoint: base URL, e.g. ``http://localhost:8000/v1``.
        model: the model name the server expects.
        api_key: sent as ``Authorization: Bearer <key>`` when given.
        timeout: seconds per request.
        temperature: sampling temperature sent with every request (None: the server's default).
        max_tokens: reply length limit sent with every request (None: the server's default).
    """

    def __init__(self, *, endpoint: str, model: str, api_key: str | None = None, timeout: float = 60.0,
                 temperature: float | None = 0.0, max_tokens: int | None = 1024) -> None:
        if not model or not str(model).strip():
            raise LLMNotConfigured(f"the LLM endpoint {endpoint}", reason="no model name was given")
        self.endpoint = str(endpoint)
        self.url = completions_url(endpoint)
        self.model = str(model).strip()
        self.api_key = api_key or None
        self.timeout = float(timeout)
        self.temperature = temperature
        self.max_tokens = max_tokens

    def __repr__(self) -> str:  # never print the key
        return f"ChatClient(url={self.url!r}, model={self.model!r}, key={'set' if self.api_key else 'none'})"

    @classmethod
    def from_env(cls) -> "ChatClient | None":
        """A client from ``MEDGLIP_LLM_ENDPOINT`` / ``_MODEL`` / ``_API_KEY``; None when no endpoint is set.

        Raises:
            LLMNotConfigured: an endpoint without a model.
        """
        endpoint = os.environ.get(ENV_ENDPOINT, "").strip()
        if not endpoint:
            return None
        model = os.environ.get(ENV_MODEL, "").strip()
        if not model:
            raise LLMNotConfigured(f"{ENV_ENDPOINT}={endpoint}", reason=f"{ENV_MODEL} is not set")
        return cls(endpoint=endpoint, model=model, api_key=os.environ.get(ENV_KEY, "").strip() or None)

    # ------------------------------------------------------------------ transport
    def chat(self, messages: list[dict]) -> str:
        """Send ``messages`` and return the first choice's text.

        Raises:
            LLMError: connection refused, timeout, HTTP error status, a reply that is not JSON or has
                no choice / no text.
        """
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            resp = httpx.post(self.url, json=body, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException:
            raise LLMError(self.url, f"no answer within {self.timeout:g} s (timeout)") from None
        except httpx.ConnectError as exc:
            raise LLMError(self.url, f"cannot connect ({exc}); is the server running?") from None
        except httpx.HTTPError as exc:
            raise LLMError(self.url, f"request failed: {type(exc).__name__}: {exc}") from None
        if not 200 <= resp.status_code < 300:
            raise LLMError(self.url, f"error reply: {_snippet(resp.text)}", resp.status_code)
        try:
            data = resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise LLMError(self.url, f"reply is not JSON: {_snippet(resp.text)}", resp.status_code) from None
        return _reply_text(data, self.url, resp.status_code)

    # ------------------------------------------------------------------ tasks
    def answer(self, question: str, context: "GroundedContext", image: "Image.Image") -> str:
        """Answer ``question`` about ``image`` (the visual prompt: numbered boxes drawn on it)."""
        n = len(context.findings)
        boxes = (f"The image shows {n} numbered box{'es' if n != 1 else ''} (box 1..{n}), one per finding below."
                 if n else "No finding was located, so no box is drawn.")
        prompt = (f"Question: {question}\n\n{boxes} Coordinates are integers normalised to 0..1000 "
                  f"(x left to right, y top to bottom).\n\nGrounded findings:\n{context.text_block('qwen')}\n\n"
                  "Answer the question; cite the boxes you rely on as 'box N'.")
        content = [{"type": "text", "text": prompt},
                   {"type": "image_url", "image_url": {"url": image_data_url(image)}}]
        return self.chat([{"role": "system", "content": SYSTEM_ANSWER}, {"role": "user", "content": content}])

    def rewrite_report(self, markdown: str, context: "GroundedContext") -> str:
        """Rewrite a draft findings report (markdown) as prose, keeping its facts and box numbers."""
        prompt = (f"Draft report:\n{markdown}\n\nGrounded findings behind it (for reference):\n"
                  f"{context.text_block('plain')}")
        return self.chat([{"role": "system", "content": SYSTEM_REPORT}, {"role": "user", "content": prompt}])


def _snippet(text: str, n: int = 300) -> str:
    text = " ".join(str(text).split())
    return (text[:n] + "...") if len(text) > n else (text or "(empty body)")


def _reply_text(data: Any, url: str, status: int) -> str:
    """The text of ``choices[0].message.content`` (a string, or a list of text parts)."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        err = data.get("error") if isinstance(data, dict) else None
        raise LLMError(url, f"reply has no choices{f' (error: {_snippet(str(err))})' if err else ''}", status)
    first = choices[0] if isinstance(choices[0], dict) else {}
    content = (first.get("message") or {}).get("content") if isinstance(first.get("message"), dict) else None
    if content is None:
        content = first.get("text")  # legacy completions shape
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str) or not content.strip():
        raise LLMError(url, "reply has no message text in choices[0]", status)
    return content.strip()
