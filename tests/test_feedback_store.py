"""The feedback store: non-Latin corrections keep distinct keys, a reader never blocks a write, writes run
off the event loop, and `kill -9` during writes loses nothing that was acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jdlens.records import normalise
from serving.feedback import FeedbackBusyError, FeedbackStore

REPO = Path(__file__).resolve().parent.parent


def test_non_latin_corrections_do_not_collide(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite")
    texts = [
        "需要三年以上大模型应用开发经验。",
        "负责训练和部署推荐模型。",
        "Опыт разработки RAG-систем от 3 лет.",
        "Обучение и развёртывание моделей в продакшене.",
    ]
    results = [store.add(t, "application", []) for t in texts]
    assert [dup for _, dup in results] == [False] * 4
    assert len({fid for fid, _ in results}) == 4 and store.count() == 4
    # The same sentence again (case and spacing aside) still collapses.
    assert store.add("ОПЫТ разработки  RAG-систем от 3 лет", "application", [])[1] is True
    out = tmp_path / "export.jsonl"
    assert store.export(out) == 4


def test_normalise_keeps_every_script_but_drops_accents() -> None:
    assert normalise("需要博士学位") != normalise("需要三年经验")
    assert normalise("Опыт") == "опыт"
    assert normalise("Café, C++ & C#!") == "cafe c++ c#"


def test_a_reader_holding_a_transaction_does_not_block_a_write(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite")
    store.add("First correction here.", "ml", [])
    reader = sqlite3.connect(tmp_path / "fb.sqlite", isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM corrections").fetchone()[0] == 1  # holds a read snapshot
    try:
        # Without WAL the commit needs an exclusive lock and waits out the busy timeout, then fails.
        fid, dup = store.add("Second correction here.", "ml", [])
        assert not dup and store.count() == 2
    finally:
        reader.execute("COMMIT")
        reader.close()


def test_a_locked_store_does_not_stall_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import serving.feedback

    monkeypatch.setattr(serving.feedback, "BUSY_TIMEOUT_S", 0.5)
    store = FeedbackStore(tmp_path / "fb.sqlite")
    writer = sqlite3.connect(tmp_path / "fb.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another writer holds the write lock

    async def scenario() -> tuple[int, BaseException | None]:
        ticks = 0
        task = asyncio.ensure_future(store.add_async("Blocked correction.", "ml", []))
        while not task.done():  # other requests keep being served while the write waits
            ticks += 1
            await asyncio.sleep(0.01)
        return ticks, task.exception()

    try:
        ticks, error = asyncio.run(scenario())
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert isinstance(error, FeedbackBusyError)  # a short, clear failure rather than a 10 s stall
    assert ticks > 5  # the loop ran while the write waited (a blocking call would give at most 1)
    assert store.add("Blocked correction.", "ml", [])[1] is False  # nothing was half-written


WRITER = textwrap.dedent(
    """
    import sys
    from serving.feedback import FeedbackStore

    store = FeedbackStore(sys.argv[1])
    for i in range(100000):
        fid, _ = store.add(f"Correction number {i} about Kubernetes serving.", "ml", [])
        print(i, fid, flush=True)  # acknowledged only after add() returned
    """
)


@pytest.mark.integration
def test_kill_9_during_writes_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "fb.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], cwd=REPO, stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    acked: list[int] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acked.append(int(line.split()[0]))
        if len(acked) >= 40:
            break
    proc.send_signal(signal.SIGKILL)  # mid-stream: the writer is inside its next add() or printing
    proc.wait(timeout=30)
    acked += [int(x.split()[0]) for x in proc.stdout.read().splitlines() if x.strip()]
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {t for (t,) in check.execute("SELECT text FROM corrections")}
    check.close()
    missing = [i for i in acked if f"Correction number {i} about Kubernetes serving." not in stored]
    assert acked and not missing
    assert FeedbackStore(db).add("After the crash.", "ml", [])[1] is False  # the store still works
