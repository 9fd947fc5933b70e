"""Draw the README's picture: a model grounding held-out sample patients, ground truth beside prediction.

    python scripts/draw_readme_picture.py                      # the shipped model → docs/images/grounding_example.png
    python scripts/draw_readme_picture.py --checkpoint RUN --out other.png

The patients are the test patients of the shipped model's recipe that medglip ships in their datasets'
own layouts (``src/medglip/samples/heldout/``, built with its ``recipe.yaml``): the slice of LGG patient
TCGA_CS_4942_19970222 with the largest tumour, asked for "brain tumor", and the slice of MSD hippocampus
patient hippocampus_037 with the largest hippocampus, asked for "anterior hippocampus" and
"posterior hippocampus". Each is grounded as ``medglip eval`` and ``medglip demo`` ground it (the built
slice, the model's calibrated thresholds, masks from its mask head or else LiteMedSAM) and drawn with
medglip's own drawer (:func:`medglip.show.render_image`): ground truth left, the top box of each phrase
right. Re-run it whenever the shipped model changes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
HELDOUT = ROOT / "src" / "medglip" / "samples" / "heldout"
#: (case id prefix, phrases asked, how the row is described)
ROWS = (
    ("TCGA_CS_4942_19970222", ("brain tumor",), "TCGA_CS_4942 (FLAIR)"),
    ("hippocampus_037", ("anterior hippocampus", "posterior hippocampus"), "hippocampus_037"),
)
GAP = 8


def _pick(coco: dict, case_prefix: str) -> dict:
    """The image of the case(s) starting with ``case_prefix`` whose ground truth covers the most pixels."""
    area: dict[int, float] = {}
    for a in coco["annotations"]:
        area[a["image_id"]] = area.get(a["image_id"], 0.0) + float(a.get("area") or 0.0)
    images = [im for im in coco["images"] if str(im.get("case_id", "")).startswith(case_prefix)]
    if not images:
        raise SystemExit(f"no image of {case_prefix} in the built held-out samples")
    return max(images, key=lambda im: (area.get(im["id"], 0.0), -im["id"]))


def _prediction_annotations(result, categories: dict[int, dict]) -> tuple[list[dict], list[str]]:
    """The top box of each phrase of a GroundingResult as dataset-style annotations (phrase + score), and
    the phrases without a box above the threshold."""
    from medglip.core.boxes import xyxy_to_xywh
    from medglip.core.masks import encode_rle

    by_name = {c["name"]: cid for cid, c in categories.items()}
    anns, missing = [], []
    for k, g in enumerate(result.groundings):
        if not len(g):
            missing.append(g.phrase)
            continue
        ann = {"id": k, "category_id": by_name.get(g.phrase, 100 + k), "bbox": xyxy_to_xywh([g.boxes[0]])[0].tolist(),
               "phrase": f"{g.phrase} {float(g.scores[0]):.2f}"}
        if g.masks is not None:
            ann["segmentation"] = encode_rle(g.masks[0])
        anns.append(ann)
    return anns, missing


def _side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    pic = Image.new("RGB", (left.width + GAP + right.width, max(left.height, right.height)), (24, 24, 24))
    pic.paste(left, (0, 0))
    pic.paste(right, (left.width + GAP, 0))
    return pic


def draw(checkpoint: Path | None, out: Path, work: Path, device: str = "cpu",
         score_threshold: float | str = "calibrated") -> Path:
    from medglip.dataset import build_recipe, load_recipe
    from medglip.core.draw import BACKGROUND, fit_text, font
    from medglip.infer import Grounder
    from medglip.model.shipped import SHIPPED_NAME
    from medglip.show import render_image

    result = build_recipe(load_recipe(HELDOUT / "recipe.yaml"), work)
    if result.failed or result.failed_sources:
        raise SystemExit(f"the held-out samples failed to build: {result.failed or result.failed_sources}")
    coco = json.loads((work / "annotations" / "test.json").read_text())
    categories = {c["id"]: c for c in coco["categories"]}
    gt_of: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        gt_of.setdefault(a["image_id"], []).append(a)
    grounder = Grounder.from_pretrained(checkpoint, device=device)
    model = f"{SHIPPED_NAME} (shipped)" if checkpoint is None else Path(checkpoint).name
    rows = []
    for prefix, phrases, what in ROWS:
        im = _pick(coco, prefix)
        res = grounder.ground([str(work / "images" / im["file_name"])], list(phrases), modality=im["modality"],
                              masks=True, score_threshold=score_threshold)[0]
        anns, missing = _prediction_annotations(res, categories)
        for note in res.untrained:
            print(f"untrained: {note}")
        print(f"{what}: {im['file_name']}: " + "; ".join(
            f"{g.phrase} {float(g.scores[0]):.2f} at {[round(float(v), 1) for v in g.boxes[0]]}" if len(g)
            else f"{g.phrase}: no box above the threshold" for g in res.groundings))
        truth = render_image(work, {**im, "case_id": f"{what}: ground truth"}, gt_of.get(im["id"], []), categories)
        label = f"{what}: {model}" + (f"; nothing found for {', '.join(missing)}" if missing else "")
        pred = render_image(work, {**im, "case_id": label}, anns, categories)
        rows.append(_side_by_side(truth, pred))
    title = f"{model} on held-out patients it never trained on: ground truth left, prediction right"
    head = 30
    width = max(r.width for r in rows)
    title = fit_text(title, font(14), width - 12)
    pic = Image.new("RGB", (width, head + sum(r.height for r in rows) + GAP * (len(rows) - 1)), BACKGROUND)
    ImageDraw.Draw(pic).text((6, 7), title, font=font(14), fill=(235, 235, 235))
    y = head
    for r in rows:
        pic.paste(r, ((width - r.width) // 2, y))
        y += r.height + GAP
    out.parent.mkdir(parents=True, exist_ok=True)
    pic.save(out, optimize=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a run folder (medglip train output); default: the model medglip ships")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "grounding_example.png")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the built held-out samples (default: a temporary folder)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="draw boxes scoring at least this (default: the model's calibrated threshold of each phrase)")
    args = parser.parse_args()
    threshold = "calibrated" if args.score_threshold is None else args.score_threshold
    if args.work is not None:
        print(draw(args.checkpoint, args.out, args.work, args.device, threshold))
        return
    with tempfile.TemporaryDirectory(prefix="medglip-readme-") as tmp:
        print(draw(args.checkpoint, args.out, Path(tmp) / "heldout", args.device, threshold))


if __name__ == "__main__":
    main()
