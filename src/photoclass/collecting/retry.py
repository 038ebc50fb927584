"""When to try again, and how long to wait: shared by the API client and the downloader."""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# Flickr codes that mean "try again later": 10 search unavailable, 105 service unavailable,
# 106 write failed, and 0 and 201, both "Sorry, the Flickr API service is not currently
# available" (what public clients record during Flickr's outages). Everything else (100
# invalid key, 3 no arguments, ...) will not improve by asking again.
RETRY_CODES = frozenset({0, 10, 105, 106, 201})


def retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter, never shorter than the server's Retry-After."""

    retries: int = 5  # attempts after the first
    base: float = 1.0  # seconds before the first retry, on average
    cap: float = 60.0  # longest wait our own backoff chooses

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (0-based).

        "Equal jitter": half the exponential step is fixed, half random, so clients that failed
        together do not retry together, yet none retries immediately.
        """
        step = min(self.cap, self.base * 2**attempt)
        return max(step / 2 + random.uniform(0, step / 2), retry_after or 0.0)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None
