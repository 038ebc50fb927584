"""The model server's request handling, for any well-formed HTTP request a client may send
(any path, query, body: photos of every format, broken photos, junk): an answer always comes,
never a 5xx, every API answer and every error is JSON with a one-line reason, and a readable
photo is predicted with the `top_k` asked for.

Only the public HTTP interface is used, over real loopback sockets, so the test does not depend
on how the server is built: `served` below is the one place that names the server.
"""

from __future__ import annotations

import http.client
import io
import json
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from PIL import Image

import photoclass
from photoclass.bundle import save_bundle
from photoclass.models import create_model

from .conftest import examples

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a server for a small bundle on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("served") / "model"
    model = create_model("small-cnn", len(CLASSES), 48, pretrained=False)
    save_bundle(folder, model, {"architecture": "small-cnn", "classes": CLASSES, "image_size": 48,
                                "mean": [0.5] * 3, "std": [0.25] * 3})  # fmt: skip
    with photoclass.serve(folder, port=0) as server:
        yield server.url


def encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


@st.composite
def photos(draw: st.DrawFn) -> bytes:
    """A real photo file of a random size, mode and format."""
    width, height = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    mode = draw(st.sampled_from(["RGB", "L", "RGBA", "P", "1", "I;16"]))
    fmt = draw(st.sampled_from(["JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF"]))
    image = Image.new(mode, (width, height), draw(st.integers(0, 255)))
    try:
        return encoded(image, fmt)
    except (OSError, KeyError, ValueError):  # a mode this format cannot store
        return encoded(image.convert("RGB"), fmt)


bodies = st.one_of(
    photos(),
    photos().flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),  # cut short
    st.binary(max_size=300),
    st.just(b""),
)
# `top_k` values `int()` refuses although `str.isdigit` accepts them once broke the server
# (a dropped connection, a 500); `test_top_k_that_int_refuses_is_a_400` pins them.
INT_REFUSES = ["²", "9" * 5000]
top_ks = st.one_of(
    st.integers(0, 10).map(str),
    st.text(max_size=6).filter(lambda t: t.isdecimal() or not t.isdigit()),
    st.sampled_from(["-1", "1.5", " 2", "٣", "9" * 4000, "0x3", "1e2"]),
)
paths = st.one_of(
    st.sampled_from(
        ["/", "/index.html", "/api/info", "/api/predict", "/healthz", "/api/predict/", "//api/predict"]
    ),
    st.text(max_size=20).map(lambda t: "/" + quote(t, safe="/")),
)


def ask(base: str, method: str, target: str, body: bytes | None) -> tuple[int, str, bytes]:
    host, port = urlsplit(base).hostname, urlsplit(base).port
    conn = http.client.HTTPConnection(host, port, timeout=20)
    try:
        conn.request(method, target, body=body, headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


def check_answer(method: str, target: str, status: int, kind: str, answer: bytes) -> None:
    """What every answer must be: no 5xx; JSON with a one-line `error` for every error, JSON for
    every API answer (a redirect, e.g. of a trailing slash, aside); for a prediction, the
    classes with the `top_k` asked for."""
    event(f"{method} {urlsplit(target).path if status != 404 else '(elsewhere)'}: HTTP {status}")
    assert status < 500, f"{status}: {answer[:200]!r}"
    if (urlsplit(target).path.startswith("/api/") and status == 200) or status >= 400:
        assert kind.startswith("application/json"), f"{status} answered as {kind}"
        payload = json.loads(answer)
        if status >= 400:
            assert isinstance(payload["error"], str) and "\n" not in payload["error"]
            assert "Traceback" not in payload["error"]
    if status == 200 and urlsplit(target).path == "/api/predict":
        payload = json.loads(answer)
        top_k = dict(parse_qsl(urlsplit(target).query)).get("top_k", "1")
        k = int(top_k) if top_k.isdecimal() else 1  # decimal digits of any script: "٢" is 2
        assert [t["label"] for t in payload["top"]][:1] == [payload["label"]]
        assert len(payload["top"]) == min(max(1, k), len(CLASSES)) and payload["label"] in CLASSES
        assert 0 <= payload["probability"] <= 1


@settings(max_examples=examples(50))
@given(top_k=st.none() | top_ks, body=bodies, whole=photos())
def test_any_upload_is_predicted_or_refused_with_a_json_reason(
    served: str, top_k: str | None, body: bytes, whole: bytes
) -> None:
    target = "/api/predict" + ("" if top_k is None else "?top_k=" + quote(top_k))
    check_answer("POST", target, *ask(served, "POST", target, body))
    status, kind, answer = ask(served, "POST", "/api/predict?top_k=2", whole)
    assert status == 200, f"a whole photo was refused: {answer[:200]!r}"  # every format it may be in
    check_answer("POST", "/api/predict?top_k=2", status, kind, answer)


@settings(max_examples=examples(40))
@given(method=st.sampled_from(["GET", "POST"]), path=paths, top_k=st.none() | top_ks, body=bodies)
def test_any_request_gets_an_answer_and_errors_are_json(
    served: str, method: str, path: str, top_k: str | None, body: bytes
) -> None:
    target = path + ("" if top_k is None else "?top_k=" + quote(top_k))
    check_answer(method, target, *ask(served, method, target, body if method == "POST" else None))


@pytest.mark.parametrize("top_k", INT_REFUSES, ids=["superscript-two", "5000-digits"])
def test_top_k_that_int_refuses_is_a_400(served: str, top_k: str) -> None:
    photo = encoded(Image.new("RGB", (8, 8)), "PNG")
    status, kind, answer = ask(served, "POST", "/api/predict?top_k=" + quote(top_k), photo)
    assert status == 400 and kind.startswith("application/json") and "top_k" in json.loads(answer)["error"]
