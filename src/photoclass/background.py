"""A server running in a background thread of this process, started and stopped one way: the
Flickr simulator (`photoclass.sim.server.SimServer`, on the standard library's HTTP server)
and the model server (`photoclass.serving.server.ModelServer`, on uvicorn) are both one.

    with server:            # start(): serving once the block is entered
        httpx.get(server.url)
                            # stop(): no new connection, the serving thread joined, port closed

A subclass says how to serve (`_serve`, blocking until `_shutdown` is called), when it is
ready, and which socket it listens on.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Self

from photoclass.errors import PhotoclassError


class BackgroundServer:
    """Start once, stop once; `url` is where it listens (bound before it starts)."""

    _thread: threading.Thread | None = None
    thread_name = "photoclass-server"

    def _listener(self) -> socket.socket:
        """The listening socket."""
        raise NotImplementedError

    def _serve(self) -> None:
        """Serve until `_shutdown` is called (in this thread)."""
        raise NotImplementedError

    def _ready(self) -> bool:
        """Whether the first request can be answered (after `_serve` began)."""
        return True

    def _shutdown(self) -> None:
        """Make `_serve` return: stop accepting, finish what is in flight."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        host, port = self._listener().getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> Self:
        """Serve from a background thread (once: starting a started server does nothing);
        returns once the first request can be answered."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self.thread_name, daemon=True)
            self._thread.start()
            while not self._ready():
                if not self._thread.is_alive():
                    raise PhotoclassError(
                        f"the server stopped while starting ({self.thread_name}); its log says why"
                    )
                time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving, wait for the serving thread, and close the port."""
        if self._thread is not None:
            self._shutdown()
            self._thread.join()
            self._thread = None
        self._listener().close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
