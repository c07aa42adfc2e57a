"""The model boundary: JDLensClassifier save/load/predict, logits -> probabilities, the baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jdlens.labels import FLAGS, ROLES
from jdlens.model import JDLensClassifier, split_logits


def test_split_logits_softmax_roles_sigmoid_flags() -> None:
    roles, flags = split_logits(np.array([[2.0, 0, 0, 0, 0, 0.0, 10.0, -10.0]]))
    assert roles.shape == (1, 5) and flags.shape == (1, 3)
    assert abs(roles.sum() - 1) < 1e-9 and roles.argmax() == 0
    assert flags[0, 0] == 0.5 and flags[0, 1] > 0.99 and flags[0, 2] < 0.01


def test_save_load_roundtrip_keeps_logits_and_thresholds(tiny_model_dir: Path, tmp_path: Path) -> None:
    clf = JDLensClassifier.load(tiny_model_dir)
    clf.flag_thresholds = {"phd_required": 0.3, "buzzword": 0.5, "vague_seniority": 0.7}
    clf.meta["flag_thresholds"] = clf.flag_thresholds
    texts = ["Build RAG with pgvector.", "PhD required.", "x" * 400]
    clf.save(tmp_path / "m")
    again = JDLensClassifier.load(tmp_path / "m")
    assert np.allclose(again.logits(texts), clf.logits(texts), atol=1e-6)
    assert again.flag_thresholds["vague_seniority"] == 0.7
    preds = again.predict(texts)
    assert [p["text"] for p in preds] == texts
    assert all(p["role"] in ROLES and set(p["flag_scores"]) == set(FLAGS) for p in preds)
    # Order is preserved although batches are length-sorted.
    single = [again.logits([t])[0] for t in texts]
    assert np.allclose(np.stack(single), again.logits(texts), atol=1e-5)


def test_load_refuses_folders_without_safetensors(tmp_path: Path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match="safetensors"):
        JDLensClassifier.load(tmp_path)


def test_keyword_baseline_rules() -> None:
    from jdlens.baselines import KeywordBaseline

    kb = KeywordBaseline()
    out = kb.predict(
        [
            "Experience building RAG pipelines with LangChain and Pinecone.",
            "Custom PyTorch training loops and FSDP.",
            "PhD required.",
            "PhD preferred.",
            "Experience with AI/ML technologies.",
            "5+ years of experience in ML.",
            "We offer dental insurance and a 401k match.",
        ]
    )
    assert [o["role"] for o in out][:2] == ["application", "ml"]
    assert out[2]["flags"] == ["phd_required"] and out[3]["flags"] == []
    assert "buzzword" in out[4]["flags"] and "vague_seniority" in out[5]["flags"]
    assert out[6]["role"] == "other" and out[6]["flags"] == []


@pytest.mark.slow
def test_default_config_builds_lora_on_the_real_minilm() -> None:
    import torch

    from jdlens.config import load_config
    from training.args import TrainingArguments
    from training.recipe import build_model

    args = load_config(TrainingArguments, Path(__file__).parent.parent / "configs/default.yaml")
    model, tok = build_model(args)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert 100_000 < trainable < 1_000_000 < 20_000_000 < total  # adapters + head + pooler only
    with torch.no_grad():
        logits = model(**tok(["Build RAG with pgvector.", "PhD required."], padding=True, return_tensors="pt")).logits
    assert logits.shape == (2, 8)
