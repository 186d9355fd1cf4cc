"""A contact edited while a read is under way comes twice in that read (old version early, new one
at the end of the `dateUpdated` order); only the newest version's custom values and tags survive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import Harness


@pytest.fixture
def h(highlevel_sandbox_factory: Any, tmp_path: Path) -> Harness:
    # no index lag: the edit is visible to the very next page
    return Harness(highlevel_sandbox_factory(contacts_per_location=(1_200,), index_lag_s=0.0), tmp_path)


def first_page_contact(h: Harness) -> dict[str, Any]:
    """A contact the first search page returns (oldest dateUpdated first) with several values and tags."""
    ordered = sorted(h.sb.truth_contacts(h.big), key=lambda c: (c["dateUpdated"], c["id"]))
    return next(c for c in ordered[:500] if len(c["customFields"]) >= 3 and len(c["tags"]) >= 2)


def values_of(h: Harness, contact_id: str) -> list[tuple[Any, ...]]:
    return h.query("select field_id, value from highlevel.contact_custom_field_values where contact_id = ? "
                   "order by field_id", contact_id)


def edit_during_read(h: Harness, contact: dict[str, Any], after: int) -> dict[str, Any]:
    """Before the (after + 1)-th search request: keep one custom value and one tag, change the email."""
    kept = contact["customFields"][:1]
    changes = {"customFields": kept, "tags": contact["tags"][:1], "email": "edited.mid.read@example.com"}
    h.sb.before_request("/contacts/search", lambda: h.sb.edit_contact(h.big, contact["id"], **changes), after)
    return changes


def check_newest_only(h: Harness, contact: dict[str, Any], changes: dict[str, Any]) -> None:
    kept_field = changes["customFields"][0]["id"]
    assert [row[0] for row in values_of(h, contact["id"])] == [kept_field]
    assert h.query("select email from highlevel.contacts where id = ?", contact["id"]) == [(changes["email"],)]
    assert h.query("select tag from highlevel.contacts__tags where contact_id = ?", contact["id"]) == [
        (changes["tags"][0],)]
    assert h.query("select count(*) from highlevel.contacts where id = ?", contact["id"]) == [(1,)]


@pytest.mark.parametrize("columnar", [True, False], ids=["columnar", "json"])
def test_first_load_keeps_only_the_newest_values_of_a_contact_read_twice(h: Harness, columnar: bool) -> None:
    contact = first_page_contact(h)
    changes = edit_during_read(h, contact, after=1)
    result = h.run(config={"columnar": columnar})
    assert result.ok, [r.error for r in result.locations]
    # it really was read twice: 1,200 contacts plus the second appearance
    assert result.locations[0].rows["contacts"] == 1_201
    check_newest_only(h, contact, changes)
    assert h.contact_ids() == h.truth_ids()


def test_an_incremental_run_keeps_only_the_newest_values_of_a_contact_read_twice(h: Harness) -> None:
    assert h.run().ok
    h.sb.update_contacts(h.big, 600)  # a busy period: the next read spans two pages
    h.sb.wait_for_index()
    ordered = sorted(h.sb.truth_contacts(h.big), key=lambda c: (c["dateUpdated"], c["id"]))
    window = ordered[-600:]
    contact = next(c for c in window[:400] if len(c["customFields"]) >= 2 and len(c["tags"]) >= 2)
    changes = edit_during_read(h, contact, after=1)
    result = h.run()
    assert result.ok, [r.error for r in result.locations]
    check_newest_only(h, contact, changes)
