"""Dynamic batching: sentences from concurrent requests are scored together.

Requests wait at most `max_delay` for company; a batch closes at `max_batch_size` sentences. The model
runs in a worker thread so the event loop keeps accepting requests. The queue is bounded in sentences:
a full queue raises QueueFull, which the service turns into 503 + Retry-After.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from serving import metrics


class QueueFull(Exception):
    pass


@dataclass
class _Item:
    texts: list[str]
    future: asyncio.Future


class DynamicBatcher:
    def __init__(
        self,
        score_fn: Callable[[list[str]], tuple[np.ndarray, np.ndarray]],
        max_batch_size: int = 64,
        max_delay_ms: float = 5.0,
        max_queue: int = 4096,
    ) -> None:
        self.score_fn = score_fn
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay_ms / 1000.0
        self.max_queue = max_queue
        self.pending = 0
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def submit(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if not texts:
            return np.zeros((0, 5)), np.zeros((0, 3))
        if self.pending + len(texts) > self.max_queue:
            raise QueueFull(f"{self.pending} sentences are queued (limit {self.max_queue})")
        self.start()
        self.pending += len(texts)
        metrics.QUEUE_DEPTH.set(self.pending)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Item(texts, fut))
        return await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self._queue.get()]
            size = len(items[0].texts)
            deadline = time.perf_counter() + self.max_delay
            while size < self.max_batch_size:
                timeout = deadline - time.perf_counter()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
                items.append(item)
                size += len(item.texts)
            texts = [t for it in items for t in it.texts]
            try:
                role_p, flag_p = await loop.run_in_executor(None, self.score_fn, texts)
            except Exception as exc:  # noqa: BLE001 - every waiter gets the failure
                for it in items:
                    if not it.future.done():
                        it.future.set_exception(exc)
            else:
                metrics.BATCH_SIZE.observe(len(texts))
                k = 0
                for it in items:
                    n = len(it.texts)
                    if not it.future.done():
                        it.future.set_result((role_p[k : k + n], flag_p[k : k + n]))
                    k += n
            finally:
                self.pending -= size
                metrics.QUEUE_DEPTH.set(self.pending)
