"""The few SQL spellings that differ between the warehouses the analyst layer supports.

Everything else in the layer is plain SQL that DuckDB and PostgreSQL read the same way; this is
the one place that knows where they part (JSON type and list building, picking a JSON value in an
aggregate, medians, reading a view's comment).
"""

from __future__ import annotations

from dataclasses import dataclass

from sources.highlevel.errors import ConfigError


@dataclass(frozen=True)
class Dialect:
    name: str
    json_type: str  # what dlt creates JSON columns as
    view_comment_sql: str  # (schema, view) -> the view's comment, no row when it does not exist

    def json_list(self, json_value: str, text_value: str) -> str:
        """The value as a JSON list: a list as loaded, a lone scalar wrapped in one."""
        json_value = f"CAST({json_value} AS {self.json_type})"
        if self.name == "duckdb":
            return f"CASE WHEN {json_value} IS NOT NULL THEN {json_value} WHEN {text_value} IS NOT NULL " \
                   f"THEN to_json([{text_value}]) END"
        return f"COALESCE({json_value}, jsonb_build_array({text_value}))"

    def pick(self, value: str, condition: str, is_json: bool) -> str:
        """One value among a group's rows matching `condition` (there is at most one).

        PostgreSQL has no max() over jsonb, so JSON goes through an array.
        """
        if not is_json:
            return f"max({value}) FILTER (WHERE {condition})"
        if self.name == "duckdb":
            return f"any_value({value}) FILTER (WHERE {condition})"
        return f"(array_agg({value}) FILTER (WHERE {condition}))[1]"

    def lock(self, table: str) -> str | None:
        """A statement that keeps other writers of `table` out until the transaction ends.

        Airflow shards are pipelines of their own (no shared run lock) but may share a dataset;
        two of them versioning the same change at once would add it twice. DuckDB has one writer.
        """
        return None if self.name == "duckdb" else f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"

    def median(self, value: str) -> str:
        if self.name == "duckdb":
            return f"median({value})"
        return f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {value})"


DUCKDB = Dialect("duckdb", "JSON",
                 "SELECT comment FROM duckdb_views() WHERE schema_name = %s AND view_name = %s")
POSTGRES = Dialect("postgres", "JSONB",
                   "SELECT d.description FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                   "LEFT JOIN pg_description d ON d.objoid = c.oid AND d.objsubid = 0 "
                   "WHERE c.relkind = 'v' AND n.nspname = %s AND c.relname = %s")
DIALECTS = {d.name: d for d in (DUCKDB, POSTGRES)}


def dialect_of(destination_name: str) -> Dialect:
    """The dialect of a dlt destination; the analyst layer is built on DuckDB and PostgreSQL only."""
    try:
        return DIALECTS[destination_name]
    except KeyError:
        raise ConfigError(f"the analyst layer (wide views, opportunity history) supports duckdb and postgres, "
                          f"not {destination_name}; the tables themselves are loaded") from None
