"""`photoclass sim serve` + `photoclass collect`, as the README tells a user without a key."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sim_serve_then_collect_from_it(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "photoclass", "sim", "serve", "--port", str(port), "--photos-per-class", "40"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        banner = ""
        deadline = time.monotonic() + 60
        while "FLICKR_API_KEY=" not in banner and time.monotonic() < deadline:
            banner += server.stderr.readline()
        key = re.search(r"FLICKR_API_KEY=(\w+)", banner)[1]
        url = f"http://127.0.0.1:{port}/services/rest/"
        assert url in banner
        collect = [
            sys.executable,
            "-m",
            "photoclass",
            "collect",
            "cat",
            "owl",
            "--out",
            str(tmp_path / "data"),
        ]
        options = ["--per-class", "10", "--size", "m", "--api-url", url]
        result = subprocess.run(
            [*collect, *options], env={**os.environ, "FLICKR_API_KEY": key}, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        photos = list((tmp_path / "data").glob("*/*/*.jpg"))
        assert len(photos) == 20
        assert key not in result.stdout + result.stderr
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
