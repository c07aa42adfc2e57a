"""Check hand-written JD part files (authoring format) before they are assembled.

Usage: python data/tools/check_jd_parts.py data/_parts/jds_a.jsonl

Authoring format, one JD per line:
  {"id": "a-001", "role_type": "ml", "mistakes": [...],
   "lines": [{"p": "# ", "s": [{"t": "Senior ML Engineer", "r": "other"}]}, {},
             {"p": "- ", "s": [{"t": "...", "r": "ml", "f": ["buzzword"], "cs": false}]}]}
"""

import json
import re
import sys
from collections import Counter

ROLES = {"application", "ml", "research", "general", "other"}
FLAGS = {"phd_required", "buzzword", "vague_seniority"}
TYPES = {"application", "ml", "research", "mixed"}
MISTAKES = {"mixed_roles", "phd_for_non_research", "buzzwords", "vague_seniority"}
PREFERRED = re.compile(r"prefer|nice|bonus|plus|ideal|extra|great|not required|optional|bonus", re.I)


def is_heading(line: dict) -> bool:
    s = line.get("s", [])
    if len(s) != 1 or s[0].get("r") != "other":
        return False
    t = s[0]["t"].strip()
    return line.get("p", "").startswith("#") or t.endswith(":") or (len(t.split()) <= 7 and not t.endswith("."))


def derive(jd: dict) -> tuple[str, set[str]]:
    counts: Counter = Counter()
    phd_in_requirements = False
    heading = ""
    buzz = vague = concrete = False
    for line in jd["lines"]:
        if not line:
            continue
        if is_heading(line):
            heading = line["s"][0]["t"]
            continue
        for s in line["s"]:
            r, f = s["r"], set(s.get("f", []))
            if r in ("application", "ml", "research"):
                counts[r] += 1
            if "phd_required" in f and not PREFERRED.search(heading):
                phd_in_requirements = True
            buzz |= "buzzword" in f
            vague |= "vague_seniority" in f
            concrete |= bool(s.get("cs"))
    total = sum(counts.values()) or 1
    big = [r for r, c in counts.items() if c / total >= 0.25]
    role_type = "mixed" if len(big) >= 2 else (counts.most_common(1)[0][0] if counts else "mixed")
    mistakes = set()
    if role_type == "mixed":
        mistakes.add("mixed_roles")
    if phd_in_requirements and role_type != "research":
        mistakes.add("phd_for_non_research")
    if buzz:
        mistakes.add("buzzwords")
    if vague and not concrete:
        mistakes.add("vague_seniority")
    return role_type, mistakes


def main(path: str) -> int:
    bad = 0
    types: Counter = Counter()
    mistakes: Counter = Counter()
    nsent = []
    for no, raw in enumerate(open(path, encoding="utf-8"), 1):
        if not raw.strip():
            continue
        try:
            jd = json.loads(raw)
        except json.JSONDecodeError as e:
            print(f"{path}:{no}: invalid JSON: {e}")
            bad += 1
            continue
        problems = []
        if jd.get("role_type") not in TYPES:
            problems.append(f"bad role_type {jd.get('role_type')!r}")
        if not set(jd.get("mistakes", [])) <= MISTAKES:
            problems.append(f"bad mistakes {jd.get('mistakes')}")
        n = 0
        for line in jd.get("lines", []):
            for s in line.get("s", []):
                n += 1
                if s.get("r") not in ROLES:
                    problems.append(f"bad role {s.get('r')!r} in {s.get('t')!r}")
                if not set(s.get("f", [])) <= FLAGS:
                    problems.append(f"bad flags {s.get('f')} in {s.get('t')!r}")
                if s.get("f") and s.get("r") == "other":
                    problems.append(f"flag on an 'other' sentence: {s.get('t')!r}")
                t = s.get("t", "")
                if not t.strip() or t != t.strip() or "\n" in t:
                    problems.append(f"sentence text empty, padded or multi-line: {t!r}")
                if re.match(r"^([-*\u2022]|\d+[.)]|#+)\s", t):
                    problems.append(f"bullet/heading marker belongs in 'p': {t!r}")
        if not 8 <= n <= 90:
            problems.append(f"{n} sentences (need 8-90)")
        if not problems:
            rt, ms = derive(jd)
            if rt != jd["role_type"]:
                problems.append(f"role_type {jd['role_type']} but sentences say {rt}")
            if ms != set(jd.get("mistakes", [])):
                problems.append(f"mistakes {sorted(jd.get('mistakes', []))} but sentences say {sorted(ms)}")
        for p in problems:
            print(f"{path}:{no}: {jd.get('id')}: {p}")
        bad += bool(problems)
        types[jd.get("role_type")] += 1
        for m in jd.get("mistakes", []):
            mistakes[m] += 1
        nsent.append(n)
    print(
        f"{len(nsent)} JDs, {bad} with problems; role_type {dict(types)}; mistakes {dict(mistakes)}; "
        f"sentences/JD avg {sum(nsent) / max(len(nsent), 1):.1f}"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(max(main(p) for p in sys.argv[1:]))
