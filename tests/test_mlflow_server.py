"""Every command honours MLFLOW_TRACKING_URI: train and list versions against a real `mlflow server`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from jdlens.cli import app
from serving.launch import free_port, running
from tests.conftest import tiny_overrides

pytestmark = pytest.mark.integration


@pytest.fixture()
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` (one worker) on a free loopback port, with its own SQLite store."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination",
        str(tmp_path / "server-artifacts"),
    ]
    url = f"http://127.0.0.1:{port}"
    with running(cmd, f"{url}/health", tmp_path / "mlflow.log", timeout=90, name="mlflow server"):
        yield url


def test_train_registers_on_the_tracking_server(
    project: Path, tiny_encoder: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    runner = CliRunner()
    res = runner.invoke(app, ["train", *tiny_overrides(tiny_encoder)])
    assert res.exit_code == 0, res.output
    assert "registered jdlens version 1 as @champion" in res.output
    assert not (project / ".jdlens" / "mlflow.db").exists()  # nothing went to the embedded store
    listing = runner.invoke(app, ["models"]).output
    assert "champion" in listing
    # The model comes back through the server's artifact proxy.
    pred = runner.invoke(app, ["predict", "--model", "champion", "-"], input='{"text": "Publish at ICLR."}\n')
    assert pred.exit_code == 0 and '"role_scores"' in pred.output
    versions = httpx.get(f"{mlflow_server}/api/2.0/mlflow/registered-models/get", params={"name": "jdlens"}).json()[
        "registered_model"
    ]
    assert versions["name"] == "jdlens"
