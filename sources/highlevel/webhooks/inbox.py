"""The durable inbox: every verified delivery is committed here before HighLevel gets its 200.

HighLevel does not retry a delivery we acknowledged, so an acknowledged event must survive a crash
at any instant: SQLite in WAL mode with `synchronous=FULL` (every commit is fsynced), one short
write transaction per call, and `accept` returns only after COMMIT. Deduplication lives in the same
table (unique `webhook_id`), so a replayed or re-sent delivery is acknowledged but stored once.

Four tables:
- `events`: the deliveries (payload kept as JSON), `processed_at` set once the processor applied them.
- `deletions`: tombstones from `*Delete` webhooks or reconcile sweeps, until a sync applies them.
- `changes`: records a sync must read by id because no listing it makes would show them
  (appointments outside the rolling window), until a sync applied them. A record changed again
  before that sync finished stays pending: `changed_at` tells the two changes apart.
- `dirty`: per (location, resource) "something changed" marks the debouncer turns into sync runs.
  A mark is *claimed* while its run is in flight and deleted only when the run succeeds, so a crash
  mid-run leaves the mark for the next process (`release_claims`) instead of losing it.

One connection guarded by a lock serves all threads; other processes may read concurrently (WAL).
The file holds contact PII, so it is created private (0600); SQLite gives its WAL the same mode.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..killpoints import kill_point
from .events import WebhookEvent

DEFAULT_INBOX_PATH = ".dlt/highlevel_webhooks.sqlite"
DETECTED_BY = ("webhook", "sweep")
NO_TYPE = "<none>"  # counts() label for deliveries without a `type`

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    webhook_id TEXT NOT NULL UNIQUE,
    received_at TEXT NOT NULL,
    type TEXT,
    resource TEXT NOT NULL,
    action TEXT NOT NULL,
    location_id TEXT,
    record_id TEXT,
    payload TEXT NOT NULL,
    processed_at TEXT
);
CREATE INDEX IF NOT EXISTS events_pending ON events (id) WHERE processed_at IS NULL;
CREATE INDEX IF NOT EXISTS events_type ON events (type);
CREATE TABLE IF NOT EXISTS deletions (
    resource TEXT NOT NULL,
    id TEXT NOT NULL,
    location_id TEXT NOT NULL,
    deleted_at TEXT NOT NULL,
    detected_by TEXT NOT NULL CHECK (detected_by IN ('webhook', 'sweep')),
    applied_at TEXT,
    UNIQUE (resource, id, location_id)
);
CREATE INDEX IF NOT EXISTS deletions_pending ON deletions (location_id, resource) WHERE applied_at IS NULL;
CREATE TABLE IF NOT EXISTS changes (
    resource TEXT NOT NULL,
    id TEXT NOT NULL,
    location_id TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    applied_at TEXT,
    UNIQUE (resource, id, location_id)
);
CREATE INDEX IF NOT EXISTS changes_pending ON changes (location_id, resource) WHERE applied_at IS NULL;
CREATE TABLE IF NOT EXISTS dirty (
    location_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    claimed INTEGER NOT NULL DEFAULT 0,
    first_marked_at REAL NOT NULL,
    last_marked_at REAL NOT NULL,
    PRIMARY KEY (location_id, resource, claimed)
);
"""


@dataclass(frozen=True)
class StoredEvent:
    id: int
    webhook_id: str
    received_at: str
    type: str | None
    resource: str
    action: str
    location_id: str | None
    record_id: str | None
    payload: dict[str, Any] = field(repr=False)
    processed_at: str | None = None


@dataclass(frozen=True)
class Deletion:
    resource: str
    id: str
    location_id: str
    deleted_at: str
    detected_by: str
    applied_at: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.resource, self.id, self.location_id)


@dataclass(frozen=True)
class Change:
    resource: str
    id: str
    location_id: str
    changed_at: str
    applied_at: str | None = None


def utc_iso(moment: datetime | None = None) -> str:
    """One fixed-width UTC format, so stored times compare correctly as text."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dedupe_key(event: WebhookEvent, raw_body: bytes | None = None) -> str:
    """`webhookId` when HighLevel sent one; otherwise a hash of the body (published examples carry no id)."""
    if event.webhook_id:
        return event.webhook_id
    body = raw_body if raw_body is not None else _dump(event.payload, sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(body).hexdigest()


class Inbox:
    """SQLite-backed inbox; every method is one committed transaction and safe to call from any thread."""

    def __init__(self, path: str | Path = DEFAULT_INBOX_PATH, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    # -- events -----------------------------------------------------------------------------------

    def accept(self, event: WebhookEvent, raw_body: bytes | None = None, received_at: datetime | None = None) -> bool:
        """Store a verified event durably; False when its webhookId (or body hash) was seen before.

        Returns only after COMMIT, so the caller may acknowledge the delivery.
        """
        row = (dedupe_key(event, raw_body), utc_iso(received_at), event.type, event.resource, event.action,
               event.location_id, event.record_id, _dump(event.payload))
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO events (webhook_id, received_at, type, resource, action, location_id, record_id, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (webhook_id) DO NOTHING",
                row,
            )
            kill_point("inbox_write")  # test-only: the row is written, not committed
        return cursor.rowcount == 1

    def pending_events(self, limit: int = 500) -> list[StoredEvent]:
        """Unprocessed events, oldest first."""
        rows = self._read(
            "SELECT id, webhook_id, received_at, type, resource, action, location_id, record_id, payload, processed_at"
            " FROM events WHERE processed_at IS NULL ORDER BY id LIMIT ?",
            (limit,),
        )
        return [
            StoredEvent(id=row[0], webhook_id=row[1], received_at=row[2], type=row[3], resource=row[4], action=row[5],
                        location_id=row[6], record_id=row[7], payload=json.loads(row[8]), processed_at=row[9])
            for row in rows
        ]

    def mark_processed(self, ids: Collection[int], at: datetime | None = None) -> int:
        if not ids:
            return 0
        stamp = utc_iso(at)
        with self._write() as conn:
            cursor = conn.executemany(
                "UPDATE events SET processed_at = ? WHERE id = ? AND processed_at IS NULL", [(stamp, i) for i in ids]
            )
        return cursor.rowcount

    def prune(self, before: datetime) -> int:
        """Delete what is done with and older than `before`: processed events received before it,
        deletions and changes a sync applied before it. Pending ones always stay. Keep `before`
        older than the timestamp tolerance: a pruned webhookId can no longer be recognised as a
        replay. Returns the number of rows deleted."""
        stamp = utc_iso(before)
        with self._write() as conn:
            deleted = conn.execute(
                "DELETE FROM events WHERE processed_at IS NOT NULL AND received_at < ?", (stamp,)).rowcount
            for table in ("deletions", "changes"):
                deleted += conn.execute(
                    f"DELETE FROM {table} WHERE applied_at IS NOT NULL AND applied_at < ?", (stamp,)).rowcount
        return deleted

    # -- deletions --------------------------------------------------------------------------------

    def record_deletion(
        self, resource: str, id: str, location_id: str, deleted_at: datetime | str, detected_by: str
    ) -> bool:
        """Add a tombstone; False when this record's deletion is already known (first detection wins)."""
        if detected_by not in DETECTED_BY:
            raise ValueError(f"detected_by must be one of {DETECTED_BY}, not {detected_by!r}")
        stamp = deleted_at if isinstance(deleted_at, str) else utc_iso(deleted_at)
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO deletions (resource, id, location_id, deleted_at, detected_by) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (resource, id, location_id) DO NOTHING",
                (resource, id, location_id, stamp, detected_by),
            )
        return cursor.rowcount == 1

    def pending_deletions(self, location_id: str | None = None, resource: str | None = None) -> list[Deletion]:
        rows = self._read(
            "SELECT resource, id, location_id, deleted_at, detected_by, applied_at FROM deletions"
            " WHERE applied_at IS NULL AND (? IS NULL OR location_id = ?) AND (? IS NULL OR resource = ?)"
            " ORDER BY deleted_at, resource, id",
            (location_id, location_id, resource, resource),
        )
        return [Deletion(*row) for row in rows]

    def mark_deletions_applied(self, keys: Iterable[tuple[str, str, str]], at: datetime | None = None) -> int:
        """Mark (resource, id, location_id) tombstones as applied to the warehouse."""
        return self._mark_applied("deletions", "", [tuple(key) for key in keys], at)

    # -- changes to read by id ---------------------------------------------------------------------

    def record_change(self, resource: str, id: str, location_id: str, changed_at: datetime | None = None) -> None:
        """Note that a record changed; pending again even if an earlier change of it was applied."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO changes (resource, id, location_id, changed_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (resource, id, location_id) DO UPDATE SET changed_at = excluded.changed_at,"
                " applied_at = NULL",
                (resource, id, location_id, utc_iso(changed_at)),
            )

    def pending_changes(self, location_id: str | None = None, resource: str | None = None) -> list[Change]:
        rows = self._read(
            "SELECT resource, id, location_id, changed_at, applied_at FROM changes"
            " WHERE applied_at IS NULL AND (? IS NULL OR location_id = ?) AND (? IS NULL OR resource = ?)"
            " ORDER BY changed_at, resource, id",
            (location_id, location_id, resource, resource),
        )
        return [Change(*row) for row in rows]

    def mark_changes_applied(self, changes: Iterable[Change], at: datetime | None = None) -> int:
        """Mark these changes applied; one noted again since (a newer `changed_at`) stays pending."""
        return self._mark_applied("changes", " AND changed_at = ?",
                                  [(c.resource, c.id, c.location_id, c.changed_at) for c in changes], at)

    def _mark_applied(self, table: str, also: str, keys: list[tuple[Any, ...]], at: datetime | None) -> int:
        """Set `applied_at` on the still pending rows of `table` with these (resource, id, location_id,
        ...) keys; `also` matches the key's further columns."""
        if not keys:
            return 0
        stamp = utc_iso(at)
        with self._write() as conn:
            cursor = conn.executemany(
                f"UPDATE {table} SET applied_at = ? WHERE resource = ? AND id = ? AND location_id = ?{also}"
                " AND applied_at IS NULL",
                [(stamp, *key) for key in keys],
            )
        return cursor.rowcount

    # -- dirty marks (debounce) -------------------------------------------------------------------

    def mark_dirty(self, location_id: str, resource: str, at: float) -> None:
        """Note that `resource` of `location_id` changed at `at` (the debouncer's clock)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO dirty (location_id, resource, claimed, first_marked_at, last_marked_at)"
                " VALUES (?, ?, 0, ?, ?) ON CONFLICT (location_id, resource, claimed) DO UPDATE SET"
                " first_marked_at = MIN(first_marked_at, excluded.first_marked_at),"
                " last_marked_at = MAX(last_marked_at, excluded.last_marked_at)",
                (location_id, resource, at, at),
            )

    def take_dirty(
        self, quiet_s: float, max_delay_s: float, now: float, limit: int | None = None,
        exclude: Collection[str] = (),
    ) -> dict[str, set[str]]:
        """Claim the locations that are due: quiet for `quiet_s`, or first marked `max_delay_s` ago.

        A location whose previous claim is still in flight is never due (one run per location at a
        time); marks made meanwhile wait for `finish_dirty`. Oldest first, at most `limit`;
        `exclude`d locations (backing off after failures) are never due.
        """
        with self._write() as conn:
            busy = {row[0] for row in conn.execute("SELECT DISTINCT location_id FROM dirty WHERE claimed = 1")}
            groups = conn.execute(
                "SELECT location_id, MIN(first_marked_at), MAX(last_marked_at) FROM dirty WHERE claimed = 0"
                " GROUP BY location_id ORDER BY MIN(first_marked_at)"
            ).fetchall()
            due = [
                loc for loc, first, last in groups
                if loc not in busy and loc not in exclude and (last <= now - quiet_s or first <= now - max_delay_s)
            ][:limit]
            taken: dict[str, set[str]] = {}
            for loc in due:
                conn.execute("UPDATE dirty SET claimed = 1 WHERE location_id = ? AND claimed = 0", (loc,))
                rows = conn.execute("SELECT resource FROM dirty WHERE location_id = ? AND claimed = 1", (loc,))
                taken[loc] = {row[0] for row in rows}
        return taken

    def finish_dirty(self, location_id: str, ok: bool, now: float) -> None:
        """End a claim: drop the marks after a successful run, or put them back (due again after the quiet period)."""
        with self._write() as conn:
            if not ok:
                self._unclaim(conn, location_id, now)
            conn.execute("DELETE FROM dirty WHERE location_id = ? AND claimed = 1", (location_id,))

    def release_claims(self, now: float) -> int:
        """Put back every claim (runs a crashed process left in flight); call once before debouncing starts.

        Also pulls marks stamped in the future back to `now`: the clock was reset (monotonic time
        restarts at boot), and such marks would otherwise wait until the new clock caught up.
        """
        with self._write() as conn:
            cursor = self._unclaim(conn, None, now)
            conn.execute("DELETE FROM dirty WHERE claimed = 1")
            conn.execute("UPDATE dirty SET first_marked_at = MIN(first_marked_at, ?),"
                         " last_marked_at = MIN(last_marked_at, ?)", (now, now))
        return cursor.rowcount

    @staticmethod
    def _unclaim(conn: sqlite3.Connection, location_id: str | None, now: float) -> sqlite3.Cursor:
        return conn.execute(
            "INSERT INTO dirty (location_id, resource, claimed, first_marked_at, last_marked_at)"
            " SELECT location_id, resource, 0, ?, ? FROM dirty WHERE claimed = 1 AND (? IS NULL OR location_id = ?)"
            " ON CONFLICT (location_id, resource, claimed) DO UPDATE SET"
            " last_marked_at = MAX(last_marked_at, excluded.last_marked_at)",
            (now, now, location_id, location_id),
        )

    # -- status -----------------------------------------------------------------------------------

    def counts(self) -> dict[str, Any]:
        """Numbers for status and /healthz: events by type (untyped ones under "<none>"), unknown, pending,
        and the deletions and changes no sync has applied yet."""
        by_type = self._read("SELECT COALESCE(type, ?), COUNT(*) FROM events GROUP BY type", (NO_TYPE,))
        (total, unknown, pending), = self._read(
            "SELECT COUNT(*), COALESCE(SUM(action = 'other'), 0), COALESCE(SUM(processed_at IS NULL), 0) FROM events"
        )
        (deletions_pending,), = self._read("SELECT COUNT(*) FROM deletions WHERE applied_at IS NULL")
        (changes_pending,), = self._read("SELECT COUNT(*) FROM changes WHERE applied_at IS NULL")
        (dirty_locations,), = self._read("SELECT COUNT(DISTINCT location_id) FROM dirty")
        return {
            "events": total,
            "events_by_type": {name: n for name, n in by_type},
            "events_unknown": unknown,
            "events_pending": pending,
            "deletions_pending": deletions_pending,
            "changes_pending": changes_pending,
            "dirty_locations": dirty_locations,
        }


def _dump(payload: Any, sort_keys: bool = False) -> str:
    # ASCII escapes keep lone surrogates (legal in JSON text, illegal in UTF-8) storable.
    return json.dumps(payload, separators=(",", ":"), sort_keys=sort_keys, default=str)
