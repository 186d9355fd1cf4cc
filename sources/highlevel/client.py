"""HighLevelClient: the only module that talks HTTP.

One `httpx.Client` per run; per request it picks the location's auth and rate governor, sends the
right `Version` header, retries transient failures with tenacity (429, 5xx, transport errors, a
non-JSON body) and maps everything else to the exceptions in `errors.py`.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import orjson
from tenacity import RetryCallState

from . import retries, settings
from .errors import (
    ApiError,
    AuthError,
    HighLevelError,
    LocationAccessError,
    LocationInactive,
    QuotaExhausted,
    RateLimited,
    RetryableError,
    ScopeError,
)
from .ratelimit import RateGovernor, request_priority

logger = logging.getLogger(__name__)

__version__ = "0.1.0"
USER_AGENT = f"highlevel-dlt/{__version__}"
# connection pools the requests in flight are spread over (one per 8 requests in flight, at most this)
HTTP_POOL_SHARDS = 8

AuthProvider = Callable[[str], httpx.Auth]
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class LocationStats:
    """Request accounting for one location (or the company), reported in the run summary."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0  # 429 answers
    server_errors: int = 0
    daily_remaining: int | None = None
    by_endpoint: Counter[str] = field(default_factory=Counter)


class HighLevelClient:
    """Requests against HighLevel for any number of locations, each with its own auth and budget."""

    def __init__(
        self,
        base_url: str,
        auth_for: AuthProvider,
        *,
        timeout_s: float = settings.DEFAULT_TIMEOUT_S,
        max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS,
        backoff_base_s: float = settings.DEFAULT_BACKOFF_BASE_S,
        backoff_max_s: float = settings.DEFAULT_BACKOFF_MAX_S,
        transport: httpx.BaseTransport | None = None,
        max_in_flight: int = settings.DEFAULT_MAX_REQUESTS_IN_FLIGHT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth_for = auth_for
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        # Several connection pools, each thread keeping to one: httpcore's pool re-examines every
        # connection for every request under one lock (quadratic in connections), and with 64
        # connections a 1,000-location no-change run's readers spent 30 % of their time queued on
        # that lock (py-spy, sandbox at loopback speed). The cap on requests in flight stays global.
        shards = max(1, min(HTTP_POOL_SHARDS, max_in_flight // 8))
        per_shard = -(-max_in_flight // shards)
        self._shards = [httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 15.0)),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            transport=transport,
            limits=httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=per_shard),
        ) for _ in range(shards)]
        self._thread_shard = threading.local()
        self._next_shard = itertools.count()
        # every location's requests together: a location's own budget is its governor's business
        self._in_flight = threading.BoundedSemaphore(max_in_flight)
        self.max_in_flight = max_in_flight
        self._pool: ThreadPoolExecutor | None = None
        self._governors: dict[str, RateGovernor] = {}
        self.stats: dict[str, LocationStats] = {}
        self._lock = threading.Lock()

    # -- public API ---------------------------------------------------------------------------

    def get(
        self, path: str, *, version: str, location_id: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self.request("GET", path, version=version, location_id=location_id, params=params)

    def post(
        self, path: str, *, version: str, location_id: str, json: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self.request("POST", path, version=version, location_id=location_id, json=json)

    def request(
        self,
        method: str,
        path: str,
        *,
        version: str,
        location_id: str,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One logical request: paced, retried, and decoded; raises HighLevelError subclasses."""
        retrying = retries.retrying(self._max_attempts, self._backoff_base_s, self._backoff_max_s,
                                    before_sleep=self._before_retry(location_id, path))
        try:
            for attempt in retrying:
                with attempt:
                    return self._send(method, path, version, location_id, params, json)
        except RetryableError as exc:
            raise self._give_up(exc, method, path, location_id) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def governor(self, location_id: str) -> RateGovernor:
        with self._lock:
            gov = self._governors.get(location_id)
            if gov is None:
                gov = self._governors[location_id] = RateGovernor(location_id)
                self.stats[location_id] = LocationStats()
            return gov

    def map_pages(self, fetch: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """`fetch(item)` for every item with many requests in flight, results in the items' order.

        For pages whose requests are all known up front (offset pages once the count is known, one
        request per calendar or product): HighLevel answers in hundreds of milliseconds, so one at a
        time leaves the budget idle. The governor still paces each location. Call it from a
        resource's read, never from inside `fetch` (the pool would wait on itself).
        """
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="highlevel-page")
            pool = self._pool
        futures: list[Future[R]] = [pool.submit(fetch, item) for item in items]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for http in self._shards:
            http.close()

    def __enter__(self) -> HighLevelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        """This thread's connection pool (threads are spread over the pools round robin)."""
        http: httpx.Client | None = getattr(self._thread_shard, "http", None)
        if http is None:
            http = self._thread_shard.http = self._shards[next(self._next_shard) % len(self._shards)]
        return http

    def _send(
        self,
        method: str,
        path: str,
        version: str,
        location_id: str,
        params: dict[str, Any] | None,
        json: dict[str, Any] | None,
    ) -> dict[str, Any]:
        gov = self.governor(location_id)
        stats = self.stats[location_id]
        sent = gov.acquire(request_priority())
        headers: httpx.Headers | None = None
        self._in_flight.acquire()
        try:
            content = orjson.dumps(json) if json is not None else None
            req_headers = {"Version": version}
            if content is not None:
                req_headers["Content-Type"] = "application/json"
            response = self._http().request(
                method, path, params=params, content=content, headers=req_headers, auth=self._auth_for(location_id)
            )
            headers = response.headers
        except httpx.TransportError as exc:
            raise RetryableError(f"cannot reach {self.base_url} ({type(exc).__name__}: {exc})") from exc
        finally:
            self._in_flight.release()
            gov.release(headers, sent)
            with self._lock:
                stats.requests += 1
                stats.by_endpoint[f"{method} {_template(path, location_id)}"] += 1
                stats.daily_remaining = gov.daily_remaining
        return self._decode(response, gov, stats, location_id)

    def _decode(
        self, response: httpx.Response, gov: RateGovernor, stats: LocationStats, location_id: str
    ) -> dict[str, Any]:
        status = response.status_code
        if status == 429:
            with self._lock:
                stats.throttled += 1
            interval_s = gov.interval_s
            remaining = response.headers.get("x-ratelimit-remaining")
            daily = response.headers.get("x-ratelimit-daily-remaining")
            if daily is not None and daily.strip() == "0":
                raise QuotaExhausted(
                    f"location {location_id}: daily API quota used up; the next run resumes from the saved cursors"
                )
            # A full window: wait it out. Otherwise (shared budget, a blip) a short backoff will do.
            wait = interval_s if remaining is None or remaining.strip() == "0" else None
            if wait:
                gov.back_off(wait)
            raise RetryableError("HTTP 429 Too Many Requests", status=429, wait_s=wait)
        if status >= 500:
            with self._lock:
                stats.server_errors += 1
            raise RetryableError(f"HTTP {status} from HighLevel", status=status)
        try:
            body = orjson.loads(response.content) if response.content else {}
        except orjson.JSONDecodeError:
            if status < 400:
                snippet = response.content[:60].decode("utf-8", "replace").replace("\n", " ")
                raise RetryableError(f"HTTP {status} with a non-JSON body ({snippet!r}...)", status=status) from None
            body = {}
        if not isinstance(body, dict):
            body = {"value": body}
        if status >= 400:
            raise _map_error(status, body, response.request.method, response.request.url.path, location_id)
        return body

    def _before_retry(self, location_id: str, path: str) -> Callable[[RetryCallState], None]:
        def log(state: RetryCallState) -> None:
            with self._lock:
                self.stats[location_id].retries += 1
            exc = state.outcome.exception() if state.outcome else None
            logger.warning(
                "location %s: %s %s failed (%s), retry %d/%d",
                location_id, "request", path, exc, state.attempt_number, self._max_attempts - 1,
            )

        return log

    def _give_up(self, exc: RetryableError, method: str, path: str, location_id: str) -> HighLevelError:
        tries = f"after {self._max_attempts} attempts"
        if exc.status == 429:
            return RateLimited(
                f"location {location_id}: {method} {path} still rate limited (429) {tries}; "
                "another integration may share this location's budget, retry later",
                status=429,
            )
        if exc.status is None:
            return ApiError(f"{exc} {tries}; check base_url and your network")
        return ApiError(
            f"location {location_id}: {method} {path} failed {tries}: {exc}; HighLevel may be degraded, retry later",
            status=exc.status,
        )


def _template(path: str, location_id: str) -> str:
    """Group request counts by endpoint, not by id."""
    path = path.replace(location_id, "{locationId}") if location_id else path
    return _BY_ID.sub("/{id}", path)


# path segments that name a record (an appointment, a contact's notes, a product's prices, an
# invoice...): HighLevel's ids are 20+ letters and digits; counted together
_BY_ID = re.compile(r"/(?!search\b)[A-Za-z0-9]{20,}(?=/|$)")


def _map_error(status: int, body: dict[str, Any], method: str, path: str, location_id: str) -> HighLevelError:
    message = body.get("message")
    if isinstance(message, list):
        message = "; ".join(str(m) for m in message)
    text = str(message or body.get("error") or "no message")
    trace = body.get("traceId")
    where = f"location {location_id}: {method} {path}"
    suffix = f" (traceId {trace})" if trace else ""
    lowered = text.lower()
    if status == 401 and "scope" in lowered:
        return ScopeError(
            f"{where}: token lacks a required scope ({text}); re-authorise the app with the read scopes "
            f"listed in README.md{suffix}"
        )
    if status == 401:
        return AuthError(
            f"{where}: HighLevel rejected the token (401: {text}); set a valid "
            f"SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN or run `highlevel-sync auth login`{suffix}"
        )
    if status == 403:
        return LocationAccessError(
            f"{where}: the token may not read this location (403: {text}); use a token issued for "
            f"location {location_id}{suffix}"
        )
    if status == 400 and "not active" in lowered:
        return LocationInactive(f"{where}: sub-account is not active ({text}); it is skipped{suffix}")
    return ApiError(f"{where}: HTTP {status}: {text}{suffix}", status=status, trace_id=trace)
