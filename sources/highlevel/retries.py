"""The one retry policy for every request to HighLevel: data reads and token calls alike.

A transient failure (429, 5xx, a transport error or timeout, a non-JSON gateway page) is raised as
`RetryableError` wherever it happens; this module decides how often to try again and how long to
wait in between: up to `max_attempts` in all, exponential backoff with jitter capped at
`backoff_max_s`, or exactly the wait the failure asks for (a full rate window). The data client
and the OAuth calls both build their `Retrying` here, so a token endpoint's bad minute is ridden
out exactly like a contacts page's.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx
import orjson
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from . import settings
from .errors import RetryableError


def backoff_s(attempt_number: int, base_s: float, max_s: float) -> float:
    """The wait after the `attempt_number`-th failure: base * 2^(n-1), capped, with jitter (0.5 to 1 times)
    so workers that failed together do not retry together."""
    exp = base_s * float(2 ** (attempt_number - 1))
    return min(max_s, exp) * (0.5 + random.random() / 2)


def wait_for(base_s: float, max_s: float) -> Callable[[RetryCallState], float]:
    """A tenacity `wait`: the failure's own `wait_s` when it names one, else `backoff_s`."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableError) and exc.wait_s:
            return float(exc.wait_s)
        return backoff_s(state.attempt_number, base_s, max_s)

    return wait


def retrying(max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS, base_s: float = settings.DEFAULT_BACKOFF_BASE_S,
             max_s: float = settings.DEFAULT_BACKOFF_MAX_S,
             before_sleep: Callable[[RetryCallState], None] | None = None) -> Retrying:
    """Retries `RetryableError` only; after the last attempt it is re-raised for the caller to turn
    into a message that says what was unavailable."""
    return Retrying(stop=stop_after_attempt(max(1, max_attempts)), wait=wait_for(base_s, max_s),
                    retry=retry_if_exception_type(RetryableError), before_sleep=before_sleep, reraise=True)


def transient_answer(response: httpx.Response) -> RetryableError | None:
    """The transient failure this answer is (None: a usable answer or a real refusal). A 429 with
    the window used up (`X-RateLimit-Remaining: 0`) waits the window out; a body that is not JSON
    (a proxy's HTML page), whatever its status, is a gateway's answer, not HighLevel's."""
    status = response.status_code
    if status == 429:
        remaining = (response.headers.get("x-ratelimit-remaining") or "").strip()
        interval_ms = _number(response.headers.get("x-ratelimit-interval-milliseconds"))
        wait = (interval_ms or settings.DEFAULT_BURST_INTERVAL_MS) / 1000.0 if remaining == "0" else None
        return RetryableError("HTTP 429 Too Many Requests", status=429, wait_s=wait)
    if status >= 500:
        return RetryableError(f"HTTP {status} from HighLevel", status=status)
    if response.content:
        try:
            orjson.loads(response.content)
        except orjson.JSONDecodeError:
            snippet = response.content[:60].decode("utf-8", "replace").replace("\n", " ")
            return RetryableError(f"HTTP {status} with a non-JSON body ({snippet!r}...)", status=status)
    return None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
