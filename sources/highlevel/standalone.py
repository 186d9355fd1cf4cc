"""`highlevel_source()` as a plain dlt source: settings from dlt's providers, locations read in turn.

`run_sync` reads many locations side by side ahead of dlt's extract; a plain
`dlt.pipeline(...).run(highlevel_source())` has only dlt's extract, so here each resource is one
generator that reads every location in turn, with dlt's own resource state holding the cursors
(the same keys `run_sync` commits, so the two ways can take turns on one pipeline).

What the two ways share, so their tables, keys, cursors and merge rules are the same: the
resource bodies and hints (`RESOURCES`), the config reader (`config.load_config`) and the
credentials resolver (`credentials.resolve_credentials`, agency fan-out by `installed_locations`).

Resources read one after another in RESOURCE_NAMES order, as `run_sync` reads a location's: a
resource may build on one before it (`notes` follows the contacts the `contacts` read changed,
`deletions` records the others' sweeps). dlt interleaves resource generators, but passes over one
that yields None for now, so each yields None until the resources before it (of those this
extract runs) have finished; extraction is one thread either way, so nothing is slower.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.common.configuration import configspec
from dlt.common.configuration.specs import CredentialsConfiguration
from dlt.common.typing import TSecretStrValue
from dlt.extract.resource import DltResource

from .client import HighLevelClient
from .config import SourceConfig, load_config
from .credentials import Credentials, installed_locations, resolve_credentials
from .errors import ConfigError, ScopeError
from .resources.context import LocationContext, SyncOptions

logger = logging.getLogger("highlevel.source")

LAST = "deletions"  # records what the others' sweeps found
# resources whose deletions the `deletions` table records (as run_sync's plan)
DELETABLE = frozenset({"contacts", "opportunities", "appointments", "tasks", "notes"})


@configspec
class HighLevelAppCredentials(CredentialsConfiguration):
    """The OAuth app (`sources.highlevel.credentials.client_id` / `client_secret`); the grants
    themselves live in the token store (`highlevel-sync auth login` or `auth import`)."""

    client_id: str | None = None
    client_secret: TSecretStrValue | None = None


def resolve(overrides: dict[str, Any], resources: Sequence[str] | None,
            select: Callable[[Any], list[str]]) -> Session:
    """Config, credentials, resources and options of one source instance, checked before any request.

    `select` is the package's `select_resources`: whatever resources exist come from there."""
    overrides = {**overrides, "location_ids": _listed(overrides.get("location_ids"))}
    config = load_config(**{key: value for key, value in overrides.items() if value is not None})
    names = selected_names(resources, config.sync_notes, select)
    credentials = resolve_credentials(config, None)
    if credentials.locations is None and (not credentials.company_id or credentials.manager is None):
        raise ConfigError("agency fan-out needs company_id; set SOURCES__HIGHLEVEL__COMPANY_ID")
    options = SyncOptions(
        start_date=config.start_date,
        overlap=config.overlap,
        contacts_page_size=config.contacts_page_size,
        chunk_rows=0,  # one extract per run: a contacts read is never split into chunks
        appointment_lookback=config.appointment_lookback,
        appointment_lookahead=config.appointment_lookahead,
        notes_max_requests=config.notes_max_requests,
    )
    return Session(config, credentials, options, names, named=resources is not None)


def _listed(value: Any) -> Any:
    """A list given as JSON text (an env var `["a","b"]`, or a toml array dlt handed over as text)."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            raise ConfigError(f"location_ids {value!r} is not a JSON list; use [\"id1\", \"id2\"] or id1,id2") from None
    return value


def selected_names(resources: Sequence[str] | None, sync_notes: bool, select: Callable[[Any], list[str]]) -> list[str]:
    """The resources the source offers: the named ones (plus `deletions` when one of them can
    delete, as `run_sync` does), else the defaults (plus `notes` when `sync_notes` is on)."""
    names = list(resources) if resources is not None else None
    if names is None and sync_notes:
        names = [*select(None), "notes"]
    chosen = select(names)
    if DELETABLE & set(chosen) and LAST not in chosen:
        chosen = select([*chosen, LAST])
    return chosen


@dataclass
class Session:
    """One source instance's client and location contexts, shared by its resources.

    Contexts are shared so lookups a location's resources have in common (custom field
    definitions, calendars) are fetched once and `deletions` sees the others' sweeps; the client
    opens on the first read and closes whenever no resource is reading (dlt may run them one by one).
    """

    config: SourceConfig
    credentials: Credentials
    options: SyncOptions
    names: list[str]
    named: bool  # the user named the resources: a missing scope fails instead of being skipped
    started: set[str] = field(default_factory=set)
    finished: set[str] = field(default_factory=set)
    _client: HighLevelClient | None = None
    _contexts: list[LocationContext] | None = None
    _readers: int = 0
    _extract: str | None = None  # the load id of the extract the started / finished sets belong to

    def resource(self, name: str, template: DltResource) -> DltResource:
        """The named resource with its hints, reading every location of this session."""
        return DltResource.from_data(self._read(name, template.__wrapped__), name=template.name,  # type: ignore[attr-defined]
                                     section=template.section, hints=template._hints or {})

    def _read(self, name: str, body: Callable[[LocationContext], Iterator[Any]]) -> Callable[[], Iterator[Any]]:
        def read() -> Iterator[Any]:
            self._enter_extract()
            self.started.add(name)
            try:
                yield from self._wait_for(name)
                for ctx in self._open():
                    yield from self._read_location(name, body, ctx)
            finally:
                self.finished.add(name)
                self._close()

        return read

    def _enter_extract(self) -> None:
        """A source object may be extracted more than once (a scheduler reuses it): the order of
        reads is kept per extract, told apart by its load id."""
        try:
            load_id = dlt.current.load_package_state()["load_id"]
        except Exception:  # iterated outside a pipeline's extract (a test, list(resource))
            load_id = None
        if load_id != self._extract:
            self._extract = load_id
            self.started.clear()
            self.finished.clear()

    def _wait_for(self, name: str) -> Iterator[None]:
        """None while a resource before this one (RESOURCE_NAMES order) is still reading in this extract."""
        earlier = self.names[:self.names.index(name)]
        while any(other in self.started and other not in self.finished for other in earlier):
            yield None

    def _read_location(self, name: str, body: Callable[[LocationContext], Iterator[Any]],
                       ctx: LocationContext) -> Iterator[Any]:
        if name == "tasks":  # a loaded task the listing no longer shows is read by id or swept
            loaded = loaded_tasks(ctx.location_id)
            ctx.known_ids["tasks"] = set(loaded)
            ctx.open_tasks = {task_id: contact for task_id, (contact, completed) in loaded.items() if not completed}
        try:
            yield from body(ctx)
        except ScopeError as exc:
            if self.named:
                raise
            logger.warning("location %s: skipping %s, the token lacks its scope: %s", ctx.location_id, name, exc)

    def _open(self) -> list[LocationContext]:
        self._readers += 1
        if self._client is None:
            self._client = HighLevelClient(self.config.base_url, self.credentials.auth,
                                           max_attempts=self.config.max_attempts, timeout_s=self.config.timeout_s)
            for ctx in self._contexts or ():  # kept from an earlier reader: what they found stays
                ctx.client = self._client
        if self._contexts is None:
            self._contexts = [self._context(location_id) for location_id in self._locations(self._client)]
        return self._contexts

    def _close(self) -> None:
        self._readers = max(0, self._readers - 1)
        if self._readers == 0 and self._client is not None:
            self._client.close()
            self._client = None

    def _context(self, location_id: str) -> LocationContext:
        assert self._client is not None
        ctx = LocationContext(client=self._client, location_id=location_id, company_id=self.credentials.company_id,
                              options=self.options)
        if "notes" in self.names:  # the notes read follows the contacts this run's contacts read loads
            ctx.changed_contacts = {}
        return ctx

    def _locations(self, client: HighLevelClient) -> list[str]:
        """The configured locations, or for an agency every location the app is installed in."""
        credentials = self.credentials
        if credentials.locations is not None:
            return list(credentials.locations)
        assert credentials.company_id is not None and credentials.manager is not None  # checked by resolve
        return installed_locations(client, credentials.company_id, credentials.manager.app.app_id)


def loaded_tasks(location_id: str) -> dict[str, tuple[str | None, bool | None]]:
    """The location's tasks in the running pipeline's destination, id -> (contact id, completed),
    as `run_sync` reads them (highlevel_sync/deletions.py); empty before the first load."""
    try:
        pipeline = dlt.current.pipeline()
        with pipeline.sql_client() as client:
            rows = client.execute_sql("select id, contact_id, completed from "
                                      f"{client.make_qualified_table_name('tasks')} where location_id = %s",
                                      location_id)
    except Exception:  # no destination or no such table (or column) yet: nothing loaded
        return {}
    return {str(task_id): (None if contact is None else str(contact), None if done is None else bool(done))
            for task_id, contact, done in rows or ()}
