"""ServeConfig: the service's settings, from `configs/serve.yaml` plus command-line options."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_batch_size: int = 64
    max_batch_delay_ms: float = 5.0
    max_queue_sentences: int = 8192
    max_wait_s: float = 2.0  # admission: refuse (503 + Retry-After) work that could not start within this
    max_body_bytes: int = 1_000_000
    max_text_chars: int = 100_000  # a JD is cut to this many characters before it is split into sentences
    max_sentences_per_jd: int = 200
    max_chars_per_sentence: int = 1000
    max_jds_per_batch: int = 32
    max_instances_per_request: int = 512
    # auto | fp32 | int8 | bf16 | torch: the inference backend (serving/backend_select.py).
    backend_precision: str = "auto"
    quantize: str = ""  # old configs: `quantize: int8` means backend_precision int8 (now ONNX Runtime int8)
    torch_threads: int = 0
    # Host names this server answers to (DNS-rebinding defence); "*" turns the check off (behind a proxy
    # that checks Host itself). The bind address is added when it is a specific one.
    allowed_hosts: list[str] = field(default_factory=lambda: ["127.0.0.1", "localhost", "::1"])
    docs: bool = False  # /docs and /redoc load their scripts from a CDN, so they are off unless asked for
    graceful_shutdown_s: float = 30.0  # SIGTERM: finish in-flight requests for at most this long

    def precision(self) -> str:
        """The backend asked for, with an old config's `quantize: int8` read as `backend_precision: int8`."""
        if self.quantize == "int8" and self.backend_precision == "auto":
            return "int8"
        return self.backend_precision

    def validate(self) -> None:
        """Check each limit and the limits against each other, so that every request the limits allow
        can also be queued (a `/v1/score:batch` at its limits must fit into the queue)."""
        if self.max_batch_size < 1 or self.max_queue_sentences < self.max_batch_size:
            raise ValueError("max_batch_size must be >= 1 and max_queue_sentences >= max_batch_size")
        if self.quantize not in ("", "int8"):
            raise ValueError("quantize must be '' or 'int8'")
        from serving.backend_select import PRECISIONS

        if self.backend_precision not in PRECISIONS:
            raise ValueError(f"backend_precision must be one of {', '.join(PRECISIONS)}")
        for name in (
            "max_body_bytes",
            "max_text_chars",
            "max_sentences_per_jd",
            "max_chars_per_sentence",
            "max_jds_per_batch",
            "max_instances_per_request",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.max_wait_s <= 0 or self.graceful_shutdown_s < 0:
            raise ValueError("max_wait_s must be > 0 and graceful_shutdown_s >= 0")
        largest = max(self.max_jds_per_batch * self.max_sentences_per_jd, self.max_instances_per_request)
        if largest > self.max_queue_sentences:
            raise ValueError(
                f"max_queue_sentences ({self.max_queue_sentences}) is below the largest request the limits allow "
                f"({largest} sentences: max_jds_per_batch x max_sentences_per_jd, or max_instances_per_request); "
                "such a request could never be served"
            )
