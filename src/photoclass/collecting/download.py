"""Fetch photos: concurrent, paced per host, retried, validated, written atomically.

A photo is written to a hidden temporary name in its target folder and renamed into place
only after its whole JPEG stream decoded, so a killed run never leaves a partial `.jpg`.
Every job ends in a `Result` with a status and, if it failed, a short reason: one bad photo
never stops the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from PIL import Image

from photoclass.collecting.dedup import phash
from photoclass.collecting.flickr import USER_AGENT
from photoclass.collecting.retry import Backoff, parse_retry_after, retryable_status
from photoclass.config import CollectConfig

MAX_BYTES = 64 * 2**20  # no photo at a Flickr display size comes near this


@dataclass(frozen=True)
class Job:
    id: str
    url: str
    dest: Path


@dataclass(frozen=True)
class Checked:
    """What validation learned about a good photo."""

    width: int
    height: int
    sha256: str
    phash: str


@dataclass(frozen=True)
class Result:
    id: str
    status: str  # "ok" | "rejected" (bad content) | "failed" (network, after retries)
    error: str | None = None
    checked: Checked | None = None
    attempts: int = 0
    retried: tuple[str, ...] = ()  # why earlier attempts failed


# ----------------------------------------------------------------------------------------------
# Validation


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, or None if `data` is not a JPEG.

    Read by hand so that a decompression bomb is refused before any decoder sees it.
    """
    if data[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _SOF and at + 9 <= len(data):
            height, width = (
                int.from_bytes(data[at + 5 : at + 7], "big"),
                int.from_bytes(data[at + 7 : at + 9], "big"),
            )
            return width, height
        if marker in (0xD9, 0xDA):  # end of image or start of scan, and still no frame header
            return None
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return None


def check_image(body: bytes, content_type: str, min_side: int, max_pixels: int) -> Checked | str:
    """A downloaded body as a `Checked` photo, or the reason it is not one.

    The whole entropy-coded stream is decoded, so truncation and broken markers are caught;
    damage that still decodes, such as flipped bits inside the scan, is not. `draft` has
    libjpeg decode to grey at 1/8 scale, which skips colour conversion and most of the inverse
    DCT but none of the stream: about a third of the cost of a full decode, and the
    perceptual hash needs no more.
    """
    if not body:
        return "empty"
    if "html" in content_type.lower() or body.lstrip()[:1] == b"<":
        return "html"  # an error page served with status 200
    size = jpeg_size(body)
    if size is None:
        return "not_jpeg"  # Flickr's "photo unavailable" placeholder is a PNG
    width, height = size
    if width * height > max_pixels:
        return "too_large"
    if min(width, height) < min_side:
        return "too_small"
    try:
        with Image.open(io.BytesIO(body)) as image:
            image.draft("L", (max(1, width // 8), max(1, height // 8)))
            image.load()
            perceptual = phash(image)
    except (OSError, ValueError, SyntaxError) as e:
        return "truncated" if "truncated" in str(e) else "corrupt"
    return Checked(width, height, hashlib.sha256(body).hexdigest(), perceptual)


def write_atomic(dest: Path, body: bytes) -> None:
    """Write `dest` so that it either does not exist or is complete.

    No fsync: a process kill cannot leave a partial file this way; only a power cut could,
    and syncing every photo would cost more than downloading the odd one again.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    # One name per process is enough (a process fetches a photo once at a time), and it costs
    # half of what `mkstemp`'s search for a free random name does.
    temp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        temp.write_bytes(body)
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _keep(body: bytes, content_type: str, dest: Path, config: CollectConfig) -> Checked | str:
    checked = check_image(body, content_type, config.min_side, config.max_pixels)
    if isinstance(checked, Checked):
        write_atomic(dest, body)
    return checked


def _check_saved(dest: Path, config: CollectConfig) -> Checked | None:
    """A photo saved by an interrupted run, if it is still whole."""
    checked = check_image(dest.read_bytes(), "image/jpeg", config.min_side, config.max_pixels)
    return checked if isinstance(checked, Checked) else None


# ----------------------------------------------------------------------------------------------
# Fetching


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
class _Body:
    data: bytes
    content_type: str


@dataclass(frozen=True)
class _Failure:
    reason: str
    retry: bool
    retry_after: float | None = None


async def _get(client: httpx.AsyncClient, url: str) -> _Body | _Failure:
    try:
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                retry = retryable_status(response.status_code)
                retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
                return _Failure(f"http_{response.status_code}", retry, retry_after)
            if int(response.headers.get("Content-Length") or 0) > MAX_BYTES:
                return _Failure("too_large", retry=False)
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BYTES:
                    return _Failure("too_large", retry=False)
            return _Body(b"".join(chunks), response.headers.get("Content-Type", ""))
    except httpx.TimeoutException:
        return _Failure("timeout", retry=True)
    except httpx.RemoteProtocolError as e:
        # h11 says "peer closed connection without sending complete message body".
        cut = "complete message body" in str(e)
        return _Failure("truncated" if cut else "connection", retry=True)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        return _Failure("bad_url", retry=False)
    except httpx.TransportError:
        return _Failure("connection", retry=True)


async def _fetch(
    client: httpx.AsyncClient, pacer: HostPacer, job: Job, config: CollectConfig, backoff: Backoff
) -> Result:
    if job.dest.exists():  # saved by a run that was killed before recording it
        checked = await asyncio.to_thread(_check_saved, job.dest, config)
        if checked is not None:
            return Result(job.id, "ok", checked=checked)
    host = urlsplit(job.url).netloc
    retried: list[str] = []
    for attempt in range(backoff.retries + 1):
        await pacer.wait(host)
        got = await _get(client, job.url)
        if isinstance(got, _Body):
            kept = await asyncio.to_thread(_keep, got.data, got.content_type, job.dest, config)
            if isinstance(kept, Checked):
                return Result(job.id, "ok", checked=kept, attempts=attempt + 1, retried=tuple(retried))
            return Result(job.id, "rejected", kept, attempts=attempt + 1, retried=tuple(retried))
        if not got.retry:
            return Result(job.id, "failed", got.reason, attempts=attempt + 1, retried=tuple(retried))
        retried.append(got.reason)
        if got.reason == "http_429":
            pacer.hold(host, got.retry_after or backoff.base)
        if attempt < backoff.retries:
            await asyncio.sleep(backoff.delay(attempt, got.retry_after))
    return Result(job.id, "failed", retried[-1], attempts=len(retried), retried=tuple(retried[:-1]))


async def _download(
    jobs: Sequence[Job], config: CollectConfig, on_result: Callable[[Result], None] | None
) -> list[Result]:
    backoff = Backoff(config.retries, config.backoff)
    pacer = HostPacer(config.rate)
    queue = deque(jobs)
    results: list[Result] = []
    tls = httpx.create_ssl_context()  # loading the CA bundle takes ~20 ms: once, not per worker

    async def worker() -> None:
        # One client, so one keep-alive connection, per worker: httpcore's shared pool
        # rescans all its connections for every request, which at 32 connections cost more
        # CPU than decoding the photos.
        async with httpx.AsyncClient(
            timeout=config.timeout,
            verify=tls,
            limits=httpx.Limits(max_connections=1),
            follow_redirects=True,  # Flickr redirects photos it no longer has to a placeholder
            headers={"User-Agent": USER_AGENT},
        ) as client:
            while queue:
                result = await _fetch(client, pacer, queue.popleft(), config, backoff)
                results.append(result)
                if on_result is not None:
                    on_result(result)

    await asyncio.gather(*(worker() for _ in range(min(config.concurrency, len(jobs)))))
    return results


def download(
    jobs: Sequence[Job], config: CollectConfig, on_result: Callable[[Result], None] | None = None
) -> list[Result]:
    """Fetch, validate and save every job, `config.concurrency` at a time.

    Returns one `Result` per job, in completion order; `on_result` sees each as it completes.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_download(jobs, config, on_result))
    # Called from inside an event loop (a notebook): run ours in a thread of its own.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, _download(jobs, config, on_result)).result()
