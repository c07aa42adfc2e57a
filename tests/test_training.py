"""Training, tracking and the registry with a tiny encoder: versions, aliases, compare, promote,
retrain with promotion gating and rollback, and export with merged-LoRA logits equal to the adapter's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from jdlens import tracking
from jdlens.cli import app
from jdlens.config import load_config
from jdlens.datastore import DataStore
from jdlens.records import jd_gold_sentences
from tests.conftest import tiny_overrides, write_jsonl
from training.args import TrainingArguments

runner = CliRunner()
pytestmark = pytest.mark.integration


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_two_runs_make_champion_and_challenger(project: Path, tiny_encoder: Path) -> None:
    out = cli("train", *tiny_overrides(tiny_encoder))
    assert "registered jdlens version 1 as @champion" in out
    out = cli("train", *tiny_overrides(tiny_encoder), "seed=7", "run_name=second")
    assert "registered jdlens version 2 as @challenger" in out

    client = tracking.setup()
    assert tracking.alias_version(client, "champion") == "1"
    assert tracking.alias_version(client, "challenger") == "2"
    mv = client.get_model_version("jdlens", "2")
    run = client.get_run(mv.run_id)
    assert run.data.params["seed"] == "7" and run.data.params["base_model"] == str(tiny_encoder)
    assert {"test_sent_role_macro_f1", "test_jd_role_type_accuracy", "dev_role_macro_f1", "train_loss"} <= set(
        run.data.metrics
    )
    history = client.get_metric_history(mv.run_id, "train_loss")
    assert len(history) == 2  # one point per epoch
    digests = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert digests["sentences/train.jsonl"] == DataStore(project).hashes()["sentences/train.jsonl"]
    artifacts = {a.path for a in client.list_artifacts(mv.run_id)}
    assert {"model", "adapter", "confusion_matrix.png", "model_card.md", "eval.json"} <= artifacts
    model_files = {Path(a.path).name for a in client.list_artifacts(mv.run_id, "model")}
    assert "model.safetensors" in model_files and not any(f.endswith((".bin", ".pt", ".pkl")) for f in model_files)
    # The ONNX graphs and their accuracy evidence travel with the model (and so into the local cache).
    onnx_files = {Path(a.path).name for a in client.list_artifacts(mv.run_id, "model/onnx")}
    assert {"model.fp32.onnx", "model.int8.onnx", "backends.json"} <= onnx_files

    listing = cli("models")
    assert "champion" in listing and "challenger" in listing
    table = cli("compare")
    assert "test_sent_role_macro_f1" in table and "delta vs champion (v1)" in table and "sentences/train.jsonl" in table
    assert "seed" in table  # params that differ

    # --model accepts aliases and versions everywhere.
    for spec in ("champion", "models:/jdlens/2", "models:/jdlens@challenger"):
        pred = json.loads(
            runner.invoke(
                app, ["predict", "--model", spec, "-"], input='{"text": "PhD required."}\n'
            ).output.splitlines()[0]
        )
        assert set(pred) == {"text", "role", "role_scores", "flags", "flag_scores"}

    m1 = tracking.run_metrics(client, client.get_model_version("jdlens", "1").run_id)[tracking.KEY_METRIC]
    m2 = tracking.run_metrics(client, mv.run_id)[tracking.KEY_METRIC]
    res = runner.invoke(app, ["promote", "2"])
    if m2 < m1:
        assert res.exit_code == 1 and "--force" in res.output
        assert tracking.alias_version(client, "champion") == "1"
        res = runner.invoke(app, ["promote", "2", "--force"])
    assert res.exit_code == 0, res.output
    assert tracking.alias_version(client, "champion") == "2"
    assert tracking.alias_version(client, "challenger") is None


def test_retrain_grows_data_and_gates_promotion(project: Path, tiny_encoder: Path) -> None:
    cli("train", *tiny_overrides(tiny_encoder))
    store = DataStore(project)
    n_before = len(store.train_records())
    test_hash = store.hashes()["sentences/test.jsonl"]
    new = [
        {
            "text": "Stand up a Qdrant-backed retrieval layer for our support copilot.",
            "role": "application",
            "flags": [],
        },
        {"text": "Roll out quantised Llama checkpoints behind TGI with canary releases.", "role": "ml", "flags": []},
    ]
    out = cli(
        "retrain",
        str(write_jsonl(project / "new.jsonl", new)),
        "--promote",
        "never",
        "--no-embeddings",
        *tiny_overrides(tiny_encoder),
    )
    assert "added 2 record(s)" in out and "kept as challenger (policy never)" in out
    assert len(store.train_records()) == n_before + 2
    assert store.hashes()["sentences/test.jsonl"] == test_hash  # the test split is never touched
    client = tracking.setup()
    assert tracking.alias_version(client, "champion") == "1" and tracking.alias_version(client, "challenger") == "2"
    run = client.get_run(client.get_model_version("jdlens", "2").run_id)
    assert run.data.params["n_train"] == str(n_before + 2)

    out = cli(
        "retrain",
        str(
            write_jsonl(
                project / "more.jsonl",
                [
                    {
                        "text": "Wire Claude tool calling into the claims triage assistant.",
                        "role": "application",
                        "flags": [],
                    }
                ],
            )
        ),
        "--promote",
        "always",
        "--no-embeddings",
        *tiny_overrides(tiny_encoder),
    )
    assert "is now the champion" in out and tracking.alias_version(client, "champion") == "3"


def test_failed_retrain_leaves_data_registry_and_champion(
    project: Path, tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("train", *tiny_overrides(tiny_encoder))
    train_file = project / "data/sentences/train.jsonl"
    before = train_file.read_bytes()

    import training.run

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("simulated crash in the middle of training")

    monkeypatch.setattr(training.run, "train", boom)
    new = write_jsonl(
        project / "new.jsonl", [{"text": "Fine-tune Whisper on call-centre audio.", "role": "ml", "flags": []}]
    )
    res = runner.invoke(app, ["retrain", str(new), "--no-embeddings", *tiny_overrides(tiny_encoder)])
    assert res.exit_code != 0
    assert train_file.read_bytes() == before
    client = tracking.setup()
    assert [str(v.version) for v in tracking.versions(client)] == ["1"]
    assert tracking.alias_version(client, "champion") == "1"
    runs = client.search_runs([client.get_experiment_by_name("jdlens").experiment_id], order_by=["start_time DESC"])
    assert runs[0].info.status == "FAILED"


def test_bad_retrain_file_changes_nothing(project: Path, tiny_encoder: Path) -> None:
    before = (project / "data/sentences/train.jsonl").read_bytes()
    bad = project / "bad.jsonl"
    bad.write_text('{"text": "ok sentence here", "role": "ml", "flags": []}\n{"text": 3}\n', encoding="utf-8")
    res = runner.invoke(app, ["retrain", str(bad), "--no-embeddings", *tiny_overrides(tiny_encoder)])
    assert res.exit_code == 1 and "bad.jsonl:2:" in res.output
    assert (project / "data/sentences/train.jsonl").read_bytes() == before


def test_merged_export_equals_lora_logits_and_loads_in_plain_transformers(
    project: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.export import export_hf
    from training.recipe import train

    args = load_config(TrainingArguments, project / "configs/default.yaml", tiny_overrides(tiny_encoder))
    store = DataStore(project)
    result = train(args, store.train_records(), jd_gold_sentences(store.jds("dev")))
    clf = result.classifier
    assert hasattr(clf.model, "peft_config")
    texts = [r["text"] for r in store.sentences("test")[:40]]
    # Give the adapters non-trivial weights so that merging is actually exercised.
    import torch

    with torch.no_grad():
        for name, p in clf.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.05 * torch.randn_like(p))
    lora_logits = clf.logits(texts)
    out = export_hf(clf, tmp_path / "export")
    model = AutoModelForSequenceClassification.from_pretrained(out, use_safetensors=True).eval()
    tok = AutoTokenizer.from_pretrained(out)
    with torch.inference_mode():
        plain = model(
            **tok(texts, padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
        ).logits.numpy()
    assert np.abs(plain - lora_logits).max() < 1e-4
    assert model.config.id2label[0] == "application" and model.config.id2label[7] == "vague_seniority"
    assert not any(p.name.startswith("adapter") for p in out.iterdir())


def test_cli_export_of_the_champion(project: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    cli("train", *tiny_overrides(tiny_encoder))
    out = cli("export", str(tmp_path / "hf"), "--format", "hf")
    assert "exported to" in out and (tmp_path / "hf" / "model.safetensors").exists()
    res = runner.invoke(app, ["export", str(tmp_path / "x"), "--model", "baseline:keywords"])
    assert res.exit_code == 2 and "only trained models" in res.output
