"""`highlevel-sync demo`: the bundled sandbox → ./highlevel_demo.duckdb, a full then an incremental run."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import duckdb

from sources.highlevel.auth import StaticAuthProvider
from sources.highlevel.config import validate

from .progress import SyncProgress
from .report import format_summary
from .results import SyncResult
from .sync import SyncRequest, duckdb_destination, run_sync


def run_demo(path: str, contacts: int, live: bool | None = None) -> int:
    """Three runs over one sandbox, each with the progress display (`live`: see SyncProgress)."""
    from highlevel_sync.sandbox import Sandbox, SandboxConfig

    db_path = Path(path).resolve()
    for stale in (db_path, db_path.with_suffix(db_path.suffix + ".wal")):
        stale.unlink(missing_ok=True)
    state_dir = tempfile.mkdtemp(prefix="highlevel_demo_")
    config = SandboxConfig(contacts_per_location=(contacts, 300, 40), index_lag_s=1.0)
    try:
        with Sandbox(config) as sb:
            print(f"Sandbox up at {sb.base_url} with {len(sb.location_ids)} locations; syncing into {db_path}")
            auth = StaticAuthProvider({loc: sb.token_for(loc) for loc in sb.location_ids})
            source_config = validate({"base_url": sb.base_url, "location_ids": sb.location_ids})
            request = SyncRequest(
                destination=duckdb_destination(db_path), pipeline_name="highlevel_demo", pipelines_dir=state_dir
            )

            def sync(request: SyncRequest) -> SyncResult:
                with SyncProgress(live=live) as progress:
                    return run_sync(request, config=source_config, auth=auth, progress=progress)

            print("\n== Run 1: full backfill ==", flush=True)
            first = sync(request)
            print(format_summary(first))

            big = sb.location_ids[0]
            updated = sb.update_contacts(big, 25)
            created = sb.create_contacts(big, 10)
            deleted = sb.delete_contacts(big, 3)
            moved = sb.move_opportunities(big, 20)  # stage and status changes: opportunity_history versions
            print(
                f"\nMutated location {big}: {len(updated)} updated, {len(created)} created, {len(deleted)} deleted "
                f"contacts; {len(moved)} opportunities moved. Waiting for the search index to catch up..."
            )
            sb.wait_for_index()
            print("\n== Run 2: incremental ==", flush=True)
            second = sync(request)
            print(format_summary(second))
            print(
                "\nPolling cannot see deletions in HighLevel: the 3 deleted contacts are still loaded. A ContactDelete "
                "webhook (`highlevel-sync webhooks serve`) or a reconcile sweep removes them."
            )
            print("\n== Run 3: incremental with --reconcile (lists every id, deletes the missing ones) ==", flush=True)
            third = sync(replace(request, reconcile=True))
            print(format_summary(third))
            print("\nTables in", db_path)
            _print_tables(db_path)
            return 0 if first.ok and second.ok and third.ok else 1
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def _print_tables(db_path: Path) -> None:
    with duckdb.connect(str(db_path), read_only=True) as con:
        tables = con.execute(
            "select table_name from information_schema.tables where table_schema = 'highlevel' "
            "and table_name not like '_dlt%' order by 1"
        ).fetchall()
        for (table,) in tables:
            count = con.execute(f'select count(*) from highlevel."{table}"').fetchone()
            print(f"  highlevel.{table:<32} {count[0] if count else 0:>9,} rows")
