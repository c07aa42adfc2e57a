"""Registered model versions cached locally, so a cold `jdlens score` does not import or call MLflow.

Layout: `<state>/models/<store>/v<N>/` holds the version's model folder (`model/`) and `registry.json`
(run id, version, test metrics), where `<store>` is a short hash of the tracking URI (two stores never
share a version number). A version's files never change once registered, so a folder cached by version
is valid for as long as the version exists.

Staleness is decided without MLflow: for the default embedded store (`sqlite:///...`) the alias and the
version's run id are read from the MLflow SQLite database directly (`registered_model_aliases`,
`model_versions`), read-only, in about a millisecond. So the cache is exact, not time-based: the moment
`jdlens promote` moves `champion`, the next command sees the new version and misses the cache. Anything
unexpected there (another tracking URI such as a server, a schema MLflow has changed, a deleted version,
a run id that no longer matches the cached one) is a miss, and the caller resolves through MLflow as
before and refills the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jdlens.paths import state_dir

REGISTRY_FILE = "registry.json"
MODEL_DIR = "model"


@dataclass
class CachedVersion:
    """A registered version's local model folder and what reports need to know about it."""

    folder: Path
    version: str
    run_id: str
    aliases: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def store_dir(tracking_uri: str) -> Path:
    return state_dir() / "models" / hashlib.sha256(tracking_uri.encode()).hexdigest()[:12]


def version_dir(tracking_uri: str, version: str) -> Path:
    return store_dir(tracking_uri) / f"v{version}"


def _sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of an embedded `sqlite:///` store, else None (servers go through MLflow)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = Path(tracking_uri[len("sqlite:///") :])
    return path if path.is_file() else None


def read_registry(tracking_uri: str, model: str, kind: str, value: str) -> tuple[str, str, list[str]] | None:
    """(version, run id, aliases) of a registry spec, read straight from an embedded store; None if it
    cannot be answered that way (not SQLite, unknown alias or version, unexpected schema)."""
    db_path = _sqlite_path(tracking_uri)
    if db_path is None:
        return None
    try:
        db = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error:
        return None
    try:
        if kind == "alias":
            row = db.execute(
                "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?", (model, value)
            ).fetchone()
            if row is None:
                return None
            version = str(row[0])
        else:
            version = str(int(value))
        row = db.execute(
            "SELECT run_id FROM model_versions WHERE name = ? AND version = ? "
            "AND (current_stage IS NULL OR current_stage != 'Deleted_Internal')",
            (model, int(version)),
        ).fetchone()
        if row is None or not row[0]:
            return None
        aliases = [
            a
            for (a,) in db.execute(
                "SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ? ORDER BY alias",
                (model, int(version)),
            )
        ]
        return version, str(row[0]), aliases
    except (sqlite3.Error, ValueError):
        return None
    finally:
        db.close()


def lookup(tracking_uri: str, model: str, kind: str, value: str) -> CachedVersion | None:
    """The cached folder of a registry spec if the cache is fresh, without importing MLflow; else None."""
    found = read_registry(tracking_uri, model, kind, value)
    if found is None:
        return None
    version, run_id, aliases = found
    folder = cached_folder(tracking_uri, version, run_id)
    if folder is None:
        return None
    info = json.loads((folder.parent / REGISTRY_FILE).read_text(encoding="utf-8"))
    return CachedVersion(folder, version, run_id, aliases, dict(info.get("metrics", {})))


def cached_folder(tracking_uri: str, version: str, run_id: str) -> Path | None:
    """The cached model folder of `version` if it holds that run's model."""
    folder = version_dir(tracking_uri, version)
    try:
        info = json.loads((folder / REGISTRY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if info.get("run_id") != run_id or not (folder / MODEL_DIR / "model.safetensors").is_file():
        return None
    return folder / MODEL_DIR


def store(tracking_uri: str, version: str, run_id: str, source: Path, metrics: dict[str, float]) -> Path:
    """Copy a downloaded model folder into the cache as one atomic step; returns the cached model folder.
    Concurrent commands filling the same version both succeed (the loser's copy is discarded)."""
    dest = version_dir(tracking_uri, version)
    cached = cached_folder(tracking_uri, version, run_id)
    if cached is not None:
        return cached
    shutil.rmtree(dest, ignore_errors=True)  # a stale or broken entry (e.g. a store recreated from scratch)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".v{version}."))
    try:
        shutil.copytree(source, tmp / MODEL_DIR)
        info = {"version": version, "run_id": run_id, "metrics": metrics}
        (tmp / REGISTRY_FILE).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
        try:
            os.replace(tmp, dest)  # rename(2) of a folder onto a missing name is atomic
        except OSError:
            if not (dest / REGISTRY_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest / MODEL_DIR


def metrics_for_report(metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics a loaded model carries in its meta (the test split's)."""
    return {k: v for k, v in sorted(metrics.items()) if k.startswith("test_")}
