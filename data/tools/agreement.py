"""Agreement between the gold labels of a JD split and a second annotator's blind labels.

The second annotator saw the JD text and its sentences, never the gold labels, and labelled every
sentence and the JD (role_type, mistakes) from LABELS.md alone. Agreement caps what any model can
be measured to reach on the split.

Usage: python data/tools/agreement.py data/jds/realistic_test.jsonl annotator2.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

from jdlens.labels import FLAGS, MISTAKES, ROLES


def main(gold_path: Path, second_path: Path) -> dict:
    gold = {j["id"]: j for j in map(json.loads, gold_path.read_text(encoding="utf-8").splitlines())}
    second = {j["id"]: j for j in map(json.loads, second_path.read_text(encoding="utf-8").splitlines())}
    g_roles, s_roles, g_flags, s_flags = [], [], [], []
    for jid, jd in gold.items():
        labels = {x["i"]: x for x in second[jid]["labels"]}
        for i, s in enumerate(jd["sentences"]):
            g_roles.append(s["role"])
            s_roles.append(labels[i]["role"])
            g_flags.append(set(s["flags"]))
            s_flags.append(set(labels[i]["flags"]))
    ids = list(gold)
    out = {
        "sentences": len(g_roles),
        "role_accuracy": round(accuracy_score(g_roles, s_roles), 4),
        "role_macro_f1": round(f1_score(g_roles, s_roles, labels=list(ROLES), average="macro"), 4),
        "role_kappa": round(cohen_kappa_score(g_roles, s_roles), 4),
        "flag_f1": {f: round(f1_score([f in x for x in g_flags], [f in x for x in s_flags]), 4) for f in FLAGS},
        "jds": len(ids),
        "role_type_accuracy": round(
            accuracy_score([gold[i]["role_type"] for i in ids], [second[i]["role_type"] for i in ids]), 4
        ),
        "mistake_f1": {
            m: round(
                f1_score(
                    [m in gold[i]["mistakes"] for i in ids], [m in second[i]["mistakes"] for i in ids], zero_division=0
                ),
                4,
            )
            for m in MISTAKES
        },
    }
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2])), indent=2))
