"""`collect()`: wires the Flickr search, the downloader, validation, de-duplication, the
manifest and the split together, one class at a time. It decides nothing the parts can decide
alone, shows nothing (progress goes to a `photoclass.progress.Progress`) and returns what it
did as a `CollectSummary` (the command line draws it as a table)."""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from photoclass.collecting.dedup import Deduper
from photoclass.collecting.download import HostWatch, Job, Result, download
from photoclass.collecting.flickr import FlickrClient, Photo, parse_photo, size_chain
from photoclass.collecting.licenses import license_ids
from photoclass.collecting.manifest import ATTRIBUTION, MANIFEST, Manifest, Outcome
from photoclass.collecting.retry import Backoff
from photoclass.collecting.split import (
    SPLITS,
    IncomingFolder,
    Member,
    assign_splits,
    class_folders,
    clear_incoming,
    find_photo,
    place,
    remove_partials,
)
from photoclass.collecting.validate import check_image
from photoclass.config import CollectConfig, validate
from photoclass.errors import ConfigError, NetworkError
from photoclass.progress import NO_PROGRESS, Progress, Task


@dataclass
class ClassCounts:
    found: int = 0  # photos Flickr offered for the class (recorded in the manifest)
    downloaded: int = 0  # kept: valid and not a duplicate
    rejected: int = 0  # bad content, duplicates, photos gone from Flickr
    failed: int = 0  # the network gave up after retries


@dataclass
class CollectSummary:
    """What a `collect` run left in DATA, and what it cost."""

    data_dir: Path
    classes: dict[str, ClassCounts]  # by class folder name
    reasons: dict[str, int]  # rejections and failures by reason
    retries: dict[str, int]  # this run's retried attempts by reason (429, timeout, ...)
    splits: dict[str, dict[str, int]]  # split -> class -> photos
    api_calls: int  # this run
    elapsed: float  # seconds, this run
    short: list[str] = field(default_factory=list)  # classes Flickr had too few photos for


# ----------------------------------------------------------------------------------------------
# Checks and search parameters


def _check(config: CollectConfig) -> dict[str, str]:
    """Class name -> folder, after refusing settings that cannot work (each option's own
    bounds are checked by `validate`; here, what depends on several)."""
    if not config.classes:
        raise ConfigError("no classes given; name at least one, e.g. `classes=('cat', 'owl')`")
    validate(config)
    split = config.split
    if len(split) != 3 or min(split) < 0 or abs(sum(split) - 1) > 1e-6 or split[0] <= 0:
        raise ConfigError(f"`split` needs three shares >= 0 adding up to 1, train's above 0 (got {split})")
    size_chain(config.size)  # raises for an unknown size
    unknown = sorted(set(config.query) - set(config.classes))
    if unknown:
        raise ConfigError(f"`query` given for {', '.join(unknown)}, which is not among the classes")
    return class_folders(config.classes)


def search_params(name: str, config: CollectConfig, licenses: str | None) -> dict[str, object]:
    """The reference's query by default: text and tags = the class name, all tags required."""
    tags = name if config.tags is None else config.tags
    extras = ["license", "owner_name", "date_upload", *(f"url_{s}" for s in size_chain(config.size))]
    return {
        "text": config.query.get(name, name),
        "tags": tags or None,
        "tag_mode": config.tag_mode if tags else None,
        "sort": config.sort,
        "license": licenses,
        "content_type": 1,  # photos, not screenshots
        "media": "photos",
        "extras": ",".join(extras),
    }


def _describe(params: dict[str, object]) -> str:
    return " ".join(f"{k}={params[k]}" for k in ("text", "tags", "license") if params.get(k))


def _results(flickr: FlickrClient, params: dict[str, object], chain: tuple[str, ...]) -> Iterator[Photo]:
    for item in flickr.search(params):
        photo = parse_photo(item, chain)
        if photo is not None:
            yield photo


def _licenses(manifest: Manifest, flickr: FlickrClient, spec: str | None) -> str | None:
    """`spec` as Flickr's ids, matched against the live table. The table saved by an earlier
    run is used while it knows every name asked for (so a resumed run may call no API);
    otherwise it is fetched again, since Flickr's table grows."""
    table = manifest.licenses()
    if table:
        try:
            return license_ids(spec, table)
        except ConfigError:
            pass
    table = flickr.licenses()
    manifest.save_licenses(table)
    return license_ids(spec, table)


# ----------------------------------------------------------------------------------------------
# Progress


def _show(task: Task, counts: Counter[str]) -> None:
    found = sum(counts.values())
    task.update(
        completed=counts["ok"], info=f"found {found}, rejected {counts['rejected'] + counts['failed']}"
    )


def _counting(task: Task, counts: Counter[str]) -> Callable[[Result], None]:
    """A download callback: counts each result into `counts` as it lands, and shows it."""

    def update(result: Result) -> None:
        if result.status != "stopped":
            counts["pending"] -= 1
            counts[result.status] += 1
            _show(task, counts)

    return update


# ----------------------------------------------------------------------------------------------
# The run


@dataclass
class _Run:
    config: CollectConfig
    out: Path
    manifest: Manifest
    flickr: FlickrClient
    deduper: Deduper
    hosts: HostWatch
    licenses: str | None
    retries: Counter[str] = field(default_factory=Counter)


def _judge(run: _Run, sink: IncomingFolder, order: list[str], results: list[Result]) -> list[Outcome]:
    """Final status per photo, in search order, so that which of two duplicates is kept does
    not depend on which download finished first. A photo whose host was given up on stays
    pending, for the next run."""
    by_id = {r.id: r for r in results}
    outcomes = []
    for photo_id in order:
        r = by_id[photo_id]
        status, error = r.status, r.error
        if r.checked is not None:
            error = run.deduper.check(r.checked.sha256, r.checked.phash)
            if error is None:
                run.deduper.add(r.checked.sha256, r.checked.phash)
            else:
                status = "rejected"
                sink.discard(photo_id)
        if status == "stopped":
            status, error = "pending", None
        run.retries.update(r.retried)
        outcomes.append(Outcome(photo_id, status, error, r.checked, r.attempts))
    return outcomes


def _refusing(hosts: dict[str, Counter[str]]) -> NetworkError:
    host, reasons = next(iter(hosts.items()))
    how = "is rate-limiting" if reasons["http_429"] else "keeps failing"
    seen = ", ".join(f"{reason} x{n}" for reason, n in reasons.most_common())
    return NetworkError(
        f"photo host {host} {how} ({sum(reasons.values())} requests in a row refused: {seen}); "
        "rerun later to resume"
    )


def _collect_class(run: _Run, name: str, folder: str, task: Task) -> bool:
    """Download until the class has `per_class` kept photos; False if Flickr ran out first."""
    config, manifest = run.config, run.manifest
    if manifest.count(folder, "ok") < config.per_class:
        manifest.retry_failed(folder)
    params = search_params(name, config, run.licenses)
    found: Iterator[Photo] | None = None  # searched lazily: a resumed run may need no API call
    sink = IncomingFolder(run.out, folder)
    validate_photo = functools.partial(check_image, min_side=config.min_side, max_pixels=config.max_pixels)
    counts = manifest.counts().get(folder, Counter())
    _show(task, counts)
    while (need := config.per_class - counts["ok"]) > 0:
        batch = manifest.pending(folder, need)
        if len(batch) < need:
            if found is None:
                found = _results(run.flickr, params, size_chain(config.size))
            manifest.add(folder, _describe(params), found, limit=need - len(batch))
            batch = manifest.pending(folder, need)
            if not batch:
                return False
        jobs = [Job(r["id"], r["image_url"]) for r in batch]
        live = _counting(task, manifest.counts()[folder])
        results = download(jobs, config, validate=validate_photo, sink=sink, hosts=run.hosts, on_result=live)
        manifest.record(_judge(run, sink, [job.id for job in jobs], results))
        if down := run.hosts.down():
            raise _refusing(down)
        counts = manifest.counts()[folder]
        _show(task, counts)
    return True


def _split(run: _Run) -> dict[str, dict[str, int]]:
    kept = run.manifest.kept()
    members = [Member(r["id"], r["class"], r["owner"], r["phash"]) for r in kept]
    assignment = assign_splits(
        members,
        fractions=run.config.split,
        test_per_class=run.config.test_per_class,
        seed=run.config.seed,
        group_by_owner=run.config.group_by_owner,
        group_distance=run.config.group_distance,
        existing={r["id"]: r["split"] for r in kept if r["split"]},
    )
    place(run.out, members, assignment)
    run.manifest.set_splits(assignment)
    clear_incoming(run.out)
    counts: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    for member in members:
        split = counts[assignment[member.id]]
        split[member.folder] = split.get(member.folder, 0) + 1
    return counts


def collect(
    config: CollectConfig, out: Path, api_key: str | None = None, *, progress: Progress = NO_PROGRESS
) -> CollectSummary:
    """Collect `config.per_class` photos for each of `config.classes` from Flickr into `out`.

    Writes `out/{train,val,test}/<class>/<photo-id>.jpg`, `out/manifest.sqlite` (every photo
    found, with its status) and `out/ATTRIBUTION.csv`. Rerunning the same call after an
    interruption downloads only what is missing; rerunning a finished one changes nothing.
    `api_key` defaults to the one the environment holds (`flickr.find_api_key`). Progress is
    one task per class (kept photos out of `per_class`, with found and rejected counts).

    Raises `ConfigError` for settings that cannot work, `FlickrError` when Flickr refuses a
    call, `NetworkError` when the API or a photo host keeps refusing (what was downloaded is
    kept: rerun later to resume).

        >>> summary = collect(CollectConfig(classes=("cat", "owl")), Path("data"), key)  # doctest: +SKIP
        >>> summary.splits["test"]
        {'cat': 96, 'owl': 96}
    """
    started = time.monotonic()
    folders = _check(config)
    backoff = Backoff(config.retries, config.backoff)
    with FlickrClient(
        api_key,
        api_url=config.api_url,
        rate=config.api_rate,
        budget=config.api_budget,
        backoff=backoff,
        timeout=config.timeout,
    ) as flickr:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        remove_partials(out)
        with Manifest(out / MANIFEST) as manifest:
            licenses = _licenses(manifest, flickr, config.license)
            # Kept photos whose file has gone (deleted by hand) are downloaded again.
            manifest.requeue(
                [r["id"] for r in manifest.kept() if find_photo(out, r["class"], r["id"]) is None]
            )
            deduper = Deduper(config.dedup_distance)
            for row in manifest.kept():
                deduper.add(row["sha256"], row["phash"])
            run = _Run(config, out, manifest, flickr, deduper, HostWatch(config.host_refusals), licenses)
            short = []
            for name, folder in folders.items():
                with progress.task(folder, total=config.per_class) as task:
                    if not _collect_class(run, name, folder, task):
                        short.append(folder)
            splits = _split(run)
            manifest.write_attribution(out / ATTRIBUTION)
            counts = manifest.counts()
            summary = CollectSummary(
                data_dir=out,
                classes={
                    folder: ClassCounts(
                        found=sum(counts.get(folder, Counter()).values()),
                        downloaded=counts.get(folder, Counter())["ok"],
                        rejected=counts.get(folder, Counter())["rejected"],
                        failed=counts.get(folder, Counter())["failed"],
                    )
                    for folder in folders.values()
                },
                reasons=dict(manifest.reasons()),
                retries=dict(run.retries),
                splits=splits,
                api_calls=flickr.calls,
                elapsed=time.monotonic() - started,
                short=short,
            )
    return summary
