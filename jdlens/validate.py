"""`jdlens data validate` and `jdlens data stats`: whole-folder checks and the dataset card's counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from jdlens.datastore import MIN_WORDS_FOR_JD_OVERLAP
from jdlens.labels import FLAGS, MISTAKES, ROLE_TYPES, ROLES
from jdlens.overlap import find_overlaps
from jdlens.records import Problem, jd_gold_sentences, validate_file


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(
                f
                for f in p.rglob("*.jsonl")
                if not any(part.startswith(("_", ".")) for part in f.parts[len(p.parts) :])
            )
        else:
            out.append(p)
    return out


def validate_paths(paths: list[Path], use_embeddings: bool = True) -> tuple[list[Problem], str]:
    """Validate every file; then check that no held-out sentence appears (nearly) in a train file."""
    problems: list[Problem] = []
    loaded: dict[Path, list[dict[str, Any]]] = {}
    for f in _files(paths):
        if not f.exists():
            problems.append(Problem(str(f), 0, "file not found"))
            continue
        records, errs = validate_file(f)
        problems += errs
        loaded[f] = records
    train_rows: list[tuple[Path, int, str]] = []
    held_out: list[str] = []
    for f, records in loaded.items():
        lines = [no for no, raw in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if raw.strip()]
        is_jd = f.parent.name == "jds"
        if f.stem == "train":
            for k, r in enumerate(records):
                for t in [s["text"] for s in r.get("sentences", [])] if is_jd else [r["text"]]:
                    train_rows.append((f, lines[k] if len(lines) == len(records) else 0, t))
        elif f.stem in ("test", "dev"):
            if is_jd:
                held_out += [
                    s["text"] for s in jd_gold_sentences(records) if len(s["text"].split()) >= MIN_WORDS_FOR_JD_OVERLAP
                ]
            else:
                held_out += [r["text"] for r in records]
    if train_rows and held_out:
        for o in find_overlaps([t for _, _, t in train_rows], held_out, use_embeddings=use_embeddings):
            f, line, _ = train_rows[o.index]
            what = "exact" if o.kind == "exact" else f"near (cosine {o.similarity:.3f})"
            problems.append(Problem(str(f), line, f"{what} duplicate of held-out sentence {held_out[o.ref_index]!r}"))
    n = sum(len(r) for r in loaded.values())
    summary = f"{len(loaded)} file(s), {n} record(s), {len(problems)} problem(s)"
    return problems, summary


def opening_variety(texts: list[str]) -> dict[str, Any]:
    """Share of distinct first-four-word openings and the most common opening's share."""
    openings = Counter(" ".join(t.lower().split()[:4]) for t in texts)
    top, top_n = openings.most_common(1)[0] if openings else ("", 0)
    return {
        "distinct_four_word_openings": round(len(openings) / max(len(texts), 1), 4),
        "top_opening": top,
        "top_opening_share": round(top_n / max(len(texts), 1), 4),
    }


def sentence_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "n": len(records),
        "roles": {r: sum(x["role"] == r for x in records) for r in ROLES},
        "flags": {f: sum(f in x.get("flags", []) for x in records) for f in FLAGS},
        "hard_negatives": {f: sum(f in x.get("hard_negative_for", []) for x in records) for f in FLAGS},
        "sources": dict(Counter(x.get("source", "written") for x in records)),
        **opening_variety([x["text"] for x in records]),
    }


def data_stats(root: Path) -> dict[str, Any]:
    from jdlens.datastore import DataStore

    store = DataStore(root)
    out: dict[str, Any] = {"hashes": store.hashes()}
    for split in ("train", "test"):
        out[f"sentences/{split}"] = sentence_stats(store.sentences(split))
    for split in ("dev", "test", "train"):
        jds = store.jds(split)
        if not jds:
            continue
        sizes = [len(j["sentences"]) for j in jds]
        out[f"jds/{split}"] = {
            "n": len(jds),
            "role_type": {t: sum(j["role_type"] == t for j in jds) for t in ROLE_TYPES},
            "mistakes": {m: sum(m in j["mistakes"] for j in jds) for m in MISTAKES},
            "no_mistake": sum(not j["mistakes"] for j in jds),
            "sentences_per_jd": {"min": min(sizes), "mean": round(sum(sizes) / len(sizes), 1), "max": max(sizes)},
            "gold_sentences": sentence_stats(jd_gold_sentences(jds)),
        }
    return out
