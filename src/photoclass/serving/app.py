"""A model behind HTTP on this machine: a drag-and-drop page and a JSON API.

    photoclass serve models/cats-owls                  # http://127.0.0.1:8000
    curl --data-binary @cat.jpg http://127.0.0.1:8000/api/predict?top_k=2

Routes: `GET /` the page; `GET /api/info` the model (classes, image size, validation
accuracy); `POST /api/predict[?top_k=K]` with a photo's bytes as the body -> `{"label",
"probability", "top": [{"label", "probability"}...], "ms"}`. A body that is not a readable
photo gets HTTP 400 with `{"error": reason}`, one over `MAX_BODY` 413.

The standard library's threading HTTP server: photos are read and decoded in parallel
threads (PIL releases the GIL), while the model runs one batch at a time, since torch
already uses every core for one. It listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import html
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from photoclass.bundle import Bundle
from photoclass.data.decode import UnreadableImage, decode_image
from photoclass.prediction.predict import predict_pixels

MAX_BODY = 50 * 1024 * 1024  # bytes: a 100-megapixel JPEG is ~30 MB


class PredictServer:
    """Serve `bundle` on `host:port` (port 0 picks a free one) in a background thread.

    >>> with PredictServer(photoclass.load_model("models/co")) as server:  # doctest: +SKIP
    ...     print(server.url)
    """

    def __init__(self, bundle: Bundle, host: str = "127.0.0.1", port: int = 8000) -> None:
        self.bundle = bundle
        self._lock = threading.Lock()
        self.page = _render_page(bundle)  # rendered once: the model does not change
        self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        self._httpd.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def info(self) -> dict[str, Any]:
        meta = self.bundle.meta
        validation = meta.get("validation", {})
        return {
            "architecture": meta["architecture"],
            "classes": self.bundle.classes,
            "image_size": self.bundle.image_size,
            "precision": self.bundle.precision,
            "validation": {k: validation.get(k) for k in ("accuracy", "accuracy_ci95", "n")},
        }

    def predict(self, body: bytes, top_k: int) -> dict[str, Any]:
        """One photo's bytes -> the JSON answer (raises UnreadableImage)."""
        tick = time.perf_counter()
        pixels = decode_image(body, self.bundle.image_size)
        with self._lock:
            scored = predict_pixels(self.bundle, pixels[None], top_k=top_k)[0]
        return {
            "label": scored.top[0][0],
            "probability": scored.top[0][1],
            "top": [{"label": label, "probability": p} for label, p in scored.top],
            "unknown": scored.unknown,
            "ms": round((time.perf_counter() - tick) * 1000, 1),
        }

    def warm_up(self) -> None:
        """One forward pass, so the first request does not pay for oneDNN's kernel set-up."""
        size = self.bundle.image_size
        with self._lock:
            predict_pixels(self.bundle, np.zeros((1, size, size, 3), dtype=np.uint8))

    def start(self) -> PredictServer:
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (`photoclass serve`)."""
        try:
            self._httpd.serve_forever(0.2)
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> PredictServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _render_page(bundle: Bundle) -> bytes:
    template = resources.files("photoclass.serving").joinpath("page.html").read_text(encoding="utf-8")
    classes = ", ".join(bundle.classes)
    return (
        template.replace("{{title}}", html.escape(f"photoclass: {classes}"))
        .replace("{{model}}", html.escape(f"{bundle.meta['architecture']} · {classes}"))
        .encode()
    )


def _handler(server: PredictServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: repeated requests skip the TCP set-up

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = urlsplit(self.path).path
            if path in ("/", "/index.html"):
                self._send(200, server.page, "text/html; charset=utf-8")
            elif path == "/api/info":
                self._json(200, server.info())
            else:
                self._json(404, {"error": f"no such page: {path}; try / or /api/info"})

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path != "/api/predict":
                self._json(404, {"error": f"no such endpoint: {url.path}; POST photos to /api/predict"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True  # the unread body would poison the next request
                self._json(413, {"error": f"photo larger than {MAX_BODY // 2**20} MB"})
                return
            body = self.rfile.read(length)
            if not body:
                self._json(400, {"error": "empty request: send the photo's bytes as the body"})
                return
            top_k = parse_qs(url.query).get("top_k", ["1"])[0]
            if not top_k.isdigit():
                self._json(400, {"error": f"top_k must be a whole number, not {top_k!r}"})
                return
            try:
                self._json(200, server.predict(body, max(1, int(top_k))))
            except UnreadableImage as e:
                self._json(400, {"error": str(e)})

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet: the CLI prints the URL, errors go back to the client

    return Handler
