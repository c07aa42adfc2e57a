"""Two reports of the same JD, before and after an edit -> what changed, like an editor's live score.

Sentences are aligned by their text (difflib over the cleaned sentence texts), so an edited sentence shows
up as removed + added and an unchanged sentence whose label moved (because its neighbours changed the
sections, or the model changed) shows up under `role_changed`.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any


def _key(s: dict[str, Any]) -> str:
    return " ".join(str(s.get("display_text") or s["text"]).lower().split())


def diff_reports(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Score delta, mistakes fixed / introduced / still present, and sentences whose role changed."""
    old_types = [m["type"] for m in old["mistakes"]]
    new_types = [m["type"] for m in new["mistakes"]]
    old_s, new_s = old.get("sentences", []), new.get("sentences", [])
    matcher = SequenceMatcher(a=[_key(s) for s in old_s], b=[_key(s) for s in new_s], autojunk=False)
    role_changed, added, removed = [], [], []
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            for i, j in zip(range(a0, a1), range(b0, b1), strict=True):
                if old_s[i]["role"] != new_s[j]["role"]:
                    role_changed.append(
                        {
                            "text": new_s[j]["text"],
                            "old_index": i,
                            "new_index": j,
                            "old_role": old_s[i]["role"],
                            "new_role": new_s[j]["role"],
                            "start": new_s[j]["start"],
                            "end": new_s[j]["end"],
                        }
                    )
            continue
        removed += [{"old_index": i, "text": old_s[i]["text"], "role": old_s[i]["role"]} for i in range(a0, a1)]
        added += [
            {"new_index": j, "text": new_s[j]["text"], "role": new_s[j]["role"], "start": new_s[j]["start"]}
            for j in range(b0, b1)
        ]
    old_pen = old.get("score_explanation", {}).get("penalties", {})
    new_pen = new.get("score_explanation", {}).get("penalties", {})
    return {
        "old_score": old["score"],
        "new_score": new["score"],
        "score_delta": new["score"] - old["score"],
        "old_role_type": old["role_type"],
        "new_role_type": new["role_type"],
        "role_type_changed": old["role_type"] != new["role_type"],
        "mistakes_fixed": [{"type": t, "points": old_pen.get(t, 0)} for t in old_types if t not in new_types],
        "mistakes_introduced": [{"type": t, "points": new_pen.get(t, 0)} for t in new_types if t not in old_types],
        "mistakes_remaining": [t for t in new_types if t in old_types],
        "sentences_role_changed": role_changed,
        "sentences_added": added,
        "sentences_removed": removed,
    }
