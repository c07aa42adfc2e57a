"""`jdlens batch` (local and Ray engines) and `jdlens market` on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from jdlens.batch import jd_row, read_output, sentence_rows
from jdlens.cli import app
from tests.conftest import REPO

TITLES = ("ML Engineer", "AI Engineer", "Research Engineer")


def _frame_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Row-for-row equality: same columns and values; probabilities to 1e-5 (model batches pad differently)."""
    assert sorted(a.columns) == sorted(b.columns)
    b = b[a.columns]
    assert len(a) == len(b)
    for col in a.columns:
        if pd.api.types.is_float_dtype(a[col]):
            assert (a[col] - b[col]).abs().max() < 1e-5, col
        else:
            assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), col


@pytest.fixture(scope="module")
def jd_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 real JDs with a carried `title` column, plus bad rows, as Parquet."""
    lines = (REPO / "data/jds/test.jsonl").read_text(encoding="utf-8").splitlines()[:12]
    rows = [
        {"id": r["id"], "text": r["text"], "title": TITLES[i % 3], "source": "test"}
        for i, r in enumerate(json.loads(x) for x in lines)
    ]
    rows += [
        {"id": "empty", "text": "   ", "title": "x", "source": "bad"},
        {"id": "none", "text": None, "title": "x", "source": "bad"},
        {"id": "huge", "text": "Build RAG pipelines. " * 6000, "title": "x", "source": "bad"},
        {"id": rows[0]["id"], "text": "a duplicate id", "title": "x", "source": "bad"},
    ]
    path = tmp_path_factory.mktemp("batch-in") / "jds.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


def _batch(args: list[str]) -> str:
    res = CliRunner().invoke(app, ["batch", *args, "--no-progress"])
    assert res.exit_code == 0, res.output
    return res.output


def test_local_batch_rows_equal_score_jsonl(jd_input: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    msg = _batch([str(jd_input), str(out), "--model", str(tiny_model_dir)])
    assert "scored 11 JDs" in msg and "5 bad rows" in msg  # both rows of the duplicated id are bad
    jds, sents = read_output(out)

    # The same JDs through `jdlens score --jsonl` give the same rows.
    src = pd.read_parquet(jd_input).iloc[1:12]
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"id": r.id, "text": r.text}) + "\n" for r in src.itertuples()))
    res = CliRunner().invoke(app, ["score", str(jsonl), "--jsonl", "--model", str(tiny_model_dir)])
    assert res.exit_code == 0, res.output
    reports = [json.loads(x) for x in res.output.splitlines()]
    carry = {r.id: {"title": r.title, "source": r.source} for r in src.itertuples()}
    want_jds = pd.DataFrame([jd_row(r, carry[r["id"]]) for r in reports]).sort_values("id").reset_index(drop=True)
    want_sents = pd.DataFrame([s for r in reports for s in sentence_rows(r)])
    want_sents = want_sents.sort_values(["jd_id", "index"]).reset_index(drop=True)
    _frame_equal(want_jds, jds)
    _frame_equal(want_sents, sents)
    assert {"mistake_mixed_roles", "share_research", "model_version", "title"} <= set(jds.columns)
    assert "text" not in jds.columns and "text" not in sents.columns  # JD text is not stored

    errors = {e["id"]: e["reason"] for e in map(json.loads, (out / "errors.jsonl").read_text().splitlines())}
    assert errors["empty"] == "no text" and errors["none"] == "no text"
    assert errors["huge"].startswith("text is too long")
    assert errors["jd-j1-005"].startswith("duplicate id")


def test_local_batch_resumes(jd_input: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = pd.read_parquet(jd_input).iloc[1:6]
    first.to_parquet(tmp_path / "first.parquet")
    _batch([str(tmp_path / "first.parquet"), str(out), "--model", str(tiny_model_dir)])
    # An interrupted run leaves a sentences part without its JD part: it is dropped, not duplicated.
    (out / "sentences" / "part-interrupted-00000.parquet").write_bytes(
        (next((out / "sentences").glob("part-*.parquet"))).read_bytes()
    )
    msg = _batch([str(jd_input), str(out), "--model", str(tiny_model_dir)])
    assert "scored 6 JDs" in msg and "5 already in" in msg
    jds, sents = read_output(out)
    assert len(jds) == 11 and jds["id"].is_unique
    assert not sents.duplicated(["jd_id", "index"]).any()
    assert set(sents["jd_id"]) == set(jds["id"])
    again = _batch([str(jd_input), str(out), "--model", str(tiny_model_dir)])
    assert "scored 0 JDs" in again and "0 bad rows" in again  # bad rows are reported once


def test_bad_input_is_rejected(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tmp_path / "x.txt").write_text("hello")
    res = CliRunner().invoke(app, ["batch", str(tmp_path / "x.txt"), str(tmp_path / "o"), "-m", str(tiny_model_dir)])
    assert res.exit_code != 0 and "unsupported input" in res.output
    res = CliRunner().invoke(app, ["batch", str(tmp_path), str(tmp_path / "o"), "--engine", "spark"])
    assert res.exit_code != 0 and "--engine must be local or ray" in res.output


def test_jsonl_bad_lines_go_to_errors(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(
        b'{"id": "ok", "text": "Build RAG pipelines on LLM APIs."}\n{"id": "latin1", "text": "caf\xe9"}\nnot json\n'
    )
    (folder / "b.csv").write_text('id,text,title\ncsv1,"Train models with PyTorch.\nShip them.",ML Engineer\n')
    _batch([str(folder), str(tmp_path / "out"), "-m", str(tiny_model_dir)])
    jds, _ = read_output(tmp_path / "out")
    assert sorted(jds["id"]) == ["csv1", "ok"]
    reasons = [json.loads(x)["reason"] for x in (tmp_path / "out/errors.jsonl").read_text().splitlines()]
    assert reasons[0] == "line is not UTF-8" and reasons[1].startswith("not JSON")


def test_market_draws_plots(jd_input: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _batch([str(jd_input), str(out), "--model", str(tiny_model_dir)])
    res = CliRunner().invoke(app, ["market", str(out)])
    assert res.exit_code == 0, res.output
    for png in ("role_mix", "mistake_rates", "score_distribution", "role_by_title"):
        assert (out / "market" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    summary = (out / "market" / "summary.md").read_text()
    assert "# The market in 11 JDs" in summary and "| AI Engineer | 4 |" in summary
    res = CliRunner().invoke(app, ["market", str(tmp_path / "nothing")])
    assert res.exit_code != 0 and "no Parquet parts" in res.output


@pytest.mark.integration
def test_ray_engine_equals_local(jd_input: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    _batch([str(jd_input), str(local), "--model", str(tiny_model_dir)])
    msg = _batch([str(jd_input), str(ray_out), "--model", str(tiny_model_dir), "--engine", "ray", "--num-cpus", "2"])
    assert "scored 11 JDs" in msg
    for a, b in zip(read_output(local), read_output(ray_out), strict=True):
        _frame_equal(a, b)
    local_err = sorted(json.loads(x)["reason"] for x in (local / "errors.jsonl").read_text().splitlines())
    ray_err = sorted(json.loads(x)["reason"] for x in (ray_out / "errors.jsonl").read_text().splitlines())
    assert local_err == ray_err and len(ray_err) == 5
