"""The governor paces requests so a healthy run never meets a 429."""

import pytest

from sources.highlevel.errors import QuotaExhausted
from sources.highlevel.ratelimit import RateGovernor


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_never_more_than_max_in_any_interval() -> None:
    clock = FakeClock()
    gov = RateGovernor("L", max_requests=10, interval_ms=1000, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    for _ in range(55):
        gov.acquire()
        sent.append(clock.now)
        clock.now += 0.001  # request latency
        gov.release({})
    for i in range(len(sent) - 10):
        assert sent[i + 10] - sent[i] >= 1.0
    # and it uses the budget: 55 requests in a little over 5 intervals
    assert sent[-1] - sent[0] < 5.2


def test_limits_are_learned_from_headers() -> None:
    clock = FakeClock()
    gov = RateGovernor("L", clock=clock, sleep=clock.sleep)
    gov.acquire()
    gov.release({"x-ratelimit-max": "25", "x-ratelimit-interval-milliseconds": "2000",
                 "x-ratelimit-daily-remaining": "9000", "x-ratelimit-limit-daily": "10000"})
    assert (gov.max_requests, gov.interval_s, gov.daily_remaining) == (25, 2.0, 9000)


def test_server_saying_window_full_blocks_when_someone_else_shares_the_budget() -> None:
    clock = FakeClock()
    gov = RateGovernor("L", max_requests=100, interval_ms=10_000, clock=clock, sleep=clock.sleep)
    gov.acquire()
    gov.release({"x-ratelimit-remaining": "0"})  # we sent 1, the server counts 100
    start = clock.now
    gov.acquire()
    assert clock.now - start >= 10.0 - 0.01


def test_a_full_window_of_our_own_does_not_add_a_pause() -> None:
    """Steady state at the limit: each response says 0 remaining; pacing must stay at ~max/interval."""
    clock = FakeClock()
    gov = RateGovernor("L", max_requests=10, interval_ms=1000, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    window: list[float] = []
    for _ in range(100):
        gov.acquire()
        sent.append(clock.now)
        window = [t for t in window if t > clock.now - 1.0] + [clock.now]
        clock.now += 0.005
        gov.release({"x-ratelimit-remaining": str(max(0, 10 - len(window)))})
    # 100 requests at 10 per second: the burst of 10, then ~9 s; no extra interval-long pauses
    assert sent[-1] - sent[0] < 9.6


def test_stops_before_the_daily_quota_is_gone() -> None:
    clock = FakeClock()
    gov = RateGovernor("L", daily_reserve=5, clock=clock, sleep=clock.sleep)
    gov.acquire()
    gov.release({"x-ratelimit-daily-remaining": "5", "x-ratelimit-limit-daily": "200000"})
    with pytest.raises(QuotaExhausted, match="daily API quota"):
        gov.acquire()


def test_a_fresh_count_asks_first_and_then_stays_within_what_the_server_says_is_left() -> None:
    """The server's window may still hold another run's requests: the first request goes alone, and
    the next ones stay within the `remaining` its answer reported (requests in flight count)."""
    clock = FakeClock()
    gov = RateGovernor("L", max_requests=100, interval_ms=10_000, clock=clock, sleep=clock.sleep)
    first = gov.acquire()
    assert not gov._server_allows(clock.now)  # a second one waits for the first answer
    gov.release({"x-ratelimit-remaining": "3"}, first)
    sent = [gov.acquire() for _ in range(3)]
    assert not gov._server_allows(clock.now)  # three sent, three were left
    gov.release({"x-ratelimit-remaining": "1"}, sent[0])  # two still in flight: not in that count yet
    assert not gov._server_allows(clock.now)
    gov.release({"x-ratelimit-remaining": "5"}, sent[1])  # one in flight; 5 left: 4 more may go
    assert gov._server_allows(clock.now)
    gov.release({"x-ratelimit-remaining": "9"}, sent[0])  # an older answer arriving late is ignored
    assert gov._server_left == 5


def test_with_nothing_in_flight_a_request_asks_again_once_the_window_has_slid() -> None:
    clock = FakeClock()
    gov = RateGovernor("L", max_requests=100, interval_ms=1000, clock=clock, sleep=clock.sleep)
    gov.release({"x-ratelimit-remaining": "0"}, gov.acquire())
    started = clock.now
    gov.acquire()  # sleeps (fake clock) until the server's window has slid past its full count
    assert clock.now - started >= 1.0


def _burst(gov: RateGovernor, clock: FakeClock, count: int, spacing: float, latency: float,
           server_used: int) -> None:
    """The first request alone (as on a fresh count), then `count - 1` sent `spacing` apart, each
    answered `latency` after it was sent; the server counts arrivals (send times here),
    `server_used` of them someone else's."""
    start = clock.now
    gov.acquire()
    clock.now += latency
    gov.release({"x-ratelimit-remaining": str(max(0, 100 - server_used - 1))}, 1)
    answers: list[tuple[float, int, int]] = []  # (answer time, place, remaining)
    for i in range(1, count):
        clock.now = max(clock.now, start + latency + (i - 1) * spacing)
        while answers and answers[0][0] <= clock.now:
            _, place, remaining = answers.pop(0)
            gov.release({"x-ratelimit-remaining": str(remaining)}, place)
        answers.append((clock.now + latency, gov.acquire(), max(0, 100 - server_used - i - 1)))
    for at, place, remaining in answers:
        clock.now = max(clock.now, at)
        gov.release({"x-ratelimit-remaining": str(remaining)}, place)


def test_after_a_slow_burst_the_next_window_opens_an_interval_after_the_first_answer() -> None:
    """A burst of 100 slow pages takes 5 s to send: the 101st request goes once the first request's
    slot has left our window (its answer + 10 s), not 10 s after the burst's last answer."""
    clock = FakeClock()
    gov = RateGovernor("L", max_requests=100, interval_ms=10_000, clock=clock, sleep=clock.sleep)
    _burst(gov, clock, 100, spacing=0.05, latency=0.5, server_used=0)
    assert clock.now > 1005.0  # the burst's last answer
    gov.acquire()
    assert 1000.0 + 0.5 + 10.0 <= clock.now < 1000.0 + 0.5 + 10.1


def test_after_a_burst_a_window_partly_used_by_someone_else_still_waits_for_the_server() -> None:
    clock = FakeClock()
    gov = RateGovernor("L", max_requests=100, interval_ms=10_000, clock=clock, sleep=clock.sleep)
    _burst(gov, clock, 60, spacing=0.05, latency=0.5, server_used=40)  # the server's window: full
    last_answer = clock.now
    gov.acquire()
    assert clock.now >= last_answer + 10.0 - 0.01
