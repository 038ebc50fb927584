"""Fixtures for the collect tests: Flickr simulators on loopback, a server replaying answers
shaped like the real Flickr's, configs aimed at them, and checks of what a dataset folder
holds."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from PIL import Image

from photoclass.config import CollectConfig
from photoclass.sim import SimServer


@pytest.fixture
def start_sim() -> Iterator[Callable[..., SimServer]]:
    """Start simulators (cat and owl, 200 photos each, unless told otherwise); all stop after."""
    started: list[SimServer] = []

    def start(**kwargs: object) -> SimServer:
        kwargs = {"classes": ("cat", "owl"), "photos_per_class": 200} | kwargs
        started.append(SimServer(**kwargs).start())  # type: ignore[arg-type]
        return started[-1]

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(start_sim: Callable[..., SimServer]) -> SimServer:
    return start_sim()


# What a replay server answers: status, Content-Type, body, and optionally extra headers.
Answer = tuple[int, str, bytes] | tuple[int, str, bytes, dict[str, str]]


class Replay:
    """Flickr as recorded: a server on 127.0.0.1 that answers each request (path, form or query
    parameters) with whatever `answer` returns, byte for byte, and keeps every request in
    `asked`. For the answers the simulator does not give, or gives too cleanly."""

    def __init__(self, answer: Callable[[str, dict[str, str]], Answer]) -> None:
        self.asked: list[tuple[str, dict[str, str]]] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                self._reply(url.path, dict(parse_qsl(url.query)))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                self._reply(urlsplit(self.path).path, form)

            def _reply(self, path: str, params: dict[str, str]) -> None:
                replay.asked.append((path, params))
                status, content_type, body, *extra = answer(path, params)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.api_url = f"{self.base_url}/services/rest/"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def calls(self, method: str) -> int:
        return sum(1 for _, params in self.asked if params.get("method") == method)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def replay() -> Iterator[Callable[[Callable[[str, dict[str, str]], Answer]], Replay]]:
    """Start replay servers; all stop after the test."""
    started: list[Replay] = []

    def start(answer: Callable[[str, dict[str, str]], Answer]) -> Replay:
        started.append(Replay(answer))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def config_for() -> Callable[..., CollectConfig]:
    """A config aimed at a simulator: small photos, fast pacing and backoff, few per class."""

    def make(sim: SimServer, **overrides: object) -> CollectConfig:
        base = {
            "classes": ("cat", "owl"),
            "per_class": 30,
            "size": "s",
            "api_url": sim.api_url,
            "api_rate": 1000.0,
            "backoff": 0.01,
            "timeout": 5.0,
            "concurrency": 8,
        }
        return CollectConfig(**(base | overrides))  # type: ignore[arg-type]

    return make


def dataset_state(data: Path) -> tuple[dict[str, str], list[tuple]]:
    """Every file (relative path -> sha256) and every manifest row that should not depend
    on how the run went (attempt counts do)."""
    files = {
        str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data.rglob("*"))
        if p.is_file() and p.suffix == ".jpg"
    }
    with sqlite3.connect(data / "manifest.sqlite") as db:
        rows = db.execute(
            "SELECT id, class, rank, status, error, split, sha256, phash FROM photos ORDER BY id"
        ).fetchall()
    return files, rows


def assert_clean_dataset(data: Path) -> None:
    """Only whole photos where the manifest says, plus the manifest and the attribution."""
    with sqlite3.connect(data / "manifest.sqlite") as db:
        kept = {
            f"{split}/{cls}/{pid}.jpg": sha
            for pid, cls, split, sha in db.execute(
                "SELECT id, class, split, sha256 FROM photos WHERE status = 'ok'"
            )
        }
    extra = {"manifest.sqlite", "ATTRIBUTION.csv"}
    files = {str(p.relative_to(data)) for p in data.rglob("*") if p.is_file()}
    assert files == set(kept) | extra, "files on disk differ from the manifest's kept photos"
    for name, sha in kept.items():
        body = (data / name).read_bytes()
        assert hashlib.sha256(body).hexdigest() == sha
        with Image.open(data / name) as image:
            image.load()  # a full decode, not the downloader's draft
            assert image.format == "JPEG"
