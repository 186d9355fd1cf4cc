"""HighLevel's per-resource limits: a sliding burst window and a daily quota, with all five headers.

Documented numbers (CONTRACT §5): at most 100 requests in any 10 s and 200,000 a day, per app
and location (or company). Every API answer carries the five `X-RateLimit-*` headers, 429s too.
A limit that is switched off still sends its header, with a large number, so clients that read
the headers keep working.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import UTC, datetime

from .config import KEEP, Keep

UNLIMITED = 1_000_000_000


def _utc_day() -> int:
    return datetime.now(UTC).toordinal()  # the daily quota resets at midnight UTC


class RateLimiter:
    def __init__(self, max_requests: int | None, interval_ms: int, daily_quota: int | None) -> None:
        self._lock = threading.Lock()
        self.max_requests = max_requests
        self.interval_ms = interval_ms
        self.daily_quota = daily_quota
        self._windows: dict[str, deque[float]] = {}
        self._daily: dict[str, tuple[int, int]] = {}  # key -> (UTC day, requests that day)

    def configure(self, max_requests: int | Keep | None = KEEP, interval_ms: int | Keep = KEEP,
                  daily_quota: int | Keep | None = KEEP) -> None:
        """Change the limits (omitted ones stay; None switches a limit off) and start counting afresh."""
        burst = self.max_requests if max_requests is KEEP else _limit(max_requests, "max")
        interval = self.interval_ms if interval_ms is KEEP else _limit(interval_ms, "interval_ms")
        daily = self.daily_quota if daily_quota is KEEP else _limit(daily_quota, "daily_quota")
        if interval is None:
            raise ValueError("interval_ms cannot be None")
        with self._lock:
            self.max_requests, self.interval_ms, self.daily_quota = burst, interval, daily
            self._windows.clear()
            self._daily.clear()

    def hit(self, key: str) -> tuple[bool, dict[str, str]]:
        """Count one request against `key` (a location or company id); return (allowed, headers).
        A refused request is not counted."""
        with self._lock:
            now = time.monotonic()
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - self.interval_ms / 1000.0:
                window.popleft()
            today = _utc_day()
            day, used = self._daily.get(key, (today, 0))
            if day != today:
                used = 0
            allowed = ((self.max_requests is None or len(window) < self.max_requests)
                       and (self.daily_quota is None or used < self.daily_quota))
            if allowed:
                window.append(now)
                used += 1
            self._daily[key] = (today, used)
            return allowed, self._headers(len(window), used)

    def headers(self) -> dict[str, str]:
        """The headers for an answer that is not counted against anyone (an unknown token)."""
        with self._lock:
            return self._headers(0, 0)

    def _headers(self, in_window: int, used_today: int) -> dict[str, str]:
        burst = self.max_requests if self.max_requests is not None else UNLIMITED
        daily = self.daily_quota if self.daily_quota is not None else UNLIMITED
        return {
            "X-RateLimit-Limit-Daily": str(daily),
            "X-RateLimit-Daily-Remaining": str(max(0, daily - used_today)),
            "X-RateLimit-Interval-Milliseconds": str(self.interval_ms),
            "X-RateLimit-Max": str(burst),
            "X-RateLimit-Remaining": str(max(0, burst - in_window)),
        }


def _limit(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer or None, not {value!r}")
    return value
