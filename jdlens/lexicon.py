"""Word lists that users can extend, matched on word boundaries, case-insensitively, with inflections.

The lists live in `jdlens/wordlists/*.txt` (shipped with the package); a file of the same name in an extra
folder (by default `configs/wordlists/` of the project) adds its lines to the built-in list. `#` starts a
comment line. Entries are `TERM` or `TERM | field | field`, fields separated by `|`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

BUILTIN = Path(__file__).parent / "wordlists"
# Endings a plain word may take and still be the same word ("lead" -> "leads", "assertiveness" is a stem).
_INFLECTIONS = r"(?:s|es|ed|d|ing|ly|ness|ity)?"


@dataclass(frozen=True)
class Term:
    """One list entry: the term as written, its compiled pattern and the extra fields of its line."""

    term: str
    pattern: re.Pattern[str]
    fields: tuple[str, ...] = ()


def term_pattern(term: str) -> re.Pattern[str]:
    """`compet*` -> any word starting with "compet"; `young team` -> that phrase, spaces matching any run of
    spaces, hyphens or commas, the last word with its inflections; always on word boundaries, any case."""
    stem = term.strip().lower()
    star = stem.endswith("*")
    stem = stem.rstrip("*")
    words = [re.escape(w) for w in re.split(r"[\s]+", stem) if w]
    body = r"[\s,\-]+".join(words)
    tail = r"[\w'-]*" if star else _INFLECTIONS
    # (?<![\w-]) / (?![\w]): word boundaries that also treat "self-" and "10x" as part of a word.
    return re.compile(rf"(?<![\w-]){body}{tail}(?![\w])", re.IGNORECASE)


def _lines(name: str, extra_dirs: tuple[Path, ...]) -> list[str]:
    out: list[str] = []
    for folder in (BUILTIN, *extra_dirs):
        path = folder / name
        if not path.is_file():
            continue
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


@lru_cache(maxsize=64)
def load_terms(name: str, extra_dirs: tuple[Path, ...] = (), term_field: int = 0) -> tuple[Term, ...]:
    """The entries of list `name`; field `term_field` of each line is the term, the others are kept."""
    terms = []
    seen: set[str] = set()
    for line in _lines(name, extra_dirs):
        parts = tuple(p.strip() for p in line.split("|"))
        if len(parts) <= term_field or not parts[term_field]:
            raise ValueError(f"{name}: line {line!r} has no term in field {term_field + 1}")
        term = parts[term_field]
        if term.lower() in seen:
            continue
        seen.add(term.lower())
        terms.append(Term(term, term_pattern(term), parts[:term_field] + parts[term_field + 1 :]))
    return tuple(terms)


@lru_cache(maxsize=64)
def load_patterns(name: str, extra_dirs: tuple[Path, ...] = ()) -> tuple[re.Pattern[str], ...]:
    """A list of regular expressions (exception lists, cue lists), compiled case-insensitively."""
    out = []
    for line in _lines(name, extra_dirs):
        try:
            out.append(re.compile(line, re.IGNORECASE | re.MULTILINE))
        except re.error as exc:
            raise ValueError(f"{name}: {line!r} is not a valid regular expression: {exc}") from exc
    return tuple(out)


def covered(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether [start, end) lies inside one of `spans`."""
    return any(a <= start and end <= b for a, b in spans)


def exception_spans(text: str, patterns: tuple[re.Pattern[str], ...]) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for p in patterns for m in p.finditer(text)]
