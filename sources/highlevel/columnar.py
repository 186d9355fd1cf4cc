"""Arrow tables instead of row dicts, so dlt's row-by-row JSON normalizer is skipped, loading the
tables, columns, types, keys and merge semantics that normalizer would have produced.

dlt writes Arrow items to parquet at extract and loads them nearly untouched, so what its
relational normalizer does per row is redone here per column: keys through the schema's naming
convention, nested dicts flattened with `__` up to the nesting limit, lists turned into nested
tables (`_dlt_parent_id`, `_dlt_list_idx`, the root's `_dlt_id` as `_dlt_root_id` for merge
tables, row ids hashed from the parent's as dlt does), dicts and lists of json columns kept as
JSON text, ISO strings detected as timestamps, values coerced to a known column type with dlt's
own coercions, `_dlt_id` and `_dlt_load_id` added. Column order follows the normalizer too (hints
first, then first non-null appearance), so a new table looks the same.

Nested tables reach dlt as Arrow items of their own, yielded after their parent's, with the
nested table's hints (`parent_table_name`). dlt 1.31 loads them as it loads its own nested tables
(the merge replaces a record's child rows through `_dlt_root_id`), but its extract metrics need a
small fix for them: see `dltcompat.py`. Anything this module cannot reproduce exactly (variant
columns, lists of lists, other types, hashed row ids of upsert/scd2) is returned unchanged and
takes the JSON path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.data_types.type_helpers import coerce_value, py_type_to_sc_type
from dlt.common.json import json
from dlt.common.normalizers.json.helpers import get_nested_row_hash
from dlt.common.normalizers.naming import NamingConvention
from dlt.common.normalizers.naming.snake_case import NamingConvention as SnakeCase
from dlt.common.normalizers.utils import generate_dlt_ids
from dlt.common.schema import Schema
from dlt.common.schema.utils import autodetect_sc_type, get_nested_tables, standard_type_detections
from dlt.extract.hints import HintsMeta
from dlt.extract.items import DataItemWithMeta

from . import dltcompat

logger = logging.getLogger(__name__)

__all__ = ["LOAD_ID_CONFIG", "KnownSchema", "NotColumnar", "stamp_load_id", "to_arrow_items"]

# dlt's switch to fill `_dlt_load_id` of every Arrow item at extract. The sync leaves it off: it
# would add the column to nested tables too, which have none on the JSON path; `stamp_load_id`
# fills root tables' instead
LOAD_ID_CONFIG = "normalize.parquet_normalizer.add_dlt_load_id"
# the source's max_table_nesting (sources/highlevel/__init__.py), for a dataset without a schema yet
DEFAULT_MAX_NESTING = 2
ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(), "bigint": pa.int64(), "double": pa.float64(), "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"), "json": pa.string(),
}
PY_TYPES: dict[str, type] = {"text": str, "bigint": int, "double": float, "bool": bool, "timestamp": datetime}
# the schema's default `not_null` hint (relational normalizer)
NOT_NULL = frozenset({"_dlt_id", "_dlt_root_id", "_dlt_parent_id", "_dlt_list_idx", "_dlt_load_id"})
# the hints dlt's schema gives its own columns (the normalizer infers them; Arrow items must say so)
ROW_ID_HINT = {"data_type": "text", "nullable": False, "unique": True, "row_key": True}
NESTED_KEY_HINTS: dict[str, dict[str, Any]] = {
    "_dlt_root_id": {"data_type": "text", "nullable": False, "root_key": True},
    "_dlt_parent_id": {"data_type": "text", "nullable": False, "parent_key": True},
    "_dlt_list_idx": {"data_type": "bigint", "nullable": False},
    "_dlt_id": ROW_ID_HINT,
}
# row ids of these merge strategies are key or row hashes, not random: left to the normalizer
HASHED_ROW_IDS = frozenset({"upsert", "insert-only", "cdc", "scd2"})
# the name of a column two different keys of one table normalize to
AMBIGUOUS = ("", "")
ARROW_HINT_WARNING = "when merging arrow schema with dlt schema, several column hints were different"


class NotColumnar(Exception):
    """The item needs something only dlt's JSON normalizer does; it takes that path unchanged."""


class KnownSchema:
    """The dataset's schema as of a snapshot, plus the column types this run's conversions chose.

    Reading threads convert pages of the same table independently; a column typed by one page must
    keep that type in the next (dlt would otherwise retype it silently at extract). Build it in the
    thread that owns the pipeline (it clones `schema`), then share it: it is thread-safe.
    """

    def __init__(self, schema: Schema | None = None, max_nesting: int = DEFAULT_MAX_NESTING,
                 default_merge_strategy: str | None = "delete-insert") -> None:
        self._schema = schema.clone() if schema is not None else None
        # the destination's first merge strategy, dlt's default for a merge table; None: it cannot merge
        self.default_merge_strategy = default_merge_strategy
        self.naming: NamingConvention = self._schema.naming if self._schema is not None else SnakeCase()
        self._max_nesting = max_nesting
        self.detections = standard_type_detections()
        if self._schema is not None:  # the normalizer's own defaults when the schema sets nothing
            normalizer: Mapping[str, Any] = self._schema._normalizers_config.get("json") or {}
            config: Mapping[str, Any] = normalizer.get("config") or {}
            self._max_nesting = int(config.get("max_nesting", 1000))
            self.detections = list(self._schema.settings.get("detections") or [])
        self._chosen: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        # normalized names per table, path and key: this runs per value, so names are computed once
        self._names: dict[tuple[str, tuple[str, ...]], dict[str, tuple[str, str]]] = {}
        self._sources: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {}

    def table(self, name: str) -> Mapping[str, Any] | None:
        return self._schema.tables.get(name) if self._schema is not None else None

    def has_root_key(self, root: str) -> bool:
        """A nested table of `root` has `_dlt_root_id` already (dlt then keeps propagating it)."""
        if self._schema is None or root not in self._schema.tables:
            return False
        return any(c.get("root_key") for t in get_nested_tables(self._schema.tables, root)
                   for c in t.get("columns", {}).values())

    def max_nesting(self, table: Mapping[str, Any] | None) -> int:
        x_normalizer: Mapping[str, Any] = (table or {}).get("x-normalizer") or {}
        nesting = x_normalizer.get("max_nesting")
        return int(nesting) if nesting is not None else self._max_nesting

    def preferred_type(self, column: str) -> str | None:
        return self._schema.get_preferred_type(column) if self._schema is not None else None

    def columns(self, table: str) -> dict[str, dict[str, Any]]:
        """Complete columns: the snapshot's, then those conversions chose since."""
        stored = self.table(table)
        known = {n: dict(c) for n, c in (stored or {}).get("columns", {}).items() if c.get("data_type")}
        with self._lock:
            for name, column in self._chosen.get(table, {}).items():
                known.setdefault(name, column)
        return known

    def choose(self, table: str, columns: Mapping[str, Mapping[str, Any]]) -> None:
        """Record new columns' types; a type another thread chose first stays."""
        with self._lock:
            chosen = self._chosen.setdefault(table, {})
            for name, column in columns.items():
                chosen.setdefault(name, dict(column))

    def name_cache(self, table: str, path: tuple[str, ...]) -> dict[str, tuple[str, str]]:
        """Normalized (fragment, column name) per key of a dict at `path` in `table`'s rows."""
        cache = self._names.get((table, path))
        if cache is None:
            if len(self._names) > 10_000:  # paths built from data (ids as keys) must not grow it forever
                self._names.clear()
                self._sources.clear()
            cache = self._names[(table, path)] = {}
        return cache

    def name(self, table: str, path: tuple[str, ...], key: Any) -> tuple[str, str]:
        """Names a new key, or AMBIGUOUS when another key of the table made that column first.

        The normalizer keeps the last of two such values in a row, even a null. Rows with the second
        key stay rows; rows with only the first are unaffected.
        """
        if not isinstance(key, str):
            raise NotColumnar(f"key {key!r} is not a string")
        fragment = self.naming.normalize_path(key) if key and not key.isspace() else "_empty"
        name = self.naming.shorten_fragments(*path, fragment) if path else fragment
        first = self._sources.setdefault(table, {}).setdefault(name, (path, key))
        named = (fragment, name) if first == (path, key) else AMBIGUOUS
        self.name_cache(table, path)[key] = named
        return named


def to_arrow_items(
    resource: str,
    item: Any,
    resource_hints: Mapping[str, Any] | None = None,
    known: KnownSchema | None = None,
    *,
    load_id: str | None = None,
) -> list[Any]:
    """What to yield instead of `item`, one item exactly as the resource `resource` yields it.

    `item` is a list of row dicts for the resource's own table (whose hints, a `make_hints` result
    or the resource's `_hints`, are `resource_hints`) or a `dlt.mark.with_hints` wrapper of one.
    Returns `[item]` unchanged when it cannot be loaded identically as Arrow, else the table's Arrow
    item followed by one per nested table its rows fill. Without `load_id` (rows read before their
    extract) the root table's `_dlt_load_id` is null until `stamp_load_id` fills it at extract.
    """
    hints: Mapping[str, Any]
    if isinstance(item, DataItemWithMeta):
        if not isinstance(item.meta, HintsMeta) or not item.meta.hints:
            return [item]
        hints, variant, rows = item.meta.hints, bool(item.meta.create_table_variant), item.data
    else:
        hints, variant, rows = resource_hints or {}, False, item
    table = hints.get("table_name") or (resource_hints or {}).get("table_name") or resource
    if not isinstance(rows, list) or not rows or not isinstance(table, str):
        return [item]  # Arrow already, a single row, an empty list (materializes a table) or dynamic
    known = known or KnownSchema()
    try:
        conversion = _Conversion(table, hints, known)
        arrow = conversion.run(rows, load_id)
        nested = conversion.run_nested()
    except NotColumnar as reason:
        logger.debug("%s: %d rows for %s take the JSON path: %s", resource, len(rows), table, reason)
        return [item]
    if nested and not dltcompat.allow_nested_arrow_tables():
        logger.debug("%s: %d rows for %s take the JSON path: nested tables need dlt's extract metrics wrapped",
                     resource, len(rows), table)
        return [item]
    for done in (conversion, *(child for child, _ in nested)):
        known.choose(done.name, done.chosen)
    _quiet_json_hint_warning(resource)
    logger.debug("%s: %d rows for %s as Arrow", resource, len(rows), table)
    if variant:
        out = [dlt.mark.with_hints(arrow, _with_columns(hints, conversion.extra_hints), create_table_variant=True)]
    else:  # the resource's own hints stay; only what Arrow cannot describe is added to them
        out = [dlt.mark.with_hints(arrow, dlt.mark.make_hints(columns=conversion.extra_hints))]
    for child, child_arrow in nested:
        logger.debug("%s: %d rows for %s as Arrow", resource, child_arrow.num_rows, child.name)
        # a variant of its own: the resource's hints (keys, disposition) are the root table's
        out.append(dlt.mark.with_hints(child_arrow, child.nested_hints(), create_table_variant=True))
    return out


def stamp_load_id(table: pa.Table, load_id: str) -> pa.Table:
    """`table` with its null `_dlt_load_id` (rows converted ahead of their extract) set to `load_id`."""
    index = table.schema.get_field_index("_dlt_load_id")
    if index < 0 or table.column(index).null_count == 0:
        return table
    return table.set_column(index, table.schema.field(index), pa.array([load_id] * table.num_rows, pa.string()))


def _with_columns(hints: Mapping[str, Any], extra: dict[str, dict[str, Any]]) -> Any:
    """The variant's own hints plus `extra` columns (fresh dicts: dlt annotates hints in place)."""
    columns = {name: dict(col) for name, col in (hints.get("original_columns") or hints.get("columns") or {}).items()}
    for name, col in extra.items():
        columns[name] = {**columns.get(name, {}), **col}
    keys = ("table_name", "parent_table_name", "write_disposition", "primary_key", "merge_key", "schema_contract",
            "table_format", "file_format", "references", "additional_table_hints")
    return dlt.mark.make_hints(columns=columns, **{k: hints[k] for k in keys if hints.get(k) is not None})


class _JsonValue:
    """Never the type of a value: json columns always take the coercing branch."""


class _Column:
    __slots__ = ("data_type", "name", "nullable", "pytype", "values")

    def __init__(self, name: str, data_type: str, nullable: bool) -> None:
        if data_type not in ARROW_TYPES:
            raise NotColumnar(f"column {name} has type {data_type}")
        self.name, self.data_type, self.nullable = name, data_type, nullable
        self.pytype: type = PY_TYPES.get(data_type, _JsonValue)
        self.values: list[Any] | None = None

    def coerce(self, value: Any) -> Any:
        """The value dlt's normalizer would store (with its own coercions); NotColumnar for a variant."""
        if self.pytype is _JsonValue and isinstance(value, dict | list):
            return json.dumps(value)  # what dlt's parquet writer stores for a json column
        try:
            coerced = coerce_value(self.data_type, py_type_to_sc_type(type(value)), value)  # type: ignore[arg-type]
        except Exception as exc:
            raise NotColumnar(f"{value!r} does not fit {self.name} ({self.data_type}): a variant column") from exc
        if self.pytype is _JsonValue:
            if not isinstance(coerced, dict | list):
                raise NotColumnar(f"json column {self.name} got {type(value).__name__}")
            return json.dumps(coerced)
        if not isinstance(coerced, self.pytype) or (self.pytype is int and isinstance(coerced, bool)):
            raise NotColumnar(f"{value!r} does not fit {self.name} ({self.data_type})")
        return coerced


class _Conversion:
    """One item's rows into one Arrow table, shaped as the relational normalizer would shape them.

    Lists met on the way are kept per nested table; `run_nested` turns them into one conversion and
    table each, recursively, after the parent's table exists (a child's ids hash its parent's).
    """

    def __init__(self, table: str, hints: Mapping[str, Any], known: KnownSchema,
                 parent: _Conversion | None = None) -> None:
        self.known_schema = known
        self.naming = known.naming
        self.parent = parent
        if parent is None:
            if hints.get("validator") or hints.get("schema_contract"):
                raise NotColumnar("a validator or a schema contract: the normalizer applies them")
            if any(callable(hint) for hint in hints.values()) or not isinstance(hints.get("columns") or {}, Mapping):
                raise NotColumnar("hints computed from the data")
            self.name = self.naming.normalize_tables_path(table)
            stored = known.table(self.name)
            if stored is not None and (stored.get("parent") or stored.get("filters")):
                raise NotColumnar("a nested table or a table with filters")
            strategy = _strategy(hints, stored, known)
            if strategy in HASHED_ROW_IDS:
                raise NotColumnar("a merge strategy with hashed row ids")
            self.level = known.max_nesting(stored)
            self.child_hints = _nested_hint_columns(self.name, hints.get("nested_hints") or {}, self.naming)
            self.root_key: bool | None = _propagates_root_key(hints, stored, known, self.name, strategy)
            self.hint_columns = hints.get("columns") or {}
            self.hinted = _hint_columns(hints, self.naming)
        else:
            self.name = table
            stored = known.table(self.name)
            if stored is not None and (stored.get("parent") != parent.name or stored.get("filters")):
                raise NotColumnar(f"{table} exists in the schema, but not as a nested table of {parent.name}")
            self.level = parent.level - 1
            self.child_hints, self.root_key = parent.child_hints, parent.root_key
            self.hint_columns = self.child_hints.get(self.name, {})
            self.hinted = _hint_columns({"columns": self.hint_columns}, self.naming)
        self.known = known.columns(self.name)
        self.json_names = {n for n, c in {**self.hinted, **self.known}.items() if c.get("data_type") == "json"}
        self.chosen: dict[str, dict[str, Any]] = {}
        self.extra_hints: dict[str, dict[str, Any]] = {}
        # per nested table (path below this table): (the list, index of the row it came from)
        self.lists: dict[tuple[str, ...], list[tuple[list[Any], int]]] = {}
        self.row_ids: list[str] = []
        self.root_ids: list[str] = []

    def run(self, rows: list[Any], load_id: str | None) -> pa.Table:
        """The root table: `_dlt_load_id` and a random `_dlt_id` per row, as the normalizer adds them."""
        n = len(rows)
        self.row_ids = self.root_ids = generate_dlt_ids(n)
        # without a load id: nulls in a non-null column, which `stamp_load_id` fills at extract
        return self._table(rows, {"_dlt_load_id": ({"data_type": "text", "nullable": False},
                                                   pa.array([load_id] * n, pa.string())),
                                  "_dlt_id": (ROW_ID_HINT, pa.array(self.row_ids, pa.string()))})

    def run_nested(self) -> list[tuple[_Conversion, pa.Table]]:
        """Every nested table below this one, parents before their children."""
        if self.lists and self.root_key is None:
            raise NotColumnar(f"nested rows of {self.name}, whose write disposition is not known here")
        out: list[tuple[_Conversion, pa.Table]] = []
        for path, entries in self.lists.items():
            name = self.naming.shorten_fragments(self.name, *path)
            child = _Conversion(name, {}, self.known_schema, parent=self)
            out.append((child, child._run_child(entries)))
            out.extend(child.run_nested())
        return out

    def nested_hints(self) -> Any:
        """A nested table's hints: its parent, the columns its `nested_hints` declare, dlt's keys."""
        assert self.parent is not None
        columns = {name: dict(col) for name, col in self.hint_columns.items()}
        for name, col in self.extra_hints.items():
            columns[name] = {**columns.get(name, {}), **col}
        return dlt.mark.make_hints(table_name=self.name, parent_table_name=self.parent.name, columns=columns)

    def _run_child(self, entries: list[tuple[list[Any], int]]) -> pa.Table:
        parent = self.parent
        assert parent is not None
        rows: list[Any] = []
        parent_ids: list[str] = []
        root_ids: list[str] = []
        positions: list[int] = []
        value = self.naming.normalize_identifier("value")
        for values, parent_row in entries:
            parent_id, root_id = parent.row_ids[parent_row], parent.root_ids[parent_row]
            for position, element in enumerate(values):
                kind = type(element)
                if kind is list:
                    raise NotColumnar(f"{self.name} holds lists of lists")
                rows.append(element if kind is dict else {value: element})  # a scalar is wrapped
                parent_ids.append(parent_id)
                root_ids.append(root_id)
                positions.append(position)
        self.root_ids = root_ids
        self.row_ids = [get_nested_row_hash(p, self.name, i) for p, i in zip(parent_ids, positions, strict=True)]
        keys: dict[str, tuple[dict[str, Any], pa.Array]] = {}
        if self.root_key:  # the normalizer's order: the row, the propagated root id, then its own keys
            keys["_dlt_root_id"] = (NESTED_KEY_HINTS["_dlt_root_id"], pa.array(root_ids, pa.string()))
        keys["_dlt_parent_id"] = (NESTED_KEY_HINTS["_dlt_parent_id"], pa.array(parent_ids, pa.string()))
        keys["_dlt_list_idx"] = (NESTED_KEY_HINTS["_dlt_list_idx"], pa.array(positions, pa.int64()))
        keys["_dlt_id"] = (ROW_ID_HINT, pa.array(self.row_ids, pa.string()))
        return self._table(rows, keys)

    def _table(self, rows: list[Any], keys: dict[str, tuple[dict[str, Any], pa.Array]]) -> pa.Table:
        """`rows` as columns, then dlt's `keys` columns (added after the first row's own columns)."""
        n = len(rows)
        columns: dict[str, _Column] = {}
        for name, hint in self.hinted.items():  # hint columns lead, as in the normalizer's schema
            if hint.get("data_type") or name in self.known:
                columns[name] = self._column(name)
        for i, row in enumerate(rows):
            if type(row) is not dict:
                raise NotColumnar("a row that is not a dict")
            self._add_row(columns, i, n, row)
            if i == 0:  # the normalizer adds these to its first row, after that row's own columns
                for name, (hint, _) in keys.items():
                    columns.setdefault(name, _Column(name, hint["data_type"], False))
        fields, arrays = [], []
        for col in columns.values():
            array = keys[col.name][1] if col.name in keys else self._array(col, n)
            fields.append(pa.field(col.name, array.type, nullable=col.nullable))
            arrays.append(array)
        self.extra_hints = {name: dict(hint) for name, (hint, _) in keys.items()}
        for col in columns.values():
            # Arrow says text for a json column: the hint keeps it json, as it is in the schema
            if col.data_type == "json" and self.hinted.get(col.name, {}).get("data_type") != "json":
                self.extra_hints[col.name] = {"data_type": "json"}
            if col.name not in self.known and col.name not in self.hinted:
                self.chosen[col.name] = {"data_type": col.data_type}
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def _array(self, col: _Column, n: int) -> pa.Array:
        values = col.values if col.values is not None else [None] * n
        if not col.nullable and None in values:
            raise NotColumnar(f"nulls in non-nullable column {col.name}")
        try:
            return pa.array(values, ARROW_TYPES[col.data_type])
        except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
            raise NotColumnar(f"column {col.name}: {exc}") from exc

    def _add_row(self, columns: dict[str, _Column], i: int, n: int, row: dict[str, Any]) -> None:
        json_names, known = self.json_names, self.known_schema
        stack: list[tuple[dict[str, Any], int, tuple[str, ...]]] = [(row, self.level, ())]
        while stack:  # the normalizer's order: a dict's own keys, then its dicts, the last one first
            current, level, path = stack.pop()
            names = known.name_cache(self.name, path)
            for key, value in current.items():
                named = names.get(key)
                if named is None:
                    named = known.name(self.name, path, key)
                if named is AMBIGUOUS:
                    raise NotColumnar(f"key {key!r} and another one make the same column")
                if value is None:
                    continue  # a null creates no column
                fragment, name = named
                kind = type(value)
                if kind is dict and level > 0 and name not in json_names:
                    stack.append((value, level - 1, (*path, fragment)))
                    continue
                if kind is list and level > 0 and name not in json_names:
                    if value:  # rows of a nested table, made once this table's row ids exist
                        self.lists.setdefault((*path, fragment), []).append((value, i))
                    continue  # an empty list creates neither rows nor a column
                col = columns.get(name)
                if col is None:
                    col = columns[name] = self._column(name, value)
                values = col.values
                if values is None:
                    values = col.values = [None] * n
                if kind is not col.pytype:
                    value = col.coerce(value)
                values[i] = value

    def _column(self, name: str, value: Any = None) -> _Column:
        known = self.known.get(name) or {}
        hint = self.hinted.get(name) or {}
        data_type = known.get("data_type") or hint.get("data_type")
        if data_type is None:  # a new column: typed by its first value, as the normalizer does
            data_type = autodetect_sc_type(self.known_schema.detections, type(value), value) or \
                py_type_to_sc_type(type(value))
            data_type = self.known_schema.preferred_type(name) or data_type
        nullable = known.get("nullable", hint.get("nullable", name not in NOT_NULL))
        if data_type == "timestamp" and (known.get("timezone", hint.get("timezone", True)) is False
                                         or known.get("precision") or hint.get("precision")):
            raise NotColumnar(f"timestamp column {name} is naive or has a precision")
        return _Column(name, data_type, bool(nullable))


def _hint_columns(hints: Mapping[str, Any], naming: NamingConvention) -> dict[str, dict[str, Any]]:
    """The hint columns as dlt resolves them: primary and merge keys are not nullable by default."""
    columns = {naming.normalize_path(name): dict(col) for name, col in (hints.get("columns") or {}).items()}
    for prop in ("primary_key", "merge_key"):
        keys = hints.get(prop) or []
        for key in [keys] if isinstance(keys, str) else keys:
            col = columns.setdefault(naming.normalize_path(key), {})
            col.setdefault("nullable", False)
            col[prop] = True
    return columns


def _nested_hint_columns(root: str, nested_hints: Mapping[Any, Any],
                         naming: NamingConvention) -> dict[str, dict[str, Any]]:
    """The columns `nested_hints` declare, per nested table name; NotColumnar for any other hint."""
    out: dict[str, dict[str, Any]] = {}
    for path, hint in nested_hints.items():
        fragments = (path,) if isinstance(path, str) else tuple(path)
        if set(hint) - {"columns", "original_columns"}:
            raise NotColumnar(f"nested hints for {path} beyond columns")
        name = naming.shorten_fragments(root, *(naming.normalize_table_identifier(f) for f in fragments))
        out[name] = dict(hint.get("columns") or {})
    return out


def _propagates_root_key(hints: Mapping[str, Any], stored: Mapping[str, Any] | None, known: KnownSchema,
                         name: str, strategy: str | None) -> bool | None:
    """Whether nested rows get `_dlt_root_id`: dlt's rule, a table merged by delete-insert or one whose
    nested tables have it already. None when the write disposition is the resource's, not known here."""
    if strategy is not None or known.has_root_key(name):
        return True
    return None if _disposition(hints, stored) is None else False


def _disposition(hints: Mapping[str, Any], stored: Mapping[str, Any] | None) -> str | None:
    disposition = hints.get("write_disposition")
    if isinstance(disposition, Mapping):
        disposition = disposition.get("disposition")
    if disposition is None and stored is not None:
        disposition = stored.get("write_disposition")
    return str(disposition) if disposition is not None else None


def _strategy(hints: Mapping[str, Any], stored: Mapping[str, Any] | None, known: KnownSchema) -> str | None:
    """The merge strategy the table will have (the hint's, the schema's, else the destination's
    default), or None when it is not merged."""
    if _disposition(hints, stored) != "merge":
        return None
    disposition = hints.get("write_disposition")
    if isinstance(disposition, Mapping) and disposition.get("strategy"):
        return str(disposition["strategy"])
    if stored is not None and stored.get("x-merge-strategy"):
        return str(stored["x-merge-strategy"])
    return known.default_merge_strategy


class _ArrowHintWarning(logging.Filter):
    """Drops dlt's per-item warning that an Arrow column is text where the hint says json.

    Converted items' hints are built from their column types, so json is the only difference, and
    a meant one: dlt writes json columns to parquet as text on its JSON path too.
    """

    def __init__(self) -> None:
        super().__init__()
        self.resources: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (ARROW_HINT_WARNING in message and any(f"resource: {r}," in message for r in self.resources))


_HINT_WARNING = _ArrowHintWarning()


def _quiet_json_hint_warning(resource: str) -> None:
    if resource in _HINT_WARNING.resources:
        return
    _HINT_WARNING.resources.add(resource)
    for name in ("dlt", ""):  # dlt logs to "dlt", or to the root logger when configured so
        target = logging.getLogger(name)
        if _HINT_WARNING not in target.filters:
            target.addFilter(_HINT_WARNING)
