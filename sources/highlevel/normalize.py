"""Pure row shaping: timestamps to UTC, custom-field values typed, `location_id` on every row.

HighLevel mixes ISO-8601 with `Z`, ISO with a location offset (`+05:30`), epoch milliseconds as
numbers and as strings, and epoch seconds. Analysts need one thing: a UTC instant. Everything here
is I/O free so it can be unit-tested exhaustively; it runs per row, so it avoids heavy parsers
on the common path.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pendulum


def to_utc(value: Any, epoch_unit: str = "ms") -> datetime | None:
    """Return the UTC instant a HighLevel timestamp denotes, or None for empty values.

    Numbers are epoch milliseconds, HighLevel's convention everywhere except `LCEmailStats`
    (pass `epoch_unit="s"` there). No magnitude guessing: a 1972 birthday in ms looks like a
    2900 date in seconds. Raises ValueError for something that is not a timestamp, so garbage
    never loads silently.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        return _from_epoch(float(value), epoch_unit)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return _from_epoch(float(text), epoch_unit)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = _parse_lenient(text)
        if parsed.tzinfo is None:
            # HighLevel's naive timestamps are UTC (its storage zone); never guess the local zone.
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    raise ValueError(f"not a timestamp: {value!r}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _from_epoch(number: float, unit: str) -> datetime:
    # timedelta arithmetic is exact for whole milliseconds; float division is not
    try:
        return _EPOCH + (timedelta(milliseconds=number) if unit == "ms" else timedelta(seconds=number))
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"epoch value {number!r} is out of range") from exc


def _parse_lenient(text: str) -> datetime:
    try:
        parsed = pendulum.parse(text, strict=False)
    except (ValueError, pendulum.parsing.exceptions.ParserError) as exc:
        raise ValueError(f"not a timestamp: {text!r}") from exc
    if not isinstance(parsed, datetime):
        raise ValueError(f"not a timestamp: {text!r}")
    return parsed


def to_iso_z(instant: datetime) -> str:
    """Format an instant the way HighLevel writes it (`2024-05-02T10:11:12.345Z`)."""
    utc = instant.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def convert_timestamps(row: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """Replace the given top-level fields of `row` with UTC datetimes, in place."""
    for field in fields:
        if field in row:
            row[field] = to_utc(row[field])
    return row


# --- custom fields ---------------------------------------------------------------------------

_NUMBER_TYPES = frozenset({"NUMERICAL", "MONETORY", "MONETARY", "NUMBER", "FLOAT", "INTEGER"})
_DATE_TYPES = frozenset({"DATE", "DATETIME"})


def custom_value_row(
    record_id_field: str,
    record_id: str,
    location_id: str,
    field_id: str,
    value: Any,
    definition: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Build one row of a long custom-value table with typed value columns.

    `value` always holds a text form so nothing is lost; `value_number`, `value_timestamp` and
    `value_json` are filled when the definition's dataType (or the value itself) allows, so
    analysts can filter without parsing JSON. A value that does not fit its declared type keeps
    only its text form instead of failing the load: HighLevel does not validate old values.
    """
    data_type = str(definition.get("dataType") or "") if definition else ""
    row: dict[str, Any] = {
        record_id_field: record_id,
        "location_id": location_id,
        "field_id": field_id,
        "field_key": definition.get("fieldKey") if definition else None,
        "data_type": data_type or None,
        "value": None,
        "value_number": None,
        "value_timestamp": None,
        "value_json": None,
    }
    if value is None:
        return row
    if isinstance(value, list | dict):
        row["value_json"] = value
        row["value"] = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return row
    row["value"] = value if isinstance(value, str) else json.dumps(value)
    if data_type in _NUMBER_TYPES or (not data_type and isinstance(value, int | float)):
        row["value_number"] = _as_number(value)
    elif data_type in _DATE_TYPES:
        with contextlib.suppress(ValueError):
            row["value_timestamp"] = to_utc(value)
    return row


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).replace(",", "").strip())
    except ValueError:
        return None


# --- contacts --------------------------------------------------------------------------------

CONTACT_TIMESTAMPS = ("dateAdded", "dateUpdated", "dateOfBirth", "lastActivity")
# Lists kept as JSON columns: one child table per list would multiply tables for little use.
CONTACT_JSON_LISTS = ("followers", "attributions", "additionalEmails", "additionalPhones")


def shape_contact(
    contact: dict[str, Any], location_id: str, definitions: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Split a search hit into the `contacts` row and its `contact_custom_field_values` rows.

    Tags become child rows that carry `contact_id` and `location_id`, so analysts can count tags
    per location without joining through dlt's internal ids.
    """
    row = dict(contact)
    row.pop("searchAfter", None)
    custom = row.pop("customFields", None) or []
    row["locationId"] = row.get("locationId") or location_id
    contact_id = row["id"]
    for name in CONTACT_TIMESTAMPS:
        if name in row:
            row[name] = to_utc(row[name])
    tags = row.get("tags") or []
    row["tags"] = [{"tag": tag, "contact_id": contact_id, "location_id": location_id} for tag in tags]
    values = []
    for item in custom:
        if not isinstance(item, dict) or not item.get("id"):
            continue
        field_id = str(item["id"])
        raw = item.get("value", item.get("fieldValue"))
        value_row = custom_value_row("contact_id", contact_id, location_id, field_id, raw, definitions.get(field_id))
        value_row["date_updated"] = row.get("dateUpdated")
        values.append(value_row)
    return row, values


def custom_value_tombstone(record_id_field: str, record_id: str, location_id: str) -> dict[str, Any]:
    """A marker row that clears a record's previous custom values and is itself never stored.

    The value tables merge with `merge_key=<record id>`: every record in a batch first has all its
    old value rows deleted. A record whose values were all removed has no value row to carry
    that key, so it gets this hard-deleted marker instead.
    """
    return {record_id_field: record_id, "location_id": location_id, "field_id": "", "_tombstone": True}
