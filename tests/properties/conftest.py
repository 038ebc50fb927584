"""Property-based tests (hypothesis): each states what must hold for ANY input of a kind, and
hypothesis searches for a counterexample. Sized so the whole folder runs in well under 20 s;
`PHOTOCLASS_PROPERTY_SCALE=20` searches twenty times longer."""

from __future__ import annotations

import os

from hypothesis import settings

# No example database: a failure prints a `@reproduce_failure` blob to rerun it with, instead
# of leaving a .hypothesis/ folder in the repository.
settings.register_profile("photoclass", database=None, deadline=None, print_blob=True)
settings.load_profile("photoclass")

SCALE = max(1, int(os.environ.get("PHOTOCLASS_PROPERTY_SCALE", "1")))


def examples(n: int) -> int:
    """How many examples a property tries: `n`, times PHOTOCLASS_PROPERTY_SCALE."""
    return n * SCALE
