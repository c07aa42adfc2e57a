"""The local model cache: a registry spec resolves through MLflow once, later commands load the cached
version without MLflow, and moving the alias (promote) is seen at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jdlens import model_cache, tracking
from jdlens.predictors import load_predictor

REPO = Path(__file__).resolve().parent.parent


def register_tiny(model_dir: Path, score: float) -> str:
    """Register `model_dir` as a new version of `jdlens` (no training: the registry plumbing only)."""
    import mlflow

    from training.run import register

    client = tracking.setup()
    with mlflow.start_run() as run:
        mlflow.log_metric(tracking.KEY_METRIC, score)
        mlflow.log_artifacts(str(model_dir), "model")
        version, _ = register(client, run.info.run_id, run.info.artifact_uri, {tracking.KEY_METRIC: score})
    return version


def _no_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise AssertionError("MLflow was used although the cache is fresh")

    monkeypatch.setattr(tracking, "setup", refuse)


def test_cache_hit_skips_mlflow_and_follows_the_alias(
    project: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert register_tiny(tiny_model_dir, 0.5) == "1"
    first = load_predictor("champion")  # a miss: resolved through MLflow, then cached
    assert first.version == "1" and first.meta["aliases"] == ["champion"]
    cached = model_cache.version_dir(tracking.tracking_uri(), "1")
    assert (cached / "model" / "model.safetensors").is_file()

    with monkeypatch.context() as m:
        _no_mlflow(m)
        again = load_predictor("champion")
        assert again.version == "1" and again.meta["metrics"] == {tracking.KEY_METRIC: 0.5}
        assert load_predictor("models:/jdlens/1").version == "1"

    assert register_tiny(tiny_model_dir, 0.9) == "2"  # becomes challenger
    from training.registry import promote

    promote(tracking.setup(), "2", force=True)  # champion moves to 2: the cached v1 must not answer
    moved = load_predictor("champion")
    assert moved.version == "2" and moved.meta["aliases"] == ["champion"]
    promote(tracking.setup(), "1", force=True)
    with monkeypatch.context() as m:
        _no_mlflow(m)
        back = load_predictor("champion")  # both versions cached: following the alias needs no MLflow
        assert back.version == "1"
        assert load_predictor("models:/jdlens/2").meta["aliases"] == []


def test_a_cache_entry_of_another_run_is_a_miss(project: Path, tiny_model_dir: Path) -> None:
    register_tiny(tiny_model_dir, 0.5)
    load_predictor("champion")
    info_file = model_cache.version_dir(tracking.tracking_uri(), "1") / model_cache.REGISTRY_FILE
    info = json.loads(info_file.read_text())
    info["run_id"] = "0" * 32  # e.g. the store was wiped and version 1 is now a different model
    info_file.write_text(json.dumps(info))
    assert model_cache.lookup(tracking.tracking_uri(), "jdlens", "alias", "champion") is None
    assert load_predictor("champion").version == "1"  # refilled from MLflow
    assert json.loads(info_file.read_text())["run_id"] != "0" * 32


def test_unknown_alias_and_other_stores_are_misses(project: Path, tiny_model_dir: Path) -> None:
    register_tiny(tiny_model_dir, 0.5)
    uri = tracking.tracking_uri()
    assert model_cache.read_registry(uri, "jdlens", "alias", "nope") is None
    assert model_cache.read_registry(uri, "jdlens", "version", "7") is None
    assert model_cache.read_registry("http://127.0.0.1:5000", "jdlens", "alias", "champion") is None
    assert model_cache.read_registry(uri, "jdlens", "alias", "champion")[0] == "1"
    with pytest.raises(LookupError, match="no model version has alias 'nope'"):
        load_predictor("models:/jdlens@nope")


@pytest.mark.integration
def test_cold_score_with_a_fresh_cache_never_imports_mlflow(project: Path, tiny_model_dir: Path) -> None:
    register_tiny(tiny_model_dir, 0.5)
    load_predictor("champion")  # fills the cache
    jd = project / "jd.txt"
    jd.write_text("# ML Engineer\n- Train models with PyTorch.\n- PhD required.\n", encoding="utf-8")
    code = (
        "import sys\nfrom jdlens.cli import app\n"
        f"app(['score', {str(jd)!r}], standalone_mode=False)\n"
        "heavy = sorted(m for m in ('mlflow', 'peft', 'sqlalchemy', 'pandas', 'matplotlib') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout[: out.stdout.rindex("HEAVY")])
    assert report["model"]["version"] == "1"
    assert "HEAVY []" in out.stdout
