"""Every public function of the Python API, called as a user calls it: one test each, named
`test_<function>`. The last test fails when a function is added to `photoclass` without a
test here (or one of these disappears)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import photoclass
from photoclass.errors import ConfigError, FlickrError
from photoclass.progress import Progress, Task
from photoclass.sim import SimServer

from .helpers import TINY


class Recorded(Task):
    def __init__(self, description: str, total: int | None) -> None:
        self.description, self.total, self.completed, self.info = description, total, 0, ""

    def advance(self, n: int = 1, *, info: str | None = None) -> None:
        self.completed += n
        self.info = info or self.info

    def update(
        self, *, completed: int | None = None, total: int | None = None, info: str | None = None
    ) -> None:
        self.completed = self.completed if completed is None else completed
        self.info = info or self.info


class Recording(Progress):
    """A progress display that keeps what it was told: a caller's own `Progress`."""

    def __init__(self) -> None:
        self.tasks: list[Recorded] = []

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Task]:
        self.tasks.append(Recorded(description, total))
        yield self.tasks[-1]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with photoclass.simulator(["cat", "owl"], 40) as running:
        yield running


def test_simulator(sim: SimServer, tmp_path: Path) -> None:
    assert sim.api_url.startswith("http://127.0.0.1:") and sim.api_url.endswith("/services/rest/")
    assert len(sim.api_key) == 32 and len(sim.corpus.photos) == 80
    port = int(sim.base_url.rsplit(":", 1)[1])
    with pytest.raises(ConfigError, match=r"cannot listen on 127.0.0.1:\d+ .*; choose another `port`"):
        photoclass.simulator(port=port)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # the first still serves


def test_collect(sim: SimServer, tmp_path: Path) -> None:
    """From a plain `python -c`, as the README shows, and with a progress display of one's own."""
    code = (
        "import sys, photoclass; "
        "s = photoclass.collect(['cat', 'owl'], sys.argv[1], api_key=sys.argv[2], api_url=sys.argv[3], "
        "per_class=6, size='s', progress=False); "
        "print(s.classes['cat'].downloaded, s.classes['owl'].downloaded, sorted(s.splits))"
    )
    command = [sys.executable, "-c", code, str(tmp_path / "a"), sim.api_key, sim.api_url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "6 6 ['test', 'train', 'val']"
    assert len(list((tmp_path / "a").glob("*/*/*.jpg"))) == 12

    shown = Recording()
    summary = photoclass.collect(
        ["cat", "owl"], tmp_path / "b", api_key=sim.api_key, api_url=sim.api_url, per_class=5, progress=shown
    )
    assert [(t.description, t.total, t.completed) for t in shown.tasks] == [("cat", 5, 5), ("owl", 5, 5)]
    assert shown.tasks[0].info.startswith("found ") and "rejected 0" in shown.tasks[0].info
    assert summary.data_dir == tmp_path / "b"
    with pytest.raises(ConfigError, match="unknown option"):
        photoclass.collect(["cat"], tmp_path / "c", api_key=sim.api_key, per_klass=5)


def test_check_key(sim: SimServer) -> None:
    check = photoclass.check_key("owl", api_key=sim.api_key, api_url=sim.api_url)
    assert (check.total, check.calls, len(check.photos)) == (40, 2, 5)
    with pytest.raises(FlickrError, match="invalid API key"):
        photoclass.check_key(api_key="0" * 32, api_url=sim.api_url)


def test_run(sim: SimServer, tmp_path: Path) -> None:
    options = {**TINY, "epochs": 1, "per_class": 15, "size": "m", "split": (0.6, 0.2, 0.2)}
    summary = photoclass.run(["cat", "owl"], tmp_path, simulator=True, progress=False, **options)
    assert summary.collected.classes["cat"].downloaded == 15 and summary.evaluation.metrics["n"] == 6
    assert summary.report.is_file() and (tmp_path / "model" / "photoclass.json").is_file()
    with pytest.raises(ConfigError, match="unknown option"):
        photoclass.run(["cat"], tmp_path, simulator=True, epoks=1)


@pytest.mark.slow
def test_demo(tmp_path: Path) -> None:
    summary = photoclass.demo(tmp_path / "demo", progress=False)
    assert summary.evaluation.metrics["accuracy"] > 0.8 and summary.report.is_file()


def test_train(shapes3: Path, tmp_path: Path) -> None:
    result = photoclass.train(shapes3, tmp_path / "m", progress=False, **TINY)
    assert result.out == tmp_path / "m" and result.metrics["n"] == 30
    assert json.loads((tmp_path / "m" / "photoclass.json").read_text())["classes"] == [
        "circle",
        "square",
        "triangle",
    ]


def test_load_model(trained_three: Path) -> None:
    bundle = photoclass.load_model(trained_three)
    assert bundle.classes == ["circle", "square", "triangle"] and photoclass.load_model(bundle) is bundle


def test_evaluate(trained_three: Path, shapes3: Path, tmp_path: Path) -> None:
    evaluation = photoclass.evaluate(
        trained_three, shapes3 / "test", metrics_out=tmp_path / "m.json", progress=False
    )
    assert evaluation.metrics["n"] == 30 and (tmp_path / "m.json").is_file()


def test_report(trained_three: Path, shapes3: Path, tmp_path: Path) -> None:
    path = photoclass.report(trained_three, shapes3 / "test", tmp_path / "r.html", progress=False)
    assert path.read_text()[:200].lower().count("<html") == 1


def test_predict(trained_three: Path, shapes3: Path) -> None:
    [prediction] = photoclass.predict(trained_three, [next((shapes3 / "test" / "square").iterdir())], top_k=2)
    assert prediction.error is None and len(prediction.top) == 2


def test_export(trained_three: Path, tmp_path: Path) -> None:
    result = photoclass.export(trained_three, tmp_path / "m.onnx")
    assert result.path.is_file() and result.same_labels == result.checked


def test_serve(trained_three: Path, shapes3: Path) -> None:
    photo = next((shapes3 / "test" / "square").iterdir())
    with photoclass.serve(trained_three, port=0, max_batch=4) as server:
        assert server.url.startswith("http://127.0.0.1:")
        answer = httpx.post(f"{server.url}/api/predict?top_k=2", content=photo.read_bytes()).json()
    [expected] = photoclass.predict(trained_three, [photo], top_k=2)
    assert answer["label"] == expected.label and len(answer["top"]) == 2
    assert answer["probability"] == pytest.approx(expected.probability, abs=1e-4)


def test_check(shapes3: Path, tmp_path: Path) -> None:
    data = Path(shutil.copytree(shapes3, tmp_path / "data"))
    leaked = data / "val" / "circle" / "copy-of-train.png"
    shutil.copyfile(next((data / "train" / "circle").iterdir()), leaked)
    result = photoclass.check(data, report_out=tmp_path / "check.html", progress=False)
    assert result.total_files == 151 and result.report == tmp_path / "check.html"
    assert any(f.kind == "leakage" and f.path == leaked for f in result.findings)


def test_undo_check(shapes3: Path, tmp_path: Path) -> None:
    data = Path(shutil.copytree(shapes3, tmp_path / "data"))
    leaked = data / "val" / "circle" / "copy-of-train.png"
    shutil.copyfile(next((data / "train" / "circle").iterdir()), leaked)
    fixed = photoclass.check(data, fix=True, progress=False)
    assert leaked in {m.source for m in fixed.moved} and not leaked.exists()
    moves = photoclass.undo_check(data)
    assert leaked in {m.target for m in moves} and leaked.is_file()


def test_every_api_function_has_its_test_here() -> None:
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert set(photoclass._API) <= tested, f"untested: {sorted(set(photoclass._API) - tested)}"
    expected = {"check", "check_key", "collect", "demo", "evaluate", "export", "load_model", "predict"}
    expected |= {"report", "run", "serve", "simulator", "train", "undo_check"}
    assert expected <= set(photoclass._API) and set(photoclass._API) <= set(photoclass.__all__)
    for name in photoclass._API:
        function = getattr(photoclass, name)
        assert callable(function) and function.__doc__, f"photoclass.{name} is a documented function"
