"""`object_<name>_wide`: one view per custom object, its records with one typed column per field.

`object_records` keeps each record's `properties` whole (JSON keyed by the field key without the
object prefix), so no field is ever lost; analysts want `where cf_weight_kg > 20` instead. Each
view has every `object_records` column (of that object's rows) plus `cf_<key>` per field the
dataset's `custom_fields` defines for the object (`custom_objects.pets.weight_kg` -> `cf_weight_kg`),
typed by `dataType` exactly as `contacts_wide` types contact fields (`wide.KINDS`): NUMERICAL and
MONETORY -> double (a MONETORY value is `{currency, value}`: its `value`), DATE -> UTC timestamp (a
`YYYY-MM-DD` is midnight UTC), MULTIPLE_OPTIONS and CHECKBOX -> JSON list, the rest -> text (a list
or object value as its JSON text). A TEXTBOX_LIST field is stored as one property per option
(`<field>.<option>`), so it gets one text column per option, `cf_<field>_<option>`. `<name>` is the
object's key after `custom_objects.`, snake_case. The columns come from the definitions the dataset
holds now: a field added in HighLevel appears after the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .catalog import Catalog
from .dialect import Dialect
from .views import View
from .wide import KINDS

PREFIX = "custom_objects."


@dataclass(frozen=True)
class ObjectColumn:
    name: str
    kind: str  # number | timestamp | list | text
    key: str  # the property's key in `properties`


def object_keys(client: Any, catalog: Catalog) -> list[str]:
    """The custom objects' keys the dataset knows (schemas listed, or fields defined)."""
    keys: set[str] = set()
    if {"key", "standard"} <= set(catalog.columns("object_schemas")):
        rows = client.execute_sql(f"SELECT {catalog.quote('key')} FROM {catalog.table('object_schemas')} "
                                  "WHERE standard = false") or []
        keys.update(str(key) for key, in rows if key)
    return sorted(key for key in keys if key.startswith(PREFIX))


def object_columns(client: Any, catalog: Catalog, object_key: str, naming: Any) -> list[ObjectColumn]:
    """The object's typed columns, from the definitions of every location (a key several locations
    define with different types is text)."""
    if not {"field_key", "data_type", "model"} <= set(catalog.columns("custom_fields")):
        return []
    fields = catalog.table("custom_fields")
    rows = client.execute_sql(f"SELECT DISTINCT field_key, data_type FROM {fields} WHERE model = %s "
                              "AND field_key IS NOT NULL", object_key) or []
    options: dict[str, set[str]] = {}
    if {"key", "_dlt_parent_id"} <= set(catalog.columns("custom_fields__options")):
        found = client.execute_sql(
            f"SELECT f.field_key, o.{catalog.quote('key')} FROM {fields} AS f JOIN "
            f"{catalog.table('custom_fields__options')} AS o ON o._dlt_parent_id = f._dlt_id "
            "WHERE f.model = %s AND f.data_type = 'TEXTBOX_LIST'", object_key) or []
        for field_key, option in found:
            options.setdefault(str(field_key), set()).add(str(option))
    kinds: dict[str, set[str]] = {}
    for field_key, data_type in rows:
        key = str(field_key)[len(object_key) + 1:] if str(field_key).startswith(f"{object_key}.") else str(field_key)
        if str(data_type).upper() == "TEXTBOX_LIST":
            for option in options.get(str(field_key), ()):
                kinds.setdefault(f"{key}.{option}", set()).add("text")
        else:
            kinds.setdefault(key, set()).add(KINDS.get(str(data_type or "").upper(), "text"))
    columns: dict[str, ObjectColumn] = {}
    for key, found_kinds in sorted(kinds.items()):
        name = str(naming.normalize_identifier(f"cf_{key.replace('.', '_')}"))
        columns.setdefault(name, ObjectColumn(name, next(iter(found_kinds)) if len(found_kinds) == 1 else "text", key))
    return list(columns.values())


def object_views(client: Any, catalog: Catalog, dialect: Dialect, naming: Any) -> list[View]:
    if not catalog.has("object_records"):
        return []
    views = []
    for object_key in object_keys(client, catalog):
        name = str(naming.normalize_identifier(f"object_{object_key[len(PREFIX):]}_wide"))
        columns = object_columns(client, catalog, object_key, naming)
        views.append(View(name, object_view_sql(catalog, dialect, object_key, columns),
                          f"{object_key} records plus one cf_ column per field"))
    return views


def object_view_sql(catalog: Catalog, dialect: Dialect, object_key: str, columns: list[ObjectColumn]) -> str:
    base_columns = catalog.columns("object_records")
    select = [f"b.{catalog.quote(name)}" for name in base_columns]
    select += [f"{_typed(column, dialect)} AS {catalog.quote(column.name)}" for column in columns
               if column.name not in base_columns]
    return (f"SELECT {', '.join(select)} FROM {catalog.table('object_records')} AS b "
            f"WHERE b.object_key = {_literal(object_key)}")


def _typed(column: ObjectColumn, dialect: Dialect) -> str:
    """The property's value typed as its column, NULL where it does not fit (old values are not validated)."""
    key = column.key
    if dialect.name == "duckdb":
        path = _literal('$."' + key.replace('"', '\\"') + '"')
        text = f"json_extract_string(b.properties, {path})"
        if column.kind == "number":
            inner = _literal('$."' + key.replace('"', '\\"') + '".value')
            return f"TRY_CAST(COALESCE(json_extract_string(b.properties, {inner}), {text}) AS DOUBLE)"
        if column.kind == "timestamp":
            return f"timezone('UTC', TRY_CAST({text} AS TIMESTAMP))"
        if column.kind == "list":
            return (f"CASE WHEN json_type(b.properties, {path}) = 'ARRAY' THEN json_extract(b.properties, {path}) "
                    f"WHEN {text} IS NOT NULL THEN to_json([{text}]) END")
        return text
    value, text = f"(b.properties -> {_literal(key)})", f"(b.properties ->> {_literal(key)})"
    if column.kind == "number":
        number = f"(CASE WHEN jsonb_typeof({value}) = 'object' THEN {value} ->> 'value' ELSE {text} END)"
        return (f"(CASE WHEN {number} ~ '^\\s*[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?\\s*$' "
                f"THEN CAST({number} AS DOUBLE PRECISION) END)")
    if column.kind == "timestamp":
        return (f"(CASE WHEN {text} ~ '^\\d{{4}}-\\d{{2}}-\\d{{2}}' "
                f"THEN CAST({text} AS TIMESTAMP) AT TIME ZONE 'UTC' END)")
    if column.kind == "list":
        return (f"(CASE WHEN jsonb_typeof({value}) = 'array' THEN {value} WHEN {text} IS NOT NULL "
                f"THEN jsonb_build_array({text}) END)")
    return text


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
