"""Make README's picture of a label map over its volume, from the shipped brain1 MR volume, with the code
users run: build the samples → train the default model (or reuse --run) → ground brain1 with LiteMedSAM
masks → export labels.nii.gz + labels.json → read the label map back with nibabel and draw it over the
volume (axial, coronal and sagittal planes through the finding's centre, radiological convention).

    python scripts/label_map_picture.py --out /tmp/picture [--run RUN] [--steps 150] [--image-size 128]
    # → /tmp/picture/labels/{labels.nii.gz,labels.json}, docs/images/brain1_label_map.png
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw

import medglip
from medglip.dataset import BuildConfig, build
from medglip.core.draw import font
from medglip.core.orient import plan_slices
from medglip.export import export_volume
from medglip.infer import Grounder
from medglip.io import read_image
from medglip.io.nifti import affine_to_geometry

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"
ROOT = Path(__file__).resolve().parents[1]


def train_run(out: Path, steps: int, image_size: int, lr: float) -> Path:
    from medglip.train import TrainConfig, train

    build(BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1.0, 0.0, 0.0), negative_ratio=0.5),
          out / "dataset")
    run = out / "run"
    train(out / "dataset", run, TrainConfig(preset="default", max_steps=steps, batch_size=4, lr=lr, warmup_steps=20,
                                            checkpoint_every=steps, log_every=10,
                                            model_overrides=(("image_size", image_size),), device="cpu", seed=0),
          resume=(run / "latest.json").exists())
    return run


TRUTH_COLOUR = (255, 230, 0)


def _edge(m: np.ndarray) -> np.ndarray:
    return m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))


def panel(volume: np.ndarray, labels: np.ndarray, truth: np.ndarray, colours: dict[int, tuple[int, int, int]], plan,
          k: int, row_mm: float, col_mm: float, height: int) -> Image.Image:
    """One display slice (radiological convention) resampled to square millimetres: the volume in grey,
    the labels tinted and outlined, the ground-truth lesion's outline in yellow (outlines drawn at the
    picture's resolution)."""
    raw = plan.take(volume, k).astype(np.float64)
    lo, hi = np.percentile(raw[raw > 0] if (raw > 0).any() else raw, (0.5, 99.5))
    h, w = raw.shape
    size = (int(round(height * (w * col_mm) / (h * row_mm))), height)

    def up(a: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(a.astype(np.uint8)).resize(size, Image.NEAREST))

    grey = up(np.clip((raw - lo) / max(hi - lo, 1e-6) * 255, 0, 255))
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float64)
    lab = up(plan.take(labels, k).astype(np.uint8))
    for value, colour in colours.items():
        m = lab == value
        rgb[m] = 0.45 * rgb[m] + 0.55 * np.asarray(colour)
        rgb[_edge(m)] = colour
    rgb[_edge(up(plan.take(truth, k)) > 0)] = TRUTH_COLOUR
    return Image.fromarray(rgb.astype(np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--run", type=Path, default=None, help="a trained run (default: train the default model)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--picture", type=Path, default=ROOT / "docs" / "images" / "brain1_label_map.png")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run = args.run or train_run(args.out, args.steps, args.image_size, args.lr)
    grounder = Grounder.from_pretrained(run, refiner="medsam")
    result = grounder.ground_volume(SAMPLES / "brain1_image.nrrd", ["brain tumor"], modality="MR", masks=True,
                                    score_threshold=0.3)
    if not result.objects:
        raise SystemExit("no brain tumor found above 0.3: train longer (--steps)")
    best = int(np.argmax([o.score * o.n_slices for o in result.objects]))  # the steadiest finding
    export_volume(result, indices=[best]).write(args.out / "labels")
    side = json.loads((args.out / "labels" / "labels.json").read_text())
    nii = nib.load(str(args.out / "labels" / "labels.nii.gz"))  # the file as any tool reads it
    labels = np.asarray(nii.dataobj)
    geometry = affine_to_geometry(nii.affine)
    volume = read_image(SAMPLES / "brain1_image.nrrd").array
    truth = read_image(SAMPLES / "brain1_label.nrrd").array > 0  # the same grid as the image
    found = labels > 0
    dice = 2 * np.count_nonzero(found & truth) / max(1, np.count_nonzero(found) + np.count_nonzero(truth))
    entry = side["labels"][0]
    centre = np.rint(entry["centre_voxel"]).astype(int)
    colours = {e["label"]: tuple(e["color"]) for e in side["labels"]}
    panels = []
    for plane in ("axial", "coronal", "sagittal"):
        plan = plan_slices(geometry, labels.shape, plane)
        row_mm, col_mm = plan.pixel_spacing(geometry)
        panels.append((plane, panel(volume, labels, truth, colours, plan, int(centre[plan.slice_axis]), row_mm, col_mm,
                                    300)))
    pad, head = 8, 24
    canvas = Image.new("RGB", (sum(p.width for _, p in panels) + pad * (len(panels) + 1), 300 + head + pad * 2 + 22),
                       (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    x = pad
    for plane, p in panels:
        canvas.paste(p, (x, head + pad))
        draw.text((x, 6), plane, fill=(235, 235, 235), font=font(14))
        x += p.width + pad
    caption = (f"brain1 (MR), labels.nii.gz of medglip ground --masks --out: label {entry['label']} {entry['phrase']}, "
               f"score {entry['score']:.2f}, {entry['volume_mm3'] / 1000:.1f} mL")
    draw.text((pad, head + pad + 306), caption, fill=tuple(entry["color"]), font=font(13))
    truth_text = f"yellow: the true lesion ({np.count_nonzero(truth) * float(np.prod(geometry.spacing)) / 1000:.1f} mL), Dice {dice:.2f}"
    draw.text((canvas.width - pad - draw.textlength(truth_text, font=font(13)), head + pad + 306), truth_text,
              fill=TRUTH_COLOUR, font=font(13))
    args.picture.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.picture, optimize=True)
    print(f"{args.picture}: {canvas.size}, label {entry['label']} ({entry['voxels']} voxels), Dice {dice:.3f}")


if __name__ == "__main__":
    main()
