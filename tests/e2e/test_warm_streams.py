"""While one resource is normalized and loaded (CPU work, no requests), the next resources'
backfill pages are already being fetched, so the location's request budget is not left idle.
Warming must never cost a request an unwarmed run would not make, and must stop when unused.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines import sync

from .conftest import Harness

RESOURCES = ["contacts", "conversations", "messages"]
EXPORT = "/conversations/messages/export"


@pytest.fixture
def warm(highlevel_sandbox_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    # 2,500 contacts: past this threshold contacts are loaded before conversations are read
    monkeypatch.setattr(sync, "LOAD_BATCH_ROWS", 2_000)
    sb = highlevel_sandbox_factory(contacts_per_location=(2_500,), conversations_per_location=(450,),
                                   messages_per_conversation=5, index_lag_s=0.5)
    return Harness(sb, tmp_path)


def test_a_backfill_fetches_messages_during_the_contacts_load_without_extra_requests(
    warm: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = warm
    caplog.set_level(logging.INFO, logger="highlevel.sync")
    result = h.run(resources=RESOURCES)
    assert result.ok, result.locations[0].error
    log = h.sb.requests()
    conversations = [r for r in log if r["path"] == "/conversations/search"]
    exports = [r for r in log if r["path"] == EXPORT]
    # unwarmed, the export would start only once messages are extracted, after conversations
    started = min(rec.created for rec in caplog.records if rec.getMessage().endswith("extracting conversations"))
    assert exports[0]["ts"] < started
    messages = h.sb.truth(h.big, "messages")
    emails = sum(1 for m in messages if m.get("messageType") == "TYPE_EMAIL")
    expected = math.ceil((len(messages) - emails) / 500) + math.ceil(emails / 500)
    assert len(exports) == expected
    assert len(conversations) == math.ceil(450 / 100) + (1 if 450 % 100 == 0 else 0)
    loaded = [r[0] for r in h.query("select id from highlevel.messages order by id")]
    assert loaded == sorted(m["id"] for m in messages)
    assert [r[0] for r in h.query("select id from highlevel.conversations order by id")] == sorted(
        c["id"] for c in h.sb.truth(h.big, "conversations"))


def test_an_incremental_run_does_not_warm(warm: Harness) -> None:
    h = warm
    assert h.run(resources=RESOURCES).ok
    h.sb.update_contacts(h.big, 2_100)  # enough changed contacts to load before conversations
    h.sb.wait_for_index()
    h.sb.clear_requests()
    assert h.run(resources=RESOURCES).ok
    # a walk that stops at the cursor: one page per message pass, one conversations page
    assert len(h.sb.requests(EXPORT)) == 2
    assert len(h.sb.requests("/conversations/search")) == 1


def test_a_warm_stream_no_resource_takes_is_stopped(warm: Harness) -> None:
    h = warm
    # the token stops working once conversations are read: the location stops there
    h.sb.faults.fail_next(1, 401, "/conversations/search")
    result = h.run(resources=RESOURCES)
    assert "conversations" in result.locations[0].resource_errors
    assert "messages" not in result.locations[0].resource_errors  # never reached
    settled = len(h.sb.requests(EXPORT))
    time.sleep(1.0)
    assert len(h.sb.requests(EXPORT)) == settled  # the stream's thread is gone
    assert h.query("select count(*) from information_schema.tables where table_name = 'messages'") == [(0,)]
