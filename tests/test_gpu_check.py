"""The GPU check script runs its CPU smoke version (every step: train, torchrun, evaluate, speed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_run_prints_its_table(tmp_path):
    # the script calls `python` and `torchrun`: those of the interpreter running the tests, venv activated or not
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TMPDIR=str(tmp_path),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--smoke"], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    out = r.stdout
    assert "| step | result | seconds |" in out and "all steps ok" in out
    for step in ("train tiny |", "train tiny (torchrun, gloo)", "speed tiny"):
        assert step in out, out
    assert "brain2 AP50" in out and "images/s" in out
