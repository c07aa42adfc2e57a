"""JDLensClassifier: the one model class that training writes and serving loads.

A saved model is a plain Hugging Face `*ForSequenceClassification` folder (safetensors weights,
tokenizer, `id2label` = the 5 roles then the 3 flags) plus `jdlens.json` (flag thresholds, base model,
metrics). Any tool that reads HF folders can load it; jdlens reads weights from safetensors only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from jdlens.labels import FLAGS, ID2LABEL, LABEL2ID, NUM_ROLES, ROLES
from jdlens.markdown_text import clean_markdown

META_FILE = "jdlens.json"


def sentence_predictions(
    texts: list[str], role_p: np.ndarray, flag_p: np.ndarray, thresholds: dict[str, float]
) -> list[dict[str, Any]]:
    """Probabilities -> the per-sentence output format of `jdlens predict`."""
    out = []
    for text, rp, fp in zip(texts, role_p, flag_p, strict=True):
        out.append(
            {
                "text": text,
                "role": ROLES[int(np.argmax(rp))],
                "role_scores": {r: round(float(p), 6) for r, p in zip(ROLES, rp, strict=True)},
                "flags": [f for f, p in zip(FLAGS, fp, strict=True) if p >= thresholds.get(f, 0.5)],
                "flag_scores": {f: round(float(p), 6) for f, p in zip(FLAGS, fp, strict=True)},
            }
        )
    return out


def split_logits(logits: Any) -> tuple[np.ndarray, np.ndarray]:
    """8 raw logits -> softmax over the 5 roles, sigmoid over the 3 flags."""
    logits = np.asarray(logits, dtype=np.float64)
    roles = logits[:, :NUM_ROLES]
    roles = np.exp(roles - roles.max(axis=1, keepdims=True))
    roles /= roles.sum(axis=1, keepdims=True)
    flags = 1.0 / (1.0 + np.exp(-logits[:, NUM_ROLES:]))
    return roles, flags


def read_meta(folder: Path) -> dict[str, Any]:
    """A saved model folder's `jdlens.json` (thresholds, max_length, name, metrics), or {} without one."""
    path = folder / META_FILE
    return json.loads(path.read_text()) if path.exists() else {}


class LogitsClassifier:
    """What every backend (torch here, ONNX Runtime in jdlens.onnx_model) shares: the settings read from the
    model's meta, and `predict_proba` / `predict` from a subclass's `logits(texts)`."""

    def __init__(self, meta: dict[str, Any] | None) -> None:
        self.meta = meta or {}
        self.flag_thresholds: dict[str, float] = {f: 0.5 for f in FLAGS} | self.meta.get("flag_thresholds", {})
        self.name = self.meta.get("name", "jdlens")
        self.version = self.meta.get("version")
        self.batch_size = 32
        self.max_length = int(self.meta.get("max_length", 128))

    def logits(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return split_logits(self.logits(texts))

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        role_p, flag_p = self.predict_proba(texts)
        return sentence_predictions(texts, role_p, flag_p, self.flag_thresholds)


class JDLensClassifier(LogitsClassifier):
    """Sentence classifier over a sequence-classification encoder (`predict`, `predict_proba`, `save`, `load`)."""

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any] | None = None) -> None:
        super().__init__(meta)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.bf16 = False  # bf16 autocast around the forward pass (`quantize='bf16'`)
        self.backend = "torch-fp32"

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, quantize: str | None = None) -> JDLensClassifier:
        """Load a saved folder; `quantize='int8'` applies torch dynamic int8 quantisation to Linear layers,
        `quantize='bf16'` runs the forward pass under bf16 autocast (weights stay fp32)."""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        if not (path / "model.safetensors").exists():
            raise FileNotFoundError(f"{path} has no model.safetensors (jdlens loads weights from safetensors only)")
        meta = read_meta(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(path)
        if quantize == "int8":
            # The encoder's Linear layers carry the FLOPs; the pooler and the 8-logit head stay fp32,
            # which keeps the logits (and the flag thresholds tuned on them) closer to the fp32 model.
            encoder_linears = {
                name
                for name, m in model.named_modules()
                if isinstance(m, torch.nn.Linear) and ".encoder." in f".{name}."
            }
            # Per-channel weight scales: measurably less drift than one scale per tensor on this model.
            qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
            model = torch.ao.quantization.quantize_dynamic(
                model, dict.fromkeys(encoder_linears, qconfig), dtype=torch.qint8
            )
        elif quantize and quantize != "bf16":
            raise ValueError(f"unknown quantize mode {quantize!r} (use 'int8', 'bf16' or nothing)")
        if device:
            model.to(device)
        clf = cls(model, tokenizer, meta)
        clf.bf16 = quantize == "bf16"
        clf.backend = f"torch-{quantize or 'fp32'}"
        return clf

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.config.id2label = dict(ID2LABEL)
        self.model.config.label2id = dict(LABEL2ID)
        self.model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)
        (path / META_FILE).write_text(json.dumps(self.meta, indent=2, sort_keys=True))

    def logits(self, texts: list[str]) -> np.ndarray:
        """Raw 8-way logits, in input order. All texts are tokenised once, sorted by token count and
        padded per batch, so a batch pads to its own longest sentence (little wasted compute)."""
        import torch

        if not texts:
            return np.zeros((0, len(ID2LABEL)), dtype=np.float32)
        device = next(self.model.parameters()).device
        # Markdown emphasis and link syntax is not part of a sentence's meaning (training strips it too).
        enc = self.tokenizer([clean_markdown(t) for t in texts], truncation=True, max_length=self.max_length)
        rows = [{k: enc[k][i] for k in enc.keys()} for i in range(len(texts))]
        order = sorted(range(len(texts)), key=lambda i: len(rows[i]["input_ids"]))
        out = np.zeros((len(texts), len(ID2LABEL)), dtype=np.float32)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
            for b in range(0, len(order), self.batch_size):
                idx = order[b : b + self.batch_size]
                batch = self.tokenizer.pad([rows[i] for i in idx], return_tensors="pt").to(device)
                out[idx] = self.model(**batch).logits.float().cpu().numpy()
        return out
