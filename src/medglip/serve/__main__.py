"""``python -m medglip.serve RUN [--host H] [--port P] ...``: serve a checkpoint over HTTP."""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import MedglipError
from .config import ServiceConfig


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
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.torch_threads > 0:
        import torch
        torch.set_num_threads(args.torch_threads)
    from .app import serve
    try:
        config = ServiceConfig(max_upload_bytes=int(args.max_upload_mb * 2**20), max_batch=args.max_batch,
                               batch_wait_ms=args.batch_wait_ms, max_queue=args.max_queue)
        serve(args.checkpoint, args.host, args.port, device=args.device, masks=not args.no_masks,
              config=config, log_level=args.log_level)
    except MedglipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
