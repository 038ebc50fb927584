"""How far a long stage has got, told without knowing who is watching.

A stage takes a `Progress` and opens one task per piece of work:

    with progress.task("decoding 500 photos", total=500) as task:
        for photo in photos:
            ...
            task.advance(1, info="12 img/s")

`Progress` itself shows nothing (`NO_PROGRESS`); `RichProgress` draws bars on stderr (the
command line, and the Python API's `progress=True`); a caller may pass any object with the
same `task` method (a notebook widget, a log line every minute). Messages are not progress:
stages write them to `logging` under the `photoclass` logger, which the command line
configures (`--verbose`, `--quiet`) and a library user configures as they like.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class Task:
    """One piece of work in progress. `info` is a short live status (loss, speed, counts)."""

    def advance(self, n: int = 1, *, info: str | None = None) -> None:
        """`n` more units done."""

    def update(
        self, *, completed: int | None = None, total: int | None = None, info: str | None = None
    ) -> None:
        """Set the count done, the total, or the status line."""


class Progress:
    """The interface, and the silent implementation of it."""

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Task]:
        """A task of `total` units (None: unknown) shown while the block runs."""
        yield Task()


NO_PROGRESS = Progress()


class _RichTask(Task):
    def __init__(self, bars, task_id) -> None:
        self._bars, self._id = bars, task_id

    def advance(self, n: int = 1, *, info: str | None = None) -> None:
        fields = {} if info is None else {"info": info}
        self._bars.update(self._id, advance=n, **fields)

    def update(
        self, *, completed: int | None = None, total: int | None = None, info: str | None = None
    ) -> None:
        fields = {} if info is None else {"info": info}
        self._bars.update(self._id, completed=completed, total=total, **fields)


class RichProgress(Progress):
    """Bars on stderr, drawn by rich: description, bar, done/total, elapsed, remaining, status."""

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Task]:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bars

        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        with Bars(*columns, console=Console(stderr=True), transient=False) as bars:
            yield _RichTask(bars, bars.add_task(description, total=total, info=""))


def as_progress(progress: bool | Progress | None) -> Progress:
    """What the API's `progress` parameter means: True = bars on stderr, False/None = nothing,
    anything else = the caller's own object with a `task` method."""
    if progress is None or isinstance(progress, bool):
        return RichProgress() if progress else NO_PROGRESS
    return progress
