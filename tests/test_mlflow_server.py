"""Every command honours MLFLOW_TRACKING_URI: train and list versions against a real `mlflow server`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from jdlens.cli import app
from tests.conftest import free_port, tiny_overrides

pytestmark = pytest.mark.integration


@pytest.fixture()
def mlflow_server(tmp_path: Path) -> str:
    port = free_port()
    log = (tmp_path / "mlflow.log").open("w")
    proc = subprocess.Popen(
        [
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
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "mlflow.log").read_text()[-2000:]
            time.sleep(1)
        else:
            pytest.fail("mlflow server did not come up in 90 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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
