"""Issue 8 regression tests: the service under hostile input, failures and reloads (in-process, tiny model).

Each test names the finding it guards. No test depends on timing: blocking is made explicit with events.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from jdlens.predictors import load_predictor
from jdlens.report import ReportConfig
from jdlens.segment import _strip_marker, split_sentences
from serving.app import ServiceState, create_app
from serving.batcher import DynamicBatcher, QueueFull
from serving.engine import Engine, Limits
from serving.feedback import FeedbackStore
from serving.settings import ServeConfig

JD = "# ML Engineer\nWe build fraud models.\n## Requirements\n- Train models with PyTorch.\n- PhD in CS.\n"
KEY = {"Authorization": "Bearer sekret"}
ADMIN = {"Authorization": "Bearer admin-sekret"}


def make_client(model_dir: Path, tmp_path: Path, **cfg_overrides: object) -> TestClient:
    cfg = ServeConfig(
        max_body_bytes=20_000,
        max_sentences_per_jd=5,
        max_chars_per_sentence=50,
        max_text_chars=5_000,
        max_jds_per_batch=3,
        max_instances_per_request=4,
        max_queue_sentences=64,
        allowed_hosts=["testserver", "127.0.0.1", "localhost"],
        **cfg_overrides,  # type: ignore[arg-type]
    )
    state = ServiceState(
        engine=Engine(load_predictor(str(model_dir)), ReportConfig(), Limits(5, 50, 5_000)),
        cfg=cfg,
        load_predictor=lambda spec: load_predictor(spec),
        feedback=FeedbackStore(tmp_path / "fb.sqlite"),
        api_key="sekret",
        admin_key="admin-sekret",
    )
    return TestClient(create_app(state))


@pytest.fixture()
def client(tiny_model_dir: Path, tmp_path: Path) -> TestClient:
    with make_client(tiny_model_dir, tmp_path) as c:
        yield c


# ---------------------------------------------------------------- 1. body limit while reading, auth first


def test_chunked_body_over_the_limit_is_refused_while_reading(client: TestClient) -> None:
    def chunks():  # no Content-Length: the client sends Transfer-Encoding: chunked
        yield b'{"text": "'
        for _ in range(49):
            yield b"a" * 1000

    for path in ("/v1/score", "/predictions/jdlens", "/v1/feedback", "/admin/reload"):
        key = ADMIN if path == "/admin/reload" else KEY
        r = client.post(path, content=chunks(), headers={"content-type": "application/json", **key})
        assert r.status_code == 413, (path, r.text)
        assert r.json()["error"]["code"] == "body_too_large"


def test_declared_length_over_the_limit_is_refused_before_reading(client: TestClient) -> None:
    r = client.post("/predictions/jdlens", content=b"[" + b'"a",' * 6000 + b'"a"]')
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_writes_check_the_key_before_parsing_the_body(client: TestClient) -> None:
    for path in ("/v1/feedback", "/admin/reload"):
        r = client.post(path, content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 401, (path, r.text)
        assert r.headers["www-authenticate"] == "Bearer"


# ---------------------------------------------------------------- 2. one request must not block everyone


def test_marker_stripping_is_linear_and_correct() -> None:
    line = "- " * 500_000 + "Ship models."
    assert _strip_marker(line) == len(line) - len("Ship models.")
    assert [s.text for s in split_sentences("1. - * Train models.\n🚀 Ship it.\n")] == ["Train models.", "Ship it."]


def test_ping_answers_while_a_request_is_segmenting(client: TestClient) -> None:
    state = client.app.state.service
    entered, release = threading.Event(), threading.Event()
    real_prepare = state.engine.prepare

    def slow_prepare(text: str):  # stands in for a hostile JD that takes long to split
        entered.set()
        release.wait(30)
        return real_prepare(text)

    state.engine.prepare = slow_prepare
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(r=client.post("/v1/score", json={"text": JD})))
    worker.start()
    try:
        assert entered.wait(30)
        # The event loop is free while the JD is being split: /ping is answered now, not after it.
        assert client.get("/ping").status_code == 200
        assert not result
    finally:
        release.set()
        worker.join(30)
    assert result["r"].status_code == 200


def test_text_is_cut_before_splitting_and_report_rules_see_cut_sentences(client: TestClient) -> None:
    r = client.post("/v1/score", json={"text": "We need " + "very " * 2_000 + "senior people."})
    assert r.status_code == 200
    rep = r.json()
    assert any("only the first 5000 were read" in n for n in rep["truncation"])
    assert all(len(s["text"]) <= 50 and s["end"] - s["start"] == len(s["text"]) for s in rep["sentences"])


# ---------------------------------------------------------------- 3. one request must not poison the batch


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/v1/score", '{"text": "Build \\ud800 models"}', {}),
        ("/v1/score:batch", '{"jds": [{"text": "ok"}, {"text": "\\udfff x"}]}', {}),
        ("/predictions/jdlens", '["fine", "bad \\ud800"]', {}),
        ("/predictions/jdlens", '{"instances": [{"text": "bad \\ud800"}]}', {}),
        ("/v1/feedback", '{"text": "bad \\ud800", "role": "ml"}', KEY),
    ],
)
def test_lone_surrogates_are_refused_with_422(client: TestClient, path: str, body: str, headers: dict) -> None:
    r = client.post(path, content=body.encode(), headers={"content-type": "application/json", **headers})
    assert r.status_code == 422, r.text
    assert "unicode" in r.json()["error"]["message"].lower()


def _run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def test_a_failing_request_fails_alone_in_its_batch() -> None:
    def score(model, texts):
        if any("BOOM" in t for t in texts):
            raise ValueError("tokenizer failed")
        return np.ones((len(texts), 5)), np.zeros((len(texts), 3))

    async def main():
        b = DynamicBatcher(score, max_batch_size=64, max_delay_ms=50)
        model = object()
        good = b.submit_nowait(model, ["a", "b"])
        bad = b.submit_nowait(model, ["BOOM"])
        other = b.submit_nowait(model, ["c"])
        out = await asyncio.gather(good, bad, other, return_exceptions=True)
        await b.stop()
        return out, b.pending

    (good, bad, other), pending = _run(main())
    assert good[0].shape == (2, 5) and other[0].shape == (1, 5)
    assert isinstance(bad, ValueError)
    assert pending == 0


# ---------------------------------------------------------------- 4. a dead batcher is reported and restarted


def test_dead_batcher_makes_ping_unhealthy_and_is_restarted(client: TestClient) -> None:
    state = client.app.state.service
    assert client.post("/v1/score", json={"text": JD}).status_code == 200

    async def kill() -> None:
        task = state.batcher._task
        state.batcher._stopping = True  # as if it had ended on its own, without the done-callback restart
        task.cancel()
        await asyncio.sleep(0)
        state.batcher._stopping = False

    client.portal.call(kill)
    assert client.get("/ping").status_code == 503
    assert client.get("/ping").status_code == 200  # restarted by the first ping
    assert client.post("/v1/score", json={"text": JD}).status_code == 200
    assert state.batcher.restarts == 1


def test_batcher_survives_a_crash_of_its_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    import serving.batcher as batcher_mod

    calls = {"n": 0}
    real_wait_for = asyncio.wait_for

    async def flaky_wait_for(aw, timeout):
        calls["n"] += 1
        if calls["n"] == 1:
            aw.close()
            raise RuntimeError("worker bug")
        return await real_wait_for(aw, timeout)

    monkeypatch.setattr(batcher_mod.asyncio, "wait_for", flaky_wait_for)

    async def main():
        b = DynamicBatcher(lambda m, t: (np.ones((len(t), 5)), np.zeros((len(t), 3))), max_delay_ms=20)
        first = await asyncio.gather(b.submit(None, ["a"]), return_exceptions=True)
        second = await asyncio.wait_for(b.submit(None, ["b"]), 10)
        await b.stop()
        return first[0], second, b.restarts

    first, second, restarts = _run(main())
    assert isinstance(first, RuntimeError)  # the request in the crashed batch gets an error, not a hang
    assert second[0].shape == (1, 5) and restarts == 1


# ---------------------------------------------------------------- 5. limits agree; withdrawn work is dropped


def test_limits_are_checked_against_each_other() -> None:
    with pytest.raises(ValueError, match="max_queue_sentences"):
        ServeConfig(max_queue_sentences=4096, max_jds_per_batch=32, max_sentences_per_jd=200).validate()
    ServeConfig().validate()  # the defaults can serve their largest request


def test_cancelled_work_never_reaches_the_model() -> None:
    seen: list[list[str]] = []
    gate = threading.Event()

    def score(model, texts):
        seen.append(list(texts))
        gate.wait(10)
        return np.ones((len(texts), 5)), np.zeros((len(texts), 3))

    async def main():
        b = DynamicBatcher(score, max_batch_size=1, max_delay_ms=1)
        first = b.submit_nowait(None, ["first"])
        while not seen:  # the first batch is in the model
            await asyncio.sleep(0.01)
        gone = b.submit_nowait(None, ["withdrawn"])
        assert b.pending == 2
        gone.cancel()  # its client went away
        gate.set()
        await first
        last = await b.submit(None, ["last"])
        await b.stop()
        return last, b.pending

    last, pending = _run(main())
    assert seen == [["first"], ["last"]] and last[0].shape == (1, 5) and pending == 0


def test_admission_by_expected_wait_answers_503_with_retry_after(client: TestClient) -> None:
    b = client.app.state.service.batcher
    b.throughput, b.pending = 10.0, 40  # 4 s of queued work at the measured rate; the bound is 2 s
    try:
        r = client.post("/v1/score", json={"text": JD})
    finally:
        b.pending = 0
    assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"
    assert int(r.headers["retry-after"]) >= 2
    with pytest.raises(QueueFull):
        b.pending = 40
        try:
            b.admit(1)
        finally:
            b.pending = 0


# ---------------------------------------------------------------- 6. bounded metric labels; 500s counted


def test_unknown_methods_share_one_metric_label(client: TestClient) -> None:
    client.request("FROBNICATE", "/v1/score")
    client.request("XYZZY", "/nope")
    text = client.get("/metrics").text
    assert "FROBNICATE" not in text and "XYZZY" not in text
    assert 'method="other"' in text


def test_500_is_counted_and_closes_the_connection(client: TestClient) -> None:
    state = client.app.state.service

    def broken(*_a, **_k):
        raise RuntimeError("bug")

    state.engine.finish = broken
    r = client.post("/v1/score", json={"text": JD})
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert r.headers["connection"] == "close"
    assert 'route="/v1/score",status="500"' in client.get("/metrics").text


def test_non_utf8_and_deeply_nested_bodies_are_invalid_json(client: TestClient) -> None:
    for path, headers in (("/v1/score", {}), ("/predictions/jdlens", {}), ("/v1/feedback", KEY)):
        for body in (b'{"text": "\xff\xfe"}', b"[" * 15_000):
            r = client.post(path, content=body, headers={"content-type": "application/json", **headers})
            assert 400 <= r.status_code < 500, (path, r.status_code)
            assert r.json()["error"]["code"] == "invalid_json", (path, r.text)


def test_405_names_the_allowed_methods(client: TestClient) -> None:
    r = client.get("/v1/score")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


# ---------------------------------------------------------------- 10. keys, browsers, paths


def test_security_headers_on_every_answer(client: TestClient) -> None:
    for r in (client.get("/"), client.get("/ping"), client.get("/nope"), client.post("/v1/score", json={})):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    page_csp = client.get("/").headers["content-security-policy"]
    assert "'unsafe-inline'" not in page_csp and "sha256-" in page_csp and "http" not in page_csp


def test_docs_are_off_by_default_and_the_schema_is_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 404
    assert "/v1/feedback" in client.get("/openapi.json").json()["paths"]


def test_foreign_host_and_cross_site_requests_are_refused(client: TestClient) -> None:
    r = client.get("/ping", headers={"host": "rebind.attacker.example"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_host"
    # A web page elsewhere can POST text/plain without a preflight; the browser names its origin.
    r = client.post(
        "/predictions/jdlens",
        content="Build RAG.",
        headers={"content-type": "text/plain", "origin": "https://evil.example"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin"
    same = client.post("/v1/score", json={"text": JD}, headers={"origin": "http://testserver"})
    assert same.status_code == 200  # the service's own page
    other_port = client.post("/v1/score", json={"text": JD}, headers={"origin": "http://testserver:3000"})
    assert other_port.status_code == 403  # another local server's page is another origin
    assert client.post("/predictions/jdlens", content="Build RAG.", headers={"content-type": "text/plain"}).is_success


def test_reports_do_not_disclose_model_paths(client: TestClient, tiny_model_dir: Path) -> None:
    rep = client.post("/v1/score", json={"text": JD}).json()
    assert str(tiny_model_dir.parent) not in str(rep) and "/" not in rep["model"]["name"]
    assert str(tiny_model_dir.parent) not in client.get("/models/jdlens").text


def test_key_files_are_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.server import admin_key, api_key

    monkeypatch.delenv("JDLENS_API_KEY", raising=False)
    monkeypatch.delenv("JDLENS_ADMIN_KEY", raising=False)
    monkeypatch.setenv("JDLENS_API_KEY_FILE", str(tmp_path / "keys" / "reviewer"))
    monkeypatch.setenv("JDLENS_ADMIN_KEY_FILE", str(tmp_path / "keys" / "admin"))
    old = os.umask(0o000)  # even a permissive umask must not widen the file's mode
    try:
        reviewer, admin = api_key()[0], admin_key()[0]
    finally:
        os.umask(old)
    assert reviewer and admin and reviewer != admin
    for name in ("reviewer", "admin"):
        assert stat.S_IMODE((tmp_path / "keys" / name).stat().st_mode) == 0o600
    assert api_key()[0] == reviewer  # generated once


# ---------------------------------------------------------------- 11. reloads never mix models in a batch


def test_a_batch_never_mixes_two_models() -> None:
    calls: list[tuple[str, list[str]]] = []

    def score(model, texts):
        calls.append((model, list(texts)))
        return np.ones((len(texts), 5)), np.zeros((len(texts), 3))

    async def main():
        b = DynamicBatcher(score, max_batch_size=64, max_delay_ms=50)
        futs = [b.submit_nowait("old", ["a"]), b.submit_nowait("new", ["b"]), b.submit_nowait("new", ["c"])]
        await asyncio.gather(*futs)
        await b.stop()

    _run(main())
    assert calls == [("old", ["a"]), ("new", ["b", "c"])]


def test_reload_mid_request_keeps_the_request_on_its_model(client: TestClient, tiny_model_dir: Path) -> None:
    state = client.app.state.service
    before = state.engine
    entered, release = threading.Event(), threading.Event()
    real_prepare = before.prepare

    def paused_prepare(text: str):
        entered.set()
        release.wait(30)
        return real_prepare(text)

    before.prepare = paused_prepare
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(r=client.post("/v1/score", json={"text": JD})))
    worker.start()
    try:
        assert entered.wait(30)
        ok = client.post("/admin/reload", json={"model": str(tiny_model_dir)}, headers=ADMIN)
        assert ok.status_code == 200 and state.engine is not before
        state.engine.predictor.version = "v-new"
    finally:
        release.set()
        worker.join(30)
    assert result["r"].status_code == 200
    assert result["r"].json()["model"]["version"] != "v-new"  # scored and described by the model it started on
