"""`photoclass serve`: real HTTP over loopback to a really trained model, and the page in a
real browser."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

import photoclass
from photoclass.cli import app
from photoclass.serving import PredictServer
from photoclass.serving.app import MAX_BODY

from ..helpers import ARTIFACTS, CHROMIUM, browser_page


@pytest.fixture(scope="module")
def server(trained_binary: Path):
    with PredictServer(photoclass.load_model(trained_binary), port=0) as running:
        yield running


def request(server: PredictServer, method: str, path: str, body: bytes | None = None, headers=None):
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def photos(data: Path, n: int = 3) -> list[Path]:
    return [p for cls in ("cat", "owl") for p in sorted((data / "val" / cls).iterdir())[:n]]


def test_predictions_over_http_are_the_apis(server, trained_binary: Path, cats_owls_tiny: Path) -> None:
    files = photos(cats_owls_tiny)
    expected = photoclass.predict(trained_binary, files, top_k=2)
    for path, want in zip(files, expected, strict=True):
        status, kind, body = request(server, "POST", "/api/predict?top_k=2", path.read_bytes())
        answer = json.loads(body)
        assert status == 200 and kind == "application/json"
        assert answer["label"] == want.label
        assert answer["probability"] == pytest.approx(want.probability, abs=1e-5)
        assert [t["label"] for t in answer["top"]] == [label for label, _ in want.top]
        assert answer["unknown"] is want.unknown is not None
        assert sum(t["probability"] for t in answer["top"]) == pytest.approx(1.0, abs=1e-5)
        assert answer["ms"] > 0


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/api/predict", b"<html>not a photo</html>", 400, "not an image"),
        ("POST", "/api/predict", b"", 400, "empty request"),
        ("POST", "/api/predict?top_k=two", b"x", 400, "top_k must be a whole number"),
        ("POST", "/api/upload", b"x", 404, "POST photos to /api/predict"),
        ("GET", "/etc/passwd", None, 404, "no such page"),
    ],
)
def test_bad_requests_get_a_reason(server, method, path, body, status, message) -> None:
    got, kind, payload = request(server, method, path, body)
    assert got == status and kind == "application/json"
    assert message in json.loads(payload)["error"]


def test_a_truncated_photo_is_refused_and_the_server_carries_on(server, cats_owls_tiny: Path) -> None:
    whole = photos(cats_owls_tiny, 1)[0].read_bytes()
    status, _, payload = request(server, "POST", "/api/predict", whole[: len(whole) // 3])
    assert status == 400 and "truncated" in json.loads(payload)["error"]
    assert request(server, "POST", "/api/predict", whole)[0] == 200


def test_an_oversized_body_is_refused_unread(server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(4096):  # the server answers, then closes the connection
            data += chunk
    reply = data.decode()
    assert reply.startswith("HTTP/1.1 413") and "larger than 50 MB" in reply


def test_info_and_page(server, trained_binary: Path) -> None:
    status, _, body = request(server, "GET", "/api/info")
    info = json.loads(body)
    meta = json.loads((trained_binary / "photoclass.json").read_text())
    assert status == 200 and info["classes"] == ["cat", "owl"] and info["architecture"] == "small-cnn"
    assert info["validation"]["accuracy"] == meta["validation"]["accuracy"]
    status, kind, page = request(server, "GET", "/")
    assert status == 200 and kind.startswith("text/html")
    assert (
        b"small-cnn \xc2\xb7 cat, owl" in page
        and b"<script" in page
        and b"http" not in page.split(b"<script")[1]
    )


def test_class_names_are_escaped_in_the_page(trained_binary: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(trained_binary, tmp_path / "model")
    meta = json.loads((folder / "photoclass.json").read_text())
    meta["classes"] = ["<img src=x onerror=alert(1)>", "owl"]
    (folder / "photoclass.json").write_text(json.dumps(meta))
    with PredictServer(photoclass.load_model(folder), port=0) as server:
        page = request(server, "GET", "/")[2].decode()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_cli_refuses_a_busy_port_in_one_line(trained_binary: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", str(trained_binary), "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "choose another --port" in result.output
    assert "Traceback" not in result.output


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}")
def test_the_page_predicts_chosen_photos_in_a_browser(
    server, trained_binary: Path, cats_owls_tiny: Path
) -> None:
    files = photos(cats_owls_tiny, 2)
    expected = {Path(p.path).name: p.label for p in photoclass.predict(trained_binary, files)}
    ARTIFACTS.mkdir(exist_ok=True)
    with browser_page(server.url, 900, 900) as (page, errors):
        page.set_input_files("#files", [str(f) for f in files])
        page.wait_for_function(f"document.querySelectorAll('li[data-label]').length === {len(files)}")
        shown = page.eval_on_selector_all(
            "li[data-label]", "all => all.map(li => [li.querySelector('img').alt, li.dataset.label])"
        )
        bars = page.eval_on_selector_all("li meter", "all => all.length")
        page.screenshot(path=str(ARTIFACTS / "serve.png"), full_page=True)
    assert errors == []
    assert dict(shown) == expected
    assert bars == 2 * len(files)  # both classes' probabilities under each photo
