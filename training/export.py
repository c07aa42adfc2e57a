"""`jdlens export --format hf OUT/`: a plain Hugging Face folder that needs no jdlens code.

The registered model is already LoRA-merged; export re-saves it (safetensors, tokenizer, config with
`id2label`) with the model card, ready for `transformers` and for `vllm serve OUT --runner pooling
--convert classify`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from training.recipe import merge_for_export


def export_hf(predictor: Any, out: Path) -> Path:
    from jdlens.model import JDLensClassifier

    if not isinstance(predictor, JDLensClassifier):
        raise ValueError("only trained models can be exported, not baselines")
    out.mkdir(parents=True, exist_ok=True)
    merged = merge_for_export(predictor)
    merged.model.config.problem_type = None  # raw logits: roles softmax, flags sigmoid, applied by the caller
    merged.save(out)
    for junk in out.glob("adapter_*"):
        junk.unlink() if junk.is_file() else shutil.rmtree(junk)
    return out
