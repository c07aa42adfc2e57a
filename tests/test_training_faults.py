"""Faults during `jdlens retrain`: kill -9 in the middle of an epoch, and a full disk while the artifacts are
written. Either way the data, the registry and the champion stay as they were, and the next run succeeds."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jdlens import tracking
from jdlens.cli import app
from tests.conftest import tiny_overrides, write_jsonl

pytestmark = pytest.mark.integration
runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent
NEW = [{"text": "Fine-tune Whisper on call-centre audio and ship it behind Triton.", "role": "ml", "flags": []}]


def fast(encoder: Path) -> list[str]:
    """The tiny config with one epoch: every test here trains two or three times."""
    return [*tiny_overrides(encoder), "epochs=1"]


def _snapshot(project: Path) -> dict[str, bytes]:
    return {str(p.relative_to(project)): p.read_bytes() for p in sorted((project / "data").glob("**/*.jsonl"))}


def _train_champion(project: Path, tiny_encoder: Path) -> None:
    res = runner.invoke(app, ["train", *fast(tiny_encoder)])
    assert res.exit_code == 0, res.output


def _assert_unchanged(project: Path, data_before: dict[str, bytes]) -> None:
    assert _snapshot(project) == data_before
    client = tracking.setup()
    assert [str(v.version) for v in tracking.versions(client)] == ["1"]
    assert tracking.alias_version(client, "champion") == "1"
    assert tracking.alias_version(client, "challenger") is None


def _next_retrain_succeeds(project: Path, tiny_encoder: Path, new: Path) -> None:
    res = runner.invoke(app, ["retrain", str(new), "--promote", "never", "--no-embeddings", *fast(tiny_encoder)])
    assert res.exit_code == 0, res.output
    assert "added 1 record(s) to data/sentences/train.jsonl" in res.output
    client = tracking.setup()
    assert tracking.alias_version(client, "challenger") == "2" and tracking.alias_version(client, "champion") == "1"


# Runs `jdlens retrain` with a pause injected into the second training step: it writes a marker file and
# sleeps, so the test can kill -9 the process at a known point in the middle of an epoch.
KILLED_RETRAIN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import training.recipe as recipe

    marker, real, calls = Path(sys.argv[1]), recipe.compute_loss, [0]

    def compute_loss(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:
            marker.write_text("in the middle of epoch 1")
            time.sleep(600)
        return real(*args, **kwargs)

    recipe.compute_loss = compute_loss
    from jdlens.cli import app
    app(sys.argv[2:])
    """
)


def test_kill_9_mid_epoch_leaves_everything_and_next_run_succeeds(project: Path, tiny_encoder: Path) -> None:
    _train_champion(project, tiny_encoder)
    new = write_jsonl(project / "new.jsonl", NEW)
    before = _snapshot(project)
    marker = project / "mid-epoch"
    cmd = [sys.executable, "-c", KILLED_RETRAIN, str(marker)]
    cmd += ["retrain", str(new), "--promote", "always", "--no-embeddings", *fast(tiny_encoder)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=os.environ.copy(), start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), f"retrain never reached its second training step (exit {proc.poll()})"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    _assert_unchanged(project, before)
    _next_retrain_succeeds(project, tiny_encoder, new)


def test_full_disk_while_writing_artifacts(project: Path, tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    _train_champion(project, tiny_encoder)
    new = write_jsonl(project / "new.jsonl", NEW)
    before = _snapshot(project)
    real = mlflow.log_artifacts

    def full_disk(local_dir: str, artifact_path: str | None = None, **kwargs: object) -> None:
        # The first file lands, then the disk is full: a partial artifact upload.
        first = sorted(Path(local_dir).iterdir())[0]
        mlflow.log_artifact(str(first), artifact_path)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mlflow, "log_artifacts", full_disk)
    res = runner.invoke(app, ["retrain", str(new), "--promote", "always", "--no-embeddings", *fast(tiny_encoder)])
    assert res.exit_code != 0
    assert "No space left on device" in res.output  # a clear one-line error, not a traceback
    _assert_unchanged(project, before)
    client = tracking.setup()
    runs = client.search_runs([client.get_experiment_by_name("jdlens").experiment_id], order_by=["start_time DESC"])
    assert runs[0].info.status == "FAILED"

    monkeypatch.setattr(mlflow, "log_artifacts", real)
    _next_retrain_succeeds(project, tiny_encoder, new)
