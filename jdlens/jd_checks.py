"""The JD-wide wording checks that JD linters have: gendered wording, exclusionary language, a missing pay
range and too many must-haves; and the input check that says when a text is not an English JD.

Each check reads the predicted sentences (text, start, end, heading, role, role_scores) and returns a
mistake (type, evidence with offsets into the original JD, reason, fix, and check-specific details) or None.
Word lists are data files (`jdlens/wordlists/`, extendable from `configs/wordlists/`), see `jdlens.lexicon`.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from jdlens.labels import ROLE_SPECIFIC
from jdlens.lexicon import covered, exception_spans, load_patterns, load_terms
from jdlens.role_facts import ROLE_TITLES, SALARY_BANDS

# Short function words that make up a large share of any English text; a text where they are rare is not English.
ENGLISH_FUNCTION_WORDS = frozenset(
    "the a an and or of to in on for with at by from as is are be been will would can you your we our us they "
    "their it its this that these those who what which have has had do does not no but if so all any about into "
    "than then there here also more most such other".split()
)
_FIRST_PERSON = re.compile(r"\b(i|me|my|mine|i'm|i've)\b", re.IGNORECASE)
_SECOND_PERSON = re.compile(r"\b(you|your|you'll|you're|you've|we|our|we're)\b", re.IGNORECASE)

# A currency: a symbol, or an ISO code / common prefix ("USD", "US$").
_CUR = r"(?:US\$|C\$|A\$|[$€£¥₹]|\b(?:USD|EUR|GBP|CHF|CAD|AUD|NZD|SGD|INR|JPY|SEK|NOK|DKK|PLN)\b)"
# An amount: 150000, 150,000, 150.000, 150k, 1.2m.
_NUM = r"\d{1,3}(?:[,.\s]\d{3})+(?:\.\d+)?\s?[kKmM]?|\d+(?:\.\d+)?\s?[kKmM]?"
_TO = r"\s*(?:-|–|—|to|and)\s*"
PAY_RANGE = re.compile(
    rf"{_CUR}\s?(?:{_NUM}){_TO}{_CUR}?\s?(?:{_NUM})"  # $150K-$230K, £80,000 to £100,000, EUR 80k-100k
    rf"|(?:{_NUM}){_TO}(?:{_NUM})\s?{_CUR}",  # 80.000-100.000 €, 80k-100k EUR
    re.IGNORECASE,
)
PAY_AMOUNT = re.compile(rf"{_CUR}\s?(?:{_NUM})|(?:{_NUM})\s?{_CUR}", re.IGNORECASE)
PAY_WORDS = re.compile(
    r"\b(salary|salaries|pay|compensation|base|OTE|remuneration|wage|per (year|annum|hour|month)|a year|/\s?(yr|year|hr|hour))\b",
    re.IGNORECASE,
)
# The kinds of exclusionary wording, in the order they are reported.
EXCLUSION_KINDS = ("age", "ability", "culture")
# A capitalised word after a culture word that shows it is part of a name ("Ninja Van"), unless the word is
# the job itself ("Rockstar Engineer").
_JOB_WORDS = frozenset(
    "engineer engineers developer developers programmer programmers coder coders designer designers scientist "
    "scientists researcher researchers wanted needed required mindset attitude skills team".split()
)


def _dirs(cfg: Any) -> tuple[Path, ...]:
    from jdlens.config import repo_root

    extra = Path(cfg.wordlists_dir)
    return ((extra if extra.is_absolute() else repo_root() / extra),)


def _ev(s: dict[str, Any], i: int, **extra: Any) -> dict[str, Any]:
    return {"index": i, "text": s["text"], "start": s["start"], "end": s["end"], **extra}


# ---------------------------------------------------------------- input: English? a JD at all?


def assess_input(sentences: list[dict[str, Any]], cfg: Any) -> dict[str, Any]:
    """Whether the text looks like an English job description, with the evidence for the call."""
    text = "\n".join(s["text"] for s in sentences)
    words = re.findall(r"[^\W\d_]+", text.lower())
    share = sum(w in ENGLISH_FUNCTION_WORDS for w in words) / len(words) if words else 0.0
    english = len(words) < cfg.min_words_for_language or share >= cfg.min_english_share
    jd_cues = sum(bool(p.search(text)) for p in load_patterns("jd_cues.txt", _dirs(cfg)))
    other_cues = sum(bool(p.search(text)) for p in load_patterns("cv_cues.txt", _dirs(cfg)))
    first, second = len(_FIRST_PERSON.findall(text)), len(_SECOND_PERSON.findall(text))
    cv_like = other_cues >= cfg.min_non_jd_cues and first > second
    notes = []
    if not english:
        notes.append(
            f"This text does not look like English (only {share:.0%} of its words are common English function "
            "words); jdlens is trained on English JDs, so the role type is a low-confidence guess and the "
            "wording checks were not run."
        )
    elif cv_like:
        notes.append(
            "This text reads like a CV or an article (first-person writing, "
            f"{other_cues} CV/news cues), not a job description: the role type is a low-confidence guess and "
            "the JD-wide checks were not run."
        )
    elif jd_cues < cfg.min_jd_cues:
        notes.append(
            f"This text has few signs of a job description ({jd_cues} of the usual cues such as requirements, "
            "responsibilities, 'you will', the team or how to apply): the role type is a low-confidence guess "
            "and the JD-wide checks were not run."
        )
    return {
        "english": english,
        "english_word_share": round(share, 3),
        "jd_cues": jd_cues,
        "non_jd_cues": other_cues,
        "looks_like_jd": english and not cv_like and jd_cues >= cfg.min_jd_cues,
        "notes": notes,
    }


# ---------------------------------------------------------------- gendered wording


def coded_words(sentences: list[dict[str, Any]], cfg: Any) -> dict[str, list[dict[str, Any]]]:
    """Every masculine- and feminine-coded word (Gaucher et al. 2011 lists) with offsets into the JD."""
    dirs = _dirs(cfg)
    skip = load_patterns("gendered_exceptions.txt", dirs)
    found: dict[str, list[dict[str, Any]]] = {"masculine": [], "feminine": []}
    for i, s in enumerate(sentences):
        text = s["text"]
        excluded = exception_spans(text, skip)
        taken: list[tuple[int, int]] = []
        for kind in ("masculine", "feminine"):
            for term in load_terms(f"{kind}.txt", dirs):
                for m in term.pattern.finditer(text):
                    if covered(excluded, m.start(), m.end()) or covered(taken, m.start(), m.end()):
                        continue
                    taken.append((m.start(), m.end()))
                    alternatives = [a.strip() for a in term.fields[0].split(";")] if term.fields else []
                    found[kind].append(
                        {
                            "word": m.group(0),
                            "term": term.term,
                            "index": i,
                            "start": s["start"] + m.start(),
                            "end": s["start"] + m.end(),
                            **({"alternatives": alternatives} if kind == "masculine" else {}),
                        }
                    )
    return found


def check_gendered_wording(sentences: list[dict[str, Any]], cfg: Any) -> dict[str, Any] | None:
    found = coded_words(sentences, cfg)
    m, f = len(found["masculine"]), len(found["feminine"])
    if m - f < cfg.gendered_wording_margin:
        return None
    idx = sorted({w["index"] for w in found["masculine"]})
    alternatives: dict[str, list[str]] = {}
    for w in found["masculine"]:
        alternatives.setdefault(w["word"].lower(), w["alternatives"])
    shown = ", ".join(f"'{k}' -> {' / '.join(v)}" for k, v in list(alternatives.items())[:8])
    return {
        "type": "gendered_wording",
        "evidence": [_ev(sentences[i], i, words=[w for w in found["masculine"] if w["index"] == i]) for i in idx],
        "reason": f"The JD leans masculine-coded: {m} masculine-coded word(s) against {f} feminine-coded "
        f"(margin {cfg.gendered_wording_margin}). Gaucher, Friesen & Kay (2011) found that such wording makes "
        "a job less appealing to women and makes them feel they belong less, without changing how able they "
        "feel to do it.",
        "fix": f"Use neutral words for the coded ones: {shown}. Describe the work and the outcomes instead of "
        "the temperament you want.",
        "counts": {"masculine": m, "feminine": f},
        "coded_words": found,
        "alternatives": alternatives,
    }


# ---------------------------------------------------------------- exclusionary language


def _is_name(text: str, start: int, end: int) -> bool:
    """A capitalised culture word followed by another capitalised word is a name ("Ninja Van", "Rockstar
    Games"), unless that word is the job ("Rockstar Engineer")."""
    if not text[start : start + 1].isupper():
        return False
    nxt = re.match(r"\s+([A-Z][\w&'-]*)", text[end:])
    return bool(nxt) and nxt.group(1).lower() not in _JOB_WORDS


def check_exclusionary_language(sentences: list[dict[str, Any]], cfg: Any) -> dict[str, Any] | None:
    dirs = _dirs(cfg)
    skip = load_patterns("exclusionary_exceptions.txt", dirs)
    hits = []
    for i, s in enumerate(sentences):
        text = s["text"]
        excluded = exception_spans(text, skip)
        taken: list[tuple[int, int]] = []
        for term in load_terms("exclusionary.txt", dirs, term_field=1):
            kind, replacement = (term.fields + ("", ""))[:2]
            if kind not in EXCLUSION_KINDS:
                raise ValueError(f"exclusionary.txt: kind {kind!r} of {term.term!r} is not one of {EXCLUSION_KINDS}")
            for m in term.pattern.finditer(text):
                if covered(excluded, m.start(), m.end()) or covered(taken, m.start(), m.end()):
                    continue
                if kind == "culture" and _is_name(text, m.start(), m.end()):
                    continue
                taken.append((m.start(), m.end()))
                hits.append(
                    {
                        "phrase": m.group(0),
                        "kind": kind,
                        "replacement": replacement,
                        "index": i,
                        "start": s["start"] + m.start(),
                        "end": s["start"] + m.end(),
                    }
                )
    if not hits:
        return None
    kinds = Counter(h["kind"] for h in hits)
    idx = sorted({h["index"] for h in hits})
    return {
        "type": "exclusionary_language",
        "evidence": [_ev(sentences[i], i, phrases=[h for h in hits if h["index"] == i]) for i in idx],
        "reason": "Wording that signals who is not welcome: "
        + ", ".join(f"{kinds[k]} {k}-coded" for k in EXCLUSION_KINDS if kinds[k])
        + " phrase(s). Age-coded wording can breach age-discrimination law (e.g. the UK Equality Act 2010, "
        "the US ADEA), ability-coded wording shuts out disabled candidates who could do the job, and "
        "'rockstar'/'ninja'/'work hard, play hard' culture words put off experienced and under-represented "
        "candidates.",
        "fix": "Replace: " + "; ".join(f"'{h['phrase']}' ({h['kind']}) -> {h['replacement']}" for h in hits) + ".",
        "phrases": hits,
    }


# ---------------------------------------------------------------- pay range


def pay_mentions(sentences: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pay ranges with a currency, or a single amount with a currency in a sentence about pay."""
    out = []
    for i, s in enumerate(sentences):
        text = s["text"]
        ranges = list(PAY_RANGE.finditer(text))
        singles = list(PAY_AMOUNT.finditer(text)) if not ranges and PAY_WORDS.search(text) else []
        for m in ranges + singles:
            out.append({"index": i, "amount": m.group(0), "start": s["start"] + m.start(), "end": s["start"] + m.end()})
    return out


def check_missing_pay_range(sentences: list[dict[str, Any]], role_type: str, cfg: Any) -> dict[str, Any] | None:
    if pay_mentions(sentences):
        return None
    vague = [i for i, s in enumerate(sentences) if PAY_WORDS.search(s["text"])]
    roles = [role_type] if role_type in SALARY_BANDS else [r for r in ROLE_SPECIFIC if r in SALARY_BANDS]
    bands = "; ".join(
        f"{ROLE_TITLES[r]}: US base (senior) {SALARY_BANDS[r]['us_base_senior']}, UK {SALARY_BANDS[r]['uk']}"
        for r in roles
    )
    return {
        "type": "missing_pay_range",
        "evidence": [_ev(sentences[i], i) for i in vague],
        "reason": "The JD gives no pay range with a currency"
        + (" ('competitive' pay is not a range)" if vague else "")
        + ". Pay transparency is becoming law: the EU Pay Transparency Directive (2023/970) must be applied "
        "from June 2026, and Colorado, California, Washington, New York and other US states and cities "
        "already require a range in the posting. Postings with a range also get more and better-matched "
        "applicants.",
        "fix": f"State the base pay range and currency (and equity or bonus if any). The 2026 bands for this "
        f"role type: {bands}.",
        "suggested_bands": {r: SALARY_BANDS[r] for r in roles},
    }


# ---------------------------------------------------------------- too many must-haves


def must_have_requirements(sentences: list[dict[str, Any]], under_optional: list[bool], cfg: Any) -> list[int]:
    """Indices of the must-have requirement sentences: role-specific or general, outside optional sections,
    under a requirements heading when the JD has one, else every sentence that reads like a requirement."""
    heading_re = re.compile(cfg.requirements_heading_pattern, re.IGNORECASE)
    req_re = re.compile(cfg.requirement_sentence_pattern, re.IGNORECASE)
    section: list[bool] = []
    current, any_heading = False, False
    for s in sentences:
        if s.get("heading"):
            current = bool(heading_re.search(s["text"]))
            any_heading = any_heading or current
        section.append(current)
    out = []
    for i, s in enumerate(sentences):
        if s.get("heading") or s["role"] not in (*ROLE_SPECIFIC, "general") or under_optional[i]:
            continue
        if section[i] if any_heading else bool(req_re.search(s["text"])):
            out.append(i)
    return out


def check_requirements_overload(
    sentences: list[dict[str, Any]], under_optional: list[bool], role_type: str, cfg: Any
) -> dict[str, Any] | None:
    musts = must_have_requirements(sentences, under_optional, cfg)
    if len(musts) <= cfg.requirements_overload_max:
        return None

    # Least essential first: another role's requirements, then general ones, each by how little they
    # look like the detected role; for a mixed JD, the least confident role-specific ones.
    def essential(i: int) -> tuple[int, float]:
        s = sentences[i]
        if role_type in ROLE_SPECIFIC:
            rank = 0 if s["role"] in ROLE_SPECIFIC and s["role"] != role_type else 1 if s["role"] == "general" else 2
            return rank, float(s["role_scores"].get(role_type, 0.0))
        return (1 if s["role"] == "general" else 0), float(max(s["role_scores"].values()))

    least = sorted(musts, key=essential)[: max(1, len(musts) - cfg.requirements_overload_max)][:8]
    target = ROLE_TITLES.get(role_type, "the role")
    return {
        "type": "requirements_overload",
        "evidence": [_ev(sentences[i], i) for i in least],
        "reason": f"The JD lists {len(musts)} must-have requirements (more than {cfg.requirements_overload_max}); "
        "long must-have lists put off qualified candidates, who apply only when they meet nearly all of them, "
        "and hide what the job really needs.",
        "fix": f"Keep the {cfg.requirements_overload_max} or fewer that the role ({target}) needs in the first months; move "
        f"the rest to 'nice to have' or drop them. Least essential for the {target} role: sentences "
        + ", ".join(str(i + 1) for i in least)
        + ".",
        "count": len(musts),
        "must_haves": musts,
        "least_essential": least,
    }


def run_checks(
    sentences: list[dict[str, Any]], role_type: str, under_optional: list[bool], cfg: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The four wording checks (only on English JDs) and the input assessment."""
    assessment = assess_input(sentences, cfg)
    if not assessment["looks_like_jd"]:
        return [], assessment
    found = [
        check_gendered_wording(sentences, cfg),
        check_exclusionary_language(sentences, cfg),
        check_missing_pay_range(sentences, role_type, cfg),
        check_requirements_overload(sentences, under_optional, role_type, cfg),
    ]
    return [m for m in found if m], assessment
