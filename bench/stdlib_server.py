"""The baseline for bench/serve.py: `photoclass serve` as it was before the ASGI server (commit
ce5c3b7, `src/photoclass/serving/app.py`), kept here, trimmed to its two API routes, so the
benchmark can still run it. The standard library's threading HTTP server, one photo per
forward pass: each request decodes in its own thread, then waits for a lock around the model.
It calls the same decoding and inference functions as the new server, computed by PyTorch as
they were then (ENGINE "torch"; "auto" gives it onnxruntime like the new server, to compare
the servers alone).

    python bench/stdlib_server.py MODEL [ENGINE]     # prints its URL, serves until killed
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

import photoclass
from photoclass.data.decode import UnreadableImage, decode_image
from photoclass.prediction.predict import predict_pixels
from photoclass.serving.app import MAX_BODY, model_info


def main() -> None:
    bundle = photoclass.load_model(sys.argv[1], engine=sys.argv[2] if len(sys.argv) > 2 else "torch")
    lock = threading.Lock()
    size = bundle.image_size
    predict_pixels(bundle, np.zeros((1, size, size, 3), dtype=np.uint8))  # warm-up, as it did

    def predict(body: bytes, top_k: int) -> dict[str, Any]:
        tick = time.perf_counter()
        pixels = decode_image(body, size)
        with lock:
            top = predict_pixels(bundle, pixels[None], top_k=top_k)[0].top
        return {
            "label": top[0][0],
            "probability": top[0][1],
            "top": [{"label": label, "probability": p} for label, p in top],
            "ms": round((time.perf_counter() - tick) * 1000, 1),
        }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._json(200, model_info(bundle))

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
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
                self._json(200, predict(body, max(1, int(top_k))))
            except UnreadableImage as e:
                self._json(400, {"error": str(e)})

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    print(f"serving at http://127.0.0.1:{httpd.server_address[1]}", file=sys.stderr, flush=True)
    httpd.serve_forever(0.2)


if __name__ == "__main__":
    main()
