"""The FastAPI app of the grounding service and :func:`serve`, which loads a checkpoint and runs uvicorn.

>>> from medglip.serve import create_app, ServiceConfig                    # doctest: +SKIP
>>> app = create_app(Grounder.from_pretrained("RUN"), config=ServiceConfig(max_batch=8))  # doctest: +SKIP

Endpoints (docs/grounded_api.md): ``POST /v1/ground``, ``/v1/ground-volume``, ``/v1/vqa``,
``/v1/report`` (multipart/form-data), ``GET /v1/model`` (what the model knows), ``GET|HEAD /healthz``,
``GET|HEAD /`` (the web page, from the package's ``static/`` folder: no build step, nothing from the
internet), ``/openapi.json`` and, when :class:`AccessConfig` ``docs`` is set, ``/docs``. Every error answer is
``{"detail": "<message naming the field or the file>"}``.

The ASGI layers, outermost first: CORS (only with an allow-list) → :class:`LimitBodyMiddleware` (413,
408, counters) → :class:`~.access.AccessMiddleware` (API keys 401, cross-site 403, rate limits 429,
audit log) → :class:`DeadlineMiddleware` (deadline 504, client-gone cancellation, read policy) → the
routes. Log records of the whole process are redacted from the first app on (:mod:`.redact`).
docs/security.md says what is promised and how it is tested.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from . import redact
from .access import AccessMiddleware
from .config import AccessConfig, ServerSettings, ServiceConfig
from .forms import flatten_validation_errors
from .middleware import FORM_OVERHEAD, DeadlineMiddleware, LimitBodyMiddleware
from .model_routes import router as model_router
from .routes import router
from .service import Service
from .uploads import ENDPOINT_HEADER, sweep_stale_workdirs

log = logging.getLogger("medglip.serve")

#: the web page may load only its own files; images come back as data: URLs
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def create_app(
    grounder: Any, *, config: ServiceConfig = ServiceConfig(), llm: Any = None, access: AccessConfig = AccessConfig()
) -> FastAPI:
    """The service around one loaded Grounder (used from one worker thread only).

    Args:
        grounder: a :class:`~medglip.infer.Grounder` (or anything with its ``ground`` /
            ``ground_volume`` / ``config``).
        config: limits, deadlines and batching (:class:`ServiceConfig`).
        llm: a ``medglip.vqa.ChatClient`` for open questions and prose reports, or None.
        access: API keys, rate limits, CORS origins, ``/docs``, audit log (:class:`AccessConfig`).
    """
    redact.install()  # every log record of the process from now on: no key, token or password in a log
    redact.register(getattr(llm, "api_key", None))
    service = Service.create(grounder, config, llm)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweep_stale_workdirs()
        yield
        service.batcher.close()
        service.pool.close()

    app = FastAPI(
        title="medglip grounding service",
        version=_version(),
        lifespan=lifespan,
        docs_url="/docs" if access.docs else None,
        redoc_url=None,
        description="Medical phrase grounding: phrases → boxes, scores and masks in 2D images and "
        "volumes; grounded VQA and findings reports. Upload files as multipart/form-data.",
    )
    app.state.service = service
    app.include_router(router)
    app.include_router(model_router)
    counters = service.counters
    app.add_middleware(
        DeadlineMiddleware,
        timeout=config.request_timeout_s,
        budget=service.budget,
        max_request_bytes=config.max_request_bytes,
        counters=counters,
        max_slices=config.max_slices,
    )
    app.add_middleware(AccessMiddleware, access=access, counters=counters)
    app.add_middleware(
        LimitBodyMiddleware,
        max_body=config.max_upload_bytes + FORM_OVERHEAD,
        counters=counters,
        body_timeout=config.body_timeout_s,
    )
    if access.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(access.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            max_age=600,
            expose_headers=[ENDPOINT_HEADER],
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": flatten_validation_errors(exc.errors())}, status_code=422)

    @app.head("/healthz", include_in_schema=False)
    @app.get("/healthz", summary="Liveness, model summary and counters")
    async def healthz() -> dict[str, Any]:
        counters: dict[str, float] = dict(service.counters)
        counters.update(service.batcher.stats())
        counters.update(service.budget.stats())
        counters.update(service.pool.stats())
        return {"status": "ok", "model": service.model_info(), "llm": service.llm is not None, "counters": counters}

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
    async def index() -> Response:
        html = (_static_dir() / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(
            html,
            headers={
                "Content-Security-Policy": PAGE_CSP,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-cache",
                "Referrer-Policy": "no-referrer",
            },
        )

    app.mount("/static", StaticFiles(directory=str(_static_dir())), name="static")
    return app


def _static_dir() -> Path:
    return Path(str(resources.files("medglip.serve") / "static"))


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("medglip")
    except Exception:  # not installed (source checkout)
        return "0"


def serve(
    checkpoint: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    device: str = "cpu",
    masks: bool = True,
    refiner: Any = "medsam",
    config: ServiceConfig = ServiceConfig(),
    llm: Any = None,
    llm_from_env: bool = True,
    log_level: str = "info",
    access: AccessConfig = AccessConfig(),
    server: ServerSettings = ServerSettings(),
) -> None:
    """Load ``checkpoint`` once (``Grounder.from_pretrained(checkpoint)``) and serve it.

    Args:
        checkpoint: a training run folder (``model.safetensors`` + ``config.json`` + ``text_encoder/``);
            its weights are checked against the SHA-256 recorded at save time.
        host, port: where uvicorn listens (keep 127.0.0.1 behind a TLS reverse proxy, docs/security.md).
        device: torch device of the model.
        masks: False offers no LiteMedSAM: requests with ``masks=medsam`` (and ``true`` on a checkpoint
            without a mask head) then answer 422; the checkpoint's mask head still answers.
        refiner: what ``masks=medsam`` runs when ``masks`` is True (``"medsam"``: LiteMedSAM, built on
            first use, or a stand-in object); each request's ``masks`` field chooses the source.
        config: service limits.
        llm: a ChatClient; None with ``llm_from_env`` reads ``MEDGLIP_LLM_ENDPOINT`` / ``_MODEL`` / ``_API_KEY``.
        log_level: uvicorn's log level.
        access: API keys, rate limits, CORS, docs, audit log.
        server: connection timeouts and limits of uvicorn (:class:`ServerSettings`).
    """
    import uvicorn

    from ..infer import Grounder
    from .protocol import uvicorn_config

    grounder = Grounder.from_pretrained(checkpoint, device=device, refiner=refiner if masks else None)
    if llm is None and llm_from_env:
        from ..vqa import ChatClient

        llm = ChatClient.from_env()
    app = create_app(grounder, config=config, llm=llm, access=access)
    log.info(
        "serving %s on http://%s:%d (model %s; %s)",
        checkpoint,
        host,
        port,
        grounder.config.name,
        f"{len(access.api_keys)} API key(s)" if access.api_keys else "no API keys: anyone who can connect may call it",
    )
    uvicorn.Server(uvicorn_config(app, host, port, server, log_level=log_level)).run()
