"""The HTTP service in-process on a tiny model: every route, every error path, auth, reload, limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from jdlens.predictors import load_predictor
from jdlens.report import ReportConfig
from serving.app import ServiceState, create_app
from serving.engine import Engine, Limits
from serving.feedback import FeedbackStore
from serving.settings import ServeConfig

JD = "# ML Engineer\nWe build fraud models.\n## Requirements\n- Train models with PyTorch.\n- PhD in CS.\n"
KEY = {"Authorization": "Bearer sekret"}
ADMIN = {"Authorization": "Bearer admin-sekret"}


@pytest.fixture()
def client(tiny_model_dir: Path, tmp_path: Path) -> TestClient:
    cfg = ServeConfig(
        max_body_bytes=20_000,
        max_sentences_per_jd=5,
        max_chars_per_sentence=50,
        max_jds_per_batch=3,
        max_instances_per_request=4,
        max_queue_sentences=64,
        allowed_hosts=["testserver", "127.0.0.1"],
    )
    state = ServiceState(
        engine=Engine(load_predictor(str(tiny_model_dir)), ReportConfig(), Limits(5, 50, 5_000)),
        cfg=cfg,
        load_predictor=lambda spec: load_predictor(spec),
        feedback=FeedbackStore(tmp_path / "fb.sqlite"),
        api_key="sekret",
        admin_key="admin-sekret",
    )
    with TestClient(create_app(state)) as c:
        yield c


def test_ping_models_and_openapi(client: TestClient) -> None:
    assert client.get("/ping").json() == {"status": "Healthy"}
    assert client.get("/models").json()["models"][0]["modelName"] == "jdlens"
    desc = client.get("/models/jdlens").json()[0]
    assert desc["batchSize"] == 64 and set(desc["flag_thresholds"]) == {"phd_required", "buzzword", "vague_seniority"}
    assert "/v1/score" in client.get("/openapi.json").json()["paths"]
    assert client.get("/").headers["content-type"].startswith("text/html")


def test_score_report_shape_and_truncation(client: TestClient) -> None:
    r = client.post("/v1/score", json={"text": JD + "- " + "x" * 80 + "\n- one more\n", "id": "a"})
    assert r.status_code == 200
    rep = r.json()
    assert rep["id"] == "a" and rep["role_type"] in ("application", "ml", "research", "mixed")
    assert len(rep["sentences"]) == 5 and any("only the first 5" in n for n in rep["truncation"])
    assert 0 <= rep["score"] <= 100 and rep["model"]["name"]
    for s in rep["sentences"]:
        assert JD[s["start"] : s["end"]] == s["text"]
    batch = client.post("/v1/score:batch", json={"jds": [{"text": JD}, {"text": "Build RAG. Use pgvector."}]})
    assert len(batch.json()["reports"]) == 2


def test_diff_rescores_an_edited_jd(client: TestClient) -> None:
    new = JD.replace("- PhD in CS.\n", "- Salary: $150,000 - $190,000.\n")
    r = client.post("/v1/diff", json={"old": JD, "new": new})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["report"] == client.post("/v1/score", json={"text": new}).json()
    d = body["diff"]
    assert d["new_score"] == body["report"]["score"] and d["score_delta"] == d["new_score"] - d["old_score"]
    assert [a["text"] for a in d["sentences_added"]] == ["Salary: $150,000 - $190,000."]
    assert [x["text"] for x in d["sentences_removed"]] == ["PhD in CS."]


def test_torchserve_inputs_all_agree(client: TestClient) -> None:
    texts = ["Build RAG with pgvector.", "PhD required."]
    as_list = client.post("/predictions/jdlens", json=texts).json()
    kserve = client.post("/predictions/jdlens", json={"instances": texts}).json()["predictions"]
    plain = client.post("/predictions/jdlens", content="\n".join(texts), headers={"content-type": "text/plain"}).json()
    assert [p["text"] for p in as_list] == texts
    assert as_list == kserve == plain
    assert set(as_list[0]["role_scores"]) == {"application", "ml", "research", "general", "other"}
    cut = client.post("/predictions/jdlens", json=["y" * 60]).json()[0]
    assert cut["truncated_to_chars"] == 50


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("post", "/v1/score", {"json": {"text": "   "}}, 422),
        ("post", "/v1/score", {"json": {"txt": "x"}}, 422),
        ("post", "/v1/score", {"content": b"{oops", "headers": {"content-type": "application/json"}}, 422),
        ("post", "/v1/score", {"json": {"text": "x" * 30_000}}, 413),
        ("post", "/v1/score:batch", {"json": {"jds": [{"text": "a b"}] * 4}}, 413),
        ("post", "/predictions/jdlens", {"content": b"{oops", "headers": {"content-type": "application/json"}}, 400),
        ("post", "/predictions/jdlens", {"json": {"instances": [1, 2]}}, 422),
        ("post", "/predictions/jdlens", {"json": ["a", "b", "c", "d", "e"]}, 413),
        ("post", "/predictions/other-model", {"json": ["a"]}, 404),
        ("post", "/predictions/jdlens/99", {"json": ["a"]}, 404),
        ("get", "/nope", {}, 404),
        ("get", "/v1/score", {}, 405),
        ("post", "/v1/diff", {"json": {"old": JD}}, 422),
        ("post", "/v1/diff", {"json": {"old": JD, "new": "  "}}, 422),
    ],
)
def test_bad_requests_get_json_4xx(client: TestClient, method: str, path: str, kwargs: dict, status: int) -> None:
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]


def test_feedback_needs_the_key_and_valid_labels(client: TestClient) -> None:
    body = {"text": "Ship agents on LangGraph.", "role": "application", "flags": []}
    assert client.post("/v1/feedback", json=body).status_code == 401
    assert client.post("/v1/feedback", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    first = client.post("/v1/feedback", json=body, headers=KEY)
    assert first.status_code == 201 and first.json()["duplicate"] is False
    again = client.post("/v1/feedback", json=body, headers=KEY).json()
    assert again["duplicate"] is True and again["id"] == first.json()["id"]
    bad = client.post("/v1/feedback", json={**body, "flags": ["hype"]}, headers=KEY)
    assert bad.status_code == 422 and "flags" in bad.json()["error"]["message"]
    other = client.post("/v1/feedback", json={**body, "role": "other", "flags": ["buzzword"]}, headers=KEY)
    assert other.status_code == 422 and "not on role 'other'" in other.json()["error"]["message"]


def test_reload_keeps_old_model_on_failure(client: TestClient, tiny_model_dir: Path) -> None:
    assert client.post("/admin/reload", json={"model": str(tiny_model_dir)}).status_code == 401
    # The reviewer key cannot reload models: the keys are split (issue 8, finding 10).
    assert client.post("/admin/reload", json={"model": str(tiny_model_dir)}, headers=KEY).status_code == 401
    bad = client.post("/admin/reload", json={"model": "/no/such/model"}, headers=ADMIN)
    assert bad.status_code == 409 and "still serving" in bad.json()["error"]["message"]
    assert client.post("/v1/score", json={"text": JD}).status_code == 200
    ok = client.post("/admin/reload", json={"model": str(tiny_model_dir)}, headers=ADMIN)
    assert ok.status_code == 200 and ok.json()["status"] == "reloaded"


def test_metrics_exposes_requests_batches_queue_and_model(client: TestClient) -> None:
    client.post("/v1/score", json={"text": JD})
    text = client.get("/metrics").text
    assert 'jdlens_requests_total{method="POST",route="/v1/score",status="200"}' in text
    assert "jdlens_batch_sentences_count" in text and "jdlens_queue_sentences" in text
    assert "jdlens_model_info{" in text


def test_full_queue_answers_503_with_retry_after(client: TestClient) -> None:
    state = client.app.state.service
    state.batcher.pending = state.batcher.max_queue  # as if the queue were full
    r = client.post("/predictions/jdlens", json=["a"])
    state.batcher.pending = 0
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
