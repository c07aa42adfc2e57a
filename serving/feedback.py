"""Reviewer corrections, kept in SQLite; exported as labelled sentence records for `jdlens retrain`."""

from __future__ import annotations

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


class FeedbackStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

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
        key = json.dumps([normalise(text), role, flags])
        now = time.time()
        with self._lock, self._connect() as db:
            row = db.execute("SELECT id FROM corrections WHERE key = ?", (key,)).fetchone()
            if row:
                db.execute("UPDATE corrections SET count = count + 1, updated = ? WHERE id = ?", (now, row[0]))
                return int(row[0]), True
            cur = db.execute(
                "INSERT INTO corrections (key, text, role, flags, model_version, predicted, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, text, role, json.dumps(flags), model_version, json.dumps(predicted or {}), now, now),
            )
            return int(cur.lastrowid), False

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM corrections").fetchone()[0])

    def export(self, out: Path) -> int:
        """Write one labelled sentence record per sentence (its latest correction wins)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT text, role, flags, model_version, updated FROM corrections ORDER BY updated"
            ).fetchall()
        latest: dict[str, dict[str, Any]] = {}
        for text, role, flags, version, _ in rows:
            latest[normalise(text)] = {
                "text": text,
                "role": role,
                "flags": json.loads(flags),
                "source": "feedback",
                "model_version": version,
            }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in latest.values()), encoding="utf-8")
        return len(latest)
