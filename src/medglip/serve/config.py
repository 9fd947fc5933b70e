"""Settings of the HTTP service (docs/grounded_api.md, docs/security.md): limits and batching
(:class:`ServiceConfig`), who may call it (:class:`AccessConfig`) and the HTTP server (:class:`ServerSettings`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MedglipError

MiB = 2**20


@dataclass(frozen=True)
class ServiceConfig:
    """What one :func:`medglip.serve.create_app` service accepts and how it batches.

    Attributes:
        max_upload_bytes: largest accepted upload (the file part of a request), in bytes.
        max_pixels: largest 2D image, ``H * W`` pixels (checked from the header before decoding).
        max_voxels: largest volume, ``i * j * k`` voxels.
        max_request_bytes: largest DECODED image of one request, in bytes (values x bytes per value,
            after float64 inputs are read as float32), checked from the header before decoding; also
            the most a zip of a DICOM series may unpack to (plus 64 MiB of headers).
        max_inflight_bytes: decoded bytes of all requests being processed together; a request that
            would go above it answers 503 with ``Retry-After``.
        request_timeout_s: every ``/v1`` request's deadline, from its first byte to its answer (504
            after it; the request's work stops: queued jobs are dropped, the model worker and the
            readers stop at their next check).
        body_timeout_s: longest wait for the next piece of a request body (408 after it).
        io_workers: threads that unpack, parse and decode uploads (a bounded pool; the event loop only
            moves bytes).
        max_phrases: most phrases / findings per request.
        max_phrase_chars: longest phrase, in characters.
        max_question_chars: longest VQA question, in characters.
        max_batch: most images the worker grounds in one batched call.
        batch_wait_ms: how long the worker waits for more same-prompt requests after the first.
        max_queue: requests waiting for the worker; beyond that the service answers 503.
        max_client_queue: requests ONE client (API key, else address) may have waiting for the worker; beyond
            that this client gets 503 while the others still get in (its fair share of the queue).
        max_slices: display slices one request may ground (a volume along its plane; a VQA or report on
            a volume counts the same); a volume declaring more answers 413 before any work, and work that
            reaches it is stopped. The bound does not depend on the file's bytes: a 600-byte .nii.gz may
            declare 32 000 slices.
        max_model_passes: slices (or images) x prompt chunks one request may put through the model's
            fusion and head; more answers 413 before any work (fewer phrases, or a smaller volume, fit).
    """

    max_upload_bytes: int = 64 * MiB
    max_pixels: int = 40_000_000
    max_voxels: int = 300_000_000
    max_request_bytes: int = 512 * MiB
    max_inflight_bytes: int = 1024 * MiB
    request_timeout_s: float = 120.0
    body_timeout_s: float = 15.0
    io_workers: int = 4
    max_phrases: int = 32
    max_phrase_chars: int = 200
    max_question_chars: int = 1000
    max_batch: int = 8
    batch_wait_ms: float = 10.0
    max_queue: int = 256
    max_client_queue: int = 64
    max_slices: int = 2048
    max_model_passes: int = 8192

    def __post_init__(self) -> None:
        for name in (
            "max_upload_bytes",
            "max_pixels",
            "max_voxels",
            "max_request_bytes",
            "max_inflight_bytes",
            "io_workers",
            "max_phrases",
            "max_phrase_chars",
            "max_question_chars",
            "max_batch",
            "max_queue",
            "max_client_queue",
            "max_slices",
            "max_model_passes",
        ):
            _positive_int(self, name)
        if self.max_inflight_bytes < self.max_request_bytes:
            raise MedglipError(
                f"ServiceConfig.max_inflight_bytes ({self.max_inflight_bytes:,}) must be at least "
                f"max_request_bytes ({self.max_request_bytes:,})"
            )
        for name in ("request_timeout_s", "body_timeout_s"):
            _seconds(self, name)
        if not (isinstance(self.batch_wait_ms, (int, float)) and 0 <= self.batch_wait_ms <= 10_000):
            raise MedglipError(f"ServiceConfig.batch_wait_ms must be in [0, 10000] ms, got {self.batch_wait_ms!r}")


@dataclass(frozen=True)
class AccessConfig:
    """Who may call the service and what is recorded (docs/security.md).

    Attributes:
        api_keys: ``(name, key)`` pairs; when any is given, every endpoint but ``/``, ``/static/``
            and ``/healthz`` needs ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``), compared
            in constant time; the name (never the key) goes to the audit log.
            :func:`medglip.serve.access.load_api_keys` reads them from a file or ``MEDGLIP_API_KEYS``.
        rate_per_minute: requests per minute per API key (per client address without keys); 0: no
            limit. Above it: 429 with ``Retry-After``.
        rate_burst: requests a caller may make at once before the per-minute rate applies.
        cors_origins: web origins (``https://viewer.example.org``) whose pages may call the service
            from a browser; none by default. POSTs whose ``Origin`` is neither the service's own nor
            listed are refused (403), so a web page cannot make a user's browser upload to it.
        docs: serve the interactive ``/docs`` page (Swagger UI, which the browser fetches from a CDN);
            off by default. ``/openapi.json`` is always served (behind the keys when there are keys).
        audit_log: a file for the audit log (JSON lines); None: the ``medglip.audit`` logger only.
    """

    api_keys: tuple[tuple[str, str], ...] = ()
    rate_per_minute: int = 0
    rate_burst: int = 20
    cors_origins: tuple[str, ...] = ()
    docs: bool = False
    audit_log: str | None = None

    def __post_init__(self) -> None:
        names = [n for n, _ in self.api_keys]
        if len(set(names)) != len(names):
            raise MedglipError("AccessConfig.api_keys: two keys have the same name")
        for name, key in self.api_keys:
            if len(key) < 16:
                raise MedglipError(
                    f"API key {name!r} is {len(key)} characters long; use at least 16 random "
                    "characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
                )
        if self.rate_per_minute < 0 or self.rate_burst < 1:
            raise MedglipError("AccessConfig: rate_per_minute must be >= 0 and rate_burst >= 1")
        for origin in self.cors_origins:
            if not origin.startswith(("http://", "https://")) or origin.rstrip("/") != origin:
                raise MedglipError(f"CORS origin {origin!r} must look like https://host[:port] (no path, no slash)")

    def __repr__(self) -> str:  # never print the keys
        return (
            f"AccessConfig(api_keys={len(self.api_keys)} key(s), rate_per_minute={self.rate_per_minute}, "
            f"cors_origins={self.cors_origins}, docs={self.docs}, audit_log={self.audit_log!r})"
        )


@dataclass(frozen=True)
class ServerSettings:
    """The HTTP server (uvicorn) in front of the app: slow or idle clients are disconnected.

    Attributes:
        timeout_keep_alive: seconds an idle keep-alive connection stays open.
        header_timeout_s: seconds a client has to send a request's headers (counted from the
            connection, or from the end of the previous response); then the connection is closed.
        limit_concurrency: most connections and requests at once; more answer 503.
        max_header_bytes: largest request head (h11's limit); larger is refused with 400.
        forwarded_allow_ips: addresses of the TLS reverse proxy whose ``X-Forwarded-For`` /
            ``X-Forwarded-Proto`` are trusted (comma-separated); None: none.
    """

    timeout_keep_alive: int = 5
    header_timeout_s: float = 10.0
    limit_concurrency: int = 64
    max_header_bytes: int = 16 * 1024
    forwarded_allow_ips: str | None = None

    def __post_init__(self) -> None:
        for name in ("timeout_keep_alive", "limit_concurrency", "max_header_bytes"):
            _positive_int(self, name)
        _seconds(self, "header_timeout_s")


def _positive_int(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise MedglipError(f"{type(obj).__name__}.{name} must be a positive integer, got {value!r}")


def _seconds(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 86_400):
        raise MedglipError(f"{type(obj).__name__}.{name} must be a number of seconds in (0, 86400], got {value!r}")
