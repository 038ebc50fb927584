"""`collect()`: wires the Flickr search, the downloader, de-duplication, the manifest and the
split together, one class at a time. It decides nothing the parts can decide alone."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from photoclass.collecting.dedup import Deduper
from photoclass.collecting.download import Job, Result, download
from photoclass.collecting.flickr import KEY_HELP, FlickrClient, Photo, parse_photo, size_chain
from photoclass.collecting.manifest import ATTRIBUTION, MANIFEST, Manifest, Outcome
from photoclass.collecting.retry import Backoff
from photoclass.collecting.split import (
    SPLITS,
    Member,
    assign_splits,
    class_folders,
    clear_incoming,
    find_photo,
    photo_path,
    place,
    remove_partials,
)
from photoclass.config import CollectConfig, validate
from photoclass.errors import ConfigError

# Transitional: the collector still draws its own bars (to move onto photoclass.progress).
console = Console(stderr=True)


@dataclass
class ClassCounts:
    found: int = 0  # photos Flickr offered for the class (recorded in the manifest)
    downloaded: int = 0  # kept: valid and not a duplicate
    rejected: int = 0  # bad content or duplicates
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

    def table(self) -> Table:
        table = Table(title=f"collected into {self.data_dir}", title_justify="left", caption_justify="left")
        for column in ("class", "found", "kept", "rejected", "failed", *SPLITS):
            table.add_column(column, justify="left" if column == "class" else "right")
        for name, c in self.classes.items():
            per_split = [str(self.splits.get(s, {}).get(name, 0)) for s in SPLITS]
            table.add_row(name, str(c.found), str(c.downloaded), str(c.rejected), str(c.failed), *per_split)
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items())) or "none"
        table.caption = (
            f"rejected/failed by reason: {reasons}. {self.api_calls} API calls, {self.elapsed:.1f} s."
            + (f" Flickr ran out of photos for: {', '.join(self.short)}." if self.short else "")
        )
        return table


# ----------------------------------------------------------------------------------------------
# Checks and search parameters


def _check(config: CollectConfig, api_key: str) -> dict[str, str]:
    """Class name -> folder, after refusing settings that cannot work (each option's own
    bounds are checked by `validate`; here, what depends on several)."""
    if not api_key.strip():
        raise ConfigError(f"no Flickr API key; {KEY_HELP}")
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


def license_ids(spec: str | None, table: dict[int, tuple[str, str]]) -> str | None:
    """`--license` ("4,5,9" or names such as "CC BY 2.0") as Flickr's comma list of ids."""
    if not spec:
        return None

    def norm(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    by_name = {norm(name): i for i, (name, _) in table.items()}
    ids = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part.isdigit() and int(part) in table:
            ids.append(int(part))
        elif norm(part) in by_name:
            ids.append(by_name[norm(part)])
        else:
            known = "; ".join(f"{i} {name}" for i, (name, _) in sorted(table.items()))
            raise ConfigError(f"unknown license '{part}'; use ids or names: {known}")
    return ",".join(str(i) for i in sorted(set(ids)))


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


# ----------------------------------------------------------------------------------------------
# Progress


class _Display:
    """One bar per class: kept out of asked, with found / rejected counts beside it."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._tasks: dict[str, int] = {}

    def show(self, folder: str, total: int, counts: Counter[str]) -> None:
        if self._progress is None:
            return
        fields = {
            "found": sum(counts.values()),
            "rejected": counts["rejected"] + counts["failed"],
        }
        if folder not in self._tasks:
            self._tasks[folder] = self._progress.add_task(folder, total=total, **fields)
        self._progress.update(self._tasks[folder], completed=counts["ok"], **fields)

    def live(self, folder: str, total: int, counts: Counter[str]) -> Callable[[Result], None]:
        """A download callback: counts each result into `counts` as it lands, and redraws."""

        def update(result: Result) -> None:
            counts["pending"] -= 1
            counts[result.status] += 1
            self.show(folder, total, counts)

        return update


@contextmanager
def _display(enabled: bool) -> Iterator[_Display]:
    if not enabled:
        yield _Display(None)
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("found {task.fields[found]}, rejected {task.fields[rejected]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        yield _Display(progress)


# ----------------------------------------------------------------------------------------------
# The run


@dataclass
class _Run:
    config: CollectConfig
    out: Path
    manifest: Manifest
    flickr: FlickrClient
    deduper: Deduper
    display: _Display
    licenses: str | None
    retries: Counter[str] = field(default_factory=Counter)


def _judge(run: _Run, folder: str, order: list[str], results: list[Result]) -> list[Outcome]:
    """Final status per photo, in search order, so that which of two duplicates is kept does
    not depend on which download finished first."""
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
                photo_path(run.out, None, folder, photo_id).unlink(missing_ok=True)
        run.retries.update(r.retried)
        outcomes.append(Outcome(photo_id, status, error, r.checked, r.attempts))
    return outcomes


def _collect_class(run: _Run, name: str, folder: str) -> bool:
    """Download until the class has `per_class` kept photos; False if Flickr ran out first."""
    config, manifest = run.config, run.manifest
    if manifest.count(folder, "ok") < config.per_class:
        manifest.retry_failed(folder)
    params = search_params(name, config, run.licenses)
    found: Iterator[Photo] | None = None  # searched lazily: a resumed run may need no API call
    counts = manifest.counts().get(folder, Counter())
    run.display.show(folder, config.per_class, counts)
    while (need := config.per_class - counts["ok"]) > 0:
        batch = manifest.pending(folder, need)
        if len(batch) < need:
            if found is None:
                found = _results(run.flickr, params, size_chain(config.size))
            manifest.add(folder, _describe(params), found, limit=need - len(batch))
            batch = manifest.pending(folder, need)
            if not batch:
                return False
        jobs = [Job(r["id"], r["image_url"], photo_path(run.out, None, folder, r["id"])) for r in batch]
        live = run.display.live(folder, config.per_class, manifest.counts()[folder])
        results = download(jobs, config, on_result=live)
        manifest.record(_judge(run, folder, [job.id for job in jobs], results))
        counts = manifest.counts()[folder]
        run.display.show(folder, config.per_class, counts)
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


def collect(config: CollectConfig, out: Path, api_key: str, *, progress: bool = True) -> CollectSummary:
    """Collect `config.per_class` photos for each of `config.classes` from Flickr into `out`.

    Writes `out/{train,val,test}/<class>/<photo-id>.jpg`, `out/manifest.sqlite` (every photo
    found, with its status) and `out/ATTRIBUTION.csv`. Rerunning the same call after an
    interruption downloads only what is missing; rerunning a finished one changes nothing.

        >>> summary = collect(CollectConfig(classes=("cat", "owl")), Path("data"), key)  # doctest: +SKIP
        >>> summary.splits["test"]
        {'cat': 96, 'owl': 96}
    """
    started = time.monotonic()
    folders = _check(config, api_key)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_partials(out)
    backoff = Backoff(config.retries, config.backoff)
    with (
        Manifest(out / MANIFEST) as manifest,
        FlickrClient(
            api_key,
            api_url=config.api_url,
            rate=config.api_rate,
            budget=config.api_budget,
            backoff=backoff,
            timeout=config.timeout,
        ) as flickr,
        _display(progress) as display,
    ):
        table = manifest.licenses()
        if not table:
            table = flickr.licenses()
            manifest.save_licenses(table)
        # Kept photos whose file has gone (deleted by hand) are downloaded again.
        manifest.requeue([r["id"] for r in manifest.kept() if find_photo(out, r["class"], r["id"]) is None])
        deduper = Deduper(config.dedup_distance)
        for row in manifest.kept():
            deduper.add(row["sha256"], row["phash"])
        run = _Run(config, out, manifest, flickr, deduper, display, license_ids(config.license, table))
        short = [folder for name, folder in folders.items() if not _collect_class(run, name, folder)]
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
    if progress:
        console.print(summary.table())
    return summary
