"""Sentence predictions -> the JD report: role type, mistakes with evidence and fixes, score, pay, interviews.

The JD-level rules follow LABELS.md; their thresholds live in `configs/report.yaml` (tuned on the dev JDs).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jdlens.config import load_config, repo_root
from jdlens.jd_checks import run_checks
from jdlens.labels import ROLE_SPECIFIC
from jdlens.role_facts import (
    INTERVIEW_PLANS,
    ROLE_TITLES,
    SALARY_BANDS,
    SENIORITY_EXAMPLES,
    SPECIFIC_EXAMPLES,
)

# Points off the score per mistake type; every check the report runs, in the order the summary lists them.
DEFAULT_PENALTIES: dict[str, int] = {
    "mixed_roles": 35,
    "phd_for_non_research": 20,
    "buzzwords": 15,
    "vague_seniority": 15,
    "gendered_wording": 10,
    "exclusionary_language": 10,
    "missing_pay_range": 10,
    "requirements_overload": 10,
}
# What each check looks for, for the score explanation's summary.
CHECKS: dict[str, str] = {
    "mixed_roles": "one role per JD (not several AI roles mixed)",
    "phd_for_non_research": "no PhD required outside research roles",
    "buzzwords": "concrete requirements, not umbrella terms",
    "vague_seniority": "seniority shown by accomplishments, not only years",
    "gendered_wording": "no lean to masculine-coded words (Gaucher, Friesen & Kay 2011)",
    "exclusionary_language": "no age-coded, ability-coded or exclusionary culture wording",
    "missing_pay_range": "a pay range with a currency",
    "requirements_overload": "a short list of must-have requirements",
}
JD_WIDE_CHECKS = ("gendered_wording", "exclusionary_language", "missing_pay_range", "requirements_overload")


@dataclass
class ReportConfig:
    # A JD is `mixed` when two or more role types each hold at least this share of role-specific sentences.
    mixed_min_share: float = 0.25
    # Below this many role-specific sentences a second role cannot make the JD mixed.
    mixed_min_sentences: int = 2
    # A heading that matches this makes the items under it optional (a PhD there is no mistake).
    optional_heading_pattern: str = (
        r"prefer|nice|bonus|plus|ideal|extra|desirable|great|good to have|good-to-have|optional|not required|would be"
        r"|added advantage|may also have|might also have|also great|good fit if you also"
    )
    # A requirement sentence that matches this is a concrete seniority signal (an accomplishment, not a duty).
    concrete_seniority_pattern: str = (
        r"(\b(you'?ve|you have|has|have|having|track record|proven record|history of)\b.{0,60}"
        r"\b(shipped|taken|took|led|owned|launched|scaled|deployed|built|delivered|grown|managed|mentored|driven|drove"
        r"|run|ran|published|transferred|been (the |a )?(tech(nical)? )?lead|designed and (built|shipped))\b)"
        r"|^\W*(shipped|led|owned|launched|scaled|deployed|built|delivered|took|taken|grew|mentored)\b.{0,200}"
        r"(\d|production|users|customers|team|decisions|publication)"
        r"|\b(have|has|you've)\s+(put|brought|taken|moved)\b.{0,60}\binto\b.{0,40}\bproduction\b"
        r"|\bat least (one|two|three|\d+)\b.{0,160}\b(users|customers|requests|in production)\b"
    )
    # ...unless it is about applying for the job ("To apply, share something you've built").
    not_seniority_pattern: str = (
        r"\bto apply\b|\bwhen you apply\b|\bin your application\b|\bapplicants?\b|\bwhat you('ve| have) built\b"
    )
    score_penalties: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PENALTIES))
    # Each buzzword sentence past the first costs this many more points, up to this cap.
    extra_buzzword_penalty: int = 3
    extra_buzzword_cap: int = 15
    # gendered_wording fires when masculine-coded words outnumber feminine-coded ones by at least this many.
    gendered_wording_margin: int = 3
    # requirements_overload fires above this many must-have requirement sentences.
    requirements_overload_max: int = 15
    # A heading that opens the must-have requirements (checked after optional_heading_pattern).
    requirements_heading_pattern: str = (
        r"require|qualif|must|you have|you.ll need|you will need|looking for|about you|who you are|skills"
        r"|experience|you bring|what we need|what you.ll need|you should have|ideal candidate"
    )
    # Without such a heading, a role or general sentence that matches this counts as a requirement.
    requirement_sentence_pattern: str = (
        r"\b(experience|years?|degree|bs|ms|msc|bsc|phd|knowledge|proficien\w*|familiar\w*|fluen\w*|must|required"
        r"|you have|strong|solid|ability to|understanding|background in|expertise|skills?)\b"
    )
    # The input check: a JD has at least this many distinct JD cues (jdlens/wordlists/jd_cues.txt) ...
    min_jd_cues: int = 3
    # ... and is not first-person text with this many CV/news cues (cv_cues.txt) ...
    min_non_jd_cues: int = 2
    # ... and, once it has this many words, at least this share of them are English function words.
    min_words_for_language: int = 20
    min_english_share: float = 0.15
    # Extra word lists (same file names as jdlens/wordlists/) that extend the built-in ones.
    wordlists_dir: str = "configs/wordlists"

    def __post_init__(self) -> None:
        # A config that lists only some penalties keeps the defaults for the others.
        self.score_penalties = {**DEFAULT_PENALTIES, **self.score_penalties}

    def validate(self) -> None:
        if not 0 < self.mixed_min_share <= 0.5:
            raise ValueError("mixed_min_share must be in (0, 0.5]")
        re.compile(self.optional_heading_pattern)
        re.compile(self.concrete_seniority_pattern)
        re.compile(self.not_seniority_pattern)
        re.compile(self.requirements_heading_pattern)
        re.compile(self.requirement_sentence_pattern)
        unknown = set(self.score_penalties) - set(DEFAULT_PENALTIES)
        if unknown:
            raise ValueError(f"score_penalties: unknown mistake type(s) {sorted(unknown)}")
        if self.gendered_wording_margin < 1 or self.requirements_overload_max < 1:
            raise ValueError("gendered_wording_margin and requirements_overload_max must be at least 1")


def load_report_config(path: Path | None = None) -> ReportConfig:
    path = path or repo_root() / "configs" / "report.yaml"
    return load_config(ReportConfig, path if path.exists() else None)


def _evidence(sentences: list[dict[str, Any]], idx: list[int]) -> list[dict[str, Any]]:
    return [
        {"index": i, "text": sentences[i]["text"], "start": sentences[i]["start"], "end": sentences[i]["end"]}
        for i in idx
    ]


def role_shares(sentences: list[dict[str, Any]]) -> dict[str, float]:
    counts = Counter(s["role"] for s in sentences if s["role"] in ROLE_SPECIFIC)
    total = sum(counts.values())
    if total == 0:
        return dict.fromkeys(ROLE_SPECIFIC, 0.0)
    return {r: round(counts[r] / total, 4) for r in ROLE_SPECIFIC}


def decide_role_type(sentences: list[dict[str, Any]], cfg: ReportConfig) -> tuple[str, dict[str, float]]:
    shares = role_shares(sentences)
    counts = Counter(s["role"] for s in sentences if s["role"] in ROLE_SPECIFIC)
    if not counts:
        # No role-specific sentence: fall back to the summed role probabilities of the whole JD.
        mass = {r: sum(s["role_scores"][r] for s in sentences) for r in ROLE_SPECIFIC}
        return max(mass, key=mass.__getitem__), shares
    big = [r for r in ROLE_SPECIFIC if shares[r] >= cfg.mixed_min_share and counts[r] >= cfg.mixed_min_sentences]
    if len(big) >= 2:
        return "mixed", shares
    return max(ROLE_SPECIFIC, key=lambda r: (counts[r], shares[r])), shares


def optional_sections(sentences: list[dict[str, Any]], cfg: ReportConfig) -> list[bool]:
    """For each sentence, whether it sits under a heading that makes its items optional."""
    pattern = re.compile(cfg.optional_heading_pattern, re.I)
    optional, out = False, []
    for s in sentences:
        if s.get("heading") and s["role"] == "other":
            optional = bool(pattern.search(s["text"]))
        out.append(optional)
    return out


def _check_summary(penalties: dict[str, int], assessment: dict[str, Any]) -> list[dict[str, Any]]:
    """Every check, passed or failed (or skipped on a text that is not an English JD), like a linter's summary."""
    out = []
    for check, what in CHECKS.items():
        skipped = check in JD_WIDE_CHECKS and not assessment["looks_like_jd"]
        status = "skipped" if skipped else "failed" if check in penalties else "passed"
        out.append({"check": check, "status": status, "penalty": penalties.get(check, 0), "what": what})
    return out


def build_report(
    sentences: list[dict[str, Any]],
    cfg: ReportConfig,
    model: dict[str, Any] | None = None,
    jd_id: str | None = None,
) -> dict[str, Any]:
    """Build the report from predicted sentences (text, start, end, heading, role, role_scores, flags, flag_scores)."""
    role_type, shares = decide_role_type(sentences, cfg)
    under_optional = optional_sections(sentences, cfg)
    concrete = re.compile(cfg.concrete_seniority_pattern, re.I)
    not_seniority = re.compile(cfg.not_seniority_pattern, re.I)
    is_req = [s["role"] != "other" for s in sentences]
    flagged = {
        f: [i for i, s in enumerate(sentences) if f in s["flags"] and is_req[i]]
        for f in ("phd_required", "buzzword", "vague_seniority")
    }
    concrete_idx = [
        i
        for i, s in enumerate(sentences)
        if is_req[i]
        and "vague_seniority" not in s["flags"]
        and concrete.search(s["text"])
        and not not_seniority.search(s["text"])
    ]
    mistakes: list[dict[str, Any]] = []

    if role_type == "mixed":
        by_role = {r: [i for i, s in enumerate(sentences) if s["role"] == r] for r in ROLE_SPECIFIC}
        present = [r for r in ROLE_SPECIFIC if shares[r] >= cfg.mixed_min_share]
        split = "; ".join(f"{ROLE_TITLES[r]}: sentences {by_role[r]}" for r in present)
        mistakes.append(
            {
                "type": "mixed_roles",
                "evidence": _evidence(sentences, sorted(i for r in present for i in by_role[r])),
                "reason": "The requirements describe more than one role ("
                + ", ".join(f"{ROLE_TITLES[r]} {shares[r]:.0%}" for r in present)
                + "); few people do all of them and candidates cannot tell which job this is.",
                "fix": f"Decide which role you need in week one and write one JD for it; move the rest to a "
                f"separate posting or to 'nice to have'. Split: {split}.",
                "split": {r: by_role[r] for r in present},
            }
        )

    phd_idx = [i for i in flagged["phd_required"] if not under_optional[i]]
    if phd_idx and role_type != "research":
        mistakes.append(
            {
                "type": "phd_for_non_research",
                "evidence": _evidence(sentences, phd_idx),
                "reason": "A PhD is required for a role that is not research; it shuts out strong practitioners "
                "with production experience.",
                "fix": "Drop the PhD requirement (write 'BS/MS in CS or equivalent practical experience') and "
                "state the production work you need instead; keep PhDs for research engineers building novel "
                "architectures.",
            }
        )

    if flagged["buzzword"]:
        target = role_type if role_type in SPECIFIC_EXAMPLES else max(shares, key=shares.__getitem__)
        mistakes.append(
            {
                "type": "buzzwords",
                "evidence": _evidence(sentences, flagged["buzzword"]),
                "reason": "Umbrella terms such as 'AI/ML technologies' tell strong candidates nothing about the work.",
                "fix": "Name the tools, techniques and outcomes, e.g. '" + SPECIFIC_EXAMPLES[target] + "'.",
            }
        )

    if flagged["vague_seniority"] and not concrete_idx:
        target = role_type if role_type in SENIORITY_EXAMPLES else max(shares, key=shares.__getitem__)
        mistakes.append(
            {
                "type": "vague_seniority",
                "evidence": _evidence(sentences, flagged["vague_seniority"]),
                "reason": "Seniority is given only as a year count or a level, which says nothing about what "
                "a senior person here has done.",
                "fix": "Say what senior looks like in practice, e.g. '" + SENIORITY_EXAMPLES[target] + "'.",
            }
        )

    wording, assessment = run_checks(sentences, role_type, under_optional, cfg)
    mistakes += wording

    penalties = {m["type"]: cfg.score_penalties[m["type"]] for m in mistakes}
    if "buzzwords" in penalties:
        extra = (len(flagged["buzzword"]) - 1) * cfg.extra_buzzword_penalty
        penalties["buzzwords"] += min(extra, cfg.extra_buzzword_cap)
    score = max(0, 100 - sum(penalties.values()))
    if role_type == "mixed":
        roles_for_facts = [r for r in ROLE_SPECIFIC if shares[r] >= cfg.mixed_min_share]
    else:
        roles_for_facts = [role_type]
    report: dict[str, Any] = {}
    if jd_id is not None:
        report["id"] = jd_id
    report.update(
        {
            "role_type": role_type,
            "role_title": ("" if assessment["looks_like_jd"] else "Low confidence: ")
            + ROLE_TITLES.get(role_type, "Mixed: several AI roles in one JD"),
            "role_shares": shares,
            "score": score,
            "score_explanation": {
                "start": 100,
                "penalties": penalties,
                "rule": "100 minus a fixed penalty per mistake (configs/report.yaml); each buzzword "
                "sentence after the first costs extra, up to a cap.",
                "checks": _check_summary(penalties, assessment),
            },
            "role_type_confidence": "normal" if assessment["looks_like_jd"] else "low",
            "input": {k: v for k, v in assessment.items() if k != "notes"},
            "notes": assessment["notes"],
            "mistakes": mistakes,
            "concrete_seniority_evidence": _evidence(sentences, concrete_idx),
            "salary_bands": {r: SALARY_BANDS[r] for r in roles_for_facts},
            "interview_plan": {r: INTERVIEW_PLANS[r] for r in roles_for_facts},
            "sentences": sentences,
            "model": model or {},
        }
    )
    return report
