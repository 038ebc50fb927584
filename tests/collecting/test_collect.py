"""`collect()` end to end over real HTTP against the simulator: faults, resuming, hostile names,
licenses, secrets, and the CLI."""

from __future__ import annotations

import csv
import json
import logging
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from photoclass.cli import app
from photoclass.collecting import collect, summarize
from photoclass.collecting.manifest import Manifest
from photoclass.config import CollectConfig
from photoclass.errors import ConfigError, FlickrError, NetworkError, PhotoclassError
from photoclass.progress import RichProgress
from photoclass.sim import Faults, SimServer
from photoclass.sim.corpus import render_jpeg

from .conftest import Answer, Replay, assert_clean_dataset, dataset_state

KEY = "0123456789abcdef0123456789abcdef"
Sim = Callable[..., SimServer]
Config = Callable[..., CollectConfig]


def rows(data: Path, query: str) -> list[tuple]:
    with sqlite3.connect(data / "manifest.sqlite") as db:
        return db.execute(query).fetchall()


def test_a_faulty_run_collects_every_class_and_records_every_failure(
    start_sim: Sim, config_for: Config, tmp_path: Path
) -> None:
    faults = Faults(server_error=0.10, rate_limit=0.05, truncated=0.05, corrupt=0.02, duplicates=0.05)
    sim = start_sim(faults=faults, photos_per_class=50)  # few enough that copies meet originals
    summary = collect(config_for(sim, per_class=40), tmp_path, sim.api_key)

    assert {c: n.downloaded for c, n in summary.classes.items()} == {"cat": 40, "owl": 40}
    assert_clean_dataset(tmp_path)
    # Every photo fetched has its outcome; the bad ones say why.
    fetched = rows(tmp_path, "SELECT status, error, attempts FROM photos WHERE status != 'pending'")
    assert all((s == "ok") == (e is None) for s, e, _ in fetched)
    errors = [e for s, e, _ in fetched if s != "ok"]
    served = sim.flickr.served
    assert errors.count("corrupt") == served["photo:corrupt"] > 0
    assert {"duplicate", "near_duplicate"} & set(errors)
    # ... and every transient fault the photo host injected shows up as an extra attempt.
    transient = sum(n for kind, n in served.items() if kind.startswith("image:"))
    assert sum(a - 1 for _, _, a in fetched) == transient == sum(summary.retries.values()) > 0
    assert summary.splits["test"] == {"cat": 4, "owl": 4}


def test_duplicates_are_dropped_and_never_kept_twice(
    start_sim: Sim, config_for: Config, tmp_path: Path
) -> None:
    sim = start_sim(faults=Faults(duplicates=0.3))
    collect(config_for(sim, per_class=40), tmp_path, sim.api_key)
    kept = rows(tmp_path, "SELECT sha256 FROM photos WHERE status = 'ok'")
    assert len(kept) == len(set(kept)) == 80
    dropped = rows(tmp_path, "SELECT error FROM photos WHERE status = 'rejected'")
    assert {e for (e,) in dropped} == {"duplicate", "near_duplicate"}


def test_rerunning_a_finished_collection_changes_nothing(
    sim: SimServer, config_for: Config, tmp_path: Path
) -> None:
    config = config_for(sim)
    collect(config, tmp_path, sim.api_key)
    before, requests = dataset_state(tmp_path), (sim.flickr.api_calls, sim.flickr.image_requests)
    again = collect(config, tmp_path, sim.api_key)
    assert (sim.flickr.api_calls, sim.flickr.image_requests) == requests
    assert dataset_state(tmp_path) == before and again.api_calls == 0


def test_a_deleted_photo_is_fetched_again_and_more_per_class_adds_photos(
    sim: SimServer, config_for: Config, tmp_path: Path
) -> None:
    collect(config_for(sim), tmp_path, sim.api_key)
    before = dataset_state(tmp_path)
    victim = next((tmp_path / "train" / "owl").iterdir())
    victim.unlink()
    requests = sim.flickr.image_requests
    collect(config_for(sim), tmp_path, sim.api_key)
    assert sim.flickr.image_requests == requests + 1 and dataset_state(tmp_path) == before

    placed = {p.relative_to(tmp_path) for p in tmp_path.glob("*/*/*.jpg")}
    bigger = collect(config_for(sim, per_class=45), tmp_path, sim.api_key)
    assert {c: n.downloaded for c, n in bigger.classes.items()} == {"cat": 45, "owl": 45}
    assert all((tmp_path / p).is_file() for p in placed)  # no photo changed split
    assert_clean_dataset(tmp_path)


def test_a_class_flickr_runs_out_of_is_reported_short(
    start_sim: Sim, config_for: Config, tmp_path: Path
) -> None:
    sim = start_sim(photos_per_class=25)
    summary = collect(config_for(sim, per_class=40), tmp_path, sim.api_key)
    assert summary.short == ["cat", "owl"]
    assert all(n.downloaded == 25 for n in summary.classes.values())


def test_queries_tags_and_licenses_shape_the_search(
    sim: SimServer, config_for: Config, tmp_path: Path
) -> None:
    config = config_for(sim, query={"owl": "owl -nature"}, license="CC BY 2.0,9,All Rights Reserved")
    collect(config, tmp_path, sim.api_key)
    kept = rows(tmp_path, "SELECT id, license FROM photos WHERE status = 'ok'")
    assert {lic for _, lic in kept} <= {0, 4, 9}
    owls = [sim.corpus.by_id[i] for i, _ in kept if sim.corpus.by_id[i].class_name == "owl"]
    assert owls and all("nature" not in p.tags for p in owls)
    with pytest.raises(ConfigError, match="unknown license 'CC BY 9'"):
        collect(config_for(sim, license="CC BY 9"), tmp_path, sim.api_key)


def test_hostile_class_names_stay_inside_data(start_sim: Sim, config_for: Config, tmp_path: Path) -> None:
    names = ("../../escape", "a/b", "=HYPERLINK(1)")
    sim = start_sim(classes=names, photos_per_class=30)
    data = tmp_path / "data"
    summary = collect(config_for(sim, classes=names, per_class=10), data, sim.api_key)
    assert set(summary.classes) == {"escape", "a_b", "HYPERLINK_1"}
    assert [p.name for p in tmp_path.iterdir()] == ["data"], "nothing written outside DATA"
    assert {p.parent.name for p in data.rglob("*.jpg")} == set(summary.classes)
    with open(data / "ATTRIBUTION.csv", newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert len(table) == 31 and all(len(row) == 9 for row in table)
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in table for cell in row)


def test_the_api_key_appears_nowhere(
    start_sim: Sim,
    config_for: Config,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture,
) -> None:
    key = "5ecre7a9c0ffee5ecre7a9c0ffee5ecr"
    sim = start_sim(api_key=key, faults=Faults(server_error=0.1, api_error=0.2, corrupt=0.05))
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log every request at DEBUG
    summary = collect(config_for(sim, per_class=15), tmp_path, key, progress=RichProgress())
    with pytest.raises(FlickrError) as wrong_key:
        collect(config_for(sim, per_class=99), tmp_path, key[:-1] + "x")
    sim.stop()
    with pytest.raises(PhotoclassError) as unreachable:
        collect(config_for(sim, per_class=99), tmp_path, key)
    messages = [str(wrong_key.value), str(unreachable.value)]
    assert "failed 6 times" in messages[1]
    outputs = capsys.readouterr()
    texts = [
        caplog.text,
        outputs.out,
        outputs.err,
        repr(summary),
        repr(summarize(tmp_path)),
        *messages,
        *(p.read_bytes().decode("utf-8", "replace") for p in tmp_path.rglob("*") if p.is_file()),
    ]
    assert "HTTP Request" in caplog.text or "send_request" in caplog.text, "logs were captured"
    assert not [t for t in texts if key in t or key[:-1] + "x" in t]


def test_a_wrong_key_fails_with_one_line_before_any_download(
    sim: SimServer, config_for: Config, tmp_path: Path
) -> None:
    with pytest.raises(FlickrError) as caught:
        collect(config_for(sim), tmp_path, "wrong")
    assert caught.value.code == 100 and "\n" not in str(caught.value)
    assert sim.flickr.image_requests == 0


def test_summarize_reports_what_the_dataset_holds(sim: SimServer, config_for: Config, tmp_path: Path) -> None:
    assert summarize(tmp_path) is None
    collect(config_for(sim, per_class=20, test_per_class=5), tmp_path, sim.api_key)
    report = summarize(tmp_path)
    assert report is not None
    assert report["photos"]["cat"]["test"] == report["photos"]["owl"]["test"] == 5
    assert sum(report["photos"]["cat"].values()) == 20
    assert sum(report["licenses"].values()) == 40 and "All Rights Reserved" in report["licenses"]
    assert report["attribution"] == str(tmp_path / "ATTRIBUTION.csv")


def test_the_cli_collects_and_turns_errors_into_one_line(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "fast.toml"
    config.write_text("[collect]\napi_rate = 1000.0\nbackoff = 0.01\n")
    args = ["collect", "cat", "owl", "--out", str(tmp_path / "data"), "--per-class", "12", "--size", "s"]
    args += ["--split", "0.5,0.25,0.25", "--api-url", sim.api_url, "--config", str(config)]
    monkeypatch.setenv("FLICKR_API_KEY", sim.api_key)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "data" / "test" / "owl").iterdir())) == 3

    monkeypatch.setenv("FLICKR_API_KEY", "wrong")
    args[args.index("--out") + 1] = str(tmp_path / "other")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "services/apps/create" in result.output
    assert "Traceback" not in result.output


def test_a_photo_host_that_keeps_refusing_stops_the_run_and_a_rerun_resumes(
    start_sim: Sim, config_for: Config, tmp_path: Path
) -> None:
    sim = start_sim(faults=Faults(photo_rate_limit=1.0, retry_after=0))  # the API answers, photos 429
    config = config_for(sim, per_class=30)  # host_refusals at its default, 100
    with pytest.raises(NetworkError) as caught:
        collect(config, tmp_path, sim.api_key)
    host = re.escape(sim.base_url.removeprefix("http://"))
    said = re.fullmatch(
        rf"photo host {host} is rate-limiting \((\d+) requests in a row refused: http_429 x\1\); "
        "rerun later to resume",
        str(caught.value),
    )
    assert said, str(caught.value)
    # Those in flight when the 100th refusal came in still finish: a few more than 100.
    assert 100 <= int(said[1]) == sim.flickr.image_requests < 100 + config.concurrency, "bounded"
    assert not list(tmp_path.rglob("*.jpg"))
    assert {s for (s,) in rows(tmp_path, "SELECT DISTINCT status FROM photos")} <= {"pending", "failed"}

    sim.flickr.faults = Faults()  # the host is back: the same call resumes and finishes
    summary = collect(config, tmp_path, sim.api_key)
    assert {c: n.downloaded for c, n in summary.classes.items()} == {"cat": 30, "owl": 30}
    assert_clean_dataset(tmp_path)


def test_photos_gone_from_flickr_are_rejected_for_good(
    start_sim: Sim, config_for: Config, tmp_path: Path
) -> None:
    sim = start_sim(faults=Faults(deleted=0.1, missing=0.1))
    collect(config_for(sim, per_class=30), tmp_path, sim.api_key)
    gone = rows(tmp_path, "SELECT image_url, error FROM photos WHERE status = 'rejected'")
    assert {e for _, e in gone} == {"unavailable", "http_404"}
    assert sum(e == "unavailable" for _, e in gone) == sim.flickr.served["photo:deleted"]
    collect(config_for(sim, per_class=35), tmp_path, sim.api_key)  # more: failures are retried
    assert all(sim.flickr.times_asked(url) == 1 for url, _ in gone), "a gone photo is never asked again"
    assert set(gone) <= set(rows(tmp_path, "SELECT image_url, error FROM photos WHERE status = 'rejected'"))
    assert_clean_dataset(tmp_path)


def test_licence_names_are_matched_against_the_live_table(
    sim: SimServer, config_for: Config, tmp_path: Path
) -> None:
    collect(config_for(sim, per_class=10, license="CC0,PDM,CC BY 4.0"), tmp_path, sim.api_key)
    kept = {lic for (lic,) in rows(tmp_path, "SELECT license FROM photos WHERE status = 'ok'")}
    assert kept and kept <= {9, 10, 11}


def test_a_saved_licence_table_without_the_name_asked_for_is_read_again(
    sim: SimServer, config_for: Config, tmp_path: Path
) -> None:
    with Manifest(tmp_path / "manifest.sqlite") as manifest:  # written before Flickr added 11-16
        manifest.save_licenses({4: ("CC BY 2.0", ""), 9: ("CC0 1.0", "")})
    collect(config_for(sim, per_class=5, license="CC BY 4.0"), tmp_path, sim.api_key)
    with Manifest(tmp_path / "manifest.sqlite") as manifest:
        assert manifest.licenses()[11][0] == "CC BY 4.0"
    assert {lic for (lic,) in rows(tmp_path, "SELECT license FROM photos WHERE status = 'ok'")} == {11}


def test_names_from_the_network_cannot_leave_data(
    replay: Callable[..., Replay], config_for: Config, tmp_path: Path
) -> None:
    """Photo ids, titles and owners as a hostile or broken server might send them: only the
    well-formed results are kept, and nothing they say becomes a path."""
    bad = [
        {"id": "../../../escape", "owner": "1@N01"},
        {"id": "１２３", "owner": "1@N01"},  # fullwidth digits
        {"id": "9" * 25, "owner": "1@N01"},  # longer than any 64-bit number
        {"id": "-5", "owner": "1@N01"},
        {"id": "1001", "owner": "../../x"},
        {"id": "1002", "owner": "C:\\Windows"},
    ]
    good = [
        {"id": "2001", "owner": "11@N01", "title": "../../../etc/passwd\x00", "ownername": "CON"},
        {"id": "2002", "owner": "12@N01", "title": '=HYPERLINK("http://x")', "ownername": "a" * 300},
        {"id": "2003", "owner": "13@N01", "title": "C:\\Windows\\win.ini", "ownername": "\u202eevil\n"},
    ]

    def answer(path: str, params: dict[str, str]) -> Answer:
        if params.get("method") == "flickr.photos.licenses.getInfo":
            table = [{"id": 4, "name": "CC BY 2.0", "url": ""}]
            return (
                200,
                "application/json",
                json.dumps({"licenses": {"license": table}, "stat": "ok"}).encode(),
            )
        if params.get("method") == "flickr.photos.search":
            photos = {"page": 1, "pages": 1, "perpage": 500, "total": "9", "photo": bad + good}
            return 200, "application/json", json.dumps({"photos": photos, "stat": "ok"}).encode()
        index = int(path.rsplit("/", 1)[1].split("_")[0]) - 2000
        return 200, "image/jpeg", render_jpeg("cat", index, 240)

    server = replay(answer)
    for item in bad + good:
        url = f"{server.base_url}/photos/4/{item['id']}_s.jpg"
        item |= {"license": "4", "url_s": url, "width_s": "240", "height_s": "180"}
    data = tmp_path / "data"
    summary = collect(config_for(server, classes=("cat",), per_class=5, split=(0.6, 0.2, 0.2)), data, KEY)
    assert summary.classes["cat"].downloaded == 3 and summary.short == ["cat"]
    assert [p.name for p in tmp_path.iterdir()] == ["data"], "nothing written outside DATA"
    assert sorted(p.name for p in data.rglob("*.jpg")) == ["2001.jpg", "2002.jpg", "2003.jpg"]
    assert {p.parent.name for p in data.rglob("*.jpg")} == {"cat"}
    asked = {path for path, _ in server.asked if path.startswith("/photos/")}
    assert asked == {f"/photos/4/{item['id']}_s.jpg" for item in good}, "only well-formed ids fetched"
    with open(data / "ATTRIBUTION.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert {row["photo_id"] for row in table} == {"2001", "2002", "2003"}
    cells = [cell for row in table for cell in row.values()]
    assert not any(c.startswith(("=", "+", "-", "@")) or "\x00" in c or "\n" in c for c in cells)


def test_the_cli_checks_a_key_and_needs_out_to_collect(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLICKR_API_KEY", sim.api_key)
    result = CliRunner().invoke(app, ["collect", "--check-key", "--api-url", sim.api_url])
    assert result.exit_code == 0, result.output
    assert "the key works" in result.output and "found 200 photos" in result.output
    assert sim.api_key not in result.output and sim.flickr.image_requests == 0
    monkeypatch.setenv("FLICKR_API_KEY", "wrong")
    result = CliRunner().invoke(app, ["collect", "--check-key", "--api-url", sim.api_url])
    assert result.exit_code == 1 and result.output.startswith("error: Flickr error 100: invalid API key")
    result = CliRunner().invoke(app, ["collect", "cat"])
    assert result.exit_code == 2 and "give the classes and --out" in result.output


def test_the_cli_says_in_one_line_that_the_photo_host_refuses(
    start_sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = start_sim(faults=Faults(photo_rate_limit=1.0, retry_after=0))
    monkeypatch.setenv("FLICKR_API_KEY", sim.api_key)
    args = ["collect", "cat", "--out", str(tmp_path), "--api-url", sim.api_url, "--size", "s"]
    result = CliRunner().invoke(app, [*args, "--backoff", "0.01", "--host-refusals", "10"])
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output
    assert "is rate-limiting" in lines[0] and lines[0].endswith("rerun later to resume")
