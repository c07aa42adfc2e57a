"""The loop the product lives on: score -> correct -> export -> retrain -> a new registered version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from jdlens import tracking
from jdlens.cli import app as cli_app
from serving.app import create_app
from serving.server import build_state
from serving.settings import ServeConfig
from tests.conftest import tiny_overrides

pytestmark = pytest.mark.integration
runner = CliRunner()

JD = (
    "# Applied AI Engineer\nWe help insurers read claims faster.\n## You will\n"
    "- Wire our claims assistant to Claude with tool calling and a Weaviate index.\n"
    "- Stand up nightly evals of extraction quality with a labelled golden set.\n"
)


def test_score_correct_export_retrain(project: Path, tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JDLENS_API_KEY", "k")
    assert runner.invoke(cli_app, ["train", *tiny_overrides(tiny_encoder)]).exit_code == 0

    # base_url: the service answers only to its configured host names (DNS-rebinding defence).
    with TestClient(create_app(build_state("champion", ServeConfig())), base_url="http://127.0.0.1") as client:
        report = client.post("/v1/score", json={"text": JD}).json()
        assert report["model"]["version"] == "1"
        bullets = [s for s in report["sentences"] if s["text"].startswith(("Wire", "Stand up"))]
        assert len(bullets) == 2
        for s in bullets:
            body = {
                "text": s["text"],
                "role": "application",
                "flags": [],
                "model_version": "1",
                "predicted": {"role": s["role"], "flags": s["flags"]},
            }
            r = client.post("/v1/feedback", json=body, headers={"Authorization": "Bearer k"})
            assert r.status_code == 201, r.text

    out = project / "corrections.jsonl"
    res = runner.invoke(cli_app, ["feedback", "export", str(out)])
    assert res.exit_code == 0 and "wrote 2 corrected sentence(s)" in res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert {r["role"] for r in rows} == {"application"} and all(r["source"] == "feedback" for r in rows)

    res = runner.invoke(
        cli_app, ["retrain", str(out), "--promote", "never", "--no-embeddings", *tiny_overrides(tiny_encoder)]
    )
    assert res.exit_code == 0, res.output
    assert "added 2 record(s) to data/sentences/train.jsonl" in res.output
    client = tracking.setup()
    assert [str(v.version) for v in tracking.versions(client)] == ["1", "2"]
    assert tracking.alias_version(client, "challenger") == "2"
    train_tail = (project / "data/sentences/train.jsonl").read_text().splitlines()[-2:]
    assert {json.loads(x)["text"] for x in train_tail} == {r["text"] for r in rows}
