"""The HTTP service: JD reports, a TorchServe-compatible inference API, the web page, feedback and admin.

Every route is decode-request -> predict -> encode-response. Errors are JSON bodies
`{"error": {"code", "message"}}` with a 4xx status for anything the client can fix.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from jdlens.labels import FLAGS, ROLES
from serving import metrics
from serving.batcher import DynamicBatcher, QueueFull
from serving.engine import Engine, Prepared
from serving.feedback import FeedbackBusyError, FeedbackStore
from serving.guard import Guard
from serving.settings import ServeConfig

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("jdlens.serve")
# CPU work of a request (segmentation, report building) runs here, off the event loop, so /ping and
# other requests keep being answered; two threads so it cannot crowd out the model's threads.
CPU_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="jdlens-cpu")


def _valid_unicode(text: str) -> str:
    """Refuse strings that cannot be encoded (lone surrogates such as "\\ud800" from a JSON escape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"text is not valid Unicode (a lone surrogate at index {exc.start})") from exc
    return text


# Patterns use Python's `re` (see model_config) so the server checks exactly what the schema says.
_PY_RE = ConfigDict(regex_engine="python-re")
JDText = Annotated[
    str,
    # `\S`, not a word-character class: JSON Schema patterns are ECMA regexes, where `\w` is ASCII-only,
    # so a Unicode-aware class would make the schema and the server disagree on text such as "Ø§".
    Field(min_length=1, pattern=r"\S", description="the job description, plain text or markdown"),
    AfterValidator(_valid_unicode),
]
Sentence = Annotated[
    str, Field(min_length=1, pattern=r"\S", description="one sentence"), AfterValidator(_valid_unicode)
]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the JSON error answers a route may give."""
    return {c: {"model": ErrorBody, "description": _ERROR_TEXT[c]} for c in codes}


_ERROR_TEXT = {
    400: "malformed body (not JSON / not UTF-8 / nested too deeply) or a Host that is not served",
    401: "missing or wrong key",
    403: "writes disabled (no key configured) or a cross-origin request",
    404: "no such model or version",
    409: "the model could not be loaded; the old one keeps serving",
    413: "body, JD count or sentence count over the limits",
    422: "the body does not match the schema",
    503: "busy: retry after the number of seconds in Retry-After",
}
_COMMON = (400, 403, 413, 422, 503)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class ScoreRequest(BaseModel):
    model_config = _PY_RE
    text: JDText
    id: str | None = None


class ScoreBatchRequest(BaseModel):
    model_config = _PY_RE
    jds: list[ScoreRequest] = Field(..., min_length=1)


def _unique(flags: list[str]) -> list[str]:
    if len(set(flags)) != len(flags):
        raise ValueError("'flags' repeats a flag")
    return flags


class DiffRequest(BaseModel):
    model_config = _PY_RE
    old: JDText = Field(..., description="the JD before the edit")
    new: JDText = Field(..., description="the JD after the edit")


class FeedbackRequest(BaseModel):
    """A reviewer's correction of one sentence; the schema states every rule the server checks."""

    model_config = ConfigDict(
        regex_engine="python-re",
        # Flags go on requirements and duties only, never on role "other" (LABELS.md).
        json_schema_extra={
            "if": {"properties": {"role": {"const": "other"}}, "required": ["role"]},
            "then": {"properties": {"flags": {"maxItems": 0}}},
        },
    )
    text: Annotated[str, Field(min_length=1, max_length=2000, pattern=r"\S"), AfterValidator(_valid_unicode)]
    role: Literal[ROLES]  # type: ignore[valid-type]
    flags: Annotated[
        list[Literal[FLAGS]],  # type: ignore[valid-type]
        Field(max_length=len(FLAGS), json_schema_extra={"uniqueItems": True}),
        AfterValidator(_unique),
    ] = []
    model_version: str | None = None
    predicted: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _no_flags_on_other(self) -> FeedbackRequest:
        if self.role == "other" and self.flags:
            raise ValueError("flags go on requirements and duties only, not on role 'other'")
        return self


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field("champion", min_length=1, description="'champion', a registry spec or an exported folder")


class TextInstance(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")
    text: Sentence


class DataInstance(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")
    data: Sentence


Instance = Sentence | TextInstance | DataInstance


class KServeRequest(BaseModel):
    model_config = ConfigDict(regex_engine="python-re")
    instances: list[Instance] = Field(..., min_length=1)


# The one model name served; the schema names it so that schema-driven clients can call the routes.
ModelName = Annotated[str, PathParam(json_schema_extra={"enum": ["jdlens"]}, description="always 'jdlens'")]

# What POST /predictions/{model} accepts as JSON; the same adapter validates requests and writes the schema.
PREDICTIONS_BODY: TypeAdapter[Any] = TypeAdapter(
    KServeRequest | Annotated[list[Instance], Field(min_length=1)] | Sentence
)


@dataclass
class ServiceState:
    engine: Engine
    cfg: ServeConfig
    load_predictor: Callable[[str], Any]
    feedback: FeedbackStore
    api_key: str | None  # the reviewer key: POST /v1/feedback
    admin_key: str | None = None  # the admin key: POST /admin/reload (None: reloads are disabled)
    batcher: DynamicBatcher = field(init=False)
    reloading: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        # Each request passes the predictor it was prepared with; the batcher never mixes two in a batch,
        # so a reload mid-batch cannot pair one model's probabilities with another's thresholds.
        self.batcher = DynamicBatcher(
            lambda predictor, texts: predictor.predict_proba(texts),
            self.cfg.max_batch_size,
            self.cfg.max_batch_delay_ms,
            self.cfg.max_queue_sentences,
            self.cfg.max_wait_s,
        )
        self._publish_model()

    def _publish_model(self) -> None:
        metrics.MODEL_INFO.clear()
        info = self.engine.model_info
        metrics.MODEL_INFO.labels(str(info["name"]), str(info["version"])).set(1)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _page_csp() -> str:
    """Content-Security-Policy of the web page: its own inline script and style by hash, nothing else
    (no third-party script can run next to the reviewer key it keeps in localStorage)."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(x.encode()).digest()).decode()}'" for x in found)

    return (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
# Swagger UI and ReDoc (only when `docs: true`) load from jsDelivr.
DOCS_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; style-src 'unsafe-inline' "
    "https://cdn.jsdelivr.net https://fonts.googleapis.com; font-src https://fonts.gstatic.com; img-src 'self' "
    "data: https://fastapi.tiangolo.com https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; "
    "frame-ancestors 'none'"
)


def create_app(state: ServiceState) -> FastAPI:
    cfg = state.cfg

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.batcher.start()
        try:
            await state.batcher.warm_up(state.engine.predictor, cfg.max_batch_size)
        except Exception as exc:  # noqa: BLE001 - a model that cannot score shows up in /ping and requests
            log.warning("warm-up failed: %r", exc)
        yield
        await state.batcher.stop()  # after uvicorn's graceful drain: in-flight requests have their answers

    app = FastAPI(
        title="jdlens",
        version="0.1.0",
        description="Scores job descriptions for AI roles: role type, mistakes and fixes.",
        docs_url="/docs" if cfg.docs else None,
        redoc_url="/redoc" if cfg.docs else None,
        lifespan=lifespan,
    )
    app.state.service = state
    # Counts the bytes of every body as it is read (chunked uploads too) and stops at the limit.
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=cfg.max_body_bytes)
    hosts = list(cfg.allowed_hosts)
    if cfg.host not in ("0.0.0.0", "::", "") and cfg.host not in hosts:
        hosts.append(cfg.host)
    app.add_middleware(
        Guard,
        allowed_hosts=hosts,
        max_body_bytes=cfg.max_body_bytes,
        default_csp=API_CSP,
        csp={"/": _page_csp(), "/docs": DOCS_CSP, "/redoc": DOCS_CSP},
    )

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(422, "invalid_json", "the body is not valid JSON")
        return _error(422, "invalid_request", _describe(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 413:
            message = f"request body is over {cfg.max_body_bytes} bytes"
        elif exc.status_code == 400 and "parsing the body" in message:
            # FastAPI's answer to a body it could not decode: not UTF-8, or JSON nested too deeply.
            code, message = "invalid_json", "the body is not valid JSON (UTF-8, nested at most a few hundred levels)"
        return _error(exc.status_code, code, message, dict(exc.headers or {}))  # keeps 405's Allow header

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal_error", f"the server failed: {type(exc).__name__}", {"Connection": "close"})

    async def body_json(request: Request) -> Any:
        raw = await request.body()  # RequestBodyLimitMiddleware stops this at max_body_bytes
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise ApiError(400, "invalid_json", f"the body is not valid JSON: {detail}") from exc

    def validated(schema: Any, data: Any) -> Any:
        adapter = schema if isinstance(schema, TypeAdapter) else TypeAdapter(schema)
        try:
            return adapter.validate_python(data)
        except ValidationError as exc:
            raise ApiError(422, "invalid_request", _describe(exc.errors(), skip=0)) from exc

    def require_key(request: Request, key: str | None, role: str) -> None:
        if not key:
            var = "JDLENS_API_KEY" if role == "reviewer" else "JDLENS_ADMIN_KEY"
            raise ApiError(403, "writes_disabled", f"no {role} key is configured on the server (set {var})")
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if not token or not hmac.compare_digest(token.encode(), key.encode()):
            raise ApiError(
                401,
                "unauthorized",
                f"missing or wrong {role} key: send 'Authorization: Bearer <key>'",
                {"WWW-Authenticate": "Bearer"},
            )

    async def off_loop(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(CPU_POOL, fn, *args)

    async def json_answer(build: Callable[[], Any]) -> Response:
        """Build and encode a (large) answer off the event loop: FastAPI would encode it on the loop."""

        def encode() -> bytes:
            return json.dumps(build(), ensure_ascii=False, allow_nan=False).encode()

        return Response(await off_loop(encode), media_type="application/json")

    async def scored(request: Request, predictor: Any, texts: list[str]) -> tuple[Any, Any]:
        """Score through the batcher; the queued work is withdrawn if the client disconnects first."""
        try:
            fut = state.batcher.submit_nowait(predictor, texts)
        except QueueFull as exc:
            raise ApiError(
                503,
                "overloaded",
                f"the service is busy ({exc}); retry shortly",
                {"Retry-After": DynamicBatcher.retry_after(exc)},
            ) from exc
        gone = asyncio.ensure_future(_client_gone(request))
        try:
            done, _ = await asyncio.wait({fut, gone}, return_when=asyncio.FIRST_COMPLETED)
            if fut not in done:
                fut.cancel()
                raise ApiError(499, "client_closed", "the client closed the connection")
            return fut.result()
        finally:
            gone.cancel()
            if not fut.done():
                fut.cancel()  # this request failed or was cancelled: its sentences leave the queue

    async def prepare(text: str, engine: Engine) -> Prepared:
        prep = await off_loop(engine.prepare, text)
        if not prep.texts:
            raise ApiError(422, "no_sentences", "no sentence with letters or digits was found in 'text'")
        return prep

    # ------------------------------------------------------------------ pages and health

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/ping", responses={503: {"description": "the model or the batcher is not working"}})
    async def ping() -> JSONResponse:
        """Health: 200 when a model is loaded and the batcher runs; 503 otherwise (the batcher is restarted)."""
        ok = state.engine is not None and state.engine.predictor is not None
        if not state.batcher.alive:
            ok = False
            state.batcher.start()  # restart it; the next ping says whether that worked
        return JSONResponse({"status": "Healthy" if ok else "Unhealthy"}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ JD reports

    @app.post("/v1/score", responses=_errors(*_COMMON), response_model=dict[str, Any])
    async def score(req: ScoreRequest, request: Request) -> Response:
        """Score one JD: role type, role shares, mistakes with evidence and fixes, salary bands, interviews."""
        engine = state.engine  # one model for the whole request, even if a reload happens meanwhile
        prep = await prepare(req.text, engine)
        role_p, flag_p = await scored(request, engine.predictor, prep.texts)
        return await json_answer(lambda: engine.finish(prep, role_p, flag_p, jd_id=req.id))

    @app.post("/v1/score:batch", responses=_errors(*_COMMON), response_model=dict[str, Any])
    async def score_batch(req: ScoreBatchRequest, request: Request) -> Response:
        """Score up to max_jds_per_batch JDs; admitted, scored and refused as one unit."""
        if len(req.jds) > cfg.max_jds_per_batch:
            raise ApiError(413, "too_many_jds", f"{len(req.jds)} JDs; at most {cfg.max_jds_per_batch} per request")
        engine = state.engine
        preps = [await prepare(j.text, engine) for j in req.jds]
        texts = [t for p in preps for t in p.texts]
        role_p, flag_p = await scored(request, engine.predictor, texts)

        def build() -> dict[str, Any]:
            reports, k = [], 0
            for prep, jd in zip(preps, req.jds, strict=True):
                n = len(prep.texts)
                reports.append(engine.finish(prep, role_p[k : k + n], flag_p[k : k + n], jd_id=jd.id))
                k += n
            return {"reports": reports}

        return await json_answer(build)

    @app.post("/v1/diff", responses=_errors(*_COMMON), response_model=dict[str, Any])
    async def diff(req: DiffRequest, request: Request) -> Response:
        """Rescore an edited JD: the new report and what changed (score delta, mistakes fixed and introduced,
        sentences whose role changed)."""
        from jdlens.report_diff import diff_reports

        engine = state.engine  # both versions scored by the same model
        old_prep, new_prep = await prepare(req.old, engine), await prepare(req.new, engine)
        role_p, flag_p = await scored(request, engine.predictor, old_prep.texts + new_prep.texts)
        n = len(old_prep.texts)

        def build() -> dict[str, Any]:
            old = engine.finish(old_prep, role_p[:n], flag_p[:n])
            new = engine.finish(new_prep, role_p[n:], flag_p[n:])
            return {"diff": diff_reports(old, new), "report": new}

        return await json_answer(build)

    # ------------------------------------------------------------------ TorchServe / KServe-style inference

    def model_description() -> dict[str, Any]:
        engine = state.engine
        info = engine.model_info
        meta = getattr(engine.predictor, "meta", {})
        return {
            "modelName": "jdlens",
            "modelVersion": info["version"],
            "loaded": info["name"],
            "aliases": info.get("aliases", []),
            "metrics": meta.get("metrics", {}),
            "flag_thresholds": engine.predictor.flag_thresholds,
            "backend": getattr(engine.predictor, "backend_choice", None)
            or {"backend": getattr(engine.predictor, "backend", None)},
            "batchSize": cfg.max_batch_size,
            "maxBatchDelay": cfg.max_batch_delay_ms,
            "maxQueueSentences": cfg.max_queue_sentences,
            "maxWaitSeconds": cfg.max_wait_s,
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

    @app.get("/models/{model}", responses=_errors(404))
    async def describe_model(model: ModelName) -> list[dict[str, Any]]:
        check_model(model, None)
        return [model_description()]

    async def decode_instances(request: Request) -> tuple[list[str], bool]:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("text/plain"):
            raw = await request.body()
            try:
                lines = [x.strip() for x in raw.decode("utf-8").splitlines()]
            except UnicodeDecodeError as exc:
                raise ApiError(400, "invalid_text", "the body is not UTF-8 text") from exc
            return [x for x in lines if x], False
        body = validated(PREDICTIONS_BODY, await body_json(request))
        kserve = isinstance(body, KServeRequest)
        items = body.instances if kserve else body if isinstance(body, list) else [body]
        texts = [it if isinstance(it, str) else it.text if isinstance(it, TextInstance) else it.data for it in items]
        return texts, kserve

    async def predictions(request: Request, model: str, version: str | None) -> Any:
        check_model(model, version)
        texts, kserve = await decode_instances(request)
        if not texts:
            raise ApiError(422, "no_instances", "no sentences in the request")
        if len(texts) > cfg.max_instances_per_request:
            raise ApiError(
                413,
                "too_many_instances",
                f"{len(texts)} sentences; at most {cfg.max_instances_per_request} per request",
            )
        engine = state.engine
        clipped, cut = engine.clip(texts)
        role_p, flag_p = await scored(request, engine.predictor, clipped)
        from jdlens.model import sentence_predictions

        preds = sentence_predictions(texts, role_p, flag_p, engine.predictor.flag_thresholds)
        for i in cut:
            preds[i]["truncated_to_chars"] = cfg.max_chars_per_sentence
        return {"predictions": preds} if kserve else preds

    body_doc = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _with_max_items(_inline(PREDICTIONS_BODY.json_schema()), cfg.max_instances_per_request)
                },
                "text/plain": {
                    "schema": {"type": "string", "minLength": 1, "pattern": r"\S", "description": "one sentence a line"}
                },
            },
        }
    }

    @app.post("/predictions/{model}", openapi_extra=body_doc, responses=_errors(*_COMMON, 404))
    async def predict_latest(model: ModelName, request: Request) -> Any:
        """Sentence predictions, TorchServe/KServe style: a JSON list, {"instances": [...]} or text/plain lines."""
        return await predictions(request, model, None)

    @app.post("/predictions/{model}/{version}", openapi_extra=body_doc, responses=_errors(*_COMMON, 404))
    async def predict_version(model: ModelName, version: str, request: Request) -> Any:
        """As /predictions/{model}, but only when `version` is the loaded version."""
        return await predictions(request, model, version)

    # ------------------------------------------------------------------ writes (keys; checked before the body is read)

    def json_body_doc(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
        return {
            "requestBody": {
                "required": required,
                "content": {"application/json": {"schema": _inline(model.model_json_schema())}},
            }
        }

    @app.post(
        "/v1/feedback",
        status_code=201,
        openapi_extra=json_body_doc(FeedbackRequest),
        responses=_errors(*_COMMON, 401),
    )
    async def feedback(request: Request) -> dict[str, Any]:
        """Store a reviewer's correction of one sentence (reviewer key)."""
        require_key(request, state.api_key, "reviewer")
        req = validated(FeedbackRequest, await body_json(request))
        try:
            # The SQLite write (and its fsync) runs in a worker thread: a slow disk or a reader holding a
            # lock never stalls the event loop, and a busy store answers 503 instead of waiting.
            fid, dup = await state.feedback.add_async(
                req.text, req.role, list(req.flags), req.model_version, req.predicted
            )
        except FeedbackBusyError as exc:
            raise ApiError(503, "busy", str(exc), {"Retry-After": "1"}) from exc
        except ValueError as exc:
            raise ApiError(422, "invalid_labels", str(exc)) from exc
        return {"status": "stored", "id": fid, "duplicate": dup}

    @app.post(
        "/admin/reload",
        openapi_extra=json_body_doc(ReloadRequest, required=False),
        responses=_errors(*_COMMON, 401, 409),
    )
    async def reload(request: Request) -> dict[str, Any]:
        """Switch models without dropping in-flight requests (admin key)."""
        require_key(request, state.admin_key, "admin")
        raw = await request.body()
        req = validated(ReloadRequest, await body_json(request) if raw.strip() else {})
        async with state.reloading:
            old = state.engine.model_info
            try:
                predictor = await asyncio.get_running_loop().run_in_executor(None, state.load_predictor, req.model)
            except Exception as exc:  # noqa: BLE001 - the old model keeps serving
                raise ApiError(
                    409,
                    "reload_failed",
                    f"could not load {req.model!r}: {type(exc).__name__}; still serving {old['name']} "
                    f"version {old['version']}",
                ) from exc
            state.engine = Engine(predictor, state.engine.report_cfg, state.engine.limits)
            state._publish_model()
        return {"status": "reloaded", "previous": old, "model": state.engine.model_info}

    def openapi() -> dict[str, Any]:
        """FastAPI's schema plus the configured limits, so that a schema-valid request is an accepted one."""
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            batch = schema["components"]["schemas"]["ScoreBatchRequest"]["properties"]["jds"]
            batch["maxItems"] = cfg.max_jds_per_batch
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _with_max_items(schema: Any, limit: int) -> Any:
    """Set maxItems on every array in a request schema (the instances of one request)."""
    if isinstance(schema, dict):
        if schema.get("type") == "array":
            schema["maxItems"] = limit
        return {k: _with_max_items(v, limit) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_with_max_items(x, limit) for x in schema]
    return schema


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body has been read, so the next message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _describe(errors: Any, skip: int = 1) -> str:
    parts = [f"{'.'.join(str(x) for x in e['loc'][skip:]) or 'body'}: {e['msg']}" for e in errors]
    return "; ".join(parts) or "invalid request body"


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its $defs inlined, for use inside an OpenAPI operation."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.split("/")[-1]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(x) for x in node]
        return node

    return walk(schema)
