"""Train/test overlap: exact matches on normalised text and near duplicates by embedding similarity.

Embeddings are mean-pooled sentence vectors of the base encoder (all-MiniLM-L6-v2 is a sentence-
embedding model), compared by cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jdlens.records import normalise

NEAR_DUPLICATE_COSINE = 0.95


@dataclass(frozen=True)
class Overlap:
    index: int  # into the candidates
    ref_index: int  # into the references
    kind: str  # "exact" or "near"
    similarity: float


def embed(texts: list[str], model_path: str | None = None, batch_size: int = 64) -> np.ndarray:
    """Unit-length mean-pooled embeddings."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from jdlens.paths import DEFAULT_BASE_MODEL, offline_by_default, resolve_base_model

    offline_by_default()
    path = model_path or resolve_base_model(DEFAULT_BASE_MODEL)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, use_safetensors=True).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=128, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out[idx] = torch.nn.functional.normalize(vec, dim=-1).numpy()
    return out


def find_overlaps(
    candidates: list[str],
    references: list[str],
    threshold: float = NEAR_DUPLICATE_COSINE,
    use_embeddings: bool = True,
    model_path: str | None = None,
) -> list[Overlap]:
    """Candidates that duplicate a reference exactly (normalised) or nearly (cosine >= threshold)."""
    ref_keys = {}
    for j, t in enumerate(references):
        ref_keys.setdefault(normalise(t), j)
    found: dict[int, Overlap] = {}
    for i, t in enumerate(candidates):
        j = ref_keys.get(normalise(t))
        if j is not None:
            found[i] = Overlap(i, j, "exact", 1.0)
    rest = [i for i in range(len(candidates)) if i not in found]
    if use_embeddings and rest and references:
        cand = embed([candidates[i] for i in rest], model_path)
        ref = embed(references, model_path)
        for k in range(0, len(rest), 512):
            sims = cand[k : k + 512] @ ref.T
            best = sims.argmax(axis=1)
            for row, j in enumerate(best):
                s = float(sims[row, j])
                if s >= threshold:
                    i = rest[k + row]
                    found[i] = Overlap(i, int(j), "near", s)
    return [found[i] for i in sorted(found)]
