"""``python -m medglip.serve RUN [--host H] [--port P] ...``: serve a checkpoint over HTTP (README "Security")."""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import MedglipError
from .config import AccessConfig, ServerSettings, ServiceConfig

MiB = 2**20


def add_security_arguments(ap: argparse.ArgumentParser) -> None:
    """The limits, deadlines and access options (shared with ``medglip serve``'s help text)."""
    d, a, s = ServiceConfig(), AccessConfig(), ServerSettings()
    ap.add_argument("--max-request-mb", type=float, default=d.max_request_bytes / MiB,
                    help="largest DECODED image of one request, MiB (float64 counts as float32)")
    ap.add_argument("--max-inflight-mb", type=float, default=d.max_inflight_bytes / MiB,
                    help="decoded MiB of all requests in flight; above it 503")
    ap.add_argument("--request-timeout", type=float, default=d.request_timeout_s, help="deadline of a request, s (504)")
    ap.add_argument("--body-timeout", type=float, default=d.body_timeout_s, help="longest pause in a request body, s (408)")
    ap.add_argument("--io-workers", type=int, default=d.io_workers, help="threads that unpack, parse and decode uploads")
    ap.add_argument("--api-keys-file", help="API keys, one 'name key' per line (else MEDGLIP_API_KEYS=name:key,...)")
    ap.add_argument("--rate-limit", type=int, default=a.rate_per_minute, help="requests per minute per key (0: none)")
    ap.add_argument("--rate-burst", type=int, default=a.rate_burst)
    ap.add_argument("--cors-origin", action="append", default=[], help="web origin allowed to call from a browser; repeatable")
    ap.add_argument("--docs", action="store_true", help="serve /docs (Swagger UI, fetched from a CDN by the browser)")
    ap.add_argument("--audit-log", help="append the audit log (JSON lines) to this file")
    ap.add_argument("--header-timeout", type=float, default=s.header_timeout_s, help="seconds to send request headers")
    ap.add_argument("--keep-alive", type=int, default=s.timeout_keep_alive, help="idle keep-alive seconds")
    ap.add_argument("--limit-concurrency", type=int, default=s.limit_concurrency, help="connections at once; more: 503")
    ap.add_argument("--forwarded-allow-ips", help="the TLS proxy's address(es) whose X-Forwarded-* headers are trusted")


def configs_from_args(args: argparse.Namespace) -> tuple[ServiceConfig, AccessConfig, ServerSettings]:
    """The three configs from parsed arguments (keys from the file, else the environment)."""
    from .access import load_api_keys

    config = ServiceConfig(max_upload_bytes=int(args.max_upload_mb * MiB), max_batch=args.max_batch,
                           batch_wait_ms=args.batch_wait_ms, max_queue=args.max_queue,
                           max_request_bytes=int(args.max_request_mb * MiB),
                           max_inflight_bytes=int(args.max_inflight_mb * MiB), request_timeout_s=args.request_timeout,
                           body_timeout_s=args.body_timeout, io_workers=args.io_workers)
    access = AccessConfig(api_keys=load_api_keys(args.api_keys_file), rate_per_minute=args.rate_limit,
                          rate_burst=args.rate_burst, cors_origins=tuple(args.cors_origin), docs=args.docs,
                          audit_log=args.audit_log)
    server = ServerSettings(timeout_keep_alive=args.keep_alive, header_timeout_s=args.header_timeout,
                            limit_concurrency=args.limit_concurrency, forwarded_allow_ips=args.forwarded_allow_ips)
    return config, access, server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medglip.serve", description="Serve a medglip checkpoint over HTTP.")
    ap.add_argument("checkpoint", help="training run folder (model.safetensors + config.json + text_encoder/)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-masks", action="store_true", help="no LiteMedSAM refiner (masks=true answers 422)")
    ap.add_argument("--max-upload-mb", type=float, default=64.0)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--batch-wait-ms", type=float, default=10.0)
    ap.add_argument("--max-queue", type=int, default=256)
    ap.add_argument("--torch-threads", type=int, default=0, help="intra-op torch threads (0: torch's default)")
    ap.add_argument("--log-level", default="info")
    add_security_arguments(ap)
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.torch_threads > 0:
        import torch
        torch.set_num_threads(args.torch_threads)
    from .app import serve
    try:
        config, access, server = configs_from_args(args)
        serve(args.checkpoint, args.host, args.port, device=args.device, masks=not args.no_masks,
              config=config, log_level=args.log_level, access=access, server=server)
    except MedglipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
