"""Every way a sync can fail, as a short exception tree the CLI turns into one line each.

    HighLevelError                 base; str() is a one-line message saying what to do
    ├── ConfigError                missing / malformed configuration (nothing was requested)
    ├── AuthError                  token missing, invalid, revoked, or refresh refused
    │   ├── ScopeError             token valid but lacks a scope: re-authorise with it, no refresh loop
    │   └── LocationAccessError    token not allowed for this location
    ├── LocationInactive           suspended / inactive sub-account: skip it, others continue
    ├── QuotaExhausted             the daily request quota is (nearly) used up: stop cleanly
    └── ApiError                   the API answered something unusable (4xx, 5xx storm, garbage)
        └── RateLimited            429s outlasted the retries

Messages never contain a token; they may contain a location id, a path and HighLevel's traceId.
"""

from __future__ import annotations


class HighLevelError(Exception):
    """Base class; the message is meant to be shown to a user as is."""


class ConfigError(HighLevelError):
    pass


class AuthError(HighLevelError):
    pass


class ScopeError(AuthError):
    pass


class LocationAccessError(AuthError):
    pass


class LocationInactive(HighLevelError):
    pass


class QuotaExhausted(HighLevelError):
    pass


class ApiError(HighLevelError):
    def __init__(self, message: str, status: int | None = None, trace_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.trace_id = trace_id


class RateLimited(ApiError):
    pass


class RetryableError(Exception):
    """Internal: a transient failure the client retries (429, 5xx, transport, garbage body).

    Never escapes the client: after the last attempt it is turned into an ApiError.
    """

    def __init__(self, message: str, status: int | None = None, wait_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.wait_s = wait_s
