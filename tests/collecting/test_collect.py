"""`collect()` end to end over real HTTP against the simulator: faults, resuming, hostile names,
licenses, secrets, and the CLI."""

from __future__ import annotations

import csv
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from photoclass.cli import app
from photoclass.collecting import collect, summarize
from photoclass.config import CollectConfig
from photoclass.errors import ConfigError, FlickrError, NetworkError, PhotoclassError
from photoclass.progress import RichProgress
from photoclass.sim import Faults, SimServer

from .conftest import assert_clean_dataset, dataset_state

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
