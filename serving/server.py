"""Build and run the service: `jdlens serve` and `jdlens up`."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from jdlens.paths import state_dir
from jdlens.report import load_report_config
from serving.engine import Engine, Limits
from serving.feedback import FeedbackStore
from serving.settings import ServeConfig


def api_key() -> tuple[str, str]:
    """The admin/feedback API key and where it came from: $JDLENS_API_KEY, $JDLENS_API_KEY_FILE, or a key
    generated once into .jdlens/api_key (readable by this user only)."""
    if os.environ.get("JDLENS_API_KEY"):
        return os.environ["JDLENS_API_KEY"], "$JDLENS_API_KEY"
    path = Path(os.environ.get("JDLENS_API_KEY_FILE", state_dir() / "api_key"))
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return path.read_text().strip(), str(path)


def make_loader(cfg: ServeConfig, backend: str, vllm_url: str | None) -> Any:
    def load(spec: str) -> Any:
        if backend == "vllm":
            from serving.vllm_predictor import VLLMPredictor

            return VLLMPredictor(vllm_url or "", spec)
        from jdlens.predictors import load_predictor

        return load_predictor(spec, quantize=cfg.quantize or None)

    return load


def build_state(model: str, cfg: ServeConfig, backend: str = "local", vllm_url: str | None = None) -> Any:
    from serving.app import ServiceState

    if cfg.torch_threads:
        import torch

        torch.set_num_threads(cfg.torch_threads)
    load = make_loader(cfg, backend, vllm_url)
    engine = Engine(load(model), load_report_config(), Limits(cfg.max_sentences_per_jd, cfg.max_chars_per_sentence))
    key, _ = api_key()
    return ServiceState(
        engine=engine,
        cfg=cfg,
        load_predictor=load,
        feedback=FeedbackStore(state_dir() / "feedback.sqlite"),
        api_key=key,
    )


def serve(model: str, cfg: ServeConfig, backend: str = "local", vllm_url: str | None = None) -> None:
    import uvicorn

    from serving.app import create_app

    state = build_state(model, cfg, backend, vllm_url)
    _, key_source = api_key()
    info = state.engine.model_info
    print(f"jdlens: serving {info['name']} version {info['version']} ({backend} backend)", flush=True)
    print(f"jdlens: admin/feedback API key from {key_source}", flush=True)
    print(f"jdlens: open http://{cfg.host}:{cfg.port}/  (API docs at /docs)", flush=True)
    uvicorn.run(create_app(state), host=cfg.host, port=cfg.port, log_level="warning")
