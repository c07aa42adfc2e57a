"""Reviewer corrections, kept in SQLite; exported as labelled sentence records for `jdlens retrain`.

The database runs in WAL mode, so readers (an export, the MLflow UI's neighbour, a `sqlite3` shell) never
block a write and a write never blocks them; `synchronous=FULL` makes a correction durable once `add`
returns, so a crash or `kill -9` after the acknowledgement loses nothing. The busy timeout is short: a
write that cannot get the lock in `BUSY_TIMEOUT_S` raises `FeedbackBusyError` instead of holding its
caller for seconds. The service calls `add_async`, which runs the write in a worker thread so the event
loop keeps answering other requests while SQLite waits or syncs.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from jdlens.records import check_sentence, normalise

SCHEMA = """
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,            -- normalised text + corrected labels: duplicates collapse
    text TEXT NOT NULL,
    role TEXT NOT NULL,
    flags TEXT NOT NULL,                 -- JSON list
    model_version TEXT,
    predicted TEXT,                      -- JSON: the model's role and flags at the time
    created REAL NOT NULL,
    updated REAL NOT NULL,
    count INTEGER NOT NULL DEFAULT 1
)
"""


BUSY_TIMEOUT_S = 2.0


class FeedbackBusyError(RuntimeError):
    """The feedback database stayed locked by another writer for longer than the busy timeout."""


def correction_key(text: str, role: str, flags: list[str]) -> str:
    """Duplicate key of a correction: the normalised text (letters of every script kept) and the labels.
    A text with no letters or digits at all keys on its exact stripped form rather than on ""."""
    return json.dumps([normalise(text) or text.strip(), role, sorted(set(flags))], ensure_ascii=False)


class FeedbackStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the database file
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        db.execute("PRAGMA synchronous=FULL")  # an acknowledged correction survives a crash
        return db

    def add(
        self,
        text: str,
        role: str,
        flags: list[str],
        model_version: str | None = None,
        predicted: dict[str, Any] | None = None,
    ) -> tuple[int, bool]:
        """Store a correction; returns (id, whether it duplicated an earlier one). Raises ValueError if invalid."""
        errors = check_sentence({"text": text, "role": role, "flags": flags})
        if errors:
            raise ValueError("; ".join(errors))
        flags = sorted(set(flags))
        key = correction_key(text, role, flags)
        now = time.time()
        try:
            return self._write(key, text, role, flags, model_version, predicted, now)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise FeedbackBusyError(f"the feedback store is busy ({exc}); retry shortly") from exc
            raise

    async def add_async(
        self,
        text: str,
        role: str,
        flags: list[str],
        model_version: str | None = None,
        predicted: dict[str, Any] | None = None,
    ) -> tuple[int, bool]:
        """`add` in a worker thread: the event loop is free while SQLite waits for a lock or syncs to disk."""
        return await asyncio.to_thread(self.add, text, role, flags, model_version, predicted)

    def _write(
        self,
        key: str,
        text: str,
        role: str,
        flags: list[str],
        model_version: str | None,
        predicted: dict[str, Any] | None,
        now: float,
    ) -> tuple[int, bool]:
        db = self._connect()
        try:
            # One statement, so two writers (threads or processes) can never both insert the same key.
            with self._lock, db:  # committed (and synced) before returning
                row = db.execute(
                    "INSERT INTO corrections (key, text, role, flags, model_version, predicted, created, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET count = count + 1, updated = excluded.updated "
                    "RETURNING id, count",
                    (key, text, role, json.dumps(flags), model_version, json.dumps(predicted or {}), now, now),
                ).fetchone()
            return int(row[0]), int(row[1]) > 1
        finally:
            db.close()  # `with db` commits but does not close; an open handle would pin the WAL

    def count(self) -> int:
        db = self._connect()
        try:
            return int(db.execute("SELECT COUNT(*) FROM corrections").fetchone()[0])
        finally:
            db.close()

    def export(self, out: Path) -> int:
        """Write one labelled sentence record per sentence (its latest correction wins)."""
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT text, role, flags, model_version, updated FROM corrections ORDER BY updated"
            ).fetchall()
        finally:
            db.close()
        latest: dict[str, dict[str, Any]] = {}
        for text, role, flags, version, _ in rows:
            latest[normalise(text) or text.strip()] = {
                "text": text,
                "role": role,
                "flags": json.loads(flags),
                "source": "feedback",
                "model_version": version,
            }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in latest.values()), encoding="utf-8")
        return len(latest)
