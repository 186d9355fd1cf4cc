"""What the dataset holds right now: tables and their columns, read from information_schema.

The analyst layer's SQL is generated from this (a column the API never sent is not there), so the
views always match the tables they read.
"""

from __future__ import annotations

from typing import Any


class Catalog:
    """Columns of every table and view of one dataset, in their order; read once per refresh."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.schema = str(client.dataset_name)
        rows = client.execute_sql(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s "
            "ORDER BY table_name, ordinal_position", self.schema) or []
        self._columns: dict[str, list[str]] = {}
        for table, column in rows:
            self._columns.setdefault(str(table), []).append(str(column))

    def has(self, table: str) -> bool:
        return table in self._columns

    def columns(self, table: str) -> list[str]:
        return list(self._columns.get(table, []))

    def table(self, name: str) -> str:
        """The qualified, quoted name of a table or view of the dataset."""
        return str(self.client.make_qualified_table_name(name))

    def quote(self, identifier: str) -> str:
        return str(self.client.escape_column_name(identifier))

    def column(self, alias: str, table: str, column: str, sql_type: str) -> str:
        """`alias.column`, or a typed NULL when the table lacks it (the API never sent a value)."""
        if column in self._columns.get(table, []):
            return f"{alias}.{self.quote(column)}"
        return f"CAST(NULL AS {sql_type})"
