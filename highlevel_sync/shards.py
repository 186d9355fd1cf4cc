"""Agency syncs split into shards of locations, for the Airflow DAG's mapped tasks (no Airflow here).

- A location's shard is a stable hash of its id (sha256, not Python's per-process `hash()`), so the
  planning task, every worker and every run agree, and a location keeps its shard, and so its
  cursors, from run to run while the shard count stays the same.
- Each shard is its own dlt pipeline (`highlevel_shard_<n>`): its own working directory, state and
  run lock, so shard tasks running side by side never share dlt files. All load into one dataset.
  Cursors live in that pipeline's state in the destination: a worker that has never run the shard
  (or wiped its disk) restores them before it syncs.
- A shard syncs through the same `run_sync` as the CLI; any failed location fails the shard,
  naming each failed location, after the others' data and cursors are committed.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import dlt
from dlt.common.destination import Destination

from sources.highlevel.client import HighLevelClient
from sources.highlevel.config import SourceConfig, load_config
from sources.highlevel.errors import ConfigError, HighLevelError

from .credentials import installed_locations, resolve_credentials
from .datasetlock import dataset_lock
from .installs import InstallRegistry
from .results import describe_failure
from .sync import DEFAULT_DATASET, SyncRequest, _duckdb_configured, duckdb_destination, make_pipeline, run_sync

logger = logging.getLogger("highlevel.shards")

SHARD_PIPELINE_PREFIX = "highlevel_shard"
DEFAULT_STAGING_LAYOUT = "%s_staging"  # dlt's default `staging_dataset_name_layout`
# DuckDB only: one file for every shard (dlt's default would be one file per pipeline name)
# (not `highlevel.duckdb`: a catalog named like the dataset makes DuckDB references ambiguous)
DEFAULT_DUCKDB_FILE = "highlevel_warehouse.duckdb"


class ShardFailed(HighLevelError):
    """Some locations of a shard failed; the message names each one and why."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    locations: list[str] = field(default_factory=list)

    @property
    def pipeline_name(self) -> str:
        return f"{SHARD_PIPELINE_PREFIX}_{self.index}"

    @property
    def label(self) -> str:
        return f"shard {self.index + 1}/{self.count} ({len(self.locations)} locations)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Shard:
        return cls(int(data["index"]), int(data["count"]), [str(loc) for loc in data["locations"]])


def shard_of(location_id: str, count: int) -> int:
    """The shard of a location: the same in every process, machine and Python version."""
    digest = hashlib.sha256(location_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def split(locations: Sequence[str], count: int) -> list[Shard]:
    """The non-empty shards, each location in exactly one; order within a shard as given."""
    if count < 1:
        raise ConfigError(f"shards must be at least 1, not {count}")
    buckets: dict[int, list[str]] = {}
    for location in dict.fromkeys(locations):
        buckets.setdefault(shard_of(location, count), []).append(location)
    return [Shard(index, count, buckets[index]) for index in sorted(buckets)]


def list_locations(config: SourceConfig | None = None, wanted: Sequence[str] | None = None) -> list[str]:
    """`wanted` if given (a triggered run's conf); else every location the app is installed in for an
    agency token (less those that uninstalled it), or the configured ones."""
    if wanted:
        return list(dict.fromkeys(str(loc) for loc in wanted))
    config = config or load_config()
    credentials = resolve_credentials(config, None)
    if credentials.locations is not None:
        return list(credentials.locations)
    if not credentials.company_id or credentials.manager is None:
        raise ConfigError("agency fan-out needs company_id; set SOURCES__HIGHLEVEL__COMPANY_ID")
    with HighLevelClient(config.base_url, credentials.auth, max_attempts=config.max_attempts,
                         timeout_s=config.timeout_s) as client:
        locations = installed_locations(client, credentials.company_id, credentials.manager.app.app_id)
    gone = InstallRegistry(config.token_store).uninstalled()
    return [loc for loc in locations if loc not in gone]


def plan_shards(count: int, wanted: Sequence[str] | None = None, config: SourceConfig | None = None) -> list[Shard]:
    locations = list_locations(config, wanted)
    if not locations:
        raise ConfigError("no location to sync: the app is installed nowhere, or none is configured")
    shards = split(locations, count)
    logger.info("%d locations in %d shards", len(locations), len(shards))
    return shards


def shard_request(shard: Shard, resources: Sequence[str] | None = None, dataset_name: str | None = None,
                  destination: Any = None, pipelines_dir: str | None = None) -> SyncRequest:
    """The shard's SyncRequest: its own pipeline name and staging dataset; DuckDB (unless configured)
    in one shared file."""
    if destination in (None, "duckdb") and not _duckdb_configured():
        destination = duckdb_destination(DEFAULT_DUCKDB_FILE)
    return SyncRequest(resources=list(resources) if resources else None, locations=list(shard.locations),
                       destination=own_staging(destination or "duckdb", shard),
                       dataset_name=dataset_name or DEFAULT_DATASET,
                       pipeline_name=shard.pipeline_name, pipelines_dir=pipelines_dir)


def own_staging(destination: Any, shard: Shard) -> Any:
    """The destination with a staging dataset for this shard alone (`<dataset>_staging_shard_<n>`).

    dlt stages every merge in one staging dataset per dataset and truncates it when a load starts,
    so shards loading one dataset at once would merge each other's rows or lose their own. On
    PostgreSQL loads also queue (`datasetlock.py`); elsewhere this is what keeps shards apart.
    """
    factory = Destination.from_reference(destination)
    if factory is None or not hasattr(factory.spec, "staging_dataset_name_layout"):
        return destination  # a destination without a staging dataset (a custom sink): nothing to share
    layout = factory.config_params.get("staging_dataset_name_layout") or dlt.config.get(
        f"destination.{factory.destination_name}.staging_dataset_name_layout") or DEFAULT_STAGING_LAYOUT
    own = copy.copy(factory)
    own.config_params = {**factory.config_params, "staging_dataset_name_layout": f"{layout}_shard_{shard.index}"}
    return own


def sync_shard(shard: Shard, resources: Sequence[str] | None = None, *, dataset_name: str | None = None,
               destination: Any = None, pipelines_dir: str | None = None,
               config: SourceConfig | None = None) -> dict[str, Any]:
    """Sync one shard; returns its summary, or raises ShardFailed naming every failed location."""
    request = shard_request(shard, resources, dataset_name, destination, pipelines_dir)
    restore_state(request)
    result = run_sync(request, config=config or load_config())
    failures = [f"location {loc.location_id}: {loc.error}" for loc in result.locations if not loc.ok]
    if result.ok:
        drop_unused_staging(result.pipeline, request.destination, shard)
    summary = {"shard": shard.index, "pipeline": shard.pipeline_name,
               "locations": [loc.location_id for loc in result.locations if loc.ok],
               "failed": [loc.location_id for loc in result.locations if not loc.ok],
               "rows": dict(result.table_rows), "seconds": round(result.seconds, 1)}
    if failures:
        others = " (the others are loaded)" if len(failures) < len(result.locations) else ""
        raise ShardFailed(f"{shard.label}: {len(failures)} of {len(result.locations)} locations failed{others}: "
                          + "; ".join(failures))
    return summary


def drop_unused_staging(pipeline: Any, destination: Any, shard: Shard) -> list[str]:
    """Drop the staging datasets of shards the plan no longer has (`<dataset>_staging_shard_<n>`,
    n >= the shard count: left by an earlier plan with more shards); returns their names.

    Under the dataset lock (PostgreSQL), so no load is using one; a failure here only logs, the
    shard's data is loaded. Any other schema (the CLI's `<dataset>_staging`, other datasets) stays."""
    layout = (getattr(destination, "config_params", None) or {}).get("staging_dataset_name_layout")
    suffix = f"_shard_{shard.index}"
    if pipeline is None or not isinstance(layout, str) or not layout.endswith(suffix):
        return []  # not staged per shard (a destination without staging): nothing of ours to drop
    base = layout[:-len(suffix)]
    prefix = (base % pipeline.dataset_name if "%s" in base else base) + "_shard_"
    dropped: list[str] = []
    try:
        with dataset_lock(pipeline), pipeline.sql_client() as client:
            names = [str(row[0]) for row in client.execute_sql("select schema_name from information_schema.schemata")
                     or ()]
            for name in names:
                number = name[len(prefix):]
                if name.startswith(prefix) and number.isdigit() and int(number) >= shard.count:
                    client.execute_sql(f"DROP SCHEMA IF EXISTS {client.capabilities.escape_identifier(name)} CASCADE")
                    dropped.append(name)
    except Exception as exc:
        logger.warning("could not drop unused staging datasets %s*: %s", prefix, describe_failure(exc))
    if dropped:
        logger.info("dropped staging datasets no shard uses any more: %s", ", ".join(dropped))
    return dropped


def restore_state(request: SyncRequest) -> None:
    """Bring the shard pipeline's state and schema from the destination when it is newer than the
    local copy (a fresh or ephemeral worker): without it, `run_sync` would start with no cursors
    and re-read every location of the shard from the start."""
    try:
        make_pipeline(request).sync_destination()
    except Exception as exc:  # the run itself reports an unreachable destination clearly
        logger.warning("could not restore pipeline %s from the destination: %s", request.pipeline_name,
                       describe_failure(exc))
