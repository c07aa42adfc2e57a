"""Prometheus metrics of the service (GET /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()
REQUESTS = Counter("jdlens_requests", "HTTP requests", ["route", "method", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "jdlens_request_seconds",
    "Request latency",
    ["route"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "jdlens_batch_sentences",
    "Sentences per model batch",
    registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
QUEUE_DEPTH = Gauge("jdlens_queue_sentences", "Sentences waiting for the model", registry=REGISTRY)
MODEL_INFO = Gauge("jdlens_model_info", "The loaded model (value 1)", ["name", "version"], registry=REGISTRY)
