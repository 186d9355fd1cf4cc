"""dlt 1.31's extract metrics and nested tables written at extract (sources/highlevel/dltcompat.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from dlt.common.schema import Schema
from dlt.common.schema.utils import new_table
from dlt.extract.extract import Extract

from sources.highlevel.dltcompat import allow_nested_arrow_tables


def test_nested_tables_borrow_their_roots_resource_only_while_metrics_are_computed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def metrics(self: Any, load_id: str, source: Any) -> str:  # stands in for dlt's, which reads `resource`
        seen.update({name: table.get("resource") for name, table in source.schema.tables.items()})
        return "metrics"

    monkeypatch.setattr(Extract, "_compute_metrics", metrics)
    assert allow_nested_arrow_tables()
    wrapped = Extract._compute_metrics
    assert allow_nested_arrow_tables() and Extract._compute_metrics is wrapped  # wrapped once

    schema = Schema("highlevel")
    schema.update_table(new_table("contacts", resource="contacts"))
    schema.update_table(new_table("contacts__tags", parent_table_name="contacts"))
    schema.update_table(new_table("contacts__tags__more", parent_table_name="contacts__tags"))
    assert wrapped(None, "load-1", SimpleNamespace(schema=schema)) == "metrics"  # type: ignore[arg-type]
    assert seen["contacts__tags"] == seen["contacts__tags__more"] == "contacts"
    assert all("resource" not in schema.tables[t] for t in ("contacts__tags", "contacts__tags__more"))
    assert schema.tables["contacts"]["resource"] == "contacts"


def test_a_dlt_without_the_method_is_reported_not_patched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(Extract, "_compute_metrics")
    assert allow_nested_arrow_tables() is False
    assert not hasattr(Extract, "_compute_metrics")
