"""Where rotating OAuth tokens live between runs: outside dlt state, atomic, locked, private.

HighLevel refresh tokens are single-use: every refresh returns a new pair and the old refresh
token stops working. Losing the new pair (a crash between refresh and save, two workers racing,
a torn write) strands the connection until a human re-installs the app. So:
- every save is atomic (temp file in the same directory, fsync, rename, fsync the directory),
  so a reader sees the old file or the new one, never half of each;
- a cross-process lock (filelock) serialises refreshes; callers re-read under the lock;
- the file is created 0600 and refused when others can read it;
- a corrupt or unreadable file is an error that leaves the file untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock, Timeout

from .errors import AuthError, ConfigError

STORE_VERSION = 1
DEFAULT_TOKEN_STORE = ".dlt/highlevel_tokens.json"


@dataclass(frozen=True)
class TokenSet:
    """One OAuth grant. `repr` shows who and until when, never a token."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float = 0.0  # epoch seconds
    user_type: str = "Location"  # "Location" | "Company"
    scopes: tuple[str, ...] = ()
    company_id: str | None = None
    location_id: str | None = None
    user_id: str | None = None
    minted: bool = False  # a location token minted from the company token (re-mint, don't refresh)
    lifetime_s: float = 0.0  # expires_in when issued; bounds how early a refresh may happen

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) + seconds >= self.expires_at

    def needs_renewal(self, margin_s: float, now: float | None = None) -> bool:
        """Renew `margin_s` before expiry, but never earlier than the last quarter of the lifetime
        (a 20 s token renewed 120 s ahead would be renewed before every request)."""
        margin = min(margin_s, self.lifetime_s / 4) if self.lifetime_s > 0 else margin_s
        return self.expires_within(margin, now)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["scopes"] = list(self.scopes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenSet:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["scopes"] = tuple(known.get("scopes") or ())
        if not isinstance(known.get("access_token"), str):
            raise ValueError("token entry without access_token")
        return cls(**known)


@dataclass(frozen=True)
class StoreData:
    company: TokenSet | None = None
    locations: dict[str, TokenSet] = field(default_factory=dict)

    def with_location(self, location_id: str, tokens: TokenSet | None) -> StoreData:
        locations = dict(self.locations)
        if tokens is None:
            locations.pop(location_id, None)
        else:
            locations[location_id] = tokens
        return replace(self, locations=locations)


class TokenStore(Protocol):
    def load(self) -> StoreData: ...

    def save(self, data: StoreData) -> None: ...

    def lock(self) -> contextlib.AbstractContextManager[None]: ...


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write JSON so readers see the old file or the new one, never a torn one; mode 0600."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class FileTokenStore:
    """A JSON file next to the project (default `.dlt/highlevel_tokens.json`)."""

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_TOKEN_STORE, lock_timeout_s: float = 120.0) -> None:
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock", timeout=lock_timeout_s)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._lock:
                yield
        except Timeout:
            raise AuthError(
                f"token store {self.path} is locked by another process for too long; is a run stuck?"
            ) from None

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> StoreData:
        if not self.path.exists():
            return StoreData()
        self._check_permissions()
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or raw.get("version") != STORE_VERSION:
                raise ValueError(f"unsupported store version {raw.get('version') if isinstance(raw, dict) else '?'}")
            company = TokenSet.from_json(raw["company"]) if raw.get("company") else None
            locations = {str(k): TokenSet.from_json(v) for k, v in (raw.get("locations") or {}).items()}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(
                f"token store {self.path} is unreadable or corrupt ({type(exc).__name__}); it was left untouched: "
                "restore it from a backup or run `highlevel-sync auth login` to re-authorise"
            ) from None
        return StoreData(company=company, locations=locations)

    def save(self, data: StoreData) -> None:
        payload = {
            "version": STORE_VERSION,
            "company": data.company.to_json() if data.company else None,
            "locations": {k: v.to_json() for k, v in sorted(data.locations.items())},
        }
        atomic_write_json(self.path, payload)

    def _check_permissions(self) -> None:
        try:
            mode = self.path.stat().st_mode
        except OSError as exc:
            raise ConfigError(f"token store {self.path} cannot be read: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"token store {self.path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
                f"run `chmod 600 {self.path}` — it holds live credentials"
            )
