"""Segmentation: offsets always index the text; layout markers stay out of spans."""

from __future__ import annotations

from pathlib import Path

from jdlens.evaluate import segmentation_metrics
from jdlens.records import load_records
from jdlens.segment import split_sentences

JD = """# Sr. ML Engineer (Payments)

Acme builds fraud tools, e.g. real-time scoring. We are 40 people! Questions? jobs@acme.example
## What you'll do
- Train models with PyTorch. Ship them to production.
  * nested bullet without a period
1. Numbered item one
2) Another, i.e. the second
🚀 Emoji bullet here
**Nice to have**
Apply at https://acme.example/jobs/123 today.
"""


def test_offsets_and_markers() -> None:
    spans = split_sentences(JD)
    for s in spans:
        assert JD[s.start : s.end] == s.text
    assert [s.text for s in spans] == [
        "Sr. ML Engineer (Payments)",
        "Acme builds fraud tools, e.g. real-time scoring.",
        "We are 40 people!",
        "Questions?",
        "jobs@acme.example",
        "What you'll do",
        "Train models with PyTorch.",
        "Ship them to production.",
        "nested bullet without a period",
        "Numbered item one",
        "Another, i.e. the second",
        "Emoji bullet here",
        "**Nice to have**",
        "Apply at https://acme.example/jobs/123 today.",
    ]
    headings = {s.text for s in spans if s.heading}
    assert {"Sr. ML Engineer (Payments)", "What you'll do", "**Nice to have**"} <= headings
    assert "nested bullet without a period" not in headings


def test_empty_and_blank_text() -> None:
    assert split_sentences("") == []
    assert split_sentences("\n\n  - \n") == []


def test_segmentation_against_the_dev_gold() -> None:
    jds = load_records(Path(__file__).parent.parent / "data/jds/dev.jsonl")
    m = segmentation_metrics(jds)
    assert m["gold_sentences"] > 2000
    assert m["f1"] >= 0.95, m
