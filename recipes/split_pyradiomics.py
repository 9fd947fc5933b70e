"""Split the fetched pyradiomics cases (scripts/fetch_pyradiomics.sh) into a training folder (lung1,
brain1, breast1) and a held-out folder (lung2, brain2: never trained on), each a medglip manifest.

Usage: python recipes/split_pyradiomics.py FETCHED TRAIN_OUT HELDOUT_OUT
The image files are hard-linked (copied where links are impossible); re-running is a no-op.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

HELDOUT = ("lung2", "brain2")


def _place(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def split(fetched: Path, train_out: Path, heldout_out: Path) -> None:
    manifest = json.loads((fetched / "medglip_manifest.json").read_text())
    for out, keep in ((train_out, lambda c: c["id"] not in HELDOUT), (heldout_out, lambda c: c["id"] in HELDOUT)):
        out.mkdir(parents=True, exist_ok=True)
        cases = [dict(c) for c in manifest["cases"] if keep(c)]
        for c in cases:
            c.pop("split", None)
            for key in ("image", "label"):
                _place(fetched / c[key], out / c[key])
        _place(fetched / "LICENSE.txt", out / "LICENSE.txt")
        doc = {**manifest, "cases": cases}
        (out / "medglip_manifest.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    split(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
