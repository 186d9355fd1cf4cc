"""HighLevel's per-location limits: a burst window and a daily quota, with all five headers."""

from __future__ import annotations

import threading
import time
from collections import deque

UNLIMITED = 1_000_000_000


class RateLimiter:
    def __init__(self, max_requests: int | None, interval_ms: int, daily_quota: int | None) -> None:
        self._lock = threading.Lock()
        self.configure(max_requests, interval_ms, daily_quota)

    def configure(self, max_requests: int | None, interval_ms: int, daily_quota: int | None) -> None:
        with self._lock:
            self.max_requests = max_requests
            self.interval_s = interval_ms / 1000.0
            self.daily_quota = daily_quota
            self._windows: dict[str, deque[float]] = {}
            self._daily: dict[str, int] = {}

    def hit(self, key: str) -> tuple[bool, dict[str, str]]:
        """Count one request for `key`; return (allowed, headers)."""
        with self._lock:
            now = time.monotonic()
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - self.interval_s:
                window.popleft()
            used_today = self._daily.get(key, 0)
            burst_ok = self.max_requests is None or len(window) < self.max_requests
            daily_ok = self.daily_quota is None or used_today < self.daily_quota
            allowed = burst_ok and daily_ok
            if allowed:
                window.append(now)
                used_today += 1
                self._daily[key] = used_today
            max_requests = self.max_requests if self.max_requests is not None else UNLIMITED
            daily = self.daily_quota if self.daily_quota is not None else UNLIMITED
            headers = {
                "X-RateLimit-Limit-Daily": str(daily),
                "X-RateLimit-Daily-Remaining": str(max(0, daily - used_today)),
                "X-RateLimit-Interval-Milliseconds": str(int(self.interval_s * 1000)),
                "X-RateLimit-Max": str(max_requests),
                "X-RateLimit-Remaining": str(max(0, max_requests - len(window))),
            }
            return allowed, headers
