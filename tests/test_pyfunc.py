"""The model as an MLflow pyfunc: same rows as the engine; every registered version loads as one."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from jdlens.batch import jd_row
from jdlens.engine import Engine
from jdlens.predictors import load_predictor
from jdlens.pyfunc import REPORT_JSON, output_columns, save_pyfunc
from jdlens.report import load_report_config
from tests.conftest import REPO


def _jds(n: int = 6) -> pd.DataFrame:
    lines = (REPO / "data/jds/dev.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    return pd.DataFrame([{"id": r["id"], "text": r["text"]} for r in map(json.loads, lines)])


def test_pyfunc_predictions_equal_the_engine(tiny_model_dir: Path, tmp_path: Path) -> None:
    import mlflow

    dest = save_pyfunc(tiny_model_dir, tmp_path / "pyfunc", REPO / "configs" / "report.yaml")
    assert not list(dest.rglob("*.pkl"))  # models from code: nothing is pickled
    loaded = mlflow.pyfunc.load_model(str(dest))
    assert [c.name for c in loaded.metadata.get_input_schema().inputs] == ["text", "id"]
    assert [c.name for c in loaded.metadata.get_output_schema().inputs] == [n for n, _ in output_columns()]

    frame = _jds()
    got = loaded.predict(frame)
    engine = Engine(load_predictor(str(tiny_model_dir)), load_report_config())
    for (_, row), (jd_id, text) in zip(got.iterrows(), zip(frame["id"], frame["text"], strict=True), strict=True):
        want = engine.score(text, jd_id=jd_id)
        expect = jd_row(want)
        for col in expect:
            if col in ("model_name", "model_version"):
                continue  # the engine names a folder model by its path, the pyfunc by its metadata
            if isinstance(expect[col], float):
                assert abs(row[col] - expect[col]) < 1e-5, col
            else:
                assert row[col] == expect[col], col
        report = json.loads(row[REPORT_JSON])
        assert [s["role"] for s in report["sentences"]] == [s["role"] for s in want["sentences"]]
        assert [m["type"] for m in report["mistakes"]] == [m["type"] for m in want["mistakes"]]

    # Only `text` is needed; a missing `text` column is a clear error.
    assert len(loaded.predict(frame[["text"]])) == len(frame)
    with pytest.raises(Exception, match="text"):
        loaded.predict(pd.DataFrame({"body": ["x"]}))
