"""Labelled records (JSON Lines) and their validation.

Two record kinds share the format of LABELS.md: sentence records (`text`, `role`, `flags`) and
whole-JD records (`id`, `text`, `role_type`, `mistakes`, plus gold `sentences` with offsets).
Validation never stops at the first problem: it returns every `Problem` with its line number.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jdlens.labels import FLAGS, MISTAKES, ROLE_TYPES, ROLES

MAX_SENTENCE_CHARS = 2000
MAX_JD_CHARS = 100_000


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def normalise(text: str) -> str:
    """Text key for duplicate checks: case, accents, punctuation, markup and spacing removed.

    Letters and digits of every script are kept (a Chinese or Russian sentence is not reduced to an
    empty key that collides with every other one); only combining marks (accents) are dropped, so
    "Café" and "cafe" still match. ASCII text gets the same key as before.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    text = _NON_KEY_CHARS.sub(" ", text)
    return " ".join(text.split())


# Anything but a letter or digit of any script, `+` or `#` (C++, C#) separates words; so does `_`.
_NON_KEY_CHARS = re.compile(r"[^\w+#]|_")


def is_jd_record(obj: dict[str, Any]) -> bool:
    return "role_type" in obj or "sentences" in obj


def _check_labels(obj: dict[str, Any], where: str = "") -> list[str]:
    errors = []
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        errors.append(f"{where}'text' must be a non-empty string")
    elif len(text) > MAX_SENTENCE_CHARS:
        errors.append(f"{where}'text' is {len(text)} characters (at most {MAX_SENTENCE_CHARS} for a sentence)")
    role = obj.get("role")
    if role not in ROLES:
        errors.append(f"{where}'role' is {role!r}; expected one of {', '.join(ROLES)}")
    flags = obj.get("flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        errors.append(f"{where}'flags' must be a list of strings")
    else:
        unknown = [f for f in flags if f not in FLAGS]
        if unknown:
            errors.append(f"{where}unknown flag(s) {unknown}; expected any of {', '.join(FLAGS)}")
        if len(set(flags)) != len(flags):
            errors.append(f"{where}'flags' repeats a flag")
        if flags and role == "other":
            errors.append(f"{where}flags go on requirements and duties only, not on role 'other'")
    return errors


def check_sentence(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        return ["a record must be a JSON object"]
    return _check_labels(obj)


def check_jd(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        return ["a record must be a JSON object"]
    errors = []
    if not isinstance(obj.get("id"), str) or not obj["id"].strip():
        errors.append("'id' must be a non-empty string")
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        return errors + ["'text' must be a non-empty string"]
    if len(text) > MAX_JD_CHARS:
        errors.append(f"'text' is {len(text)} characters (at most {MAX_JD_CHARS})")
    if obj.get("role_type") not in ROLE_TYPES:
        errors.append(f"'role_type' is {obj.get('role_type')!r}; expected one of {', '.join(ROLE_TYPES)}")
    mistakes = obj.get("mistakes", [])
    if not isinstance(mistakes, list) or any(m not in MISTAKES for m in mistakes):
        errors.append(f"'mistakes' must be a list drawn from {', '.join(MISTAKES)}")
    elif ("mixed_roles" in mistakes) != (obj.get("role_type") == "mixed"):
        errors.append("'mixed_roles' must be listed exactly when role_type is 'mixed'")
    sentences = obj.get("sentences")
    if sentences is None:
        return errors
    if not isinstance(sentences, list):
        return errors + ["'sentences' must be a list"]
    last_end = 0
    for i, s in enumerate(sentences):
        where = f"sentences[{i}]: "
        if not isinstance(s, dict):
            errors.append(f"{where}must be an object")
            continue
        errors += _check_labels(s, where)
        start, end = s.get("start"), s.get("end")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            errors.append(f"{where}'start'/'end' must be offsets inside the JD text")
        elif text[start:end] != s.get("text"):
            errors.append(f"{where}text[{start}:{end}] is {text[start:end]!r}, not the sentence text")
        elif start < last_end:
            errors.append(f"{where}overlaps the previous sentence")
        else:
            last_end = end
    return errors


def read_jsonl(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (line number, parsed object or None, JSON error or None); blank lines are skipped."""
    with path.open(encoding="utf-8") as fh:
        for no, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield no, json.loads(raw), None
            except json.JSONDecodeError as exc:
                yield no, None, f"invalid JSON ({exc.msg} at column {exc.colno})"


def validate_file(path: Path, kind: str | None = None) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Parse and check one file. `kind` is 'sentence', 'jd' or None (decided per record)."""
    records: list[dict[str, Any]] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    try:
        rows = list(read_jsonl(path))
    except UnicodeDecodeError as exc:
        return [], [Problem(str(path), 0, f"not UTF-8 text ({exc.reason})")]
    for no, obj, err in rows:
        if err:
            problems.append(Problem(str(path), no, err))
            continue
        rec_kind = kind or ("jd" if isinstance(obj, dict) and is_jd_record(obj) else "sentence")
        errs = check_jd(obj) if rec_kind == "jd" else check_sentence(obj)
        problems += [Problem(str(path), no, e) for e in errs]
        if errs:
            continue
        key = obj["id"] if rec_kind == "jd" else normalise(obj["text"])
        if key in seen:
            what = "id" if rec_kind == "jd" else "sentence"
            problems.append(Problem(str(path), no, f"duplicate {what} of line {seen[key]}"))
            continue
        seen[key] = no
        records.append(obj)
    return records, problems


def load_records(path: Path) -> list[dict[str, Any]]:
    """Load a file that must be valid; raise ValueError listing its problems otherwise."""
    records, problems = validate_file(path)
    if problems:
        shown = "\n".join(str(p) for p in problems[:20])
        raise ValueError(f"{path} has {len(problems)} problem(s):\n{shown}")
    return records


def jd_gold_sentences(jds: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The gold sentence records carried inside JD records."""
    return [
        {"text": s["text"], "role": s["role"], "flags": list(s.get("flags", []))}
        for jd in jds
        for s in jd.get("sentences", [])
    ]
