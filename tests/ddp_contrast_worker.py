"""Run under ``torchrun --nproc_per_node=2`` (gloo, CPU) by tests/test_glipv2.py: the inter-image
contrastive loss sees the phrases of every rank, and gradients flow back to the rank that owns them.

Rank 0 holds one "liver" region and the phrase "liver"; rank 1 holds no region and the phrases
"spleen" and "liver tumor". Rank 0's loss must therefore score its region against "spleen" (a
negative from rank 1) and mask "liver tumor" (related); rank 1's phrase embeddings get gradients
only through the gather. Writes ``OUT/rank<k>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(rank)
    from medglip.model.contrast import RegionWordContrast, gather_phrases
    from medglip.ontology import PhraseRelations, load_ontology

    phrases = ["liver"] if rank == 0 else ["spleen", "liver tumor"]
    emb = torch.randn(len(phrases), 8, requires_grad=True)
    regions = torch.randn(1 if rank == 0 else 0, 8, requires_grad=True)
    names = ["liver"] if rank == 0 else []
    gathered, all_phrases = gather_phrases(emb, phrases)
    loss = RegionWordContrast(relations=PhraseRelations(load_ontology()), temperature=0.1)(regions, names, emb, phrases)
    loss.backward()
    report = {"rank": rank, "world": dist.get_world_size(), "gathered_phrases": all_phrases,
              "gathered_rows": int(gathered.shape[0]), "loss": float(loss),
              "emb_grad_norm": [float(g.norm()) for g in emb.grad],
              "gathered_matches_local": bool(torch.allclose(gathered[:1] if rank == 0 else gathered[1:], emb))}
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
