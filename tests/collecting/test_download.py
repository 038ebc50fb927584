"""The downloader over real HTTP against the simulator: retries, timeouts, bad content handed
to the validator, photos gone from Flickr, hosts that keep refusing, and the sink."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import select
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme

from photoclass.collecting import download as dl
from photoclass.collecting.download import HostPacer, HostWatch, Job, download
from photoclass.collecting.split import IncomingFolder, photo_path
from photoclass.collecting.validate import Checked, check_image
from photoclass.config import CollectConfig
from photoclass.sim import Faults, SimServer

validate = functools.partial(check_image, min_side=64, max_pixels=40_000_000)


def test_host_pacer_spaces_requests_and_a_429_holds_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(round(seconds, 3))

    async def scenario() -> None:
        pacer = HostPacer(rate=10.0)
        monkeypatch.setattr(dl.asyncio, "sleep", fake_sleep)
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "time", lambda: 100.0)  # time stands still
        await pacer.wait("a")
        await pacer.wait("a")
        await pacer.wait("b")  # another host has its own pace
        pacer.hold("a", 30)
        await pacer.wait("a")

    asyncio.run(scenario())
    assert waits == [0.1, 30.0]


# -- over HTTP, against the simulator --------------------------------------------------------------


def jobs_for(sim: SimServer, n: int, size: str = "s") -> list[Job]:
    photos = [p for p in sim.corpus.photos if size in p.sizes][:n]
    return [Job(p.id, sim.flickr.photo_url(p, size)) for p in photos]


def fast(**overrides: object) -> CollectConfig:
    settings = {"backoff": 0.01, "timeout": 5.0, "concurrency": 8} | overrides
    return dataclasses.replace(CollectConfig(), **settings)


def fetch(
    jobs: list[Job], data: Path, config: CollectConfig | None = None, **kwargs: object
) -> list[dl.Result]:
    """`download` into DATA/.incoming/cat/, validating photos as `collect` does."""
    sink = IncomingFolder(data, "cat")
    return download(jobs, config or fast(), validate=validate, sink=sink, **kwargs)  # type: ignore[arg-type]


def saved(data: Path) -> set[str]:
    folder = data / ".incoming" / "cat"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_transient_faults_are_retried_until_every_photo_is_whole(
    start_sim: Callable[..., SimServer], tmp_path: Path
) -> None:
    faults = Faults(server_error=0.2, rate_limit=0.1, retry_after=0, truncated=0.15)
    sim = start_sim(faults=faults)
    results = fetch(jobs_for(sim, 40), tmp_path)
    assert [r.status for r in results] == ["ok"] * 40
    retried = [reason for r in results for reason in r.retried]
    assert {"http_503", "http_429", "truncated"} <= set(retried)
    assert len(retried) == sum(sim.flickr.served.values()), "every fault seen and retried"
    assert set(sim.flickr.served) == {"image:server_error", "image:rate_limit", "image:truncated"}
    assert saved(tmp_path) == {f"{r.id}.jpg" for r in results}
    assert all(isinstance(r.checked, Checked) for r in results), "what the validator learned"


def test_a_hanging_server_times_out_and_the_retry_succeeds(
    start_sim: Callable[..., SimServer], tmp_path: Path
) -> None:
    sim = start_sim(faults=Faults(timeout=0.3, hang=3.0))
    results = fetch(jobs_for(sim, 10), tmp_path, fast(timeout=0.5))
    assert all(r.status == "ok" for r in results)
    assert "timeout" in {reason for r in results for reason in r.retried}


def test_bad_photos_are_rejected_by_the_validator_and_never_saved(
    start_sim: Callable[..., SimServer], tmp_path: Path
) -> None:
    sim = start_sim(faults=Faults(html=0.2, corrupt=0.2, tiny=0.1, bomb=0.1))
    results = fetch(jobs_for(sim, 40), tmp_path)
    reasons = {r.error for r in results if r.status == "rejected"}
    assert reasons == {"html", "corrupt", "too_small", "too_large"}
    assert all(r.attempts == 1 for r in results), "bad content is not retried"
    assert saved(tmp_path) == {f"{r.id}.jpg" for r in results if r.status == "ok"}


def test_the_validator_and_the_sink_are_the_callers(sim: SimServer, tmp_path: Path) -> None:
    """Whatever the validator returns for a body is the verdict; the sink receives what passes."""
    kept: dict[str, int] = {}
    flushed: list[int] = []

    class Sizes:
        def saved(self, job_id: str) -> bytes | None:
            return None

        def save(self, job_id: str, body: bytes) -> None:
            kept[job_id] = len(body)

        def flush(self) -> None:
            flushed.append(len(kept))

    def every_other(body: bytes, content_type: str) -> object:
        return len(body) if len(body) % 2 else "even_length"

    results = download(jobs_for(sim, 12), fast(), validate=every_other, sink=Sizes())
    assert {r.id: r.checked for r in results if r.status == "ok"} == kept and kept
    assert flushed == [len(kept)], "flushed once, after the last save"
    assert {r.error for r in results if r.status == "rejected"} <= {"even_length"}


def test_a_deleted_photo_is_unavailable_and_a_missing_one_gone_both_without_retries(
    start_sim: Callable[..., SimServer], tmp_path: Path
) -> None:
    sim = start_sim(faults=Faults(deleted=0.3, missing=0.2))
    results = fetch(jobs_for(sim, 30), tmp_path)
    outcome = {(r.status, r.error) for r in results}
    assert outcome == {("ok", None), ("rejected", "unavailable"), ("rejected", "http_404")}
    assert sum(r.error == "unavailable" for r in results) == sim.flickr.served["photo:deleted"] > 0
    assert all(r.attempts == 1 for r in results), "gone for good: asked once"
    assert saved(tmp_path) == {f"{r.id}.jpg" for r in results if r.status == "ok"}, "no placeholder kept"


def test_a_host_that_keeps_refusing_is_given_up_on_after_the_limit(
    start_sim: Callable[..., SimServer], tmp_path: Path
) -> None:
    sim = start_sim(faults=Faults(photo_rate_limit=1.0, retry_after=0))
    hosts = HostWatch(limit=20)
    results = fetch(jobs_for(sim, 40), tmp_path, fast(concurrency=4), hosts=hosts)
    assert {r.status for r in results} <= {"failed", "stopped"} and "stopped" in {r.status for r in results}
    # No request is started once 20 in a row were refused; those in flight then may finish.
    assert 20 <= sim.flickr.image_requests < 20 + 4
    [(host, reasons)] = hosts.down().items()
    assert host == sim.base_url.split("//")[1] and reasons == {"http_429": sum(reasons.values())}
    again = fetch(jobs_for(sim, 5), tmp_path, hosts=hosts)  # the same run: not asked again
    assert {r.status for r in again} == {"stopped"} and sim.flickr.image_requests < 24


def test_one_answer_resets_the_count_of_refusals(start_sim: Callable[..., SimServer], tmp_path: Path) -> None:
    sim = start_sim(faults=Faults(rate_limit=0.3, retry_after=0))
    hosts = HostWatch(limit=12)
    results = fetch(jobs_for(sim, 40), tmp_path, hosts=hosts)
    assert sim.flickr.served["image:rate_limit"] > 12, "more refusals than the limit, but not in a row"
    assert all(r.status == "ok" for r in results) and not hosts.down()


def test_missing_urls_fail_without_retries(sim: SimServer, tmp_path: Path) -> None:
    job = jobs_for(sim, 1)[0]
    gone = dataclasses.replace(job, url=job.url.replace(".jpg", "x.jpg"))
    [result] = fetch([gone], tmp_path)
    assert (result.status, result.error, result.attempts) == ("rejected", "http_404", 1)


def test_a_body_over_the_size_cap_is_refused(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("photoclass.collecting.fetch.MAX_BYTES", 1000)
    [result] = fetch(jobs_for(sim, 1), tmp_path)
    assert (result.status, result.error) == ("failed", "too_large")


def test_a_photo_already_in_the_sink_is_checked_not_fetched(sim: SimServer, tmp_path: Path) -> None:
    whole, broken = jobs_for(sim, 2)
    fetch([whole], tmp_path)
    body = photo_path(tmp_path, None, "cat", whole.id).read_bytes()
    photo_path(tmp_path, None, "cat", broken.id).write_bytes(body[:500])  # left by some other writer
    requests = sim.flickr.image_requests
    results = {r.id: r for r in fetch([whole, broken], tmp_path)}
    assert sim.flickr.image_requests == requests + 1, "only the broken file is fetched again"
    assert results[whole.id].status == results[broken.id].status == "ok"
    assert (
        validate(photo_path(tmp_path, None, "cat", broken.id).read_bytes(), "image/jpeg")
        == results[broken.id].checked
    )


def test_download_works_from_inside_a_running_event_loop(sim: SimServer, tmp_path: Path) -> None:
    async def notebook_cell() -> list[dl.Result]:
        return fetch(jobs_for(sim, 3), tmp_path)

    assert [r.status for r in asyncio.run(notebook_cell())] == ["ok"] * 3


# -- through a proxy, over TLS, and answers the simulator does not give ---------------------------


class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, body: bytes, content_type: str = "image/jpeg") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """`handler` served on 127.0.0.1 (over TLS with `tls`) from a thread; yields host:port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def photo_of(sim: SimServer) -> bytes:
    return sim.flickr.handle(urlsplit(jobs_for(sim, 1)[0].url).path, {}).body


def test_photos_come_through_the_proxy_the_environment_names(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, str | None]] = []
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # not through itself

    class Proxy(Quiet):  # forwards absolute-URI GETs, as clients ask a proxy for plain HTTP
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            asked.append((self.path, self.headers.get("Proxy-Authorization")))
            with direct.open(self.path) as upstream:
                self.answer(upstream.read(), upstream.headers.get("Content-Type", ""))

    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with serving(Proxy) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://user:s%40cret@{proxy}")
        jobs = jobs_for(sim, 3)
        assert [r.status for r in fetch(jobs, tmp_path)] == ["ok"] * 3
        auth = "Basic " + base64.b64encode(b"user:s@cret").decode()
        assert sorted(asked) == sorted((job.url, auth) for job in jobs)
        # NO_PROXY names hosts reached directly
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert [r.status for r in fetch(jobs_for(sim, 4)[3:], tmp_path)] == ["ok"]
        assert len(asked) == 3


def test_chunked_and_truncated_bodies_and_redirect_loops(sim: SimServer, tmp_path: Path) -> None:
    photo = photo_of(sim)

    class Host(Quiet):
        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/chunked.jpg":  # as a CDN may send it: no length, in chunks
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for at in range(0, len(photo), 5000):
                    part = photo[at : at + 5000]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            elif self.path == "/cut.jpg":  # a length it does not keep to
                self.send_response(200)
                self.send_header("Content-Length", str(len(photo)))
                self.end_headers()
                self.wfile.write(photo[: len(photo) // 2])
                self.close_connection = True
            else:  # a redirect to itself, forever
                self.send_response(302)
                self.send_header("Location", self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

    ids = {"chunked": "101", "cut": "102", "loop": "103"}  # photo ids are numbers
    with serving(Host) as host:
        jobs = [Job(ids[name], f"http://{host}/{name}.jpg") for name in ids]
        results = {
            name: r for r in fetch(jobs, tmp_path, fast(retries=1)) for name in ids if ids[name] == r.id
        }
    assert results["chunked"].status == "ok"
    assert photo_path(tmp_path, None, "cat", "101").read_bytes() == photo
    assert (results["cut"].status, results["cut"].error, results["cut"].attempts) == (
        "failed",
        "truncated",
        2,
    )
    assert (results["loop"].status, results["loop"].error) == ("failed", "redirects")


def test_answers_ended_by_closing_trickled_garbled_and_connections_closed_between_photos(
    sim: SimServer, tmp_path: Path
) -> None:
    photo, connections = photo_of(sim), []

    class Host(Quiet):
        def setup(self) -> None:
            super().setup()
            connections.append(self.client_address)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/to-the-end.jpg":  # no length: the body ends with the connection
                self.send_response(200)
                self.end_headers()
                self.wfile.write(photo)
                self.close_connection = True
            elif self.path == "/trickle.jpg":  # every byte in time, the whole far too late
                self.send_response(200)
                self.send_header("Content-Length", str(len(photo)))
                self.end_headers()
                for at in range(0, len(photo), 100):
                    self.wfile.write(photo[at : at + 100])
                    self.wfile.flush()
                    time.sleep(0.1)
            elif self.path == "/garbled.jpg":  # not HTTP at all
                self.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
                self.close_connection = True
            elif self.path == "/huge-headers.jpg":
                self.send_response(200)
                self.send_header("X-Padding", "x" * 70_000)
                self.end_headers()
                self.close_connection = True
            else:  # kept alive as HTTP/1.1 says, then closed anyway once answered
                self.answer(photo)
                self.close_connection = True

    ids = {"to-the-end": "301", "trickle": "302", "garbled": "303", "huge-headers": "304"}
    with serving(Host) as host:
        jobs = [Job(ids[name], f"http://{host}/{name}.jpg") for name in ids]
        got = {r.id: r for r in fetch(jobs, tmp_path, fast(retries=0, timeout=1.0))}
        assert got["301"].status == "ok"
        assert photo_path(tmp_path, None, "cat", "301").read_bytes() == photo
        # the timeout is for the whole answer, not for each read
        assert (got["302"].status, got["302"].error) == ("failed", "timeout")
        assert (got["303"].status, got["303"].error) == ("failed", "connection")
        assert (got["304"].status, got["304"].error) == ("failed", "connection")
        # one worker, three photos: each on a new connection, none failed or retried for it
        connections.clear()
        closing = [Job(str(400 + i), f"http://{host}/closing-{i}.jpg") for i in range(3)]
        results = fetch(closing, tmp_path, fast(retries=0, concurrency=1))
    assert [(r.status, r.attempts) for r in results] == [("ok", 1)] * 3
    assert len(connections) == 3


def test_photos_over_https_directly_and_through_a_proxy_tunnel(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo, tunnelled_to = photo_of(sim), []

    class Host(Quiet):  # as Flickr's CDN serves photos: over TLS
        def do_GET(self) -> None:  # noqa: N802
            self.answer(photo)

    class Tunnel(Quiet):  # a proxy answering CONNECT by relaying bytes both ways, as for HTTPS
        def do_CONNECT(self) -> None:  # noqa: N802
            tunnelled_to.append(self.path)
            host, port = self.path.rsplit(":", 1)
            with socket.create_connection((host, int(port))) as upstream:
                self.send_response(200, "Connection established")
                self.end_headers()
                ends = [self.connection, upstream]
                while readable := select.select(ends, [], [], 10)[0]:
                    for end in readable:
                        data = end.recv(65536)
                        if not data:
                            return
                        (upstream if end is self.connection else self.connection).sendall(data)
            self.close_connection = True

    ca = trustme.CA()  # a test CA: the host's certificate, and the trust in it
    certified = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(certified)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    monkeypatch.setattr(dl.httpx, "create_ssl_context", lambda: trusting)
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    with serving(Host, certified) as host, serving(Tunnel) as tunnel:
        [direct] = fetch([Job("201", f"https://{host}/a.jpg")], tmp_path)
        assert direct.status == "ok" and not tunnelled_to
        monkeypatch.setenv("HTTPS_PROXY", f"http://{tunnel}")
        [through] = fetch([Job("202", f"https://{host}/b.jpg")], tmp_path)
        assert through.status == "ok" and tunnelled_to == [host]
        assert photo_path(tmp_path, None, "cat", "202").read_bytes() == photo
        # a host whose certificate no trusted CA signed is refused, not read
        monkeypatch.delenv("HTTPS_PROXY")
        monkeypatch.setattr(dl.httpx, "create_ssl_context", ssl.create_default_context)
        [untrusted] = fetch([Job("203", f"https://{host}/c.jpg")], tmp_path, fast(retries=0))
        assert (untrusted.status, untrusted.error, untrusted.attempts) == ("failed", "tls_certificate", 1)
