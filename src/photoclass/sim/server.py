"""A local Flickr: the REST API (`flickr.photos.search`, `flickr.photos.licenses.getInfo`,
`flickr.test.echo`) and the static photo host, on 127.0.0.1, over a synthetic corpus, with
Flickr's quirks and injectable faults.

    >>> with SimServer(classes=("cat", "owl"), photos_per_class=300) as sim:  # doctest: +SKIP
    ...     photoclass.collect(["cat", "owl"], "data", api_key=sim.api_key, api_url=sim.api_url)

Quirks reproduced: the JSON envelope (`stat: fail` with HTTP 200), JSONP unless
`nojsoncallback=1`, `per_page` capped at 500, at most 4,000 results per query with later pages
repeating earlier ones, `url_c` absent before March 2012 and for owners who hide large sizes,
numbers as strings (`total`, `license`, `dateupload`, `width_*`), the live licence table (ids
0-16), "try again later" answered as codes 105, 0 and 201 or as XML, 429s with an HTML body,
and deleted photos redirected to a placeholder image.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from PIL import Image

from photoclass.background import BackgroundServer
from photoclass.sim.corpus import Corpus, SimPhoto, normalize_tag, render_jpeg
from photoclass.sim.tables import LICENSES, PLACEHOLDER_PATH, SIZES, UNAVAILABLE

MAX_RESULTS = 4000  # Flickr's cap on the results of any one search
HTML_PAGE = b"<!DOCTYPE html><html><body><h1>This photo is no longer available</h1></body></html>"
TOO_MANY = b"<html><head><title>429 Too Many Requests</title></head><body>Too Many Requests</body></html>"
_IMAGE_PATH = re.compile(r"^/(\d+)/(\d+)_([0-9a-f]+)(?:_([a-z]))?\.jpg$")
_SIZE_OF_SUFFIX = {suffix: size for size, (suffix, _) in SIZES.items()}
# How "try again later" reaches a client (`Faults.api_error`): Flickr's codes, in JSON or XML.
_API_FAILURES = (("json", 105), ("json", 0), ("json", 201), ("xml", 105))


@dataclass(frozen=True)
class Faults:
    """What goes wrong, and how often. Shares are probabilities in [0, 1].

    Per request (a retry may succeed): latency, server errors, 429s, hangs, cut-off bodies and
    API errors. Per photo (every request for that photo gets it): HTML pages, corrupt JPEGs,
    tiny images, decompression bombs, deleted photos, missing files, and re-uploads of
    another photo (`duplicates`).
    """

    latency: float = 0.0  # seconds added to every response
    server_error: float = 0.0  # HTTP 500/502/503
    rate_limit: float = 0.0  # HTTP 429 with Retry-After
    retry_after: int = 1  # seconds, sent with each 429
    timeout: float = 0.0  # the response is held for `hang` seconds: clients time out
    hang: float = 5.0
    truncated: float = 0.0  # images: the connection closes halfway through the body
    photo_rate_limit: float = 0.0  # images only: HTTP 429 (a photo host that refuses, API fine)
    api_error: float = 0.0  # API: "try again later": code 105, 0 or 201, as JSON or as XML
    html: float = 0.0  # images: an HTML "photo unavailable" page with HTTP 200
    corrupt: float = 0.0  # images: a damaged JPEG stream
    tiny: float = 0.0  # images: a 40-pixel thumbnail instead of the size asked for
    bomb: float = 0.0  # images: a JPEG whose header claims 30000 x 30000 pixels
    deleted: float = 0.0  # images: a redirect to Flickr's "photo unavailable" placeholder
    missing: float = 0.0  # images: HTTP 404, the file named in the search result is not there
    duplicates: float = 0.0  # photos that re-upload an earlier photo of the same class


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    send_bytes: int | None = None  # close the connection after this many body bytes
    delay: float = 0.0


def _roll(*keys: object) -> float:
    """A uniform number in [0, 1) fixed by `keys`: faults repeat exactly for the same seed."""
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _pick(roll: float, shares: dict[str, float]) -> str | None:
    """The fault whose slice of [0, 1) holds `roll`, if any."""
    edge = 0.0
    for name, share in shares.items():
        edge += share
        if roll < edge:
            return name
    return None


class Flickr:
    """The simulated service as a function from (path, params) to a `Response`; no sockets."""

    def __init__(self, corpus: Corpus, api_key: str, faults: Faults, base_url: str) -> None:
        self.corpus, self.api_key, self.faults, self.base_url = corpus, api_key, faults, base_url
        self.api_calls = 0
        self.image_requests = 0
        self.served: Counter[str] = Counter()  # faults injected, e.g. "image:rate_limit"
        self._seen: dict[str, int] = {}  # request key -> times asked, so retries roll afresh
        self._lock = threading.Lock()
        self._words: dict[str, set[str]] = {}
        for photo in corpus.photos:
            words = {*photo.tags, *(normalize_tag(w) for w in photo.title.split())}
            for word in words:
                self._words.setdefault(word, set()).add(photo.id)

    def handle(self, path: str, params: dict[str, str]) -> Response:
        is_api = path.rstrip("/") == "/services/rest"
        response = self._api(params) if is_api else self._image(path)
        response.delay += self.faults.latency
        return response

    def times_asked(self, url: str) -> int:
        """How often the photo at `url` was requested (retries and later runs included)."""
        return self._seen.get(urlsplit(url).path, 0)

    # -- per-request faults ------------------------------------------------------------------

    def _transient(self, key: str, image: bool) -> str | None:
        """Which per-request fault, if any, hits this request (the nth time it is asked)."""
        with self._lock:
            nth = self._seen[key] = self._seen.get(key, 0) + 1
            if image:
                self.image_requests += 1
            else:
                self.api_calls += 1
        f = self.faults
        shares = {"server_error": f.server_error, "rate_limit": f.rate_limit, "timeout": f.timeout}
        if image:
            shares |= {"truncated": f.truncated, "photo_rate_limit": f.photo_rate_limit}
        else:
            shares |= {"api_error": f.api_error}
        fault = _pick(_roll(self.corpus.seed, key, nth), shares)
        if fault is not None:
            with self._lock:
                self.served[f"{'image' if image else 'api'}:{fault}"] += 1
        return fault

    def _error(self, fault: str) -> Response:
        if fault in ("rate_limit", "photo_rate_limit"):
            headers = {"Retry-After": str(self.faults.retry_after)}
            return Response(429, TOO_MANY, "text/html", headers)
        if fault == "timeout":
            return Response(503, b"too late", "text/plain", delay=self.faults.hang)
        return Response(503, b"Service Unavailable", "text/plain")

    # -- the REST API ------------------------------------------------------------------------

    def _api(self, params: dict[str, str]) -> Response:
        key = json.dumps({k: v for k, v in sorted(params.items()) if k != "api_key"})
        fault = self._transient(key, image=False)
        if fault == "api_error":
            shape, code = _API_FAILURES[int(_roll(self.corpus.seed, key, "shape") * len(_API_FAILURES))]
            if shape == "xml":
                return _xml_fail(code, UNAVAILABLE[code])
            payload = _fail(code, UNAVAILABLE[code])
        elif fault is not None:
            return self._error(fault)
        elif params.get("api_key") != self.api_key:
            payload = _fail(100, "Invalid API Key (Key not found)")
        elif params.get("format") != "json":
            payload = _fail(111, f'Format "{params.get("format", "rest")}" not found')
        elif params.get("method") == "flickr.photos.search":
            payload = self._search(params)
        elif params.get("method") == "flickr.photos.licenses.getInfo":
            licenses = [{"id": i, "name": name, "url": url} for i, name, url, _ in LICENSES]
            payload = {"licenses": {"license": licenses}, "stat": "ok"}
        elif params.get("method") == "flickr.test.echo":  # every parameter, the key included
            payload = {k: {"_content": v} for k, v in params.items()} | {"stat": "ok"}
        else:
            payload = _fail(112, f'Method "{params.get("method", "")}" not found')
        if params.get("nojsoncallback") == "1":
            return _json(payload)
        body = b"jsonFlickrApi(" + json.dumps(payload).encode() + b")"
        return Response(200, body, "text/javascript")

    def _matches(self, params: dict[str, str]) -> list[SimPhoto] | None:
        words = [w for w in params.get("text", "").split() if normalize_tag(w)]
        tags = [normalize_tag(t) for t in params.get("tags", "").split(",") if normalize_tag(t)]
        if not words and not tags:
            return None
        ids = set(self.corpus.by_id)
        for word in words:
            hits = self._words.get(normalize_tag(word), set())
            ids = ids - hits if word.startswith("-") else ids & hits
        if tags:
            tag_sets = [self._words.get(t, set()) for t in tags]
            any_mode = params.get("tag_mode") == "any"
            ids &= set().union(*tag_sets) if any_mode else set.intersection(*tag_sets)
        photos = [self.corpus.by_id[i] for i in ids]
        if params.get("license"):
            allowed = {int(x) for x in params["license"].split(",") if x.strip().isdigit()}
            photos = [p for p in photos if p.license in allowed]
        low = int(params.get("min_upload_date") or 0)
        high = int(params.get("max_upload_date") or 2**40)
        return [p for p in photos if low <= p.uploaded <= high]

    def _search(self, params: dict[str, str]) -> dict:
        photos = self._matches(params)
        if photos is None:
            return _fail(3, "Parameterless searches have been disabled.")
        order = {
            "relevance": (lambda p: p.relevance, True),
            "date-posted-asc": (lambda p: p.uploaded, False),
            "date-posted-desc": (lambda p: p.uploaded, True),
            "interestingness-desc": (lambda p: p.interestingness, True),
            "interestingness-asc": (lambda p: p.interestingness, False),
        }
        sort_key, reverse = order.get(params.get("sort", ""), order["date-posted-desc"])
        photos.sort(key=lambda p: (sort_key(p), p.id), reverse=reverse)
        per_page = min(max(int(params.get("per_page") or 100), 1), 500)
        page = max(int(params.get("page") or 1), 1)
        total = len(photos)
        start = (page - 1) * per_page
        if start >= MAX_RESULTS:  # past the cap, Flickr serves earlier results again
            start %= MAX_RESULTS
        end = min(start + per_page, MAX_RESULTS)
        extras = {e.strip() for e in params.get("extras", "").split(",")}
        return {
            "photos": {
                "page": page,
                "pages": -(-total // per_page),
                "perpage": per_page,
                "total": str(total),
                "photo": [self._describe(p, extras) for p in photos[start:end]],
            },
            "stat": "ok",
        }

    def _describe(self, photo: SimPhoto, extras: set[str]) -> dict:
        item: dict = {
            "id": photo.id,
            "owner": photo.owner,
            "secret": photo.secret,
            "server": photo.server,
            "farm": 66,
            "title": photo.title,
            "ispublic": 1,
            "isfriend": 0,
            "isfamily": 0,
        }
        if "license" in extras:
            item["license"] = str(photo.license)
        if "owner_name" in extras:
            item["ownername"] = photo.owner_name
        if "date_upload" in extras:
            item["dateupload"] = str(photo.uploaded)
        if "tags" in extras:
            item["tags"] = " ".join(photo.tags)
        for size in SIZES:
            if f"url_{size}" in extras and size in photo.sizes:
                width, height = photo.dimensions(size)
                item |= {f"url_{size}": self.photo_url(photo, size)}
                item |= {f"width_{size}": str(width), f"height_{size}": str(height)}
        return item

    def photo_url(self, photo: SimPhoto, size: str) -> str:
        suffix = SIZES[size][0]
        name = f"{photo.id}_{photo.secret}" + (f"_{suffix}" if suffix else "")
        return f"{self.base_url}/{photo.server}/{name}.jpg"

    # -- the photo host ----------------------------------------------------------------------

    def _image(self, path: str) -> Response:
        if path == PLACEHOLDER_PATH:
            return Response(200, _placeholder(), "image/png")
        found = _IMAGE_PATH.match(path)
        photo = self.corpus.by_id.get(found.group(2)) if found else None
        size = _SIZE_OF_SUFFIX.get((found.group(4) or "") if found else "?")
        if found is None or photo is None or photo.secret != found.group(3) or size not in photo.sizes:
            return Response(404, b"Not Found", "text/plain")
        fault = self._transient(path, image=True)
        if fault == "truncated":
            body = self.jpeg(photo, size)
            return Response(200, body, "image/jpeg", send_bytes=len(body) // 2)
        if fault is not None:
            return self._error(fault)
        f = self.faults
        shares = {"html": f.html, "corrupt": f.corrupt, "tiny": f.tiny, "bomb": f.bomb}
        shares |= {"deleted": f.deleted, "missing": f.missing}
        kind = _pick(_roll(self.corpus.seed, "photo", photo.id), shares)
        if kind is not None:
            with self._lock:
                self.served[f"photo:{kind}"] += 1
        if kind == "html":
            return Response(200, HTML_PAGE, "text/html; charset=utf-8")
        if kind == "deleted":
            return Response(302, b"", "text/plain", {"Location": self.base_url + PLACEHOLDER_PATH})
        if kind == "missing":
            return Response(404, b"Not Found", "text/plain")
        if kind == "tiny":
            small = render_jpeg(photo.class_name, photo.index, 40, classes=self.corpus.classes)
            return Response(200, small, "image/jpeg")
        body = self.jpeg(photo, size)
        if kind == "corrupt":
            body = _corrupt(body, photo.id)
        elif kind == "bomb":
            body = _claim_size(body, 30000, 30000)
        return Response(200, body, "image/jpeg")

    def jpeg(self, photo: SimPhoto, size: str) -> bytes:
        return _cached_jpeg(self.corpus, photo.id, size)


@lru_cache(maxsize=4096)
def _cached_jpeg(corpus: Corpus, photo_id: str, size: str) -> bytes:
    """Rendering costs milliseconds, serving microseconds: keep what was rendered."""
    return corpus.jpeg(corpus.by_id[photo_id], size)


def _corrupt(jpeg: bytes, seed: str) -> bytes:
    """Bit rot inside the compressed scan, including a byte pair that is no valid marker."""
    rng = np.random.default_rng(int(seed))
    scan = jpeg.index(b"\xff\xda") + 20
    at = int(rng.integers(scan, max(scan + 1, len(jpeg) - 80)))
    garbage = bytearray(rng.bytes(64))
    garbage[10:12] = b"\xff\x4a"
    return jpeg[:at] + bytes(garbage) + jpeg[at + 64 :]


def _claim_size(jpeg: bytes, width: int, height: int) -> bytes:
    """Rewrite the frame header's dimensions: a decompression bomb, to a header reader."""
    sof = next(m.start() for m in re.finditer(b"\xff[\xc0-\xc2]", jpeg))
    size = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return jpeg[: sof + 5] + size + jpeg[sof + 9 :]


@lru_cache(maxsize=1)
def _placeholder() -> bytes:
    """Flickr's "This photo is no longer available" image: a grey PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (500, 375), (222, 222, 222)).save(buffer, "PNG")
    return buffer.getvalue()


def _fail(code: int, message: str) -> dict:
    return {"stat": "fail", "code": code, "message": message}


def _xml_fail(code: int, message: str) -> Response:
    """The answer Flickr sometimes gives in XML although JSON was asked for."""
    body = f'<?xml version="1.0" encoding="utf-8" ?>\n<rsp stat="fail">\n\t<err code="{code}" msg="{message}" />\n</rsp>\n'
    return Response(200, body.encode(), "text/xml; charset=utf-8")


def _json(payload: dict) -> Response:
    return Response(200, json.dumps(payload).encode())


# ----------------------------------------------------------------------------------------------
# HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a CDN would allow
    # Headers and body go out in separate writes; with Nagle's algorithm the body would wait
    # for the client's delayed ACK, adding ~40 ms to many responses.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self._reply(url.path, dict(parse_qsl(url.query)))

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = self.rfile.read(length).decode("utf-8", "replace")
        self._reply(url.path, dict(parse_qsl(url.query)) | dict(parse_qsl(form)))

    def _reply(self, path: str, params: dict[str, str]) -> None:
        response = self.server.flickr.handle(path, params)
        if response.delay and self.server.stopping.wait(response.delay):
            self.close_connection = True
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if response.send_bytes is not None:
            self.wfile.write(response.body[: response.send_bytes])
            self.close_connection = True
        else:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: request lines would only add noise to test and benchmark output."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], flickr_factory: Callable[[str], Flickr]) -> None:
        super().__init__(address, _Handler)
        self.stopping = threading.Event()
        self.flickr: Flickr = flickr_factory(f"http://{address[0]}:{self.server_address[1]}")

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that time out and hang up are part of the game, not errors."""


class SimServer(BackgroundServer):
    """A Flickr-compatible server on 127.0.0.1, in a background thread.

    Use it as a context manager; `api_url` and `api_key` are what a client needs.

        >>> with SimServer(classes=("cat", "owl"), photos_per_class=300, seed=0) as sim:
        ...     sim.api_url   # 'http://127.0.0.1:PORT/services/rest/'  # doctest: +SKIP
    """

    def __init__(
        self,
        classes: tuple[str, ...] = ("cat", "owl"),
        photos_per_class: int = 1200,
        *,
        faults: Faults = Faults(),  # noqa: B008 - frozen, so sharing the default is safe
        seed: int = 0,
        port: int = 0,
        api_key: str | None = None,
    ) -> None:
        self.corpus = Corpus(classes, photos_per_class, seed=seed, duplicates=faults.duplicates)
        self.api_key = api_key or hashlib.md5(f"photoclass-sim-{seed}".encode()).hexdigest()
        self.faults = faults
        self._server = _Server(
            ("127.0.0.1", port), lambda base: Flickr(self.corpus, self.api_key, faults, base)
        )

    thread_name = "photoclass-sim"

    @property
    def base_url(self) -> str:
        return self._server.flickr.base_url

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/services/rest/"

    @property
    def flickr(self) -> Flickr:
        """The service itself: call counters, `photo_url`, the corpus."""
        return self._server.flickr

    def _listener(self) -> socket.socket:
        return self._server.socket

    def _serve(self) -> None:
        # A short poll interval: `stop` waits for the loop to notice, and tests stop often.
        self._server.serve_forever(0.05)

    def _shutdown(self) -> None:
        self._server.shutdown()

    def stop(self) -> None:
        self._server.stopping.set()
        super().stop()

    def serve_forever(self) -> None:
        """Serve until `stop` or Ctrl-C (`KeyboardInterrupt`, raised after stopping)."""
        self.start()
        try:
            while not self._server.stopping.wait(0.5):
                pass
        finally:
            self.stop()
