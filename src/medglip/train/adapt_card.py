"""What ``medglip adapt`` reports: the forgetting check and the run's card (``ADAPT_CARD.md`` + ``adapt.json``).

Forgetting is measured on what the start model already did: the same split (the shipped model's test
patients) is grounded by the start model and by the adapted one, and Acc@0.5 (the top box of each
present phrase at IoU ≥ 0.5, :mod:`medglip.evaluate`) is compared; ``kept`` is the share of the start
model's hits the adapted model still hits. Within :data:`MAX_DROP` (5 points) the adaptation kept its
accuracy; otherwise the card says what it gave up.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..core.files import atomic_write_json, atomic_write_text

#: the largest Acc@0.5 drop (a fraction: 0.05 = 5 points) on the start model's test patients that counts as kept
MAX_DROP = 0.05


#: the card's words for adapt's ``norm_stats``
NORM_WORDS = {"update": "updated by training", "keep": "the start model's, kept"}


@dataclass(frozen=True)
class Forgetting:
    """Acc@0.5 of the start (base) and adapted models on one split, and the start model's hits kept.

    Attributes:
        dataset, split: where it was measured; pairs: present (image, phrase) pairs scored.
        base_acc50, adapted_acc50: Acc@0.5 of each model (fractions); drop: base − adapted.
        kept: the share of the base's hits the adapted model also hits (None: the base hit nothing).
        within: ``drop <= MAX_DROP``.
        by_phrase: ``{phrase: (base Acc@0.5, adapted Acc@0.5)}``.
    """

    dataset: str
    split: str
    pairs: int
    base_acc50: float
    adapted_acc50: float
    drop: float
    kept: float | None
    within: bool
    by_phrase: dict[str, tuple[float, float]]


def _hits(run: str | Path, dataset: Path, split: str) -> dict[tuple[int, str], bool]:
    from ..evaluate import predict_dataset, read_split
    from ..evaluate.grounding import group_predictions, score_present_pairs
    from ..evaluate.groundtruth import GroundTruth
    from ..infer import Grounder

    grounder = Grounder.from_pretrained(run, refiner=None)
    preds, _ = predict_dataset(grounder, dataset, split=split, phrases="case", max_per_phrase=1)
    gt = GroundTruth.from_coco(read_split(dataset, split))
    pairs = score_present_pairs(gt, group_predictions(preds), score_threshold=1.0, with_masks=False)
    return {(p.image_id, p.phrase): p.hit for p in pairs}


def forgetting(run: str | Path, reference_data: str | Path, *, base: str | Path, split: str = "test") -> Forgetting:
    """Acc@0.5 of ``base`` (the start model's run folder) and of the adapted ``run`` on ``split`` of
    ``reference_data`` (a built dataset: the shipped model's test patients), every present phrase asked
    on every image with the other phrases of its case (:func:`medglip.evaluate.plan_queries` ``case``).

    Raises:
        medglip.evaluate.EvaluationError: the split is missing or has no present pair.
    """
    from ..evaluate import EvaluationError

    dataset = Path(reference_data)
    before, after = _hits(base, dataset, split), _hits(run, dataset, split)
    if not before:
        raise EvaluationError(f"{dataset}/{split}: no present (image, phrase) pair to measure forgetting on")
    b = sum(before.values()) / len(before)
    a = sum(after.get(k, False) for k in before) / len(before)
    base_hits = [k for k, hit in before.items() if hit]
    kept = sum(after.get(k, False) for k in base_hits) / len(base_hits) if base_hits else None
    by_phrase: dict[str, tuple[float, float]] = {}
    for phrase in sorted({p for _, p in before}):
        keys = [k for k in before if k[1] == phrase]
        by_phrase[phrase] = (
            round(sum(before[k] for k in keys) / len(keys), 4),
            round(sum(after.get(k, False) for k in keys) / len(keys), 4),
        )
    return Forgetting(
        dataset=str(dataset),
        split=split,
        pairs=len(before),
        base_acc50=round(b, 4),
        adapted_acc50=round(a, 4),
        drop=round(b - a, 4),
        kept=None if kept is None else round(kept, 4),
        within=b - a <= MAX_DROP + 1e-9,
        by_phrase=by_phrase,
    )


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.1f}%"


def forgetting_text(f: Forgetting) -> str:
    """The card's paragraph on forgetting: kept, or what was given up."""
    head = (
        f"On {f.pairs} present pairs of `{f.dataset}` / {f.split}, Acc@0.5 went from {_pct(f.base_acc50)} "
        f"(start model) to {_pct(f.adapted_acc50)} (adapted); the adapted model still hits "
        f"{_pct(f.kept)} of what the start model hit."
    )
    if f.within:
        return head + f" Within {100 * MAX_DROP:.0f} points: the start model's accuracy is kept."
    lost = [f"{p} ({_pct(b)} → {_pct(a)})" for p, (b, a) in f.by_phrase.items() if a < b]
    return head + (
        f" **Given up: {100 * f.drop:.1f} points of Acc@0.5, more than the {100 * MAX_DROP:.0f} allowed** "
        f"— lost on: {', '.join(lost) or 'no single phrase'}."
    )


def write_card(run: Path, info: dict[str, Any], forgetting_result: Forgetting | None) -> None:
    """``RUN/adapt.json`` (``info`` + the forgetting figures) and ``RUN/ADAPT_CARD.md``."""
    doc = {**info, "forgetting": asdict(forgetting_result) if forgetting_result is not None else None}
    atomic_write_json(run / "adapt.json", json.loads(json.dumps(doc, default=str)), indent=1)
    t = info["times_s"]
    lines = [
        f"# Adapted model: {', '.join(info['phrases'])}",
        "",
        (
            f"Adapted from **{info['start']['kind']}** `{info['start'].get('name') or info['start']['path']}` "
            f"(tensors' SHA-256 `{info['start']['sha256'][:16]}…`), method **{info['method']}**"
            + (f" (`auto` → {info['method']})" if info["method_asked"] == "auto" else "")
            + "."
        ),
        "",
        "| | |",
        "|---|---|",
        (
            f"| cases used | {len(info['cases'])} training ({', '.join(info['cases'])}); "
            f"{len(info['val_cases'])} validation |"
        ),
        f"| patients | {len(info['patients'])} |",
        f"| images / boxes | {info['train_images']} / {info['train_boxes']} |",
        f"| modalities | {', '.join(info['modalities'])} |",
        (
            f"| rehearsal | 1 step in {info['replay']['every']}: a batch of `{info['replay']['dataset']}` |"
            if info.get("replay")
            else "| rehearsal | none |"
        ),
        f"| change kept | {info.get('keep_share', 1.0):g} of the trained change (the rest back to the start model) |",
        f"| BatchNorm statistics | {NORM_WORDS.get(info.get('norm_stats', 'update'), info.get('norm_stats'))} |",
        (
            f"| steps | {info['steps']} ({'budget spent' if info['budget_bound'] else 'max_steps reached'}; "
            f"budget {info['budget_minutes']:g} min) |"
        ),
        (
            f"| time | data {t['data']:.0f} s, training {t['train']:.0f} s, calibration {t['calibrate']:.0f} s, "
            f"total {t['total']:.0f} s |"
        ),
        f"| loss | {info['first_loss']} → {info['last_loss']} |",
        f"| trained parameters | {info['trained_parameters']:,} |",
        (
            f"| stored | {info['stored_tensors']} tensors + {info['low_rank_tensors']} low-rank, "
            f"{info['weights_bytes'] / 1e6:.2f} MB |"
        ),
        "",
        "## Thresholds",
        "",
        (
            f"Calibrated on the **{info['calibration']['split']}** split"
            + (
                " — there was no labelled validation case, so on the training cases themselves (optimistic)"
                if info["calibration"]["split"] == "train"
                else ""
            )
            + f" ({info['calibration']['present_pairs']} present,"
            f" {info['calibration']['absent_pairs']} absent pairs)."
        ),
        "",
        *[f"- {p}: {th:.2f}" for p, th in info["calibration"]["thresholds"].items()],
        "",
        "## Forgetting",
        "",
        forgetting_text(forgetting_result)
        if forgetting_result is not None
        else "Not measured in this run (pass reference= / --reference with the start model's test patients).",
        "",
    ]
    atomic_write_text(run / "ADAPT_CARD.md", "\n".join(lines))
