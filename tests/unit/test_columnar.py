"""Rows become the Arrow table dlt's JSON normalizer would have made of them, or stay rows.

dlt's own relational normalizer is the oracle for names, flattening and column order; the types and
hints are those its schema gives the same values.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import dlt
import pyarrow as pa
import pytest
from dlt.common.configuration.container import Container
from dlt.common.data_types.type_helpers import coerce_value, py_type_to_sc_type
from dlt.common.json import json
from dlt.common.normalizers.json.relational import DataItemNormalizer
from dlt.common.schema import Schema
from dlt.common.schema.utils import new_table
from dlt.extract.items import DataItemWithMeta
from hypothesis import given, settings
from hypothesis import strategies as st

from sources.highlevel.columnar import KnownSchema, stamp_load_id, to_arrow_items
from sources.highlevel.normalize import custom_value_row, custom_value_tombstone
from sources.highlevel.resources.contacts import contact_hints, custom_values_hints
from sources.highlevel.resources.opportunities import OPPORTUNITY_COLUMNS

PLAIN = dlt.mark.make_hints(write_disposition="merge", primary_key="id",
                            columns={"id": {"data_type": "text", "nullable": False},
                                     "meta": {"data_type": "json"},
                                     "date_updated": {"data_type": "timestamp", "timezone": True}})
PLAIN_MERGE = dlt.mark.make_hints(write_disposition="merge")
DLT_COLUMNS = ["_dlt_load_id", "_dlt_id"]


def convert(rows: Any, hints: Any = PLAIN, known: KnownSchema | None = None, load_id: str | None = "load-1") -> Any:
    """The one Arrow item `rows` (or a hinted item) become, failing if they stay rows."""
    out = to_arrow_items("things", rows, hints, known, load_id=load_id)
    assert len(out) == 1 and isinstance(out[0], DataItemWithMeta) and isinstance(out[0].data, pa.Table), out
    return out[0]


def table(rows: list[dict[str, Any]], **kw: Any) -> pa.Table:
    return convert(rows, **kw).data


def stays_rows(item: Any, hints: Any = PLAIN, known: KnownSchema | None = None) -> bool:
    out = to_arrow_items("things", item, hints, known, load_id="load-1")
    return len(out) == 1 and out[0] is item


ARROW_TO_DLT = {pa.string(): "text", pa.int64(): "bigint", pa.float64(): "double", pa.bool_(): "bool",
                pa.timestamp("us", tz="UTC"): "timestamp"}


def stored(data_type: str, value: Any) -> Any:
    """What the normalizer stores for `value` in a column of `data_type` (its own coercion)."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value)
    return coerce_value(data_type, py_type_to_sc_type(type(value)), value)  # type: ignore[arg-type]


def oracle(rows: list[dict[str, Any]], max_nesting: int = 2) -> tuple[list[str], list[dict[str, Any]]]:
    """dlt's relational normalizer on the same rows: column order of first non-null value, root rows."""
    schema = Schema("oracle")
    DataItemNormalizer.update_normalizer_config(schema, {"max_nesting": max_nesting})
    schema.update_normalizers()
    order: list[str] = []
    out = []
    for row in rows:
        for (table, _, _), flat in schema.normalize_data_item(row, "load-1", "things"):
            if table != "things":
                continue
            order.extend(k for k, v in flat.items() if v is not None and k not in order)
            out.append({k: v for k, v in flat.items() if not k.startswith("_dlt")})
    return order, out


# -- names, flattening, order -------------------------------------------------------------------

def test_keys_are_named_and_flattened_in_the_normalizers_order() -> None:
    dnd = {"SMS": {"status": "active"}, "WhatsApp": {"status": "inactive"}}
    rows: list[dict[str, Any]] = [
        {"firstName": "Ava", "dndSettings": dnd, "attributionSource": {"utmSource": "google"}, "lastName": None,
         "": "blank"},
        {"lastName": "Khan", "id": "c2"}]
    got = table(rows, hints=dlt.mark.make_hints())
    assert got.column_names == ["first_name", "_empty", "attribution_source__utm_source",
                                "dnd_settings__whats_app__status", "dnd_settings__sms__status", *DLT_COLUMNS,
                                "last_name", "id"]
    order, _ = oracle(rows)
    assert got.column_names == order  # dlt adds its two columns to the first row too
    assert got.column("dnd_settings__sms__status").to_pylist() == ["active", None]


def test_hint_columns_lead_even_without_values() -> None:
    got = table([{"id": "a", "someThing": 1}])
    assert got.column_names == ["id", "meta", "date_updated", "some_thing", *DLT_COLUMNS]
    assert got.column("meta").null_count == 1 and got.schema.field("meta").type == pa.string()


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**62), 2**62), st.text(max_size=5),
                    st.floats(allow_nan=False, allow_infinity=False), st.datetimes(timezones=st.just(UTC)))
leaves = st.one_of(scalars, st.lists(st.integers(0, 9), max_size=2))  # a list: child rows, or JSON when deep
keys = st.sampled_from(["id", "name", "firstName", "FirstName", "dndSettings", "SMS", "WhatsApp", "a1", "x-y",
                        "utm_source", "Ünïcode"])
records = st.recursive(st.dictionaries(keys, leaves, max_size=4),
                       lambda inner: st.dictionaries(keys, st.one_of(leaves, inner), max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(records, min_size=1, max_size=4))
def test_names_and_flattening_match_dlt_for_any_nesting(rows: list[dict[str, Any]]) -> None:
    item = [dict(r) for r in rows]
    out = to_arrow_items("things", item, dlt.mark.make_hints(), load_id="load-1")
    if out[0] is item:  # child rows or a variant column: the normalizer's job, and the oracle's
        return
    got = out[0].data
    order, flat = oracle(rows)
    assert got.column_names == order
    for name in got.column_names:
        if name.startswith("_dlt"):
            continue
        data_type = ARROW_TO_DLT[got.schema.field(name).type]
        expected = [stored(data_type, r.get(name)) for r in flat]
        assert got.column(name).to_pylist() == expected, name


def test_dicts_past_the_nesting_limit_and_json_columns_stay_json_text() -> None:
    deep = {"a": {"b": {"c": {"d": 1, "when": datetime(2024, 1, 1, tzinfo=UTC)}}}}
    got = table([{"id": "x", "meta": {"nested": {"kept": True}}, **deep}])
    assert got.column("meta").to_pylist() == ['{"nested":{"kept":true}}']
    assert got.column("a__b__c").to_pylist() == [json.dumps(deep["a"]["b"]["c"])]
    order, _ = oracle([{"id": "x", **deep}])
    assert "a__b__c" in order


# -- what stays on the JSON path ------------------------------------------------------------------

def test_empty_lists_vanish_and_json_columns_keep_their_lists() -> None:
    got = table([{"id": "a", "tags": []}])
    assert "tags" not in got.column_names
    assert table([{"id": "a", "meta": ["kept"]}]).column("meta").to_pylist() == ['["kept"]']  # json column


def test_upsert_contracts_and_lists_of_lists_stay_rows() -> None:
    upsert = dlt.mark.make_hints(write_disposition={"disposition": "merge", "strategy": "upsert"}, primary_key="id")
    assert stays_rows([{"id": "a"}], upsert)
    assert stays_rows([{"id": "a"}], dlt.mark.make_hints(schema_contract="freeze"))
    assert stays_rows([{"id": "a", "grid": [[1, 2], [3]]}])
    # nested rows of a table whose write disposition only the resource knows: root ids unknown
    assert stays_rows([{"id": "a", "tags": ["vip"]}], dlt.mark.make_hints(primary_key="id"))


@pytest.mark.parametrize("item", [[], pa.table({"id": ["a"]}), {"id": "a"},
                                  dlt.mark.with_table_name([{"id": "a"}], "other")])
def test_what_is_not_a_list_of_rows_passes_through(item: Any) -> None:
    assert stays_rows(item)


def test_values_the_normalizer_would_put_in_variant_columns_stay_rows() -> None:
    assert stays_rows([{"id": "a", "n": 1}, {"id": "b", "n": 2.5}])  # bigint column, then a fraction
    assert stays_rows([{"id": "a", "n": 1}, {"id": "b", "n": True}])
    assert stays_rows([{"id": "a", "meta": "not json"}])
    assert stays_rows([{"id": "a", "when": "2024-01-01T00:00:00Z"}, {"id": "b", "when": "soon"}])
    assert stays_rows([{"id": None}])  # a null in a non-null key: the normalizer's error, not ours



def test_two_keys_that_make_one_column_keep_the_rows_that_have_the_second() -> None:
    known = KnownSchema()
    assert table([{"id": "a", "fooBar": 1}], known=known).column("foo_bar").to_pylist() == [1]
    assert stays_rows([{"id": "b", "foo_bar": None}], known=known)  # the normalizer would keep the null
    assert table([{"id": "c", "fooBar": 3}], known=known).column("foo_bar").to_pylist() == [3]
    assert stays_rows([{"id": "a", "x__y": 1, "x": {"y": 2}}])  # a key, and a nested dict's key


# -- types ----------------------------------------------------------------------------------------

def test_python_values_get_the_normalizers_types() -> None:
    got = table([{"id": "a", "n": 1, "f": 1.5, "b": False, "s": "x", "date_updated": datetime(2024, 1, 1)},
                 {"id": "b", "n": 2, "f": 3, "b": True, "s": "", "date_updated": None}])
    types = {f.name: f.type for f in got.schema}
    assert (types["n"], types["f"], types["b"], types["s"]) == (pa.int64(), pa.float64(), pa.bool_(), pa.string())
    assert got.column("f").to_pylist() == [1.5, 3.0]  # an int in a double column, as dlt coerces it
    assert got.column("s").to_pylist() == ["x", ""]


def test_timestamps_are_utc_instants() -> None:
    local = datetime(2024, 5, 2, 15, 41, 12, 345000, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    got = table([{"id": "a", "date_updated": local, "seen": "2024-05-02T06:11:12.345-04:00"},
                 {"id": "b", "date_updated": datetime(2024, 5, 2, 10, 11, 12, 345000),  # naive: UTC
                  "seen": "2024-05-02T10:11:12.345Z"}])
    instant = datetime(2024, 5, 2, 10, 11, 12, 345000, tzinfo=UTC)
    assert got.schema.field("date_updated").type == pa.timestamp("us", tz="UTC")
    assert got.column("date_updated").to_pylist() == [instant, instant]
    assert got.column("seen").to_pylist() == [instant, instant]  # an ISO string starts a timestamp column
    hinted_text = dlt.mark.make_hints(columns={"seen": {"data_type": "text"}})
    assert table([{"seen": "2024-05-02T10:11:12Z"}], hints=hinted_text).column("seen").to_pylist() == [
        "2024-05-02T10:11:12Z"]


def test_known_types_win_and_a_run_keeps_the_types_it_chose() -> None:
    schema = Schema("highlevel")
    schema.update_table({"name": "things", "columns": {"count": {"name": "count", "data_type": "bigint"},
                                                       "label": {"name": "label", "data_type": "text"}}})
    known = KnownSchema(schema)
    got = table([{"id": "a", "count": "7", "label": 3, "ratio": 1}], known=known)
    assert got.column("count").to_pylist() == [7] and got.column("label").to_pylist() == ["3"]
    assert table([{"id": "b", "ratio": 2.0}], known=known).column("ratio").to_pylist() == [2]  # still bigint
    assert stays_rows([{"id": "c", "ratio": 2.5}], known=known)
    assert KnownSchema(schema).columns("things").keys() == {"count", "label"}  # the snapshot is not changed


# -- hints, keys, hard deletes ------------------------------------------------------------------------

def test_variant_items_keep_their_table_keys_and_hard_delete_columns() -> None:
    hints = custom_values_hints("contact_custom_field_values", "contact_id")
    stamp = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [{**custom_value_row("contact_id", "c1", "loc", "f1", ["a", "b"], {"dataType": "CHECKBOX",
                                                                            "fieldKey": "contact.x"}),
             "date_updated": stamp},
            custom_value_tombstone("contact_id", "c2", "loc")]
    item = convert(dlt.mark.with_hints(rows, hints, create_table_variant=True))
    got, meta = item.data, item.meta
    assert meta.create_table_variant and meta.hints["table_name"] == "contact_custom_field_values"
    assert meta.hints["primary_key"] == ["contact_id", "field_id"] and meta.hints["merge_key"] == "contact_id"
    columns = meta.hints["columns"]
    assert columns["_tombstone"]["hard_delete"] and columns["date_updated"]["dedup_sort"] == "desc"
    assert columns["_dlt_id"] == {"name": "_dlt_id", "data_type": "text", "nullable": False, "unique": True,
                                  "row_key": True}
    assert got.column("_tombstone").to_pylist() == [None, True]
    assert got.column("value_json").to_pylist() == ['["a","b"]', None]
    assert got.column("field_id").to_pylist() == ["f1", ""]
    assert [f.name for f in got.schema if not f.nullable] == ["contact_id", "location_id", "field_id",
                                                               "_dlt_load_id", "_dlt_id"]


def test_hard_delete_rows_become_arrow_rows_with_the_flag() -> None:
    hints = dlt.mark.make_hints(table_name="opportunities", write_disposition="merge", primary_key="id",
                                columns=OPPORTUNITY_COLUMNS)
    rows = [{"id": "o1", "locationId": "loc", "_deleted": True}]
    got = convert(dlt.mark.with_hints(rows, hints, create_table_variant=True)).data
    assert got.column_names[:3] == ["id", "location_id", "created_at"]
    assert got.column("_deleted").to_pylist() == [True] and got.column("id").to_pylist() == ["o1"]


def test_plain_rows_add_only_columns_to_the_resources_hints() -> None:
    item = convert([{"id": "a", "extra": {"deep": {"deeper": {"x": 1}}}}])
    assert not item.meta.create_table_variant and "table_name" not in item.meta.hints
    assert set(item.meta.hints["columns"]) == {"_dlt_load_id", "_dlt_id", "extra__deep__deeper"}
    assert item.meta.hints["columns"]["extra__deep__deeper"]["data_type"] == "json"


def test_row_ids_are_unique_and_the_load_id_is_given_or_left_to_dlt() -> None:
    rows = [{"id": str(i)} for i in range(500)]
    got = table(rows)
    assert len(set(got.column("_dlt_id").to_pylist())) == 500
    assert set(got.column("_dlt_load_id").to_pylist()) == {"load-1"}
    later = table(rows, load_id=None)  # read ahead of its extract: stamped at extract (stamp_load_id)
    assert later.column("_dlt_load_id").null_count == 500 and not later.schema.field("_dlt_load_id").nullable
    assert set(stamp_load_id(later, "load-2").column("_dlt_load_id").to_pylist()) == {"load-2"}
    assert stamp_load_id(got, "load-2") is got  # a table that has its load id keeps it


def test_dlts_json_hint_warning_is_dropped_for_converted_resources_only(caplog: pytest.LogCaptureFixture) -> None:
    convert([{"id": "a"}])
    message = ("In resource: {}, when merging arrow schema with dlt schema, several column hints were different. "
               "dlt schema hints were kept")
    dlt_logger = logging.getLogger("dlt")
    # a CLI test run in this process may have quietened dlt's logger: only our filter is under test here
    others = [f for f in dlt_logger.filters if type(f).__name__ != "_ArrowHintWarning"]
    for other in others:
        dlt_logger.removeFilter(other)
    with caplog.at_level(logging.WARNING, logger="dlt"):
        logging.getLogger("dlt").warning(message.format("things"))
        logging.getLogger("dlt").warning(message.format("somebody_else"))
    for other in others:
        dlt_logger.addFilter(other)
    assert [r.getMessage()[:30] for r in caplog.records] == ["In resource: somebody_else, wh"]


# -- nested tables ----------------------------------------------------------------------------------

def oracle_tables(rows: list[dict[str, Any]], max_nesting: int = 2,
                  merge: bool = True) -> dict[str, tuple[list[str], list[dict[str, Any]]]]:
    """dlt's normalizer on the same rows, every table: (column order of first non-null value, rows)."""
    schema = Schema("oracle")
    DataItemNormalizer.update_normalizer_config(schema, {"max_nesting": max_nesting})
    schema.update_normalizers()
    tables: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
    # the normalizer asks the destination which merge strategy a merge table gets: DuckDB's
    with Container().injectable_context(dlt.destinations.duckdb().capabilities()):
        if merge:
            schema.update_table(new_table("things", write_disposition="merge"))
            schema.update_normalizers()  # a normalizer reads its propagation config when it is made
        for row in rows:
            for (name, _, _), flat in schema.normalize_data_item(row, "load-1", "things"):
                order, out = tables.setdefault(name, ([], []))
                order.extend(k for k, v in flat.items() if v is not None and k not in order)
                out.append(flat)
    return tables


def by_path(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Rows with dlt's ids replaced by where the row sits (root row number, then table and list index),
    so two loads with different random root ids compare equal when their structure is."""
    label: dict[str, str] = {}
    out: dict[str, list[dict[str, Any]]] = {}
    for name, rows in tables.items():  # parents come before their children
        for number, row in enumerate(rows):
            parent = row.get("_dlt_parent_id")
            here = f"{label[parent]}/{name}[{row['_dlt_list_idx']}]" if parent else f"row{number}"
            label[row["_dlt_id"]] = here
        out[name] = sorted(({**row, **{k: label[row[k]] for k in ("_dlt_id", "_dlt_parent_id", "_dlt_root_id")
                                       if k in row}} for row in rows), key=lambda r: r["_dlt_id"])
    return out


def converted_tables(rows: list[dict[str, Any]], hints: Any) -> dict[str, pa.Table]:
    out = to_arrow_items("things", [dict(r) for r in rows], hints, load_id="load-1")
    assert all(isinstance(o, DataItemWithMeta) and isinstance(o.data, pa.Table) for o in out), out
    names = ["things", *(o.meta.hints["table_name"] for o in out[1:])]
    return dict(zip(names, (o.data for o in out), strict=True))


def test_lists_become_nested_tables_with_dlts_keys() -> None:
    rows = [{"id": "a", "tags": ["vip", "new"], "parts": {"items": [{"sku": 1, "opts": ["x"]}, {"sku": 2}]}},
            {"id": "b", "tags": ["vip"]}, {"id": "c"}]
    got = converted_tables(rows, PLAIN)
    assert list(got) == ["things", "things__tags", "things__parts__items", "things__parts__items__opts"]
    tags = got["things__tags"]
    assert tags.column_names == ["value", "_dlt_root_id", "_dlt_parent_id", "_dlt_list_idx", "_dlt_id"]
    root_ids = dict(zip(got["things"].column("id").to_pylist(), got["things"].column("_dlt_id").to_pylist(),
                        strict=True))
    assert tags.column("_dlt_parent_id").to_pylist() == [root_ids["a"], root_ids["a"], root_ids["b"]]
    assert tags.column("_dlt_root_id").to_pylist() == tags.column("_dlt_parent_id").to_pylist()
    assert tags.column("_dlt_list_idx").to_pylist() == [0, 1, 0]
    opts = got["things__parts__items__opts"]
    items = got["things__parts__items"]
    assert opts.column("_dlt_parent_id").to_pylist() == [items.column("_dlt_id")[0].as_py()]
    assert opts.column("_dlt_root_id").to_pylist() == [root_ids["a"]]  # the root's id, two levels down
    assert [f.name for f in opts.schema if f.nullable] == ["value"]


def test_nested_tables_match_dlts_normalizer_columns_rows_and_ids() -> None:
    rows = [{"id": "a", "tags": [{"tag": "vip", "contactId": "a"}, {"tag": "x"}], "nums": [1, None, 3],
             "deep": {"list": [{"k": {"v": 1}, "inner": [True]}]}},
            {"id": "b", "tags": [{"tag": "y", "extra": 2.5}], "nums": []}]
    ours = converted_tables(rows, PLAIN_MERGE)
    theirs = oracle_tables(rows)
    assert list(ours) == list(theirs)
    for name, (order, _) in theirs.items():
        assert ours[name].column_names == order, name
    expected = by_path({name: out for name, (_, out) in theirs.items()})
    actual = by_path({name: t.to_pylist() for name, t in ours.items()})
    for name, rows_ in expected.items():
        assert [{k: v for k, v in r.items() if v is not None} for r in actual[name]] == \
               [{k: v for k, v in r.items() if v is not None} for r in rows_], name


@settings(max_examples=150, deadline=None)
@given(st.lists(records, min_size=1, max_size=4))
def test_nested_tables_match_dlt_for_any_nesting(rows: list[dict[str, Any]]) -> None:
    item = [dict(r) for r in rows]
    out = to_arrow_items("things", item, PLAIN_MERGE, load_id="load-1")
    if out[0] is item:  # a variant column or a list of lists: the normalizer's job
        return
    theirs = oracle_tables(rows)
    ours = {"things": out[0].data, **{o.meta.hints["table_name"]: o.data for o in out[1:]}}
    assert sorted(ours) == sorted(theirs)
    for name, (order, _) in theirs.items():
        assert ours[name].column_names == order, name
    expected = by_path({name: out_ for name, (_, out_) in theirs.items()})
    actual = by_path({name: ours[name].to_pylist() for name in theirs})
    for name, rows_ in expected.items():
        types = {f.name: ARROW_TO_DLT[f.type] for f in ours[name].schema}
        coerced = [{k: (v if k.startswith("_dlt") else stored(types[k], v)) for k, v in r.items() if v is not None}
                   for r in rows_]
        assert [{k: v for k, v in r.items() if v is not None} for r in actual[name]] == coerced, name


def test_contacts_and_their_tags_take_the_arrow_path() -> None:
    contacts = [{"id": "c1", "locationId": "loc", "tags": [{"tag": "vip", "contact_id": "c1", "location_id": "loc"}]},
                {"id": "c2", "locationId": "loc", "tags": []}]
    out = to_arrow_items("contacts", dlt.mark.with_hints(contacts, contact_hints(), create_table_variant=True),
                         load_id="load-1")
    assert [o.meta.hints["table_name"] for o in out] == ["contacts", "contacts__tags"]
    tags = out[1]
    assert tags.meta.create_table_variant and tags.meta.hints["parent_table_name"] == "contacts"
    assert tags.data.column_names == ["tag", "contact_id", "location_id", "_dlt_root_id", "_dlt_parent_id",
                                      "_dlt_list_idx", "_dlt_id"]
    assert tags.meta.hints["columns"]["_dlt_root_id"]["root_key"] and "_dlt_load_id" not in tags.data.column_names
