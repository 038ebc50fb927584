"""One download worker's HTTP: a blocking GET with the standard library's `http.client`, on one
keep-alive connection per host, redirects followed, through the proxy the environment names
(`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, read as curl and httpx read them).

Photos are fetched with it rather than with httpx (which the API client uses): fetching the
same photos over 32 connections, httpx's AsyncClient spent 2.3-2.6 ms of CPU per photo and
`http.client` in threads 0.25 ms (bench/README.md), while validating a photo costs ~1.3 ms; with
httpx, two thirds of collect's CPU went to the HTTP client.

Every answer ends as a `Body` (status 200, read whole) or a `Failure` with a short reason;
nothing raises. A connection is either left ready for the next request or closed.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import ssl
import time
import urllib.request
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
# What a request that raised is recorded as, and whether a later attempt may succeed: the
# first kind that matches (all are HTTPException or OSError, the last row's catch-all).
_FAILURES = (
    (http.client.InvalidURL, "bad_url", False),  # characters a request line cannot carry
    # Retried as a refusal, so a host that keeps failing it is given up on (HostWatch).
    (ssl.SSLCertVerificationError, "tls_certificate", True),
    (TimeoutError, "timeout", True),
    (http.client.IncompleteRead, "truncated", True),
    ((http.client.HTTPException, OSError), "connection", True),
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


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    """(scheme, host, port): what a connection is kept for; ValueError for a URL without one."""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL with a host: {parts.geturl()[:80]}")
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


class Fetcher:
    """GETs for one worker, one at a time; `close()` (from any thread) ends its connections,
    waking a request blocked on one."""

    def __init__(self, *, timeout: float, tls: ssl.SSLContext, user_agent: str) -> None:
        self.timeout, self.tls = timeout, tls
        self._headers = {"User-Agent": user_agent}
        self._proxies = urllib.request.getproxies()
        # (scheme, host, port) -> its connection, and the headers and request target it needs
        self._connections: dict[tuple[str, str, int], tuple[http.client.HTTPConnection, dict, bool]] = {}

    def get(self, url: str) -> Body | Failure:
        """The body at `url`, or why not."""
        key = None
        try:
            for _ in range(REDIRECTS + 1):
                parts = urlsplit(url)
                if PLACEHOLDER in parts.path:
                    return Failure("unavailable", retry=False, final=True)
                try:
                    key = _origin(parts)  # before sending: a failed request drops its connection
                except ValueError:  # not http(s), no host, a port that is no number
                    return Failure("bad_url", retry=False)
                response = self._send(key, parts)
                location = response.getheader("Location")
                if response.status in _REDIRECT and location:
                    self._drop(key)  # a redirect's body is not worth reading
                    url = urljoin(url, location)
                    continue
                return self._answer(key, response)
            self._drop(key)
            return Failure("redirects", retry=False)
        except (http.client.HTTPException, OSError) as e:
            self._drop(key)
            reason, retry = next((r, again) for kind, r, again in _FAILURES if isinstance(e, kind))
            return Failure(reason, retry=retry)

    def close(self) -> None:
        for key in list(self._connections):
            self._drop(key)

    def _send(self, key: tuple[str, str, int], parts: SplitResult) -> http.client.HTTPResponse:
        reused = key in self._connections
        if not reused:
            self._connections[key] = self._connect(*key)
        conn, headers, absolute = self._connections[key]
        target = urlunsplit(parts if absolute else ("", "", parts.path or "/", parts.query, ""))
        try:
            conn.request("GET", target, headers=headers)
            return conn.getresponse()
        except (ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            # The host closed a connection kept alive since the last photo: once more on a new one.
            conn.close()
            conn.request("GET", target, headers=headers)
            return conn.getresponse()

    def _connect(self, scheme: str, host: str, port: int) -> tuple[http.client.HTTPConnection, dict, bool]:
        proxy = self._proxies.get(scheme)
        if not proxy or urllib.request.proxy_bypass(host):
            if scheme == "https":
                return (
                    http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self.tls),
                    self._headers,
                    False,
                )
            return http.client.HTTPConnection(host, port, timeout=self.timeout), self._headers, False
        via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        auth = {}
        if via.username is not None:
            secret = f"{unquote(via.username)}:{unquote(via.password or '')}".encode()
            auth = {"Proxy-Authorization": "Basic " + base64.b64encode(secret).decode()}
        if scheme == "https":  # a tunnel through the proxy (CONNECT), TLS with the host inside it
            conn = http.client.HTTPSConnection(
                via.hostname, via.port or 80, timeout=self.timeout, context=self.tls
            )
            conn.set_tunnel(host, port, headers=auth)
            return conn, self._headers, False
        # Plain HTTP: the proxy is asked for the whole URL.
        return (
            http.client.HTTPConnection(via.hostname, via.port or 80, timeout=self.timeout),
            {**self._headers, **auth},
            True,
        )

    def _answer(self, key, response: http.client.HTTPResponse) -> Body | Failure:
        status = response.status
        if status != 200:
            self._drop(key)  # the rest of an error page is not worth reading
            if status in GONE:
                return Failure(GONE[status], retry=False, final=True)
            retry_after = parse_retry_after(response.getheader("Retry-After"), time.time())
            return Failure(f"http_{status}", retryable_status(status), retry_after)
        declared = response.getheader("Content-Length") or ""
        if declared.isdigit() and int(declared) > MAX_BYTES:
            self._drop(key)
            return Failure("too_large", retry=False)
        chunks, size = [], 0
        while chunk := response.read(_CHUNK):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BYTES:
                self._drop(key)
                return Failure("too_large", retry=False)
        if response.length:  # the connection ended before the Content-Length did
            raise http.client.IncompleteRead(b"", response.length)
        return Body(b"".join(chunks), response.getheader("Content-Type") or "")

    def _drop(self, key) -> None:
        known = self._connections.pop(key, None) if key is not None else None
        if known is not None:
            conn = known[0]
            if conn.sock is not None:  # shutdown wakes a thread blocked reading it; close may not
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)
            conn.close()
