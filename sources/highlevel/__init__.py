"""HighLevel (GoHighLevel / LeadConnector) CRM as a dlt source, for one location or many.

Two ways in: `highlevel_source` reads one location while dlt extracts it (plain dlt use), and
`read_resource` + `fetched_source` split reading from extracting so `run_sync` can read many
locations side by side and extract what they read together, each location's cursors committing
with its own rows. No HTTP happens here; resources ask the client (`client.py`) for pages.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.typing import TSecretStrValue
from dlt.extract.items import DataItemWithMeta
from dlt.extract.resource import DltResource

from . import settings
from .client import HighLevelClient
from .columnar import stamp_load_id
from .endpoints import LISTS
from .errors import ConfigError
from .resources.calendars import appointments, calendars
from .resources.contacts import contacts
from .resources.context import LocationContext, SyncOptions
from .resources.conversations import conversations, messages
from .resources.deletions import deletions
from .resources.dimensions import custom_fields, locations, users
from .resources.lists import list_resource
from .resources.notes import notes
from .resources.objects import object_records
from .resources.opportunities import opportunities, pipelines
from .resources.relations import relations
from .resources.tasks import tasks
from .standalone import HighLevelAppCredentials
from .standalone import resolve as standalone_session

__all__ = ["RESOURCE_NAMES", "FetchedItems", "LocationContext", "SyncOptions", "fetched_source", "highlevel_source",
           "read_resource", "select_resources", "split_by_location"]

RESOURCE_NAMES = settings.RESOURCE_NAMES

# name -> the dlt resource (its hints are the table contract; its body reads one location)
RESOURCES: dict[str, Callable[..., DltResource]] = {
    "contacts": contacts,
    "notes": notes,
    "opportunities": opportunities,
    "pipelines": pipelines,
    "conversations": conversations,
    "messages": messages,
    "calendars": calendars,
    "appointments": appointments,
    "tasks": tasks,
    "custom_fields": custom_fields,
    "users": users,
    "locations": locations,
    **{name: list_resource(spec) for name, spec in LISTS.items()},
    "object_records": object_records,
    "relations": relations,
    "deletions": deletions,
}


@dlt.source(name="highlevel", max_table_nesting=2)
def highlevel_source(
    location_id: str | None = dlt.config.value,
    location_ids: str | list[str] | None = dlt.config.value,
    company_id: str | None = dlt.config.value,
    private_integration_token: TSecretStrValue | None = dlt.secrets.value,
    credentials: HighLevelAppCredentials | None = dlt.secrets.value,
    token_store: str | None = dlt.config.value,
    base_url: str | None = dlt.config.value,
    start_date: str | None = dlt.config.value,
    resources: list[str] | None = dlt.config.value,
) -> Any:
    """Every location the credentials reach, as plain dlt resources: `pipeline.run(highlevel_source())`.

    Each argument defaults to `sources.highlevel.<name>` from dlt's providers (`.dlt/*.toml`,
    `SOURCES__HIGHLEVEL__*` env); the other `sources.highlevel.*` settings (page sizes, windows,
    `sync_notes`...) are read the same way. One location: a Private Integration Token and
    `location_id`, or an OAuth token store; `location_ids = "all"` (or an agency token and no ids):
    every location the app is installed in, read one after another. `resources` names a subset
    (RESOURCE_NAMES; default all but the opt-in `notes`); `with_resources` and `add_limit` work as
    on any dlt source, and the cursors are dlt resource state, the same `run_sync` keeps.
    """
    overrides = {"location_ids": location_ids or location_id, "company_id": company_id,
                 "private_integration_token": private_integration_token, "token_store": token_store,
                 "base_url": base_url, "start_date": start_date,
                 "client_id": credentials.client_id if credentials else None,
                 "client_secret": credentials.client_secret if credentials else None}
    session = standalone_session(overrides, resources, select_resources)
    return [session.resource(name, RESOURCES[name](None)) for name in session.names]


def read_resource(ctx: LocationContext, name: str) -> Iterator[Any]:
    """The items one resource yields for one location, read outside any dlt extract.

    Cursors go to `ctx.states` (set it first); `fetched_source` later commits them with the rows.
    """
    if ctx.states is None:
        raise ValueError("read_resource needs ctx.states: the state the reads start from")
    body: Callable[[LocationContext], Iterator[Any]] = RESOURCES[name].__wrapped__  # type: ignore[attr-defined]
    return body(ctx)


@dataclass
class FetchedItems:
    """What one read of one resource for one location produced, ready to extract."""

    resource: str
    location_id: str
    items: Iterable[Any]  # as the resource yields them (row lists, hinted items, Arrow tables)
    state: dict[str, Any]  # the location's part of the resource state after the read
    known: dict[str, set[str]] = field(default_factory=dict)  # keys that part had before, per section


@dlt.source(name="highlevel", max_table_nesting=2)
def fetched_source(fetched: Sequence[FetchedItems]) -> Any:
    """Already-read items of any number of locations as one source: one extract, one load.

    Each resource keeps its hints (same tables, keys and merge rules as `highlevel_source`), and
    each location's cursors are written into dlt's state together with its rows, so they commit
    or vanish with them.
    """
    by_resource: dict[str, list[FetchedItems]] = {}
    for part in fetched:
        by_resource.setdefault(part.resource, []).append(part)
    built = []
    for name in RESOURCE_NAMES:
        if name in by_resource:
            template = RESOURCES[name](None)  # never iterated: it lends its name and hints
            built.append(DltResource.from_data(_replay(by_resource[name]), name=template.name,
                                               section=template.section, hints=template._hints or {}))
    return built


# rows per merged item: big enough that dlt's per-item cost vanishes, small enough for memory.
# Arrow at 50,000 rows held two copies of ~50 MB of contacts while concatenating; at 10,000 a 1M
# contact run peaked at 348 MB instead of 392 MB, at the same speed (bench/contacts_throughput.py)
MERGED_ROWS = {"list": 2_000, "arrow": 10_000}


def _replay(parts: list[FetchedItems]) -> Iterator[Any]:
    """Every part's items, consecutive items of one table merged into one.

    dlt computes and validates a table schema for every hinted item (~5 ms each): an agency's
    thousands of one-page reads would spend most of an extract on that, so pages of the same table
    and hints travel together.
    """
    merger = _Merger()
    for part in parts:
        for item in part.items:
            yield from merger.add(item)
        merge_location_state(dlt.current.resource_state(), part.state, part.known)
    yield from merger.flush()


class _Merger:
    """Pending pages per (kind, metadata): one table's pages keep their order, tables interleave freely."""

    def __init__(self) -> None:
        self._pending: dict[tuple[Any, ...], tuple[Any, list[Any]]] = {}
        self._rows: dict[tuple[Any, ...], int] = {}

    def add(self, item: Any) -> Iterator[Any]:
        meta = getattr(item, "meta", None) if isinstance(item, DataItemWithMeta) else None
        data = item.data if meta is not None else item
        kind = "arrow" if isinstance(data, pa.Table) else "list" if isinstance(data, list) else None
        if kind is None:  # a single row or anything else: as it came, after what waits
            yield from self.flush()
            yield item
            return
        key = (kind, _fingerprint(meta))
        self._pending.setdefault(key, (meta, []))[1].append(data)
        self._rows[key] = self._rows.get(key, 0) + (len(data) if kind == "list" else data.num_rows)
        if self._rows[key] >= MERGED_ROWS[kind]:
            # everything pending, in arrival order: a nested table's rows never precede its parent's
            yield from self.flush()

    def flush(self) -> Iterator[Any]:
        for key in list(self._pending):
            yield self._merged(key)

    def _merged(self, key: tuple[Any, ...]) -> Any:
        meta, pieces = self._pending.pop(key)
        del self._rows[key]
        if key[0] == "arrow":
            data: Any = pa.concat_tables(pieces, promote_options="default")
            if "_dlt_load_id" in data.column_names and data.column("_dlt_load_id").null_count:
                # rows converted ahead of this extract get its load id now
                data = stamp_load_id(data, dlt.current.load_package_state()["load_id"])
        else:
            data = [row for piece in pieces for row in piece]
        return data if meta is None else DataItemWithMeta(meta, data)


def _fingerprint(meta: Any) -> Any:
    """Equal for items whose metadata (table name, hints) is equal, wherever they came from."""
    if meta is None:
        return None
    hints = getattr(meta, "hints", None)
    if hints is None:
        return type(meta).__name__, repr(meta)
    return type(meta).__name__, getattr(meta, "create_table_variant", None), pickle.dumps(hints, protocol=4)


def split_by_location(resource_state: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """A resource's state cut into each location's part, in one pass.

    Per-location maps (cursors, resume, last_success...) are keyed by location id, or
    `<location>/<stream>` for a second stream of one location.
    """
    parts: dict[str, dict[str, dict[str, Any]]] = {}
    for section, entries in resource_state.items():
        if isinstance(entries, dict):
            for key, value in entries.items():
                parts.setdefault(str(key).split("/", 1)[0], {}).setdefault(section, {})[key] = value
    return parts


def merge_location_state(resource_state: dict[str, Any], part: Mapping[str, Any],
                         known: Mapping[str, set[str]]) -> None:
    """Write one location's part back: its entries now replace the ones it had (`known`, per section)."""
    for section, keys in known.items():
        target = resource_state.get(section)
        if isinstance(target, dict):
            for key in keys - set(part.get(section, {})):
                target.pop(key, None)
    for section, entries in part.items():
        resource_state.setdefault(section, {}).update(copy.deepcopy(entries))


def select_resources(names: Sequence[str] | None) -> list[str]:
    """The resources to run (by default all but the opt-in ones), in RESOURCE_NAMES order: a
    resource may build on one before it (notes on contacts, deletions on every sweep).

    Unknown or empty selections are a ConfigError."""
    selected = [n.strip() for n in names or settings.DEFAULT_RESOURCES if n.strip()]
    unknown = sorted(set(selected) - set(RESOURCE_NAMES))
    if unknown:
        raise ConfigError(f"unknown resource(s) {', '.join(unknown)}; choose from {', '.join(RESOURCE_NAMES)}")
    if not selected:
        raise ConfigError(f"no resources selected; choose from {', '.join(RESOURCE_NAMES)}")
    return [name for name in RESOURCE_NAMES if name in selected]


def location_context(
    client: HighLevelClient, location_id: str, company_id: str | None = None, options: SyncOptions | None = None
) -> LocationContext:
    return LocationContext(client=client, location_id=location_id, company_id=company_id,
                           options=options or SyncOptions())
