"""Conversations that share the page-boundary millisecond all arrive (sandbox: strict startAfterDate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import Harness


def test_conversations_sharing_the_boundary_millisecond_are_all_loaded(
    highlevel_sandbox_factory: Any, tmp_path: Path
) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(300,), conversations_per_location=(250,), index_lag_s=0.2)
    h = Harness(sb, tmp_path)
    # pages hold 100: positions 90..119 of the newest-first order share one millisecond, so the
    # first page ends inside the tie; so does the second (190..204)
    tied = sb.tie_conversations(h.big, 90, 30) + sb.tie_conversations(h.big, 190, 15)
    result = h.run(resources=["conversations"])
    assert result.ok, [r.error for r in result.locations]
    loaded = [r[0] for r in h.query("select id from highlevel.conversations order by id")]
    assert loaded == sorted(c["id"] for c in sb.truth(h.big, "conversations"))
    assert set(tied) <= set(loaded)
    assert len(sb.requests("/conversations/search")) == 3  # ties cost no extra request
    assert result.locations[0].warnings == []
