"""Per-location request pacing from HighLevel's `X-RateLimit-*` headers.

HighLevel allows a burst of N requests per interval (100 / 10 s) and a daily quota, per app and
location. A healthy run should never see a 429, so requests are paced *before* sending: a
sliding window where a request occupies its slot from the moment it is sent until one interval
after its response arrived. That is conservative (the server counts arrivals, which are earlier)
and works for fixed and sliding server windows alike, for concurrent callers too.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from . import settings
from .errors import QuotaExhausted


class RateGovernor:
    """Paces one location's requests; shared by all resources (and threads) of that location."""

    def __init__(
        self,
        location: str,
        max_requests: int = settings.DEFAULT_BURST_MAX,
        interval_ms: int = settings.DEFAULT_BURST_INTERVAL_MS,
        daily_reserve: int = settings.DEFAULT_DAILY_RESERVE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.location = location
        self.max_requests = max_requests
        self.interval_s = interval_ms / 1000.0
        self.daily_reserve = daily_reserve
        self.daily_remaining: int | None = None
        self.daily_limit: int | None = None
        self._clock = clock
        self._sleep = sleep
        self._done: deque[tuple[float, int]] = deque()  # (completion time, place in sending order)
        self._in_flight = 0
        self._flying: set[int] = set()  # places in sending order of the requests in flight
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._waiting: list[tuple[float, int]] = []  # (priority, arrival) of requests waiting for a slot
        self._tickets = itertools.count()
        self._server_left: int | None = None  # `remaining` of the latest answer (None: none yet)
        self._sent_since = 0  # requests sent since that answer, or in flight when it came
        self._heard_at = -float("inf")  # when it came
        self._sent = 0  # requests sent so far; the place in that order of the latest answer heard:
        self._heard_from = 0  # an answer to an earlier request, arriving later, is older news
        # how much of the server's count at the latest answer our own requests cannot explain
        # (None: no answer yet): while it is 0, our window, stricter than the server's, paces alone
        self._foreign: int | None = None

    def acquire(self, priority: float = 0.0) -> int:
        """Block until a request may be sent; raise QuotaExhausted near the daily limit.

        When the budget is short, waiting requests go in `priority` order (lower first, then first
        come): a time-sliced read gives its earlier slices lower numbers, so the pages the consumer
        needs next are fetched first and later slices fill the rest of the budget. Returns the
        request's place in sending order, for `release`.
        """
        ticket = (priority, next(self._tickets))
        with self._ready:
            heapq.heappush(self._waiting, ticket)
            try:
                while True:
                    if self.daily_remaining is not None and \
                            self.daily_remaining - self._in_flight <= self.daily_reserve:
                        raise QuotaExhausted(
                            f"location {self.location}: daily API quota nearly used up "
                            f"({self.daily_remaining} of {self.daily_limit} left, keeping {self.daily_reserve} "
                            "in reserve); stopping cleanly, the next run resumes from the saved cursors"
                        )
                    now = self._clock()
                    horizon = now - self.interval_s
                    while self._done and self._done[0][0] <= horizon:
                        self._done.popleft()
                    ours = len(self._done) + self._in_flight < self.max_requests
                    theirs = self._server_allows(now)
                    free = now >= self._blocked_until and ours and theirs
                    if free and self._waiting[0] == ticket:
                        heapq.heappop(self._waiting)
                        self._in_flight += 1
                        self._sent_since += 1
                        self._sent += 1
                        self._flying.add(self._sent)
                        self._ready.notify_all()  # the next in line may go too
                        return self._sent
                    wait = self._blocked_until - now
                    if self._done and not ours:
                        wait = max(wait, self._done[0][0] + self.interval_s - now)
                    if not theirs:  # a response will tell more; with none in flight, the window slides
                        wait = max(wait, self._heard_at + self.interval_s - now if not self._in_flight
                                   else self.interval_s)
                    self._wait(min(max(wait, 0.005), self.interval_s))
            except BaseException:
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
                self._ready.notify_all()
                raise

    def _server_allows(self, now: float) -> bool:
        """What the server said is left in its window, less what was sent since it said so.

        A run's own count starts empty, but the server's window may hold the requests of a run that
        just ended (or of another integration): many requests sent at once on a fresh count would
        meet 429s. So the first request goes alone, and later ones stay within the `remaining` the
        latest answer reported, counting requests still in flight as not yet seen by it.

        Once the server's count is all ours, our own window decides: it holds each slot until an
        interval after the answer, so it frees slots no earlier than the server does. Waiting for
        the server to say more would cost a whole interval after the *last* answer of a burst at
        every window (5 s of every 10 when a burst of slow pages takes 5 s to send).
        """
        if self._in_flight == 0 and now >= self._heard_at + self.interval_s:
            return True  # nothing pending and a whole window since the last answer: ask
        if self._server_left is None:
            return False
        return self._sent_since < self._server_left or self._foreign == 0

    def _wait(self, seconds: float) -> None:
        """Sleep (lock released) until woken by a finished request or `seconds` pass."""
        if self._sleep is time.sleep:
            self._ready.wait(seconds)
        else:  # a test's fake clock: sleep through it, without the lock
            self._ready.release()
            try:
                self._sleep(seconds)
            finally:
                self._ready.acquire()

    def release(self, headers: Mapping[str, str] | None, sent: int | None = None) -> None:
        """Record a finished request and learn the real limits from its headers."""
        with self._lock:
            self._ready.notify_all()
            self._in_flight -= 1
            self._flying.discard(sent or 0)
            now = self._clock()
            self._done.append((now, sent or 0))
            if headers is None:
                return
            max_requests = _int_header(headers, "x-ratelimit-max")
            interval_ms = _int_header(headers, "x-ratelimit-interval-milliseconds")
            remaining = _int_header(headers, "x-ratelimit-remaining")
            daily_remaining = _int_header(headers, "x-ratelimit-daily-remaining")
            daily_limit = _int_header(headers, "x-ratelimit-limit-daily")
            if max_requests and max_requests > 0:
                self.max_requests = max_requests
            if interval_ms and interval_ms > 0:
                self.interval_s = interval_ms / 1000.0
            if daily_remaining is not None:
                self.daily_remaining = daily_remaining
            # the server's own count (requests still in flight may not be in it yet), unless an answer
            # to a later request already told newer news
            if sent is None or sent > self._heard_from:
                self._heard_from = sent or self._heard_from
                self._server_left = remaining if remaining is not None else self.max_requests
                self._sent_since = self._in_flight
                self._heard_at = now
                self._foreign = None if remaining is None else self._unexplained(self.max_requests - remaining, sent)
            if daily_limit is not None:
                self.daily_limit = daily_limit
            if remaining is not None and remaining <= 0:
                horizon = now - self.interval_s
                while self._done and self._done[0][0] <= horizon:
                    self._done.popleft()
                if len(self._done) + self._in_flight < self.max_requests:
                    # The server sees the window full before we do: another client shares this
                    # location's budget. Wait until our oldest request leaves the window.
                    oldest = self._done[0][0] if self._done else now
                    self._blocked_until = max(self._blocked_until, oldest + self.interval_s)
                # otherwise our own window is full too, and acquire() already waits exactly enough

    def _unexplained(self, server_count: int, sent: int | None) -> int:
        """The part of the server's count that our requests sent up to `sent` cannot account for:
        those answered within the last interval, or still in flight (sent earlier, so probably
        arrived earlier). A request answered late in the interval may have arrived just before it,
        so this can miss a foreign request or two; the 429 path covers that."""
        if sent is None:
            return server_count  # an answer we cannot place: assume it is all someone else's
        horizon = self._clock() - self.interval_s
        ours = sum(1 for done, place in self._done if done > horizon and place <= sent)
        ours += sum(1 for place in self._flying if place < sent)
        return max(0, server_count - ours)

    def back_off(self, seconds: float) -> None:
        """Hold every request of this location for `seconds` (after a 429)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)


_thread = threading.local()


def set_request_priority(priority: float) -> None:
    """The priority of the requests this thread sends from now on (see `RateGovernor.acquire`)."""
    _thread.priority = priority


def request_priority() -> float:
    return float(getattr(_thread, "priority", 0.0))


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(float(raw))
    except ValueError:
        return None
