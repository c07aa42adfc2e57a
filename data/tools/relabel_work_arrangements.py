"""One-off relabel (2026-12): work-arrangement sentences are `general`, not `other` (ANNOTATION.md,
"Hard cases added for real postings"). Finds `other` sentences whose content is where or how the
person works (hybrid/remote/on-site days, job location, time zones, visas, clearance, travel duty),
leaving pay lines, benefit lists, company facts and job titles as `other`. Every change was reviewed
by hand before it was kept; rerunning it is a no-op.

Usage: python data/tools/relabel_work_arrangements.py [--write]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ARRANGEMENT = re.compile(
    r"\b(hybrid|time ?zones?|timezones?|visas?|clearance|on-?site|in-office|remote\w*|"
    r"days? (a|per) week|right to work|background checks?|work permits?|CET|location:)",
    re.I,
)
NOT_ARRANGEMENT = re.compile(
    r"[$€£¥₹]|\bCHF\b|\bCAD\b|\bUSD\b|\d+\s?k\b|salary|pension|leave|holiday|insurance|budget|conference|perks?|"
    r"benefits?|lunch|gym|canteen|\bwe('| a)re (a|an|six|\d)|\bteam of\b|people|\bpersons?\b|backed|company|"
    r"founders|investors|studentships|maintainers|interview|onsite interview|ref\b|req\b|job id|vacancy|"
    r"full-time|permanent|contract|cdi\b|\||·|–\s*ref|, ref|we offer|on offer|nursery|parking|cycle|relocat|"
    r"engineer|scientist|developer|#LI|most of us|role between|flexible (and hybrid )?working|^remote-first\.?$",
    re.I,
)


def is_arrangement(text: str, first_lines: bool) -> bool:
    heading = text.rstrip("*").endswith(":")
    return bool(ARRANGEMENT.search(text)) and not NOT_ARRANGEMENT.search(text) and not first_lines and not heading


def relabel_sentences(path: Path, write: bool) -> int:
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    n = 0
    for r in rows:
        if r["role"] == "other" and is_arrangement(r["text"], False):
            print(f"{path.name}: {r['text']}")
            r["role"], n = "general", n + 1
    if write and n:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return n


def relabel_jds(path: Path, write: bool) -> int:
    jds = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    n = 0
    for jd in jds:
        for i, s in enumerate(jd["sentences"]):
            if s["role"] == "other" and is_arrangement(s["text"], i < 2):
                print(f"{path.name} {jd['id']}: {s['text']}")
                s["role"], n = "general", n + 1
    if write and n:
        path.write_text("".join(json.dumps(j, ensure_ascii=False) + "\n" for j in jds), encoding="utf-8")
    return n


if __name__ == "__main__":
    write = "--write" in sys.argv
    root = Path(__file__).resolve().parents[1]
    total = sum(relabel_sentences(root / "sentences" / f, write) for f in ("train.jsonl", "test.jsonl"))
    total += sum(relabel_jds(p, write) for p in sorted((root / "jds").glob("*.jsonl")))
    print(f"{total} sentences {'relabelled' if write else 'would be relabelled'} other -> general")
