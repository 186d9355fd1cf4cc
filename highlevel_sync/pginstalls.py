"""The webhook install registry in PostgreSQL, beside a PostgreSQL token store.

Workers on many machines share one token store; an AppUninstall (or AppInstall) webhook reaches one
of them, and every shard must see it: so with a `postgresql://` token store the registry is a table
in the same database (`highlevel_app_installs`, in the token table's schema), one row per location
that uninstalled the app. Each call is one short transaction: a mark is visible to every worker as
soon as it returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sources.highlevel.errors import ConfigError
from sources.highlevel.pgtokenstore import DEFAULT_TABLE, redacted_url

TABLE = "highlevel_app_installs"


class PostgresInstalls:
    """`uninstalled()` / `mark(location_id, uninstalled)` over the token store's database."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        token_table = next((v for k, v in query if k == "table"), DEFAULT_TABLE)
        schema = token_table.split(".", 1)[0] + "." if "." in token_table else ""
        self.table = schema + TABLE  # the token table's name was validated as a plain [schema.]name
        self._dsn = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "table"])))
        self.url = redacted_url(url)
        self._ready = False

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        try:
            import psycopg2
        except ImportError:
            raise ConfigError("a PostgreSQL token_store needs psycopg2: pip install psycopg2-binary") from None
        try:
            conn = psycopg2.connect(self._dsn, connect_timeout=10, application_name="highlevel-installs")
        except psycopg2.Error as exc:
            raise ConfigError(f"cannot connect to the install registry {self.url}: {str(exc).strip()}") from None
        try:
            with conn, conn.cursor() as cur:  # one transaction, committed on leaving
                if not self._ready:
                    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))  # concurrent first uses
                    cur.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (location_id text PRIMARY KEY, "
                                "uninstalled_at text NOT NULL)")
                    self._ready = True
                yield cur
        except psycopg2.Error as exc:
            raise ConfigError(f"install registry {self.url}: {str(exc).strip()}") from None
        finally:
            conn.close()

    def uninstalled(self) -> dict[str, str]:
        with self._cursor() as cur:
            cur.execute(f"SELECT location_id, uninstalled_at FROM {self.table} ORDER BY location_id")
            return {str(location_id): str(when) for location_id, when in cur.fetchall()}

    def mark(self, location_id: str, uninstalled: bool) -> None:
        with self._cursor() as cur:
            if uninstalled:
                cur.execute(f"INSERT INTO {self.table} (location_id, uninstalled_at) VALUES (%s, %s) "
                            "ON CONFLICT (location_id) DO UPDATE SET uninstalled_at = EXCLUDED.uninstalled_at",
                            (location_id, datetime.now(UTC).isoformat(timespec="seconds")))
            else:
                cur.execute(f"DELETE FROM {self.table} WHERE location_id = %s", (location_id,))
