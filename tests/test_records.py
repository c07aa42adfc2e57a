"""Data validation, atomic appends and the train/test overlap check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jdlens.datastore import DataStore
from jdlens.overlap import find_overlaps
from jdlens.records import normalise, validate_file
from tests.conftest import write_jsonl


def test_validate_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(
        '{"text": "Build RAG with pgvector.", "role": "application", "flags": []}\n'
        "{not json}\n"
        '{"text": "PhD required.", "role": "general", "flags": ["phd"]}\n'
        '{"text": "Great perks.", "role": "other", "flags": ["buzzword"]}\n'
        '{"text": "build rag with PGVECTOR", "role": "application", "flags": []}\n'
        '{"text": "", "role": "boss"}\n',
        encoding="utf-8",
    )
    records, problems = validate_file(f)
    by_line = {p.line: p.reason for p in problems}
    assert len(records) == 1
    assert "invalid JSON" in by_line[2]
    assert "unknown flag" in by_line[3]
    assert "not on role 'other'" in by_line[4]
    assert "duplicate sentence of line 1" in by_line[5]
    assert "'role' is 'boss'" in by_line[6]


def test_jd_record_offsets_are_checked(tmp_path: Path) -> None:
    jd = {
        "id": "x",
        "text": "Title\n- Train models.\n",
        "role_type": "ml",
        "mistakes": [],
        "sentences": [
            {"start": 0, "end": 5, "text": "Title", "role": "other", "flags": []},
            {"start": 8, "end": 20, "text": "Train modelz", "role": "ml", "flags": []},
        ],
    }
    _, problems = validate_file(write_jsonl(tmp_path / "jd.jsonl", [jd]))
    assert len(problems) == 1 and "not the sentence text" in problems[0].reason
    jd["mistakes"] = ["mixed_roles"]
    _, problems = validate_file(write_jsonl(tmp_path / "jd.jsonl", [jd]))
    assert any("mixed_roles" in p.reason for p in problems)


def test_normalise_ignores_case_punctuation_and_markup() -> None:
    assert normalise("**Build** RAG — with pgvector!") == normalise("build rag with pgvector")


def test_add_rejects_bad_file_and_changes_nothing(project: Path) -> None:
    store = DataStore(project)
    train = project / "data/sentences/train.jsonl"
    before = train.read_bytes()
    bad = project / "new.jsonl"
    bad.write_text(
        '{"text": "Ship agents with LangGraph and tool calling.", "role": "application", "flags": []}\n'
        '{"text": "x", "role": "nope", "flags": []}\n',
        encoding="utf-8",
    )
    result = store.add(bad, "train", use_embeddings=False)
    assert [p.line for p in result.problems] == [2]
    assert train.read_bytes() == before


def test_add_appends_new_records_and_skips_duplicates(project: Path) -> None:
    store = DataStore(project)
    train = project / "data/sentences/train.jsonl"
    existing = json.loads(train.read_text().splitlines()[0])
    new = {
        "text": "Own the Triton inference fleet for our ranking models across three regions.",
        "role": "ml",
        "flags": [],
    }
    result = store.add(write_jsonl(project / "new.jsonl", [existing, new]), "train", use_embeddings=False)
    assert not result.problems
    assert result.added == {"data/sentences/train.jsonl": 1} and result.skipped_duplicates == 1
    assert json.loads(train.read_text().splitlines()[-1])["text"] == new["text"]


def test_add_refuses_a_held_out_sentence(project: Path) -> None:
    store = DataStore(project)
    held = json.loads((project / "data/sentences/test.jsonl").read_text().splitlines()[3])
    before = (project / "data/sentences/train.jsonl").read_bytes()
    result = store.add(write_jsonl(project / "leak.jsonl", [held]), "train", use_embeddings=False)
    assert result.problems and "held-out" in result.problems[0].reason and result.problems[0].line == 1
    assert (project / "data/sentences/train.jsonl").read_bytes() == before


@pytest.mark.slow
def test_overlap_finds_exact_and_near_duplicates_with_the_real_encoder() -> None:
    refs = [
        "Experience building retrieval-augmented generation pipelines with pgvector.",
        "We offer 30 days of paid holiday.",
        "Publish at NeurIPS or ICML.",
    ]
    cands = [
        "experience building retrieval augmented generation pipelines with PGVECTOR",  # exact after normalising
        "Experience building retrieval-augmented generation pipelines using pgvector.",  # near
        "Maintain the Kubernetes cluster that trains our forecasting models.",
    ]  # unrelated
    found = {o.index: o for o in find_overlaps(cands, refs)}
    assert found[0].kind == "exact"
    assert found[1].kind == "near" and found[1].ref_index == 0 and found[1].similarity >= 0.95
    assert 2 not in found


def test_released_splits_are_valid_and_do_not_overlap_exactly() -> None:
    from jdlens.validate import validate_paths

    problems, summary = validate_paths([Path(__file__).parent.parent / "data"], use_embeddings=False)
    assert problems == [], problems[:5]
    assert "problem(s)" in summary
