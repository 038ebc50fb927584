"""Dynamic batching: items submitted one at a time by concurrent requests are answered by one
call of a batch function, run off the event loop.

    async with Batcher(classify, max_batch=16, max_wait=0.005, max_queue=64, threads=2) as batcher:
        with batcher.admit():                    # Overloaded when 64 requests are already in
            result = await batcher.submit(item)  # classify([item, ...others that arrived...])

Each of `threads` worker tasks takes the first item waiting, then whatever arrives within
`max_wait` seconds of it, up to `max_batch` items, and hands them to `fn` in its inference
thread: up to `threads` batches are computed at once. A worker waits only while other
admitted requests are on their way (their bodies still being read or decoded, not those in a
batch being computed), so a lone request is not delayed. While `fn` runs, new items queue;
under load the next batch is already waiting, so batches fill without any wait. Nothing here
knows about HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Overloaded(Exception):
    """`max_queue` requests are already admitted (or the batcher is closing); `retry_after` is
    a guess, in whole seconds, of when there will be room."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"busy: retry in {retry_after} s")
        self.retry_after = retry_after


class Batcher(Generic[T, R]):
    """Answer `submit(item)` calls with `fn(items)[i]`, batching the items that arrive together.

    `fn` takes a list of items and returns one result per item, in order; it runs in
    `threads` dedicated threads, one batch in each at a time. When it raises, every item of
    that batch gets the exception. `admit()` bounds how many requests are in at once
    (`max_queue`)."""

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int,
        max_wait: float,
        max_queue: int,
        threads: int = 1,
    ) -> None:
        self.fn, self.max_batch, self.max_wait, self.max_queue = fn, max_batch, max_wait, max_queue
        self.threads = threads
        self.admitted = 0  # requests between admit() and their answer
        self.computing = 0  # items in the batches fn is computing now
        self.batches = 0  # calls of fn so far
        self.items = 0  # items answered so far
        self._batch_seconds = 0.0  # recent time per call of fn, for Retry-After
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]] | None] = asyncio.Queue()
        self._closing = False
        self._threads: ThreadPoolExecutor | None = None
        self._workers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Batcher[T, R]:
        self._threads = ThreadPoolExecutor(self.threads, thread_name_prefix="photoclass-inference")
        self._workers = [
            asyncio.create_task(self._work(), name=f"photoclass-batcher-{i}") for i in range(self.threads)
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Refuse new requests, answer every queued one, then stop the workers."""
        self._closing = True
        for _ in self._workers:  # one stop for each: each answers its batch, then stops
            self._queue.put_nowait(None)
        for worker in self._workers:
            await worker
        if self._threads is not None:
            self._threads.shutdown(wait=True)

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of `max_queue` places for a request's whole life (reading, decoding,
        waiting, inference); raises `Overloaded` when there is none left."""
        if self._closing or self.admitted >= self.max_queue:
            raise Overloaded(self.retry_after())
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    def retry_after(self) -> int:
        """Seconds until the requests in now have been answered, at the recent pace (>= 1)."""
        return max(1, math.ceil(self.admitted / (self.max_batch * self.threads) * self._batch_seconds))

    async def submit(self, item: T) -> R:
        """Queue `item` (call it inside `admit()`) and wait for its result."""
        if self._closing:  # the worker may have stopped: nothing would answer
            raise Overloaded(self.retry_after())
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                try:
                    job = self._queue.get_nowait()  # already waiting: no need to wait
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    # Wait only for requests already in and on their way (being read or
                    # decoded, not computed): with none, waiting would only delay this batch.
                    if left <= 0 or self.admitted - self.computing <= len(batch):
                        break
                    try:
                        job = await asyncio.wait_for(self._queue.get(), left)
                    except TimeoutError:
                        break
                if job is None:  # closing: answer this batch, then stop
                    stopping = True
                    break
                batch.append(job)
            await self._run(batch)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        tick = time.perf_counter()
        self.computing += len(batch)
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._threads, self.fn, [item for item, _ in batch]
            )
            if len(results) != len(batch):
                raise RuntimeError(f"batch function answered {len(results)} items for {len(batch)}")
        except Exception as e:  # the requests report it; the worker carries on with the next batch
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # a request whose client went away is cancelled
                    future.set_result(result)
        finally:
            self.computing -= len(batch)
            seconds = time.perf_counter() - tick
            self._batch_seconds = seconds if not self.batches else 0.8 * self._batch_seconds + 0.2 * seconds
            self.batches += 1
            self.items += len(batch)
