"""`photoclass serve`: real HTTP over loopback (httpx against uvicorn on 127.0.0.1, port 0) to
a really trained model, the command line in a real process, and the page in a real browser."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import photoclass
from photoclass.cli import app
from photoclass.config import ServeConfig
from photoclass.serving.server import ModelServer, listen

from ..helpers import ARTIFACTS, CHROMIUM, browser_page


@pytest.fixture(scope="module")
def server(trained_binary: Path):
    with photoclass.serve(trained_binary, port=0) as running:
        yield running


def photos(data: Path, n: int = 3) -> list[Path]:
    return [p for cls in ("cat", "owl") for p in sorted((data / "val" / cls).iterdir())[:n]]


def test_predictions_over_http_are_the_apis(server, trained_binary: Path, cats_owls_tiny: Path) -> None:
    files = photos(cats_owls_tiny)
    expected = photoclass.predict(trained_binary, files, top_k=2)
    for path, want in zip(files, expected, strict=True):
        response = httpx.post(f"{server.url}/api/predict?top_k=2", content=path.read_bytes())
        answer = response.json()
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        assert answer["label"] == want.label
        assert answer["probability"] == pytest.approx(want.probability, abs=1e-5)
        assert [t["label"] for t in answer["top"]] == [label for label, _ in want.top]
        assert answer["unknown"] is want.unknown is not None
        assert sum(t["probability"] for t in answer["top"]) == pytest.approx(1.0, abs=1e-5)
        assert answer["ms"] > 0


def test_a_photo_in_the_upload_form_field_is_the_same_as_the_body(server, cats_owls_tiny: Path) -> None:
    photo = photos(cats_owls_tiny, 1)[-1]
    raw = httpx.post(f"{server.url}/api/predict?top_k=2", content=photo.read_bytes()).json()
    form = httpx.post(
        f"{server.url}/api/predict?top_k=2",
        files={"file": (photo.name, photo.read_bytes(), "image/jpeg")},
        data={"note": "a text field alongside is fine"},
    )
    assert form.status_code == 200
    assert form.json()["top"] == raw["top"]


@pytest.mark.parametrize(
    ("method", "path", "send", "status", "message"),
    [
        ("POST", "/api/predict", {"content": b"<html>not a photo</html>"}, 400, "not an image"),
        ("POST", "/api/predict", {"content": b""}, 400, "empty request"),
        ("POST", "/api/predict?top_k=two", {"content": b"x"}, 400, "top_k must be a whole number"),
        ("POST", "/api/predict", {"files": {"photo": ("a.jpg", b"x")}}, 400, "form field `file`"),
        ("POST", "/api/predict", {"files": {"file": ("a.jpg", b"GIF89a")}}, 400, "not an image"),
        (
            "POST",
            "/api/predict",
            {"content": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
            400,
            "multipart",
        ),
        ("POST", "/api/upload", {"content": b"x"}, 404, "POST photos to /api/predict"),
        ("GET", "/etc/passwd", {}, 404, "no such page"),
        ("GET", "/api/predict", {}, 405, "GET is not allowed"),
    ],
)
def test_bad_requests_get_a_reason_in_json(server, method, path, send, status, message) -> None:
    response = httpx.request(method, f"{server.url}{path}", **send)
    assert response.status_code == status and response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]


def test_a_truncated_photo_is_refused_and_the_server_carries_on(server, cats_owls_tiny: Path) -> None:
    whole = photos(cats_owls_tiny, 1)[0].read_bytes()
    response = httpx.post(f"{server.url}/api/predict", content=whole[: len(whole) // 3])
    assert response.status_code == 400 and "truncated" in response.json()["error"]
    assert httpx.post(f"{server.url}/api/predict", content=whole).status_code == 200


def test_info_health_and_page(server, trained_binary: Path) -> None:
    info = httpx.get(f"{server.url}/api/info").json()
    meta = json.loads((trained_binary / "photoclass.json").read_text())
    assert info["classes"] == ["cat", "owl"] and info["architecture"] == "small-cnn"
    assert info["validation"]["accuracy"] == meta["validation"]["accuracy"]
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["status"] == "ok" and health["batches"] >= 1  # the warm-up pass, at least
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    body = page.content
    assert b"small-cnn \xc2\xb7 cat, owl" in body and b"<script" in body
    assert b"http" not in body.split(b"<script")[1]  # the page calls no other server


def test_class_names_are_escaped_in_the_page(trained_binary: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(trained_binary, tmp_path / "model")
    meta = json.loads((folder / "photoclass.json").read_text())
    meta["classes"] = ["<img src=x onerror=alert(1)>", "owl"]
    (folder / "photoclass.json").write_text(json.dumps(meta))
    with photoclass.serve(folder, port=0) as server:
        page = httpx.get(server.url).text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_it_listens_on_loopback_unless_told_otherwise(trained_binary: Path) -> None:
    server = photoclass.serve(trained_binary, port=0)
    try:
        assert server.url.startswith("http://127.0.0.1:")
    finally:
        server.stop()


def test_answers_are_not_held_back_by_nagles_algorithm() -> None:
    # asyncio (so uvicorn) sets TCP_NODELAY only on sockets whose protocol says TCP; without it
    # every answer waited ~40 ms for the client's delayed ACK.
    async def accepted_nodelay() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Accept(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        listening = listen("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Accept, sock=listening)
        async with server:
            _, writer = await asyncio.open_connection(*listening.getsockname())
            try:
                return await asyncio.wait_for(seen, 10)
            finally:
                writer.close()

    assert asyncio.run(accepted_nodelay()) != 0


def test_bad_options_are_one_line_errors_in_api_terms(trained_binary: Path) -> None:
    with pytest.raises(photoclass.ConfigError, match=r"`max_batch` must be in \[1, 4096\] \(got 0\)"):
        photoclass.serve(trained_binary, port=0, max_batch=0)
    with pytest.raises(photoclass.ConfigError, match="pass the model folder"):
        photoclass.serve(photoclass.load_model(trained_binary), port=0, workers=2)
    server = ModelServer(trained_binary, ServeConfig(port=0, workers=2))
    try:
        with pytest.raises(photoclass.ConfigError, match="serve them with `run"):
            server.start()
    finally:
        server.stop()


def test_cli_refuses_a_busy_port_in_one_line(trained_binary: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", str(trained_binary), "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "choose another --port" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_cli_serves_with_its_key_until_interrupted(
    trained_binary: Path, cats_owls_tiny: Path, workers: int
) -> None:
    """The command as a user runs it: the key from the environment, Ctrl-C to stop."""
    env = {**os.environ, "PHOTOCLASS_SERVE_API_KEY": "k3y-from-env"}
    cmd = [sys.executable, "-m", "photoclass", "serve", str(trained_binary), "--port", "0"]
    proc = subprocess.Popen([*cmd, "--workers", str(workers)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        assert "serving" in first and " at http://127.0.0.1:" in first, first
        url = first.split(" at ")[1].split()[0]
        photo = photos(cats_owls_tiny, 1)[0].read_bytes()
        with httpx.Client(base_url=url, timeout=120) as client:
            assert client.get("/healthz").status_code == 200  # waits for the workers to start
            assert client.post("/api/predict", content=photo).status_code == 401
            keyed = client.post(
                "/api/predict", content=photo, headers={"Authorization": "Bearer k3y-from-env"}
            )
            assert keyed.status_code == 200 and keyed.json()["label"] in ("cat", "owl")
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == 0, rest
    assert "stopped" in rest and "Traceback" not in rest and "k3y-from-env" not in first + rest


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


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}")
def test_the_page_asks_once_for_the_api_key(trained_binary: Path, cats_owls_tiny: Path) -> None:
    files = photos(cats_owls_tiny, 2)
    asked: list[str] = []
    with (
        photoclass.serve(trained_binary, port=0, api_key="s3cret") as server,
        browser_page(server.url, 900, 900) as (page, errors),
    ):

        def answer(dialog) -> None:
            asked.append(dialog.message)
            dialog.accept("s3cret")

        page.on("dialog", answer)
        page.set_input_files("#files", [str(f) for f in files])
        page.wait_for_function(f"document.querySelectorAll('li[data-label]').length === {len(files)}")
        failed = page.eval_on_selector_all(".error", "all => all.length")
    assert asked == ["This server needs its API key:"]
    assert failed == 0
    assert all("401" in e for e in errors)  # the first answers, before the key was given
