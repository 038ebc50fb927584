"""The downloader: validation of each body, atomic writes, retries over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from photoclass.collecting import download as dl
from photoclass.collecting.download import HostPacer, Job, check_image, download, jpeg_size, write_atomic
from photoclass.config import CollectConfig
from photoclass.sim import Faults, SimServer
from photoclass.sim.corpus import render_jpeg
from photoclass.sim.server import HTML_PAGE, _claim_size, _corrupt

JPEG = render_jpeg("cat", 1, 320)


def check(body: bytes, content_type: str = "image/jpeg") -> object:
    return check_image(body, content_type, min_side=64, max_pixels=40_000_000)


def test_a_whole_jpeg_passes_with_its_size_and_hashes() -> None:
    checked = check(JPEG)
    assert isinstance(checked, dl.Checked)
    with Image.open(io.BytesIO(JPEG)) as image:
        assert (checked.width, checked.height) == image.size
    assert len(checked.sha256) == 64 and len(checked.phash) == 16


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"", "image/jpeg", "empty"),
        (HTML_PAGE, "text/html; charset=utf-8", "html"),
        (HTML_PAGE, "image/jpeg", "html"),  # a CDN error page that claims to be a photo
        (JPEG[: len(JPEG) // 2], "image/jpeg", "truncated"),
        (_corrupt(JPEG, "7"), "image/jpeg", "corrupt"),
        (_claim_size(JPEG, 30000, 30000), "image/jpeg", "too_large"),
        (render_jpeg("cat", 1, 40), "image/jpeg", "too_small"),
        (JPEG[:2] + os.urandom(300), "image/jpeg", "not_jpeg"),
    ],
)
def test_bad_bodies_are_rejected_with_a_reason(body: bytes, content_type: str, reason: str) -> None:
    assert check(body, content_type) == reason


def test_png_placeholders_are_not_jpegs() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (500, 375), "grey").save(buffer, "PNG")
    assert check(buffer.getvalue(), "image/png") == "not_jpeg"


def test_jpeg_size_reads_baseline_and_progressive_headers() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (123, 45)).save(buffer, "JPEG", progressive=True)
    assert jpeg_size(buffer.getvalue()) == (123, 45)
    assert jpeg_size(JPEG) == Image.open(io.BytesIO(JPEG)).size
    assert jpeg_size(b"GIF89a") is None


def test_write_atomic_leaves_the_whole_file_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "cat" / "1.jpg"
    write_atomic(dest, JPEG)
    assert dest.read_bytes() == JPEG and [p.name for p in dest.parent.iterdir()] == ["1.jpg"]

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(dl.os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_atomic(tmp_path / "cat" / "2.jpg", JPEG)
    assert [p.name for p in dest.parent.iterdir()] == ["1.jpg"], "no temporary file left behind"


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


def jobs_for(sim: SimServer, folder: Path, n: int, size: str = "s") -> list[Job]:
    photos = [p for p in sim.corpus.photos if size in p.sizes][:n]
    return [Job(p.id, sim.flickr.photo_url(p, size), folder / f"{p.id}.jpg") for p in photos]


def fast(**overrides: object) -> CollectConfig:
    settings = {"backoff": 0.01, "timeout": 5.0, "concurrency": 8} | overrides
    return dataclasses.replace(CollectConfig(), **settings)


def test_transient_faults_are_retried_until_every_photo_is_whole(
    start_sim: Callable[..., SimServer], tmp_path: Path
) -> None:
    faults = Faults(server_error=0.2, rate_limit=0.1, retry_after=0, truncated=0.15)
    sim = start_sim(faults=faults)
    results = download(jobs_for(sim, tmp_path, 40), fast())
    assert [r.status for r in results] == ["ok"] * 40
    retried = [reason for r in results for reason in r.retried]
    assert {"http_503", "http_429", "truncated"} <= set(retried)
    assert len(retried) == sum(sim.flickr.served.values()), "every fault seen and retried"
    assert set(sim.flickr.served) == {"image:server_error", "image:rate_limit", "image:truncated"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{r.id}.jpg" for r in results)


def test_a_hanging_server_times_out_and_the_retry_succeeds(
    start_sim: Callable[..., SimServer], tmp_path: Path
) -> None:
    sim = start_sim(faults=Faults(timeout=0.3, hang=3.0))
    results = download(jobs_for(sim, tmp_path, 10), fast(timeout=0.5))
    assert all(r.status == "ok" for r in results)
    assert "timeout" in {reason for r in results for reason in r.retried}


def test_bad_photos_are_rejected_and_never_written(
    start_sim: Callable[..., SimServer], tmp_path: Path
) -> None:
    sim = start_sim(faults=Faults(html=0.2, corrupt=0.2, tiny=0.1, bomb=0.1))
    results = download(jobs_for(sim, tmp_path, 40), fast())
    reasons = {r.error for r in results if r.status == "rejected"}
    assert reasons == {"html", "corrupt", "too_small", "too_large"}
    assert all(r.attempts == 1 for r in results), "bad content is not retried"
    written = {p.name for p in tmp_path.iterdir()}
    assert written == {f"{r.id}.jpg" for r in results if r.status == "ok"}


def test_missing_photos_fail_without_retries(sim: SimServer, tmp_path: Path) -> None:
    job = jobs_for(sim, tmp_path, 1)[0]
    gone = dataclasses.replace(job, url=job.url.replace(".jpg", "x.jpg"))
    [result] = download([gone], fast())
    assert (result.status, result.error, result.attempts) == ("failed", "http_404", 1)


def test_a_body_over_the_size_cap_is_refused(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dl, "MAX_BYTES", 1000)
    [result] = download(jobs_for(sim, tmp_path, 1), fast())
    assert (result.status, result.error) == ("failed", "too_large")


def test_a_photo_already_on_disk_is_checked_not_fetched(sim: SimServer, tmp_path: Path) -> None:
    whole, broken = jobs_for(sim, tmp_path, 2)
    download([whole], fast())
    broken.dest.write_bytes(whole.dest.read_bytes()[:500])  # left by some other writer
    requests = sim.flickr.image_requests
    results = {r.id: r for r in download([whole, broken], fast())}
    assert sim.flickr.image_requests == requests + 1, "only the broken file is fetched again"
    assert results[whole.id].status == results[broken.id].status == "ok"
    assert check(broken.dest.read_bytes()) == results[broken.id].checked


def test_download_works_from_inside_a_running_event_loop(sim: SimServer, tmp_path: Path) -> None:
    async def notebook_cell() -> list[dl.Result]:
        return download(jobs_for(sim, tmp_path, 3), fast())

    assert [r.status for r in asyncio.run(notebook_cell())] == ["ok"] * 3
