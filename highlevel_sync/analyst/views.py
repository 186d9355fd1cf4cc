"""Views of the analyst layer, created or replaced only when their SQL changed.

Each view's comment carries a digest of the SQL it was created from. The SQL is generated from
what the dataset holds (base columns, custom-field definitions), so comparing digests answers
"did the definitions, the base table or this code change?" with one small query per view, and a
run without such a change issues no DDL (which would take locks readers wait on in PostgreSQL).
A view that does not exist yet has no digest, so the first run always creates it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .catalog import Catalog
from .dialect import Dialect

MARK = "highlevel-dlt sql "


@dataclass(frozen=True)
class View:
    name: str
    sql: str
    about: str  # one line for the view's comment

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:20]

    @property
    def comment(self) -> str:
        return f"{self.about} ({MARK}{self.digest})"


def ensure_view(client: Any, catalog: Catalog, dialect: Dialect, view: View) -> bool:
    """Create or replace `view` unless it exists with the same SQL; True when it was (re)built.

    Drop and create in one transaction (PostgreSQL's CREATE OR REPLACE cannot drop or reorder
    columns): readers see the old view or the new one, never none.
    """
    found = client.execute_sql(dialect.view_comment_sql, catalog.schema, view.name) or []
    if found and found[0][0] and f"{MARK}{view.digest}" in str(found[0][0]):
        return False
    name = catalog.table(view.name)
    comment = view.comment.replace("'", "''")
    with client.begin_transaction():
        client.execute_sql(f"DROP VIEW IF EXISTS {name}")
        client.execute_sql(f"CREATE VIEW {name} AS {view.sql}")
        client.execute_sql(f"COMMENT ON VIEW {name} IS '{comment}'")
    return True
