"""Load test of the HTTP service: POST /v1/ground at several concurrency levels against a real uvicorn.

Starts ``medglip serve --checkpoint CHECKPOINT`` in a subprocess (default: a tiny random checkpoint made
in a temp folder; ``--checkpoint RUN`` for a real one), waits for ``/healthz``, then for each
concurrency level sends ``--requests`` requests of a real 512 x 512 slice (the shipped brain1 NRRD,
axial key slice, upsampled) from that many httpx async clients, and prints: clients, requests,
failures, requests/s, p50 / p99 latency, mean images per model batch, and the server's RSS at the
start / end of the level. Exits 1 if any request failed.

    python benchmarks/bench_load.py [--requests 200] [--levels 1,4,16] [--checkpoint RUN] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

import medglip

BRAIN = Path(medglip.__file__).parent / "samples" / "pyradiomics" / "brain1_image.nrrd"


def make_tiny_checkpoint(folder: Path) -> Path:
    """A random ``tiny`` model saved as a run folder (what the tests use)."""
    import torch

    from medglip.model import GroundingModel, get_preset, save_checkpoint

    torch.manual_seed(0)
    return Path(save_checkpoint(GroundingModel(get_preset("tiny", score_threshold=0.0)).eval(), folder))


def brain_slice_png(size: int = 512) -> bytes:
    """The middle axial display slice of brain1 (the model pixels the builder writes), ``size`` px, PNG."""
    from medglip.core.orient import plan_slices
    from medglip.core.pipeline import model_pixels
    from medglip.io import read_image

    img = read_image(BRAIN)
    plan = plan_slices(img.geometry, img.spatial_shape, "axial")
    pixels, _ = model_pixels(plan.view(img.array, plan.n_slices // 2), "MR")
    buf = io.BytesIO()
    Image.fromarray(pixels).resize((size, size), Image.BILINEAR).save(buf, format="PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkpoint: Path, port: int, log_path: Path, torch_threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "medglip", "serve", "--checkpoint", str(checkpoint), "--host", "127.0.0.1",
           "--port", str(port), "--no-masks", "--log-level", "warning", "--torch-threads", str(torch_threads)]
    log = open(log_path, "wb")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            r = httpx.get(base + "/healthz", timeout=2.0)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"no answer from {base}/healthz within {timeout:.0f} s")


async def run_level(base: str, clients: int, n: int, body: bytes, data: dict) -> tuple[list[float], int, float]:
    """``n`` requests from ``clients`` concurrent httpx clients; (latencies s, failures, wall s)."""
    latencies: list[float] = []
    failures = 0
    todo = iter(range(n))

    async def worker() -> None:
        nonlocal failures
        async with httpx.AsyncClient(base_url=base, timeout=120.0) as client:
            for _ in todo:
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/ground", data=data, files={"file": ("brain1_slice.png", body)})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                failures += not ok

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, failures, time.perf_counter() - t0


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, help="training run folder (default: a tiny random checkpoint)")
    ap.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    ap.add_argument("--levels", default="1,4,16", help="comma-separated numbers of concurrent clients")
    ap.add_argument("--phrases", default="brain tumor, left lateral ventricle")
    ap.add_argument("--torch-threads", type=int, default=0, help="the server's torch threads (0: torch's default)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    work = Path(tempfile.mkdtemp(prefix="medglip-bench-load-"))
    proc = None
    try:
        checkpoint = args.checkpoint or make_tiny_checkpoint(work / "run")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(checkpoint, port, work / "server.log", args.torch_threads)
        health = wait_ready(base, proc)
        model = health["model"]
        body = brain_slice_png()
        data = {"phrases": args.phrases, "modality": "MR"}
        asyncio.run(run_level(base, 2, 6, body, data))  # warm-up: text features, allocator
        print(f"model {model['preset']} ({model['image_size']} px), {len(body):,}-byte 512x512 PNG, "
              f"phrases {args.phrases!r}, {os.cpu_count()} CPU cores")
        print("| clients | requests | failures | req/s | p50 ms | p99 ms | images/batch | RSS start MB | RSS end MB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        rows = []
        for clients in levels:
            before = httpx.get(base + "/healthz").json()["counters"]
            rss0 = rss_mb(proc.pid)
            lat, failed, wall = asyncio.run(run_level(base, clients, args.requests, body, data))
            after = httpx.get(base + "/healthz").json()["counters"]
            batches = after["batches"] - before["batches"]
            row = {"clients": clients, "requests": len(lat), "failures": failed, "rps": len(lat) / wall,
                   "p50_ms": 1000 * float(np.percentile(lat, 50)), "p99_ms": 1000 * float(np.percentile(lat, 99)),
                   "images_per_batch": (after["batched_images"] - before["batched_images"]) / max(1, batches),
                   "rss_start_mb": rss0, "rss_end_mb": rss_mb(proc.pid)}
            rows.append(row)
            print(f"| {clients} | {row['requests']} | {failed} | {row['rps']:.1f} | {row['p50_ms']:.1f} | "
                  f"{row['p99_ms']:.1f} | {row['images_per_batch']:.2f} | {row['rss_start_mb']:.0f} | "
                  f"{row['rss_end_mb']:.0f} |", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"model": model, "checkpoint": str(args.checkpoint or "tiny random"),
                                             "phrases": args.phrases, "levels": rows}, indent=2))
        return 1 if any(r["failures"] for r in rows) else 0
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        log = work / "server.log"
        if log.exists():
            print("server log (tail):\n" + log.read_text(errors="replace")[-3000:], file=sys.stderr)
        return 2
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
