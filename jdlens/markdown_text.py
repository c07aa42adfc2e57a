"""Markdown emphasis and link syntax removed from a sentence, for display and for the model.

The report's `text`, `start` and `end` always stay the original slice of the JD; `display_text` is the
same sentence without `**bold**`, `_italic_`, `~~strike~~`, `[text](url)` or `![alt](url)` syntax.
"""

from __future__ import annotations

import re

# [text](url "title") and ![alt](url) -> text / alt; a bare <https://...> autolink -> the URL.
_LINK = re.compile(r"!?\[([^\]\n]*)\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
# Emphasis: the marker hugs non-space text on both sides; underscores only at word edges (snake_case stays).
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_EM_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![\w*])")
_EM_UNDER = re.compile(r"(?<![\w_])_(?=[^\s_])([^_\n]+?)(?<=[^\s_])_(?![\w_])")


def clean_markdown(text: str) -> str:
    """`**About us**` -> `About us`, `[our blog](https://x.io)` -> `our blog`, `_Note_` -> `Note`."""
    out = _LINK.sub(r"\1", text)
    out = _AUTOLINK.sub(r"\1", out)
    out = _STRONG.sub(r"\2", out)
    out = _STRIKE.sub(r"\1", out)
    out = _EM_STAR.sub(r"\1", out)
    out = _EM_UNDER.sub(r"\1", out)
    return out.strip() or text
