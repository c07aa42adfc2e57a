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
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
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

    def path(self, kind: str, split: str) -> Path:
        return self.data / ("sentences" if kind == "sentence" else "jds") / f"{split}.jsonl"

    def _load(self, rel: str) -> list[dict[str, Any]]:
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
        result = self.plan_add(file, split, use_embeddings)
        if not result.problems:
            self.commit(result)
        return result

    def commit(self, result: AddResult) -> None:
        """Write a planned addition (each target file replaced atomically)."""
        for target, fresh in result.pending:
            if fresh:
                append_atomically(target, fresh)
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
            key = (lambda r: r["id"]) if "jd" in target.parent.name else (lambda r: normalise(r["text"]))
            seen = {key(r) for r in existing}
            fresh = []
            for r in new:
                if key(r) in seen:
                    result.skipped_duplicates += 1
                    continue
                seen.add(key(r))
                fresh.append(r)
            result.pending.append((target, fresh))
        return result


def _record_lines(file: Path) -> list[int]:
    """Line numbers of the non-blank lines, in order (records map to them one to one once valid)."""
    with file.open(encoding="utf-8") as fh:
        return [no for no, raw in enumerate(fh, 1) if raw.strip()]


def append_atomically(path: Path, records: list[dict[str, Any]]) -> None:
    """Rewrite `path` with `records` appended, via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    new = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(old + new)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
