"""Build and run the service: `jdlens serve` and `jdlens up`."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from jdlens.paths import state_dir
from jdlens.report import load_report_config
from serving.engine import Engine, Limits
from serving.feedback import FeedbackStore
from serving.settings import ServeConfig


def _key(env: str, file_env: str, default_file: str) -> tuple[str, str]:
    """A key and where it came from: $ENV, the file named by $FILE_ENV, or a key generated once into
    .jdlens/DEFAULT_FILE. The file is created with mode 600 in the same call that creates it (O_EXCL), so
    it is never readable by others, not even for a moment, and two servers starting at once agree."""
    if os.environ.get(env):
        return os.environ[env], f"${env}"
    path = Path(os.environ.get(file_env, state_dir() / default_file))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
                f.flush()
                os.fsync(f.fileno())
    return path.read_text().strip(), str(path)


def api_key() -> tuple[str, str]:
    """The reviewer key (POST /v1/feedback): $JDLENS_API_KEY, $JDLENS_API_KEY_FILE or .jdlens/api_key."""
    return _key("JDLENS_API_KEY", "JDLENS_API_KEY_FILE", "api_key")


def admin_key() -> tuple[str, str]:
    """The admin key (POST /admin/reload): $JDLENS_ADMIN_KEY, $JDLENS_ADMIN_KEY_FILE or .jdlens/admin_key.
    Separate from the reviewer key, so a reviewer's key (kept by the web page) cannot switch models."""
    return _key("JDLENS_ADMIN_KEY", "JDLENS_ADMIN_KEY_FILE", "admin_key")


def vllm_predictor(spec: str, url: str) -> Any:
    """A predictor that sends sentences to vLLM; labels, thresholds and version come from the model's
    jdlens.json (an exported folder or a registry spec of the model vLLM is serving)."""
    import httpx

    from serving.vllm_backend import VLLMBackend, VLLMError

    meta: dict[str, Any] = {}
    version = None
    folder = Path(spec)
    if not folder.is_dir():
        from jdlens import tracking

        if tracking.parse_model_spec(spec) is None:
            raise ValueError(f"--model {spec!r}: with the vllm backend give the exported folder or a registry spec")
        client = tracking.setup()
        mv = tracking.resolve_version(client, spec)
        folder, version = tracking.download_version(client, mv), str(mv.version)
    if (folder / "jdlens.json").exists():
        meta = json.loads((folder / "jdlens.json").read_text())
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--vllm-url {url!r}: give the vLLM server's base URL, e.g. http://127.0.0.1:8000")
    try:
        backend = VLLMBackend(url, meta=meta)
    except httpx.InvalidURL as exc:
        raise ValueError(f"--vllm-url {url!r} is not a valid URL: {exc}") from exc
    if not backend.health():
        raise ConnectionError(f"vLLM at {url} does not answer /health; start it first (serving/start_vllm_cpu.sh)")
    try:
        backend.model  # noqa: B018 - discover the served model now, so a wrong server fails at startup
    except VLLMError as exc:
        raise ConnectionError(str(exc)) from exc
    backend.name = f"{meta.get('name', 'jdlens')} (vllm)"
    backend.version = version or meta.get("version")
    return backend


def make_loader(cfg: ServeConfig, backend: str, vllm_url: str | None) -> Any:
    def load(spec: str) -> Any:
        if backend == "vllm":
            return vllm_predictor(spec, vllm_url or "")
        from serving.backend_select import load_for_serving

        return load_for_serving(spec, cfg.precision())

    return load


def build_state(model: str, cfg: ServeConfig, backend: str = "local", vllm_url: str | None = None) -> Any:
    from serving.app import ServiceState

    if cfg.torch_threads:
        import torch

        torch.set_num_threads(cfg.torch_threads)
    cfg.validate()
    load = make_loader(cfg, backend, vllm_url)
    limits = Limits(cfg.max_sentences_per_jd, cfg.max_chars_per_sentence, cfg.max_text_chars)
    engine = Engine(load(model), load_report_config(), limits)
    return ServiceState(
        engine=engine,
        cfg=cfg,
        load_predictor=load,
        feedback=FeedbackStore(state_dir() / "feedback.sqlite"),
        api_key=api_key()[0],
        admin_key=admin_key()[0],
    )


def serve(model: str, cfg: ServeConfig, backend: str = "local", vllm_url: str | None = None) -> None:
    import uvicorn

    from serving.app import create_app

    state = build_state(model, cfg, backend, vllm_url)
    info = state.engine.model_info
    print(f"jdlens: serving {info['name']} version {info['version']} ({backend} backend)", flush=True)
    if backend != "vllm":
        from serving.backend_select import describe_choice

        print(f"jdlens: {describe_choice(state.engine.predictor)}", flush=True)
    print(f"jdlens: reviewer key (feedback) from {api_key()[1]}; admin key (reload) from {admin_key()[1]}", flush=True)
    docs = "API docs at /docs" if cfg.docs else "OpenAPI schema at /openapi.json"
    print(f"jdlens: open http://{cfg.host}:{cfg.port}/  ({docs})", flush=True)
    # SIGTERM: uvicorn stops accepting, lets in-flight requests finish (at most graceful_shutdown_s), then
    # runs the app's shutdown (the batcher stops after its last batch).
    uvicorn.run(
        create_app(state),
        host=cfg.host,
        port=cfg.port,
        log_level="warning",
        timeout_graceful_shutdown=cfg.graceful_shutdown_s or None,
    )
