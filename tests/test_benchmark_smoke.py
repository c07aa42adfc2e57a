"""serving/benchmark.py end to end on the tiny model with tiny settings: every section present, numbers
positive, the server gone afterwards. No timing thresholds: performance claims never live in tests."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from serving import benchmark

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration

SECTIONS = (
    "machine",
    "model",
    "data",
    "pipeline_single",
    "pipeline_batched",
    "engine_fp32",
    "flop_floor",
    "int8",
    "service",
    "targets",
    "settings",
)


def test_flop_count_matches_the_bert_formula(tiny_model_dir: Path) -> None:
    from jdlens.model import JDLensClassifier

    model = JDLensClassifier.load(tiny_model_dir).model
    cfg = model.config
    L, H, Inter, T = cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, 20.0
    f = benchmark.model_flops(model, T)
    assert f["params_in_matmuls_per_token"] == L * (4 * H * H + 2 * H * Inter)
    assert f["params_in_matmuls_per_sentence"] == H * H + H * 8  # pooler + 8-logit classifier
    expected = 2 * f["params_in_matmuls_per_token"] * T + 2 * f["params_in_matmuls_per_sentence"] + L * 4 * T * T * H
    assert f["gflop_per_sentence"] == pytest.approx(expected / 1e9)


def test_quick_benchmark_writes_every_section(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JDLENS_HOME", str(REPO))  # reads data/sentences/test.jsonl; writes nothing there
    monkeypatch.setenv("JDLENS_STATE", str(tmp_path / "state"))
    out = tmp_path / "bench.json"
    argv = ["--model", str(tiny_model_dir), "--quick", "--sentences", "40", "--out", str(out)]
    argv += ["--concurrency", "1,4", "--requests", "2,4", "--jd-sentences", "6"]
    assert benchmark.main(argv) == 0

    r = json.loads(out.read_text())
    assert set(SECTIONS) <= set(r)
    assert r["machine"]["cores"] > 0 and r["machine"]["torch_threads"] > 0 and r["machine"]["date_utc"]
    assert r["data"]["sentences"] == 40 and r["data"]["mean_tokens"] > 0
    for name in ("pipeline_single", "pipeline_batched", "engine_fp32", "int8"):
        assert r[name]["sentences_per_s"] > 0, name
        assert r[name]["repeats"] == 1
    eng, fl, q8 = r["engine_fp32"], r["flop_floor"], r["int8"]
    assert eng["vs_pipeline_single"] > 0 and eng["vs_pipeline_batched"] > 0
    assert eng["max_abs_prob_diff_vs_pipeline"] < 1e-3  # same weights, same inputs
    for key in ("gflop_per_sentence", "matmul_gflop_per_s", "floor_sentences_per_s", "engine_fraction_of_floor"):
        assert fl[key] > 0, key
    assert "4 * T^2 * H" in fl["formula"]
    assert q8["vs_fp32"] > 0 and r["onnx_fp32"]["sentences_per_s"] > 0 and fl["onnx_fp32_fraction_of_floor"] > 0
    assert r["onnx_fp32"]["max_abs_prob_diff_vs_torch_fp32"] < 1e-3  # the same function as torch fp32
    acc = r["accuracy"]
    assert {"test", "test_jds", "dev_jds", "realistic_test_jds"} <= set(acc["splits"])
    assert set(acc["role_macro_f1"]) >= {"torch_fp32", "onnx_fp32", "onnx_int8"}
    assert q8["worst_drop_points"] == max(acc["drop_points"]["onnx_int8"].values())
    assert 0 <= q8["role_macro_f1_int8"]["test"] <= 1

    svc = r["service"]
    assert [x["concurrency"] for x in svc["levels"]] == [1, 4]
    for level in svc["levels"]:
        assert level["errors"] == 0, level["error_examples"]
        assert level["requests_ok"] == level["requests_sent"] > 0
        assert level["requests_per_s"] > 0 and level["sentences_per_s"] > 0
        assert 0 < level["p50_ms"] <= level["p99_ms"]
    assert svc["vs_engine_at_top_concurrency"] > 0
    assert {t["name"] for t in r["targets"]} >= {"engine fp32 vs pipeline one-at-a-time", "service errors"}
    assert all(isinstance(t["met"], bool) for t in r["targets"])

    # The server was terminated: its port no longer accepts connections.
    port = int(svc["command"].split("--port ")[1].split()[0])
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0

    table = capsys.readouterr().out
    assert "| measure | throughput | ratio | target | met |" in table and "| concurrency |" in table
