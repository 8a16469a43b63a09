"""Fixed-window rate limits kept in Django's cache: Redis in production, so every server process shares them.

A window starts at its first hit and lasts `window_s`; the counter is a single atomic INCR, so concurrent requests
from many processes never both slip under the limit.
"""

import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # seconds until the window resets (0 when allowed)


def hit(key: str, *, limit: int, window_s: int, cost: int = 1) -> Verdict:
    """Count `cost` events (one by default) against `key`; refused once more than `limit` happened in the current
    window."""
    now = time.time()
    count_key, start_key = f"rl:{key}:n", f"rl:{key}:t"
    # add() is a no-op when the window is already running; both keys expire together at its end.
    cache.add(start_key, now, window_s)
    cache.add(count_key, 0, window_s)
    try:
        count = cache.incr(count_key, cost)
    except ValueError:  # the window expired between add() and incr()
        cache.set(start_key, now, window_s)
        cache.set(count_key, cost, window_s)
        count = cost
    if count <= limit:
        return Verdict(True, 0)
    started = cache.get(start_key) or now
    return Verdict(False, max(1, int(started + window_s - now + 0.999)))


def peek(key: str, *, limit: int, window_s: int) -> Verdict:
    """Whether `key` is over `limit` in its current window, without counting anything (for limits on failures:
    checked before the attempt, counted only when it fails)."""
    count = cache.get(f"rl:{key}:n") or 0
    if count < limit:
        return Verdict(True, 0)
    now = time.time()
    started = cache.get(f"rl:{key}:t") or now
    return Verdict(False, max(1, int(started + window_s - now + 0.999)))


def reset(key: str) -> None:
    """Forget `key`'s count (a success that clears earlier failures)."""
    cache.delete_many([f"rl:{key}:n", f"rl:{key}:t"])
