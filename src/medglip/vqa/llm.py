"""A small client for OpenAI-compatible chat endpoints (vLLM, llama.cpp server, Ollama, OpenAI, ...).

Endpoint rule: the client POSTs to ``<base>/chat/completions``, where ``<base>`` is the endpoint
given, with a trailing ``/chat/completions`` dropped and, when the path does not already end in
a version segment (``/v1``, ``/v2``, ...), ``/v1`` appended. So ``http://host:8000``,
``http://host:8000/v1`` and ``http://host:8000/v1/chat/completions`` all reach
``http://host:8000/v1/chat/completions``.

Configuration: ``--llm-endpoint / --llm-model / --llm-key`` on the command line, or the environment
variables ``MEDGLIP_LLM_ENDPOINT``, ``MEDGLIP_LLM_MODEL`` and ``MEDGLIP_LLM_API_KEY``
(:meth:`ChatClient.from_env`).

Secrets: credentials in the endpoint (``http://user:pass@host/v1``) are sent as HTTP Basic auth (unless
an API key is given: it is sent as a Bearer token instead) and removed from the URL the client uses,
logs and shows; the API key goes only into the ``Authorization`` header. :class:`LLMError` texts are
redacted (no credentials, no query string, no ``Bearer`` token, no key, even when the upstream reflects
them in its reply) and carry a short ``public`` summary (``"HTTP 500"``, ``"timeout"``, ...) that a
service may show its clients; httpx's own request log lines are redacted too (:class:`RedactSecrets`).
"""

from __future__ import annotations

import base64
import io
import json
import logging
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
    """The chat endpoint could not be reached or answered with an error or an unreadable reply.

    ``str(exc)`` names the endpoint (credentials and query string removed) and the reason (secrets
    redacted), for logs; ``public`` is a short summary without either, for a service's clients.
    """

    def __init__(
        self,
        url: str,
        reason: str,
        status: int | None = None,
        *,
        kind: str | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.url = public_url(url)
        self.status = status
        self.reason = redact(reason, secrets)
        self.public = kind or (f"HTTP {status}" if status is not None else "error")
        where = f"LLM endpoint {self.url}" + (f" (HTTP {status})" if status is not None else "")
        super().__init__(f"{where}: {self.reason}")


_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_USERINFO = re.compile(r"(?i)\b(https?://)[^/\s@]+@")
_KEYLIKE = re.compile(r"\bsk-[A-Za-z0-9_-]{6,}")


def redact(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` with credentials removed: the given secrets, ``Bearer`` / ``Basic`` tokens, ``user:pass@``
    in URLs and ``sk-...`` keys."""
    out = str(text)
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        out = out.replace(secret, "[redacted]")
    out = _BEARER.sub(lambda m: f"{m.group(1)} [redacted]", out)
    out = _USERINFO.sub(lambda m: f"{m.group(1)}[redacted]@", out)
    return _KEYLIKE.sub("[redacted]", out)


def public_url(url: str) -> str:
    """``url`` without credentials and query string (what may appear in logs and messages)."""
    try:
        u = httpx.URL(str(url))
        return str(u.copy_with(userinfo=b"", query=None, fragment=None))
    except (httpx.InvalidURL, TypeError, ValueError):
        return redact(str(url).split("?", 1)[0])


class RedactSecrets(logging.Filter):
    """A logging filter that removes registered secrets (and bearer tokens, URL credentials) from records;
    installed on the ``httpx`` and ``httpcore`` loggers, which log request URLs at INFO / DEBUG."""

    def __init__(self) -> None:
        super().__init__("medglip-redact")
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own handling
            return True
        clean = redact(msg, tuple(self.secrets))
        if clean != msg:
            record.msg, record.args = clean, ()
        return True


_REDACTOR = RedactSecrets()
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_REDACTOR)


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

    def __init__(
        self,
        *,
        endpoint: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        temperature: float | None = 0.0,
        max_tokens: int | None = 1024,
    ) -> None:
        if not model or not str(model).strip():
            raise LLMNotConfigured(f"the LLM endpoint {public_url(str(endpoint))}", reason="no model name was given")
        url = httpx.URL(completions_url(endpoint))
        # URL credentials become Basic auth (an API key, sent as a Bearer token, takes their place)
        self.auth = httpx.BasicAuth(url.username, url.password) if url.userinfo and not api_key else None
        self.url = str(url.copy_with(userinfo=b""))  # credentials travel as a header, never in the URL
        self.endpoint = public_url(str(endpoint))
        self.model = str(model).strip()
        self.api_key = api_key or None
        self._secrets = tuple(
            s
            for s in (
                self.api_key,
                url.password,
                url.username and url.password and f"{url.username}:{url.password}",
                url.query.decode() or None,
            )
            if s
        )
        _REDACTOR.secrets.update(self._secrets)
        self.timeout = float(timeout)
        self.temperature = temperature
        self.max_tokens = max_tokens

    def __repr__(self) -> str:  # never print the key
        key = "set" if self.api_key else "none"
        return f"ChatClient(url={public_url(self.url)!r}, model={self.model!r}, key={key})"

    @classmethod
    def from_env(cls) -> ChatClient | None:
        """A client from ``MEDGLIP_LLM_ENDPOINT`` / ``_MODEL`` / ``_API_KEY``; None when no endpoint is set.

        Raises:
            LLMNotConfigured: an endpoint without a model.
        """
        endpoint = os.environ.get(ENV_ENDPOINT, "").strip()
        if not endpoint:
            return None
        model = os.environ.get(ENV_MODEL, "").strip()
        if not model:
            raise LLMNotConfigured(f"{ENV_ENDPOINT}={public_url(endpoint)}", reason=f"{ENV_MODEL} is not set")
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
        secrets = self._secrets
        try:
            resp = httpx.post(self.url, json=body, headers=headers, auth=self.auth, timeout=self.timeout)
        except httpx.TimeoutException:
            raise LLMError(self.url, f"no answer within {self.timeout:g} s (timeout)", kind="timeout") from None
        except httpx.ConnectError as exc:
            raise LLMError(
                self.url, f"cannot connect ({exc}); is the server running?", kind="cannot connect", secrets=secrets
            ) from None
        except httpx.HTTPError as exc:
            raise LLMError(
                self.url, f"request failed: {type(exc).__name__}: {exc}", kind="request failed", secrets=secrets
            ) from None
        if not 200 <= resp.status_code < 300:
            raise LLMError(self.url, f"error reply: {_snippet(resp.text)}", resp.status_code, secrets=secrets)
        try:
            data = resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise LLMError(
                self.url,
                f"reply is not JSON: {_snippet(resp.text)}",
                resp.status_code,
                kind="unreadable reply",
                secrets=secrets,
            ) from None
        return _reply_text(data, self.url, resp.status_code, secrets)

    # ------------------------------------------------------------------ tasks
    def answer(self, question: str, context: GroundedContext, image: Image.Image) -> str:
        """Answer ``question`` about ``image`` (the visual prompt: numbered boxes drawn on it)."""
        n = len(context.findings)
        boxes = (
            f"The image shows {n} numbered box{'es' if n != 1 else ''} (box 1..{n}), one per finding below."
            if n
            else "No finding was located, so no box is drawn."
        )
        prompt = (
            f"Question: {question}\n\n{boxes} Coordinates are integers normalised to 0..1000 "
            f"(x left to right, y top to bottom).\n\nGrounded findings:\n{context.text_block('qwen')}\n\n"
            "Answer the question; cite the boxes you rely on as 'box N'."
        )
        content = [{"type": "text", "text": prompt}, {"type": "image_url", "image_url": {"url": image_data_url(image)}}]
        return self.chat([{"role": "system", "content": SYSTEM_ANSWER}, {"role": "user", "content": content}])

    def rewrite_report(self, markdown: str, context: GroundedContext) -> str:
        """Rewrite a draft findings report (markdown) as prose, keeping its facts and box numbers."""
        prompt = (
            f"Draft report:\n{markdown}\n\nGrounded findings behind it (for reference):\n{context.text_block('plain')}"
        )
        return self.chat([{"role": "system", "content": SYSTEM_REPORT}, {"role": "user", "content": prompt}])


def _snippet(text: str, n: int = 300) -> str:
    text = " ".join(str(text).split())
    return (text[:n] + "...") if len(text) > n else (text or "(empty body)")


def _reply_text(data: Any, url: str, status: int, secrets: tuple[str, ...] = ()) -> str:
    """The text of ``choices[0].message.content`` (a string, or a list of text parts)."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        err = data.get("error") if isinstance(data, dict) else None
        raise LLMError(
            url,
            f"reply has no choices{f' (error: {_snippet(str(err))})' if err else ''}",
            status,
            kind="unreadable reply",
            secrets=secrets,
        )
    first = choices[0] if isinstance(choices[0], dict) else {}
    content = (first.get("message") or {}).get("content") if isinstance(first.get("message"), dict) else None
    if content is None:
        content = first.get("text")  # legacy completions shape
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str) or not content.strip():
        raise LLMError(url, "reply has no message text in choices[0]", status, kind="unreadable reply")
    return content.strip()
