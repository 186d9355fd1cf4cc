"""Which token store a `token_store` setting names: a file path (one machine) or a PostgreSQL URL
(workers on many machines). Everything that opens a store goes through here, so both kinds keep
the same guarantees everywhere (runs, `auth import|login|status`, the webhook receiver)."""

from __future__ import annotations

import os

from .pgtokenstore import PostgresTokenStore, is_postgres_url, redacted_url
from .tokenstore import FileTokenStore

AnyTokenStore = FileTokenStore | PostgresTokenStore

__all__ = ["AnyTokenStore", "describe_token_store", "is_postgres_url", "open_token_store"]


def open_token_store(spec: str | os.PathLike[str]) -> AnyTokenStore:
    """A PostgreSQL URL opens the shared store (psycopg2 needed only then); anything else is a file path."""
    return PostgresTokenStore(str(spec)) if is_postgres_url(spec) else FileTokenStore(spec)


def describe_token_store(spec: str | os.PathLike[str]) -> str:
    """The setting as it may be shown to a user: a URL without its password."""
    return redacted_url(str(spec)) if is_postgres_url(spec) else str(spec)
