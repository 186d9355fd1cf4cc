"""`contacts_wide` and `opportunities_wide`: a record table plus one typed column per custom field.

Analysts want `where cf_lead_score > 50`, not a pivot of the long value tables. A column is
named after the field's `fieldKey` without its model prefix, snake_case (`contact.lead_score` ->
`cf_lead_score`), so fields that several locations define with one key share one column (their
ids differ per location). It is typed by `dataType`: NUMERICAL and MONETORY -> double, DATE -> UTC
timestamp, MULTIPLE_OPTIONS and CHECKBOX -> JSON list, the rest -> text; locations that disagree on
a key's type get text, which holds every value. The columns come from the definitions the dataset
holds now, so a field added in HighLevel appears after the next run's `custom_fields` load.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .catalog import Catalog
from .dialect import Dialect
from .views import View

# dataType -> the column's kind; any other type is text
KINDS = {"NUMERICAL": "number", "MONETORY": "number", "MONETARY": "number", "DATE": "timestamp",
         "MULTIPLE_OPTIONS": "list", "CHECKBOX": "list"}
# view -> (base table, long value table, its record id column, the definitions' model)
WIDE = {"contacts_wide": ("contacts", "contact_custom_field_values", "contact_id", "contact"),
        "opportunities_wide": ("opportunities", "opportunity_custom_field_values", "opportunity_id", "opportunity")}


@dataclass(frozen=True)
class WideColumn:
    name: str
    kind: str  # number | timestamp | list | text
    field_ids: tuple[str, ...]  # every location's field behind this column


def column_name(field_key: str, naming: Any) -> str:
    """`contact.lead_score` -> `cf_lead_score`, with the destination's naming (snake_case, length)."""
    key = field_key.split(".", 1)[1] if "." in field_key else field_key
    return str(naming.normalize_identifier(f"cf_{key}"))


def wide_columns(definitions: Iterable[tuple[str, str, str | None]], naming: Any) -> list[WideColumn]:
    """The view's custom columns from (field id, fieldKey, dataType) of every location, by name."""
    ids: dict[str, list[str]] = {}
    kinds: dict[str, set[str]] = {}
    for field_id, field_key, data_type in definitions:
        name = column_name(field_key, naming)
        ids.setdefault(name, []).append(field_id)
        kinds.setdefault(name, set()).add(KINDS.get(str(data_type or "").upper(), "text"))
    return [WideColumn(name, next(iter(kinds[name])) if len(kinds[name]) == 1 else "text", tuple(sorted(ids[name])))
            for name in sorted(ids)]


def definitions_of(client: Any, catalog: Catalog, model: str) -> list[tuple[str, str, str | None]]:
    """(id, fieldKey, dataType) of the model's custom fields, all locations."""
    if not {"id", "field_key", "data_type"} <= set(catalog.columns("custom_fields")):
        return []
    model_column = catalog.column("f", "custom_fields", "model", "VARCHAR")
    rows = client.execute_sql(f"SELECT f.id, f.field_key, f.data_type, {model_column} "
                              f"FROM {catalog.table('custom_fields')} AS f WHERE f.field_key IS NOT NULL") or []
    return [(str(i), str(key), kind) for i, key, kind, owner in rows
            if owner == model or (owner is None and str(key).startswith(f"{model}."))]


def wide_views(client: Any, catalog: Catalog, dialect: Dialect, naming: Any) -> list[View]:
    """Both wide views, for the base tables the dataset has."""
    views = []
    for view, (base, values, record_id, model) in WIDE.items():
        if catalog.has(base):
            columns = wide_columns(definitions_of(client, catalog, model), naming)
            views.append(View(view, wide_view_sql(catalog, dialect, base, values, record_id, columns),
                              f"{base} plus one cf_ column per custom field"))
    return views


def wide_view_sql(catalog: Catalog, dialect: Dialect, base: str, values: str, record_id: str,
                  columns: list[WideColumn]) -> str:
    base_columns = catalog.columns(base)
    columns = [c for c in columns if c.name not in base_columns]
    select = [f"b.{catalog.quote(name)}" for name in base_columns]
    if not columns:
        return f"SELECT {', '.join(select)} FROM {catalog.table(base)} AS b"
    if not catalog.has(values):
        select += [f"CAST(NULL AS {_sql_type(c.kind, dialect)}) AS {catalog.quote(c.name)}" for c in columns]
        return f"SELECT {', '.join(select)} FROM {catalog.table(base)} AS b"
    select += [f"v.{catalog.quote(c.name)}" for c in columns]
    typed = {name: catalog.column("v", values, name, sql_type) for name, sql_type in
             (("value", "VARCHAR"), ("value_number", "DOUBLE PRECISION"),
              ("value_timestamp", "TIMESTAMP WITH TIME ZONE"), ("value_json", dialect.json_type))}
    picks = [f"{_pick(c, dialect, typed)} AS {catalog.quote(c.name)}" for c in columns]
    return (f"SELECT {', '.join(select)} FROM {catalog.table(base)} AS b LEFT JOIN "
            f"(SELECT v.{catalog.quote(record_id)} AS record_id, {', '.join(picks)} "
            f"FROM {catalog.table(values)} AS v GROUP BY v.{catalog.quote(record_id)}) AS v ON v.record_id = b.id")


def _pick(column: WideColumn, dialect: Dialect, typed: dict[str, str]) -> str:
    """The column's value among a record's value rows (`typed`: the value columns' SQL)."""
    ids = ", ".join("'" + field_id.replace("'", "''") + "'" for field_id in column.field_ids)
    condition = f"v.field_id IN ({ids})"
    if column.kind == "number":
        return dialect.pick(typed["value_number"], condition, is_json=False)
    if column.kind == "timestamp":
        return dialect.pick(typed["value_timestamp"], condition, is_json=False)
    if column.kind == "list":
        return dialect.pick(dialect.json_list(typed["value_json"], typed["value"]), condition, is_json=True)
    return dialect.pick(typed["value"], condition, is_json=False)


def _sql_type(kind: str, dialect: Dialect) -> str:
    return {"number": "DOUBLE PRECISION", "timestamp": "TIMESTAMP WITH TIME ZONE",
            "list": dialect.json_type}.get(kind, "VARCHAR")
