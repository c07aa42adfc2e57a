"""Golden positives and negatives for the JD-wide checks (gendered wording, exclusionary language, missing pay
range, requirements overload), the input check, clean sentence text, the score summary and `jdlens diff`."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from jdlens.labels import FLAGS, ROLES
from jdlens.markdown_text import clean_markdown
from jdlens.report import CHECKS, ReportConfig, build_report
from jdlens.report_diff import diff_reports
from jdlens.role_facts import SALARY_BANDS
from jdlens.segment import split_sentences

GOLDEN = Path(__file__).parent / "golden"
CFG = ReportConfig()
# Sentences with these openings are company/benefit text ("other"); the rest are ML requirements or duties.
_OTHER = re.compile(r"^(\W*about|we are|benefits|salary|base salary|pay|competitive|ninja van|our client)", re.I)


def report(text: str, cfg: ReportConfig = CFG) -> dict[str, Any]:
    """The report for `text` with roles from layout and openings instead of a model (rules only)."""
    sentences = []
    for i, s in enumerate(split_sentences(text)):
        role = "other" if s.heading or _OTHER.match(s.text) else "ml"
        sentences.append(
            {
                "index": i,
                "text": s.text,
                "start": s.start,
                "end": s.end,
                "heading": s.heading,
                "role": role,
                "role_scores": {r: float(r == role) for r in ROLES},
                "flags": [],
                "flag_scores": dict.fromkeys(FLAGS, 0.0),
            }
        )
    return build_report(sentences, cfg)


def jd(*body: str, pay: str = "Base salary $150,000 - $190,000 plus equity.") -> str:
    """A short English JD around `body` lines (enough JD cues for the input check), with a pay range."""
    return "\n".join(
        [
            "# Senior ML Engineer",
            "We are hiring an engineer to join our team.",
            "## What you will do",
            *body,
            "## Benefits",
            pay,
        ]
    )


def mistake(rep: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((m for m in rep["mistakes"] if m["type"] == kind), None)


# ---------------------------------------------------------------- gendered wording


def test_masculine_coded_jd_is_flagged_with_words_offsets_counts_and_alternatives() -> None:
    text = jd(
        "- Be an ambitious, assertive and decisive leader.",
        "- Show competitiveness and self-reliance in a dominant market.",
        "- Work with an analytical mindset.",
    )
    m = mistake(report(text), "gendered_wording")
    assert m is not None
    words = {w["word"].lower() for w in m["coded_words"]["masculine"]}
    # Inflections and stems: "competitiveness" (compet*), "leader" (lead*), "self-reliance" (self-relian*).
    assert {"ambitious", "assertive", "decisive", "leader", "competitiveness", "self-reliance", "analytical"} <= words
    for w in m["coded_words"]["masculine"]:
        assert text[w["start"] : w["end"]] == w["word"]
        assert w["alternatives"]
    assert m["counts"]["masculine"] >= 8 and m["counts"]["feminine"] == 0
    assert "competitiveness" in m["alternatives"] and "Gaucher" in m["reason"]
    for e in m["evidence"]:
        assert text[e["start"] : e["end"]] == e["text"]


def test_competitive_salary_and_software_terms_are_not_masculine_coding() -> None:
    text = jd(
        "- Manage package dependencies and data analysis for the analytics team.",
        "- Ship features.",
        pay="Competitive salary, competitive benefits and $150,000 - $190,000 base.",
    )
    rep = report(text)
    assert mistake(rep, "gendered_wording") is None
    from jdlens.jd_checks import coded_words

    found = coded_words(rep["sentences"], CFG)
    assert not any(w["word"].lower().startswith(("compet", "analy", "depend")) for k in found for w in found[k])


def test_balanced_wording_and_the_configured_margin() -> None:
    balanced = jd("- Be ambitious, assertive and decisive.", "- Be supportive, understanding and warm with the team.")
    assert mistake(report(balanced), "gendered_wording") is None
    leaning = jd("- Be ambitious, assertive and decisive.")
    assert mistake(report(leaning), "gendered_wording") is not None
    assert mistake(report(leaning, dataclasses.replace(CFG, gendered_wording_margin=4)), "gendered_wording") is None


# ---------------------------------------------------------------- exclusionary language


def test_age_ability_and_culture_wording_each_with_kind_and_replacement() -> None:
    text = jd(
        "- Join our young team of digital natives.",
        "- You must be able to stand for long periods.",
        "- We want a Python ninja and a Rockstar Engineer: we work hard, play hard.",
    )
    m = mistake(report(text), "exclusionary_language")
    assert m is not None
    found = {(h["phrase"].lower(), h["kind"]) for h in m["phrases"]}
    assert {
        ("young team", "age"),
        ("digital natives", "age"),
        ("must be able to stand", "ability"),
        ("ninja", "culture"),
        ("rockstar", "culture"),
        ("work hard, play hard", "culture"),
    } <= found
    for h in m["phrases"]:
        assert text[h["start"] : h["end"]] == h["phrase"] and h["replacement"]
    assert "'ninja' (culture) -> expert" in m["fix"]


def test_company_names_and_ordinary_words_are_not_exclusionary() -> None:
    text = jd(
        "- Ninja Van, our logistics client, ships 2M parcels a day.",
        "- Build broad tooling; mentor interns and new graduates.",
        "- Run the setup wizard for the gunicorn workers.",
        "- Integrate with Guru Labs and Unicorn Robotics, two partners.",  # names, not in any exception list
    )
    assert mistake(report(text), "exclusionary_language") is None


def test_users_can_extend_the_word_lists(tmp_path: Path) -> None:
    (tmp_path / "exclusionary.txt").write_text("culture | code monkey | engineer\n", encoding="utf-8")
    text = jd("- We need a code monkey for our backlog.")
    assert mistake(report(text), "exclusionary_language") is None
    m = mistake(report(text, dataclasses.replace(CFG, wordlists_dir=str(tmp_path))), "exclusionary_language")
    assert m is not None and m["phrases"][0]["replacement"] == "engineer"


# ---------------------------------------------------------------- pay range


@pytest.mark.parametrize(
    "pay",
    [
        "Salary: €95,000 – €125,000 plus equity",
        "Base pay $150K-$230K.",
        "80.000-100.000 EUR per year.",
        "GBP 80k to 100k.",
        "Base salary £95,000 a year.",
    ],
)
def test_a_pay_range_with_a_currency_passes(pay: str) -> None:
    assert mistake(report(jd("- Train models.", pay=pay)), "missing_pay_range") is None


@pytest.mark.parametrize("pay", ["Competitive salary and great benefits.", "We raised a $38M Series B."])
def test_no_pay_range_is_flagged_and_the_fix_gives_the_role_band(pay: str) -> None:
    rep = report(jd("- Train models.", pay=pay))
    m = mistake(rep, "missing_pay_range")
    assert m is not None and rep["role_type"] == "ml"
    assert SALARY_BANDS["ml"]["us_base_senior"] in m["fix"] and "2023/970" in m["reason"]
    assert m["suggested_bands"] == {"ml": SALARY_BANDS["ml"]}
    if "Competitive" in pay:  # the vague pay sentence is the evidence
        assert [e["text"] for e in m["evidence"]] == [pay]


# ---------------------------------------------------------------- requirements overload


def test_more_must_haves_than_the_threshold_is_flagged_with_the_least_essential() -> None:
    lines = [f"- Experience with tool number {i}." for i in range(20)]
    text = jd("## Requirements", *lines)
    rep = report(text)
    m = mistake(rep, "requirements_overload")
    assert m is not None and m["count"] == 20 and str(CFG.requirements_overload_max) in m["reason"]
    assert m["least_essential"] and set(m["least_essential"]) <= set(m["must_haves"])


def test_nice_to_have_items_do_not_count_as_must_haves() -> None:
    musts = [f"- Experience with tool number {i}." for i in range(10)]
    extras = [f"- Experience with extra tool {i}." for i in range(10)]
    text = jd("## Requirements", *musts, "## Nice to have", *extras)
    assert mistake(report(text), "requirements_overload") is None
    assert mistake(report(text, dataclasses.replace(CFG, requirements_overload_max=9)), "requirements_overload")


# ---------------------------------------------------------------- input check and summary


@pytest.mark.parametrize(
    "text",
    [
        "Nous recherchons un ingénieur en apprentissage automatique pour rejoindre notre équipe à Paris. "
        "Vous serez responsable de la conception des modèles et de leur mise en production avec nos clients. "
        "Le poste est basé à Paris avec deux jours de télétravail par semaine et une rémunération attractive.",
        "Curriculum Vitae\nJane Doe\nWork experience\nI led the ranking team at Shopco and I built the feature "
        "store. I have shipped three models. My education: MSc in Computer Science.",
    ],
    ids=["french", "cv"],
)
def test_non_english_or_non_jd_input_gets_a_note_and_low_confidence(text: str) -> None:
    rep = report(text)
    assert rep["role_type_confidence"] == "low" and rep["notes"]
    assert rep["role_title"].startswith("Low confidence")
    statuses = {c["check"]: c["status"] for c in rep["score_explanation"]["checks"]}
    assert statuses["missing_pay_range"] == "skipped" and not mistake(rep, "missing_pay_range")


def test_an_english_jd_is_confident_and_the_summary_lists_every_check() -> None:
    rep = report(jd("- Be ambitious, assertive and decisive.", "- Train models."))
    assert rep["role_type_confidence"] == "normal" and rep["notes"] == []
    checks = rep["score_explanation"]["checks"]
    assert [c["check"] for c in checks] == list(CHECKS)
    failed = {c["check"]: c["penalty"] for c in checks if c["status"] == "failed"}
    assert (
        failed == rep["score_explanation"]["penalties"] == {"gendered_wording": CFG.score_penalties["gendered_wording"]}
    )


# ---------------------------------------------------------------- clean sentence text


def test_markdown_emphasis_and_links_are_removed() -> None:
    assert clean_markdown("**About us**") == "About us"
    assert clean_markdown("Read [our blog](https://x.io/a_b) now.") == "Read our blog now."
    assert clean_markdown("_Note_: snake_case and 2*3*4 stay") == "Note: snake_case and 2*3*4 stay"
    assert clean_markdown("***Both*** and ~~old~~") == "Both and old"


class _Recorder:
    """A predictor that records what it was given and calls everything `ml`."""

    flag_thresholds = dict.fromkeys(FLAGS, 0.5)
    meta: dict[str, Any] = {}
    name, version = "recorder", "0"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        self.seen += texts
        role = np.zeros((len(texts), len(ROLES)))
        role[:, ROLES.index("ml")] = 1.0
        return role, np.zeros((len(texts), len(FLAGS)))


def test_the_model_and_the_page_see_clean_text_while_offsets_point_into_the_original() -> None:
    from serving.engine import Engine

    text = "**About us:** we build [fraud models](https://x.io).\n- _Train_ models with **PyTorch**.\n"
    predictor = _Recorder()
    rep = Engine(predictor, CFG).score(text)
    assert predictor.seen == ["About us: we build fraud models.", "Train models with PyTorch."]
    assert [s["display_text"] for s in rep["sentences"]] == predictor.seen
    for s in rep["sentences"]:
        assert text[s["start"] : s["end"]] == s["text"]


# ---------------------------------------------------------------- diff (the recheck loop)


def test_the_golden_rewrite_fixes_all_four_checks_and_the_diff_says_so() -> None:
    before = report((GOLDEN / "jd_before.md").read_text(encoding="utf-8"))
    after = report((GOLDEN / "jd_after.md").read_text(encoding="utf-8"))
    new_checks = {"gendered_wording", "exclusionary_language", "missing_pay_range", "requirements_overload"}
    assert new_checks <= {m["type"] for m in before["mistakes"]}
    assert not new_checks & {m["type"] for m in after["mistakes"]}
    d = diff_reports(before, after)
    assert d["score_delta"] == after["score"] - before["score"] > 0
    assert new_checks <= {m["type"] for m in d["mistakes_fixed"]} and d["mistakes_introduced"] == []
    back = diff_reports(after, before)
    assert {m["type"] for m in back["mistakes_introduced"]} >= new_checks and back["score_delta"] < 0


def test_diff_lists_sentences_whose_role_changed() -> None:
    old = report(jd("- Train models.", "- Serve models."))
    new = json.loads(json.dumps(old))
    new["sentences"][3]["role"] = "application"
    d = diff_reports(old, new)
    assert [(c["new_index"], c["old_role"], c["new_role"]) for c in d["sentences_role_changed"]] == [
        (3, "ml", "application")
    ]
    assert d["sentences_added"] == d["sentences_removed"] == []


def test_cli_diff_and_score_on_the_golden_jds(project: Path) -> None:
    from jdlens.cli import app

    runner = CliRunner()
    before, after = str(GOLDEN / "jd_before.md"), str(GOLDEN / "jd_after.md")
    res = runner.invoke(app, ["diff", before, after, "--model", "baseline:keywords", "--report"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["diff"]["score_delta"] > 0 and out["report"]["score"] == out["diff"]["new_score"]
    assert {m["type"] for m in out["diff"]["mistakes_fixed"]} >= {
        "gendered_wording",
        "exclusionary_language",
        "missing_pay_range",
        "requirements_overload",
    }
    res = runner.invoke(app, ["diff", before, str(project / "missing.md"), "--model", "baseline:keywords"])
    assert res.exit_code != 0 and "no such file" in res.output
