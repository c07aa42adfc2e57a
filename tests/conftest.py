"""Shared fixtures: a tiny BERT encoder (fast tests) and a small copy of the project's data."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from serving.launch import free_port

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def make_tiny_encoder(folder: Path) -> Path:
    """A 2-layer, 32-wide BERT with MiniLM's tokenizer: trains in seconds, same code paths as the real one."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from jdlens.paths import DEFAULT_BASE_MODEL, resolve_base_model

    if (folder / "config.json").exists():
        return folder
    tok = AutoTokenizer.from_pretrained(resolve_base_model(DEFAULT_BASE_MODEL))
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


def _head(src: Path, dst: Path, n: int) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    lines = [x for x in src.read_text(encoding="utf-8").splitlines() if x.strip()]
    # Spread the sample over the whole file so every label shows up.
    step = max(1, len(lines) // n)
    dst.write_text("\n".join(lines[::step][:n]) + "\n", encoding="utf-8")


def make_project(root: Path, n_train: int = 300, n_test: int = 80, n_jds: int = 8) -> Path:
    """A project folder with a small sample of every split and the repo's configs."""
    _head(REPO / "data/sentences/train.jsonl", root / "data/sentences/train.jsonl", n_train)
    _head(REPO / "data/sentences/test.jsonl", root / "data/sentences/test.jsonl", n_test)
    _head(REPO / "data/jds/dev.jsonl", root / "data/jds/dev.jsonl", n_jds)
    _head(REPO / "data/jds/test.jsonl", root / "data/jds/test.jsonl", n_jds)
    for split in ("realistic_dev", "realistic_test", "train"):
        if (REPO / f"data/jds/{split}.jsonl").exists():
            _head(REPO / f"data/jds/{split}.jsonl", root / f"data/jds/{split}.jsonl", max(2, n_jds // 4))
    shutil.copytree(REPO / "configs", root / "configs", dirs_exist_ok=True)
    return root


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project folder as the working project: JDLENS_HOME and an empty MLflow store in it."""
    root = make_project(tmp_path / "project")
    monkeypatch.setenv("JDLENS_HOME", str(root))
    monkeypatch.setenv("JDLENS_STATE", str(root / ".jdlens"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return root


def tiny_overrides(encoder: Path) -> list[str]:
    return [
        f"base_model={encoder}",
        "epochs=2",
        "batch_size=16",
        "max_length=48",
        "lora_r=4",
        "lora_alpha=8",
        "learning_rate=0.005",
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_tiny_model(encoder: Path, folder: Path) -> Path:
    """An untrained jdlens model folder (8-label head on the tiny encoder): for serving/CLI plumbing tests."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from jdlens.labels import ID2LABEL, LABEL2ID
    from jdlens.model import JDLensClassifier

    if (folder / "model.safetensors").exists():
        return folder
    model = AutoModelForSequenceClassification.from_pretrained(
        encoder, num_labels=8, id2label=dict(ID2LABEL), label2id=dict(LABEL2ID)
    )
    JDLensClassifier(model, AutoTokenizer.from_pretrained(encoder), {"name": "tiny", "max_length": 48}).save(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tiny_encoder, tmp_path_factory.mktemp("tiny-model") / "model")


@contextmanager
def jdlens_server(args: list[str], env: dict[str, str], log: Path, cwd: Path, timeout: float = 60) -> Iterator[str]:
    """`jdlens serve ARGS` (this checkout's code) on a free loopback port; yields its base URL once GET /ping
    answers 200, and always stops it. Its output goes to `log`."""
    import sys

    from serving.launch import running

    port = free_port()
    cmd = [
        sys.executable,
        "-c",
        "from jdlens.cli import main; main()",
        "serve",
        *args,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    base = f"http://127.0.0.1:{port}"
    with running(cmd, f"{base}/ping", log, env=env, cwd=cwd, timeout=timeout, name="jdlens serve"):
        yield base
