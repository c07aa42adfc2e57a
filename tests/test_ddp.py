"""DDP on CPU: two processes (gloo) train the tiny model; gradients are synchronised and data is sharded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent


def test_two_ranks_end_with_identical_weights_on_disjoint_shards(tiny_encoder: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # rendezvous on a free localhost port
        "--nproc_per_node=2",
        str(REPO / "tests/ddp_worker.py"),
        str(tiny_encoder),
        str(REPO / "data/sentences/train.jsonl"),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world_size"] == r1["world_size"] == 2 and r0["backend"] == "gloo"
    assert r0["steps"] == r1["steps"] == 4
    # Each rank saw its own half of the data ...
    assert set(r0["indices"]).isdisjoint(r1["indices"])
    assert sorted(r0["indices"] + r1["indices"]) == list(range(96))
    # ... yet both ended with the same weights: DDP averaged the gradients every step.
    assert r0["weights_sha256"] == r1["weights_sha256"]
    assert r0["trainable_norm"] > 0
