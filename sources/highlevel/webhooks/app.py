"""The receiver's HTTP face: `POST /webhooks/highlevel` and `GET /healthz` (Starlette).

Checks run cheapest-and-most-hostile first, and nothing is written until all pass:

1. size — from Content-Length, then again while reading the stream (chunked bodies): 413;
2. signature over the raw bytes (see verify.py): 401 when unsigned or forged;
3. JSON: 400 unless the body is one JSON object (NaN/Infinity refused);
4. `timestamp`, when present: 401 outside ±`timestamp_tolerance_s` (a stale delivery is treated as
   a replay; published examples carry no timestamp, so its absence is allowed);
5. `appId`, when configured and present in the body: 403 for another app's delivery;
6. the inbox commit; only then 200 `{"status": "accepted"}` (or `"duplicate"` for a known webhookId).

Processing (tombstones, dirty marks, syncs) happens on other threads, so acknowledging costs one
fsynced insert. Client garbage never gets a 5xx. If the inbox cannot be written the answer is 429,
not 503: HighLevel retries only 429s (about every 10 min for ~70 min), so a 429 turns a full disk or
a locked database into a late delivery instead of a lost one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .config import WebhookConfig
from .debounce import Debouncer
from .events import parse_event, parse_timestamp
from .inbox import Inbox, utc_iso
from .processor import Processor
from .verify import SignatureError, SignatureVerifier

logger = logging.getLogger("highlevel.webhooks.app")

WEBHOOK_PATH = "/webhooks/highlevel"
HEALTH_PATH = "/healthz"
RETRY_AFTER_S = 600  # HighLevel's own retry spacing for 429s


class Rejected(Exception):
    """A delivery refused with a 4xx; `reason` is safe to show the sender and to log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class ReceiverStats:
    """In-memory counters for /healthz; reasons only, never headers, signatures or payloads."""

    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    last_rejection: dict[str, Any] | None = None
    last_error: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, stored: bool) -> None:
        with self._lock:
            if stored:
                self.accepted += 1
            else:
                self.duplicates += 1

    def reject(self, status: int, reason: str) -> None:
        with self._lock:
            self.rejected[str(status)] = self.rejected.get(str(status), 0) + 1
            self.last_rejection = {"status": status, "reason": reason, "at": utc_iso()}

    def error(self, message: str) -> None:
        with self._lock:
            self.last_error = {"error": message, "at": utc_iso()}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": dict(self.rejected),
                    "last_rejection": self.last_rejection, "last_error": self.last_error}


def create_app(
    config: WebhookConfig,
    inbox: Inbox,
    processor: Processor | None = None,
    *,
    debouncer: Debouncer | None = None,
    verifier: SignatureVerifier | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The receiver app. `processor` is woken after each accepted delivery; `debouncer` only feeds /healthz."""
    verifier = verifier or config.verifier()
    stats = ReceiverStats()

    def check_and_store(raw: bytes, headers: Mapping[str, str]) -> bool:
        """Steps 2-6 (blocking: crypto and an fsync), run on a worker thread."""
        try:
            verifier.verify(raw, headers)
        except SignatureError as exc:
            raise Rejected(401, str(exc)) from None
        payload = _parse_object(raw)
        _check_timestamp(payload, config.timestamp_tolerance_s, clock())
        _check_app_id(payload, config.app_id)
        event = parse_event(payload)
        try:
            return inbox.accept(event, raw)
        except Exception as exc:
            stats.error(f"inbox write failed: {type(exc).__name__}")
            logger.exception("inbox write failed for event %s; answering 429 so HighLevel retries", event.webhook_id)
            raise Rejected(429, "inbox temporarily unavailable; retry later") from None

    async def receive(request: Request) -> JSONResponse:
        try:
            raw = await _read_body(request, config.max_body_bytes)
            stored = await run_in_threadpool(check_and_store, raw, request.headers)
        except Rejected as rejected:
            if rejected.status != 429:
                stats.reject(rejected.status, rejected.reason)
                logger.info("webhook rejected with %d: %s", rejected.status, rejected.reason)
            return _refusal(rejected)
        except Exception as exc:  # a bug, not the client's fault: ask for a retry rather than lose the event
            stats.error(f"unexpected {type(exc).__name__}")
            logger.exception("unexpected error handling a webhook; answering 429")
            return _refusal(Rejected(429, "temporarily unavailable; retry later"))
        stats.count(stored)
        if processor is not None:
            processor.wake()
        return JSONResponse({"status": "accepted" if stored else "duplicate"})

    async def healthz(request: Request) -> JSONResponse:
        body: dict[str, Any] = {"receiver": stats.snapshot()}
        if processor is not None:
            body["processor_error"] = processor.last_error
        if debouncer is not None:
            body["debouncer"] = {"runs": debouncer.runs, "failures": debouncer.failures,
                                 "running": sorted(debouncer.running), "last_error": debouncer.last_error}
        try:
            body["inbox"] = await run_in_threadpool(inbox.counts)
        except Exception as exc:
            logger.exception("inbox unreadable for /healthz")
            return JSONResponse({"status": "unavailable", "error": f"inbox unreadable: {type(exc).__name__}",
                                 **body}, 503)
        return JSONResponse({"status": "ok", **body})

    return Starlette(routes=[
        Route(WEBHOOK_PATH, receive, methods=["POST"]),
        Route(HEALTH_PATH, healthz, methods=["GET"]),
    ])


def _refusal(rejected: Rejected) -> JSONResponse:
    if rejected.status == 429:
        return JSONResponse({"status": "retry", "reason": rejected.reason}, 429,
                            headers={"Retry-After": str(RETRY_AFTER_S)})
    return JSONResponse({"status": "rejected", "reason": rejected.reason}, rejected.status)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise Rejected(400, "invalid Content-Length") from None
        if size > limit:
            raise Rejected(413, f"body larger than {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise Rejected(413, f"body larger than {limit} bytes")
    except ClientDisconnect:
        raise Rejected(400, "client disconnected before the body was complete") from None
    return bytes(body)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_object(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise Rejected(400, "body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise Rejected(400, "body must be a JSON object")
    return payload


def _check_timestamp(payload: Mapping[str, Any], tolerance_s: float, now: float) -> None:
    try:
        stamp = parse_timestamp(payload.get("timestamp"))
    except ValueError:
        raise Rejected(400, "timestamp is not a time") from None
    if stamp is not None and abs(now - stamp.timestamp()) > tolerance_s:
        raise Rejected(401, f"timestamp outside the accepted window of ±{tolerance_s:.0f} s")


def _check_app_id(payload: Mapping[str, Any], expected: str | None) -> None:
    if expected is None:
        return
    data = payload.get("data")
    app_id = payload.get("appId", data.get("appId") if isinstance(data, dict) else None)
    if app_id is not None and app_id != expected:
        raise Rejected(403, "delivery is for another app")
