"""The plain dlt source's own rules: which resources it offers, lists given as JSON text, and the
order its resources read in inside one extract."""

from __future__ import annotations

from typing import Any

import pytest

from sources.highlevel import select_resources
from sources.highlevel.errors import ConfigError
from sources.highlevel.resources.context import SyncOptions
from sources.highlevel.standalone import Session, _listed, selected_names


def test_named_resources_bring_deletions_when_they_can_delete() -> None:
    assert selected_names(["contacts"], False, select_resources) == ["contacts", "deletions"]
    assert selected_names(["users", "locations"], False, select_resources) == ["users", "locations"]
    assert "notes" not in selected_names(None, False, select_resources)
    assert selected_names(None, True, select_resources)[:2] == ["contacts", "notes"]
    with pytest.raises(ConfigError, match="unknown resource"):
        selected_names(["contacts", "leads"], False, select_resources)


def test_location_lists_given_as_json_text_are_lists() -> None:
    assert _listed('["a1", "b2"]') == ["a1", "b2"]
    assert _listed("a1,b2") == "a1,b2"  # the config reader splits comma lists itself
    assert _listed(["a1"]) == ["a1"]
    with pytest.raises(ConfigError, match="not a JSON list"):
        _listed('["a1", ')


def test_a_resource_waits_for_every_earlier_one_of_the_same_extract() -> None:
    session: Any = Session(config=None, credentials=None, options=SyncOptions(),  # type: ignore[arg-type]
                           names=["contacts", "notes", "users", "deletions"], named=False)
    session.started |= {"contacts", "users"}
    waiting = session._wait_for("deletions")
    assert next(waiting) is None  # contacts and users still read
    session.finished.add("contacts")
    assert next(waiting) is None  # users still reads
    session.finished.add("users")
    assert list(waiting) == []  # notes never started in this extract: nothing to wait for
    assert list(session._wait_for("contacts")) == []  # the first one never waits
