"""JD-level rules: role type, mixed, PhD under optional headings, buzzwords, vague seniority, score."""

from __future__ import annotations

from typing import Any

from jdlens.labels import FLAGS, ROLES
from jdlens.report import ReportConfig, build_report


def sent(text: str, role: str, flags: tuple[str, ...] = (), heading: bool = False) -> dict[str, Any]:
    return {
        "text": text,
        "start": 0,
        "end": len(text),
        "heading": heading,
        "role": role,
        "role_scores": {r: float(r == role) for r in ROLES},
        "flags": list(flags),
        "flag_scores": {f: float(f in flags) for f in FLAGS},
    }


CFG = ReportConfig()


def types(report: dict[str, Any]) -> set[str]:
    return {m["type"] for m in report["mistakes"]}


def test_single_role_with_off_role_bullet_is_not_mixed() -> None:
    s = (
        [sent("ML Engineer", "other", heading=True)]
        + [sent(f"train {i}", "ml") for i in range(7)]
        + [sent("build a RAG demo", "application")]
    )
    r = build_report(s, CFG)
    assert r["role_type"] == "ml" and "mixed_roles" not in types(r)
    assert r["role_shares"]["ml"] == 0.875
    assert r["salary_bands"]["ml"]["us_base_senior"] == "$180K-$280K"
    assert r["interview_plan"]["ml"][0] == "Training pipeline design"
    assert r["score"] == 100


def test_mixed_jd_is_flagged_with_the_split() -> None:
    s = [sent(f"rag {i}", "application") for i in range(4)] + [sent(f"fsdp {i}", "ml") for i in range(4)]
    r = build_report(s, CFG)
    assert r["role_type"] == "mixed"
    mixed = next(m for m in r["mistakes"] if m["type"] == "mixed_roles")
    assert mixed["split"] == {"application": [0, 1, 2, 3], "ml": [4, 5, 6, 7]}
    assert set(r["salary_bands"]) == {"application", "ml"}
    assert r["score"] == 100 - CFG.score_penalties["mixed_roles"]


def test_phd_under_nice_to_have_is_not_a_mistake_but_under_requirements_is() -> None:
    base = [sent(f"serve {i}", "ml") for i in range(5)]
    optional = base + [sent("Nice to have", "other", heading=True), sent("PhD in CS", "general", ("phd_required",))]
    required = base + [sent("Requirements", "other", heading=True), sent("PhD in CS", "general", ("phd_required",))]
    assert "phd_for_non_research" not in types(build_report(optional, CFG))
    assert "phd_for_non_research" in types(build_report(required, CFG))
    research = [sent(f"ablate {i}", "research") for i in range(5)] + [sent("PhD", "general", ("phd_required",))]
    assert "phd_for_non_research" not in types(build_report(research, CFG))


def test_vague_seniority_needs_no_concrete_signal() -> None:
    s = [sent(f"rag {i}", "application") for i in range(4)] + [
        sent("5+ years of experience in machine learning", "general", ("vague_seniority",))
    ]
    assert "vague_seniority" in types(build_report(s, CFG))
    concrete = s + [sent("You have shipped two LLM features used by 50,000 customers", "application")]
    r = build_report(concrete, CFG)
    assert "vague_seniority" not in types(r)
    assert r["concrete_seniority_evidence"][0]["index"] == 5


def test_buzzwords_evidence_and_fix() -> None:
    s = [sent(f"rag {i}", "application") for i in range(4)] + [
        sent("Experience with AI/ML technologies", "general", ("buzzword",)),
        sent("Passion for cutting-edge AI", "general", ("buzzword",)),
        sent("Our cutting-edge AI platform", "other"),
    ]
    r = build_report(s, CFG)
    m = next(m for m in r["mistakes"] if m["type"] == "buzzwords")
    assert [e["index"] for e in m["evidence"]] == [4, 5]
    assert "RAG" in m["fix"]
    assert r["score"] == 100 - CFG.score_penalties["buzzwords"] - CFG.extra_buzzword_penalty


def test_concrete_seniority_patterns_from_real_posting_style_dev_errors() -> None:
    """Accomplishments phrased the way long postings phrase them count; applying for the job and
    office days do not (cases from the realistic dev JDs)."""
    base = [
        sent("ML Engineer", "other", heading=True),
        sent("5+ years of experience.", "general", ("vague_seniority",)),
    ]
    base += [sent(f"Own the fraud model {i}.", "ml") for i in range(4)]
    concrete = [
        "You have put a claims or fraud model into production that changed a business metric you can name.",
        "Hands-on experience building at least one LLM application that several hundred users rely on every week.",
    ]
    not_concrete = [
        "To apply, submit your CV and answer two questions about LLM systems you have built.",
        "We care more about what you have built than about your degree.",
        "We work in our Berlin office at least two days a week.",
        "Put models into production on Vertex AI and monitor them.",
    ]
    for text in concrete:
        r = build_report(base + [sent(text, "ml")], CFG)
        assert "vague_seniority" not in types(r), text
    for text in not_concrete:
        r = build_report(base + [sent(text, "general")], CFG)
        assert "vague_seniority" in types(r), text


def test_phd_under_a_strong_candidates_may_also_have_heading_is_optional() -> None:
    s = [sent("ML Engineer", "other", heading=True)] + [sent(f"Serve model {i}.", "ml") for i in range(4)]
    optional = s + [sent("Strong candidates may also have:", "other", heading=True)]
    optional += [sent("PhD in machine learning.", "general", ("phd_required",))]
    assert "phd_for_non_research" not in types(build_report(optional, CFG))
    required = s + [sent("You might be a good fit if you:", "other", heading=True)]
    required += [sent("PhD in machine learning.", "general", ("phd_required",))]
    assert "phd_for_non_research" in types(build_report(required, CFG))
