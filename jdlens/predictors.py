"""`--model` specs -> a sentence predictor (`predict_proba`, `flag_thresholds`, `name`, `version`).

Specs: `champion` (default), `challenger`, `models:/jdlens/3`, `models:/jdlens@alias`, a model folder,
`baseline:keywords`, `baseline:tfidf`.

Backend (`backend=` or `$JDLENS_BACKEND`): `auto` (default) runs the folder's fp32 ONNX graph in ONNX Runtime
when it has one (`jdlens.onnx_model`: no torch or transformers import, the same logits as torch within
1e-4, so `jdlens eval` still reproduces the registered metrics), else torch; `torch`, `onnx-fp32`,
`onnx-int8` ask for one. A registry version cached without a graph (registered before graphs existed) gets
its fp32 graph exported into the cache once. A missing or unreadable graph falls back to torch with a
one-line note on stderr, never a crash.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from jdlens.config import repo_root

BASELINES = ("baseline:keywords", "baseline:tfidf")
BACKEND_ENV = "JDLENS_BACKEND"
BACKEND_CHOICES = ("auto", "torch", "onnx-fp32", "onnx-int8")


def _note(message: str) -> None:
    print(f"jdlens: {message}", file=sys.stderr, flush=True)


def load_folder(
    folder: Path,
    backend: str = "auto",
    quantize: str | None = None,
    device: str | None = None,
    export_missing: bool = False,
) -> Any:
    """A model folder on the requested backend. `export_missing` (only for folders jdlens owns, i.e. the
    version cache) writes the fp32 ONNX graph when the folder has none, for the next command."""
    from jdlens import onnx_model

    if backend not in BACKEND_CHOICES:
        raise ValueError(f"unknown backend {backend!r} (use one of {', '.join(BACKEND_CHOICES)})")
    onnx_ok = backend != "torch" and not quantize and device in (None, "cpu")
    if onnx_ok:
        precision = "int8" if backend == "onnx-int8" else "fp32"
        graph = onnx_model.graph_path(folder, precision)
        if not graph.is_file() and export_missing and precision == "fp32" and (folder / "model.safetensors").is_file():
            try:
                onnx_model.export_fp32(folder)
            except Exception as exc:  # noqa: BLE001 - an export failure must not stop the command
                _note(f"could not export an ONNX graph for {folder.name} ({type(exc).__name__}: {exc}); using torch")
        if graph.is_file():
            try:
                return onnx_model.OnnxClassifier.load(folder, precision)
            except (OSError, ValueError) as exc:
                _note(f"{exc}; using torch instead")
        elif backend != "auto":
            _note(f"{folder.name} has no ONNX graph {graph.name}; using torch instead")
    from jdlens.model import JDLensClassifier

    return JDLensClassifier.load(folder, device=device, quantize=quantize)


def load_predictor(
    spec: str = "champion", quantize: str | None = None, device: str | None = None, backend: str | None = None
) -> Any:
    from jdlens.paths import offline_by_default

    offline_by_default()
    backend = backend or os.environ.get(BACKEND_ENV) or "auto"
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"unknown backend {backend!r} (${BACKEND_ENV}: one of {', '.join(BACKEND_CHOICES)})")
    if spec == "baseline:keywords":
        from jdlens.baselines import KeywordBaseline

        return KeywordBaseline()
    if spec == "baseline:tfidf":
        from jdlens.baselines import TfidfBaseline

        return TfidfBaseline.from_train_split(repo_root())
    if spec.startswith("baseline:"):
        raise ValueError(f"unknown baseline {spec!r}; choose one of {', '.join(BASELINES)}")
    folder = Path(spec)
    if folder.is_dir():
        model = load_folder(folder, backend, quantize, device)
        model.name = str(folder)
        return model
    from jdlens import model_cache, tracking

    parsed = tracking.parse_model_spec(spec)
    if parsed is None:
        raise ValueError(
            f"--model {spec!r} is neither a folder, a registry spec (champion, models:/jdlens/N, "
            f"models:/jdlens@alias) nor a baseline ({', '.join(BASELINES)})"
        )
    # Fast path: a fresh local copy of the version, found without importing MLflow (see jdlens/model_cache.py).
    hit = model_cache.lookup(tracking.tracking_uri(), tracking.REGISTERED_MODEL, *parsed)
    if hit is not None:
        model = load_folder(hit.folder, backend, quantize, device, export_missing=True)
        model.name = tracking.REGISTERED_MODEL
        model.version = hit.version
        model.meta["aliases"] = hit.aliases
        model.meta["metrics"] = hit.metrics
        return model
    client = tracking.setup()
    mv = tracking.resolve_version(client, spec)
    folder = tracking.download_version(client, mv)
    model = load_folder(folder, backend, quantize, device, export_missing=True)
    model.name = tracking.REGISTERED_MODEL
    model.version = str(mv.version)
    model.meta["aliases"] = sorted(getattr(mv, "aliases", []) or [])
    model.meta["metrics"] = model_cache.metrics_for_report(tracking.run_metrics(client, mv.run_id))
    return model


def describe(predictor: Any) -> dict[str, Any]:
    """Name, version and aliases for reports and /models."""
    meta = getattr(predictor, "meta", {})
    return {"name": predictor.name, "version": predictor.version, "aliases": meta.get("aliases", [])}
