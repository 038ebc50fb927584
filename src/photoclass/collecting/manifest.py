"""The manifest: `DATA/manifest.sqlite`, one row per photo ever found, failures included.

It is the resume point of `photoclass collect` (with the files on disk) and the record of
where every photo came from. `DATA/ATTRIBUTION.csv` is written from it for licensed reuse.

Statuses: `pending` (found, not yet downloaded), `ok` (downloaded, valid, not a duplicate),
`rejected` (final: bad content, a duplicate, or gone from Flickr: `unavailable`, `http_404`,
`http_410`; `error` says which), `failed` (the network gave up after retries; retried by the
next run that still needs photos for that class).
"""

from __future__ import annotations

import csv
import io
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photoclass.collecting.flickr import Photo
from photoclass.collecting.validate import Checked
from photoclass.files import atomic_write

MANIFEST = "manifest.sqlite"
ATTRIBUTION = "ATTRIBUTION.csv"
SCHEMA = """
CREATE TABLE IF NOT EXISTS photos (
    id TEXT PRIMARY KEY,             -- Flickr photo id (digits only)
    class TEXT NOT NULL,             -- class folder name
    rank INTEGER NOT NULL,           -- position in the class's search results
    query TEXT NOT NULL,
    owner TEXT NOT NULL,
    owner_name TEXT NOT NULL,
    license INTEGER NOT NULL,
    title TEXT NOT NULL,
    uploaded INTEGER NOT NULL,       -- unix seconds
    page_url TEXT NOT NULL,
    image_url TEXT NOT NULL,
    size TEXT NOT NULL,              -- the size extra used: c, z, l, m ...
    width INTEGER,
    height INTEGER,
    sha256 TEXT,
    phash TEXT,                      -- 64-bit perceptual hash, hex
    status TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    split TEXT
);
CREATE INDEX IF NOT EXISTS photos_by_class ON photos (class, status, rank);
CREATE TABLE IF NOT EXISTS licenses (id INTEGER PRIMARY KEY, name TEXT NOT NULL, url TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Outcome:
    """What became of one photo this round."""

    id: str
    status: str
    error: str | None
    checked: Checked | None
    attempts: int


class Manifest:
    """A handle on `DATA/manifest.sqlite`. Every method commits before it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- licenses ----------------------------------------------------------------------------

    def licenses(self) -> dict[int, tuple[str, str]]:
        return {r["id"]: (r["name"], r["url"]) for r in self._db.execute("SELECT * FROM licenses")}

    def save_licenses(self, table: dict[int, tuple[str, str]]) -> None:
        with self._db:
            rows = [(k, name, url) for k, (name, url) in table.items()]
            self._db.executemany("INSERT OR REPLACE INTO licenses VALUES (?, ?, ?)", rows)

    # -- found photos ------------------------------------------------------------------------

    def add(self, class_name: str, query: str, photos: Iterable[Photo], limit: int) -> int:
        """Record search results in order until `limit` new ones were added (fewer only if
        `photos` runs out); photos already known, under any class, are skipped.

        A result without any usable size is recorded as rejected, so every photo Flickr
        offered is accounted for.
        """
        with self._db:
            rank = self._db.execute(
                "SELECT COALESCE(MAX(rank), -1) + 1 FROM photos WHERE class = ?", (class_name,)
            ).fetchone()[0]
            added = 0
            for photo in photos:
                status, error = ("pending", None) if photo.url else ("rejected", "no_size")
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO photos (id, class, rank, query, owner, owner_name, "
                    "license, title, uploaded, page_url, image_url, size, width, height, status, "
                    "error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        photo.id, class_name, rank + added, query, photo.owner, photo.owner_name,
                        photo.license, photo.title, photo.uploaded, photo.page_url, photo.url,
                        photo.size, photo.width or None, photo.height or None, status, error,
                    ),
                )  # fmt: skip
                added += cursor.rowcount
                if added >= limit:
                    break
        return added

    def pending(self, class_name: str, limit: int) -> list[sqlite3.Row]:
        """The first `limit` photos of a class still to download, best-ranked first."""
        return self._db.execute(
            "SELECT id, image_url FROM photos WHERE class = ? AND status = 'pending' ORDER BY rank LIMIT ?",
            (class_name, limit),
        ).fetchall()

    def count(self, class_name: str, status: str) -> int:
        query = "SELECT COUNT(*) FROM photos WHERE class = ? AND status = ?"
        return self._db.execute(query, (class_name, status)).fetchone()[0]

    def requeue(self, ids: Sequence[str]) -> None:
        """Make kept photos pending again (their file went missing)."""
        with self._db:
            self._db.executemany(
                "UPDATE photos SET status = 'pending', split = NULL WHERE id = ?", [(i,) for i in ids]
            )

    def retry_failed(self, class_name: str) -> None:
        """Make the photos the network failed on pending again."""
        with self._db:
            self._db.execute(
                "UPDATE photos SET status = 'pending', error = NULL WHERE class = ? AND status = 'failed'",
                (class_name,),
            )

    def record(self, outcomes: Sequence[Outcome]) -> None:
        with self._db:
            self._db.executemany(
                "UPDATE photos SET status = ?, error = ?, sha256 = ?, phash = ?, width = ?, "
                "height = ?, attempts = attempts + ? WHERE id = ?",
                [
                    (
                        o.status, o.error,
                        o.checked.sha256 if o.checked else None,
                        o.checked.phash if o.checked else None,
                        o.checked.width if o.checked else None,
                        o.checked.height if o.checked else None,
                        o.attempts, o.id,
                    )
                    for o in outcomes
                ],
            )  # fmt: skip

    # -- kept photos -------------------------------------------------------------------------

    def kept(self, class_name: str | None = None) -> list[sqlite3.Row]:
        """Photos with status ok, by class then rank."""
        where = "status = 'ok'" + (" AND class = ?" if class_name else "")
        return self._db.execute(
            f"SELECT id, class, owner, sha256, phash, split FROM photos WHERE {where} ORDER BY class, rank",
            (class_name,) if class_name else (),
        ).fetchall()

    def set_splits(self, assignment: dict[str, str]) -> None:
        with self._db:
            self._db.executemany(
                "UPDATE photos SET split = ? WHERE id = ?", [(s, i) for i, s in assignment.items()]
            )

    def counts(self) -> dict[str, Counter[str]]:
        """Photos per class by status."""
        counts: dict[str, Counter[str]] = {}
        for row in self._db.execute("SELECT class, status, COUNT(*) FROM photos GROUP BY 1, 2"):
            counts.setdefault(row[0], Counter())[row[1]] = row[2]
        return counts

    def reasons(self) -> Counter[str]:
        """Rejections and failures by reason."""
        query = "SELECT error, COUNT(*) FROM photos WHERE status IN ('rejected', 'failed') GROUP BY 1"
        return Counter({row[0]: row[1] for row in self._db.execute(query)})

    def license_mix(self) -> Counter[str]:
        """Kept photos by license name."""
        names = self.licenses()
        query = "SELECT license, COUNT(*) FROM photos WHERE status = 'ok' GROUP BY 1"
        return Counter(
            {names.get(row[0], (f"license {row[0]}", ""))[0]: row[1] for row in self._db.execute(query)}
        )

    def write_attribution(self, path: Path) -> None:
        """`ATTRIBUTION.csv`: who took each kept photo, under which license, where it lives."""
        licenses = self.licenses()
        rows = self._db.execute(
            "SELECT * FROM photos WHERE status = 'ok' AND split IS NOT NULL ORDER BY class, id"
        )
        table = io.StringIO(newline="")
        writer = csv.writer(table)
        writer.writerow(["file", "photo_id", "class", "title", "owner_name", "owner",
                         "license", "license_url", "page_url"])  # fmt: skip
        for r in rows:
            name, url = licenses.get(r["license"], (f"license {r['license']}", ""))
            file = f"{r['split']}/{r['class']}/{r['id']}.jpg"
            cells = [file, r["id"], r["class"], r["title"], r["owner_name"], r["owner"],
                     name, url, r["page_url"]]  # fmt: skip
            writer.writerow([_cell(str(c)) for c in cells])
        atomic_write(path, table.getvalue())


def _cell(text: str) -> str:
    """A CSV cell that a spreadsheet shows as text: no control characters, no formulas."""
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    return "'" + text if text.startswith(("=", "+", "-", "@")) else text


def summarize(data_dir: Path) -> dict[str, Any] | None:
    """What a collected dataset holds, for reports; None when `data_dir` has no manifest.

    Returns photos per class and split, rejections and failures by reason, the license mix
    (license name -> photos kept) and the attribution file's path.
    """
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        return None
    with Manifest(path) as manifest:
        photos: dict[str, dict[str, int]] = {}
        for row in manifest.kept():
            split = row["split"] or "unsplit"
            photos.setdefault(row["class"], {}).setdefault(split, 0)
            photos[row["class"]][split] += 1
        attribution = Path(data_dir) / ATTRIBUTION
        return {
            "photos": photos,
            "rejections": dict(manifest.reasons()),
            "licenses": dict(manifest.license_mix().most_common()),
            "attribution": str(attribution) if attribution.is_file() else None,
        }
