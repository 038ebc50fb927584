"""Fetch photos: concurrent, paced per host, retried, and given up on when a host keeps refusing.

The downloader only fetches. What a body must be to be kept is the `validate` function it is
handed (`collecting.validate.check_image` for photos), and where a kept body goes is the
`sink` (`collecting.split.IncomingFolder`), the way img2dataset's `Downloader` is handed its
reader, resizer and writer. Every job ends in a `Result` with a status and, if it was not
kept, a short reason: one bad photo never stops the others.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from photoclass.collecting.fetch import Body, Fetcher
from photoclass.collecting.flickr import USER_AGENT
from photoclass.collecting.retry import Backoff
from photoclass.config import CollectConfig

# A body, with its Content-Type, is either kept (the validator returns what it learned) or not
# (the validator returns the reason, a short string).
Validator = Callable[[bytes, str], Any]


class Sink(Protocol):
    """Where kept bodies go, by job id."""

    def saved(self, job_id: str) -> bytes | None:
        """The body an earlier (perhaps killed) run saved for this job, if any."""

    def save(self, job_id: str, body: bytes) -> None:
        """Keep this body: whole or absent, if the process is killed at any point."""

    def flush(self) -> None:
        """Make what `save` kept durable; `download` calls it once, before it returns."""


@dataclass(frozen=True)
class Job:
    id: str
    url: str


@dataclass(frozen=True)
class Result:
    id: str
    # "ok" (kept), "rejected" (bad content, or gone from the host: final), "failed" (the
    # network gave up after retries), "stopped" (not tried to the end: its host was given up
    # on, see `HostWatch`)
    status: str
    error: str | None = None
    checked: Any = None  # what the validator returned for a kept body
    attempts: int = 0
    retried: tuple[str, ...] = ()  # why earlier attempts failed


class HostWatch:
    """Counts, per host, the requests refused in a row (429, 5xx, timeouts, broken
    connections); a host that refuses `limit` in a row is given up on until the next run.

    Without it a host that refuses everything costs every photo its full round of retries,
    and the collector, finding no photo kept, pulls more search results, forever."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._refused: dict[str, Counter[str]] = {}

    def answered(self, host: str) -> None:
        self._refused.pop(host, None)

    def refused(self, host: str, reason: str) -> None:
        self._refused.setdefault(host, Counter())[reason] += 1

    def given_up(self, host: str) -> bool:
        return sum(self._refused.get(host, Counter()).values()) >= self.limit

    def down(self) -> dict[str, Counter[str]]:
        """The hosts given up on, with how their refusals in a row were answered."""
        return {host: reasons for host, reasons in self._refused.items() if self.given_up(host)}


class HostPacer:
    """Spaces request starts per host at `rate` a second; a 429 holds the whole host back."""

    def __init__(self, rate: float) -> None:
        self._interval = 1 / rate
        self._next: dict[str, float] = {}

    async def wait(self, host: str) -> None:
        now = asyncio.get_running_loop().time()
        start = max(now, self._next.get(host, now))
        self._next[host] = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)

    def hold(self, host: str, seconds: float) -> None:
        now = asyncio.get_running_loop().time()
        self._next[host] = max(self._next.get(host, now), now + seconds)


@dataclass(frozen=True)
class _Stage:
    """What one `download` call does with what it fetches, and how politely."""

    validate: Validator
    sink: Sink
    backoff: Backoff
    pacer: HostPacer
    hosts: HostWatch


def keep(validate: Validator, sink: Sink, job_id: str, body: bytes, content_type: str) -> Any:
    """Validate a fetched body, and save it if it passes; returns what the validator returned.
    The work a download must do besides fetching (bench/collect.py times it alone)."""
    checked = validate(body, content_type)
    if not isinstance(checked, str):
        sink.save(job_id, body)
    return checked


async def _fetch(fetcher: Fetcher, cores: ThreadPoolExecutor, stage: _Stage, job: Job) -> Result:
    loop = asyncio.get_running_loop()
    # Asked on the event loop, not in a thread: there is usually nothing, and the sink says so
    # in microseconds (`IncomingFolder` from its listing), where a trip through the thread pool
    # would queue every request behind the photos being decoded there.
    saved = stage.sink.saved(job.id)
    if saved is not None:  # saved by a run killed before recording it
        checked = await loop.run_in_executor(cores, stage.validate, saved, "image/jpeg")
        if not isinstance(checked, str):
            return Result(job.id, "ok", checked=checked)
    host = urlsplit(job.url).netloc
    retried: list[str] = []
    for attempt in range(stage.backoff.retries + 1):
        if stage.hosts.given_up(host):
            return Result(job.id, "stopped", "host_refusing", attempts=attempt, retried=tuple(retried))
        await stage.pacer.wait(host)
        got = await fetcher.get(job.url)
        done = {"attempts": attempt + 1, "retried": tuple(retried)}
        if isinstance(got, Body):
            stage.hosts.answered(host)
            kept = await loop.run_in_executor(
                cores, keep, stage.validate, stage.sink, job.id, got.data, got.content_type
            )
            if isinstance(kept, str):
                return Result(job.id, "rejected", kept, **done)
            return Result(job.id, "ok", checked=kept, **done)
        if not got.retry:
            if got.reason != "bad_url":  # a request that reached the host, and was answered
                stage.hosts.answered(host)
            return Result(job.id, "rejected" if got.final else "failed", got.reason, **done)
        stage.hosts.refused(host, got.reason)
        retried.append(got.reason)
        if got.reason == "http_429":
            stage.pacer.hold(host, got.retry_after or stage.backoff.base)
        if attempt < stage.backoff.retries:
            await asyncio.sleep(stage.backoff.delay(attempt, got.retry_after))
    return Result(job.id, "failed", retried[-1], attempts=len(retried), retried=tuple(retried[:-1]))


async def _download(
    jobs: Sequence[Job], config: CollectConfig, stage: _Stage, on_result: Callable[[Result], None] | None
) -> list[Result]:
    queue = deque(jobs)
    results: list[Result] = []
    # Loading the CA bundle takes ~25 ms: once per call, not per worker, and only for https.
    tls = functools.cache(lambda: httpx.create_ssl_context())
    workers = min(config.concurrency, len(jobs))
    # HTTP runs in the event loop (collecting.fetch says why); validating and saving, which
    # release the GIL, in a thread per core: more at once only cost more CPU per photo (on 2
    # cores, 32 threads validating the same photos spent 1.36 CPU ms each, 2 threads 1.16).
    cores = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="photoclass-validate")

    async def worker() -> None:
        fetcher = Fetcher(timeout=config.timeout, tls=tls, user_agent=USER_AGENT)
        try:
            while queue:
                result = await _fetch(fetcher, cores, stage, queue.popleft())
                results.append(result)
                if on_result is not None:
                    on_result(result)
        finally:  # also when cancelled (Ctrl-C)
            fetcher.close()

    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        cores.shutdown(wait=False, cancel_futures=True)
    await asyncio.to_thread(stage.sink.flush)
    return results


def download(
    jobs: Sequence[Job],
    config: CollectConfig,
    *,
    validate: Validator,
    sink: Sink,
    hosts: HostWatch | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Fetch every job, `config.concurrency` at a time, at most `config.rate` requests a
    second per host, retrying what may succeed later (`config.retries`, `config.backoff`).

    Each body goes through `validate(body, content_type)`; what passes goes to
    `sink.save(job.id, body)`, and `sink.flush()` is called once at the end, so what the
    results call "ok" is on the disk. A job the sink already holds a valid body for is not
    fetched.
    `hosts` counts refusals across calls (one per run; a new one, limited to
    `config.host_refusals`, by default). Returns one `Result` per job, in completion order;
    `on_result` sees each as it completes.
    """
    stage = _Stage(
        validate,
        sink,
        Backoff(config.retries, config.backoff),
        HostPacer(config.rate),
        hosts or HostWatch(config.host_refusals),
    )
    work = _download(jobs, config, stage, on_result)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    # Called from inside an event loop (a notebook): run ours in a thread of its own.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, work).result()
