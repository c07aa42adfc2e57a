"""Concurrent and interrupted writes to the data folder: no record is lost or doubled, a two-file addition
lands whole or not at all, and file modes survive."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

import jdlens.datastore as datastore
from jdlens.datastore import DataStore
from jdlens.records import validate_file
from tests.conftest import make_project, write_jsonl

SENT_A = {"text": "Build a retrieval layer over pgvector for the support copilot.", "role": "application", "flags": []}
SENT_B = {"text": "Serve quantised checkpoints behind vLLM with canary releases.", "role": "ml", "flags": []}


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project", n_train=40, n_test=20, n_jds=4)


def _pause_first_replace_in(
    thread_name: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Event, threading.Event]:
    """Make the named thread stop inside its first `os.replace` (the heart of the critical section) until
    released: the injected pause that turns the lost-update race into a deterministic test."""
    inside, release = threading.Event(), threading.Event()
    real = os.replace

    def replace(src: object, dst: object) -> None:
        if threading.current_thread().name == thread_name and not inside.is_set():
            inside.set()
            assert release.wait(30), "the test never released the paused writer"
        real(src, dst)

    monkeypatch.setattr(datastore.os, "replace", replace)
    return inside, release


def _run(name: str, fn: object, errors: list[BaseException]) -> threading.Thread:
    def target() -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    t = threading.Thread(target=target, name=name)
    t.start()
    return t


@pytest.mark.parametrize("second", ["add", "retrain-commit"])
def test_concurrent_writers_lose_nothing(root: Path, monkeypatch: pytest.MonkeyPatch, second: str) -> None:
    train = root / "data/sentences/train.jsonl"
    os.chmod(train, 0o664)
    n_before = len(validate_file(train)[0])
    file_a = write_jsonl(root / "a.jsonl", [SENT_A])
    file_b = write_jsonl(root / "b.jsonl", [SENT_B, SENT_A])  # B also carries A's record: a duplicate
    # A retrain plans its addition long before it commits (it trains in between): the plan is stale.
    stale_plan = DataStore(root).plan_add(file_b, "train", use_embeddings=False) if second != "add" else None
    inside, release = _pause_first_replace_in("writer-a", monkeypatch)
    errors: list[BaseException] = []
    a = _run("writer-a", lambda: DataStore(root).add(file_a, "train", use_embeddings=False), errors)
    assert inside.wait(30), "writer A never reached its write"
    if stale_plan is None:
        b = _run("writer-b", lambda: DataStore(root).add(file_b, "train", use_embeddings=False), errors)
    else:
        b = _run("writer-b", lambda: DataStore(root).commit(stale_plan), errors)
    b.join(2)  # without the lock B finishes here, on top of the file A is about to replace
    release.set()
    a.join(30)
    b.join(30)
    assert not errors, errors
    records, problems = validate_file(train)
    assert not problems, problems  # no duplicate makes the split unreadable
    texts = [r["text"] for r in records]
    assert len(records) == n_before + 2 and SENT_A["text"] in texts and SENT_B["text"] in texts
    assert os.stat(train).st_mode & 0o777 == 0o664  # the file mode is kept
    assert not list((root / "data").glob("**/.*.tmp")) and not (root / "data" / datastore.JOURNAL_FILE).exists()


def _mixed_file(root: Path) -> Path:
    jd = json.loads((root / "data/jds/train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    jd["id"] = "new-train-jd"
    return write_jsonl(root / "mixed.jsonl", [SENT_A, jd])


class Crash(BaseException):
    """Stands in for the process dying (kill -9): nothing after it runs."""


def test_a_crash_between_the_two_renames_is_rolled_forward(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sents, jds = root / "data/sentences/train.jsonl", root / "data/jds/train.jsonl"
    before = {p: p.read_bytes() for p in (sents, jds)}
    real, calls = os.replace, []

    def replace(src: object, dst: object) -> None:
        calls.append(dst)
        if Path(str(dst)).name == "train.jsonl" and len([c for c in calls if Path(str(c)).suffix == ".jsonl"]) == 2:
            raise Crash  # the first target is renamed, the second is not
        real(src, dst)

    monkeypatch.setattr(datastore.os, "replace", replace)
    with pytest.raises(Crash):
        DataStore(root).add(_mixed_file(root), "train", use_embeddings=False)
    monkeypatch.setattr(datastore.os, "replace", real)
    changed = [p for p in (sents, jds) if p.read_bytes() != before[p]]
    assert len(changed) == 1 and (root / "data" / datastore.JOURNAL_FILE).exists()  # half-applied on disk

    store = DataStore(root)  # the next command, in a new process, reads the data
    texts = [r["text"] for r in store.train_records()]
    assert SENT_A["text"] in texts and "new-train-jd" in {j["id"] for j in store.jds("train")}
    assert not (root / "data" / datastore.JOURNAL_FILE).exists()


def test_a_failure_before_the_journal_changes_nothing(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [root / "data/sentences/train.jsonl", root / "data/jds/train.jsonl"]
    before = {p: p.read_bytes() for p in files}
    real, n = datastore._write_synced, []

    def full_disk(path: Path, data: bytes, mode: int) -> Path:
        n.append(path)
        if len(n) == 2:
            raise OSError(28, "No space left on device")
        return real(path, data, mode)

    monkeypatch.setattr(datastore, "_write_synced", full_disk)
    with pytest.raises(OSError, match="No space"):
        DataStore(root).add(_mixed_file(root), "train", use_embeddings=False)
    assert {p: p.read_bytes() for p in files} == before
    assert not list((root / "data").glob("**/.*.tmp")) and not (root / "data" / datastore.JOURNAL_FILE).exists()
    monkeypatch.setattr(datastore, "_write_synced", real)
    assert sum(DataStore(root).add(_mixed_file(root), "train", use_embeddings=False).added.values()) == 2
