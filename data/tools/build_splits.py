"""Build the released splits from the writers' part files (a one-off; kept to document how the data was made).

- Sentence parts (train_*.jsonl, test_*.jsonl) are merged and de-duplicated on normalised text.
- JD parts (jds_*.jsonl, line-based authoring format, see check_jd_parts.py) are assembled into plain
  text with gold sentence offsets, then split into dev and test by alternating within each
  writer x role_type group.
- Train sentences that duplicate a held-out sentence (exact or embedding cosine >= 0.95) are dropped
  from train, never from the held-out splits.

Usage: python data/tools/build_splits.py data/_parts
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from jdlens.datastore import MIN_WORDS_FOR_JD_OVERLAP
from jdlens.overlap import find_overlaps
from jdlens.records import check_jd, check_sentence, normalise


def assemble(jd: dict) -> dict:
    """Authoring lines -> {id, text, role_type, mistakes, sentences[start, end, text, role, flags]}."""
    text_lines, sentences, pos = [], [], 0
    for line in jd["lines"]:
        prefix = line.get("p", "") if line else ""
        parts = [prefix]
        col = len(prefix)
        for k, s in enumerate(line.get("s", []) if line else []):
            if k:
                parts.append(" ")
                col += 1
            start = pos + col
            parts.append(s["t"])
            col += len(s["t"])
            sent = {"start": start, "end": start + len(s["t"]), "text": s["t"], "role": s["r"], "flags": s.get("f", [])}
            if s.get("cs"):
                sent["concrete_seniority"] = True
            sentences.append(sent)
        body = "".join(parts)
        text_lines.append(body)
        pos += len(body) + 1
    return {
        "id": f"jd-{jd['id']}",
        "text": "\n".join(text_lines) + "\n",
        "role_type": jd["role_type"],
        "mistakes": sorted(jd.get("mistakes", [])),
        "sentences": sentences,
        "source": "written",
        "writer": jd["id"].split("-")[0],
    }


def _read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _dedupe(records: list[dict]) -> list[dict]:
    seen, out = set(), []
    for r in records:
        key = normalise(r["text"])
        if key and key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _write(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    print(f"wrote {len(records)} records to {path}")


def main(parts: Path, out: Path = Path("data")) -> None:
    train = _dedupe([r for p in sorted(parts.glob("train_*.jsonl")) for r in _read(p) if not check_sentence(r)])
    test = _dedupe([r for p in sorted(parts.glob("test_*.jsonl")) for r in _read(p) if not check_sentence(r)])
    jds = [assemble(j) for p in sorted(parts.glob("jds_*.jsonl")) for j in _read(p)]
    bad = [(j["id"], e) for j in jds for e in check_jd(j)]
    if bad:
        raise SystemExit(f"invalid assembled JDs: {bad[:5]}")
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for j in jds:
        groups[(j["writer"], j["role_type"])].append(j)
    dev, jd_test = [], []
    for key in sorted(groups):
        for k, j in enumerate(sorted(groups[key], key=lambda x: x["id"])):
            (dev if k % 2 == 0 else jd_test).append(j)
    held_out = [r["text"] for r in test] + [
        s["text"] for j in dev + jd_test for s in j["sentences"] if len(s["text"].split()) >= MIN_WORDS_FOR_JD_OVERLAP
    ]
    overlaps = find_overlaps([r["text"] for r in train], held_out)
    drop = {o.index for o in overlaps}
    print(
        f"dropping {len(drop)} train sentences that duplicate held-out ones "
        f"({sum(o.kind == 'exact' for o in overlaps)} exact, {sum(o.kind == 'near' for o in overlaps)} near)"
    )
    train = [r for i, r in enumerate(train) if i not in drop]
    _write(out / "sentences" / "train.jsonl", train)
    _write(out / "sentences" / "test.jsonl", test)
    _write(out / "jds" / "dev.jsonl", sorted(dev, key=lambda j: j["id"]))
    _write(out / "jds" / "test.jsonl", sorted(jd_test, key=lambda j: j["id"]))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
