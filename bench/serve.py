"""Serving under load: `photoclass serve` (Starlette on uvicorn, dynamic batching) against the
standard-library server it replaced, next to `photoclass predict`'s batch rate.

    python bench/serve.py --model MODEL     # an efficientnet-lite0 bundle from `photoclass train`
    python bench/serve.py                   # trains one first on 200 cats-owls photos (~30 s)
    python bench/serve.py --quick           # 1 round, 50 requests per client, 1 batch-rate run

1. `photoclass predict`'s batch rate over the 500 validation photos (bench/predict.py's
   `batch`, imported): the most a server could answer per second on this machine. And the
   forward pass alone (`predict_pixels` on decoded pixels, in a process set up as the
   command is) at batch 1, 4, 8 and 16: batch 1 is what the old server runs, so the ratio
   bounds what batching can gain on this CPU.
2. Each round starts the baseline (bench/stdlib_server.py, the old server, under the same
   allocator and OpenMP settings as the `photoclass` command) and then `photoclass serve
   MODEL` with its defaults, each in its own process on 127.0.0.1, and measures each with
   - one client, one request at a time (50 requests): latency without contention;
   - `--clients` (8) concurrent clients x `--requests` (200) requests: answers/s and p50/p95
     latency; every request a real validation photo, each client on one keep-alive connection.
   Both after an untimed burst of 40 requests. Rounds alternate the order of the two servers;
   the tables give medians over rounds.
3. `photoclass serve` again under the same load with every 4th request a bad upload (not an
   image, a truncated photo, an empty body, a form without the `file` field, `top_k=abc`, a
   wrong route): each must get its 4xx, each good request 200 with the label it got in 2.
Targets (the issue's): 0 errors, answers/s >= 3x the baseline's, p95 <= 1/2 of the baseline's.
Loopback only; bounded by the request counts and by `--time-limit` seconds per load phase.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from _common import (
    DATA,
    PHOTOCLASS,
    ROOT,
    banner,
    command_env,
    cpu,
    machine,
    median,
    run,
    stratified_subset,
    table,
)
from predict import BATCH_PATHS, batch

BASELINE, SERVE = "stdlib server (before)", "photoclass serve"
THROUGHPUT_TARGET, P95_TARGET = 3.0, 0.5
BAD_EVERY = 4


@dataclass
class Load:
    """One load phase: what the clients saw."""

    wall: float = 0.0
    good_ms: list[float] = field(default_factory=list)  # latencies of the good requests answered 200
    errors: list[str] = field(default_factory=list)  # anything not answered as it should be
    bad_answered: int = 0  # bad uploads that got their 4xx
    labels: dict[int, str] = field(default_factory=dict)  # photo index -> label answered
    batches: int = 0  # forward passes during the phase (photoclass serve's /healthz)
    photos: int = 0

    @property
    def rate(self) -> float:
        return len(self.good_ms) / self.wall if self.wall else 0.0

    def percentile(self, q: float) -> float:
        times = sorted(self.good_ms)
        return times[min(len(times) - 1, int(q * len(times)))] if times else float("nan")


def bad_requests(photo: bytes) -> list[tuple[str, str, bytes, dict[str, str], int]]:
    """(kind, path, body, headers, expected status) for each kind of bad upload."""
    form = (
        b'--b\r\nContent-Disposition: form-data; name="photo"; filename="a.jpg"\r\n\r\n'
        + photo
        + b"\r\n--b--\r\n"
    )
    return [
        ("not an image", "/api/predict", b"<html>not a photo</html>", {}, 400),
        ("truncated photo", "/api/predict", photo[: len(photo) // 3], {}, 400),
        ("empty body", "/api/predict", b"", {}, 400),
        (
            "form without `file`",
            "/api/predict",
            form,
            {"Content-Type": "multipart/form-data; boundary=b"},
            400,
        ),
        ("top_k=abc", "/api/predict?top_k=abc", photo, {}, 400),
        ("wrong route", "/api/upload", photo, {}, 404),
    ]


def load(
    url: str, bodies: list[bytes], clients: int, requests: int, limit_s: float, bad_every: int = 0
) -> Load:
    """`clients` threads, each on its own keep-alive connection, sending `requests` requests one
    after another (stopping at `limit_s`); with `bad_every`, every so many is a bad upload."""
    parts = urlsplit(url)
    result, lock = Load(), threading.Lock()
    bad = bad_requests(bodies[0])
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(c: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        start.wait()
        for j in range(requests):
            if time.monotonic() > deadline[0]:
                break
            n = c * requests + j
            if bad_every and n % bad_every == bad_every - 1:
                kind, path, body, headers, want = bad[(n // bad_every) % len(bad)]
                index = None
            else:
                index = n % len(bodies)
                kind, path, body, headers, want = "photo", "/api/predict", bodies[index], {}, 200
            tick = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as e:
                status, payload = 0, str(e).encode()
                conn.close()
            ms = (time.perf_counter() - tick) * 1000
            with lock:
                if status != want:
                    result.errors.append(f"{kind}: {status} {payload[:120]!r}")
                elif index is None:
                    result.bad_answered += 1
                else:
                    result.good_ms.append(ms)
                    result.labels[index] = payload.split(b'"label":')[1].split(b'"')[1].decode()
        conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.monotonic() + limit_s
    tick = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    result.wall = time.perf_counter() - tick
    return result


def health(url: str) -> dict[str, int]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", "/healthz")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


@contextmanager
def started(cmd: list[str], env: dict[str, str] | None = None) -> Iterator[str]:
    """Run a server command whose first line on stderr ends "... at URL ..."; yield the URL
    once it answers; stop it with SIGINT (Ctrl-C)."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    try:
        first = proc.stderr.readline()
        if " at http://" not in first:
            raise SystemExit(f"{shlex.join(cmd)} did not start: {first}{proc.stderr.read()[-800:]}")
        url = first.split(" at ")[1].split()[0]
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep its pipe drained
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        conn.request("GET", "/api/info")  # waits in the listen queue until the model is loaded
        conn.getresponse().read()
        conn.close()
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


FORWARD = """
import sys, time, numpy as np, photoclass
from photoclass.prediction.predict import predict_pixels
bundle = photoclass.load_model(sys.argv[1])
size = bundle.image_size
pixels = np.random.default_rng(0).integers(0, 256, (16, size, size, 3), dtype=np.uint8)
for n in map(int, sys.argv[2:]):
    predict_pixels(bundle, pixels[:n], batch_size=n)  # oneDNN sets up kernels for this shape
    done, tick = 0, time.perf_counter()
    while time.perf_counter() - tick < 4:
        predict_pixels(bundle, pixels[:n], batch_size=n)
        done += n
    print(n, done / (time.perf_counter() - tick), flush=True)
"""


def forward_rates(model: Path, sizes: tuple[int, ...] = (1, 4, 8, 16)) -> dict[int, float]:
    """Photos/s of the forward pass alone at each batch size (4 s each)."""
    out = run([sys.executable, "-c", FORWARD, str(model), *map(str, sizes)], env=command_env()).stdout
    rates = {int(n): float(r) for n, r in (line.split() for line in out.strip().splitlines())}
    print(
        table(
            ["forward pass only, batch of", "photos/s", "x batch 1"],
            [[n, r, r / rates[1]] for n, r in rates.items()],
        )
    )
    return rates


def measure(name: str, url: str, bodies: list[bytes], args: argparse.Namespace) -> dict[str, Load]:
    load(url, bodies, args.clients, 5, args.time_limit)  # untimed: oneDNN kernels, connections
    phases = {"one client": load(url, bodies, 1, 50, args.time_limit)}
    before = health(url) if name == SERVE else None
    phases["concurrent"] = load(url, bodies, args.clients, args.requests, args.time_limit)
    if before is not None:
        after = health(url)
        phases["concurrent"].batches = after["batches"] - before["batches"]
        phases["concurrent"].photos = after["photos"] - before["photos"]
        phases["bad mixed in"] = load(url, bodies, args.clients, args.requests, args.time_limit, BAD_EVERY)
    for phase, result in phases.items():
        print(
            f"   {name}, {phase}: {len(result.good_ms)} answers in {result.wall:.1f} s = {result.rate:.1f}/s, "
            f"p50 {result.percentile(0.5):.0f} ms, p95 {result.percentile(0.95):.0f} ms, "
            f"errors {len(result.errors)}",
            flush=True,
        )
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an efficientnet-lite0 bundle [train one]")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="per client")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-runs", type=int, default=2, help="runs of the batch-rate measurement")
    parser.add_argument("--time-limit", type=float, default=300, help="seconds per load phase, at most")
    parser.add_argument("--serve-args", default="", help="extra flags for `photoclass serve`")
    parser.add_argument("--quick", action="store_true", help="1 round, 50 requests per client")
    parser.add_argument(
        "--baseline-engine",
        default="torch",
        help="what computes the old server's predictions: torch (as it did) or auto (as serve does)",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.requests, args.batch_runs = 1, 50, 1
    print("$", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(cpu())
    print(machine())
    val = DATA / "val"
    photos = sorted(p for cls in sorted(val.iterdir()) for p in sorted(cls.iterdir()))
    bodies = [p.read_bytes() for p in photos]
    print(f"{len(bodies)} photos from {val}, {sum(map(len, bodies)) / len(bodies) / 1024:.0f} kB on average")

    with tempfile.TemporaryDirectory(prefix="photoclass-bench-") as tmp:
        model = args.model
        if model is None:
            model = Path(tmp) / "lite0"
            subset = stratified_subset(DATA, 200, Path(tmp) / "subset")
            print(f"no --model: training efficientnet-lite0 on {subset} (1 fine-tune epoch) into {model}")
            run(
                [*PHOTOCLASS, "train", str(subset), "--out", str(model), "--epochs", "1"],
                env={"PHOTOCLASS_CACHE": str(Path(tmp) / "cache")},
            )

        banner("1. photoclass predict's batch rate (bench/predict.py)")
        rates = batch(model, val, args.batch_runs)
        ceiling = rates[BATCH_PATHS[-1]]
        forward = forward_rates(model)

        servers = {
            BASELINE: (
                [sys.executable, str(ROOT / "bench" / "stdlib_server.py"), str(model), args.baseline_engine],
                command_env(),
            ),
            SERVE: ([*PHOTOCLASS, "serve", str(model), "--port", "0", *shlex.split(args.serve_args)], {}),
        }
        banner(
            f"2. {args.clients} clients x {args.requests} requests, {args.rounds} round(s); "
            f"3. the same with every {BAD_EVERY}th upload bad"
        )
        for name, (cmd, _) in servers.items():
            print(f"{name}: $ {shlex.join(cmd)}")
        results: dict[str, list[dict[str, Load]]] = {name: [] for name in servers}
        for r in range(args.rounds):
            order = list(servers) if r % 2 == 0 else list(servers)[::-1]
            for name in order:
                cmd, env = servers[name]
                with started(cmd, env) as url:
                    results[name].append(measure(name, url, bodies, args))

    report(results, ceiling, forward, args)
    print(f"\nafter: {machine()}")


def report(
    results: dict[str, list[dict[str, Load]]],
    ceiling: float,
    forward: dict[int, float],
    args: argparse.Namespace,
) -> None:
    def med(name: str, phase: str, value) -> float:
        return median([value(r[phase]) for r in results[name] if phase in r])

    rows = []
    for name in (BASELINE, SERVE):
        for phase in ("one client", "concurrent", "bad mixed in"):
            if not any(phase in r for r in results[name]):
                continue
            clients = 1 if phase == "one client" else args.clients
            rows.append(
                [
                    f"{name}, {phase}",
                    clients,
                    sum(len(r[phase].good_ms) for r in results[name]),
                    sum(len(r[phase].errors) for r in results[name]),
                    med(name, phase, lambda x: x.rate),
                    med(name, phase, lambda x: x.percentile(0.5)),
                    med(name, phase, lambda x: x.percentile(0.95)),
                    med(name, phase, lambda x: max(x.good_ms, default=float("nan"))),
                ]
            )
    print()
    print(
        table(
            ["server, load", "clients", "answers", "errors", "answers/s", "p50 ms", "p95 ms", "max ms"],
            rows,
            title="medians over rounds (answers and errors: totals)",
        )
    )
    old_rate, new_rate = (
        med(BASELINE, "concurrent", lambda x: x.rate),
        med(SERVE, "concurrent", lambda x: x.rate),
    )
    old_p95 = med(BASELINE, "concurrent", lambda x: x.percentile(0.95))
    new_p95 = med(SERVE, "concurrent", lambda x: x.percentile(0.95))
    concurrent = [r["concurrent"] for r in results[SERVE]]
    batches, photos = sum(x.batches for x in concurrent), sum(x.photos for x in concurrent)
    errors = sum(len(r[p].errors) for rs in results.values() for r in rs for p in r)
    mixed = [r["bad mixed in"] for r in results[SERVE]]
    same = sum(
        label == concurrent[i].labels.get(index)
        for i, m in enumerate(mixed)
        for index, label in m.labels.items()
    )
    print(
        f"photoclass predict's batch rate (API, as the CLI): {ceiling:.1f} photos/s; the forward pass alone "
        f"gains {max(forward.values()) / forward[1]:.2f}x from batching on this CPU"
    )
    print(
        f"{args.clients} clients: photoclass serve {new_rate:.1f} answers/s = {new_rate / old_rate:.2f}x the "
        f"baseline's {old_rate:.1f} (target >= {THROUGHPUT_TARGET:.0f}x) and {new_rate / ceiling:.0%} of the "
        f"batch rate; p95 {new_p95:.0f} ms = {new_p95 / old_p95:.2f}x the baseline's {old_p95:.0f} ms "
        f"(target <= {P95_TARGET}x); {photos / max(batches, 1):.1f} photos per forward pass on average"
    )
    print(
        f"bad uploads mixed in: {sum(m.bad_answered for m in mixed)} answered with their 4xx, "
        f"{sum(len(m.good_ms) for m in mixed)} good requests answered 200; the label of the clean run "
        f"for {same} of the {sum(len(m.labels) for m in mixed)} photos they covered"
    )
    for name, rs in results.items():
        for r in rs:
            for phase, x in r.items():
                for e in x.errors[:5]:
                    print(f"   error ({name}, {phase}): {e}")
    verdict = errors == 0 and new_rate >= THROUGHPUT_TARGET * old_rate and new_p95 <= P95_TARGET * old_p95
    print(f"{errors} errors; {'meets' if verdict else 'MISSES'} the targets")


if __name__ == "__main__":
    main()
