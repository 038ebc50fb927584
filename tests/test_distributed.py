"""Several processes, one model: real 2-process gloo runs started by torchrun (as a user would:
`python -m torch.distributed.run --nproc-per-node 2 -m photoclass train ...`), a run killed
and resumed, and launches that cannot work, which must fail with one line, not hang."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import photoclass
from photoclass.bundle import load_bundle
from photoclass.errors import DistributedError
from photoclass.training.checkpoint import NAME as CHECKPOINT
from photoclass.training.checkpoint import load_checkpoint
from photoclass.training.distributed import Dist, setup, weights_digest

# Small-cnn on the three drawn shapes (90 training photos): 8 epochs of 8 photos per process
# per step learn them (two processes take the steps one process takes with batches of 16).
OPTIONS = shlex.split("--model small-cnn --image-size 48 --epochs 8 --batch-size 8 --workers 0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(data: Path, out: Path, *extra: str, options: list[str] = OPTIONS) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    launcher += ["--master-port", str(_free_port())]
    return [*launcher, "-m", "photoclass", "train", str(data), "--out", str(out), *options, *extra]


def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PHOTOCLASS_CACHE": str(cache), "COLUMNS": "120", **extra}


@pytest.fixture(scope="module")
def ddp_run(
    shapes3: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess]:
    """A 2-process run, uninterrupted."""
    root = tmp_path_factory.mktemp("ddp")
    out = root / "model"
    result = subprocess.run(
        _torchrun(shapes3, out), env=_env(root / "cache"), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.mark.slow
def test_two_processes_train_one_model(
    ddp_run: tuple[Path, subprocess.CompletedProcess], shapes3: Path
) -> None:
    out, result = ddp_run
    meta = json.loads((out / "photoclass.json").read_text())
    # One bundle, written once (by rank 0): nothing else in the folder, one summary printed.
    assert sorted(p.name for p in out.iterdir()) == [
        "model.safetensors",
        "novelty.safetensors",
        "photoclass.json",
    ]
    assert result.stdout.count("validation (val/)") == 1
    assert result.stderr.count("done: validation") == 1  # rank 1 logs nothing
    assert meta["distributed"]["world_size"] == 2 and meta["distributed"]["backend"] == "gloo"
    # Both processes ended with the weights in the bundle.
    digests = meta["distributed"]["weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1] == weights_digest(load_bundle(out).model)
    # Each process took half of the 90 training photos every epoch.
    assert meta["data"]["train"] == 90
    assert [row["photos"] for row in meta["history"]] == [[45, 45]] * 8
    # The model learned, and the bundle predicts what the run measured.
    assert photoclass.evaluate(out, shapes3 / "test", progress=False).accuracy > 0.6
    again = photoclass.evaluate(out, shapes3 / "val", progress=False)
    assert again.metrics["confusion_matrix"] == meta["validation"]["confusion_matrix"]


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_model(
    ddp_run: tuple[Path, subprocess.CompletedProcess], shapes3: Path, tmp_path: Path
) -> None:
    # Killed (every process, as when a machine goes away) after its second epoch, then resumed.
    # The resumed run also has a decode cache capped at 0 GB, so it streams its photos: the
    # model must still be the uninterrupted run's, bit for bit.
    out = tmp_path / "model"
    proc = subprocess.Popen(
        _torchrun(shapes3, out),
        env=_env(tmp_path / "cache"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and _epochs_done(out) < 2:
        time.sleep(0.05)
    _kill_tree(proc.pid)
    proc.wait()
    assert (out / CHECKPOINT).exists() and not (out / "photoclass.json").exists()

    env = _env(tmp_path / "cache", PHOTOCLASS_CACHE_GB="0")
    result = subprocess.run(
        _torchrun(shapes3, out, "--resume"), env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming" in result.stderr and "streaming" in result.stderr
    straight, resumed = (json.loads((m / "photoclass.json").read_text()) for m in (ddp_run[0], out))
    assert resumed["data"]["pixels"] == {"train": "stream", "val": "stream"}
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(straight["history"])
    a, b = load_file(ddp_run[0] / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (out / CHECKPOINT).exists()


@pytest.mark.slow
def test_the_probe_s_features_are_computed_in_shares_and_put_together(shapes3: Path, tmp_path: Path) -> None:
    # A pretrained model's probe only: each process computes the features of its share of the
    # photos; put together, they train the head as one process's features do.
    probe = shlex.split("--model efficientnet-lite0 --image-size 32 --probe-epochs 3 --epochs 0 --workers 0")
    single = photoclass.train(
        shapes3, tmp_path / "one", progress=False, model="efficientnet-lite0", image_size=32, probe_epochs=3,
        epochs=0, workers=0,
    )  # fmt: skip
    cmd = _torchrun(shapes3, tmp_path / "two", options=probe)
    result = subprocess.run(cmd, env=_env(tmp_path / "cache"), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((tmp_path / "two" / "photoclass.json").read_text())
    assert [row["phase"] for row in meta["history"]] == ["probe"] * 3
    assert [row["photos"] for row in meta["history"]] == [[90, 90]] * 3  # each trains the head on all
    assert len(set(meta["distributed"]["weights_sha256"])) == 1
    for mine, theirs in zip(meta["history"], single.meta["history"], strict=True):
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], abs=1e-3)


def _epochs_done(out: Path) -> int:
    try:
        return load_checkpoint(out / CHECKPOINT).state.epoch
    except Exception:  # not there yet, or caught mid-rename
        return 0


def _kill_tree(pid: int) -> None:
    """SIGKILL `pid` and every process below it (torchrun starts its workers in sessions of
    their own, so killing torchrun alone would leave them running)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo, tree = [pid], []
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    for p in tree:
        with contextlib.suppress(ProcessLookupError):  # gone already
            os.kill(p, signal.SIGKILL)


# What the loop asks of the other processes, in two real processes: work done by local rank 0
# first (the decode cache), errors in one process raised in all, shares put back together.
EXCHANGES = """
import json, sys, time
from pathlib import Path
import torch
from photoclass.errors import DatasetError
from photoclass.training.distributed import setup

events, out = Path(sys.argv[1]), sys.argv[2]
dist = setup("cpu")

def fill_cache():
    with events.open("a") as f:
        f.write(json.dumps([dist.rank, "start", time.monotonic()]) + "\\n")
    time.sleep(0.5)
    with events.open("a") as f:
        f.write(json.dumps([dist.rank, "end", time.monotonic()]) + "\\n")
    return dist.rank

def attempt(exchange, fn):
    try:
        return exchange(fn)
    except Exception as e:
        return f"{type(e).__name__}: {e}"

def fail_in_rank_1():
    if dist.rank == 1:
        raise DatasetError("no photos here")

def disk_full():
    raise OSError("disk full")

found = {
    "first": dist.local_main_first(fill_cache),
    "everywhere": attempt(dist.everywhere, fail_in_rank_1),
    "from_main": attempt(dist.from_main, disk_full),
    "value": dist.from_main(lambda: {"made by": dist.rank}),
    "rows": dist.gather_rows(torch.arange(10)[dist.rows(10)]).tolist(),
    "sum": dist.sum(torch.tensor(dist.rank + 1)).item(),
}
Path(f"{out}-{dist.rank}.json").write_text(json.dumps(found))
dist.close()
"""


def test_what_the_processes_exchange(tmp_path: Path) -> None:
    script = tmp_path / "exchanges.py"
    script.write_text(EXCHANGES)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    cmd = [
        *launcher,
        "--master-port",
        str(_free_port()),
        str(script),
        str(tmp_path / "events"),
        str(tmp_path / "r"),
    ]
    result = subprocess.run(cmd, env=_env(tmp_path / "cache"), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    events = [json.loads(line) for line in (tmp_path / "events").read_text().splitlines()]
    ends = {rank: t for rank, event, t in events if event == "end"}
    starts = {rank: t for rank, event, t in events if event == "start"}
    assert ends[0] < starts[1]  # rank 1 waited for rank 0's cache, then read it
    found = [json.loads((tmp_path / f"r-{rank}.json").read_text()) for rank in (0, 1)]
    assert [f["first"] for f in found] == [0, 1]
    assert found[1]["everywhere"] == "DatasetError: no photos here"
    assert found[0]["everywhere"] == "DistributedError: stopped because rank 1 failed: no photos here"
    assert found[0]["from_main"] == "OSError: disk full"
    assert found[1]["from_main"] == "DistributedError: stopped because rank 0 failed: OSError: disk full"
    assert all(f["value"] == {"made by": 0} for f in found)
    assert all(f["rows"] == list(range(10)) and f["sum"] == 3 for f in found)


# -- launches that cannot work -----------------------------------------------------------------


def _rank(
    data: Path, out: Path, rank: int, port: int, cache: Path, *extra: str, timeout: int = 60
) -> subprocess.Popen:
    """One process of a 2-process run started by hand, the way torchrun starts each; it waits
    `timeout` seconds for the other."""
    env = _env(cache, WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2")
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "PHOTOCLASS_DIST_TIMEOUT": str(timeout)}
    cmd = [sys.executable, "-m", "photoclass", "train", str(data), "--out", str(out), *OPTIONS, *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _one_line_error(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=120)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"data": "other"}, "disagree on the data (rank 1: 40 training and 20 validation photos in"),
        ({"extra": ("--seed", "5")}, "disagree on the options --seed (rank 1: 5; rank 0: 0)"),
    ],
)
def test_processes_that_disagree_stop_with_one_line(
    second: dict, message: str, shapes3: Path, cats_owls_tiny: Path, tmp_path: Path
) -> None:
    port = _free_port()
    first = _rank(shapes3, tmp_path / "m", 0, port, tmp_path / "cache")
    data = cats_owls_tiny if second.get("data") else shapes3
    other = _rank(data, tmp_path / "m", 1, port, tmp_path / "cache", *second.get("extra", ()))
    assert message in _one_line_error(other)
    assert "the training processes disagree" in _one_line_error(first)
    assert not (tmp_path / "m" / "photoclass.json").exists()


def test_a_process_that_never_comes_is_an_error_not_a_hang(shapes3: Path, tmp_path: Path) -> None:
    proc = _rank(shapes3, tmp_path / "m", 0, _free_port(), tmp_path / "cache", timeout=2)
    line = _one_line_error(proc)
    assert "rank 0 could not join the other 1 process(es) at 127.0.0.1:" in line and "within 2 s" in line


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": "2"}, "WORLD_SIZE is 2, but RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT are not set"),
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not a whole number"),
        (
            {"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "x", "MASTER_PORT": "1"},
            "RANK 2 / LOCAL_RANK 0 do not fit WORLD_SIZE 2",
        ),
    ],
)
def test_a_launch_without_torchrun_s_variables_is_refused(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DistributedError, match=message) as info:
        setup("cpu")
    assert "\n" not in str(info.value)


def test_one_process_is_no_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "1")
    dist = setup("cpu")
    assert dist == Dist(device="cpu") and not torch.distributed.is_initialized()
    assert dist.describe() == {"world_size": 1, "backend": None}


@pytest.mark.parametrize(
    ("device", "gpus", "message"),
    [
        ("cuda:1", 2, "`device` 'cuda:1' names one GPU, but each of the training processes needs its own"),
        ("cuda", 1, "more training processes than PyTorch sees GPUs (1)"),
        ("mps", 0, "does not run on Apple's MPS"),
    ],
)
def test_gpu_launches_that_cannot_work_are_refused(
    device: str, gpus: int, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Refused before any process group is joined (no GPU here: CUDA's answers are stood in for).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    env = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DistributedError, match=message.replace("(", r"\(").replace(")", r"\)")):
        setup(device)


@pytest.mark.parametrize("world", [1, 2, 3, 8])
@pytest.mark.parametrize("n", [0, 1, 7, 30])
def test_the_shares_of_the_processes_cover_every_row_once_in_order(world: int, n: int) -> None:
    shares = [Dist(rank=r, world_size=world).rows(n) for r in range(world)]
    assert [i for s in shares for i in range(n)[s]] == list(range(n))
    assert max(len(range(n)[s]) for s in shares) - min(len(range(n)[s]) for s in shares) <= 1
