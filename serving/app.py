"""The HTTP service: JD reports, a TorchServe-compatible inference API, the web page, feedback and admin.

Every route is decode-request -> predict -> encode-response. Errors are JSON bodies
`{"error": {"code", "message"}}` with a 4xx status for anything the client can fix.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving import metrics
from serving.batcher import DynamicBatcher, QueueFull
from serving.engine import Engine
from serving.feedback import FeedbackStore
from serving.settings import ServeConfig

STATIC = Path(__file__).parent / "static"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class ScoreRequest(BaseModel):
    text: str = Field(..., description="the job description, plain text or markdown")
    id: str | None = None


class ScoreBatchRequest(BaseModel):
    jds: list[ScoreRequest]


class DiffRequest(BaseModel):
    old: str = Field(..., description="the JD before the edit")
    new: str = Field(..., description="the JD after the edit")


class FeedbackRequest(BaseModel):
    text: str
    role: str
    flags: list[str] = []
    model_version: str | None = None
    predicted: dict[str, Any] | None = None


class ReloadRequest(BaseModel):
    model: str = "champion"


@dataclass
class ServiceState:
    engine: Engine
    cfg: ServeConfig
    load_predictor: Callable[[str], Any]
    feedback: FeedbackStore
    api_key: str | None
    batcher: DynamicBatcher = field(init=False)
    reloading: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        # The batcher always calls the *current* engine's model, so a reload swaps models between batches.
        self.batcher = DynamicBatcher(
            lambda texts: self.engine.predictor.predict_proba(texts),
            self.cfg.max_batch_size,
            self.cfg.max_batch_delay_ms,
            self.cfg.max_queue_sentences,
        )
        self._publish_model()

    def _publish_model(self) -> None:
        metrics.MODEL_INFO.clear()
        info = self.engine.model_info
        metrics.MODEL_INFO.labels(str(info["name"]), str(info["version"])).set(1)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def create_app(state: ServiceState) -> FastAPI:
    app = FastAPI(
        title="jdlens",
        version="0.1.0",
        description="Scores job descriptions for AI roles: role type, mistakes and fixes.",
    )
    app.state.service = state

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()]
        return _error(422, "invalid_request", "; ".join(parts) or "invalid request body")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal_error", f"the server failed: {type(exc).__name__}")

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable) -> Response:
        start = time.perf_counter()
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > state.cfg.max_body_bytes:
            response: Response = _error(
                413, "body_too_large", f"request body is {length} bytes; the limit is {state.cfg.max_body_bytes}"
            )
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        metrics.REQUESTS.labels(name, request.method, str(response.status_code)).inc()
        metrics.LATENCY.labels(name).observe(time.perf_counter() - start)
        return response

    async def body_json(request: Request) -> Any:
        raw = await request.body()
        if len(raw) > state.cfg.max_body_bytes:
            raise ApiError(413, "body_too_large", f"request body is over {state.cfg.max_body_bytes} bytes")
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc

    def require_key(request: Request) -> None:
        if not state.api_key:
            raise ApiError(403, "writes_disabled", "no API key is configured on the server (set JDLENS_API_KEY)")
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if not token or not hmac.compare_digest(token.encode(), state.api_key.encode()):
            raise ApiError(
                401,
                "unauthorized",
                "missing or wrong API key: send 'Authorization: Bearer <key>'",
                {"WWW-Authenticate": "Bearer"},
            )

    async def scored(texts: list[str]) -> tuple[Any, Any]:
        try:
            return await state.batcher.submit(texts)
        except QueueFull as exc:
            raise ApiError(
                503, "overloaded", f"the service is busy ({exc}); retry shortly", {"Retry-After": "1"}
            ) from exc

    async def score_one(req: ScoreRequest) -> dict[str, Any]:
        if not req.text.strip():
            raise ApiError(422, "empty_text", "'text' is empty: paste the job description")
        engine = state.engine
        prep = engine.prepare(req.text)
        if not prep.texts:
            raise ApiError(422, "no_sentences", "no sentence with letters or digits was found in 'text'")
        role_p, flag_p = await scored(prep.texts)
        return engine.finish(prep, role_p, flag_p, jd_id=req.id)

    # ------------------------------------------------------------------ pages and health

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/ping")
    async def ping() -> JSONResponse:
        ok = state.engine is not None and state.engine.predictor is not None
        return JSONResponse({"status": "Healthy" if ok else "Unhealthy"}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ JD reports

    @app.post("/v1/score")
    async def score(req: ScoreRequest) -> dict[str, Any]:
        """Score one JD: role type, role shares, mistakes with evidence and fixes, salary bands, interviews."""
        return await score_one(req)

    @app.post("/v1/score:batch")
    async def score_batch(req: ScoreBatchRequest) -> dict[str, Any]:
        if not req.jds:
            raise ApiError(422, "empty_batch", "'jds' is empty")
        if len(req.jds) > state.cfg.max_jds_per_batch:
            raise ApiError(
                413, "too_many_jds", f"{len(req.jds)} JDs; at most {state.cfg.max_jds_per_batch} per request"
            )
        return {"reports": list(await asyncio.gather(*(score_one(j) for j in req.jds)))}

    @app.post("/v1/diff")
    async def diff(req: DiffRequest) -> dict[str, Any]:
        """Rescore an edited JD: the new report and what changed (score delta, mistakes fixed and introduced,
        sentences whose role changed)."""
        from jdlens.report_diff import diff_reports

        old, new = await asyncio.gather(score_one(ScoreRequest(text=req.old)), score_one(ScoreRequest(text=req.new)))
        return {"diff": diff_reports(old, new), "report": new}

    # ------------------------------------------------------------------ TorchServe / KServe-style inference

    def model_description() -> dict[str, Any]:
        info = state.engine.model_info
        meta = getattr(state.engine.predictor, "meta", {})
        return {
            "modelName": "jdlens",
            "modelVersion": info["version"],
            "loaded": info["name"],
            "aliases": info.get("aliases", []),
            "metrics": meta.get("metrics", {}),
            "flag_thresholds": state.engine.predictor.flag_thresholds,
            "batchSize": state.cfg.max_batch_size,
            "maxBatchDelay": state.cfg.max_batch_delay_ms,
            "maxQueueSentences": state.cfg.max_queue_sentences,
        }

    def check_model(model: str, version: str | None) -> None:
        if model != "jdlens":
            raise ApiError(404, "model_not_found", f"model {model!r} is not served; this server serves 'jdlens'")
        loaded = state.engine.model_info["version"]
        if version is not None and str(version) != str(loaded):
            raise ApiError(
                404,
                "version_not_found",
                f"version {version!r} is not loaded (loaded: {loaded!r}); POST /admin/reload to switch",
            )

    @app.get("/models")
    async def list_models() -> dict[str, Any]:
        return {"models": [{"modelName": "jdlens", "modelUrl": "/models/jdlens"}]}

    @app.get("/models/{model}")
    async def describe_model(model: str) -> list[dict[str, Any]]:
        check_model(model, None)
        return [model_description()]

    async def decode_instances(request: Request) -> tuple[list[str], bool]:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("text/plain"):
            raw = await request.body()
            if len(raw) > state.cfg.max_body_bytes:
                raise ApiError(413, "body_too_large", f"request body is over {state.cfg.max_body_bytes} bytes")
            try:
                lines = [x.strip() for x in raw.decode("utf-8").splitlines()]
            except UnicodeDecodeError as exc:
                raise ApiError(400, "invalid_text", "the body is not UTF-8 text") from exc
            return [x for x in lines if x], False
        body = await body_json(request)
        kserve = isinstance(body, dict) and "instances" in body
        items = body["instances"] if kserve else body
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list):
            raise ApiError(
                422,
                "invalid_instances",
                'send a JSON list of sentences, {"instances": [...]}, or text/plain one per line',
            )
        texts = []
        for i, it in enumerate(items):
            if isinstance(it, dict):
                it = it.get("text", it.get("data"))
            if not isinstance(it, str) or not it.strip():
                raise ApiError(422, "invalid_instance", f"instance {i} must be a non-empty string (or {{'text': ...}})")
            texts.append(it)
        return texts, kserve

    async def predictions(request: Request, model: str, version: str | None) -> Any:
        check_model(model, version)
        texts, kserve = await decode_instances(request)
        if not texts:
            raise ApiError(422, "no_instances", "no sentences in the request")
        if len(texts) > state.cfg.max_instances_per_request:
            raise ApiError(
                413,
                "too_many_instances",
                f"{len(texts)} sentences; at most {state.cfg.max_instances_per_request} per request",
            )
        engine = state.engine
        clipped, cut = engine.clip(texts)
        role_p, flag_p = await scored(clipped)
        from jdlens.model import sentence_predictions

        preds = sentence_predictions(texts, role_p, flag_p, engine.predictor.flag_thresholds)
        for i in cut:
            preds[i]["truncated_to_chars"] = state.cfg.max_chars_per_sentence
        return {"predictions": preds} if kserve else preds

    @app.post("/predictions/{model}")
    async def predict_latest(model: str, request: Request) -> Any:
        return await predictions(request, model, None)

    @app.post("/predictions/{model}/{version}")
    async def predict_version(model: str, version: str, request: Request) -> Any:
        return await predictions(request, model, version)

    # ------------------------------------------------------------------ writes (API key)

    @app.post("/v1/feedback", status_code=201)
    async def feedback(req: FeedbackRequest, request: Request) -> dict[str, Any]:
        require_key(request)
        try:
            fid, dup = state.feedback.add(req.text, req.role, req.flags, req.model_version, req.predicted)
        except ValueError as exc:
            raise ApiError(422, "invalid_labels", str(exc)) from exc
        return {"status": "stored", "id": fid, "duplicate": dup}

    @app.post("/admin/reload")
    async def reload(request: Request) -> dict[str, Any]:
        require_key(request)
        raw = await request.body()
        try:
            req = ReloadRequest(**(json.loads(raw) if raw.strip() else {}))
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise ApiError(422, "invalid_request", f'body must be {{"model": "champion"}} or empty: {exc}') from exc
        async with state.reloading:
            old = state.engine.model_info
            try:
                predictor = await asyncio.get_running_loop().run_in_executor(None, state.load_predictor, req.model)
            except Exception as exc:  # noqa: BLE001 - the old model keeps serving
                raise ApiError(
                    409,
                    "reload_failed",
                    f"could not load {req.model!r}: {exc}; still serving {old['name']} version {old['version']}",
                ) from exc
            state.engine = Engine(predictor, state.engine.report_cfg, state.engine.limits)
            state._publish_model()
        return {"status": "reloaded", "previous": old, "model": state.engine.model_info}

    return app
