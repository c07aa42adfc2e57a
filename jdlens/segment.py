"""Job-description text -> sentences with character offsets.

Real postings are mostly layout: headings, bullets, numbered lists, one requirement per line. So the
text is first cut into lines, each line's layout marker (bullet, number, markdown heading) is left out
of the span, and the maintained rule-based segmenter `sentencex` splits the prose inside a line
(it knows abbreviations such as "e.g." and "Sr." and keeps URLs and emails whole).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sentencex import segment as _sentencex_segment

# A layout marker at the start of a line: bullets, "1." / "1)" / "a)" numbering, markdown headings
# and quotes, or a leading emoji/symbol used as a bullet.
# No "^": it is matched with `.match(line, pos)`, which anchors at `pos` without copying the line.
_MARKER = re.compile(r"(?:[-*+•‣◦▪▫●○■□–—·>]|\d{1,3}[.)]|[a-zA-Z][)]|#{1,6})\s+")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str
    heading: bool = False  # alone on its line and laid out as a heading (no bullet, short or ending ":")


def _looks_like_heading(prefix: str, content: str) -> bool:
    marker = prefix.strip()
    if marker and not marker.startswith("#"):
        return False  # bullets and numbered items are list items, never headings
    bare = content.strip("*_ ")
    return (
        marker.startswith("#")
        or content.endswith(":")
        or (content.startswith("**") and content.endswith("**"))
        or (len(bare.split()) <= 6 and not bare.endswith((".", "!", "?")))
    )


def _strip_marker(line: str) -> int:
    """Length of the layout prefix of a line (whitespace, bullets, numbers, emoji bullets).

    Linear in the line: the scan moves one position forward and never slices the rest of the line
    (slicing on every marker made `"- " * 500000` quadratic)."""
    pos = len(line) - len(line.lstrip())
    n = len(line)
    while True:
        m = _MARKER.match(line, pos)
        if m:
            pos = m.end()
            continue
        # An emoji or other symbol used as a bullet ("🚀 Ship features"): symbol chars then a space.
        i = pos
        while i < n and (unicodedata.category(line[i]) in ("So", "Sk", "Mn", "Cf") or line[i] == "\ufe0f"):
            i += 1
        if i > pos and i < n and line[i] == " ":
            pos = i + 1
            continue
        return pos


def _split_prose(text: str, offset: int) -> list[Span]:
    spans = []
    pos = 0
    for piece in _sentencex_segment("en", text):
        start = text.find(piece, pos)
        if start < 0:  # the segmenter altered the text; fall back to the whole rest as one sentence
            start = pos
            piece = text[pos:]
        pos = start + len(piece)
        stripped = piece.strip()
        if not stripped:
            continue
        lead = len(piece) - len(piece.lstrip())
        s = offset + start + lead
        spans.append(Span(s, s + len(stripped), stripped))
        if pos >= len(text):
            break
    return spans


def split_sentences(text: str) -> list[Span]:
    """Split a JD into sentence spans; `text[span.start:span.end] == span.text` always holds."""
    spans: list[Span] = []
    line_start = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        cut = _strip_marker(body)
        content = body[cut:].rstrip()
        if any(ch.isalnum() for ch in content):
            pieces = _split_prose(content, line_start + cut)
            if len(pieces) == 1 and _looks_like_heading(body[:cut], content):
                pieces = [Span(pieces[0].start, pieces[0].end, pieces[0].text, heading=True)]
            spans += pieces
        line_start += len(line)
    return spans
