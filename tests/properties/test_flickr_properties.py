"""The Flickr response parser, for any answer: `parse_photo` takes any search result (numbers as
strings or numbers, extras missing, junk of any JSON type) and returns a safe `Photo` or None;
the envelope decoder reads JSON and JSONP alike; and a client call over real HTTP either returns
an `ok` payload or raises a `PhotoclassError`, whatever the server sends."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from photoclass.collecting.flickr import SIZES, FlickrClient, Photo, _decode, parse_photo, size_chain
from photoclass.collecting.retry import Backoff
from photoclass.errors import PhotoclassError

from .conftest import examples

# Any JSON value, NaN, Infinity and huge numbers included (Python's json reads them all).
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
FIELDS = ["id", "owner", "ownername", "title", "license", "dateupload"]
FIELDS += [f"{kind}_{size}" for size in SIZES for kind in ("url", "width", "height")]
chains = st.sampled_from(sorted(SIZES)).map(size_chain)
# What a field of a search result may hold: anything, and especially numbers as text, long
# digit strings, and the floats that do not convert to integers.
field_values = st.one_of(
    json_values,
    st.text("0123456789", min_size=1, max_size=300),
    st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e308, -0.0, "1e3", " 5 ", "٣"]),
)
any_results = st.fixed_dictionaries({}, optional={name: field_values for name in FIELDS})


def as_flickr_sends(value: int) -> st.SearchStrategy:
    """A number as Flickr sends it: a JSON number, or a string of digits."""
    return st.sampled_from([value, str(value)])


@st.composite
def real_results(draw: st.DrawFn) -> dict:
    """A well-formed search result: some sizes present, numbers as numbers or strings."""
    item = {
        "id": str(draw(st.integers(1, 2**63))),
        "owner": draw(st.from_regex(r"\A[0-9]{5,12}@N[0-9]{2}\Z")),
        "secret": "abc123",
        "server": "65535",
        "title": draw(st.text(max_size=80)),
        "ispublic": 1,
    }
    if draw(st.booleans()):
        item["ownername"] = draw(st.text(max_size=40))
    if draw(st.booleans()):
        item["license"] = draw(st.integers(0, 16).flatmap(as_flickr_sends))
    if draw(st.booleans()):
        item["dateupload"] = draw(st.integers(1072915200, 2**31).flatmap(as_flickr_sends))
    for size in draw(st.sets(st.sampled_from(sorted(SIZES)))):
        item[f"url_{size}"] = f"https://live.staticflickr.com/65535/{item['id']}_abc123_{size}.jpg"
        item[f"width_{size}"] = draw(st.integers(1, 2048).flatmap(as_flickr_sends))
        item[f"height_{size}"] = draw(st.integers(1, 2048).flatmap(as_flickr_sends))
    return item


@settings(max_examples=examples(200))
@given(item=any_results, chain=chains)
@example(item={"id": "1", "license": float("inf"), "width_c": float("nan")}, chain=size_chain("c"))
@example(item={"id": "9" * 21, "owner": "1@N01"}, chain=size_chain("c"))  # no 64-bit id is that long
def test_any_search_result_parses_to_a_safe_photo_or_none(item: dict, chain: tuple[str, ...]) -> None:
    photo = parse_photo(item, chain)
    if photo is None:
        return
    assert isinstance(photo, Photo)
    # The id names the photo's file: ASCII digits, short enough for any file system.
    assert photo.id.isascii() and photo.id.isdigit() and len(photo.id) <= 20
    assert "/" not in photo.owner and "\0" not in photo.owner
    assert all(isinstance(v, str) for v in (photo.owner, photo.owner_name, photo.title, photo.url))
    assert all(type(v) is int for v in (photo.license, photo.uploaded, photo.width, photo.height))
    assert (photo.url == "") == (photo.size == "") and photo.size in ("", *chain)
    assert photo.width >= 0 and photo.height >= 0


@settings(max_examples=examples(200))
@given(item=real_results(), chain=chains)
def test_real_results_keep_their_values_whether_numbers_come_as_strings_or_not(
    item: dict, chain: tuple[str, ...]
) -> None:
    photo = parse_photo(item, chain)
    assert photo is not None and photo.id == item["id"] and photo.owner == item["owner"]
    assert photo.title == item["title"] and photo.owner_name == item.get("ownername", "")
    assert photo.license == int(item.get("license", -1))
    assert photo.uploaded == int(item.get("dateupload", -1))
    first = next((size for size in chain if f"url_{size}" in item), "")
    assert photo.size == first
    if first:
        assert photo.url == item[f"url_{first}"]
        assert (photo.width, photo.height) == (int(item[f"width_{first}"]), int(item[f"height_{first}"]))
    numeric = ("license", "dateupload", "width_", "height_")
    numbers = {k: int(v) if k.startswith(numeric) else v for k, v in item.items()}
    assert parse_photo(numbers, chain) == photo  # "5" and 5 are the same license


@settings(max_examples=examples(200))
@given(
    payload=st.dictionaries(st.text(max_size=8), json_values), pad=st.sampled_from(["", " ", "\n", "\r\n\t"])
)
def test_json_and_jsonp_envelopes_decode_alike(payload: dict, pad: str) -> None:
    text = json.dumps(payload)
    expected = json.loads(text)  # NaN != NaN: compare with what JSON itself gives back
    for body in (text, f"jsonFlickrApi({text})"):
        assert json.dumps(_decode(pad + body + pad)) == json.dumps(expected)


bodies = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    json_values.map(lambda v: f"jsonFlickrApi({json.dumps(v)})"),
    st.integers(1, 50_000).map(lambda n: "[" * n + "]" * n),  # deeper than Python's recursion limit
    st.integers(1, 50_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.just('<rsp stat="fail"><err code="105" msg="Service currently unavailable" /></rsp>'),
    st.just("<html><body>502 Bad Gateway</body></html>"),
    st.builds(
        lambda code, message: json.dumps({"stat": "fail", "code": code, "message": message}),
        json_values,
        json_values,
    ),
    st.builds(lambda photos: json.dumps({"stat": "ok", "photos": photos}), json_values),
)


class Scripted(BaseHTTPRequestHandler):
    """Answers every POST with the status, headers and body the test set last."""

    answer: tuple[int, str, bytes] = (200, "application/json", b"{}")
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, retry_after, body = self.answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def flickr() -> Iterator[FlickrClient]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/services/rest/"
    with FlickrClient("0123456789abcdef", api_url=url, rate=10_000, backoff=Backoff(retries=0)) as client:
        yield client
    server.shutdown()
    server.server_close()


@settings(max_examples=examples(80))
@given(
    status=st.sampled_from([200, 200, 200, 400, 404, 429, 500, 503]),
    retry_after=st.sampled_from(["", "1", "-5", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "9" * 400]),
    body=bodies,
)
def test_any_answer_over_http_is_a_payload_or_a_photoclass_error(
    flickr: FlickrClient, status: int, retry_after: str, body: str
) -> None:
    Scripted.answer = (status, retry_after, body.encode("utf-8", "surrogatepass"))
    try:
        payload = flickr.call("flickr.photos.search", text="owl")
    except PhotoclassError as e:
        assert "0123456789abcdef" not in str(e) and "\n" not in str(e)
        return
    assert status == 200 and payload["stat"] == "ok"


small_numbers = st.one_of(
    st.integers(-2, 12), st.integers(-2, 12).map(str), scalars.filter(lambda v: not isinstance(v, int))
)
# Totals above 4,000 make the client split the query by upload date, window after window, as
# long as the answer says so: not something one page served again and again can test.
totals = st.one_of(st.integers(-2, 4000), st.integers(-2, 4000).map(str), st.text("ab -.", max_size=5))
search_pages = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "page": small_numbers,
            "pages": small_numbers,
            "total": totals,
            "photo": st.one_of(json_values, st.lists(st.one_of(any_results, json_values), max_size=5)),
        },
    ),
)


@settings(max_examples=examples(60))
@given(photos=search_pages)
def test_a_search_yields_results_or_raises_a_photoclass_error(flickr: FlickrClient, photos: object) -> None:
    """Whatever an `ok` answer holds (the same page is served for every page asked)."""
    Scripted.answer = (200, "", json.dumps({"stat": "ok", "photos": photos}).encode())
    try:
        results = list(flickr.search({"text": "owl"}))
    except PhotoclassError as e:
        assert "\n" not in str(e)
        return
    assert all(isinstance(item, dict) for item in results)
    assert len({str(item.get("id")) for item in results}) == len(results)  # each once
