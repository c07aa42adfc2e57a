"""Measuring a sentence predictor: sentence-level and JD-level metrics, and segmentation quality."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from jdlens.labels import FLAGS, MISTAKES, ROLE_TYPES, ROLES
from jdlens.markdown_text import clean_markdown
from jdlens.model import sentence_predictions
from jdlens.report import ReportConfig, build_report
from jdlens.segment import split_sentences


def _prf(y_true: list[int], y_pred: list[int]) -> dict[str, float]:
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="binary", zero_division=0)
    return {
        "precision": round(float(p), 4),
        "recall": round(float(r), 4),
        "f1": round(float(f), 4),
        "support": int(sum(y_true)),
    }


def sentence_metrics(gold: list[dict[str, Any]], pred: list[dict[str, Any]]) -> dict[str, Any]:
    y_true = [g["role"] for g in gold]
    y_pred = [p["role"] for p in pred]
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=list(ROLES), zero_division=0)
    out: dict[str, Any] = {
        "n": len(gold),
        "role_accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "role_macro_f1": round(
            float(f1_score(y_true, y_pred, labels=list(ROLES), average="macro", zero_division=0)), 4
        ),
        "roles": {
            role: {
                "precision": round(float(p[i]), 4),
                "recall": round(float(r[i]), 4),
                "f1": round(float(f[i]), 4),
                "support": int(s[i]),
            }
            for i, role in enumerate(ROLES)
        },
        "flags": {
            flag: _prf([int(flag in g.get("flags", [])) for g in gold], [int(flag in q["flags"]) for q in pred])
            for flag in FLAGS
        },
        "confusion": confusion(y_true, y_pred),
        "calibration": calibration(y_true, pred),
    }
    return out


def expected_calibration_error(conf: np.ndarray, right: np.ndarray, bins: int = 10) -> float:
    """|confidence - accuracy| averaged over equal-width confidence bins, weighted by bin size."""
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(conf[m].mean() - right[m].mean())
    return round(float(ece), 4)


def calibration(y_true: list[str], pred: list[dict[str, Any]], bins: int = 10) -> dict[str, float]:
    """How far the top role probability is from being right that often: expected calibration error
    (10 equal-width bins) and the median top probability of the wrong predictions (overconfidence)."""
    if not pred or "role_scores" not in pred[0]:
        return {}
    conf = np.array([max(p["role_scores"].values()) for p in pred])
    right = np.array([p["role"] == t for p, t in zip(pred, y_true, strict=True)], dtype=float)
    wrong = conf[right == 0]
    return {
        "role_ece": expected_calibration_error(conf, right, bins),
        "median_confidence_wrong": round(float(np.median(wrong)), 4) if len(wrong) else 0.0,
        "median_confidence_right": round(float(np.median(conf[right == 1]) if right.any() else 0.0), 4),
    }


def confusion(y_true: list[str], y_pred: list[str]) -> list[list[int]]:
    m = np.zeros((len(ROLES), len(ROLES)), dtype=int)
    for t, p in zip(y_true, y_pred, strict=True):
        m[ROLES.index(t), ROLES.index(p)] += 1
    return m.tolist()


def segmentation_metrics(jds: list[dict[str, Any]]) -> dict[str, Any]:
    """Exact span match of the segmenter's sentences against the gold sentences."""
    tp = n_pred = n_gold = 0
    for jd in jds:
        gold = {(s["start"], s["end"]) for s in jd["sentences"]}
        pred = {(s.start, s.end) for s in split_sentences(jd["text"])}
        tp += len(gold & pred)
        n_pred += len(pred)
        n_gold += len(gold)
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return {
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
        "gold_sentences": n_gold,
        "predicted_sentences": n_pred,
    }


def predict_jd_sentences(predictor: Any, texts: list[str]) -> list[list[dict[str, Any]]]:
    """Segment and classify many JDs with one predictor call; returns each JD's predicted sentences."""
    spans = [split_sentences(t) for t in texts]
    flat = [clean_markdown(s.text) for ss in spans for s in ss]  # what the model sees, as in serving
    role_p, flag_p = predictor.predict_proba(flat)
    preds = sentence_predictions(flat, role_p, flag_p, predictor.flag_thresholds)
    out, k = [], 0
    for ss in spans:
        rows = []
        for s in ss:
            rows.append({**preds[k], "text": s.text, "start": s.start, "end": s.end, "heading": s.heading})
            k += 1
        out.append(rows)
    return out


def jd_metrics(jds: list[dict[str, Any]], reports: list[dict[str, Any]]) -> dict[str, Any]:
    y_true = [jd["role_type"] for jd in jds]
    y_pred = [r["role_type"] for r in reports]
    pred_m = [{m["type"] for m in r["mistakes"]} for r in reports]
    return {
        "n": len(jds),
        "role_type_accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "role_type_macro_f1": round(
            float(f1_score(y_true, y_pred, labels=list(ROLE_TYPES), average="macro", zero_division=0)), 4
        ),
        "mistakes": {
            m: _prf([int(m in jd.get("mistakes", [])) for jd in jds], [int(m in pm) for pm in pred_m]) for m in MISTAKES
        },
    }


class _Memo:
    """Scores each distinct text once: JD gold sentences and segmented sentences are mostly the same."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.flag_thresholds = predictor.flag_thresholds
        self.cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            role_p, flag_p = self.predictor.predict_proba(missing)
            self.cache.update(zip(missing, zip(role_p, flag_p, strict=True), strict=True))
        if not texts:
            return self.predictor.predict_proba([])
        return np.stack([self.cache[t][0] for t in texts]), np.stack([self.cache[t][1] for t in texts])


def evaluate(
    predictor: Any,
    sentences: list[dict[str, Any]],
    jds: list[dict[str, Any]],
    report_cfg: ReportConfig,
) -> dict[str, Any]:
    """All metrics for one split: the sentence records, then whole JDs (reports and gold sentences)."""
    result: dict[str, Any] = {"model": getattr(predictor, "name", "?"), "version": getattr(predictor, "version", None)}
    predictor = _Memo(predictor)
    if sentences:
        texts = [s["text"] for s in sentences]
        preds = sentence_predictions(texts, *predictor.predict_proba(texts), predictor.flag_thresholds)
        result["sentences"] = sentence_metrics(sentences, preds)
    if jds:
        jd_sents = predict_jd_sentences(predictor, [jd["text"] for jd in jds])
        reports = [build_report(s, report_cfg, jd_id=jd["id"]) for s, jd in zip(jd_sents, jds, strict=True)]
        result["jds"] = jd_metrics(jds, reports)
        gold = [s for jd in jds for s in jd["sentences"]]
        texts = [s["text"] for s in gold]
        preds = sentence_predictions(texts, *predictor.predict_proba(texts), predictor.flag_thresholds)
        result["jd_sentences"] = sentence_metrics(gold, preds)
        result["segmentation"] = segmentation_metrics(jds)
    return result


def flat_metrics(result: dict[str, Any], prefix: str) -> dict[str, float]:
    """`evaluate` output -> flat numeric names for MLflow (e.g. test_sent_role_macro_f1)."""
    out: dict[str, float] = {}
    if "sentences" in result:
        s = result["sentences"]
        out[f"{prefix}_sent_role_macro_f1"] = s["role_macro_f1"]
        out[f"{prefix}_sent_role_accuracy"] = s["role_accuracy"]
        if s.get("calibration"):
            out[f"{prefix}_sent_role_ece"] = s["calibration"]["role_ece"]
        for role, m in s["roles"].items():
            out[f"{prefix}_sent_role_{role}_f1"] = m["f1"]
        for flag, m in s["flags"].items():
            out[f"{prefix}_sent_flag_{flag}_f1"] = m["f1"]
    if "jds" in result:
        j = result["jds"]
        out[f"{prefix}_jd_role_type_accuracy"] = j["role_type_accuracy"]
        out[f"{prefix}_jd_role_type_macro_f1"] = j["role_type_macro_f1"]
        for mistake, m in j["mistakes"].items():
            out[f"{prefix}_jd_mistake_{mistake}_f1"] = m["f1"]
        out[f"{prefix}_jdsent_role_macro_f1"] = result["jd_sentences"]["role_macro_f1"]
        out[f"{prefix}_jdsent_role_accuracy"] = result["jd_sentences"]["role_accuracy"]
        for flag, m in result["jd_sentences"]["flags"].items():
            out[f"{prefix}_jdsent_flag_{flag}_f1"] = m["f1"]
        if result["jd_sentences"].get("calibration"):
            out[f"{prefix}_jdsent_role_ece"] = result["jd_sentences"]["calibration"]["role_ece"]
        out[f"{prefix}_segmentation_f1"] = result["segmentation"]["f1"]
    return out


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of an `evaluate` result."""
    lines = [f"model: {result['model']}" + (f" (version {result['version']})" if result.get("version") else "")]
    for key, title in (("sentences", "Sentence split"), ("jd_sentences", "Gold sentences of the JDs")):
        if key not in result:
            continue
        s = result[key]
        lines += [
            "",
            f"{title}: {s['n']} sentences, role accuracy {s['role_accuracy']:.3f}, "
            f"role macro-F1 {s['role_macro_f1']:.3f}",
            f"  {'label':<18}{'P':>7}{'R':>7}{'F1':>7}{'n':>7}",
        ]
        for name, m in list(s["roles"].items()) + list(s["flags"].items()):
            lines.append(f"  {name:<18}{m['precision']:>7.3f}{m['recall']:>7.3f}{m['f1']:>7.3f}{m['support']:>7}")
        cal = s.get("calibration")
        if cal:
            lines.append(
                f"  calibration: ECE {cal['role_ece']:.3f}, median top probability {cal['median_confidence_wrong']:.2f} "
                f"when wrong, {cal['median_confidence_right']:.2f} when right"
            )
    if "jds" in result:
        j = result["jds"]
        seg = result["segmentation"]
        lines += [
            "",
            f"Whole JDs: {j['n']}, role_type accuracy {j['role_type_accuracy']:.3f}, "
            f"macro-F1 {j['role_type_macro_f1']:.3f}",
            f"  {'mistake':<22}{'P':>7}{'R':>7}{'F1':>7}{'n':>7}",
        ]
        for name, m in j["mistakes"].items():
            lines.append(f"  {name:<22}{m['precision']:>7.3f}{m['recall']:>7.3f}{m['f1']:>7.3f}{m['support']:>7}")
        lines.append(
            f"  segmentation: P {seg['precision']:.3f} R {seg['recall']:.3f} F1 {seg['f1']:.3f} "
            f"({seg['gold_sentences']} gold sentences)"
        )
    return "\n".join(lines)
