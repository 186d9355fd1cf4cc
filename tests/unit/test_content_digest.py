"""The digest that lets an unchanged re-read load nothing depends on content only."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import dlt

from highlevel_sync.fetch import content_bytes


def test_equal_content_gives_equal_bytes_whatever_strings_are_shared() -> None:
    key = "".join(["na", "me"])  # equal to "name", a different object
    shared = [{"name": 1, "when": datetime(2024, 1, 2, tzinfo=UTC)}, {"name": 2, "when": None}]
    distinct = [{"name": 1, "when": datetime(2024, 1, 2, tzinfo=UTC)}, {key: 2, "when": None}]
    assert pickle.dumps(shared) != pickle.dumps(distinct)  # why pickle cannot be the digest
    assert content_bytes(shared) == content_bytes(distinct)


def test_a_change_or_another_table_changes_the_bytes() -> None:
    rows = [{"id": "a", "status": "draft"}]
    assert content_bytes(rows) != content_bytes([{"id": "a", "status": "paid"}])
    hinted = dlt.mark.with_hints(rows, dlt.mark.make_hints(table_name="invoices"))
    other = dlt.mark.with_hints(rows, dlt.mark.make_hints(table_name="orders"))
    assert content_bytes(hinted) != content_bytes(other)
