"""A record table and its long custom-value table, written together (contacts, opportunities).

Each page yields the records and their value rows under their own table hints. A record without
values gets a tombstone so its old values are cleared (except on a first load, when there are none);
a deleted record gets a hard-delete row and a value tombstone.

A record edited while a read is under way comes twice in that read: its old version early, its new
one at the end of the change-time order. Both land in one load, where the merge keeps the newest
row per (record, field) but cannot know that a field the new version dropped is gone. So a record
seen again in the same read also gets a tombstone, stamped with its new time, for every defined
field it no longer has: the newest row per (record, field) is then always the new version's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt

from ..normalize import custom_value_tombstone
from .context import LocationContext
from .deletions import hard_delete_rows, value_tombstones

# resource -> (the custom-field definitions' model, the record field that says when it changed)
VERSIONED: dict[str, tuple[str, str]] = {"contacts": ("contact", "dateUpdated"),
                                         "opportunities": ("opportunity", "updatedAt")}


class RecordTables:
    def __init__(self, ctx: LocationContext, resource: str, row_hints: Any, value_hints: Any, id_field: str,
                 clear_old_values: bool) -> None:
        self.ctx, self.resource = ctx, resource
        self.row_hints, self.value_hints = row_hints, value_hints
        self.id_field = id_field
        self.clear_old_values = clear_old_values
        self.rows: list[dict[str, Any]] = []
        self.values: list[dict[str, Any]] = []
        self._seen: set[str] = set()  # record ids added by this read
        self._field_ids: list[str] | None = None

    def add(self, row: dict[str, Any], value_rows: list[dict[str, Any]]) -> None:
        self.rows.append(row)
        record_id = str(row["id"])
        if record_id in self._seen:
            value_rows = value_rows + self._superseded(row, value_rows)
        else:
            self._seen.add(record_id)
        if value_rows:
            self.values.extend(value_rows)
        elif self.clear_old_values:
            self.values.append(custom_value_tombstone(self.id_field, row["id"], self.ctx.location_id))

    def _superseded(self, row: dict[str, Any], value_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Tombstones for the defined fields a newer version of an already-read record lacks."""
        model, updated_field = VERSIONED.get(self.resource, ("", "dateUpdated"))
        if self._field_ids is None:
            self._field_ids = [str(d.get("id")) for d in self.ctx.custom_field_definitions()
                               if d.get("id") and d.get("model") in (model, None)]
        present = {value["field_id"] for value in value_rows}
        return [{**custom_value_tombstone(self.id_field, row["id"], self.ctx.location_id),
                 "field_id": field_id, "date_updated": row.get(updated_field)}
                for field_id in self._field_ids if field_id not in present]

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
