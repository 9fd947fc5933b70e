"""Seconds per slice of the image encoders on CPU: ``default`` (EfficientNet-Lite0) vs ``default-medsam``
(LiteMedSAM's TinyViT), forward only, real weights, one real MR slice (pyradiomics brain1).

Per preset: the image encoder (backbone + FPN, what the Grounder runs once per image) and the whole
model's forward in eval mode (+ text encoder, fusion, head, post-processing; one prompt of three
phrases), the median of ``--repeats`` runs after one warm-up. One shared encoder is built per preset
(``own_encoder_modalities=()``): a slice runs one encoder whatever their number.

    OMP_NUM_THREADS=1 python benchmarks/bench_encoders.py [--size 256] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import medglip
from medglip.core.intensity import percentile_range, window_to_uint8
from medglip.core.orient import plan_slices
from medglip.core.pipeline import to_tensor
from medglip.io import read_image
from medglip.model import GroundingModel, get_preset

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256, help="input side (both presets)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--presets", nargs="+", default=["default", "default-medsam"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    image = read_image(SAMPLES / "brain1_image.nrrd")
    plan = plan_slices(image.geometry, image.array.shape, "axial")
    lo, hi = percentile_range(image.array, 0.5, 99.5)
    pixels = window_to_uint8(plan.take(image.array, 11), lo, hi)
    x = to_tensor(pixels, args.size)[0][None]

    print(f"CPU, {args.threads} thread(s), {args.size} px, median of {args.repeats}")
    print("| preset | backbone | image encoder params | image encoder s/slice | whole forward s/slice |")
    print("|---|---|---:|---:|---:|")
    for name in args.presets:
        cfg = get_preset(name, image_size=args.size, own_encoder_modalities=())
        model = GroundingModel(cfg).eval()
        mr = torch.tensor([cfg.modalities.index("MR")])
        prompt = model.build_prompts(["brain tumor", "left kidney", "liver"])[0]
        with torch.inference_mode():
            enc = _median_seconds(lambda: model.image_encoder(x, mr), args.repeats)
            whole = _median_seconds(lambda: model(x, mr, [prompt]), args.repeats)
        params = sum(p.numel() for p in model.image_encoder.parameters())
        print(f"| {name} | {cfg.backbone} | {params / 1e6:.2f} M | {enc:.3f} | {whole:.3f} |", flush=True)


if __name__ == "__main__":
    main()
