"""The model server on uvicorn: bound at construction, then run in the foreground (the CLI)
or in a background thread (tests, notebooks).

    server = ModelServer(bundle, ServeConfig(port=0))    # the port is taken now
    with server:                                          # serving until the block ends
        httpx.post(f"{server.url}/api/predict", content=photo)
    ModelServer(bundle, ServeConfig()).run()              # until Ctrl-C or SIGTERM

Stopping is graceful: the port closes, requests in flight are answered (up to
`GRACEFUL_S`), then the batcher finishes its queue.
"""

from __future__ import annotations

import os
import socket
from functools import partial
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from photoclass.background import BackgroundServer
from photoclass.bundle import Bundle, load_bundle
from photoclass.config import ServeConfig, validate
from photoclass.errors import ConfigError
from photoclass.serving.app import create_app

GRACEFUL_S = 30  # the longest a stop waits for requests in flight


class ModelServer(BackgroundServer):
    """`bundle` (or, with several `workers`, the model folder each worker loads) served over
    HTTP as `config` says, with an optional bearer `api_key`."""

    def __init__(self, model: Bundle | Path, config: ServeConfig, *, api_key: str | None = None) -> None:
        validate(config)
        if config.workers > 1 and isinstance(model, Bundle):
            raise ConfigError(
                "`workers` > 1 loads the model in each worker process: pass the model folder, not a loaded model"
            )
        self.config = config
        self._socket = listen(config.host, config.port)
        if isinstance(model, Bundle):
            app: Starlette | partial[Starlette] = create_app(model, config, api_key)
        else:  # rebuilt in each worker process (uvicorn pickles its configuration to them)
            app = partial(worker_app, Path(model), config, api_key)
        self._uvicorn = uvicorn.Config(
            app,
            factory=isinstance(app, partial),
            workers=config.workers,
            lifespan="on",  # the batcher lives there: a server that cannot start it must not start
            log_config=None,  # the host program (the CLI, a notebook) configures logging
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_S,
            server_header=False,
        )
        self._server: uvicorn.Server | None = None

    def run(self) -> None:
        """Serve in this thread until SIGINT (Ctrl-C) or SIGTERM, then stop gracefully."""
        if self.config.workers > 1:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(self._uvicorn, sockets=[self._socket]).run()
        else:
            uvicorn.Server(self._uvicorn).run(sockets=[self._socket])

    thread_name = "photoclass-serve"

    def start(self) -> ModelServer:
        """Serve from a background thread; returns once the first request can be answered."""
        if self.config.workers > 1:
            raise ConfigError("`workers` > 1 runs worker processes: serve them with `run()`")
        self._server = uvicorn.Server(self._uvicorn)
        return super().start()

    def _listener(self) -> socket.socket:
        return self._socket

    def _serve(self) -> None:
        assert self._server is not None
        self._server.run(sockets=[self._socket])

    def _ready(self) -> bool:
        return self._server is not None and self._server.started

    def _shutdown(self) -> None:
        assert self._server is not None
        self._server.should_exit = True


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port`, or a one-line error saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The protocol named, not left 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # sockets whose `proto` says TCP. Left on, it held each answer's body until the client's
    # delayed ACK of its headers: 40 ms added to every request (60 ms instead of 16 for one).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror}); choose another `port`") from None
    sock.set_inheritable(True)  # worker processes serve this very socket
    return sock


def worker_app(model: Path, config: ServeConfig, api_key: str | None) -> Starlette:
    """One worker process's application: its own copy of the model, and its share of the
    cores (torch would otherwise start a thread per core in every worker)."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // config.workers))
    return create_app(load_bundle(model, config.device), config, api_key)
