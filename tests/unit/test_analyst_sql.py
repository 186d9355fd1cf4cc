"""The analyst layer's pure parts: column names and types of the wide views, dialect spellings."""

from __future__ import annotations

import duckdb
from dlt.common.normalizers.naming.snake_case import NamingConvention

from highlevel_sync.analyst.dialect import DUCKDB, POSTGRES
from highlevel_sync.analyst.wide import WideColumn, column_name, wide_columns

NAMING = NamingConvention()


def test_column_is_the_field_key_after_the_model_prefix_in_snake_case() -> None:
    assert column_name("contact.lead_score", NAMING) == "cf_lead_score"
    assert column_name("opportunity.Deal Source", NAMING) == "cf_deal_source"
    assert column_name("contact.leadScore", NAMING) == "cf_lead_score"
    assert column_name("no_prefix", NAMING) == "cf_no_prefix"
    assert len(column_name("contact." + "x" * 100, NamingConvention(max_length=63))) == 63


def test_a_key_several_locations_share_is_one_column_typed_by_data_type() -> None:
    columns = wide_columns([("a1", "contact.budget", "MONETORY"), ("b1", "contact.budget", "MONETORY"),
                            ("a2", "contact.visit", "DATE"), ("a3", "contact.tags", "CHECKBOX"),
                            ("a4", "contact.services", "MULTIPLE_OPTIONS"), ("a5", "contact.size", "NUMERICAL"),
                            ("a6", "contact.note", "LARGE_TEXT"), ("a7", "contact.mixed", "NUMERICAL"),
                            ("b7", "contact.mixed", "TEXT")], NAMING)
    assert columns == [WideColumn("cf_budget", "number", ("a1", "b1")), WideColumn("cf_mixed", "text", ("a7", "b7")),
                       WideColumn("cf_note", "text", ("a6",)), WideColumn("cf_services", "list", ("a4",)),
                       WideColumn("cf_size", "number", ("a5",)), WideColumn("cf_tags", "list", ("a3",)),
                       WideColumn("cf_visit", "timestamp", ("a2",))]


def test_duckdb_json_list_keeps_lists_and_wraps_scalars() -> None:
    rows = "(values ('[\"a\",\"b\"]', null), (null, 'c'), (null, null)) v(j, t)"
    sql = f"select {DUCKDB.json_list('j', 't')} from {rows}"
    assert duckdb.sql(sql).fetchall() == [('["a","b"]',), ('["c"]',), (None,)]


def test_postgres_spellings() -> None:
    assert POSTGRES.median("x") == "percentile_cont(0.5) WITHIN GROUP (ORDER BY x)"
    assert POSTGRES.pick("j", "c", is_json=True) == "(array_agg(j) FILTER (WHERE c))[1]"
    assert POSTGRES.json_list("j", "t") == "COALESCE(CAST(j AS JSONB), jsonb_build_array(t))"
