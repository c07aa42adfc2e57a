"""MLflow wiring: the tracking store, the `jdlens` registered model, its aliases and model resolution.

Default: an embedded SQLite store and artifact folder under `.jdlens/` in the project folder, created on
first use, no server needed. Set MLFLOW_TRACKING_URI to use a tracking server instead (for example
`mlflow server --backend-store-uri postgresql://... --workers 1`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jdlens.paths import state_dir

REGISTERED_MODEL = "jdlens"
EXPERIMENT = "jdlens"
CHAMPION = "champion"
CHALLENGER = "challenger"
KEY_METRIC = "test_sent_role_macro_f1"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{state_dir() / 'mlflow.db'}"


def setup() -> Any:
    """Point MLflow at the store and make sure the experiment exists; returns an MlflowClient."""
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()
    if client.get_experiment_by_name(EXPERIMENT) is None:
        location = (state_dir() / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
        try:
            client.create_experiment(EXPERIMENT, artifact_location=location)
        except Exception:  # noqa: BLE001 - a concurrent run on a shared server created it first
            if client.get_experiment_by_name(EXPERIMENT) is None:
                raise
    mlflow.set_experiment(EXPERIMENT)
    return client


def versions(client: Any) -> list[Any]:
    try:
        found = client.search_model_versions(f"name='{REGISTERED_MODEL}'")
    except Exception:  # noqa: BLE001 - no registered model yet
        return []
    # search results carry no aliases; get_model_version does.
    return [client.get_model_version(REGISTERED_MODEL, v.version) for v in sorted(found, key=lambda v: int(v.version))]


def alias_version(client: Any, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(REGISTERED_MODEL, alias).version)
    except Exception:  # noqa: BLE001 - alias not set
        return None


def parse_model_spec(spec: str) -> tuple[str, str] | None:
    """`champion`, `models:/jdlens/3`, `models:/jdlens@challenger` -> ("version"|"alias", value)."""
    if spec in (CHAMPION, CHALLENGER):
        return "alias", spec
    prefix = f"models:/{REGISTERED_MODEL}"
    if spec.startswith(prefix + "@"):
        return "alias", spec[len(prefix) + 1 :]
    if spec.startswith(prefix + "/"):
        return "version", spec[len(prefix) + 1 :]
    if spec.startswith("models:/"):
        raise ValueError(f"unknown registered model in {spec!r}; jdlens registers its model as {REGISTERED_MODEL!r}")
    return None


def resolve_version(client: Any, spec: str) -> Any:
    """A registry model spec -> its ModelVersion; clear errors when it does not exist."""
    kind, value = parse_model_spec(spec) or ("version", spec)
    if kind == "alias":
        try:
            return client.get_model_version_by_alias(REGISTERED_MODEL, value)
        except Exception as exc:  # noqa: BLE001
            hint = " Train one with `jdlens train`." if value == CHAMPION else ""
            raise LookupError(f"no model version has alias {value!r} in {tracking_uri()}.{hint}") from exc
    try:
        return client.get_model_version(REGISTERED_MODEL, str(int(value)))
    except Exception as exc:  # noqa: BLE001
        raise LookupError(f"model version {value!r} of {REGISTERED_MODEL!r} not found in {tracking_uri()}") from exc


def download_version(client: Any, mv: Any) -> Path:
    """The model folder of a registered version, downloaded once into the local cache by version
    (`jdlens.model_cache`, which later commands read without MLflow)."""
    import tempfile

    import mlflow

    from jdlens import model_cache

    uri, version = tracking_uri(), str(mv.version)
    cached = model_cache.cached_folder(uri, version, mv.run_id)
    if cached is not None:
        return cached
    parent = model_cache.store_dir(uri)
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=".download.") as tmp:
        mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path="model", dst_path=tmp)
        metrics = model_cache.metrics_for_report(run_metrics(client, mv.run_id))
        return model_cache.store(uri, version, mv.run_id, Path(tmp) / "model", metrics)


def run_metrics(client: Any, run_id: str) -> dict[str, float]:
    return dict(client.get_run(run_id).data.metrics)
