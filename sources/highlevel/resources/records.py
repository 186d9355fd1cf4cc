"""A record table and its long custom-value table, written together (contacts, opportunities).

Each page yields the records and their value rows under their own table hints. A record without
values gets a tombstone so its old values are cleared (except on a first load, when there are none);
a deleted record gets a hard-delete row and a value tombstone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt

from ..normalize import custom_value_tombstone
from .context import LocationContext
from .deletions import hard_delete_rows, value_tombstones


class RecordTables:
    def __init__(self, ctx: LocationContext, resource: str, row_hints: Any, value_hints: Any, id_field: str,
                 clear_old_values: bool) -> None:
        self.ctx, self.resource = ctx, resource
        self.row_hints, self.value_hints = row_hints, value_hints
        self.id_field = id_field
        self.clear_old_values = clear_old_values
        self.rows: list[dict[str, Any]] = []
        self.values: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any], value_rows: list[dict[str, Any]]) -> None:
        self.rows.append(row)
        if value_rows:
            self.values.extend(value_rows)
        elif self.clear_old_values:
            self.values.append(custom_value_tombstone(self.id_field, row["id"], self.ctx.location_id))

    def flush(self) -> Iterator[Any]:
        """The page's rows for both tables; counts them in the run report."""
        self.ctx.report(self.resource).rows += len(self.rows)
        if self.rows:
            yield dlt.mark.with_hints(self.rows, self.row_hints, create_table_variant=True)
        if self.values:
            yield dlt.mark.with_hints(self.values, self.value_hints, create_table_variant=True)
        self.rows, self.values = [], []

    def delete(self, gone: set[str]) -> Iterator[Any]:
        if gone:
            yield dlt.mark.with_hints(hard_delete_rows(self.ctx, self.resource, gone), self.row_hints,
                                      create_table_variant=True)
            yield dlt.mark.with_hints(value_tombstones(self.ctx, self.id_field, gone), self.value_hints,
                                      create_table_variant=True)
