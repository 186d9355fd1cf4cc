"""`opportunity_history`: one version per observed change of an opportunity's stage, status, value
or owner, kept by SQL after each run's load.

Why not dlt's `scd2`: it stamps versions with the load time and, without a merge key, retires
every row absent from the batch, which incremental reads and per-location batches make wrong. Here
the loaded `opportunities` table is the observation: after the load, every opportunity whose tracked
columns (`pipeline_id`, `pipeline_stage_id`, `status`, `monetary_value`, `assigned_to`) differ from its
current version gets a new version, and the previous one is closed at the new one's `valid_from`.
So, whatever the batches and locations:
- a re-read without a change (the GET scan fallback re-reads them all, the overlap window some)
  adds nothing: the row equals its current version;
- `valid_from` is the change time the API reports, never the load time: the stage's
  `lastStageChangeAt` when the stage (or pipeline) moved, else `lastStatusChangeAt` when the status
  changed, else `updatedAt`. A webhook-triggered run re-reads the record, whose stamps are the
  event's time, so `OpportunityStageUpdate`/`OpportunityStatusUpdate` add versions at that time;
- the first version of an opportunity starts when it entered its current stage
  (`lastStageChangeAt`, else `createdAt`): earlier stages were never observed;
- a deleted opportunity (gone from `opportunities`, dlt's hard delete) has its last version closed
  at `deleted_at` from `deletions`, or at the run's time if no deletion was recorded;
- several changes between two runs are one observed change: polling sees only the latest state.
A `valid_from` that would not follow the current version's (clock skew, a stale read) becomes
`updatedAt`, else the current version's plus a millisecond, so versions always stay ordered.
Runs of one pipeline never overlap (run lock); pipelines sharing a dataset (Airflow shards) take
a table lock on PostgreSQL, so a change is never versioned twice.
"""

from __future__ import annotations

from typing import Any

from .catalog import Catalog
from .dialect import Dialect

HISTORY = "opportunity_history"
TIMESTAMP = "TIMESTAMP WITH TIME ZONE"
TRACKED = (("pipeline_id", "VARCHAR"), ("pipeline_stage_id", "VARCHAR"), ("status", "VARCHAR"),
           ("monetary_value", "DOUBLE PRECISION"), ("assigned_to", "VARCHAR"))
COLUMNS = (("id", "VARCHAR NOT NULL"), ("location_id", "VARCHAR NOT NULL"), *TRACKED,
           ("valid_from", f"{TIMESTAMP} NOT NULL"), ("valid_to", TIMESTAMP))


def create_sql(catalog: Catalog) -> str:
    columns = ", ".join(f"{name} {sql_type}" for name, sql_type in COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {catalog.table(HISTORY)} ({columns})"


def update_history(client: Any, catalog: Catalog, dialect: Dialect) -> None:
    """Bring the history up to the loaded `opportunities`, in one transaction."""
    if not catalog.has(HISTORY):
        client.execute_sql(create_sql(catalog))
    lock = dialect.lock(catalog.table(HISTORY))
    with client.begin_transaction():
        for statement in ([lock] if lock else []) + update_statements(catalog):
            client.execute_sql(statement)


def update_statements(catalog: Catalog) -> list[str]:
    """New versions for changed and new opportunities, then close the versions they replace, then
    close the versions of deleted ones."""
    history, table = catalog.table(HISTORY), catalog.table("opportunities")

    def col(name: str, sql_type: str = TIMESTAMP) -> str:
        return catalog.column("o", "opportunities", name, sql_type)

    tracked = {name: col(name, sql_type) for name, sql_type in TRACKED}
    differs = " OR ".join(f"{value} IS DISTINCT FROM c.{name}" for name, value in tracked.items())
    updated, moved = col("updated_at"), f"({tracked['pipeline_stage_id']} IS DISTINCT FROM c.pipeline_stage_id " \
                                        f"OR {tracked['pipeline_id']} IS DISTINCT FROM c.pipeline_id)"
    changed_at = (f"CASE WHEN {moved} THEN COALESCE({col('last_stage_change_at')}, {updated}) "
                  f"WHEN {tracked['status']} IS DISTINCT FROM c.status "
                  f"THEN COALESCE({col('last_status_change_at')}, {updated}) ELSE {updated} END")
    valid_from = (f"CASE WHEN c.id IS NULL THEN COALESCE({col('last_stage_change_at')}, {col('created_at')}, "
                  f"{updated}, CURRENT_TIMESTAMP) "
                  f"WHEN {changed_at} > c.valid_from THEN {changed_at} "
                  f"WHEN {updated} > c.valid_from THEN {updated} "
                  f"ELSE c.valid_from + INTERVAL '1 millisecond' END")
    names = ", ".join(name for name, _ in COLUMNS)
    insert = (f"INSERT INTO {history} ({names}) "
              f"SELECT o.id, o.location_id, {', '.join(tracked.values())}, {valid_from}, CAST(NULL AS {TIMESTAMP}) "
              f"FROM {table} AS o LEFT JOIN {history} AS c ON c.id = o.id AND c.valid_to IS NULL "
              f"WHERE c.id IS NULL OR {differs}")
    close_replaced = (f"UPDATE {history} AS h SET valid_to = n.valid_from "
                      f"FROM (SELECT id, valid_from FROM {history} WHERE valid_to IS NULL) AS n "
                      f"WHERE h.valid_to IS NULL AND n.id = h.id AND n.valid_from > h.valid_from")
    deleted_at = "CURRENT_TIMESTAMP"
    if {"resource", "id", "deleted_at"} <= set(catalog.columns("deletions")):
        deleted_at = (f"COALESCE((SELECT max(d.deleted_at) FROM {catalog.table('deletions')} AS d "
                      f"WHERE d.resource = 'opportunities' AND d.id = h.id), CURRENT_TIMESTAMP)")
    close_deleted = (f"UPDATE {history} AS h SET valid_to = GREATEST(h.valid_from, {deleted_at}) "
                     f"WHERE h.valid_to IS NULL AND NOT EXISTS (SELECT 1 FROM {table} AS o WHERE o.id = h.id)")
    return [insert, close_replaced, close_deleted]
