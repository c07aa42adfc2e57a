"""A jdlens predictor that scores sentences on a vLLM server instead of in-process.

vLLM is the GPU serving engine: on a GPU box it batches far better than the in-process model, and
`serving/start_vllm_cpu.sh` runs the same server on CPU for tests. The exported jdlens folder is a
plain HF `*ForSequenceClassification` model, so vLLM serves it as a pooling/classify model.

Why raw logits: jdlens' 8 outputs are 5 softmax roles + 3 sigmoid flags, but vLLM's classify endpoint
applies ONE activation over all 8 (by default a softmax across roles and flags together). So every
request sends `"use_activation": false`, which makes vLLM return the raw logits (still in the field
named `probs`), and `split_logits` applies the right activation to each part, exactly as
`JDLensClassifier` does.

Wire format (vLLM 0.32, checked against a running server):
    POST /classify {"model": M, "input": [str, ...], "use_activation": false[, "truncate_prompt_tokens": N]}
    -> 200 {"data": [{"index": i, "label": ..., "probs": [8 floats], "num_classes": 8}, ...], ...}
    errors -> 4xx/5xx {"error": {"message": ..., "type": ..., "code": ...}}
    GET /v1/models -> {"data": [{"id": M, ...}]};  GET /health -> 200 with an empty body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from jdlens.labels import FLAGS, ID2LABEL
from jdlens.markdown_text import clean_markdown
from jdlens.model import sentence_predictions, split_logits

NUM_LABELS = len(ID2LABEL)


class VLLMError(RuntimeError):
    """The vLLM server could not be reached or answered with something jdlens cannot use.

    Carries the URL and HTTP status (None when no response came back), so a serving error says which
    server and what went wrong instead of a bare httpx traceback.
    """

    def __init__(self, message: str, url: str, status: int | None = None) -> None:
        self.url = url
        self.status = status
        where = f"{url} (HTTP {status})" if status is not None else url
        super().__init__(f"vLLM at {where}: {message}")


def _error_message(response: httpx.Response) -> str:
    """vLLM puts errors in {"error": {"message"}}; FastAPI's own errors use {"detail"}."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if body.get("detail"):
            return str(body["detail"])
    return str(body)[:500]


class VLLMBackend:
    """Scores sentences with a model served by vLLM; same outputs as `JDLensClassifier`.

    `logits`/`predict_proba` mirror `JDLensClassifier`, so the engine can use either. Texts are sent
    in chunks of `batch_size` (vLLM batches on its side too; chunking only bounds request size) and
    results come back in input order, whatever order the server lists them in.

    `max_length`, when set, is sent as `truncate_prompt_tokens`: pass the model's `max_length` (from
    jdlens.json, 128 by default) to get the same truncation as `JDLensClassifier`. Without it vLLM
    rejects inputs longer than its `--max-model-len` (512) with HTTP 400 instead of truncating.

    `meta` is the model's jdlens.json (optional): it supplies `flag_thresholds`, `name`, `version` and,
    unless `max_length` is given, `max_length`, so this backend is a drop-in predictor for the engine.

    `transport` (and `async_transport`) let tests swap in `httpx.MockTransport`; an async-capable
    `transport` such as MockTransport serves both clients.
    """

    def __init__(
        self,
        url: str,
        model: str | None = None,
        timeout: float = 30.0,
        batch_size: int = 256,
        *,
        max_length: int | None = None,
        meta: dict[str, Any] | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.url = url.rstrip("/")
        self._model = model
        self.timeout = timeout
        self.batch_size = batch_size
        self.meta: dict[str, Any] = dict(meta or {})
        if max_length is None and "max_length" in self.meta:
            max_length = int(self.meta["max_length"])
        self.max_length = max_length
        self.flag_thresholds: dict[str, float] = {f: 0.5 for f in FLAGS} | self.meta.get("flag_thresholds", {})
        self.name: str = self.meta.get("name", "vllm")
        self.version: str | None = self.meta.get("version")
        if async_transport is None and isinstance(transport, httpx.AsyncBaseTransport):
            async_transport = transport
        self._client = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)
        self._async_transport = async_transport
        # An AsyncClient belongs to the event loop it first ran in, so it is cached per loop.
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None

    # ---- plumbing -------------------------------------------------------------------------------

    def _full(self, path: str) -> str:
        return f"{self.url}{path}"

    def _unreachable(self, e: httpx.HTTPError, path: str) -> VLLMError:
        """No HTTP answer at all (refused, timed out, reset): almost always the server is not up."""
        return VLLMError(f"request failed ({type(e).__name__}: {e}); is the server running?", self._full(path))

    def _check(self, response: httpx.Response, path: str) -> Any:
        if response.status_code != 200:
            raise VLLMError(_error_message(response), self._full(path), response.status_code)
        try:
            return response.json()
        except ValueError as e:
            raise VLLMError(f"answer is not JSON: {response.text[:200]!r}", self._full(path), 200) from e

    def _get(self, path: str) -> Any:
        try:
            response = self._client.get(path)
        except httpx.HTTPError as e:
            raise self._unreachable(e, path) from e
        return self._check(response, path)

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        try:
            response = self._client.post(path, json=payload)
        except httpx.HTTPError as e:
            raise self._unreachable(e, path) from e
        return self._check(response, path)

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop or self._aclient.is_closed:
            self._aclient = httpx.AsyncClient(base_url=self.url, timeout=self.timeout, transport=self._async_transport)
            self._aclient_loop = loop
        return self._aclient

    async def _apost(self, path: str, payload: dict[str, Any]) -> Any:
        try:
            response = await self._async_client().post(path, json=payload)
        except httpx.HTTPError as e:
            raise self._unreachable(e, path) from e
        return self._check(response, path)

    # ---- model discovery ------------------------------------------------------------------------

    @staticmethod
    def _pick_model(body: Any, url: str) -> str:
        data = body.get("data") if isinstance(body, dict) else None
        ids = [m.get("id") for m in data or [] if isinstance(m, dict) and m.get("id")]
        if len(ids) != 1:
            raise VLLMError(f"cannot pick the model: /v1/models lists {ids or 'none'}; pass model=...", url, 200)
        return str(ids[0])

    @property
    def model(self) -> str:
        """The served model name: given, or the one model `GET /v1/models` lists (vLLM names a model by
        the --model path unless --served-model-name is set, so it is rarely known in advance)."""
        if self._model is None:
            self._model = self._pick_model(self._get("/v1/models"), self._full("/v1/models"))
        return self._model

    async def _amodel(self) -> str:
        if self._model is None:
            try:
                response = await self._async_client().get("/v1/models")
            except httpx.HTTPError as e:
                raise self._unreachable(e, "/v1/models") from e
            self._model = self._pick_model(self._check(response, "/v1/models"), self._full("/v1/models"))
        return self._model

    # ---- scoring --------------------------------------------------------------------------------

    def _payload(self, model: str, texts: Sequence[str]) -> dict[str, Any]:
        # The model was trained on sentences without markdown emphasis/link syntax, as the local one sees them.
        payload: dict[str, Any] = {"model": model, "input": [clean_markdown(t) for t in texts], "use_activation": False}
        if self.max_length is not None:
            payload["truncate_prompt_tokens"] = self.max_length
        return payload

    def _parse(self, body: Any, n: int) -> np.ndarray:
        """Response -> [n, 8] float32 logits in request order; anything unexpected is a VLLMError,
        because a silently misaligned row would attach one sentence's scores to another."""
        url = self._full("/classify")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != n:
            got = len(data) if isinstance(data, list) else type(data).__name__
            raise VLLMError(f"expected {n} results in 'data', got {got}", url, 200)
        out = np.full((n, NUM_LABELS), np.nan, dtype=np.float32)
        seen = set()
        for pos, item in enumerate(data):
            index = item.get("index", pos) if isinstance(item, dict) else None
            scores = item.get("probs") if isinstance(item, dict) else None
            if not isinstance(index, int) or not 0 <= index < n or index in seen:
                raise VLLMError(f"bad or repeated result index {index!r}", url, 200)
            if not isinstance(scores, list) or len(scores) != NUM_LABELS:
                size = len(scores) if isinstance(scores, list) else scores
                raise VLLMError(
                    f"result {index} has {size} scores, expected {NUM_LABELS} (is this a jdlens model?)", url, 200
                )
            seen.add(index)
            out[index] = scores
        return out

    def _batches(self, texts: Sequence[str]) -> list[list[str]]:
        return [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]

    def logits(self, texts: list[str]) -> np.ndarray:
        """Raw 8-way logits [n, 8] in input order (blocking; one request per `batch_size` texts)."""
        if not texts:
            return np.zeros((0, NUM_LABELS), dtype=np.float32)
        model = self.model
        parts = [self._parse(self._post("/classify", self._payload(model, b)), len(b)) for b in self._batches(texts)]
        return np.concatenate(parts, axis=0)

    async def alogits(self, texts: list[str]) -> np.ndarray:
        """Async `logits`: batches go out concurrently, so vLLM can schedule them together."""
        if not texts:
            return np.zeros((0, NUM_LABELS), dtype=np.float32)
        model = await self._amodel()
        batches = self._batches(texts)
        bodies = await asyncio.gather(*(self._apost("/classify", self._payload(model, b)) for b in batches))
        return np.concatenate([self._parse(body, len(b)) for body, b in zip(bodies, batches, strict=True)], axis=0)

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(role_probs [n, 5], flag_probs [n, 3]): softmax over roles, sigmoid over flags."""
        return split_logits(self.logits(texts))

    async def apredict_proba(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return split_logits(await self.alogits(texts))

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """Per-sentence dicts, same format as `JDLensClassifier.predict`."""
        role_p, flag_p = self.predict_proba(texts)
        return sentence_predictions(texts, role_p, flag_p, self.flag_thresholds)

    def health(self) -> bool:
        """True when `GET /health` answers 200; never raises, so it can back a readiness probe."""
        try:
            return self._client.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    # ---- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
        self._client.close()

    def __enter__(self) -> VLLMBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VLLMBackend(url={self.url!r}, model={self._model!r}, batch_size={self.batch_size})"
