"""The Flickr REST API over httpx: search and licenses, paced, retried, past the 4,000 cap;
the API-key lookup; `check_key`, the smoke test against the real endpoint.

    >>> with FlickrClient(api_key) as flickr:                                 # doctest: +SKIP
    ...     for item in flickr.search({"text": "owl", "tags": "owl", "extras": "url_c"}):
    ...         print(item["id"], item.get("url_c"))

Calls go out as POST forms, so the API key is never part of a URL: it cannot leak through
httpx's request logging, an exception message or a proxy log. Answers are read as Flickr
gives them, not as its documentation promises: JSON or JSONP, numbers as strings, `stat: fail`
in JSON or in XML, error pages in HTML.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from photoclass.collecting.retry import RETRY_CODES, Backoff, parse_retry_after, retryable_status
from photoclass.collecting.split import is_photo_id
from photoclass.config import read_toml
from photoclass.errors import ConfigError, FlickrError, NetworkError

log = logging.getLogger(__name__)

API_URL = "https://api.flickr.com/services/rest/"
KEY_HELP = "get a free key at https://www.flickr.com/services/apps/create/ and set FLICKR_API_KEY"
PER_PAGE = 500  # Flickr's maximum
MAX_RESULTS = 4000  # Flickr serves at most this many results of any one query
FLICKR_EPOCH = 1072915200  # 2004-01-01: no photo was uploaded before Flickr existed
# Size extras and the longest side each promises (docs/flickr-api.md).
SIZES = {"t": 100, "s": 240, "n": 320, "m": 500, "z": 640, "c": 800, "l": 1024}
USER_AGENT = "photoclass/0.1 (+https://github.com/photoclass/photoclass)"


def find_api_key(api_key: str | None = None, config_file: Path | None = None) -> str:
    """The Flickr API key: `api_key` when given, else `flickr_api_key` in `config_file`, else
    $FLICKR_API_KEY, else `flickr_api_key` in ~/.config/photoclass/config.toml (top level or
    under [collect]). The one place a key is looked up; no key is a `ConfigError`."""
    if api_key is not None:
        if api_key.strip():
            return api_key.strip()
        raise ConfigError(f"the Flickr API key given is empty; {KEY_HELP}")
    user_config = (
        Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "photoclass/config.toml"
    )
    for source in (config_file, "env", user_config):
        if source == "env":
            key = os.environ.get("FLICKR_API_KEY", "")
        elif source is not None and Path(source).is_file():
            raw = read_toml(Path(source))
            key = str(raw.get("flickr_api_key") or raw.get("collect", {}).get("flickr_api_key") or "")
        else:
            continue
        if key.strip():
            return key.strip()
    raise ConfigError(f"no Flickr API key; {KEY_HELP}")


def size_chain(size: str) -> tuple[str, ...]:
    """The size asked for, then the others within a factor of two, closest first.

    For "c" (800 px) that is c -> z -> l -> m, the fallback that keeps photos uploaded before
    March 2012 (no url_c) without falling back to thumbnails.
    """
    if size not in SIZES:
        raise ConfigError(f"unknown `size` {size!r}; choose one of {', '.join(SIZES)}")
    want = SIZES[size]
    near = [s for s in SIZES if s != size and want / 2 <= SIZES[s] <= want * 2]
    return (size, *sorted(near, key=lambda s: (abs(SIZES[s] - want), -SIZES[s])))


@dataclass(frozen=True)
class Photo:
    """One search result, with the image URL chosen from the size chain."""

    id: str
    owner: str
    owner_name: str
    title: str
    license: int
    uploaded: int
    url: str
    size: str
    width: int
    height: int

    @property
    def page_url(self) -> str:
        return f"https://www.flickr.com/photos/{self.owner}/{self.id}"


_NSID = re.compile(r"[0-9A-Za-z@_.-]{1,64}")  # an owner id: "12037949754@N01"


def parse_photo(item: dict[str, Any], chain: tuple[str, ...]) -> Photo | None:
    """A search result as a `Photo` (with `url` "" if it has no size in `chain`), or None for
    a malformed id or owner: the id becomes a file name and the owner a link, so an id must be
    what Flickr's are (ASCII digits, a 64-bit number) and an owner an NSID."""
    photo_id, owner = str(item.get("id", "")), str(item.get("owner", ""))
    if not is_photo_id(photo_id) or not _NSID.fullmatch(owner):
        return None
    size = next((s for s in chain if item.get(f"url_{s}")), "")
    return Photo(
        id=photo_id,
        owner=owner,
        owner_name=str(item.get("ownername", "")),
        title=str(item.get("title", "")),
        license=_int(item.get("license")),
        uploaded=_int(item.get("dateupload")),
        url=str(item[f"url_{size}"]) if size else "",
        size=size,
        width=max(0, _int(item.get(f"width_{size}"))),
        height=max(0, _int(item.get(f"height_{size}"))),
    )


def _int(value: object) -> int:
    """Flickr sends some numbers as strings (license, dateupload, older totals)."""
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # None, "abc", NaN, Infinity
        return -1


class Pacer:
    """At most `rate` calls per second, and at most `budget` calls in any hour."""

    def __init__(
        self,
        rate: float,
        budget: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval, self._budget = 1 / rate, budget
        self._clock, self._sleep = clock, sleep
        self._next = float("-inf")
        self._recent: deque[float] = deque()

    def wait(self) -> None:
        now = self._clock()
        while self._recent and self._recent[0] <= now - 3600:
            self._recent.popleft()
        delay = self._next - now
        if len(self._recent) >= self._budget:
            budget_delay = self._recent[0] + 3600 - now
            log.warning("hourly API budget of %d calls spent; waiting %.0f s", self._budget, budget_delay)
            delay = max(delay, budget_delay)
        if delay > 0:
            self._sleep(delay)
        now = self._clock()
        self._next = now + self._interval
        self._recent.append(now)


@dataclass(frozen=True)
class _Retry:
    reason: str
    retry_after: float | None = None
    code: int | None = None  # Flickr's error code, when Flickr said why


class FlickrClient:
    """A Flickr API session: one key, one pace, one count of calls made. The key is
    `find_api_key(api_key)`: the one given, or the one the environment holds."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        api_url: str = API_URL,
        rate: float = 1.0,
        budget: int = 3000,
        backoff: Backoff = Backoff(),  # noqa: B008 - frozen, so sharing the default is safe
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.api_url, self._key, self._backoff = api_url, find_api_key(api_key), backoff
        self._pacer = pacer or Pacer(rate, budget)
        self._http = httpx.Client(timeout=timeout, transport=transport, headers={"User-Agent": USER_AGENT})
        self.calls = 0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FlickrClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one call ----------------------------------------------------------------------------

    def call(self, method: str, **params: object) -> dict[str, Any]:
        """One API method; retried with backoff when Flickr or the network says "later".

        Raises `FlickrError` when Flickr answers `stat: fail` (at once, or after the retries
        for the codes that mean "later"), `NetworkError` when the endpoint keeps refusing or
        cannot be reached."""
        form = {"method": method, "api_key": self._key, "format": "json", "nojsoncallback": 1}
        form |= {k: v for k, v in params.items() if v is not None}
        for attempt in range(self._backoff.retries + 1):
            outcome = self._attempt(form)
            if not isinstance(outcome, _Retry):
                return outcome
            delay = self._backoff.delay(attempt, outcome.retry_after)
            if attempt < self._backoff.retries:
                said = (
                    outcome.reason
                    if outcome.code is None
                    else f"Flickr error {outcome.code}: {outcome.reason}"
                )
                log.info("%s: %s; retrying in %.1f s", method, said, delay)
                time.sleep(delay)
        tries = self._backoff.retries + 1
        if outcome.code is not None:
            message = f"{outcome.reason} (gave up after {tries} tries; rerun later to resume)"
            raise FlickrError(outcome.code, self._redact(message))
        raise NetworkError(
            self._redact(
                f"Flickr API at {self.api_url} failed {tries} times ({outcome.reason}); rerun later to resume"
            )
        )

    def _attempt(self, form: dict[str, object]) -> dict[str, Any] | _Retry:
        self._pacer.wait()
        self.calls += 1
        try:
            response = self._http.post(self.api_url, data=form)  # type: ignore[arg-type]
        except httpx.TransportError as e:
            return _Retry(f"{type(e).__name__}: {self._redact(str(e))}")
        if retryable_status(response.status_code):
            retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
            gist = _gist(response.text)
            return _Retry(f"HTTP {response.status_code}" + (f" {gist}" if gist else ""), retry_after)
        if response.status_code in (404, 405):
            raise ConfigError(
                f"{self.api_url} answered HTTP {response.status_code}: no Flickr API there; check `api_url`"
            )
        if response.status_code != 200:
            raise NetworkError(
                self._redact(
                    f"Flickr API at {self.api_url} refused the call with HTTP {response.status_code}"
                )
            )
        try:
            payload = _decode(response.text)
        except ValueError:
            failure = _xml_failure(response.text)
            if failure is None:  # a proxy's or CDN's error page with status 200
                return _Retry("the answer was not JSON")
            payload = failure
        if payload.get("stat") == "ok":
            return payload
        code, message = _int(payload.get("code")), _one_line(str(payload.get("message", "unknown error")))
        if code in RETRY_CODES:
            return _Retry(message, code=code)
        if code == 100:
            raise FlickrError(100, f"invalid API key; {KEY_HELP}")
        raise FlickrError(code, self._redact(message))

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***")

    # -- methods -----------------------------------------------------------------------------

    def licenses(self) -> dict[int, tuple[str, str]]:
        """Flickr's live license table: id -> (name, url)."""
        rows = self.call("flickr.photos.licenses.getInfo")["licenses"]["license"]
        return {_int(row["id"]): (str(row["name"]), str(row.get("url", ""))) for row in rows}

    def search(self, params: dict[str, object]) -> Iterator[dict[str, Any]]:
        """Every result of `flickr.photos.search`, once each, in Flickr's order, lazily.

        The first 4,000 results come from paging the query itself. Flickr serves no more than
        that (later pages repeat earlier ones), so if the query has more, it is split into
        upload-date windows, each halved until it holds at most 4,000, and those are paged
        newest first (recent uploads are the ones with url_c). Photo ids already yielded are
        skipped. Nothing is fetched until the caller asks for it.
        """
        seen: set[str] = set()
        total = yield from self._pages(params, seen)
        if total > MAX_RESULTS:
            yield from self._windows(params, seen, FLICKR_EPOCH, int(time.time()))

    def _page(self, params: dict[str, object], page: int, per_page: int = PER_PAGE) -> dict[str, Any]:
        photos = self.call("flickr.photos.search", **params, per_page=per_page, page=page).get("photos")
        if not isinstance(photos, dict):
            raise ConfigError(f"{self.api_url} answered a search without its page of photos; check `api_url`")
        return photos

    def _pages(
        self, params: dict[str, object], seen: set[str], first: dict[str, Any] | None = None
    ) -> Generator[dict[str, Any], None, int]:
        """Page one query up to the cap; returns the total Flickr reports for it."""
        page = first or self._page(params, 1)
        total = _int(page.get("total"))
        last = min(_int(page.get("pages")), MAX_RESULTS // PER_PAGE)
        number = 1
        while True:
            items = page.get("photo")
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and str(item.get("id")) not in seen:
                    seen.add(str(item.get("id")))
                    yield item
            number += 1
            if number > last or not page.get("photo"):
                return total
            page = self._page(params, number)

    def _windows(
        self, params: dict[str, object], seen: set[str], low: int, high: int
    ) -> Iterator[dict[str, Any]]:
        stack = [(low, high)]
        while stack:
            low, high = stack.pop()
            window = params | {"min_upload_date": low, "max_upload_date": high}
            first = self._page(window, 1)
            if _int(first.get("total")) > MAX_RESULTS and high > low:
                middle = (low + high) // 2
                stack += [(low, middle), (middle + 1, high)]  # newer half on top
                continue
            yield from self._pages(window, seen, first)


@dataclass(frozen=True)
class KeyCheck:
    """What `check_key` saw: the endpoint answered a key-checked call, and one search."""

    api_url: str
    text: str  # what was searched for
    total: int  # photos Flickr has for it
    photos: list[Photo]  # the first few results, with the image URL a download would use
    calls: int


def check_key(flickr: FlickrClient, text: str = "cat", size: str = "c") -> KeyCheck:
    """The smallest proof that this client works against an endpoint with this key:
    `flickr.test.echo` (which checks the key) and the first page of one search, 5 results."""
    flickr.call("flickr.test.echo")
    chain = size_chain(size)
    params = {"text": text, "extras": ",".join(f"url_{s}" for s in chain)}
    page = flickr._page(params, 1, per_page=5)
    items = page.get("photo")
    photos = (
        [parse_photo(item, chain) for item in items if isinstance(item, dict)]
        if isinstance(items, list)
        else []
    )
    return KeyCheck(flickr.api_url, text, _int(page.get("total")), [p for p in photos if p], flickr.calls)


def _decode(text: str) -> dict[str, Any]:
    """Flickr's JSON, or JSONP if `nojsoncallback` was lost on the way."""
    text = text.strip()
    if text.startswith("jsonFlickrApi(") and text.endswith(")"):
        text = text[len("jsonFlickrApi(") : -1]
    try:
        payload = json.loads(text)
    except RecursionError:  # nested deeper than Python's stack: not an answer Flickr gives
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(payload, dict):
        raise ValueError("not a JSON object")
    return payload


_XML_FAIL = re.compile(r"<rsp\s[^>]*stat=[\"']fail[\"'][^>]*>\s*<err\b([^>]*)>", re.S)
_ATTRIBUTE = re.compile(r"(\w+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")


def _xml_failure(text: str) -> dict[str, Any] | None:
    """`<rsp stat="fail"><err code="105" msg="..."/></rsp>`, which Flickr now and then sends
    although JSON was asked for, as the JSON envelope would say it; None for anything else.
    Read with a regular expression: no XML parser (and its entity expansion) sees the body."""
    found = _XML_FAIL.search(text[:4096])
    if found is None:
        return None
    attributes = {
        m[1]: html.unescape(m[2] if m[2] is not None else m[3]) for m in _ATTRIBUTE.finditer(found[1])
    }
    return {"stat": "fail", "code": attributes.get("code"), "message": attributes.get("msg", "unknown error")}


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.S | re.I)


def _gist(body: str) -> str:
    """What an error answer says, in a few words: Flickr's code and message (JSON or XML), or
    an HTML page's title ("429 Too Many Requests"); "" when it says nothing readable."""
    try:
        payload: dict[str, Any] | None = _decode(body)
    except ValueError:
        payload = _xml_failure(body)
    if payload is not None and payload.get("stat") == "fail":
        return f"(Flickr error {_int(payload.get('code'))}: {_one_line(str(payload.get('message')))})"
    title = _TITLE.search(body[:4096])
    return f"({_one_line(html.unescape(title[1]))})" if title and title[1].strip() else ""


def _one_line(text: str, limit: int = 120) -> str:
    """A message from the network as one short line of printable text."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
