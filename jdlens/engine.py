"""The scoring engine shared by the CLI, the HTTP service, batch scoring and the MLflow pyfunc.

`prepare` segments a JD and applies the size limits, the model scores the sentences (directly, or
through the server's dynamic batcher, or a vLLM backend), and `finish` builds the JD report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jdlens.markdown_text import clean_markdown
from jdlens.model import sentence_predictions
from jdlens.predictors import describe
from jdlens.report import ReportConfig, build_report
from jdlens.segment import Span, split_sentences


@dataclass
class Limits:
    max_sentences_per_jd: int = 200
    max_chars_per_sentence: int = 1000
    max_text_chars: int = 100_000  # the JD is cut here before splitting, so work per request is bounded


@dataclass
class Prepared:
    spans: list[Span]
    texts: list[str]  # what the model sees (markdown syntax removed, cut to max_chars_per_sentence)
    notes: list[str] = field(default_factory=list)


class Engine:
    def __init__(self, predictor: Any, report_cfg: ReportConfig, limits: Limits | None = None) -> None:
        self.predictor = predictor
        self.report_cfg = report_cfg
        self.limits = limits or Limits()

    @property
    def model_info(self) -> dict[str, Any]:
        """Name, version and aliases; a model loaded from a folder is named by the folder's last part, so
        reports and API answers never disclose the server's file system layout."""
        info = describe(self.predictor)
        name = str(info.get("name", ""))
        if "/" in name or "\\" in name:
            info["name"] = Path(name.rstrip("/\\")).name or "model"
        return info

    def clip(self, texts: list[str]) -> tuple[list[str], list[int]]:
        """Cut over-long sentences; returns the texts and the indices that were cut."""
        cap = self.limits.max_chars_per_sentence
        return [t[:cap] for t in texts], [i for i, t in enumerate(texts) if len(t) > cap]

    def prepare(self, text: str) -> Prepared:
        notes = []
        if len(text) > self.limits.max_text_chars:
            notes.append(f"the JD has {len(text)} characters; only the first {self.limits.max_text_chars} were read")
            text = text[: self.limits.max_text_chars]
        spans = split_sentences(text)
        if len(spans) > self.limits.max_sentences_per_jd:
            notes.append(
                f"the JD has {len(spans)} sentences; only the first {self.limits.max_sentences_per_jd} were scored"
            )
            spans = spans[: self.limits.max_sentences_per_jd]
        texts, cut = self.clip([clean_markdown(s.text) for s in spans])
        if cut:
            notes.append(
                f"{len(cut)} sentence(s) longer than {self.limits.max_chars_per_sentence} characters were "
                f"truncated for scoring: indices {cut}"
            )
        return Prepared(spans, texts, notes)

    def finish(
        self, prep: Prepared, role_p: np.ndarray, flag_p: np.ndarray, jd_id: str | None = None
    ) -> dict[str, Any]:
        preds = sentence_predictions(prep.texts, role_p, flag_p, self.predictor.flag_thresholds)
        # The report works on the text the model saw (cut to max_chars_per_sentence), so its rules run on
        # bounded input; `end` then marks the end of that cut text in the JD.
        sentences = [
            {
                **p,
                "index": i,
                "text": cut,
                "display_text": clean_markdown(cut),
                "start": s.start,
                "end": s.start + len(cut),
                "heading": s.heading,
            }
            for i, (p, s) in enumerate(zip(preds, prep.spans, strict=True))
            for cut in [s.text[: self.limits.max_chars_per_sentence]]
        ]
        report = build_report(sentences, self.report_cfg, model=self.model_info, jd_id=jd_id)
        report["truncation"] = prep.notes
        return report

    def score(self, text: str, jd_id: str | None = None) -> dict[str, Any]:
        prep = self.prepare(text)
        return self.finish(prep, *self.predictor.predict_proba(prep.texts), jd_id=jd_id)

    def score_many(self, texts: list[str], ids: list[str | None] | None = None) -> list[dict[str, Any]]:
        """Reports for many JDs with one model call: their sentences go through the model together, so the
        classifier's length-sorted batches fill up across JDs (batch scoring and the pyfunc use this)."""
        ids = ids if ids is not None else [None] * len(texts)
        preps = [self.prepare(t) for t in texts]
        flat = [t for p in preps for t in p.texts]
        role_p, flag_p = self.predictor.predict_proba(flat)
        reports, at = [], 0
        for prep, jd_id in zip(preps, ids, strict=True):
            n = len(prep.texts)
            reports.append(self.finish(prep, role_p[at : at + n], flag_p[at : at + n], jd_id=jd_id))
            at += n
        return reports

    def classify(self, texts: list[str]) -> list[dict[str, Any]]:
        clipped, _ = self.clip(texts)
        preds = sentence_predictions(clipped, *self.predictor.predict_proba(clipped), self.predictor.flag_thresholds)
        for p, t in zip(preds, texts, strict=True):
            p["text"] = t
        return preds
