"""The attacks of issue 14 against a real uvicorn on 127.0.0.1, one fresh server each; prints a Markdown table.

    python benchmarks/bench_attacks.py                       # every attack, this source tree
    python benchmarks/bench_attacks.py --only dicom-zeros-zip,zip-bomb --timeout 60
    python benchmarks/bench_attacks.py --legacy --server-src /tmp/medglip-base/src   # a release before the fixes

Each attack starts ``medglip serve --checkpoint RUN`` (``python -m medglip.serve RUN`` for the old release) (a ``tiny`` random checkpoint made by the server's own
source tree, ``--no-masks``, its temp folder private to the run) and measures while the attack runs:

- answer: the attack request's HTTP status (``no answer`` when the client gave up after ``--timeout`` s);
- time to answer (s);
- peak RSS +MB: the server's peak resident memory above its level before the attack (sampled every 20 ms);
- /healthz p99 / max ms: a client polling ``GET /healthz`` every 50 ms during the attack (a poll that
  fails or times out counts as the time it waited);
- worker held s: the longest job of the model worker (``/healthz`` counters of a fixed server), else the
  longest ``/v1/ground`` probe (a small PNG every 0.5 s) as a stand-in;
- stop s / temp MB: how long SIGTERM took to stop the server (``killed`` after 15 s), and the temp
  folders it left behind.

Every attack is bounded: the attacker gives up after ``--timeout`` seconds, the server is stopped
after each attack, and the whole run ends by itself. Nothing leaves 127.0.0.1. Exit status: 0.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import attacks  # noqa: E402  (tests/attacks.py: the hostile files)

API_KEY = "bench-key-0123456789abcdef"
LLM_KEY = "sk-bench-SECRET-5f2e9a"
LLM_USERINFO = "llmuser:llm-PASSWORD-77"


# ============================================================================ server
@dataclass
class Server:
    """One ``medglip serve`` process on a free loopback port."""

    src: Path
    run: Path
    work: Path
    legacy: bool
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    port: int = 0
    log_path: Path | None = None
    tmp: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.legacy else {"Authorization": f"Bearer {API_KEY}"}

    def start(self, *, wait: bool = True) -> "Server":
        self.port = _free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=self.work))
        self.log_path = self.work / f"server-{self.port}.log"
        keys = self.work / "keys.txt"
        keys.write_text(f"bench {API_KEY}\n")
        entry = ["-m", "medglip.serve", str(self.run)] if self.legacy else ["-m", "medglip", "serve", "--checkpoint",
                                                                             str(self.run)]
        cmd = [sys.executable, *entry, "--host", "127.0.0.1", "--port", str(self.port),
               "--no-masks", "--log-level", "info", "--torch-threads", "1"]
        if not self.legacy:
            cmd += ["--api-keys-file", str(keys)]
        cmd += self.args
        env = dict(os.environ, PYTHONPATH=str(self.src), TMPDIR=str(self.tmp), PYTHONUNBUFFERED="1", **self.env)
        self.proc = subprocess.Popen(cmd, stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT, env=env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with code {self.proc.returncode}: {self.log()[-800:]}")
            try:
                if httpx.get(self.base + "/healthz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not start")

    def rss_mb(self) -> float:
        try:
            p = psutil.Process(self.proc.pid)
            return (p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))) / 2**20
        except psutil.Error:
            return 0.0

    def counters(self) -> dict[str, Any]:
        try:
            return httpx.get(self.base + "/healthz", timeout=10.0).json().get("counters", {})
        except (httpx.HTTPError, ValueError):
            return {}

    def stop(self) -> tuple[str, float]:
        """SIGTERM, wait 15 s, then SIGKILL; returns (how it stopped, MB of temp files left)."""
        t0 = time.monotonic()
        how = "exited"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
                how = f"{time.monotonic() - t0:.1f}"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                how = "killed"
        left = _tree_bytes(self.tmp) / 2**20 if self.tmp else 0.0
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return how, left

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


def _tree_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(folder):
        for n in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, n)).st_size
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ============================================================================ monitors
class Monitor:
    """RSS sampling, /healthz polling and /v1/ground probing in background threads while an attack runs."""

    def __init__(self, server: Server, *, probe_ground: bool = True) -> None:
        self.server = server
        self.probe_ground = probe_ground
        self.stop_event = threading.Event()
        self.rss: list[float] = []
        self.health_ms: list[float] = []
        self.ground_ms: list[float] = []
        self.baseline = server.rss_mb()
        self.threads = [threading.Thread(target=self._sample, daemon=True),
                        threading.Thread(target=self._health, daemon=True)]
        if probe_ground:
            self.threads.append(threading.Thread(target=self._ground, daemon=True))

    def __enter__(self) -> "Monitor":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(30)

    def _sample(self) -> None:
        while not self.stop_event.is_set():
            self.rss.append(self.server.rss_mb())
            time.sleep(0.02)

    def _health(self) -> None:
        with httpx.Client(base_url=self.server.base, timeout=10.0) as c:
            while not self.stop_event.is_set():
                t0 = time.perf_counter()
                with contextlib.suppress(httpx.HTTPError):
                    c.get("/healthz")
                self.health_ms.append(1000 * (time.perf_counter() - t0))
                time.sleep(0.05)

    def _ground(self) -> None:
        body = _png_bytes(64, 64)
        with httpx.Client(base_url=self.server.base, timeout=60.0, headers=self.server.headers) as c:
            while not self.stop_event.is_set():
                t0 = time.perf_counter()
                with contextlib.suppress(httpx.HTTPError):
                    c.post("/v1/ground", data={"phrases": "liver", "modality": "CT"}, files={"file": ("p.png", body)})
                self.ground_ms.append(1000 * (time.perf_counter() - t0))
                self.stop_event.wait(0.5)

    @property
    def peak_mb(self) -> float:
        return max(self.rss, default=self.baseline) - self.baseline

    @property
    def health_p99(self) -> float:
        return float(np.percentile(self.health_ms, 99)) if self.health_ms else float("nan")

    @property
    def health_max(self) -> float:
        return max(self.health_ms, default=float("nan"))


def _png_bytes(h: int, w: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((h, w)) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# ============================================================================ attacks
@dataclass
class Ctx:
    """What an attack gets: the running server, a cache folder for hostile files, the client timeout."""

    server: Server
    cache: Path
    timeout: float


def _post(ctx: Ctx, path: str, data: dict, name: str, body: bytes | Path, headers: dict | None = None,
          timeout: float | None = None) -> tuple[str, float, str]:
    """One POST; returns (status or 'no answer', seconds, body text)."""
    content = body.read_bytes() if isinstance(body, Path) else body
    t0 = time.perf_counter()
    try:
        r = httpx.post(ctx.server.base + path, data=data, files={"file": (name, content)},
                       headers=ctx.server.headers | (headers or {}), timeout=timeout or ctx.timeout)
        return str(r.status_code), time.perf_counter() - t0, r.text
    except httpx.TimeoutException:
        return "no answer", time.perf_counter() - t0, ""
    except httpx.HTTPError as exc:
        return f"error ({type(exc).__name__})", time.perf_counter() - t0, ""


def _cached(ctx: Ctx, name: str, make: Callable[[Path], Path]) -> Path:
    path = ctx.cache / name
    if not path.exists():
        tmp = path.with_name("part-" + path.name)
        make(tmp)
        tmp.rename(path)
    return path


def atk_dicom_zeros(ctx: Ctx) -> dict:
    f = _cached(ctx, "zeros-1gib.zip", lambda p: attacks.zip_of_dicom_with_zeros(p, 1 << 30))
    status, dt, text = _post(ctx, "/v1/ground-volume", {"phrases": "liver"}, "series.zip", f)
    return {"answer": status, "s": dt, "note": _detail(text)}


def atk_tiff4(ctx: Ctx) -> dict:
    f = _cached(ctx, "f64-6300x6300x4.tif", lambda p: attacks.float64_tiff(p, (6300, 6300, 4)))
    status, dt, text = _post(ctx, "/v1/ground", {"phrases": "liver", "modality": "CT"}, "f64.tif", f)
    return {"answer": status, "s": dt, "note": _detail(text)}


def atk_tiff4_x3(ctx: Ctx) -> dict:
    f = _cached(ctx, "f64-6300x6300x4.tif", lambda p: attacks.float64_tiff(p, (6300, 6300, 4)))
    out: list[tuple[str, float, str]] = []
    threads = [threading.Thread(target=lambda: out.append(_post(ctx, "/v1/ground", {"phrases": "liver"}, "f64.tif", f)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"answer": "/".join(sorted(o[0] for o in out)), "s": max(o[1] for o in out), "note": _detail(out[0][2])}


def atk_tiff_12600(ctx: Ctx) -> dict:
    f = _cached(ctx, "f64-12600.tif", lambda p: attacks.float64_tiff(p, (12600, 12600)))
    status, dt, text = _post(ctx, "/v1/ground", {"phrases": "liver"}, "f64-12600.tif", f)
    return {"answer": status, "s": dt, "note": _detail(text)}


def atk_niigz(ctx: Ctx) -> dict:
    f = _cached(ctx, "f64-294m.nii.gz", lambda p: attacks.float64_nifti_gz(p, (700, 700, 600)))
    status, dt, text = _post(ctx, "/v1/ground-volume", {"phrases": "liver"}, "f64.nii.gz", f)
    return {"answer": status, "s": dt, "note": _detail(text)}


def atk_zip_bomb(ctx: Ctx) -> dict:
    f = _cached(ctx, "bomb-4x1gib.zip", lambda p: attacks.zip_bomb(p, 4, 1 << 30))
    status, dt, text = _post(ctx, "/v1/ground-volume", {"phrases": "liver"}, "bomb.zip", f)
    return {"answer": status, "s": dt, "note": _detail(text)}


def atk_png16(ctx: Ctx) -> dict:
    f = _cached(ctx, "png16-rgb-6300.png", lambda p: attacks.png16_rgb(p, 6300, 6300))
    status, dt, text = _post(ctx, "/v1/ground", {"phrases": "liver", "modality": "CT"}, "rgb16.png", f)
    return {"answer": status, "s": dt, "note": "39.7 M pixels (3 channels): " + _detail(text)}


def atk_slowloris(ctx: Ctx, n: int = 200, hold: float = 20.0) -> dict:
    """``n`` connections: half send half a header, half a header and part of a body; then wait ``hold`` s."""
    socks: list[socket.socket] = []
    host = f"127.0.0.1:{ctx.server.port}"
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", ctx.server.port), timeout=5)
        if i % 2:
            s.sendall(f"POST /v1/ground HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode())
        else:
            s.sendall(f"POST /v1/ground HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {API_KEY}\r\n"
                      "Content-Type: multipart/form-data; boundary=xx\r\nContent-Length: 100000\r\n\r\n--xx\r\n".encode())
        socks.append(s)
    t0 = time.monotonic()
    closed_at: dict[int, float] = {}
    while time.monotonic() - t0 < hold and len(closed_at) < n:
        for i, s in enumerate(socks):
            if i in closed_at:
                continue
            s.setblocking(False)
            try:
                data = s.recv(4096)
                if data == b"" or data.startswith(b"HTTP/1.1 4") or data.startswith(b"HTTP/1.1 5"):
                    closed_at[i] = time.monotonic() - t0
            except BlockingIOError:
                pass
            except OSError:
                closed_at[i] = time.monotonic() - t0
        time.sleep(0.2)
    for s in socks:
        s.close()
    last = max(closed_at.values(), default=float("nan"))
    return {"answer": f"{len(closed_at)}/{n} closed", "s": last if closed_at else hold,
            "note": f"connections closed by the server within {hold:.0f} s (last at {last:.1f} s)"}


class _ReflectingLLM(http.server.BaseHTTPRequestHandler):
    """An upstream that fails and reflects what it was sent (its Authorization header and path)."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"error": f"invalid key: {self.headers.get('authorization')} on {self.path}"}).encode()
        self.send_response(500)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def atk_llm_secrets(ctx: Ctx) -> dict:
    status, dt, text = _post(ctx, "/v1/vqa", {"question": "Describe the margins of the lesion."}, "p.png", _png_bytes(64, 64))
    credentials = [LLM_KEY, LLM_USERINFO.split(":")[1]]
    in_response = sum(s in text for s in credentials + [f"127.0.0.1:{ctx.server.env['_LLM_PORT']}", "invalid key"])
    in_log = sum(s in ctx.server.log() for s in credentials)  # the log may name the endpoint, not its secrets
    return {"answer": status, "s": dt, "leaks": f"{in_response} in response, {in_log} in log",
            "note": _detail(text)}


def atk_cross_origin(ctx: Ctx) -> dict:
    status, dt, text = _post(ctx, "/v1/ground", {"phrases": "liver"}, "p.png", _png_bytes(64, 64),
                             headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    return {"answer": status, "s": dt, "note": "browser POST from another site: " + _detail(text)}


def atk_no_key(ctx: Ctx) -> dict:
    t0 = time.perf_counter()
    r = httpx.post(ctx.server.base + "/v1/ground", data={"phrases": "liver"},
                   files={"file": ("p.png", _png_bytes(64, 64))}, timeout=ctx.timeout)
    r2 = httpx.post(ctx.server.base + "/v1/ground", data={"phrases": "liver"}, headers={"Authorization": "Bearer wrong"},
                    files={"file": ("p.png", _png_bytes(64, 64))}, timeout=ctx.timeout)
    return {"answer": f"{r.status_code}/{r2.status_code}", "s": time.perf_counter() - t0,
            "note": "no key / a wrong key: " + _detail(r.text)}


def atk_head_rtl(ctx: Ctx) -> dict:
    heads = [httpx.head(ctx.server.base + p, timeout=10).status_code for p in ("/", "/healthz")]
    status, dt, text = _post(ctx, "/v1/ground", {"phrases": "liver\u202egnp.exe"}, "p.png", _png_bytes(64, 64))
    echoed = "\u202e" in text
    return {"answer": f"HEAD {heads[0]}/{heads[1]}, RLO {status}", "s": dt,
            "note": f"right-to-left override {'echoed' if echoed else 'not echoed'}: {_detail(text)}"}


def atk_deadline(ctx: Ctx, client_gone: bool = False) -> dict:
    f = _cached(ctx, "mr-512x512x240.nii.gz", lambda p: attacks.nifti_volume(p, (512, 512, 240)))
    if client_gone:
        status, dt, text = _post(ctx, "/v1/ground-volume", {"phrases": "brain tumor", "modality": "MR"}, "big.nii.gz", f,
                                 timeout=3.0)
        time.sleep(8.0)  # the server's work for the client that left should stop meanwhile
        return {"answer": "client left after 3 s", "s": dt, "note": "a 512x512x240 volume; the client disconnects"}
    status, dt, text = _post(ctx, "/v1/ground-volume", {"phrases": "brain tumor", "modality": "MR"}, "big.nii.gz", f)
    return {"answer": status, "s": dt, "note": "a 512x512x240 volume, deadline 3 s: " + _detail(text)}


def legit_2d(ctx: Ctx) -> dict:
    """Not an attack: the largest kind of 2D image the defaults accept (36 M float64 pixels)."""
    f = _cached(ctx, "f64-6000.tif", lambda p: attacks.float64_tiff(p, (6000, 6000)))
    status, dt, text = _post(ctx, "/v1/ground", {"phrases": "liver", "modality": "CT"}, "f64-6000.tif", f)
    return {"answer": status, "s": dt, "note": "6000² float64 TIFF (144 MB as float32): " + _detail(text)}


def legit_volume(ctx: Ctx) -> dict:
    """Not an attack: a large legitimate volume (512×512×600 int16, 300 MiB decoded)."""
    f = _cached(ctx, "mr-512x512x600.nii.gz", lambda p: attacks.nifti_volume(p, (512, 512, 600)))
    status, dt, text = _post(ctx, "/v1/ground-volume", {"phrases": "brain tumor", "modality": "MR"}, "big.nii.gz", f,
                             timeout=max(ctx.timeout, 300))
    return {"answer": status, "s": dt, "note": "512×512×600 int16 NIfTI (300 MiB decoded): " + _detail(text)}


def _detail(text: str) -> str:
    try:
        d = json.loads(text).get("detail", "")
    except (ValueError, AttributeError):
        d = text
    d = str(d).replace("|", "/").replace("\n", " ")
    return d[:110] + ("..." if len(d) > 110 else "")


@dataclass(frozen=True)
class Attack:
    name: str
    what: str
    run: Callable[[Ctx], dict]
    args: tuple[str, ...] = ()
    probe_ground: bool = True


ATTACKS = [
    Attack("dicom-zeros-zip", "1 MB zip: one DICOM header + 1 GiB of zeros → /v1/ground-volume", atk_dicom_zeros),
    Attack("float64-tiff", "1.2 MB zlib TIFF, 6300×6300×4 float64 → /v1/ground", atk_tiff4),
    Attack("float64-tiff-x3", "the same TIFF, 3 requests in parallel", atk_tiff4_x3),
    Attack("float64-tiff-12600", "1.3 MB TIFF, 12600² float64 → /v1/ground", atk_tiff_12600),
    Attack("float64-niigz", "2.3 MB .nii.gz, 700×700×600 float64 (294 M voxels) → /v1/ground-volume", atk_niigz),
    Attack("zip-bomb", "4 MB zip, 4 × 1 GiB members → /v1/ground-volume", atk_zip_bomb),
    Attack("slowloris", "200 connections: half-sent headers / stalled bodies", atk_slowloris, probe_ground=False),
    Attack("llm-secrets", "LLM upstream with user:pass@ URL and a key, failing and reflecting them → /v1/vqa",
           atk_llm_secrets, probe_ground=False),
    Attack("cross-origin", "multipart POST with Origin: http://evil.example", atk_cross_origin, probe_ground=False),
    Attack("no-api-key", "POST without / with a wrong API key (keys configured)", atk_no_key, probe_ground=False),
    Attack("png16-rgb", "6300² RGB 16-bit PNG (39.7 M pixels) → /v1/ground", atk_png16, probe_ground=False),
    Attack("head-rtl", "HEAD / and /healthz; a phrase with U+202E", atk_head_rtl, probe_ground=False),
    Attack("deadline", "512×512×240 volume, --request-timeout 3 → /v1/ground-volume", atk_deadline,
           args=("--request-timeout", "3")),
    Attack("client-gone", "the same volume; the client disconnects after 3 s",
           lambda ctx: atk_deadline(ctx, client_gone=True)),
    Attack("legit-2d", "(not an attack) 6000² float64 TIFF → /v1/ground", legit_2d, probe_ground=False),
    Attack("legit-volume", "(not an attack) 512×512×600 int16 NIfTI, --request-timeout 30 → /v1/ground-volume",
           legit_volume, args=("--request-timeout", "30"), probe_ground=False),
]


def corrupt_model_row(src: Path, run: Path, work: Path, legacy: bool) -> dict:
    """A published model with 64 KB overwritten: served (a silent wrong model) or refused at start-up."""
    bad = work / "run-corrupt"
    shutil.copytree(run, bad)
    weights = bad / "model.safetensors"
    attacks.corrupt_file(weights, offset=weights.stat().st_size // 2, size=65536)
    server = Server(src, bad, work, legacy)
    t0 = time.monotonic()
    server.start(wait=False)
    answer, note = "?", ""
    while time.monotonic() - t0 < 120:
        if server.proc.poll() is not None:
            lines = [ln for ln in server.log().splitlines() if ln.strip()]
            answer, note = f"refused (exit {server.proc.returncode})", (lines[-1] if lines else "")
            break
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.base + "/healthz", timeout=2).status_code == 200:
                r = httpx.post(server.base + "/v1/ground", data={"phrases": "brain tumor", "modality": "MR"},
                               files={"file": ("p.png", _png_bytes(64, 64))}, headers=server.headers, timeout=30)
                answer, note = f"served ({r.status_code})", "the damaged model answers"
                break
        time.sleep(0.3)
    dt = time.monotonic() - t0
    stop, _ = server.stop()
    return {"attack": "corrupt-model", "what": "published model.safetensors with 64 KB overwritten → start-up",
            "answer": answer, "s": dt, "peak": float("nan"), "health": float("nan"), "health_max": float("nan"),
            "held": float("nan"),
            "stop": stop, "temp": 0.0, "leaks": "", "note": note.replace("|", "/")[:140]}


def run_attack(attack: Attack, src: Path, run: Path, work: Path, legacy: bool, timeout: float, cache: Path,
               extra_env: dict[str, str]) -> dict:
    server = Server(src, run, work, legacy, args=list(attack.args) if not legacy else [], env=dict(extra_env))
    server.start()
    with Monitor(server, probe_ground=attack.probe_ground) as mon:
        time.sleep(0.5)
        try:
            out = attack.run(Ctx(server, cache, timeout))
        except Exception as exc:  # an attack that breaks the bench is reported, not fatal
            out = {"answer": f"bench error {type(exc).__name__}", "s": float("nan"), "note": str(exc)[:100]}
        time.sleep(0.5)
    counters = server.counters()
    held = counters.get("longest_job_s")
    if held is None:
        held = max(mon.ground_ms, default=float("nan")) / 1000
    stop, left = server.stop()
    return {"attack": attack.name, "what": attack.what, "answer": out["answer"], "s": out["s"], "peak": mon.peak_mb,
            "health": mon.health_p99, "health_max": mon.health_max, "held": held, "stop": stop, "temp": left, "leaks": out.get("leaks", ""),
            "note": out.get("note", "")}


def make_checkpoint(src: Path, folder: Path) -> Path:
    """A tiny random checkpoint written by the server's own source tree (its checkpoint format)."""
    code = ("import sys, torch; from medglip.model import GroundingModel, get_preset, save_checkpoint; "
            "torch.manual_seed(0); save_checkpoint(GroundingModel(get_preset('tiny', score_threshold=0.0)).eval(), "
            "sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True, env=dict(os.environ, PYTHONPATH=str(src)))
    return folder


class _LLMUpstream:
    def __enter__(self) -> int:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ReflectingLLM)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self.httpd.server_address[1]

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()


def print_comparison(files: list[Path]) -> None:
    """A Markdown table of 'before → after' cells: rows of the earlier files (the later one wins per
    attack) against the last file's."""
    before: dict[str, dict] = {}
    for f in files[:-1]:
        before.update({r["attack"]: r for r in json.loads(f.read_text())})
    after = json.loads(files[-1].read_text())

    def cell(r: dict | None, key: str, fmt: str) -> str:
        if r is None or r.get(key) is None:
            return "–"
        v = r[key]
        if key == "health":
            m = r.get("health_max")
            return "–" if v != v else f"{v:.0f} / {m:.0f}" if m is not None and m == m else f"{v:.0f}"
        return (fmt.format(v) if isinstance(v, float) and v == v else "–" if isinstance(v, float) else str(v)) or "–"

    cols = [("answer", "answer", "{}"), ("time to answer s", "s", "{:.1f}"), ("peak RSS +MB", "peak", "{:.0f}"),
            ("/healthz p99 / max ms", "health", ""), ("worker held s", "held", "{:.1f}"), ("stop s", "stop", "{}"),
            ("temp left MB", "temp", "{:.0f}"), ("secrets leaked", "leaks", "{}")]
    print("| attack | " + " | ".join(c[0] for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for r in after:
        b = before.get(r["attack"])
        cells = [f"{cell(b, k, f)} → {cell(r, k, f)}" for _, k, f in cols]
        print(f"| {r['attack']}: {r['what']} | " + " | ".join(cells) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated attack names (default: all, plus corrupt-model)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds the attacker waits for an answer")
    ap.add_argument("--server-src", type=Path, default=ROOT / "src", help="source tree the server runs from")
    ap.add_argument("--legacy", action="store_true", help="the server predates the fixes (no new options)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "medglip-bench-attacks",
                    help="where the hostile files are kept between runs")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--compare", type=Path, nargs="+", metavar="JSON",
                    help="print one 'before → after' table from --json files (before runs first, the last is after)")
    args = ap.parse_args()
    if args.compare:
        print_comparison(args.compare)
        return 0
    names = set(args.only.split(",")) if args.only else None
    args.cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="medglip-bench-attacks-"))
    rows = []
    try:
        run = make_checkpoint(args.server_src, work / "run")
        with _LLMUpstream() as llm_port:
            env = {"MEDGLIP_LLM_ENDPOINT": f"http://{LLM_USERINFO}@127.0.0.1:{llm_port}/v1",
                   "MEDGLIP_LLM_MODEL": "reflector", "MEDGLIP_LLM_API_KEY": LLM_KEY, "_LLM_PORT": str(llm_port)}
            for attack in ATTACKS:
                if names and attack.name not in names:
                    continue
                print(f"... {attack.name}", file=sys.stderr, flush=True)
                rows.append(run_attack(attack, args.server_src, run, work, args.legacy, args.timeout, args.cache, env))
        if not names or "corrupt-model" in names:
            print("... corrupt-model", file=sys.stderr, flush=True)
            rows.append(corrupt_model_row(args.server_src, run, work, args.legacy))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"server: {'legacy ' if args.legacy else ''}{args.server_src}, tiny model, {os.cpu_count()} CPU cores, "
          f"client timeout {args.timeout:.0f} s")
    print("| attack | answer | time s | peak RSS +MB | /healthz p99 / max ms | worker held s | stop s | temp left MB "
          "| leaks | detail |")
    print("|---|---|---:|---:|---:|---:|---|---:|---|---|")
    for r in rows:
        print(f"| {r['attack']} | {r['answer']} | {r['s']:.1f} | {r['peak']:.0f} | {r['health']:.0f} / "
              f"{r['health_max']:.0f} | {r['held']:.1f} | {r['stop']} | {r['temp']:.0f} | {r['leaks']} | {r['note']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
