"""The two baselines a model must beat: hand-written keyword rules and TF-IDF + logistic regression.

`baseline:keywords` is what a joblint-style linter does: lexicons and regular expressions.
`baseline:tfidf` is fitted on the train split each time it is loaded (a few seconds), so nothing is
pickled to disk and nothing user-supplied is ever unpickled.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from jdlens.labels import FLAGS, ROLES
from jdlens.model import sentence_predictions

_ROLE_LEXICON: dict[str, str] = {
    "application": r"\b(llms?|gpt|openai|anthropic|claude|gemini|prompt\w*|rag|retrieval|embeddings?|vector (db|database|store|search)"
    r"|pinecone|weaviate|qdrant|milvus|chroma|pgvector|langchain|langgraph|llamaindex|llama ?index|haystack|dspy|agents?"
    r"|agentic|tool[- ]?(use|calling)|function calling|copilot|chatbot|guardrails|ragas|promptfoo|langsmith|rerank\w*"
    r"|semantic search|generative ai features?)\b",
    "ml": r"\b(pytorch|tensorflow|jax|keras|fine-?tun\w*|lora|qlora|train(ing)? (pipelines?|loops?|models?)|mlops|mlflow"
    r"|kubeflow|sagemaker|vertex|feature stores?|feast|model serving|torchserve|triton|tgi|vllm|kserve|distributed training"
    r"|fsdp|deepspeed|gpu (clusters?|infrastructure)|drift|retrain\w*|a/b tests?|model versioning|recommend\w*|ranking"
    r"|forecasting|xgboost|lightgbm|spark|airflow|weights & biases|w&b|onnx|quantiz\w*|quantis\w*)\b",
    "research": r"\b(research|novel|papers?|publications?|publish\w*|neurips|icml|iclr|acl|cvpr|emnlp|ablations?"
    r"|architectures? from|interpretability|scaling laws?|theory|theoretical|cuda|kernels?|state[- ]of[- ]the[- ]art "
    r"research|pre-?training runs?|mathematical)\b",
    "general": r"\b(python|software engineering|code review|system design|communication|collaborat\w*|mentor\w*"
    r"|ownership|degree|ph\.?d|doctorate|bachelor|master'?s|years|experience|sql|rest|apis?|docker|cloud|aws|gcp|azure|team|agile"
    r"|on-?site|hybrid|remote|tested|testing)\b",
}
_OTHER = re.compile(
    r"\b(benefits?|perks?|salary|compensation|equity|401k|pension|holiday|leave|insurance|equal opportunity"
    r"|apply|application deadline|we are an?|our mission|about us|about the (team|role|company)|founded|headquartered"
    r"|we're an?|diversity|accommodation|visa sponsorship|health|dental|stipend)\b",
    re.I,
)
_PHD = re.compile(r"\b(ph\.?\s?d|doctorate|doctoral)\b", re.I)
_PHD_SOFT = re.compile(
    r"prefer|plus|bonus|nice|or equivalent|welcome|optional|not required|\b(ms|msc|master'?s)\b|or ph", re.I
)
_BUZZ = re.compile(
    r"\b(ai/ml|ai & ml|ai and ml|cutting[- ]edge|state[- ]of[- ]the[- ]art|latest (advancements|trends)|emerging"
    r"|ai (technologies|solutions|tools)|ml (technologies|frameworks)|machine learning (technologies|frameworks)"
    r"|deep learning frameworks|ai[- ]driven|ai[- ]powered|big data|genai|generative ai|next[- ]gen)\b",
    re.I,
)
_SPECIFIC = re.compile(_ROLE_LEXICON["application"] + "|" + _ROLE_LEXICON["ml"], re.I)
_YEARS = re.compile(r"\b\d+\s*\+?\s*(years|yrs)\b|\bsenior[- ]level\b|\bextensive experience\b|\bseasoned\b", re.I)
_ACCOMPLISH = re.compile(r"\b(shipped|led|launched|taken|owned|scaled|built)\b.*\d", re.I)


class KeywordBaseline:
    name = "baseline:keywords"
    version = None
    flag_thresholds = dict.fromkeys(FLAGS, 0.5)

    def __init__(self) -> None:
        self._roles = {r: re.compile(p, re.I) for r, p in _ROLE_LEXICON.items()}

    def _one(self, text: str) -> tuple[list[float], list[float]]:
        hits = {r: len(p.findall(text)) for r, p in self._roles.items()}
        scores = [0.0] * len(ROLES)
        if _OTHER.search(text) and not any(hits[r] for r in ("application", "ml", "research")):
            scores[ROLES.index("other")] = 1.0
        elif len(text.split()) <= 4 and not any(hits.values()) and not text.rstrip().endswith("."):
            scores[ROLES.index("other")] = 1.0  # headings and titles
        else:
            weighted = {r: hits[r] * (1.5 if r == "research" else 1.0) for r in ("application", "ml", "research")}
            best = max(weighted, key=weighted.__getitem__)
            role = best if weighted[best] > 0 else "general"
            scores[ROLES.index(role)] = 1.0
        is_req = scores[ROLES.index("other")] == 0.0
        flags = [
            float(is_req and bool(_PHD.search(text)) and not _PHD_SOFT.search(text)),
            float(is_req and bool(_BUZZ.search(text)) and not _SPECIFIC.search(text)),
            float(is_req and bool(_YEARS.search(text)) and not _ACCOMPLISH.search(text)),
        ]
        return scores, flags

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = [self._one(t) for t in texts]
        return np.array([r for r, _ in rows]).reshape(-1, len(ROLES)), np.array([f for _, f in rows]).reshape(
            -1, len(FLAGS)
        )

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        return sentence_predictions(texts, *self.predict_proba(texts), self.flag_thresholds)


class TfidfBaseline:
    """TF-IDF (word 1-2 grams + char 2-5 grams) with one logistic regression for roles and one per flag."""

    name = "baseline:tfidf"
    version = None
    flag_thresholds = dict.fromkeys(FLAGS, 0.5)

    def __init__(self, records: list[dict[str, Any]], seed: int = 0) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_union

        texts = [r["text"] for r in records]
        self.vectorizer = make_union(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
        )
        x = self.vectorizer.fit_transform(texts)
        self.role_clf = LogisticRegression(max_iter=2000, C=10.0, class_weight="balanced", random_state=seed)
        self.role_clf.fit(x, [ROLES.index(r["role"]) for r in records])
        self.flag_clfs = []
        for f in FLAGS:
            y = [int(f in r.get("flags", [])) for r in records]
            clf = LogisticRegression(max_iter=2000, C=10.0, class_weight="balanced", random_state=seed)
            self.flag_clfs.append(clf.fit(x, y))

    @classmethod
    def from_train_split(cls, root: Path) -> TfidfBaseline:
        from jdlens.datastore import DataStore

        return cls(DataStore(root).train_records())

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        x = self.vectorizer.transform(texts)
        role_p = np.zeros((len(texts), len(ROLES)))
        role_p[:, self.role_clf.classes_] = self.role_clf.predict_proba(x)
        flag_p = np.stack([c.predict_proba(x)[:, 1] for c in self.flag_clfs], axis=1)
        return role_p, flag_p

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        return sentence_predictions(texts, *self.predict_proba(texts), self.flag_thresholds)
