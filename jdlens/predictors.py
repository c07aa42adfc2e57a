"""`--model` specs -> a sentence predictor (`predict_proba`, `flag_thresholds`, `name`, `version`).

Specs: `champion` (default), `challenger`, `models:/jdlens/3`, `models:/jdlens@alias`, a model folder,
`baseline:keywords`, `baseline:tfidf`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jdlens.config import repo_root

BASELINES = ("baseline:keywords", "baseline:tfidf")


def load_predictor(spec: str = "champion", quantize: str | None = None, device: str | None = None) -> Any:
    from jdlens.paths import offline_by_default

    offline_by_default()
    if spec == "baseline:keywords":
        from jdlens.baselines import KeywordBaseline

        return KeywordBaseline()
    if spec == "baseline:tfidf":
        from jdlens.baselines import TfidfBaseline

        return TfidfBaseline.from_train_split(repo_root())
    if spec.startswith("baseline:"):
        raise ValueError(f"unknown baseline {spec!r}; choose one of {', '.join(BASELINES)}")
    from jdlens.model import JDLensClassifier

    folder = Path(spec)
    if folder.is_dir():
        model = JDLensClassifier.load(folder, device=device, quantize=quantize)
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
        model = JDLensClassifier.load(hit.folder, device=device, quantize=quantize)
        model.name = tracking.REGISTERED_MODEL
        model.version = hit.version
        model.meta["aliases"] = hit.aliases
        model.meta["metrics"] = hit.metrics
        return model
    client = tracking.setup()
    mv = tracking.resolve_version(client, spec)
    model = JDLensClassifier.load(tracking.download_version(client, mv), device=device, quantize=quantize)
    model.name = tracking.REGISTERED_MODEL
    model.version = str(mv.version)
    model.meta["aliases"] = sorted(getattr(mv, "aliases", []) or [])
    model.meta["metrics"] = model_cache.metrics_for_report(tracking.run_metrics(client, mv.run_id))
    return model


def describe(predictor: Any) -> dict[str, Any]:
    """Name, version and aliases for reports and /models."""
    meta = getattr(predictor, "meta", {})
    return {"name": predictor.name, "version": predictor.version, "aliases": meta.get("aliases", [])}
