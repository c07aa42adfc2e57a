"""Dynamic batching: sentences from concurrent requests are scored together.

Requests wait at most `max_delay` for company; a batch closes at `max_batch_size` sentences. The model
runs in a worker thread so the event loop keeps accepting requests.

Admission is by expected wait, not by queue length: the batcher measures its throughput (sentences per
second of model time) and refuses a request whose work could not start within `max_wait_s` (QueueFull,
which the service turns into 503 + Retry-After). `max_queue` stays as a hard bound on memory.

Robustness: each item carries the model it was prepared for, and a batch only mixes items of one
model (a reload never mixes models); a failing batch is retried item by item so one bad request fails
alone; an item whose future was cancelled (the client went away, or its request failed) is dropped
before it reaches the model; and the worker task is restarted if it ever ends.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving import metrics

log = logging.getLogger("jdlens.serve")

ScoreFn = Callable[[Any, list[str]], tuple[np.ndarray, np.ndarray]]


class QueueFull(Exception):
    """The request's work could not start within the wait bound; `retry_after_s` says when to come back."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class _Item:
    model: Any
    texts: list[str]
    future: asyncio.Future


class DynamicBatcher:
    def __init__(
        self,
        score_fn: ScoreFn,
        max_batch_size: int = 64,
        max_delay_ms: float = 5.0,
        max_queue: int = 4096,
        max_wait_s: float = 2.0,
    ) -> None:
        self.score_fn = score_fn  # score_fn(model, texts) -> (role probabilities, flag probabilities)
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay_ms / 1000.0
        self.max_queue = max_queue
        self.max_wait_s = max_wait_s
        self.pending = 0
        self.throughput: float | None = None  # sentences per second of model time (moving average)
        self.restarts = 0
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._carry: _Item | None = None  # an item of another model, first in the next batch
        self._task: asyncio.Task | None = None
        self._stopping = False

    # ------------------------------------------------------------------ life cycle

    @property
    def alive(self) -> bool:
        """True unless the worker task ran and ended (a task that never started is started on demand)."""
        return self._task is None or not self._task.done()

    def start(self) -> None:
        """Start the worker, or restart it if it ended (a crash must not leave later requests hanging)."""
        if self._task is not None and not self._task.done():
            return
        if self._task is not None:
            self.restarts += 1
            log.error("the batcher had stopped; restarting it (restart %d)", self.restarts)
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task) -> None:
        if self._stopping or task.cancelled():
            return
        exc = task.exception()
        log.error("the batcher ended unexpectedly: %r", exc)
        if self._carry is not None or not self._queue.empty():
            self.start()  # waiters are queued: serve them now rather than at the next submit

    async def warm_up(self, model: Any, n: int) -> None:
        """Score `n` dummy sentences once: loads lazy parts of the model and gives admission a first
        throughput figure, so the first burst of requests is already judged by expected wait."""
        await self._score(model, ["Build and ship machine learning models in production."] * n)

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    # ------------------------------------------------------------------ admission

    def expected_wait(self) -> float:
        """Seconds until newly queued work would start, from the queued sentences and measured throughput."""
        if not self.throughput or not self.pending:
            return 0.0
        return self.pending / self.throughput

    def admit(self, n: int) -> None:
        if self.pending + n > self.max_queue:
            wait = max(1.0, self.expected_wait())
            raise QueueFull(f"{self.pending} sentences are queued (limit {self.max_queue})", wait)
        wait = self.expected_wait()
        if wait > self.max_wait_s:
            raise QueueFull(f"the expected wait is {wait:.1f} s (limit {self.max_wait_s:g} s)", wait - self.max_wait_s)

    def submit_nowait(self, model: Any, texts: list[str]) -> asyncio.Future:
        """Queue `texts` for `model` (raises QueueFull); the future resolves to (role_p, flag_p).
        Cancel the future to withdraw the work if it has not reached the model yet."""
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        if not texts:
            fut.set_result((np.zeros((0, 5)), np.zeros((0, 3))))
            return fut
        self.admit(len(texts))
        self.start()
        self.pending += len(texts)
        metrics.QUEUE_DEPTH.set(self.pending)
        self._queue.put_nowait(_Item(model, texts, fut))
        return fut

    async def submit(self, model: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        fut = self.submit_nowait(model, texts)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            fut.cancel()
            raise

    @staticmethod
    def retry_after(exc: QueueFull) -> str:
        return str(max(1, math.ceil(exc.retry_after_s)))

    # ------------------------------------------------------------------ the worker

    def _release(self, item: _Item) -> None:
        self.pending -= len(item.texts)
        metrics.QUEUE_DEPTH.set(self.pending)

    async def _next(self, timeout: float | None) -> _Item | None:
        """The next live item (cancelled ones are released and skipped); None when `timeout` passes."""
        while True:
            if self._carry is not None:
                item, self._carry = self._carry, None
            elif timeout is None:
                item = await self._queue.get()
            else:
                if timeout <= 0:
                    return None
                try:
                    # asyncio.TimeoutError is TimeoutError from 3.11; naming it keeps 3.10 correct too.
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                except (asyncio.TimeoutError, TimeoutError):  # noqa: UP041
                    return None
            if item.future.done():
                self._release(item)
                continue
            return item

    async def _score(self, model: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        out = await loop.run_in_executor(None, self.score_fn, model, texts)
        rate = len(texts) / max(time.perf_counter() - t0, 1e-6)
        self.throughput = rate if self.throughput is None else 0.7 * self.throughput + 0.3 * rate
        return out

    async def _run(self) -> None:
        while True:
            first = await self._next(None)
            assert first is not None
            items = [first]
            try:
                size = len(first.texts)
                deadline = time.perf_counter() + self.max_delay
                while size < self.max_batch_size:
                    item = await self._next(deadline - time.perf_counter())
                    if item is None:
                        break
                    if item.model is not first.model:
                        self._carry = item  # never mix models: a reload happened between the two requests
                        break
                    items.append(item)
                    size += len(item.texts)
                await self._process(first.model, items)
            finally:
                for it in items:
                    self._release(it)
                    if not it.future.done():  # the worker is failing or torn down mid-batch: no waiter hangs
                        it.future.set_exception(RuntimeError("the batcher stopped while scoring"))

    async def _process(self, model: Any, items: list[_Item]) -> None:
        texts = [t for it in items for t in it.texts]
        try:
            role_p, flag_p = await self._score(model, texts)
        except Exception as exc:  # noqa: BLE001 - find the culprit below
            if len(items) == 1:
                if not items[0].future.done():
                    items[0].future.set_exception(exc)
                return
            log.warning("a batch of %d requests failed (%r); scoring them one by one", len(items), exc)
            for it in items:  # isolate the bad request: its neighbours still get their answers
                if it.future.done():
                    continue
                try:
                    result = await self._score(model, it.texts)
                except Exception as one_exc:  # noqa: BLE001 - this request's own failure
                    if not it.future.done():
                        it.future.set_exception(one_exc)
                else:
                    if not it.future.done():
                        it.future.set_result(result)
            return
        metrics.BATCH_SIZE.observe(len(texts))
        k = 0
        for it in items:
            n = len(it.texts)
            if not it.future.done():
                it.future.set_result((role_p[k : k + n], flag_p[k : k + n]))
            k += n
