"""Run `collect`, and SIGKILL it at a chosen point: test_kill.py runs this as a subprocess.

    python killable.py DATA CONFIG_JSON API_KEY POINT

POINT is where the process dies: `search` (the first search results just recorded),
`download` (a photo's temporary file written, not yet renamed), `split` (a few photos moved
into their split), or `none` to run to the end.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from photoclass.collecting import collect, split
from photoclass.collecting.manifest import Manifest
from photoclass.config import CollectConfig


def die_at_call(
    owner: Any, name: str, nth: int, *, before: bool = False, counts: Callable[..., bool] = lambda *a: True
) -> None:
    """Make the `nth` counted call of `owner.name` kill this process, just before or after it."""
    original, calls = getattr(owner, name), [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += counts(*args)
        if before and calls[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if calls[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, wrapper)


def main() -> None:
    data, settings, key, point = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
    if point == "search":
        die_at_call(Manifest, "add", 1)
    elif point == "download":
        die_at_call(os, "replace", 7, before=True, counts=lambda src, *_: str(src).endswith(".part"))
    elif point == "split":
        die_at_call(split, "_move", 5)
    collect(CollectConfig(**settings), data, key)


if __name__ == "__main__":
    main()
