"""The labelled data on disk (`data/`): its splits, content hashes, validation and atomic appends.

Layout (see data/README.md):
  data/sentences/train.jsonl  sentence records for training (plus any `jds/train.jsonl` gold sentences)
  data/sentences/test.jsonl   held-out sentence records, written separately from train
  data/jds/dev.jsonl          whole JDs for tuning (report thresholds; logged every epoch)
  data/jds/test.jsonl         held-out whole JDs
  data/jds/realistic_dev.jsonl   whole JDs in the style of real postings: model selection, calibration,
                                 flag and report thresholds
  data/jds/realistic_test.jsonl  their held-out half (`jdlens eval --split realistic`), never tuned on
  data/jds/train.jsonl        whole JDs for training (their gold sentences join the train split)

Concurrent writers (`jdlens data add`, `jdlens retrain`, in any number of processes) are serialised by a
file lock on `data/.write.lock`; under it the duplicates are checked again against what is on disk now,
so a plan made before the lock (retrain plans before training for minutes) never appends a record twice.
One addition can touch two files (sentences and whole JDs): every new file is written and synced next to
its target first, then a journal naming the renames is made durable, then the renames run. A crash before
the journal leaves the data as it was; a crash after it is rolled forward by the next reader or writer.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jdlens.records import Problem, jd_gold_sentences, normalise, validate_file

SPLITS = ("train", "dev", "test")
# Whole-JD splits that never feed training: tuning halves and their held-out halves.
HELD_OUT_JD_SPLITS = ("dev", "test", "realistic_dev", "realistic_test")
HELD_OUT = ("sentences/test.jsonl", *(f"jds/{s}.jsonl" for s in HELD_OUT_JD_SPLITS))
# Short generic lines ("Requirements", "Benefits") repeat in every posting; overlap checks skip them in JDs.
MIN_WORDS_FOR_JD_OVERLAP = 5
LOCK_FILE = ".write.lock"
JOURNAL_FILE = ".write.journal"
# A writer waits this long for another one (a `data add` holds the lock for seconds; a retrain only for its
# final append) before it gives up with a clear error.
LOCK_TIMEOUT_S = 600.0


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "missing"


@dataclass
class AddResult:
    added: dict[str, int] = field(default_factory=dict)
    skipped_duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)
    pending: list[tuple[Path, list[dict[str, Any]]]] = field(default_factory=list)  # planned, not yet written

    @property
    def new_records(self) -> list[dict[str, Any]]:
        return [r for _, rows in self.pending for r in rows]


class DataStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.data = self.root / "data"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the data folder's write lock (across processes); finishes an interrupted commit first."""
        from filelock import FileLock, Timeout

        self.data.mkdir(parents=True, exist_ok=True)
        # One lock object per path in this process (is_singleton), so nested use in one thread re-enters it;
        # other threads and processes open their own descriptor and wait.
        lock = FileLock(self.data / LOCK_FILE, timeout=LOCK_TIMEOUT_S, is_singleton=True)
        try:
            with lock:
                _recover(self.data)
                yield
        except Timeout as exc:
            raise ValueError(f"{self.data} is locked by another `jdlens data add` or `retrain`; try again") from exc

    def _recover_if_needed(self) -> None:
        if (self.data / JOURNAL_FILE).exists():  # one stat per read: the common case costs nothing
            with self.locked():
                pass

    def path(self, kind: str, split: str) -> Path:
        return self.data / ("sentences" if kind == "sentence" else "jds") / f"{split}.jsonl"

    def _load(self, rel: str) -> list[dict[str, Any]]:
        self._recover_if_needed()
        path = self.data / rel
        if not path.exists():
            return []
        records, problems = validate_file(path)
        if problems:
            raise ValueError(f"{path} is invalid ({problems[0]}); run `jdlens data validate {path}`")
        return records

    def train_records(self) -> list[dict[str, Any]]:
        """Every training sentence: the sentence split plus gold sentences of whole JDs added to train."""
        return self._load("sentences/train.jsonl") + jd_gold_sentences(self._load("jds/train.jsonl"))

    def sentences(self, split: str) -> list[dict[str, Any]]:
        return self._load(f"sentences/{split}.jsonl")

    def jds(self, split: str) -> list[dict[str, Any]]:
        return self._load(f"jds/{split}.jsonl")

    def hashes(self) -> dict[str, str]:
        files = sorted(self.data.glob("sentences/*.jsonl")) + sorted(self.data.glob("jds/*.jsonl"))
        return {str(p.relative_to(self.data)): file_hash(p) for p in files}

    def held_out_texts(self) -> tuple[list[str], list[str]]:
        """(sentence-split texts, JD gold-sentence texts long enough to check) of every held-out split."""
        sents = [r["text"] for r in self._load("sentences/test.jsonl")]
        jd_sents = [
            s["text"]
            for rel in (f"jds/{split}.jsonl" for split in HELD_OUT_JD_SPLITS)
            for s in jd_gold_sentences(self._load(rel))
            if len(s["text"].split()) >= MIN_WORDS_FOR_JD_OVERLAP
        ]
        return sents, jd_sents

    def add(self, file: Path, split: str, use_embeddings: bool = True) -> AddResult:
        """Validate `file` and append its new records to `split`; on any problem nothing is written."""
        with self.locked():  # plan and write as one step: nobody appends in between
            result = self.plan_add(file, split, use_embeddings)
            if not result.problems:
                self.commit(result)
        return result

    def commit(self, result: AddResult) -> None:
        """Write a planned addition, all target files at once, under the write lock.

        The plan may be stale (retrain plans before it trains): duplicates are checked again against the
        files as they are now, and records someone else appended meanwhile are skipped, not repeated."""
        with self.locked():
            writes: list[tuple[Path, list[dict[str, Any]]]] = []
            for target, planned in result.pending:
                existing = self._load(str(target.relative_to(self.data))) if target.exists() else []
                fresh = _new_records(target, existing, planned)
                result.skipped_duplicates += len(planned) - len(fresh)
                writes.append((target, fresh))
            append_all_atomically(self.data, [(t, rows) for t, rows in writes if rows])
            for target, fresh in writes:
                result.added[str(target.relative_to(self.root))] = len(fresh)

    def plan_add(self, file: Path, split: str, use_embeddings: bool = True) -> AddResult:
        """Validate `file` against the schema and the held-out splits; plan what `commit` would append."""
        from jdlens.overlap import find_overlaps

        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        result = AddResult()
        if not file.exists():
            result.problems.append(Problem(str(file), 0, "file not found"))
            return result
        records, result.problems = validate_file(file)
        if result.problems:
            return result
        lines = _record_lines(file)
        kinds = ["jd" if "role_type" in r else "sentence" for r in records]
        if split == "dev" and "sentence" in kinds:
            result.problems.append(Problem(str(file), 0, "the dev split holds whole JDs only"))
            return result
        if split == "train":
            # New training data must not leak a held-out sentence into training.
            sents, jd_sents = self.held_out_texts()
            texts, owners = [], []
            for n, (r, k) in enumerate(zip(records, kinds, strict=True)):
                for t in [r["text"]] if k == "sentence" else [s["text"] for s in r.get("sentences", [])]:
                    texts.append(t)
                    owners.append(n)
            for ref in (sents, jd_sents):
                for o in find_overlaps(texts, ref, use_embeddings=use_embeddings):
                    n = owners[o.index]
                    what = "exact" if o.kind == "exact" else f"near (cosine {o.similarity:.3f})"
                    result.problems.append(
                        Problem(str(file), lines[n], f"{what} duplicate of a held-out sentence: {ref[o.ref_index]!r}")
                    )
            if result.problems:
                result.problems.sort(key=lambda p: p.line)
                return result
        by_target: dict[Path, list[dict[str, Any]]] = {}
        for r, k in zip(records, kinds, strict=True):
            by_target.setdefault(self.path(k, split), []).append(r)
        for target, new in by_target.items():
            existing, problems = validate_file(target) if target.exists() else ([], [])
            if problems:
                result.problems += problems
                continue
            fresh = _new_records(target, existing, new)
            result.skipped_duplicates += len(new) - len(fresh)
            result.pending.append((target, fresh))
        return result


def _record_lines(file: Path) -> list[int]:
    """Line numbers of the non-blank lines, in order (records map to them one to one once valid)."""
    with file.open(encoding="utf-8") as fh:
        return [no for no, raw in enumerate(fh, 1) if raw.strip()]


def _new_records(target: Path, existing: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of `new` that are neither in `existing` nor repeated earlier in `new` (by `target`'s key)."""
    key = _key_for(target)
    seen = {key(r) for r in existing}
    fresh = []
    for r in new:
        if key(r) not in seen:
            seen.add(key(r))
            fresh.append(r)
    return fresh


def _key_for(target: Path) -> Any:
    """Duplicate key of a record in `target`: the id for whole JDs, the normalised text for sentences."""
    return (lambda r: r["id"]) if target.parent.name == "jds" else (lambda r: normalise(r["text"]))


def _fsync_dir(folder: Path) -> None:
    """Make renames and new names in `folder` durable (a file's fsync does not cover its directory entry)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _write_synced(path: Path, data: bytes, mode: int) -> Path:
    """`data` in a synced temporary file next to `path`, with `mode` (mkstemp would leave it 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def append_all_atomically(data: Path, appends: list[tuple[Path, list[dict[str, Any]]]]) -> None:
    """Append records to several files as one change: all of them or none survive a crash.

    Callers hold the write lock. Phase 1 writes each new file next to its target (a failure, e.g. a full
    disk, removes them and leaves the data as it was); phase 2 makes a journal of the renames durable;
    phase 3 renames and removes the journal. `_recover` redoes phase 3 after a crash."""
    if not appends:
        return
    staged: list[tuple[Path, Path]] = []
    try:
        for path, records in appends:
            path.parent.mkdir(parents=True, exist_ok=True)
            old = path.read_bytes() if path.exists() else b""
            if old and not old.endswith(b"\n"):
                old += b"\n"
            new = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
            mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else _new_file_mode()
            staged.append((_write_synced(path, old + new, mode), path))
        plan = [[str(tmp.relative_to(data)), str(target.relative_to(data))] for tmp, target in staged]
        journal = _write_synced(data / JOURNAL_FILE, json.dumps(plan).encode(), 0o644)
        os.replace(journal, data / JOURNAL_FILE)
        _fsync_dir(data)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    _roll_forward(data, plan)


def _roll_forward(data: Path, plan: list[list[str]]) -> None:
    for tmp, target in plan:
        if (data / tmp).exists():
            os.replace(data / tmp, data / target)
    for folder in {(data / target).parent for _, target in plan}:
        _fsync_dir(folder)
    (data / JOURNAL_FILE).unlink()
    _fsync_dir(data)


def _recover(data: Path) -> None:
    """Under the lock: finish a commit whose journal is durable; drop files staged by one that never got there."""
    journal = data / JOURNAL_FILE
    if journal.exists():
        _roll_forward(data, json.loads(journal.read_text(encoding="utf-8")))
    for stray in [*data.glob("*/.*.jsonl.*.tmp"), *data.glob(f".{JOURNAL_FILE}.*.tmp")]:
        stray.unlink(missing_ok=True)
