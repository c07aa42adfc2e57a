"""ServeConfig: the service's settings, from `configs/serve.yaml` plus command-line options."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_batch_size: int = 64
    max_batch_delay_ms: float = 5.0
    max_queue_sentences: int = 4096
    max_body_bytes: int = 1_000_000
    max_sentences_per_jd: int = 200
    max_chars_per_sentence: int = 1000
    max_jds_per_batch: int = 32
    max_instances_per_request: int = 512
    quantize: str = ""
    torch_threads: int = 0

    def validate(self) -> None:
        if self.max_batch_size < 1 or self.max_queue_sentences < self.max_batch_size:
            raise ValueError("max_batch_size must be >= 1 and max_queue_sentences >= max_batch_size")
        if self.quantize not in ("", "int8"):
            raise ValueError("quantize must be '' or 'int8'")
