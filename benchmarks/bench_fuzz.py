"""A long fuzz run of medglip's file readers and of the HTTP upload endpoints (prints figures; not a test).

    python benchmarks/bench_fuzz.py                  # 2000 mutated files + the HTTP phase
    python benchmarks/bench_fuzz.py --n 20000 --seed 3 --json fuzz.json
    python benchmarks/bench_fuzz.py --skip-http      # readers only

(a) Readers: N mutated files (truncations, byte flips, absurd header fields with valid checksums,
wrong extensions, empty files, folders, DICOM series with a damaged slice) made from real seed files
of every supported format (the mutation kit of ``tests/test_fuzz_readers.py``), each read with
``read_image``, ``to_display``, ``read_label`` (and ``read_mask_2d`` for pictures). The readers run in a worker
process, so a segmentation fault or a hang is counted (and the worker restarted) instead of ending the
run. Outcomes: ``ok`` (a sane image), ``rejected`` (a MedglipError naming the file), ``crash``
(anything else: another exception type, an unnamed file, an insane image, a signal, a hang).

(b) HTTP: ``medglip.serve.create_app`` on a tiny random checkpoint behind
``fastapi.testclient.TestClient``; mutated uploads plus malformed form fields (missing file, phrases
not JSON, empty/huge/non-string phrases, unknown modality, bad score_threshold / masks, wrong
content types, non-multipart bodies) are POSTed to ``/v1/ground`` and ``/v1/ground-volume``. A 5xx
status or an exception escaping the app is a failure; ``/healthz`` must answer 200 at the end.

Exit status: 1 when any crash, 5xx or escaped exception was seen, else 0.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

#: Seconds one input may take in the worker before it counts as a hang (and the worker is restarted).
WORKER_HANG_S = 60.0
SHOW_TRACEBACKS = 5


# =============================================================================== (a) readers
def _quiet() -> None:
    """Silence library chatter (ITK's stderr warnings, nibabel/tifffile logging) in the worker."""
    import logging

    logging.disable(logging.CRITICAL)
    try:
        import SimpleITK as sitk

        sitk.ProcessObject_SetGlobalWarningDisplay(False)
    except Exception:  # pragma: no cover
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # C libraries print straight to fd 2


def worker_main() -> None:
    """Read ``{"path": ..., "fns": [...]}`` lines on stdin; answer one JSON line per input on stdout."""
    import test_fuzz_readers as fz

    out = os.fdopen(os.dup(1), "w", buffering=1)
    _quiet()
    for line in sys.stdin:
        job = json.loads(line)
        path = Path(job["path"])
        res = {}
        for name in job["fns"]:
            fn, check = fz.CHECKS[name]
            t0 = time.perf_counter()
            try:
                outcome, dt = fz.call(fn, path, check(path))
                res[name] = {"outcome": outcome, "s": dt}
            except fz.Crash as exc:
                res[name] = {"outcome": "crash", "s": time.perf_counter() - t0,
                             "error": str(exc).splitlines()[0][:300], "traceback": fz.format_crash(exc)}
        out.write(json.dumps(res) + "\n")


class Worker:
    """A reader worker process; ``run`` returns its answer, or a crash record on a signal/hang."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.lines: queue.Queue = queue.Queue()
        self.restarts = 0

    def _start(self) -> None:
        env = dict(os.environ, PYTHONFAULTHANDLER="1", OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, self.lines), daemon=True).start()

    @staticmethod
    def _pump(proc: subprocess.Popen, q: queue.Queue) -> None:
        for line in proc.stdout:
            q.put(line)
        q.put(None)

    def run(self, path: Path, fns: list[str]) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        t0 = time.perf_counter()
        try:
            self.proc.stdin.write(json.dumps({"path": str(path), "fns": fns}) + "\n")
            self.proc.stdin.flush()
            line = self.lines.get(timeout=WORKER_HANG_S)
        except queue.Empty:
            self.proc.kill()
            self.proc.wait()
            self.proc, self.restarts = None, self.restarts + 1
            return {"worker": {"outcome": "crash", "s": time.perf_counter() - t0,
                               "error": f"hang: no answer within {WORKER_HANG_S:.0f} s", "traceback": ""}}
        except BrokenPipeError:
            line = None
        if line is None:
            rc = self.proc.wait()
            self.proc, self.restarts = None, self.restarts + 1
            return {"worker": {"outcome": "crash", "s": time.perf_counter() - t0,
                               "error": f"worker died (exit status {rc}; negative = signal)", "traceback": ""}}
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def fuzz_readers(n: int, seed: int, tmp: Path) -> dict:
    import test_fuzz_readers as fz

    seeds = {k: p.read_bytes() for k, p in fz.write_seeds(tmp / "seeds").items()}
    rng = np.random.default_rng(seed)
    worker = Worker()
    worker.run(tmp / "seeds" / "seed8.png", ["read_image", "to_display"])  # start-up (imports) is not an input's time
    counts: collections.Counter = collections.Counter()     # (function, outcome) -> n
    by_seed: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    crashes: list[dict] = []
    max_s, max_what = 0.0, ""
    t_start = time.perf_counter()
    for i in range(n):
        m = fz.random_mutant(seeds, rng)
        path = fz.write_mutant(m, tmp, f"fz{i:05d}")
        fns = [f for f in fz.CHECKS if f != "read_mask_2d" or path.suffix.lower() in fz.MASK_SUFFIXES]
        t0 = time.perf_counter()
        res = worker.run(path, fns)
        wall = time.perf_counter() - t0
        if wall > max_s:
            max_s, max_what = wall, f"{m.seed}: {m.what}"
        worst = "ok"
        for fn, r in res.items():
            counts[fn, r["outcome"]] += 1
            if r["outcome"] == "crash":
                worst = "crash"
                crashes.append({"input": i, "seed": m.seed, "mutation": m.what, "file": path.name, "function": fn,
                                "error": r["error"], "traceback": r.get("traceback", "")})
                keep = tmp.parent / "crashers"
                keep.mkdir(exist_ok=True)
                if path.is_file():
                    (keep / path.name).write_bytes(path.read_bytes())
            elif r["outcome"] == "rejected" and worst == "ok":
                worst = "rejected"
        counts["inputs", worst] += 1
        by_seed[m.seed]["crash" if worst == "crash" else res.get("read_image", {}).get("outcome", "crash")] += 1
        fz.remove(path)
    worker.close()
    return {"inputs": n, "seconds": time.perf_counter() - t_start, "counts": counts, "by_seed": by_seed,
            "crashes": crashes, "max_s": max_s, "max_what": max_what, "worker_restarts": worker.restarts}


# =============================================================================== (b) HTTP
_VOLUME_SEEDS = ("nii", "niigz", "nrrd", "nrrdgz", "mha", "tiff3d", "dicom_ct")
_BAD_PHRASES = ["not json [", "[]", "", "[1, 2]", "[null]", '{"a": 1}', '"just a string"', "[" + '"x",' * 500 + '"x"]',
                json.dumps(["a" * 100_000]), "a," * 1000, ",,,", "brain tumor, left kidney", "   ", "\x00\x01",
                json.dumps([["nested"]]), "[" * 10000, '["\\ud800"]', "1e999", "NaN", json.dumps(["..."]),
                json.dumps(["liver"] * 40), "liver\nleft kidney", json.dumps([""]), json.dumps(["x" * 201])]
_BAD_MODALITY = ["BOGUS", "", "ct", "Ct ", "x" * 10000, "null", "\x00", "MR", "auto", "PET", "[]"]
_BAD_THRESHOLD = ["abc", "-1", "NaN", "nan", "inf", "2", "", "1e999", "0.5", "-inf", "0x10", "1,5", " "]
_BAD_MASKS = ["maybe", "true", "1", "", "no", "yes", "2", "TRUE", "on"]
_CONTENT_TYPES = ["image/png", "application/octet-stream", "text/plain", "", "multipart/form-data", "application/dicom",
                  "image/jpeg; charset=utf-8", "x" * 300]
_FILENAMES = ["", "../../etc/passwd", "x" * 1000, "a/b/c.png", "nul", ".nii.gz", "..", "up.nrrd", "C:\\x\\y.dcm",
              "é€💥.png", " .png"]


def _multipart(parts: list[tuple[bytes, bytes]], boundary: bytes = b"fuzzBOUNDARY", close: bool = True) -> bytes:
    """A hand-made multipart body: ``parts`` are ``(raw header lines, body)``; nothing is validated."""
    out = b"".join(b"--" + boundary + b"\r\n" + head + b"\r\n\r\n" + body + b"\r\n" for head, body in parts)
    return out + (b"--" + boundary + b"--\r\n" if close else b"")


def _http_cases(seeds: dict[str, bytes], rng: np.random.Generator, n: int):
    """Yield ``(description, endpoint, request kwargs)``: n mutated uploads and malformed requests."""
    import test_fuzz_readers as fz

    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    phrases_ok = '["brain tumor", "left kidney"]'
    for i in range(n):
        endpoint = "/v1/ground" if rng.random() < 0.6 else "/v1/ground-volume"
        r = float(rng.random())
        if r < 0.15:  # an untouched seed: the success path (volumes to the volume endpoint)
            names = [k for k in sorted(seeds) if (k in _VOLUME_SEEDS) == (endpoint != "/v1/ground")]
            seed = pick(names)
            m = fz.Mutant(seed, "untouched", seeds[seed], fz.SEED_SUFFIX[seed])
        else:
            m = fz.random_mutant(seeds, rng)
            if m.data is None:  # folders cannot be uploaded: send a seed instead
                seed = pick(sorted(seeds))
                m = fz.Mutant(seed, "untouched", seeds[seed], fz.SEED_SUFFIX[seed])
        filename = f"up{i}_{m.seed}{m.suffix}"
        data: dict[str, str] = {"phrases": phrases_ok}
        files = {"file": (filename, m.data, "application/octet-stream")}
        what = f"{m.seed}: {m.what}"
        kind = int(rng.integers(12))
        if kind == 1:
            data["phrases"] = pick(_BAD_PHRASES)
            what += f"; phrases={data['phrases'][:40]!r}"
        elif kind == 2:
            data["modality"] = pick(_BAD_MODALITY)
            what += f"; modality={data['modality'][:20]!r}"
        elif kind == 3:
            data["score_threshold"] = pick(_BAD_THRESHOLD)
            what += f"; score_threshold={data['score_threshold']!r}"
        elif kind == 4:
            data["masks"] = pick(_BAD_MASKS)
            what += f"; masks={data['masks']!r}"
        elif kind == 5:
            yield "missing file", endpoint, {"data": data}
            continue
        elif kind == 6:
            del data["phrases"]
            what += "; no phrases"
        elif kind == 7:  # not multipart at all, or a broken multipart body
            body = rng.integers(0, 256, int(rng.integers(0, 4096)), dtype=np.uint8).tobytes()
            ct = pick(["multipart/form-data", "multipart/form-data; boundary=xyz", "application/json",
                       "application/x-www-form-urlencoded", "image/png", "", "multipart/form-data; boundary="])
            if rng.random() < 0.5:
                body = json.dumps({"file": "x", "phrases": ["liver"]}).encode() if ct == "application/json" else body
            yield f"raw body ({ct or 'no content-type'})", endpoint, {"content": body, "headers": {"content-type": ct}}
            continue
        elif kind == 8:  # hand-made multipart with odd part headers
            disp = pick([b'form-data; name="file"; filename="a\x00b.png"', b'form-data; name="file"',
                         b'form-data; filename="x.png"', b"form-data", b'form-data; name="file"; filename="\xff\xfe.nii"',
                         b'form-data; name="file"; filename="' + b"y" * 5000 + b'"', b'attachment; name="file"'])
            parts = [(b"Content-Disposition: " + disp + b"\r\nContent-Type: " + pick([b"image/png", b"\x01", b""]),
                      m.data),
                     (b'Content-Disposition: form-data; name="phrases"', phrases_ok.encode())]
            if rng.random() < 0.3:
                parts.append((b'Content-Disposition: form-data; name="phrases"', b"liver"))
            body = _multipart(parts, close=rng.random() < 0.8)
            yield f"{what}; raw multipart {disp[:40]!r}", endpoint, {
                "content": body, "headers": {"content-type": "multipart/form-data; boundary=fuzzBOUNDARY"}}
            continue
        elif kind == 9:
            files = {"file": (pick(_FILENAMES), m.data, pick(_CONTENT_TYPES))}
            what += f"; filename={files['file'][0][:20]!r}, content-type={files['file'][2][:20]!r}"
        elif kind == 10:
            files = {"file": (filename, m.data, "image/png"), "file2": ("x.png", seeds["png8"], "image/png")}
            data["junk"] = "x" * 1000
            data["top_k"] = pick(["0", "-3", "abc", "5", "1e9"])
            data["plane"] = pick(["axial", "bogus", "", "CORONAL"])
            what += f"; extra parts, top_k={data['top_k']}, plane={data['plane']!r}"
        elif kind == 11:
            data["phrases"] = phrases_ok
            files = {"file": ("text.png", pick([b"phrases", b"\x00", b"P" * 100]), "image/png")}
            what = "tiny non-image upload"
        yield what, endpoint, {"data": data, "files": files}


class _ErrorLog:
    """Collects the tracebacks the service logs with its 500 answers (library chatter stays silent)."""

    def __init__(self) -> None:
        import logging

        class Handler(logging.Handler):
            def emit(handler, record: logging.LogRecord) -> None:
                text = record.getMessage()
                if record.exc_info:
                    text += "\n" + "".join(traceback.format_exception(*record.exc_info))
                self.records.append(text)

        self.records: list[str] = []
        self.handler = Handler(level=logging.ERROR)

    def __enter__(self) -> _ErrorLog:
        import logging

        logging.disable(logging.WARNING)
        logging.getLogger().addHandler(self.handler)
        self.saved_fd = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)  # ITK / tifffile / python-multipart print to stderr
        os.close(devnull)
        return self

    def __exit__(self, *exc: object) -> None:
        import logging

        os.dup2(self.saved_fd, 2)
        os.close(self.saved_fd)
        logging.getLogger().removeHandler(self.handler)
        logging.disable(logging.NOTSET)

    def take(self) -> str:
        out, self.records[:] = "\n".join(self.records), []
        return out


def fuzz_http(n: int, seed: int, tmp: Path) -> dict:
    with _ErrorLog() as errors:
        return _fuzz_http(n, seed, tmp, errors)


def _fuzz_http(n: int, seed: int, tmp: Path, errors: _ErrorLog) -> dict:
    import torch
    from fastapi.testclient import TestClient

    import test_fuzz_readers as fz
    from medglip.infer import Grounder
    from medglip.model import GroundingModel, get_preset, save_checkpoint
    from medglip.serve import ServiceConfig, create_app

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    run_dir = save_checkpoint(GroundingModel(get_preset("tiny", score_threshold=0.0)).eval(), tmp / "run")
    grounder = Grounder.from_pretrained(run_dir, refiner=None)
    seeds = {k: p.read_bytes() for k, p in fz.write_seeds(tmp / "http_seeds").items()}
    app = create_app(grounder, config=ServiceConfig(max_upload_bytes=8 * 2**20))
    rng = np.random.default_rng(seed + 1)
    status: collections.Counter = collections.Counter()
    by_endpoint: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures: list[dict] = []
    max_s, max_what = 0.0, ""
    t_start = time.perf_counter()
    cases = list(_http_cases(seeds, rng, n))
    # and the big ones, once each: an over-limit upload, a huge phrase list
    big = os.urandom(9 * 2**20)
    cases.append(("upload above max_upload_bytes", "/v1/ground",
                  {"data": {"phrases": '["x"]'}, "files": {"file": ("big.png", big, "image/png")}}))
    cases.append(("10000 phrases", "/v1/ground",
                  {"data": {"phrases": json.dumps(["p%d" % i for i in range(10000)])},
                   "files": {"file": ("a.png", seeds["png8"], "image/png")}}))
    with TestClient(app, raise_server_exceptions=True) as client:
        for what, endpoint, kw in cases:
            t0 = time.perf_counter()
            try:
                req = client.build_request("POST", endpoint, **kw)
            except Exception:  # httpx refuses to send it (not the app's doing)
                status["not sent (client refused)"] += 1
                continue
            try:
                r = client.send(req)
                code = r.status_code
            except Exception as exc:
                code = "exception"
                failures.append({"request": what, "endpoint": endpoint, "status": code,
                                 "error": f"{type(exc).__name__}: {exc}"[:300],
                                 "traceback": traceback.format_exc()})
            else:
                logged = errors.take()
                if code >= 500:
                    failures.append({"request": what, "endpoint": endpoint, "status": code, "error": r.text[:300],
                                     "traceback": logged})
            dt = time.perf_counter() - t0
            if dt > max_s:
                max_s, max_what = dt, f"{endpoint} {what}"
            status[code] += 1
            by_endpoint[endpoint][code] += 1
        health = client.get("/healthz").status_code
    return {"requests": len(cases), "seconds": time.perf_counter() - t_start, "status": status,
            "by_endpoint": by_endpoint, "failures": failures, "healthz": health, "max_s": max_s,
            "max_what": max_what}


# =============================================================================== report
def _table(rows: list[tuple], header: tuple) -> str:
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h)) for i, h in enumerate(header)]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(header, widths))
    return "\n".join([line, "  ".join("-" * w for w in widths)] +
                     ["  ".join(f"{c:<{w}}" for c, w in zip(r, widths)) for r in rows])


def report_readers(res: dict) -> None:
    c = res["counts"]
    print(f"\n(a) READERS: {res['inputs']} mutated inputs in {res['seconds']:.1f} s "
          f"(worker restarts: {res['worker_restarts']})")
    rows = [(fn if fn != "inputs" else "inputs (all calls ok / any rejected / any crash)",
             c[fn, "ok"], c[fn, "rejected"], c[fn, "crash"])
            for fn in ("inputs", "read_image", "to_display", "read_label", "read_mask_2d", "worker")
            if any(c[fn, o] for o in ("ok", "rejected", "crash"))]
    print(_table(rows, ("calls", "clean read", "ReadError/MedglipError", "CRASH")))
    print("\nper seed (read_image: clean read / rejected; crash: any function crashed on the input):")
    print(_table([(s, v["ok"], v["rejected"], v["crash"]) for s, v in sorted(res["by_seed"].items())],
                 ("seed", "clean", "rejected", "crash")))
    print(f"\nmax wall time per input (all functions, incl. IPC): {res['max_s']:.3f} s  [{res['max_what']}]")
    crashes = res["crashes"]
    groups = crash_groups(crashes)
    print(f"CRASHES: {len(crashes)} ({len(groups)} distinct)")
    for sig, items in groups.items():
        print(f"  {len(items):4d} x {sig}")
    for items in list(groups.values())[:SHOW_TRACEBACKS]:
        cr = items[0]
        print(f"\n--- crash in {cr['function']} on input {cr['input']} ({cr['seed']}: {cr['mutation']}): {cr['error']}")
        print(cr["traceback"].rstrip()[-3000:])


def crash_groups(crashes: list[dict]) -> dict[str, list[dict]]:
    """Crashes grouped by a signature: the function, the seed's format and the error with numbers blanked."""
    import re

    groups: dict[str, list[dict]] = {}
    for cr in crashes:
        err = re.sub(r"\d+(\.\d+)?", "#", cr["error"].split(": ", 1)[0] + ": " + cr["error"].split(": ", 1)[-1])
        err = re.sub(r"fz#_\S+", "<file>", err)[:160]
        groups.setdefault(f"{cr['function']} [{cr['seed']}] {err}", []).append(cr)
    return groups


def report_http(res: dict) -> None:
    print(f"\n(b) HTTP: {res['requests']} requests in {res['seconds']:.1f} s")
    codes = sorted(res["status"], key=str)
    rows = [(ep, *[cnt[k] for k in codes]) for ep, cnt in sorted(res["by_endpoint"].items())]
    rows.append(("all", *[res["status"][k] for k in codes]))
    print(_table(rows, ("endpoint", *[str(k) for k in codes])))
    n5 = sum(v for k, v in res["status"].items() if isinstance(k, int) and k >= 500)
    print(f"\n5xx: {n5}   escaped exceptions: {res['status'].get('exception', 0)}   /healthz at the end: {res['healthz']}")
    print(f"max wall time per request: {res['max_s']:.3f} s  [{res['max_what'][:120]}]")
    groups: dict[str, list[dict]] = {}
    for f in res["failures"]:
        last = (f["traceback"].strip().splitlines() or [f["error"]])[-1][:150]
        groups.setdefault(f"{f['status']} {last}", []).append(f)
    print(f"failures: {len(res['failures'])} ({len(groups)} distinct)")
    for sig, items in groups.items():
        print(f"  {len(items):4d} x {sig}")
    for items in list(groups.values())[:SHOW_TRACEBACKS]:
        f = items[0]
        print(f"\n--- {f['status']} on {f['endpoint']} ({f['request'][:150]}): {f['error']}")
        if f["traceback"]:
            print(f["traceback"].rstrip()[-3000:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="mutated files for the readers (default 2000)")
    ap.add_argument("--http-n", type=int, default=None, help="HTTP requests (default n / 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write the figures (and crashes) as JSON here")
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--skip-readers", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="folder to keep crashing inputs in")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker_main()
        return 0
    http_n = args.http_n if args.http_n is not None else max(50, args.n // 2)
    out: dict = {"n": args.n, "http_n": http_n, "seed": args.seed}
    failed = False
    with tempfile.TemporaryDirectory(prefix="medglip_fuzz_") as td:
        tmp = Path(td) / "work"
        tmp.mkdir()
        if not args.skip_readers:
            res = fuzz_readers(args.n, args.seed, tmp)
            report_readers(res)
            failed |= bool(res["crashes"])
            if args.keep and (tmp.parent / "crashers").exists():
                args.keep.mkdir(parents=True, exist_ok=True)
                for f in (tmp.parent / "crashers").iterdir():
                    (args.keep / f.name).write_bytes(f.read_bytes())
            out["readers"] = {"inputs": res["inputs"], "seconds": round(res["seconds"], 2),
                              "counts": {f"{fn}/{o}": v for (fn, o), v in sorted(res["counts"].items())},
                              "by_seed": {s: dict(v) for s, v in res["by_seed"].items()},
                              "max_s": round(res["max_s"], 4), "max_input": res["max_what"],
                              "worker_restarts": res["worker_restarts"], "crashes": res["crashes"]}
        if not args.skip_http:
            res = fuzz_http(http_n, args.seed, tmp)
            report_http(res)
            n5 = sum(v for k, v in res["status"].items() if isinstance(k, int) and k >= 500)
            failed |= bool(n5 or res["status"].get("exception") or res["healthz"] != 200)
            out["http"] = {"requests": res["requests"], "seconds": round(res["seconds"], 2),
                           "status": {str(k): v for k, v in res["status"].items()},
                           "by_endpoint": {e: {str(k): v for k, v in c.items()} for e, c in res["by_endpoint"].items()},
                           "healthz": res["healthz"], "max_s": round(res["max_s"], 4), "failures": res["failures"]}
    out["failed"] = failed
    print("\nSUMMARY")
    rows = []
    if "readers" in out:
        r = out["readers"]
        c = r["counts"]
        rows.append(("readers", r["inputs"], c.get("inputs/ok", 0), c.get("inputs/rejected", 0), "-",
                     len(r["crashes"]), f"{r['max_s']:.3f}"))
    if "http" in out:
        h = out["http"]
        n5 = sum(v for k, v in h["status"].items() if k.isdigit() and int(k) >= 500)
        n2 = sum(v for k, v in h["status"].items() if k.isdigit() and int(k) < 300)
        n4 = sum(v for k, v in h["status"].items() if k.isdigit() and 400 <= int(k) < 500)
        rows.append(("http", h["requests"], n2, n4, n5, h["status"].get("exception", 0), f"{h['max_s']:.3f}"))
    print(_table(rows, ("phase", "inputs tried", "ok / 2xx", "rejected / 4xx", "5xx", "crashes / escaped",
                        "max s per input")))
    if "http" in out:
        print(f"/healthz at the end: {out['http']['healthz']}")
    print(f"\nRESULT: {'FAIL' if failed else 'PASS'}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
