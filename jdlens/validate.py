"""`jdlens data validate` and `jdlens data stats`: whole-folder checks and the dataset card's counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from jdlens.datastore import HELD_OUT_JD_SPLITS, MIN_WORDS_FOR_JD_OVERLAP
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
        elif f.stem in HELD_OUT_JD_SPLITS:
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


LENGTH_BUCKETS = ((0, 8), (9, 15), (16, 25), (26, 10**9))  # words; the buckets of the real-postings report


def length_profile(texts: list[str]) -> dict[str, Any]:
    """Sentence length in words: median, mean, p10/p90 and the share in each bucket."""
    import numpy as np

    words = np.array([len(t.split()) for t in texts] or [0])
    return {
        "median_words": float(np.median(words)),
        "mean_words": round(float(words.mean()), 1),
        "p10_words": float(np.percentile(words, 10)),
        "p90_words": float(np.percentile(words, 90)),
        "length_buckets": {
            (f"{lo}-{hi}" if hi < 10**9 else f"{lo}+"): round(float(((words >= lo) & (words <= hi)).mean()), 4)
            for lo, hi in LENGTH_BUCKETS
        },
    }


def sentence_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    n = max(len(records), 1)
    return {
        "n": len(records),
        "roles": {r: sum(x["role"] == r for x in records) for r in ROLES},
        "role_shares": {r: round(sum(x["role"] == r for x in records) / n, 4) for r in ROLES},
        "flags": {f: sum(f in x.get("flags", []) for x in records) for f in FLAGS},
        "flag_rates": {f: round(sum(f in x.get("flags", []) for x in records) / n, 4) for f in FLAGS},
        "hard_negatives": {f: sum(f in x.get("hard_negative_for", []) for x in records) for f in FLAGS},
        "sources": dict(Counter(x.get("source", "written") for x in records)),
        **length_profile([x["text"] for x in records]),
        **opening_variety([x["text"] for x in records]),
    }


def _tv(a: dict[str, float], b: dict[str, float]) -> float:
    """Total variation distance between two distributions over the same keys (0 = same, 1 = disjoint)."""
    return round(0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b)), 3)


def compare_splits(per_split: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Every pair of splits: how far apart their role spread, length buckets and flag rates are."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    names = list(per_split)
    for a in names:
        out[a] = {}
        for b in names:
            if a == b:
                continue
            sa, sb = per_split[a], per_split[b]
            out[a][b] = {
                "role_tv": _tv(sa["role_shares"], sb["role_shares"]),
                "length_tv": _tv(sa["length_buckets"], sb["length_buckets"]),
                "flag_rate_gap": round(max(abs(sa["flag_rates"][f] - sb["flag_rates"][f]) for f in FLAGS), 4),
                "median_words_gap": sa["median_words"] - sb["median_words"],
            }
    return out


def data_stats(root: Path) -> dict[str, Any]:
    from jdlens.datastore import DataStore

    store = DataStore(root)
    out: dict[str, Any] = {"hashes": store.hashes()}
    sentence_sets: dict[str, dict[str, Any]] = {}
    for split in ("train", "test"):
        out[f"sentences/{split}"] = sentence_sets[f"sentences/{split}"] = sentence_stats(store.sentences(split))
    for split in ("train", "dev", "test", "realistic_dev", "realistic_test"):
        jds = store.jds(split)
        if not jds:
            continue
        sizes = [len(j["sentences"]) for j in jds]
        chars = sorted(len(j["text"]) for j in jds)
        gold = sentence_stats(jd_gold_sentences(jds))
        sentence_sets[f"jds/{split}"] = gold
        out[f"jds/{split}"] = {
            "n": len(jds),
            "role_type": {t: sum(j["role_type"] == t for j in jds) for t in ROLE_TYPES},
            "mistakes": {m: sum(m in j["mistakes"] for j in jds) for m in MISTAKES},
            "no_mistake": sum(not j["mistakes"] for j in jds),
            "sentences_per_jd": {"min": min(sizes), "mean": round(sum(sizes) / len(sizes), 1), "max": max(sizes)},
            "chars_per_jd": {"min": chars[0], "median": chars[len(chars) // 2], "max": chars[-1]},
            "gold_sentences": gold,
        }
    out["comparison"] = compare_splits(sentence_sets)
    return out


def format_stats_table(stats: dict[str, Any]) -> str:
    """The splits side by side: size, role shares, flag rates and sentence length (for a person)."""
    rows = []
    for name, s in stats.items():
        if name in ("hashes", "comparison"):
            continue
        g = s.get("gold_sentences", s)
        rows.append((name, g))
    head = f"{'split':<20}{'n':>6} " + "".join(f"{r[:5]:>7}" for r in ROLES)
    head += "".join(f"{f[:6]:>8}" for f in FLAGS) + f"{'med w':>7}{'>15w':>7}"
    lines = ["role shares, flag rates and sentence length (words) per split", head]
    for name, g in rows:
        long_share = sum(v for k, v in g["length_buckets"].items() if k.startswith(("16", "26")))
        lines.append(
            f"{name:<20}{g['n']:>6} "
            + "".join(f"{g['role_shares'][r]:>7.2f}" for r in ROLES)
            + "".join(f"{g['flag_rates'][f]:>8.3f}" for f in FLAGS)
            + f"{g['median_words']:>7.0f}{long_share:>7.2f}"
        )
    comp = stats.get("comparison", {})
    if comp:
        names = list(comp)
        lines += ["", "role-spread distance (total variation) between splits, then length-bucket distance"]
        short = [n.replace("sentences/", "sent:").replace("jds/", "jd:").replace("realistic_", "real_") for n in names]
        lines.append(f"{'':<20}" + "".join(f"{n[:13]:>14}" for n in short))
        for a in names:
            cells = ["-" if a == b else f"{comp[a][b]['role_tv']:.2f}/{comp[a][b]['length_tv']:.2f}" for b in names]
            lines.append(f"{a:<20}" + "".join(f"{c:>14}" for c in cells))
    return "\n".join(lines)
