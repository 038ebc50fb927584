"""The Flickr client: envelope, errors, retries, pacing, sizes; and search against the simulator
(paging, the 4,000-result cap, missing sizes)."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest
from PIL import Image

from photoclass.collecting import flickr
from photoclass.collecting.flickr import FlickrClient, Pacer, check_key, find_api_key, parse_photo, size_chain
from photoclass.collecting.retry import Backoff, parse_retry_after
from photoclass.errors import ConfigError, FlickrError, NetworkError, PhotoclassError
from photoclass.sim import SimServer

from .conftest import Answer, Replay

KEY = "0123456789abcdef0123456789abcdef"
OK = {"photos": {"page": 1, "pages": 1, "perpage": 500, "total": "1", "photo": []}, "stat": "ok"}


class Script:
    """A MockTransport handler answering with a scripted list of responses, recording requests."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses, self.requests = list(responses), []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0)


def client(script: Script, **kwargs: object) -> FlickrClient:
    kwargs = {"rate": 1000.0, "backoff": Backoff(retries=3, base=0.001)} | kwargs
    return FlickrClient(KEY, transport=httpx.MockTransport(script), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff sleeps, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(flickr.time, "sleep", slept.append)
    return slept


def test_call_posts_the_key_in_the_body_never_in_the_url() -> None:
    script = Script(httpx.Response(200, json=OK))
    client(script).call("flickr.photos.search", text="owl")
    request = script.requests[0]
    assert request.method == "POST" and KEY not in str(request.url)
    form = dict(parse_qsl(request.content.decode()))
    assert form["api_key"] == KEY and form["format"] == "json" and form["nojsoncallback"] == "1"


def test_a_fail_envelope_with_http_200_raises_flickr_error() -> None:
    fail = {"stat": "fail", "code": 18, "message": "Illogical arguments"}
    with pytest.raises(FlickrError) as caught:
        client(Script(httpx.Response(200, json=fail))).call("flickr.photos.search")
    assert caught.value.code == 18 and "Illogical arguments" in str(caught.value)


def test_invalid_key_stops_at_once_and_says_where_to_get_one(sleeps: list[float]) -> None:
    fail = {"stat": "fail", "code": 100, "message": "Invalid API Key (Key not found)"}
    script = Script(httpx.Response(200, json=fail))
    with pytest.raises(FlickrError) as caught:
        client(script).call("flickr.photos.search")
    message = str(caught.value)
    assert "https://www.flickr.com/services/apps/create/" in message and "\n" not in message
    assert len(script.requests) == 1 and sleeps == []


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(200, json={"stat": "fail", "code": 105, "message": "Service unavailable"}),
        httpx.Response(200, json={"stat": "fail", "code": 10, "message": "Search unavailable"}),
        httpx.Response(200, json={"stat": "fail", "code": 106, "message": "Write failed"}),
        httpx.Response(503, text="down"),
        httpx.Response(200, text="<html>proxy error</html>"),
    ],
)
def test_temporary_failures_are_retried(failure: httpx.Response, sleeps: list[float]) -> None:
    script = Script(failure, failure, httpx.Response(200, json=OK))
    assert client(script).call("flickr.photos.search")["stat"] == "ok"
    assert len(script.requests) == 3 and len(sleeps) == 2


def test_429_waits_at_least_retry_after(sleeps: list[float]) -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json=OK))
    client(script).call("flickr.photos.search")
    assert sleeps[0] >= 7


def test_retries_give_up_with_one_clear_line(sleeps: list[float]) -> None:
    script = Script(*[httpx.Response(502, text="bad gateway")] * 4)
    with pytest.raises(PhotoclassError) as caught:
        client(script).call("flickr.photos.search")
    assert "failed 4 times" in str(caught.value) and "HTTP 502" in str(caught.value)
    assert sleeps == sorted(sleeps), "backoff grows"


def test_backoff_is_jittered_exponential_and_honours_retry_after() -> None:
    backoff = Backoff(retries=5, base=1.0, cap=60.0)
    for attempt in range(4):
        delays = {backoff.delay(attempt) for _ in range(50)}
        assert min(delays) >= 2**attempt / 2 and max(delays) <= 2**attempt
        assert len(delays) > 1, "jittered"
    assert backoff.delay(0, retry_after=30) == 30
    assert backoff.delay(20) <= 60


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("12", now=0) == 12
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40) == 60
    assert parse_retry_after("soon", now=0) is None and parse_retry_after(None, now=0) is None


def test_jsonp_answers_are_understood() -> None:
    body = "jsonFlickrApi(" + json.dumps(OK) + ")"
    assert client(Script(httpx.Response(200, text=body))).call("x")["stat"] == "ok"


def test_pacer_spaces_calls_and_keeps_the_hourly_budget() -> None:
    now, slept = [0.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(rate=2.0, budget=5, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pacer.wait()
    assert slept == pytest.approx([0.5] * 4), "2 calls a second"
    pacer.wait()  # the 6th call in an hour waits for the first to be an hour old
    assert now[0] == pytest.approx(3600)


def test_size_chain_prefers_the_asked_size_then_the_nearest() -> None:
    assert size_chain("c") == ("c", "z", "l", "m")
    assert size_chain("z")[0] == "z" and "t" not in size_chain("z")
    with pytest.raises(ConfigError, match="unknown `size`"):
        size_chain("xl")


def test_parse_photo_falls_back_and_refuses_ids_that_are_not_digits() -> None:
    item = {"id": "123", "owner": "9@N01", "url_z": "http://x/z.jpg", "width_z": "640", "license": "4"}
    photo = parse_photo(item, size_chain("c"))
    assert photo is not None and photo.size == "z" and photo.width == 640 and photo.license == 4
    assert photo.page_url == "https://www.flickr.com/photos/9@N01/123"
    assert parse_photo(item | {"id": "../../etc/passwd"}, size_chain("c")) is None
    assert parse_photo(item | {"id": "１２３"}, size_chain("c")) is None  # fullwidth digits
    assert parse_photo(item | {"owner": "a/../b"}, size_chain("c")) is None
    no_size = parse_photo({"id": "5", "owner": "o"}, size_chain("c"))
    assert no_size is not None and no_size.url == ""


def test_api_key_comes_from_config_file_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="services/apps/create"):
        find_api_key()
    user = tmp_path / "xdg" / "photoclass" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('flickr_api_key = "from-user-config"\n')
    assert find_api_key() == "from-user-config"
    monkeypatch.setenv("FLICKR_API_KEY", "from-env")
    assert find_api_key() == "from-env"
    given = tmp_path / "run.toml"
    given.write_text('[collect]\nflickr_api_key = "from-given-file"\nper_class = 5\n')
    assert find_api_key(config_file=given) == "from-given-file"
    assert find_api_key(" passed-in ", given) == "passed-in"
    with pytest.raises(ConfigError, match="empty"):
        find_api_key("  ", given)
    with pytest.raises(ConfigError, match="empty"):
        FlickrClient("")  # the client looks its key up the same way


# -- against the simulator ---------------------------------------------------------------------


def sim_client(sim: SimServer, key: str | None = None) -> FlickrClient:
    return FlickrClient(key or sim.api_key, api_url=sim.api_url, rate=1000.0, backoff=Backoff(3, 0.001))


def test_search_pages_through_every_result_once(sim: SimServer) -> None:
    params = {"text": "owl", "tags": "owl", "tag_mode": "all", "sort": "relevance", "extras": "url_c"}
    with sim_client(sim) as fl:
        ids = [item["id"] for item in fl.search(params)]
        assert len(ids) == len(set(ids)) == 200
        assert all(sim.corpus.by_id[i].class_name == "owl" for i in ids)
        assert fl.calls == 1  # 200 results fit one page of 500


def test_search_is_lazy(start_sim: Callable[..., SimServer]) -> None:
    sim = start_sim(photos_per_class=1200)
    with sim_client(sim) as fl:
        results = fl.search({"text": "cat", "sort": "relevance"})
        assert fl.calls == 0
        for _ in range(501):
            next(results)
        assert fl.calls == 2


def test_search_slices_by_upload_date_past_the_4000_cap(start_sim: Callable[..., SimServer]) -> None:
    sim = start_sim(classes=("owl",), photos_per_class=9000)
    with sim_client(sim) as fl:
        # Paging alone repeats: page 9 of 500 holds the results of page 1 again.
        page9 = fl.call("flickr.photos.search", text="owl", per_page=500, page=9)["photos"]
        page1 = fl.call("flickr.photos.search", text="owl", per_page=500, page=1)["photos"]
        assert int(page9["total"]) == 9000 and page9["photo"] == page1["photo"]
        ids = [item["id"] for item in fl.search({"text": "owl", "sort": "relevance"})]
    assert len(ids) == len(set(ids)) == 9000


def test_url_c_is_missing_for_old_photos_and_the_chain_falls_back(sim: SimServer) -> None:
    chain = size_chain("c")
    params = {"text": "cat", "extras": ",".join(f"url_{s}" for s in chain)}
    with sim_client(sim) as fl:
        photos = [parse_photo(item, chain) for item in fl.search(params)]
    sizes = {p.size for p in photos if p is not None}
    assert "c" in sizes and "z" in sizes, "some photos lack url_c, as on Flickr before 2012"
    assert all(p is not None and p.url for p in photos)


def test_licenses_and_wrong_key_against_the_simulator(sim: SimServer) -> None:
    with sim_client(sim) as fl:
        table = fl.licenses()
    assert table[4][0] == "CC BY 2.0" and table[0][0] == "All Rights Reserved"
    with sim_client(sim, key="not-the-key") as fl, pytest.raises(FlickrError) as caught:
        fl.licenses()
    assert caught.value.code == 100


# -- answers shaped like the real Flickr's, replayed over loopback -----------------------------------

UNAVAILABLE = "Sorry, the Flickr API service is not currently available."


def json_answer(payload: dict, status: int = 200) -> Answer:
    return status, "application/json", json.dumps(payload).encode()


def xml_fail(code: int, message: str) -> Answer:
    body = f'<?xml version="1.0" encoding="utf-8" ?>\n<rsp stat="fail">\n\t<err code="{code}" msg="{message}" />\n</rsp>\n'
    return 200, "text/xml; charset=utf-8", body.encode()


def in_turn(*answers: Answer) -> Callable[[str, dict[str, str]], Answer]:
    """Answer the API's calls with `answers`, one after the other."""
    queue = list(answers)
    return lambda path, params: queue.pop(0)


def replay_client(server: Replay, retries: int = 3) -> FlickrClient:
    return FlickrClient(KEY, api_url=server.api_url, rate=1000.0, backoff=Backoff(retries, 0.001))


@pytest.mark.parametrize("code", [0, 201])
def test_codes_0_and_201_mean_try_again(
    replay: Callable[..., Replay], code: int, sleeps: list[float]
) -> None:
    fail = {"stat": "fail", "code": code, "message": UNAVAILABLE}
    server = replay(in_turn(json_answer(fail), json_answer(fail), json_answer(OK)))
    assert replay_client(server).call("flickr.photos.search", text="owl")["stat"] == "ok"
    assert len(server.asked) == 3 and len(sleeps) == 2


def test_an_xml_failure_reaches_the_user_with_its_code_and_message(
    replay: Callable[..., Replay], sleeps: list[float]
) -> None:
    server = replay(in_turn(xml_fail(112, "Method &quot;flickr.nope&quot; not found")))
    with pytest.raises(FlickrError) as caught:
        replay_client(server).call("flickr.nope")
    assert (
        caught.value.code == 112 and str(caught.value) == 'Flickr error 112: Method "flickr.nope" not found'
    )
    assert len(server.asked) == 1, "not an answer to ask again"
    # ... and an XML "try again later" is tried again.
    server = replay(in_turn(xml_fail(105, "Service currently unavailable"), json_answer(OK)))
    assert replay_client(server).call("flickr.photos.search")["stat"] == "ok" and len(server.asked) == 2


def test_a_429_with_an_html_body_waits_and_says_what_it_was(
    replay: Callable[..., Replay], sleeps: list[float]
) -> None:
    page = b"<html><head><title>429 Too Many Requests</title></head><body><h1>Too Many</h1></body></html>"
    server = replay(lambda path, params: (429, "text/html", page, {"Retry-After": "2"}))
    with pytest.raises(NetworkError) as caught:
        replay_client(server).call("flickr.photos.search")
    message = str(caught.value)
    assert "failed 4 times (HTTP 429 (429 Too Many Requests))" in message and "rerun later" in message
    assert len(sleeps) == 3 and min(sleeps) >= 2 and "\n" not in message and KEY not in message


def test_jsonp_answers_over_http(replay: Callable[..., Replay]) -> None:
    body = ("jsonFlickrApi(" + json.dumps(OK) + ")").encode()
    server = replay(lambda path, params: (200, "text/javascript; charset=utf-8", body))
    assert replay_client(server).call("flickr.photos.search")["stat"] == "ok"


def test_numbers_sent_as_strings_page_through_every_result(replay: Callable[..., Replay]) -> None:
    def page(path: str, params: dict[str, str]) -> Answer:
        number = int(params["page"])
        items = [
            {"id": str(number * 1000 + i), "owner": "12037949754@N01", "license": "5", "dateupload": "1500000000",
             "url_c": f"https://live.staticflickr.com/65535/{number * 1000 + i}_abc_c.jpg",
             "width_c": "800", "height_c": "600"}
            for i in range(500 if number < 3 else 200)
        ]  # fmt: skip
        photos = {"page": str(number), "pages": "3", "perpage": "500", "total": "1200", "photo": items}
        return json_answer({"photos": photos, "stat": "ok"})

    server = replay(page)
    chain = size_chain("c")
    with replay_client(server) as fl:
        photos = [parse_photo(item, chain) for item in fl.search({"text": "owl"})]
    assert len({p.id for p in photos if p}) == 1200 and fl.calls == 3
    assert {(p.width, p.height, p.license, p.uploaded) for p in photos if p} == {(800, 600, 5, 1500000000)}


def test_the_key_check_echoes_and_searches_one_page(sim: SimServer) -> None:
    with sim_client(sim) as fl:
        check = check_key(fl, "owl", "c")
    assert (check.total, check.calls, len(check.photos)) == (200, 2, 5)
    assert all(sim.corpus.by_id[p.id].class_name == "owl" and p.url for p in check.photos)
    assert sim.api_key not in repr(check)
    with sim_client(sim, key="not-the-key") as fl, pytest.raises(FlickrError) as caught:
        check_key(fl)
    assert caught.value.code == 100 and fl.calls == 1


def test_an_unreachable_endpoint_is_a_network_error(sleeps: list[float]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    client = FlickrClient(KEY, api_url=f"http://127.0.0.1:{port}/services/rest/", backoff=Backoff(2, 0.001))
    with pytest.raises(NetworkError, match="failed 3 times"):
        client.call("flickr.test.echo")


def test_the_live_licence_table_comes_from_the_api(sim: SimServer) -> None:
    with sim_client(sim) as fl:
        table = fl.licenses()
    assert sorted(table) == list(range(17))
    assert table[9][0] == "Public Domain Dedication (CC0)" and table[10][0] == "Public Domain Mark"
    assert table[11] == ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/")


def test_the_clients_size_table_matches_what_the_photo_host_serves(sim: SimServer) -> None:
    """The simulator keeps its own table: a wrong longest side in the client's shows here."""
    photo = next(p for p in sim.corpus.photos if "l" in p.sizes and "c" in p.sizes)
    for size, longest in flickr.SIZES.items():
        body = httpx.get(sim.flickr.photo_url(photo, size)).content
        with Image.open(io.BytesIO(body)) as image:
            assert max(image.size) == longest, size


def test_a_flickr_error_that_stays_says_its_code_once(
    replay: Callable[..., Replay], sleeps: list[float]
) -> None:
    fail = {"stat": "fail", "code": 105, "message": "Service currently unavailable"}
    server = replay(lambda path, params: json_answer(fail))
    with pytest.raises(FlickrError) as caught:
        replay_client(server).call("flickr.photos.search")
    assert str(caught.value) == (
        "Flickr error 105: Service currently unavailable (gave up after 4 tries; rerun later to resume)"
    )
