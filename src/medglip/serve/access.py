"""Who may call the service, how often, from which web pages, and the audit log of what they asked.

:class:`AccessMiddleware` (one ASGI layer, settings in :class:`~.config.AccessConfig`):

- API keys: with keys configured, every path but the page (``/``, ``/static/``) and ``/healthz``
  needs ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; otherwise 401. The given key's
  SHA-256 is compared with every configured key's with :func:`hmac.compare_digest` (no early exit,
  so the time does not tell how close a guess was).
- Cross-site requests: a ``POST`` whose ``Origin`` header is neither the service's own origin nor in
  ``cors_origins`` is refused (403): a web page the user visits cannot make their browser upload to
  the service (browsers send ``Origin`` with every cross-origin POST; ``curl`` and scripts send none).
- Rate limits: a token bucket per API key name (per client address without keys): ``rate_burst``
  requests at once, then ``rate_per_minute``; over it, 429 with ``Retry-After``.
- Audit log: one JSON line per ``/v1`` request and per refused request on the ``medglip.audit``
  logger (and the ``audit_log`` file): time, key name, client address, method, path, status,
  milliseconds, bytes in, and what the route noted with :func:`audit_note` — the upload's SHA-256
  (first 16 hex digits), its kind and size, the phrases / findings asked for, the question's length.
  Never the image, the file name, the question text or any DICOM attribute (patient names live there).

:func:`load_api_keys` reads keys from a file (``name key`` or ``name:key`` per line, ``#`` comments)
or from ``MEDGLIP_API_KEYS`` (``name:key,name:key``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import MedglipError
from . import redact
from .config import AccessConfig
from .middleware import send_json

audit_log = logging.getLogger("medglip.audit")

ENV_KEYS = "MEDGLIP_API_KEYS"
PUBLIC_PATHS = ("/", "/healthz", "/favicon.ico")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def load_api_keys(path: str | Path | None = None, *, env: dict[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """API keys as ``(name, key)`` pairs from ``path`` or, without one, from ``MEDGLIP_API_KEYS``.

    A line (or a comma-separated item of the variable) is ``name key``, ``name:key`` or a bare key
    (named ``key1``, ``key2``, ...). Raises :class:`MedglipError` naming the file and line of a bad entry.
    """
    if path is not None:
        p = Path(path)
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise MedglipError(f"{p}: cannot read the API keys file ({exc.strerror or exc})") from None
        where = str(p)
    else:
        lines = (env if env is not None else os.environ).get(ENV_KEYS, "").split(",")
        where = ENV_KEYS
    keys: list[tuple[str, str]] = []
    for n, line in enumerate(lines, start=1):
        item = line.split("#", 1)[0].strip() if path is not None else line.strip()
        if not item:
            continue
        parts = item.replace(":", " ", 1).split() if (":" in item or " " in item) else [f"key{len(keys) + 1}", item]
        if len(parts) != 2:
            raise MedglipError(f"{where}: entry {n} is not 'name key' (or 'name:key')")
        keys.append((parts[0], parts[1]))
    return tuple(keys)


def audit_note(request: Any, **fields: Any) -> None:
    """Add ``fields`` to the audit record of ``request`` (a Starlette request; kept in its scope)."""
    request.scope.setdefault("state", {}).setdefault("audit", {}).update(fields)


class _Buckets:
    """Token buckets per caller: ``burst`` tokens, refilled at ``per_minute / 60`` per second."""

    def __init__(self, per_minute: int, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.state: dict[str, tuple[float, float]] = {}

    def take(self, who: str) -> float:
        """0 when ``who`` may go on, else the seconds until a token is free."""
        now = time.monotonic()
        tokens, then = self.state.get(who, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self.state[who] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self.state[who] = (tokens - 1.0, now)
        if len(self.state) > 10_000:  # forget callers that have been idle long enough to be full again
            full = self.burst / self.rate
            self.state = {k: v for k, v in self.state.items() if now - v[1] < full}
        return 0.0


class AccessMiddleware:
    """API keys, the cross-site check, rate limits and the audit log (module docstring)."""

    def __init__(self, app: Any, *, access: AccessConfig, counters: dict[str, Any] | None = None) -> None:
        self.app = app
        self.access = access
        self.digests = [(name, hashlib.sha256(key.encode()).digest()) for name, key in access.api_keys]
        redact.register(*(key for _, key in access.api_keys))  # a key quoted anywhere in a log is redacted
        self.buckets = _Buckets(access.rate_per_minute, access.rate_burst) if access.rate_per_minute else None
        self.allowed_origins = set(access.cors_origins)
        self.counters = counters if counters is not None else {}
        for name in ("unauthorized", "forbidden_origin", "rate_limited"):
            self.counters.setdefault(name, 0)
        if access.audit_log and not any(getattr(h, "_medglip_audit", False) for h in audit_log.handlers):
            handler = logging.FileHandler(access.audit_log, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(message)s"))
            handler._medglip_audit = True  # type: ignore[attr-defined]  # our mark on a stdlib handler
            audit_log.addHandler(handler)
        audit_log.setLevel(logging.INFO)

    def identify(self, scope: Scope) -> str | None:
        """The name of the API key the request carries (None: none or a wrong one)."""
        given = _bearer(scope)
        if given is None:
            return None
        digest = hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest()
        found = None
        for name, want in self.digests:  # every key is compared: no early exit
            if hmac.compare_digest(digest, want) and found is None:
                found = name
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        path, method = scope["path"], scope["method"]
        public = path in PUBLIC_PATHS or path.startswith("/static/")
        who = "anonymous"
        status = 0

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        if self.digests and not public and method != "OPTIONS":
            name = self.identify(scope)
            if name is None:
                self.counters["unauthorized"] += 1
                await send_json(
                    recording_send,
                    401,
                    "authorization: this server needs an API key: send "
                    "'Authorization: Bearer <key>' (or 'X-API-Key: <key>')",
                    [(b"www-authenticate", b'Bearer realm="medglip"')],
                )
                self._audit(scope, "unknown", status, t0)
                return
            who = name
        if method not in SAFE_METHODS and not self._origin_allowed(scope):
            self.counters["forbidden_origin"] += 1
            await send_json(
                recording_send,
                403,
                "origin: cross-site requests are refused; this page's origin is not "
                "in the server's CORS allow-list (--cors-origin)",
            )
            self._audit(scope, who, status, t0)
            return
        if self.buckets is not None and not public:
            caller = who if self.digests else f"ip:{_client(scope)}"
            wait = self.buckets.take(caller)
            if wait > 0:
                self.counters["rate_limited"] += 1
                retry = [(b"retry-after", str(max(1, round(wait))).encode())]
                await send_json(
                    recording_send,
                    429,
                    f"rate limit: more than {self.access.rate_per_minute} requests per minute; retry in {wait:.0f} s",
                    retry,
                    close=False,
                )
                self._audit(scope, who, status, t0)
                return
        scope.setdefault("state", {})["caller"] = who
        try:
            await self.app(scope, receive, recording_send)
        finally:
            if path.startswith("/v1/"):
                self._audit(scope, who, status, t0)

    def _origin_allowed(self, scope: Scope) -> bool:
        origin = _header(scope, b"origin")
        if origin is None:
            return True  # not a browser page (or a same-origin navigation of an old browser)
        if origin in self.allowed_origins:
            return True
        host = _header(scope, b"host")
        netloc = urlsplit(origin).netloc if origin != "null" else None
        return bool(host and netloc and netloc.lower() == host.lower())

    def _audit(self, scope: Scope, who: str, status: int, t0: float) -> None:
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "who": who,
            "client": _client(scope),
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "ms": round(1000 * (time.perf_counter() - t0), 1),
            "bytes_in": _content_length(scope),
        }
        record.update(scope.get("state", {}).get("audit", {}))
        audit_log.info(json.dumps(record, ensure_ascii=True, default=str))


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v.decode("latin-1")
    return None


def _bearer(scope: Scope) -> str | None:
    auth = _header(scope, b"authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return _header(scope, b"x-api-key")


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    return int(value) if value and value.isdigit() else None
