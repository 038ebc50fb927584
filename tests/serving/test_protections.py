"""What keeps `photoclass serve` standing under load, faults and hostile input: one test per
protection, each over real HTTP on loopback against uvicorn and a really trained model."""

from __future__ import annotations

import hmac
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import photoclass
from photoclass.serving.app import MAX_BODY


@pytest.fixture(scope="module")
def server(trained_binary: Path):
    with photoclass.serve(trained_binary, port=0) as running:
        yield running


@pytest.fixture(scope="module")
def photo(cats_owls_tiny: Path) -> bytes:
    return sorted((cats_owls_tiny / "val" / "cat").iterdir())[0].read_bytes()


def health(server) -> dict:
    return httpx.get(f"{server.url}/healthz").json()


def wait_until(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def raw_exchange(server, head: bytes, body_chunks=()) -> str:
    """Send bytes as they are (no client library tidies them), return what comes back until
    the server closes the connection."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            sock.sendall(chunk)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode("utf-8", "replace")


def test_an_oversized_body_announced_with_expect_100_continue_is_refused_unread(server) -> None:
    reply = raw_exchange(
        server,
        f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}\r\n"
        "Expect: 100-continue\r\n\r\n".encode(),
    )
    assert reply.startswith("HTTP/1.1 413") and '"error":"photo larger than 50 MB"' in reply
    assert "100 Continue" not in reply  # the client was never asked for the body


def test_an_oversized_body_sent_anyway_gets_413_with_its_reason(server) -> None:
    mib = b"\0" * 2**20
    response = httpx.post(f"{server.url}/api/predict", content=mib * (MAX_BODY // len(mib) + 1), timeout=60)
    assert response.status_code == 413 and response.json() == {"error": "photo larger than 50 MB"}


def test_an_oversized_chunked_body_gets_413_not_a_reset_connection(server) -> None:
    """The server reads on past the limit before it answers and closes: a close with unread
    data would reset the connection, and the reset lose the answer."""
    mib = b"\0" * 2**20
    chunks = [b"%x\r\n%s\r\n" % (len(mib), mib)] * (MAX_BODY // len(mib) + 2) + [b"0\r\n\r\n"]
    head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    reply = raw_exchange(server, head, chunks)
    assert reply.startswith("HTTP/1.1 413") and '"error":"photo larger than 50 MB"' in reply
    assert health(server)["in_flight"] == 0


def slow_upload(url: str, photo: bytes, go_on: threading.Event) -> httpx.Response:
    """POST a photo whose second half is sent only once `go_on` is set (the request is in
    the server, being read, meanwhile)."""

    def body():
        yield photo[:1000]
        go_on.wait(30)
        yield photo[1000:]

    return httpx.post(f"{url}/api/predict", content=body(), timeout=60)


def test_a_full_queue_answers_503_with_retry_after(trained_binary: Path, photo: bytes) -> None:
    go_on = threading.Event()
    with photoclass.serve(trained_binary, port=0, max_queue=1) as server, ThreadPoolExecutor(1) as pool:
        first = pool.submit(slow_upload, server.url, photo, go_on)  # holds the one place
        wait_until(lambda: health(server)["in_flight"] == 1)
        refused = httpx.post(f"{server.url}/api/predict", content=photo)
        go_on.set()
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        assert "busy" in refused.json()["error"]
        assert first.result().status_code == 200


def test_concurrent_requests_share_forward_passes(server, trained_binary: Path, cats_owls_tiny: Path) -> None:
    files = [p for cls in ("cat", "owl") for p in sorted((cats_owls_tiny / "val" / cls).iterdir())[:4]]
    expected = {str(p.path): p.label for p in photoclass.predict(trained_binary, files)}
    with photoclass.serve(trained_binary, port=0, max_batch=8, max_wait_ms=300) as server:
        before = health(server)
        start = threading.Barrier(len(files))

        def ask(path: Path) -> str:
            start.wait()
            return httpx.post(f"{server.url}/api/predict", content=path.read_bytes(), timeout=60).json()[
                "label"
            ]

        with ThreadPoolExecutor(len(files)) as pool:
            labels = list(pool.map(ask, files))
        after = health(server)
    assert labels == [expected[str(p)] for p in files]
    assert after["photos"] - before["photos"] == len(files)
    assert after["batches"] - before["batches"] < len(files)


def test_the_api_key_is_required_and_compared_in_constant_time(
    trained_binary: Path, photo: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append((a, b)) or constant_time(a, b))
    with photoclass.serve(trained_binary, port=0, api_key="s3cret") as server:
        url = server.url
        missing = httpx.post(f"{url}/api/predict", content=photo)
        wrong = httpx.get(f"{url}/api/info", headers={"Authorization": "Bearer guess"})
        basic = httpx.get(f"{url}/api/info", auth=("user", "s3cret"))
        right = httpx.post(f"{url}/api/predict", content=photo, headers={"Authorization": "Bearer s3cret"})
        lower = httpx.get(f"{url}/api/info", headers={"Authorization": "bearer s3cret"})
        open_pages = [httpx.get(f"{url}{path}").status_code for path in ("/", "/healthz")]
    for refused in (missing, wrong, basic):
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in refused.json()["error"] and "s3cret" not in refused.text
    assert right.status_code == 200 and lower.status_code == 200
    assert open_pages == [200, 200]
    assert (b"guess", b"s3cret") in compared and (b"s3cret", b"s3cret") in compared


def test_cors_is_off_unless_origins_are_named(server, trained_binary: Path) -> None:
    preflight = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
    refused = httpx.options(f"{server.url}/api/predict", headers=preflight)
    plain = httpx.get(f"{server.url}/api/info", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-origin" not in plain.headers
    assert refused.headers["content-type"] == "application/json"
    with photoclass.serve(trained_binary, port=0, cors_origins=("https://elsewhere.example",)) as allowing:
        allowed = httpx.options(f"{allowing.url}/api/predict", headers=preflight)
        other = httpx.options(
            f"{allowing.url}/api/predict", headers={**preflight, "Origin": "https://evil.example"}
        )
    assert allowed.headers["access-control-allow-origin"] == "https://elsewhere.example"
    assert "access-control-allow-origin" not in other.headers


def test_a_failing_model_answers_json_without_a_traceback(trained_binary: Path, photo: bytes) -> None:
    bundle = photoclass.load_model(trained_binary)
    with photoclass.serve(bundle, port=0) as server:
        # Break the served network after its warm-up: every forward pass now raises.
        conv = next(m for m in bundle.model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.weight = torch.nn.Parameter(torch.zeros(1, 1, 1, 1))
        failed = httpx.post(f"{server.url}/api/predict", content=photo)
        still_up = health(server)
    assert failed.status_code == 500 and failed.headers["content-type"] == "application/json"
    assert failed.json() == {"error": "the model failed (RuntimeError); the server's log has the details"}
    assert "Traceback" not in failed.text and 'File "' not in failed.text
    assert still_up["status"] == "ok"


def test_stopping_answers_the_request_in_flight(trained_binary: Path, photo: bytes) -> None:
    server = photoclass.serve(trained_binary, port=0).start()
    url, go_on = server.url, threading.Event()
    with ThreadPoolExecutor(2) as pool:
        in_flight = pool.submit(slow_upload, url, photo, go_on)
        wait_until(lambda: health(server)["in_flight"] == 1)
        stopping = pool.submit(server.stop)
        wait_until(lambda: refuses_connections(url))  # stopping, while the upload is half sent
        time.sleep(1)  # and still half sent well after a stop that did not wait would be over
        go_on.set()
        answer = in_flight.result()
        stopping.result()
    assert answer.status_code == 200 and answer.json()["label"] in ("cat", "owl")


def refuses_connections(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=1)
    # Refused outright, or (a probe that reached the listen queue just as the port closed)
    # accepted and then closed without an answer: either way the server is stopping.
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
        return True
    return False


# What a client can send: anything. The server answers each in JSON, as a photo (200) or with
# a reason (4xx), and never fails (5xx).
content_types = st.sampled_from(
    [None, "image/jpeg", "application/octet-stream", "multipart/form-data", "multipart/form-data; boundary=b"]
)


def damaged(photo: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, or a real photo cut short or with some of its bytes overwritten."""
    at = st.integers(0, len(photo))
    return st.one_of(
        st.binary(max_size=2048),
        at.map(lambda cut: photo[:cut]),
        st.tuples(at, st.binary(min_size=1, max_size=64)).map(
            lambda t: photo[: t[0]] + t[1] + photo[t[0] + len(t[1]) :]
        ),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), content_type=content_types, top_k=st.text(max_size=4))
def test_any_request_gets_a_json_answer_never_a_failure(server, photo, data, content_type, top_k) -> None:
    body = data.draw(damaged(photo), label="body")
    headers = {"Content-Type": content_type} if content_type else {}
    response = httpx.post(f"{server.url}/api/predict", params={"top_k": top_k}, content=body, headers=headers)
    assert response.status_code in (200, 400), response.text
    answer = response.json()
    assert ("label" in answer) if response.status_code == 200 else answer["error"]
