"""Which resources a run reads: notes only when asked for, always in dependency order."""

from __future__ import annotations

import pytest

from sources.highlevel import select_resources
from sources.highlevel.config import validate
from sources.highlevel.errors import ConfigError
from sources.highlevel.settings import DEFAULT_NOTES_MAX_REQUESTS


def test_notes_are_opt_in_and_tasks_are_default() -> None:
    default = select_resources(None)
    assert "tasks" in default and "notes" not in default and default[-1] == "deletions"


def test_selection_follows_dependency_order_not_the_callers() -> None:
    assert select_resources(["deletions", "notes", "contacts"]) == ["contacts", "notes", "deletions"]
    with pytest.raises(ConfigError, match="notes"):  # the error lists every resource, opt-in ones too
        select_resources(["note"])


def test_notes_config() -> None:
    config = validate({})
    assert config.sync_notes is False and config.notes_max_requests == DEFAULT_NOTES_MAX_REQUESTS
    config = validate({"sync_notes": "true", "notes_max_requests": "50"})
    assert config.sync_notes is True and config.notes_max_requests == 50
    with pytest.raises(ConfigError, match="notes_max_requests"):
        validate({"notes_max_requests": -1})
