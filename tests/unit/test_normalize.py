"""Timestamps and custom values: every format HighLevel uses lands as one correct UTC instant."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sources.highlevel.normalize import custom_value_row, shape_contact, to_iso_z, to_utc

INSTANT = datetime(2024, 5, 2, 10, 11, 12, 345000, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        "2024-05-02T10:11:12.345Z",
        "2024-05-02T15:41:12.345+05:30",
        "2024-05-02T06:11:12.345-04:00",
        1714644672345,
        "1714644672345",
        1714644672345.0,
        "2024-05-02T10:11:12.345",  # naive: HighLevel stores UTC
    ],
)
def test_every_format_is_the_same_instant(raw: object) -> None:
    assert to_utc(raw) == INSTANT


def test_epoch_seconds_and_dates() -> None:
    assert to_utc(1714644672, epoch_unit="s") == datetime(2024, 5, 2, 10, 11, 12, tzinfo=UTC)
    assert to_utc(-315619200000) == datetime(1960, 1, 1, tzinfo=UTC)  # a birthday before 1970
    assert to_utc("2024-05-02") == datetime(2024, 5, 2, tzinfo=UTC)


@pytest.mark.parametrize("raw", [None, ""])
def test_empty_is_none(raw: object) -> None:
    assert to_utc(raw) is None


@pytest.mark.parametrize("raw", ["not a date", True, {"a": 1}, "2024-13-45"])
def test_garbage_is_refused(raw: object) -> None:
    with pytest.raises(ValueError):
        to_utc(raw)


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                               timezone(timedelta(hours=-7))])))
def test_round_trips_through_iso_and_epoch(moment: datetime) -> None:
    moment = moment.replace(microsecond=(moment.microsecond // 1000) * 1000)
    expected = moment.astimezone(UTC)
    assert to_utc(moment.isoformat()) == expected
    assert to_utc(to_iso_z(moment)) == expected
    assert to_utc(round(expected.timestamp() * 1000)) == expected


def test_custom_values_are_typed_by_definition() -> None:
    definition = {"dataType": "MONETORY", "fieldKey": "contact.deal"}
    number = custom_value_row("contact_id", "c1", "L", "f1", "1,250.5", definition)
    assert (number["value"], number["value_number"], number["field_key"]) == ("1,250.5", 1250.5, "contact.deal")
    date = custom_value_row("contact_id", "c1", "L", "f2", 1714644672345, {"dataType": "DATE"})
    assert date["value_timestamp"] == INSTANT and date["value"] == "1714644672345"
    multi = custom_value_row("contact_id", "c1", "L", "f3", ["b", "a"], {"dataType": "MULTIPLE_OPTIONS"})
    assert multi["value_json"] == ["b", "a"] and multi["value"] == '["b","a"]'
    text = custom_value_row("contact_id", "c1", "L", "f4", "hello", {"dataType": "TEXT"})
    assert (text["value"], text["value_number"], text["value_timestamp"]) == ("hello", None, None)


def test_a_value_that_does_not_fit_its_type_keeps_its_text() -> None:
    row = custom_value_row("contact_id", "c1", "L", "f1", "n/a", {"dataType": "NUMERICAL"})
    assert (row["value"], row["value_number"]) == ("n/a", None)
    row = custom_value_row("contact_id", "c1", "L", "f1", "someday", {"dataType": "DATE"})
    assert (row["value"], row["value_timestamp"]) == ("someday", None)


def test_unknown_definition_still_loads_the_value() -> None:
    row = custom_value_row("contact_id", "c1", "L", "gone", 7, None)
    assert (row["field_key"], row["value"], row["value_number"]) == (None, "7", 7.0)


def test_shape_contact_splits_values_and_tags() -> None:
    contact = {
        "id": "c1", "locationId": "L", "dateAdded": "2024-05-02T10:11:12.345Z",
        "dateUpdated": "2024-05-02T15:41:12.345+05:30", "dateOfBirth": 1714644672345,
        "tags": ["vip", "lead"], "customFields": [{"id": "f1", "value": "x"}, {"id": "f2", "fieldValue": 3}],
        "searchAfter": [1, "c1"],
    }
    row, values = shape_contact(contact, "L", {"f1": {"fieldKey": "contact.a", "dataType": "TEXT"}})
    assert "searchAfter" not in row and "customFields" not in row
    assert row["dateUpdated"] == INSTANT and row["dateOfBirth"] == INSTANT
    assert row["tags"] == [{"tag": "vip", "contact_id": "c1", "location_id": "L"},
                           {"tag": "lead", "contact_id": "c1", "location_id": "L"}]
    assert [(v["field_id"], v["field_key"], v["value"]) for v in values] == [
        ("f1", "contact.a", "x"),
        ("f2", None, "3"),
    ]
    assert all(v["location_id"] == "L" and v["contact_id"] == "c1" for v in values)
