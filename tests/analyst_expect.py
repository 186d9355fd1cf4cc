"""What the analyst layer must show, computed from the sandbox's ground truth (shared by the
DuckDB and PostgreSQL tests)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from highlevel_sync.sandbox import Sandbox
from sources.highlevel.normalize import to_utc

Query = Callable[[str], list[tuple[Any, ...]]]
NUMBER, DATE, LIST = {"NUMERICAL", "MONETORY"}, {"DATE"}, {"MULTIPLE_OPTIONS", "CHECKBOX"}
# model -> (view, how the sandbox's records are read)
MODELS: dict[str, tuple[str, Callable[[Sandbox, str], list[dict[str, Any]]]]] = {
    "contact": ("contacts_wide", lambda sb, loc: sb.truth_contacts(loc)),
    "opportunity": ("opportunities_wide", lambda sb, loc: sb.truth(loc, "opportunities")),
}


def cf_column(field_key: str) -> str:
    return "cf_" + re.sub(r"[^a-z0-9]+", "_", field_key.split(".", 1)[1].lower()).strip("_")


def typed(raw: Any, data_type: str) -> Any:
    """The API's value as the wide view must hold it."""
    if data_type in NUMBER:
        return float(raw)
    if data_type in DATE:
        return to_utc(raw)
    if data_type in LIST:
        return list(raw) if isinstance(raw, list) else [raw]
    return raw


def expected_wide(sb: Sandbox, locations: Sequence[str], model: str) -> dict[str, dict[str, Any]]:
    """record id -> {cf column: typed value} for every record of `model` in `locations`."""
    expected: dict[str, dict[str, Any]] = {}
    for loc in locations:
        definitions = {f["id"]: f for f in sb.truth_custom_fields(loc, model)}
        for record in MODELS[model][1](sb, loc):
            values = expected.setdefault(record["id"], {})
            for item in record.get("customFields") or []:
                definition = definitions.get(item["id"])
                if definition is not None:
                    raw = item.get("value", item.get("fieldValue"))
                    values[cf_column(definition["fieldKey"])] = typed(raw, definition["dataType"])
    return expected


def columns_of(sb: Sandbox, locations: Sequence[str], model: str) -> dict[str, str]:
    """cf column -> dataType, over every location's definitions."""
    return {cf_column(f["fieldKey"]): f["dataType"] for loc in locations for f in sb.truth_custom_fields(loc, model)}


def as_loaded(value: Any, data_type: str) -> Any:
    """A view's value in comparable form (DuckDB returns JSON as text, psycopg2 as Python; objects
    such as TEXTBOX_LIST and FILE_UPLOAD values are text columns holding JSON)."""
    if value is None:
        return None
    if data_type in LIST:
        return json.loads(value) if isinstance(value, str) else value
    if data_type not in NUMBER | DATE and isinstance(value, str) and value.startswith(("{", "[")):
        return json.loads(value)
    return value


def assert_wide_views_match(sb: Sandbox, locations: Sequence[str], query: Query, dataset: str) -> int:
    """Every custom field's value of every contact and opportunity equals the API's; returns values compared."""
    compared = 0
    for model, (view, _) in MODELS.items():
        expected = expected_wide(sb, locations, model)
        columns = columns_of(sb, locations, model)
        names = sorted(columns)
        rows = query(f"select id, {', '.join(names)} from {dataset}.{view}")
        assert sorted(r[0] for r in rows) == sorted(expected), f"{view}: not one row per record"
        for record_id, *values in rows:
            for name, value in zip(names, values, strict=True):
                want = expected[record_id].get(name)
                assert as_loaded(value, columns[name]) == want, (view, record_id, name, value, want)
                compared += want is not None
    return compared
