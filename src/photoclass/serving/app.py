"""The ASGI application: a drag-and-drop page and a JSON API over one model.

Routes: `GET /` the page; `GET /healthz` liveness and load (no key needed); `GET /api/info`
the model (classes, image size, validation accuracy); `POST /api/predict[?top_k=K]` with a
photo's bytes as the body, or as the multipart form field `file` -> `{"label",
"probability", "top": [{"label", "probability"}...], "ms"}`.

Every error is JSON `{"error": reason}`, never a traceback: 400 for a body that is not a
readable photo (with the reason), 401 without the API key when one is set, 404/405 for
other routes, 413 for a body over `MAX_BODY`, 503 with `Retry-After` when `max_queue`
requests are already in, 500 when the model itself fails (the details go to the log).

Each upload is decoded in a thread pool (PIL releases the GIL), then waits in a `Batcher`
that runs the model on whatever arrived together, `parallel_batches` passes at once in
inference threads, so the event loop never computes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import logging
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import numpy as np
import torch
from starlette.applications import Starlette
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from photoclass.bundle import Bundle
from photoclass.config import ServeConfig
from photoclass.data.decode import UnreadableImage, decode_image
from photoclass.prediction.predict import Scored, predict_pixels
from photoclass.serving.batching import Batcher, Overloaded

log = logging.getLogger(__name__)

MAX_BODY = 50 * 1024 * 1024  # bytes: a 100-megapixel JPEG is ~30 MB
LINGER_S = 5  # the longest an oversized upload is read (and dropped) before the 413
NO_STORE = {"Cache-Control": "no-store"}  # answers are about one photo: never cache them


def create_app(bundle: Bundle, config: ServeConfig, api_key: str | None = None) -> Starlette:
    """The application serving `bundle`; its batcher and decoding threads live as long as
    the server runs (the ASGI lifespan), and its first forward pass happens before the first
    request (oneDNN sets its kernels up then)."""
    page = render_page(bundle)
    info = model_info(bundle)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        # The cores this process has (all, or a worker's share) split between the passes.
        threads = max(1, torch.get_num_threads() // config.parallel_batches)
        batcher: Batcher[np.ndarray, Scored] = Batcher(
            lambda photos: rank(bundle, photos, threads),
            max_batch=config.max_batch,
            max_wait=config.max_wait_ms / 1000,
            max_queue=config.max_queue,
            threads=config.parallel_batches,
        )
        size = bundle.image_size
        with ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="photoclass-decode") as decoding:
            async with batcher:
                await batcher.submit(np.zeros((size, size, 3), np.uint8))  # warm-up
                yield {"batcher": batcher, "decoding": decoding}
            # Leaving `async with` answered every queued photo: uvicorn has already waited
            # for the requests in flight, and this lets their batch finish.

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers=NO_STORE)

    async def healthz(request: Request) -> Response:
        batcher: Batcher = request.state.batcher
        return JSONResponse(
            {
                "status": "ok",
                "in_flight": batcher.admitted,
                "batches": batcher.batches,
                "photos": batcher.items,
            },
            headers=NO_STORE,
        )

    async def api_info(request: Request) -> Response:
        return JSONResponse(info, headers=NO_STORE)

    async def predict(request: Request) -> Response:
        tick = time.perf_counter()
        top_k = request.query_params.get("top_k", "1")
        # isascii: int() refuses "²", which isdigit() accepts; the length: int() refuses over
        # 4,300 digits, and any top_k above the class count means every class anyway.
        if not (top_k.isascii() and top_k.isdigit() and len(top_k) <= 6):
            raise HTTPException(400, f"top_k must be a whole number below 1000000, not {top_k[:20]!r}")
        batcher: Batcher[np.ndarray, Scored] = request.state.batcher
        with batcher.admit():  # before reading the body: a full server reads nothing more
            photo = await read_photo(request)
            loop = asyncio.get_running_loop()
            try:
                pixels = await loop.run_in_executor(
                    request.state.decoding, decode_image, photo, bundle.image_size
                )
            except UnreadableImage as e:
                raise HTTPException(400, str(e)) from None
            try:
                scored = await batcher.submit(pixels)
            except Exception as e:
                log.exception("the model failed on a batch (%s: %s)", type(e).__name__, e)
                raise HTTPException(
                    500, f"the model failed ({type(e).__name__}); the server's log has the details"
                ) from None
        top = scored.top[: max(1, int(top_k))]
        return JSONResponse(
            {
                "label": top[0][0],
                "probability": top[0][1],
                "top": [{"label": label, "probability": p} for label, p in top],
                "unknown": scored.unknown,
                "ms": round((time.perf_counter() - tick) * 1000, 1),
            },
            headers=NO_STORE,
        )

    middleware = []
    if config.cors_origins:  # off unless origins are named: a page elsewhere cannot call the API
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    if api_key:
        middleware.append(Middleware(BearerKey, key=api_key))
    return Starlette(
        routes=[
            Route("/", index),
            Route("/index.html", index),
            Route("/healthz", healthz),
            Route("/api/info", api_info),
            Route("/api/predict", predict, methods=["POST"]),
        ],
        middleware=middleware,
        exception_handlers={HTTPException: http_error, Overloaded: overloaded, Exception: internal_error},
        lifespan=lifespan,
    )


def rank(bundle: Bundle, photos: list[np.ndarray], threads: int) -> list[Scored]:
    """Every class for each photo, most likely first, and its unknown flag: one forward pass
    for the whole batch, on `threads` threads."""
    return predict_pixels(
        bundle, np.stack(photos), top_k=len(bundle.classes), batch_size=len(photos), threads=threads
    )


async def read_photo(request: Request) -> bytes:
    """The photo's bytes: the body, or its multipart field `file`; at most `MAX_BODY` kept."""
    stream = request.stream()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        await linger(request, stream)
        raise too_large()
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > MAX_BODY:  # a chunked upload does not declare its length
            await linger(request, stream)
            raise too_large()
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body = await form_file(request.headers, body)
    if not body:
        raise HTTPException(
            400, "empty request: send the photo's bytes as the body, or as the form field `file`"
        )
    return body


async def linger(request: Request, stream: AsyncIterator[bytes]) -> None:
    """Read and drop what a client still sends of an oversized body (up to `MAX_BODY` more, for
    `LINGER_S`) before answering 413. Closing a connection with unread data resets it, and the
    reset can destroy the answer before the client reads it (Apache's and nginx's "lingering
    close"). A client that waits for `100 Continue` has sent nothing: it gets the 413 at once."""
    if request.headers.get("expect", "").lower() == "100-continue":
        return
    dropped = 0
    with contextlib.suppress(TimeoutError, ClientDisconnect):
        async with asyncio.timeout(LINGER_S):
            async for chunk in stream:
                dropped += len(chunk)
                if dropped > MAX_BODY:
                    break


async def form_file(headers: Headers, body: bytes) -> bytes:
    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(headers, stream(), max_files=1, max_fields=16).parse()
    except MultiPartException as e:
        raise HTTPException(400, f"unreadable multipart upload ({e.message})") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(400, "multipart upload without a file in the form field `file`")
        return await upload.read()
    finally:
        await form.close()


def too_large() -> HTTPException:
    # The unread rest of the body would be taken for the next request: close the connection.
    return HTTPException(413, f"photo larger than {MAX_BODY // 2**20} MB", headers={"Connection": "close"})


class BearerKey:
    """Refuse `/api/` requests without `Authorization: Bearer <key>`, compared in constant time
    so the answer's timing does not tell how much of a guess was right. The page and
    `/healthz` stay open: the page asks for the key, load balancers check health without one."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
            if not (scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.key)):
                response = error(
                    401,
                    "this server needs its API key: send the header `Authorization: Bearer <key>`",
                    {"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers={**NO_STORE, **(headers or {})})


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message, path = exc.detail, request.url.path
    if exc.status_code == 404:
        message = (
            f"no such endpoint: {path}; POST photos to /api/predict"
            if request.method == "POST"
            else f"no such page: {path}; try / or /api/info"
        )
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {path}; POST photos to /api/predict"
    return error(exc.status_code, message, exc.headers)


async def overloaded(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Overloaded)
    return error(
        503,
        f"the server is busy; retry in {exc.retry_after} s",
        {"Retry-After": str(exc.retry_after)},
    )


async def internal_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises the exception after this answer, so uvicorn logs its traceback.
    return error(500, "internal error; the server's log has the details")


def model_info(bundle: Bundle) -> dict[str, Any]:
    meta = bundle.meta
    validation = meta.get("validation", {})
    return {
        "architecture": meta["architecture"],
        "classes": bundle.classes,
        "image_size": bundle.image_size,
        "precision": bundle.precision,
        "validation": {k: validation.get(k) for k in ("accuracy", "accuracy_ci95", "n")},
    }


def render_page(bundle: Bundle) -> str:
    """The page, rendered once: the model does not change while it is served."""
    template = resources.files("photoclass.serving").joinpath("page.html").read_text(encoding="utf-8")
    classes = ", ".join(bundle.classes)
    return template.replace("{{title}}", html.escape(f"photoclass: {classes}")).replace(
        "{{model}}", html.escape(f"{bundle.meta['architecture']} · {classes}")
    )
