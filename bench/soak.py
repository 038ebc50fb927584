"""Soak: a long `photoclass collect` against a faulty Flickr, killed twice and resumed.

    python bench/soak.py               # 10,000 photos (two classes of 5,000)
    python bench/soak.py --quick       # 1,000 photos
    python bench/soak.py --photos 4000 --kills 0.2,0.5,0.8

The Flickr simulator (`photoclass.sim`, in this process) serves small synthetic photos (size
"s", 240 px) with faults on: server errors, 429s with Retry-After, responses that hang past
the client's timeout, slow responses, bodies cut halfway, API errors, corrupt JPEGs, HTML
pages, thumbnails, decompression bombs and re-uploaded duplicates. `photoclass collect` runs
in a subprocess (the real command line, a config file and $FLICKR_API_KEY) and is killed with
SIGKILL when the photos on disk reach each `--kills` share of the target, then rerun; the last
run goes to the end.

While each run lasts, its resident memory (VmRSS), open file descriptors (/proc/PID/fd) and
threads are sampled every `--interval` seconds. Reported: each run's wall time and those
numbers at 10%, 50% and 90% of its working time (from its first new photo on, after Python
has started) and at their peak; memory counts as flat when no run grows by more than 10%
(plus 16 MB) between its 50% and 90% samples, and descriptors as not leaking when no run's
busiest moment in its second half holds more than 4 more than its busiest in the first (the
downloader's connections open and close with each batch).

At the end the benchmark checks the dataset itself: every `ok` manifest row has a split and
its file in DATA/<split>/<class>/<id>.jpg with the recorded sha256, no other file is there
(no .incoming/, no partial download), each class holds exactly the photos asked for, and
ATTRIBUTION.csv lists exactly the kept photos. It exits 1 when anything disagrees.

The machine is shared: wall times vary with its load (printed before and after); memory and
descriptor counts do not.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import PHOTOCLASS, banner, cpu, machine, table

from photoclass.collecting.manifest import ATTRIBUTION, MANIFEST
from photoclass.collecting.split import INCOMING, SPLITS, class_folders
from photoclass.sim import Faults, SimServer

CLASSES = ("cat", "owl")
FAULTS = Faults(
    latency=0.002,  # every response is a little slow
    timeout=0.002,  # ... and a few hang past the client's timeout
    hang=3.0,
    server_error=0.03,
    rate_limit=0.005,
    retry_after=1,
    truncated=0.02,
    api_error=0.02,
    corrupt=0.02,
    html=0.005,
    tiny=0.005,
    bomb=0.002,
    duplicates=0.03,
)
CONFIG = """\
[collect]
per_class = {per_class}
size = "s"
api_rate = 1000.0
concurrency = 16
rate = 2000.0
retries = 6
backoff = 0.05
timeout = 1.0
api_url = "{api_url}"
"""


@dataclass
class Sample:
    at: float  # seconds since the run started
    rss_mb: float
    fds: int
    threads: int
    on_disk: int


@dataclass
class RunRecord:
    kill_at: float | None
    wall: float = 0.0
    returncode: int = 0
    samples: list[Sample] = field(default_factory=list)


def proc_status(pid: int) -> tuple[float, int, int] | None:
    """(RSS in MB, open descriptors, threads) of a live process, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "VmRSS" not in fields:  # a zombie: exited, not yet reaped
        return None
    return int(fields["VmRSS"].split()[0]) / 1024, fds, int(fields["Threads"])


def photos_on_disk(data: Path, folders: list[str]) -> int:
    """Whole photos saved so far, wherever they are (downloaded, or moved into a split)."""
    count = 0
    for top in (INCOMING, *SPLITS):
        for folder in folders:
            with contextlib.suppress(FileNotFoundError):
                count += sum(1 for e in os.scandir(data / top / folder) if e.name.endswith(".jpg"))
    return count


def run_collect(
    data: Path,
    config: Path,
    key: str,
    target: int,
    folders: list[str],
    kill_at: float | None,
    interval: float,
    log: Path,
) -> RunRecord:
    record = RunRecord(kill_at)
    command = [*PHOTOCLASS, "collect", *CLASSES, "--out", str(data), "--config", str(config)]
    env = {**os.environ, "FLICKR_API_KEY": key}
    started = time.perf_counter()
    with open(log, "a") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            status = proc_status(proc.pid)
            on_disk = photos_on_disk(data, folders)
            if status is not None:
                record.samples.append(Sample(time.perf_counter() - started, *status, on_disk))
            if kill_at is not None and on_disk >= kill_at * target:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                break
            time.sleep(interval)
    record.wall = time.perf_counter() - started
    record.returncode = proc.returncode
    return record


def working(samples: list[Sample]) -> list[Sample]:
    """The samples from the run's first new photo on: before it, Python is still starting."""
    first = next((i for i, s in enumerate(samples) if s.on_disk > samples[0].on_disk), len(samples))
    return samples[max(0, first - 1) :]


def at_share(samples: list[Sample], share: float) -> Sample:
    """The sample taken `share` of the way through `samples`."""
    start, end = samples[0].at, samples[-1].at
    return min(samples, key=lambda s: abs(s.at - (start + share * (end - start))))


def check_dataset(data: Path, per_class: int, folders: list[str]) -> list[str]:
    """Everything on which the manifest and the folder disagree (empty when they agree)."""
    problems: list[str] = []
    with sqlite3.connect(data / MANIFEST) as db:
        kept = db.execute("SELECT id, class, split, sha256 FROM photos WHERE status = 'ok'").fetchall()
    expected = {}
    for photo_id, folder, split, sha in kept:
        if split not in SPLITS:
            problems.append(f"kept photo {photo_id} has no split ({split!r})")
            continue
        expected[f"{split}/{folder}/{photo_id}.jpg"] = sha
    files = {str(p.relative_to(data)) for p in data.rglob("*") if p.is_file()}
    extra = sorted(files - set(expected) - {MANIFEST, ATTRIBUTION})
    missing = sorted(set(expected) - files)
    if extra:
        problems.append(f"{len(extra)} file(s) not in the manifest, e.g. {extra[:3]}")
    if missing:
        problems.append(f"{len(missing)} kept photo(s) without their file, e.g. {missing[:3]}")
    for name, sha in expected.items():
        if name in files and hashlib.sha256((data / name).read_bytes()).hexdigest() != sha:
            problems.append(f"{name} differs from the sha256 in the manifest")
    for folder in folders:
        rows = sum(1 for _, f, _, _ in kept if f == folder)
        on_disk = sum(1 for name in files if name.split("/")[1:2] == [folder])
        if not rows == on_disk == per_class:
            problems.append(
                f"class {folder}: {rows} kept in the manifest, {on_disk} files, {per_class} asked"
            )
    if (data / INCOMING).exists():
        problems.append(f"{INCOMING}/ is still there")
    with open(data / ATTRIBUTION, newline="", encoding="utf-8") as f:
        listed = {row["file"] for row in csv.DictReader(f)}
    if listed != set(expected):
        problems.append(f"{ATTRIBUTION} lists {len(listed)} photos, the manifest keeps {len(expected)}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10_000, help="photos to collect, over two classes")
    parser.add_argument("--quick", action="store_true", help="1,000 photos")
    parser.add_argument("--kills", default="0.3,0.65", help="shares of the target at which to SIGKILL")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="collect into this folder and keep it")
    args = parser.parse_args()
    photos = 1000 if args.quick else args.photos
    per_class = photos // len(CLASSES)
    target = per_class * len(CLASSES)
    kills = [float(x) for x in args.kills.split(",") if x.strip()]

    print(cpu())
    print(machine())
    print(
        f"soak: {target} photos ({per_class} per class), killed at {kills} of them, then resumed to the end"
    )
    print(f"faults: {FAULTS}")

    folders = list(class_folders(CLASSES).values())
    # Enough photos for the target after rejections (corrupt, duplicates, thumbnails, ...).
    corpus = int(per_class * 1.25) + 100
    tick = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="photoclass-soak-") as tmp:
        data = args.keep or Path(tmp) / "data"
        config, log = Path(tmp) / "soak.toml", Path(tmp) / "collect.log"
        with SimServer(CLASSES, corpus, faults=FAULTS, seed=args.seed) as sim:
            config.write_text(CONFIG.format(per_class=per_class, api_url=sim.api_url))
            records = []
            for n, kill_at in enumerate([*kills, None], start=1):
                banner(
                    f"run {n}: " + (f"SIGKILL at {kill_at:.0%} of the photos" if kill_at else "to the end")
                )
                record = run_collect(data, config, sim.api_key, target, folders, kill_at, args.interval, log)
                records.append(record)
                on_disk = record.samples[-1].on_disk if record.samples else 0
                print(
                    f"exit {record.returncode} after {record.wall:.1f} s; {on_disk} photos on disk",
                    flush=True,
                )
            served = dict(sorted(sim.flickr.served.items()))
            requests = (sim.flickr.api_calls, sim.flickr.image_requests)
        problems = check_dataset(data, per_class, folders)
        tail = log.read_text().strip().splitlines()[-5:]
    total = time.perf_counter() - tick

    banner("memory, descriptors and threads of each run (at 10% / 50% / 90% of its working time; peak)")
    rows = []
    flat, no_leak = True, True
    for n, record in enumerate(records, start=1):
        s = working(record.samples)
        if len(s) < 3:
            rows.append([f"run {n}", record.wall, record.returncode, "-", "-", "-", "-", "-", "-"])
            continue
        p10, p50, p90 = (at_share(s, x) for x in (0.1, 0.5, 0.9))
        flat &= p90.rss_mb <= p50.rss_mb * 1.10 + 16
        # Connections open and close with each batch of downloads: compare the busiest moments
        # of the two halves, not two instants.
        half = s[-1].at - (s[-1].at - s[0].at) / 2
        first, second = (
            max((x.fds for x in s if (x.at < half) == early), default=0) for early in (True, False)
        )
        no_leak &= second <= first + 4
        rows.append(
            [
                f"run {n}",
                record.wall,
                record.returncode,
                f"{p10.rss_mb:.0f} / {p50.rss_mb:.0f} / {p90.rss_mb:.0f}",
                max(x.rss_mb for x in s),
                f"{p10.fds} / {p50.fds} / {p90.fds}",
                max(x.fds for x in s),
                f"{p10.threads} / {p50.threads} / {p90.threads}",
                f"{p10.on_disk} / {p50.on_disk} / {p90.on_disk}",
            ]
        )
    print(
        table(
            [
                "run",
                "wall s",
                "exit",
                "RSS MB",
                "peak MB",
                "open fds",
                "peak fds",
                "threads",
                "photos on disk",
            ],
            rows,
        )
    )
    print(f"samples every {args.interval} s: {', '.join(str(len(r.samples)) for r in records)}")
    print(f"simulator: {requests[0]} API calls, {requests[1]} image requests; faults served: {served}")
    print("collect's last lines:\n  " + "\n  ".join(tail))
    killed = all(r.returncode == -signal.SIGKILL for r in records[:-1])
    print(
        f"\nkilled by SIGKILL as planned: {'yes' if killed else 'NO'}; last run exit code {records[-1].returncode}"
    )
    print(f"memory flat (each run's 90% sample within 10% + 16 MB of its 50% one): {'yes' if flat else 'NO'}")
    print(
        f"descriptors steady (most open in each run's second half within 4 of its first): {'yes' if no_leak else 'NO'}"
    )
    if problems:
        print("manifest and folder DISAGREE:\n  " + "\n  ".join(problems))
    else:
        print(
            f"manifest and folder agree exactly: {target} photos, {per_class} per class, every file accounted for"
        )
    print(f"total wall time {total:.0f} s; {machine()}")
    ok = killed and records[-1].returncode == 0 and not problems and flat and no_leak
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
