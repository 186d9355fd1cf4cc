"""A token store in PostgreSQL, so Airflow workers on different machines share one set of grants.

The file store's guarantees, kept across machines:
- one row per grant (`company`, `location:<id>`) in a table of its own (default
  `highlevel_oauth_tokens`), plus one `lock` row;
- `lock()` serialises refreshes: it opens a transaction on a connection of its own and takes the
  lock row with `SELECT … FOR UPDATE`, held until the block ends. PostgreSQL drops it when the
  holder's connection dies (a SIGKILLed worker), so a crash never leaves the store locked;
- `save()` is one transaction that takes the grant rows `FOR UPDATE`, writes what changed and
  commits before it returns: the new pair is durable before anyone uses the new access token,
  even while the refresh lock is still held (an agency refresh nested in a location mint);
- `load()` reads committed rows, so a load under the lock sees every earlier refresh;
- a row that does not parse is an error and left untouched; the URL's password never appears in a
  message (`redacted_url`).

psycopg2 is imported lazily: single-machine users of the file store need no PostgreSQL driver.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import AuthError, ConfigError
from .tokenstore import STORE_VERSION, StoreData, TokenSet

logger = logging.getLogger("highlevel.tokenstore")

DEFAULT_TABLE = "highlevel_oauth_tokens"
COMPANY_ROW = "company"
LOCATION_PREFIX = "location:"
LOCK_ROW = "lock"
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


def is_postgres_url(spec: str | os.PathLike[str]) -> bool:
    return str(spec).startswith(("postgresql://", "postgres://"))


def redacted_url(url: str) -> str:
    """The URL with its password (and any `password=` query value) replaced by `***`."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class PostgresTokenStore:
    """`token_store = "postgresql://user:pw@host:5432/db?table=schema.name"` (table optional)."""

    def __init__(self, url: str, lock_timeout_s: float = 120.0, connect_timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        table = next((v for k, v in query if k == "table"), DEFAULT_TABLE)
        if not _TABLE_NAME.match(table):
            raise ConfigError(f"token_store: table {table!r} is not a plain [schema.]name")
        self.table = table
        self._dsn = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "table"])))
        self.url = redacted_url(url)
        self.lock_timeout_s = lock_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._local = threading.local()
        self._ready = False

    def __repr__(self) -> str:
        return f"PostgresTokenStore({self.url}, table={self.table})"

    # -- connections ------------------------------------------------------------------------------

    def _connect(self) -> Any:
        try:
            import psycopg2
        except ImportError:
            raise ConfigError("a PostgreSQL token_store needs psycopg2: pip install psycopg2-binary") from None
        try:
            conn = psycopg2.connect(self._dsn, connect_timeout=int(self.connect_timeout_s),
                                    application_name="highlevel-token-store")
        except psycopg2.Error as exc:
            raise ConfigError(f"cannot connect to the token store {self.url}: {_first_line(exc)}") from None
        with conn.cursor() as cur:  # a refresh may hold the lock across an HTTP call: never time it out
            cur.execute("SET idle_in_transaction_session_timeout = 0")
        conn.commit()
        return conn

    def _conn(self) -> Any:
        """This thread's connection for reads and writes (a new one after a fork)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or getattr(self._local, "pid", None) != os.getpid():
            conn = self._local.conn = self._connect()
            self._local.pid = os.getpid()
        if not self._ready:
            self._create_table(conn)
        return conn

    def _create_table(self, conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))  # concurrent first uses
            cur.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (grant_key text PRIMARY KEY, tokens jsonb, "
                        "updated_at timestamptz NOT NULL DEFAULT now())")
            cur.execute(f"INSERT INTO {self.table} (grant_key) VALUES (%s) ON CONFLICT DO NOTHING", (LOCK_ROW,))
        conn.commit()
        self._ready = True

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        import psycopg2

        conn = self._conn()
        try:
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        except psycopg2.Error as exc:
            with contextlib.suppress(Exception):
                conn.rollback()
            if conn.closed:
                self._local.conn = None
            raise ConfigError(f"token store {self.url}: {_first_line(exc)}") from None
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise

    # -- TokenStore -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's lock row for the block; reentrant within a thread (nested renewals)."""
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        import psycopg2

        self._conn()  # the table and lock row exist
        conn = self._connect()
        try:
            try:
                with conn.cursor() as cur:
                    cur.execute("SET LOCAL lock_timeout = %s", (f"{int(self.lock_timeout_s * 1000)}ms",))
                    cur.execute(f"SELECT grant_key FROM {self.table} WHERE grant_key = %s FOR UPDATE", (LOCK_ROW,))
            except psycopg2.errors.LockNotAvailable:
                raise AuthError(f"token store {self.url} is locked by another process for too long; "
                                "is a run stuck?") from None
            except psycopg2.Error as exc:
                raise ConfigError(f"token store {self.url}: {_first_line(exc)}") from None
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0
        finally:
            with contextlib.suppress(Exception):
                conn.rollback()  # releases the lock row; nothing was written on this connection
            with contextlib.suppress(Exception):
                conn.close()

    def exists(self) -> bool:
        """Whether any grant is stored (the file store: whether the file exists)."""
        with self._transaction() as cur:
            cur.execute(f"SELECT 1 FROM {self.table} WHERE grant_key <> %s LIMIT 1", (LOCK_ROW,))
            return cur.fetchone() is not None

    def load(self) -> StoreData:
        with self._transaction() as cur:
            cur.execute(f"SELECT grant_key, tokens FROM {self.table} WHERE grant_key <> %s", (LOCK_ROW,))
            rows = cur.fetchall()
        company: TokenSet | None = None
        locations: dict[str, TokenSet] = {}
        for key, raw in rows:
            try:
                tokens = _parse(raw)
            except (ValueError, TypeError, KeyError) as exc:
                raise ConfigError(
                    f"token store {self.url}: grant {key!r} is unreadable or corrupt ({type(exc).__name__}); it was "
                    "left untouched: fix or delete that row, or run `highlevel-sync auth login` to re-authorise"
                ) from None
            if key == COMPANY_ROW:
                company = tokens
            elif key.startswith(LOCATION_PREFIX):
                locations[key[len(LOCATION_PREFIX):]] = tokens
        return StoreData(company=company, locations=locations)

    def save(self, data: StoreData) -> None:
        """Make the store hold exactly `data`, in one committed transaction; unchanged rows are not written."""
        wanted = {LOCATION_PREFIX + k: v for k, v in data.locations.items()}
        if data.company is not None:
            wanted[COMPANY_ROW] = data.company
        with self._transaction() as cur:
            cur.execute(f"SELECT grant_key, tokens FROM {self.table} WHERE grant_key <> %s FOR UPDATE", (LOCK_ROW,))
            current = {key: raw for key, raw in cur.fetchall()}
            for key, tokens in sorted(wanted.items()):
                payload = {"version": STORE_VERSION, **tokens.to_json()}
                if current.get(key) == payload:
                    continue
                cur.execute(f"INSERT INTO {self.table} (grant_key, tokens, updated_at) VALUES (%s, %s, now()) "
                            "ON CONFLICT (grant_key) DO UPDATE SET tokens = EXCLUDED.tokens, updated_at = now()",
                            (key, json.dumps(payload, sort_keys=True)))
            gone = sorted(set(current) - set(wanted))
            if gone:
                cur.execute(f"DELETE FROM {self.table} WHERE grant_key = ANY(%s)", (gone,))
            self._before_commit()

    def _before_commit(self) -> None:
        """A seam for crash tests (a subclass pauses here to be killed mid-write); does nothing."""

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
            self._local.conn = None


def _parse(raw: Any) -> TokenSet:
    data = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(data, dict) or data.get("version") != STORE_VERSION:
        raise ValueError("unsupported grant version")
    return TokenSet.from_json(data)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
