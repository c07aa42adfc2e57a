"""One-off relabel (2026-12): application instructions are `other` ("how to apply", LABELS.md).

A style brief given to the real-posting writers said text that "asks the candidate for something"
is usually `general`, and they applied it to application instructions ("Apply with your CV and a
link to your GitHub"); the labelling guide lists "how to apply" under `other`, and the blind second
annotator of realistic_test labelled 11 of 12 such sentences `other`. This moves `general`
sentences whose content is how to apply (send a CV or resume, apply via..., applications are
reviewed...) to `other`, in every split. Each change was reviewed by hand; rerunning is a no-op.

Usage: python data/tools/relabel_how_to_apply.py [--write]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HOW_TO_APPLY = re.compile(
    r"^(to apply|please apply|apply (with|via|through|by|on|at|online|here|now)|when you apply|"
    r"applications? (are|is|will be) (reviewed|considered|accepted|open)|applicants (should|must|may) (submit|send|apply)|"
    r"(please )?(send|submit|share|email) (us )?(your|an updated|a) (cv|resume|résumé|r[eé]sum[eé])|"
    r"interested (candidates|applicants)|to be considered, (please )?(submit|send|apply))"
    r"|need not apply|\bcover letter\b.{0,80}\b(optional|welcome)",
    re.I,
)


def _relabel(sentences: list[dict], where: str) -> int:
    n = 0
    for s in sentences:
        if s["role"] == "general" and HOW_TO_APPLY.search(s["text"]):
            print(f"{where}: {s['text']}")
            s["role"], s["flags"], n = "other", [], n + 1
    return n


def main(write: bool) -> int:
    root = Path(__file__).resolve().parents[1]
    total = 0
    for path in sorted((root / "sentences").glob("*.jsonl")):
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        n = _relabel(rows, path.name)
        if write and n:
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        total += n
    for path in sorted((root / "jds").glob("*.jsonl")):
        jds = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        n = sum(_relabel(j["sentences"], f"{path.name} {j['id']}") for j in jds)
        if write and n:
            path.write_text("".join(json.dumps(j, ensure_ascii=False) + "\n" for j in jds), encoding="utf-8")
        total += n
    print(f"{total} sentences {'relabelled' if write else 'would be relabelled'} general -> other")
    return total


if __name__ == "__main__":
    main("--write" in sys.argv)
