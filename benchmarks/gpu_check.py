"""The GPU check: train, train under torchrun (NCCL), evaluate, and measure speed, in one run.

On a machine with a CUDA GPU (under 8 minutes on one H100/H200-class GPU):

1. build the shipped real cases (brain1, breast1; brain2 held out) into a dataset;
2. train ``default`` and ``glip-t`` for ``--steps`` (200) steps with bf16 autocast, one process;
3. train ``default`` again under ``torchrun --nproc_per_node=1`` (DDP over NCCL);
4. evaluate each run on brain2 (COCO AP50, Acc@0.5);
5. images/s at 512², batch 1 and 8, bf16, for ``default``, ``glip-t`` and transformers' Grounding
   DINO (tiny: Swin-T + BERT-base, random weights) on the same input and prompt, with peak GPU memory.

It prints one Markdown table. Without a GPU (or with ``--smoke``) it runs a tiny CPU version of the
same steps (``tiny`` preset, 3 steps, 64 px, gloo) — the CI runs that, so the script cannot rot.

    bash benchmarks/gpu_check.sh            # GPU if there is one, else the CPU smoke run
    bash benchmarks/gpu_check.sh --smoke    # the CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

PHRASES = ["brain tumor", "lung tumor", "liver", "left kidney", "right kidney"]


def _row(rows: list[dict], **kw) -> None:
    rows.append(kw)
    print(json.dumps(kw), flush=True)


def _train(ds: Path, run: Path, preset: str, steps: int, size: int, batch: int, device: str, amp: str,
           torchrun: bool) -> float:
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "medglip"]
           if torchrun else [sys.executable, "-m", "medglip"])
    cmd += ["train", str(ds), "--out", str(run), "--preset", preset, "--max-steps", str(steps), "--batch-size",
            str(batch), "--image-size", str(size), "--device", device, "--amp", amp, "--lr", "3e-4",
            "--checkpoint-every", str(steps)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"training failed ({' '.join(cmd)}):\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0


def _evaluate(run: Path, ds: Path, device: str) -> dict:
    from medglip.evaluate import evaluate, predict_dataset
    from medglip.infer import Grounder

    g = Grounder.from_pretrained(run, device=device, refiner=None)
    preds, queries = predict_dataset(g, ds, split="test", phrases="all", max_per_phrase=5)
    return evaluate(ds, preds, split="test", queries=queries)["overall"]


def _speed(name: str, device: str, batch: int, size: int, amp: bool, iters: int) -> tuple[float, float | None]:
    from bench_speed import gdino_runner, measure, medglip_runner

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    fn = gdino_runner(device, batch, size) if name == "grounding-dino-tiny" else medglip_runner(name, device, batch, size)
    dt = measure(fn, device, warmup=2, iters=iters, amp=amp)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    del fn
    return batch / dt, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="the tiny CPU version even when a GPU is present")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    gpu = torch.cuda.is_available() and not args.smoke
    device, amp = ("cuda", "bf16") if gpu else ("cpu", "none")
    steps = args.steps if gpu else 3
    train_specs = ([("default", 512, 8), ("glip-t", 800, 4)] if gpu else [("tiny", 64, 2)])
    speed_specs = ([(m, b) for m in ("default", "glip-t", "grounding-dino-tiny") for b in (1, 8)] if gpu
                   else [("tiny", 1), ("tiny", 2)])
    size = 512 if gpu else 64
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(f"# medglip GPU check ({'GPU: ' + torch.cuda.get_device_name(0) if gpu else 'CPU smoke run'}), "
          f"torch {torch.__version__}", flush=True)
    rows: list[dict] = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        from medglip.dataset import BuildConfig, build
        from medglip.demo import SAMPLES

        ds = Path(tmp) / "ds"
        build(BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1, 0, 0)), ds)
        for preset, px, batch in train_specs:
            for torchrun in (False, True) if preset in ("default", "tiny") else (False,):
                run = Path(tmp) / f"{preset}{'-ddp' if torchrun else ''}"
                dt = _train(ds, run, preset, steps, px, batch, device, amp, torchrun)
                o = _evaluate(run, ds, device)
                loss = [line.split(",")[3] for line in (run / "log.csv").read_text().splitlines()[1:]]
                _row(rows, step=f"train {preset}{' (torchrun, ' + ('nccl' if gpu else 'gloo') + ')' if torchrun else ''}",
                     detail=f"{steps} steps, batch {batch}, {px} px, amp {amp}, loss {float(loss[0]):.3f} → "
                            f"{float(loss[-1]):.3f}; brain2 AP50 {o['AP50']:.3f}, Acc@0.5 {o['acc50']:.3f}",
                     seconds=round(dt, 1))
        for name, batch in speed_specs:
            ips, peak = _speed(name, device, batch, size, gpu, 10 if gpu else 2)
            _row(rows, step=f"speed {name}", detail=f"{size}², batch {batch}{', bf16' if gpu else ''}: "
                                                    f"{ips:.1f} images/s" + (f", peak {peak:.2f} GiB" if peak else ""),
                 seconds=None, images_per_s=round(ips, 2), peak_gib=None if peak is None else round(peak, 2))
    print("\n| step | result | seconds |\n|---|---|---:|")
    for r in rows:
        print(f"| {r['step']} | {r['detail']} | {'' if r['seconds'] is None else r['seconds']} |")
    print(f"\nall steps ok in {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
