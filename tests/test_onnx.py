"""The ONNX Runtime path: export, tokenisation, int8, the cold CLI without torch, and backend selection."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jdlens import backends
from jdlens.markdown_text import clean_markdown
from jdlens.model import JDLensClassifier
from jdlens.onnx_model import OnnxClassifier, export_onnx, graph_path
from jdlens.predictors import load_predictor

REPO = Path(__file__).resolve().parent.parent
TEXTS = [
    "Build **RAG** pipelines with [pgvector](https://github.com/pgvector/pgvector).",
    "PhD required.",
    "x" * 400,  # longer than max_length: truncated identically
    "Déployer des modèles — 日本語のテキスト, emojis 🚀 and Ünïcödé.",
    "Train models with PyTorch and DeepSpeed on 64 GPUs; own the evals.",
    "",
]


@pytest.fixture(scope="module")
def onnx_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("onnx") / "model"
    shutil.copytree(tiny_model_dir, folder)
    export_onnx(folder)
    return folder


def test_onnx_fp32_logits_equal_torch(onnx_dir: Path) -> None:
    torch_clf = JDLensClassifier.load(onnx_dir)
    ort_clf = OnnxClassifier.load(onnx_dir, "fp32")
    texts = TEXTS * 7  # several length-sorted batches of mixed lengths
    ort_clf.batch_size = torch_clf.batch_size = 8
    assert np.allclose(ort_clf.logits(texts), torch_clf.logits(texts), atol=1e-4)
    assert ort_clf.max_length == torch_clf.max_length and ort_clf.flag_thresholds == torch_clf.flag_thresholds
    preds = ort_clf.predict(texts[:3])
    assert [p["text"] for p in preds] == texts[:3] and set(preds[0]) == {
        "text",
        "role",
        "role_scores",
        "flags",
        "flag_scores",
    }
    assert ort_clf.logits([]).shape == (0, 8)


def test_tokenisation_equals_transformers(onnx_dir: Path) -> None:
    from transformers import AutoTokenizer

    rows = [json.loads(x) for x in (REPO / "data/sentences/test.jsonl").read_text(encoding="utf-8").splitlines()[:400]]
    texts = [r["text"] for r in rows] + TEXTS
    ort_clf = OnnxClassifier.load(onnx_dir, "fp32")
    hf = AutoTokenizer.from_pretrained(onnx_dir)
    expected = hf([clean_markdown(t) for t in texts], truncation=True, max_length=ort_clf.max_length)["input_ids"]
    assert ort_clf.encode(texts) == expected


def test_int8_graph_keeps_the_head_fp32_and_predicts(onnx_dir: Path) -> None:
    import onnx

    graph = onnx.load(str(graph_path(onnx_dir, "int8"))).graph
    ops = {n.op_type for n in graph.node}
    assert "MatMulInteger" in ops or "QAttention" in ops  # the encoder is quantised
    head = {n.op_type for n in graph.node if n.name.startswith(("/classifier/", "/bert/pooler/dense/"))}
    assert head and head <= {"Gemm", "MatMul", "Add"}  # the pooler and the 8-logit head stay fp32
    first_ffn_out = {n.op_type for n in graph.node if n.name.startswith("/bert/encoder/layer.0/output/dense/")}
    assert first_ffn_out == {"MatMul"}  # kept fp32: the most accuracy-sensitive matmul on the jdlens model
    int8 = OnnxClassifier.load(onnx_dir, "int8")
    fp32 = OnnxClassifier.load(onnx_dir, "fp32")
    logits = int8.logits(TEXTS)
    assert logits.shape == (len(TEXTS), 8) and np.isfinite(logits).all()
    assert np.abs(logits - fp32.logits(TEXTS)).max() < 0.5  # close to fp32, not identical


def test_a_broken_or_missing_graph_falls_back_to_torch(
    onnx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "m"
    shutil.copytree(onnx_dir, folder)
    graph_path(folder, "fp32").write_bytes(b"not an onnx graph")
    model = load_predictor(str(folder))
    assert isinstance(model, JDLensClassifier)
    assert "cannot load ONNX graph" in capsys.readouterr().err
    graph_path(folder, "int8").unlink()
    model = load_predictor(str(folder), backend="onnx-int8")
    assert isinstance(model, JDLensClassifier) and "has no ONNX graph model.int8.onnx" in capsys.readouterr().err
    assert isinstance(load_predictor(str(onnx_dir)), OnnxClassifier)  # auto: the fp32 graph
    assert isinstance(load_predictor(str(onnx_dir), backend="torch"), JDLensClassifier)
    with pytest.raises(ValueError, match="unknown backend"):
        load_predictor(str(onnx_dir), backend="tpu")


def _write_evidence(folder: Path, drop: float) -> None:
    info = {"backends": {"onnx-int8": {"drop_points": drop, "meets_limit": drop <= 0.5}}}
    backends.backends_path(folder).write_text(json.dumps(info))


def test_auto_picks_int8_only_with_evidence(onnx_dir: Path, tmp_path: Path) -> None:
    from serving.backend_select import load_for_serving

    folder = tmp_path / "m"
    shutil.copytree(onnx_dir, folder)
    backends.backends_path(folder).unlink(missing_ok=True)
    chosen = load_for_serving(str(folder), "auto")
    assert chosen.backend == "onnx-fp32" and "onnx-int8: no accuracy evidence" in chosen.backend_choice["reason"]
    _write_evidence(folder, 0.9)
    chosen = load_for_serving(str(folder), "auto")
    assert chosen.backend == "onnx-fp32" and "onnx-int8 loses 0.9 points" in chosen.backend_choice["reason"]
    backends.backends_path(folder).write_text("{not json")
    assert load_for_serving(str(folder), "auto").backend == "onnx-fp32"
    _write_evidence(folder, 0.2)
    chosen = load_for_serving(str(folder), "auto")
    rates = chosen.backend_choice["figures"]["probe_sentences_per_s"]
    assert set(rates) == {"onnx-fp32", "onnx-int8"} and chosen.backend == max(rates, key=rates.get)
    assert chosen.name == str(folder)  # the identity of the loaded spec, whichever backend won
    assert load_for_serving(str(folder), "torch").backend == "torch-fp32"
    explicit = load_for_serving(str(folder), "int8")
    assert explicit.backend == "onnx-int8"
    with pytest.raises(ValueError, match="backend_precision"):
        load_for_serving(str(folder), "fp16")


def test_bf16_runs_or_falls_back(onnx_dir: Path) -> None:
    from serving.backend_select import load_for_serving

    chosen = load_for_serving(str(onnx_dir), "bf16")
    expected = "torch-bf16" if backends.bf16_supported() else "torch-fp32"
    assert chosen.backend == expected
    fp32 = JDLensClassifier.load(onnx_dir).logits(TEXTS)
    assert np.abs(chosen.logits(TEXTS) - fp32).max() < 0.1


def test_measure_backends_writes_evidence_for_every_split(onnx_dir: Path, project: Path, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(onnx_dir, folder)
    shutil.rmtree(folder / "onnx")
    info = backends.measure_backends(folder, project, backends=("onnx-fp32", "onnx-int8"))
    assert set(info["splits"]) >= {"test", "test_jds"}
    assert set(info["backends"]) == {"torch-fp32", "onnx-fp32", "onnx-int8"}
    fp32 = info["backends"]["onnx-fp32"]
    assert fp32["f1"] == info["backends"]["torch-fp32"]["f1"] and fp32["drop_points"] == 0 and fp32["meets_limit"]
    int8 = info["backends"]["onnx-int8"]
    assert int8["meets_limit"] == (int8["drop_points"] <= 0.5)
    assert backends.read_backends(folder) == json.loads(json.dumps(info))

    # The training run passes torch fp32's F1 from its own evaluation: the same numbers, one pass fewer.
    from jdlens.datastore import DataStore
    from jdlens.evaluate import evaluate
    from jdlens.report import load_report_config

    store, cfg = DataStore(project), load_report_config()
    torch_clf = backends.load_backend(folder, "torch-fp32")
    results = {"test": evaluate(torch_clf, store.sentences("test"), store.jds("test"), cfg)}
    for split in ("dev", "realistic_dev", "realistic_test"):
        if store.jds(split):
            results[split] = evaluate(torch_clf, [], store.jds(split), cfg)
    assert backends.reference_from_evaluation(results) == info["backends"]["torch-fp32"]["f1"]
    reused = backends.measure_backends(
        folder, project, backends=("onnx-int8",), reference_f1=info["backends"]["torch-fp32"]["f1"]
    )
    assert "from" in reused["backends"]["torch-fp32"] and "sentences_per_s" not in reused["backends"]["torch-fp32"]
    assert reused["backends"]["onnx-int8"]["drop_points"] == int8["drop_points"]
    # A reference that misses a split is not trusted: torch fp32 is scored again.
    partial = {"test": info["backends"]["torch-fp32"]["f1"]["test"]}
    again = backends.measure_backends(folder, project, backends=("onnx-int8",), reference_f1=partial)
    assert again["backends"]["torch-fp32"]["f1"] == info["backends"]["torch-fp32"]["f1"]


@pytest.mark.integration
def test_cold_cli_with_a_fresh_cache_imports_no_torch(project: Path, tiny_model_dir: Path) -> None:
    from tests.test_model_cache import register_tiny

    register_tiny(tiny_model_dir, 0.5)
    first = load_predictor("champion")  # fills the cache and exports the version's fp32 graph there
    assert isinstance(first, OnnxClassifier) and first.version == "1"
    jd = project / "jd.txt"
    jd.write_text("# ML Engineer\n- Train models with PyTorch.\n- PhD required.\n", encoding="utf-8")
    code = (
        "import sys\nfrom jdlens.cli import app\n"
        f"app(['score', {str(jd)!r}], standalone_mode=False)\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'mlflow', 'sklearn') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JDLENS_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout[: out.stdout.rindex("HEAVY")])
    assert report["model"]["version"] == "1"
    assert out.stdout.strip().endswith("HEAVY []"), out.stdout[-300:]


def test_backends_command_refuses_a_folder_without_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert backends.main([str(tmp_path)]) == 2
    assert "has no model.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "onnx").exists()


def test_auto_probes_bf16_only_with_evidence_that_it_could_win(onnx_dir: Path, tmp_path: Path) -> None:
    from serving.backend_select import load_for_serving

    folder = tmp_path / "m"
    shutil.copytree(onnx_dir, folder)
    entries = {
        "onnx-fp32": {"drop_points": 0.0, "meets_limit": True, "sentences_per_s": 100.0},
        "onnx-int8": {"drop_points": 0.1, "meets_limit": True, "sentences_per_s": 200.0},
        "torch-bf16": {"drop_points": 0.1, "meets_limit": True, "sentences_per_s": 150.0},
    }
    backends.backends_path(folder).write_text(json.dumps({"backends": entries}))
    chosen = load_for_serving(str(folder), "auto")
    assert "torch-bf16 recorded 150.0 sent/s, below 200.0" in chosen.backend_choice["reason"]
    assert "torch-bf16" not in chosen.backend_choice["figures"]["probe_sentences_per_s"]
    entries["torch-bf16"]["sentences_per_s"] = 300.0
    backends.backends_path(folder).write_text(json.dumps({"backends": entries}))
    choice = load_for_serving(str(folder), "auto").backend_choice
    if backends.bf16_supported():
        assert "torch-bf16" in choice["figures"]["probe_sentences_per_s"]
    else:
        assert "no native bf16" in choice["reason"]
