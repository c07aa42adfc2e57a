"""Build the real-posting-style data from the writers' part files (a one-off, kept to document how it was made).

- `realistic_e*.jsonl` (JDs in the authoring format of check_jd_parts.py, by four writers who never saw
  any train data) are assembled with gold offsets and split into `jds/realistic_dev.jsonl` and
  `jds/realistic_test.jsonl`, alternating within each writer x role_type group so both halves get
  every writer and every role type.
- `train_jds_t*.jsonl` (whole JDs by four other writers) become `jds/train.jsonl`; their gold
  sentences join the train split. `train_t*.jsonl` (standalone sentences by the same writers) are
  appended to `sentences/train.jsonl`, de-duplicated.
- Any train sentence (old or new) that duplicates a held-out sentence exactly or nearly (MiniLM cosine
  >= 0.95) is dropped from train; in a train JD such a sentence is dropped from its gold sentences (the
  JD text keeps it, unlabelled). Held-out splits are never edited to fit.

Usage: python data/tools/build_realistic.py data/_parts
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_splits import _read, _write, assemble  # noqa: E402

from jdlens.datastore import MIN_WORDS_FOR_JD_OVERLAP  # noqa: E402
from jdlens.overlap import find_overlaps  # noqa: E402
from jdlens.records import check_jd, check_sentence, normalise  # noqa: E402


def _assemble_all(files: list[Path]) -> list[dict]:
    jds = [assemble(j) for p in files for j in _read(p)]
    bad = [(j["id"], e) for j in jds for e in check_jd(j)]
    if bad:
        raise SystemExit(f"invalid assembled JDs: {bad[:5]}")
    return jds


def _long_gold(jds: list[dict]) -> list[str]:
    return [s["text"] for j in jds for s in j["sentences"] if len(s["text"].split()) >= MIN_WORDS_FOR_JD_OVERLAP]


def main(parts: Path, out: Path = Path("data")) -> None:
    realistic = _assemble_all(sorted(parts.glob("realistic_e*.jsonl")))
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for j in realistic:
        groups[(j["writer"], j["role_type"])].append(j)
    dev, test = [], []
    k = 0  # alternate across groups too, so odd-sized groups do not all favour dev
    for key in sorted(groups):
        for j in sorted(groups[key], key=lambda x: x["id"]):
            (dev if k % 2 == 0 else test).append(j)
            k += 1

    # Everything held out: the sentence test split and the gold sentences of every held-out JD split.
    held_sents = [r["text"] for r in _read(out / "sentences" / "test.jsonl")]
    held_jds = [j for name in ("dev", "test") for j in _read(out / "jds" / f"{name}.jsonl")] + dev + test
    held_out = held_sents + _long_gold(held_jds)

    old_train = _read(out / "sentences" / "train.jsonl")
    new_sents = [
        r for p in sorted(parts.glob("train_t*.jsonl")) for r in _read(p) if not check_sentence(r) and "text" in r
    ]
    rejected = [r for p in sorted(parts.glob("train_t*.jsonl")) for r in _read(p) if check_sentence(r)]
    if rejected:
        print(f"skipping {len(rejected)} invalid sentence records, e.g. {rejected[0]}")
    seen, train = set(), []
    for r in old_train + new_sents:
        key = normalise(r["text"])
        if key and key not in seen:
            seen.add(key)
            train.append(r)
    train_jds = _assemble_all(sorted(parts.glob("train_jds_t*.jsonl")))

    overlaps = find_overlaps([r["text"] for r in train], held_out)
    drop = {o.index for o in overlaps}
    print(
        f"dropping {len(drop)} train sentences that duplicate held-out ones "
        f"({sum(o.kind == 'exact' for o in overlaps)} exact, {sum(o.kind == 'near' for o in overlaps)} near)"
    )
    train = [r for i, r in enumerate(train) if i not in drop]
    where = [(k, i) for k, j in enumerate(train_jds) for i, s in enumerate(j["sentences"])]
    found = find_overlaps([train_jds[k]["sentences"][i]["text"] for k, i in where], held_out)
    bad = {where[o.index] for o in found}
    for o in found:
        k, i = where[o.index]
        print(f"  {train_jds[k]['id']}: {train_jds[k]['sentences'][i]['text'][:70]!r} ~ {held_out[o.ref_index][:70]!r}")
    print(f"dropping {len(bad)} gold sentences of train JDs that duplicate held-out ones")
    for k, j in enumerate(train_jds):
        j["sentences"] = [s for i, s in enumerate(j["sentences"]) if (k, i) not in bad]

    _write(out / "jds" / "realistic_dev.jsonl", sorted(dev, key=lambda j: j["id"]))
    _write(out / "jds" / "realistic_test.jsonl", sorted(test, key=lambda j: j["id"]))
    _write(out / "jds" / "train.jsonl", sorted(train_jds, key=lambda j: j["id"]))
    _write(out / "sentences" / "train.jsonl", train)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
