"""One download worker's HTTP: a GET on asyncio streams, on one keep-alive connection per
host, redirects followed, through the proxy the environment names (`HTTPS_PROXY`,
`HTTP_PROXY`, `NO_PROXY`, read as curl and httpx read them).

Photos are fetched with it rather than with httpx (which the API client uses) or with
`http.client` in a thread per worker: over the same photos and 32 connections, httpx's
AsyncClient spent 2.3-2.6 ms of CPU per photo, `http.client` threads ~0.25 ms plus the
hand-offs of 32 threads taking turns at the GIL (a sixth of the download's CPU in futex waits
and task switches), and this ~0.1 ms in the event loop's own thread (bench/README.md), while
validating a photo costs ~1.2 ms. HTTP/1.1 is all a photo host needs: a status line, headers,
and a body delimited by Content-Length, by chunks, or by the connection's end.

Every answer ends as a `Body` (status 200, read whole) or a `Failure` with a short reason;
nothing raises but cancellation. A connection is either left ready for the next request or
closed.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urljoin, urlsplit, urlunsplit

from photoclass.collecting.retry import parse_retry_after, retryable_status

MAX_BYTES = 64 * 2**20  # no photo at a Flickr display size comes near this
# Flickr answers a photo it no longer has (deleted, or made private) with a redirect to an
# image whose name says so, e.g. https://s.yimg.com/pw/images/en-us/photo_unavailable.png.
PLACEHOLDER = "photo_unavailable"
GONE = {404: "http_404", 410: "http_410"}  # the host says the photo will not come back
REDIRECTS = 5  # followed per photo, at most
_REDIRECT = {301, 302, 303, 307, 308}
_CHUNK = 1 << 16
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")  # what a request line or Host header cannot carry


class ProtocolError(Exception):
    """An answer that is not HTTP/1.x as a photo host speaks it."""


class _Truncated(ProtocolError):
    """The connection ended before the body did."""


# What a request that raised is recorded as, and whether a later attempt may succeed: the
# first kind that matches (all are caught: `_CAUGHT`).
_CAUGHT = (OSError, ProtocolError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)
_FAILURES = (
    # Retried as a refusal, so a host that keeps failing it is given up on (HostWatch).
    (ssl.SSLCertVerificationError, "tls_certificate", True),
    (TimeoutError, "timeout", True),
    (_Truncated, "truncated", True),
    (_CAUGHT, "connection", True),
)


@dataclass(frozen=True)
class Body:
    """A whole answer of status 200."""

    data: bytes
    content_type: str


@dataclass(frozen=True)
class Failure:
    """Why there is no body: `reason` is what the results record ("timeout", "http_429", ...)."""

    reason: str
    retry: bool  # a later attempt may succeed
    retry_after: float | None = None
    final: bool = False  # the photo is gone for good: never ask again


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    absolute: bool  # through a plain-HTTP proxy: the request names the whole URL
    headers: str  # the request's own header lines (Proxy-Authorization with `absolute`)
    used: bool = False  # has answered a request: a failure before any answer may be its age


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    keep_alive: bool  # HTTP/1.1 without "Connection: close"


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    """(scheme, host, port): what a connection is kept for; ValueError for a URL without one."""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL with a host: {parts.geturl()[:80]}")
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


async def _read_head(reader: asyncio.StreamReader) -> _Answer:
    """The status line and headers of an answer (64 KiB at most: the reader's limit)."""
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status_line = lines[0].split(None, 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    keep_alive = status_line[0] == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return _Answer(int(status_line[1]), headers, keep_alive)


class Fetcher:
    """GETs for one worker, one at a time; `close()` ends its connections."""

    def __init__(self, *, timeout: float, tls: Callable[[], ssl.SSLContext], user_agent: str) -> None:
        # `tls()` is asked for when an https connection is first made: loading the CA bundle
        # costs ~25 ms of CPU, which a download of plain-http photos need not pay.
        self.timeout, self.tls = timeout, tls
        self._user_agent = user_agent
        self._proxies = urllib.request.getproxies()
        self._connections: dict[tuple[str, str, int], _Connection] = {}

    async def get(self, url: str) -> Body | Failure:
        """The body at `url`, or why not; `timeout` seconds for the whole attempt."""
        key = None
        try:
            async with asyncio.timeout(self.timeout):
                for _ in range(REDIRECTS + 1):
                    parts = urlsplit(url)
                    if PLACEHOLDER in parts.path:
                        return Failure("unavailable", retry=False, final=True)
                    try:
                        key = _origin(parts)  # before sending: a failed request drops its connection
                    except ValueError:  # not http(s), no host, a port that is no number
                        return Failure("bad_url", retry=False)
                    target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
                    if _UNSENDABLE.search(target) or _UNSENDABLE.search(parts.netloc):
                        return Failure("bad_url", retry=False)
                    connection, answer = await self._send(key, parts, target)
                    location = answer.headers.get("location")
                    if answer.status in _REDIRECT and location:
                        self._drop(key)  # a redirect's body is not worth reading
                        url = urljoin(url, location)
                        continue
                    return await self._answer(key, connection, answer)
                self._drop(key)
                return Failure("redirects", retry=False)
        except _CAUGHT as e:
            self._drop(key)
            reason, retry = next((r, again) for kinds, r, again in _FAILURES if isinstance(e, kinds))
            return Failure(reason, retry=retry)

    def close(self) -> None:
        for key in list(self._connections):
            self._drop(key)

    async def _send(
        self, key: tuple[str, str, int], parts: SplitResult, target: str
    ) -> tuple[_Connection, _Answer]:
        connection = self._connections.get(key)
        if connection is not None and connection.reader.at_eof():  # the host closed it meanwhile
            self._drop(key)
            connection = None
        if connection is None:
            connection = self._connections[key] = await self._connect(*key)
        host = parts.netloc.rpartition("@")[2]
        request = (
            f"GET {parts.geturl() if connection.absolute else target} HTTP/1.1\r\nHost: {host}\r\n"
            f"{connection.headers}\r\n"
        ).encode("latin-1", "replace")
        try:
            connection.writer.write(request)
            return connection, await _read_head(connection.reader)
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            if not connection.used or (isinstance(e, asyncio.IncompleteReadError) and e.partial):
                raise
            # The host closed a connection kept alive since the last photo: once more on a new one.
            self._drop(key)
            connection = self._connections[key] = await self._connect(*key)
            connection.writer.write(request)
            return connection, await _read_head(connection.reader)

    async def _connect(self, scheme: str, host: str, port: int) -> _Connection:
        own = f"User-Agent: {self._user_agent}\r\nAccept-Encoding: identity\r\n"
        proxy = self._proxies.get(scheme)
        if not proxy or urllib.request.proxy_bypass(host):
            tls = {"ssl": self.tls(), "server_hostname": host} if scheme == "https" else {}
            reader, writer = await asyncio.open_connection(host, port, **tls)
            return _Connection(reader, writer, False, own)
        via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        auth = ""
        if via.username is not None:
            secret = f"{unquote(via.username)}:{unquote(via.password or '')}".encode()
            auth = f"Proxy-Authorization: Basic {base64.b64encode(secret).decode()}\r\n"
        reader, writer = await asyncio.open_connection(via.hostname, via.port or 80)
        if scheme == "http":  # plain HTTP: the proxy is asked for the whole URL
            return _Connection(reader, writer, True, own + auth)
        # https: a tunnel through the proxy (CONNECT), TLS with the host inside it
        try:
            writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n".encode())
            answer = await _read_head(reader)
            if answer.status != 200:
                raise ConnectionRefusedError(f"the proxy refused the tunnel: {answer.status}")
            await writer.start_tls(self.tls(), server_hostname=host)
        except BaseException:
            writer.close()
            raise
        return _Connection(reader, writer, False, own)

    async def _answer(self, key, connection: _Connection, answer: _Answer) -> Body | Failure:
        status, headers = answer.status, answer.headers
        if status != 200:
            self._drop(key)  # the rest of an error page is not worth reading
            if status in GONE:
                return Failure(GONE[status], retry=False, final=True)
            retry_after = parse_retry_after(headers.get("retry-after"), time.time())
            return Failure(f"http_{status}", retryable_status(status), retry_after)
        reader, declared = connection.reader, headers.get("content-length", "")
        keep_alive = answer.keep_alive
        if "chunked" in headers.get("transfer-encoding", "").lower():
            data = await _read_chunked(reader)
        elif declared.isdigit():
            if int(declared) > MAX_BYTES:
                self._drop(key)
                return Failure("too_large", retry=False)
            try:
                data = await reader.readexactly(int(declared))
            except asyncio.IncompleteReadError:  # the connection ended before the Content-Length did
                raise _Truncated from None
        else:  # delimited by the connection's end
            keep_alive = False
            data = await _read_to_end(reader)
        if data is None:
            self._drop(key)
            return Failure("too_large", retry=False)
        connection.used = True
        if not keep_alive:
            self._drop(key)
        return Body(data, headers.get("content-type", ""))

    def _drop(self, key) -> None:
        known = self._connections.pop(key, None) if key is not None else None
        if known is not None:
            known.writer.transport.abort()  # no goodbye owed to a host whose answer is unread


async def _read_chunked(reader: asyncio.StreamReader) -> bytes | None:
    """A chunked body (None when it passes MAX_BYTES); a connection that ends early is `_Truncated`."""
    chunks, size = [], 0
    try:
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                length = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"not a chunk size: {line[:40]!r}") from None
            if length == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, then the end
                    pass
                return b"".join(chunks)
            size += length
            if size > MAX_BYTES:
                return None
            chunks.append((await reader.readexactly(length + 2))[:-2])
    except asyncio.IncompleteReadError:
        raise _Truncated from None


async def _read_to_end(reader: asyncio.StreamReader) -> bytes | None:
    """What comes until the connection ends (None when it passes MAX_BYTES)."""
    chunks, size = [], 0
    while chunk := await reader.read(_CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BYTES:
            return None
    return b"".join(chunks)
